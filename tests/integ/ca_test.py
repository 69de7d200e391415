#!/usr/bin/env python3
"""The CA and the services' identities through the real binary (issue 14, part 2): under
`shoal up` every instance gets SHOAL_TLS_CERT/KEY/CA files; `openssl verify` accepts the
certificate against the bundle, its URI SAN is spiffe://<trust domain>/service/<name>; an
instance serves mutual TLS with them to a Python ssl client holding another service's
certificate; a short certificate lifetime is renewed (the file rewritten); `shoal ca rotate`:
new certificates come from the new CA, old ones verify until the old CA leaves the bundle;
`shoal ca show`; GET /v1/ca, POST /v1/ca/sign (bad input refused); `shoal ps --json` shows
each instance's certificate; shoal server's --trust-domain and an external CA.
SKIPs (77) without the openssl command.
Usage: ca_test.py PATH/TO/shoal [TEST]"""
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal_testlib as lib  # noqa: E402

SHOAL = os.path.abspath(sys.argv[1])
TD = "test.example"

# An instance that serves mutual TLS with its own files, and answers with the URI SAN of the
# client's certificate. It reads the files for every connection, as a service that follows
# renewals does.
TLS_SERVER = r"""
import os, socket, ssl
srv = socket.create_server(("127.0.0.1", int(os.environ["PORT"])))
while True:
    conn, _ = srv.accept()
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.environ["SHOAL_TLS_CERT"], os.environ["SHOAL_TLS_KEY"])
        ctx.load_verify_locations(os.environ["SHOAL_TLS_CA"])
        ctx.verify_mode = ssl.CERT_REQUIRED
        with ctx.wrap_socket(conn, server_side=True) as s:
            peer = s.getpeercert()
            uris = [v for k, v in peer.get("subjectAltName", ()) if k == "URI"]
            s.sendall((" ".join(uris) + "\n").encode())
    except (ssl.SSLError, OSError):
        conn.close()
"""

HOLDER = r"""
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def openssl(*args, stdin=None):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30,
                          input=stdin)


def verify(ca_file, cert_file):
    """Whether `openssl verify -CAfile ca cert` accepts it."""
    out = openssl("verify", "-CAfile", ca_file, cert_file)
    return out.returncode == 0 and out.stdout.strip().endswith(": OK")


def serial_of(cert_file):
    return openssl("x509", "-in", cert_file, "-noout", "-serial").stdout.strip().split("=")[1]


def pem_count(path):
    with open(path) as f:
        return f.read().count("BEGIN CERTIFICATE")


class Stack:
    def __init__(self):
        self.dir = lib.tempdir("shoal-ca-")
        self.cp = lib.free_port()
        self.data = os.path.join(self.dir, ".shoal")
        for name, text in (("tls_server.py", TLS_SERVER), ("holder.py", HOLDER)):
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        with open(os.path.join(self.dir, "shoal.yaml"), "w") as f:
            f.write(f"""
name: catest
services:
  secure:
    command: [python3, tls_server.py]
    port: auto
  client:
    command: [python3, holder.py]
    port: auto
    health: {{http: /, interval: 1s}}
control_plane: {{listen: 127.0.0.1:{self.cp}}}
mesh: {{listen: 127.0.0.1:{lib.free_port()}}}
security: {{trust_domain: {TD}, cert_ttl: 8s}}
""")
        self.env = dict(os.environ, SHOAL_ADDR=f"127.0.0.1:{self.cp}")
        self.env.pop("SHOAL_TOKEN", None)
        self.proc, self.log, healthy = lib.start_up(SHOAL, os.path.join(self.dir, "shoal.yaml"),
                                                    self.env, cwd=self.dir)
        assert healthy.wait(40), "never healthy: " + "".join(self.log[-20:])

    def tls(self, service, name):
        return os.path.join(self.data, "services", service, "tls", f"{service}-1", name)

    def cli(self, *args):
        return subprocess.run([SHOAL, *args, "--data-dir", self.data], capture_output=True,
                              text=True, timeout=30, env=self.env)

    def ps(self):
        rows = json.loads(self.cli("ps", "--json").stdout)
        return {r["id"]: r for r in rows}

    def api(self, method, path, body=None, token=None):
        try:
            with lib.api_open(f"http://127.0.0.1:{self.cp}{path}", data_dir=self.data,
                              token=token, method=method,
                              data=None if body is None else json.dumps(body).encode()) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def handshake(self, service_port):
        """Mutual TLS to the secure instance with the client instance's certificate; returns
        (the server's URI SAN, what the server saw of us)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False  # the identity is the URI SAN, checked below
        ctx.load_verify_locations(self.tls("client", "ca.pem"))
        ctx.load_cert_chain(self.tls("client", "cert.pem"), self.tls("client", "key.pem"))
        with socket.create_connection(("127.0.0.1", service_port), timeout=10) as raw:
            with ctx.wrap_socket(raw) as s:
                peer = s.getpeercert()
                got = s.recv(4096).decode().strip()
        return [v for k, v in peer["subjectAltName"] if k == "URI"], got

    def stop(self):
        lib.terminate(self.proc)


def instance_files(st):
    lib.wait_until(lambda: all("cert" in r for r in st.ps().values()), what="certs in ps")
    ps = st.ps()
    for svc in ("secure", "client"):
        cert, key, ca = (st.tls(svc, n) for n in ("cert.pem", "key.pem", "ca.pem"))
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600, oct(os.stat(key).st_mode)
        assert stat.S_IMODE(os.stat(os.path.dirname(key)).st_mode) == 0o700
        # the instance was given them by name
        with open(f"/proc/{ps[svc + '-1']['pid']}/environ", "rb") as f:
            env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        assert env[b"SHOAL_TLS_CERT"].decode() == cert, env.get(b"SHOAL_TLS_CERT")
        assert env[b"SHOAL_TLS_KEY"].decode() == key and env[b"SHOAL_TLS_CA"].decode() == ca
        assert verify(ca, cert), openssl("verify", "-CAfile", ca, cert)
        text = openssl("x509", "-in", cert, "-noout", "-text").stdout
        assert f"URI:spiffe://{TD}/service/{svc}" in text, text
        assert "CA:FALSE" in text and "Digital Signature" in text, text
        assert "prime256v1" in text or "P-256" in text, text
        # ps --json: identity, serial, expiry (the files may have been renewed since)
        c = st.ps()[f"{svc}-1"]["cert"]
        assert c["identity"] == f"spiffe://{TD}/service/{svc}", c
        assert c["not_after_ms"] - c["issued_ms"] <= 8000, c
    # the CA's key is 0600 in DATA_DIR/ca
    assert stat.S_IMODE(os.stat(os.path.join(st.data, "ca", "ca-1.key")).st_mode) == 0o600


def mutual_tls(st):
    port = st.ps()["secure-1"]["port"]
    server, seen = st.handshake(port)
    assert server == [f"spiffe://{TD}/service/secure"], server
    assert seen == f"spiffe://{TD}/service/client", seen
    # a client without a certificate is refused by the instance
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(st.tls("client", "ca.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw) as s:
                got = s.recv(100)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            got = b""
    assert got == b"", got


def renewal(st):
    cert = st.tls("secure", "cert.pem")
    before, mtime = serial_of(cert), os.stat(cert).st_mtime_ns
    ps_serial = st.ps()["secure-1"]["cert"]["serial"]
    # renewed at 2/3 of 8 s: within 6 s (a generous deadline for a busy machine)
    lib.wait_until(lambda: serial_of(cert) != before, timeout=20, interval=0.2,
                   what="the certificate file to be rewritten")
    assert os.stat(cert).st_mtime_ns != mtime
    after = serial_of(cert)
    assert verify(st.tls("secure", "ca.pem"), cert)
    lib.wait_until(lambda: st.ps()["secure-1"]["cert"]["serial"] == after, what="ps to follow")
    assert ps_serial != after
    assert st.handshake(st.ps()["secure-1"]["port"])[0] == [f"spiffe://{TD}/service/secure"]


def ca_show_and_api(st):
    out = st.cli("ca", "show")
    assert out.returncode == 0, out
    assert f"trust domain  {TD}" in out.stdout and "active" in out.stdout, out.stdout
    o = json.loads(st.cli("ca", "show", "--json").stdout)
    gen = o["active_gen"]
    fp = openssl("x509", "-in", os.path.join(st.data, "ca", f"ca-{gen}.pem"), "-noout",
                 "-fingerprint", "-sha256").stdout.strip().split("=")[1]
    assert fp in out.stdout and f"CN=shoal CA {gen}" in out.stdout, (fp, out.stdout)
    assert o["trust_domain"] == TD and o["cert_ttl_ms"] == 8000, o
    assert [c["state"] for c in o["cas"]] == ["active"] and o["cas"][0]["fingerprint_sha256"] == fp
    # a read token reads it, but may neither sign nor rotate
    reader = st.cli("token", "create", "--scope", "read").stdout.strip()
    assert st.api("GET", "/v1/ca", token=reader)[0] == 200
    assert st.api("POST", "/v1/ca/sign", {"service": "x"}, token=reader)[0] == 403
    assert st.api("POST", "/v1/ca/rotate", token=reader)[0] == 403
    # sign: a leaf for a named service, with its key and the bundle
    code, leaf = st.api("POST", "/v1/ca/sign", {"service": "batch", "ttl": "1h"})
    assert code == 201 and leaf["identity"] == f"spiffe://{TD}/service/batch", (code, leaf)
    d = lib.tempdir("shoal-ca-sign-")
    for k in ("cert", "key", "ca"):
        with open(os.path.join(d, k + ".pem"), "w") as f:
            f.write(leaf[k])
    assert verify(os.path.join(d, "ca.pem"), os.path.join(d, "cert.pem"))
    assert 3500_000 < leaf["not_after_ms"] - leaf["issued_ms"] <= 3600_000, leaf
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain(os.path.join(d, "cert.pem"), os.path.join(d, "key.pem"))  # a pair
    # bad input: a clear error naming the field
    for body, field in (({"service": "Bad_Name"}, "service"), ({"service": ""}, "service"),
                        ({"service": "a" * 64}, "service"), ({}, "service"),
                        ({"service": "x", "ttl": "1ms"}, "ttl"),
                        ({"service": "x", "ttl": "0s"}, "ttl"),
                        ({"service": "x", "ttl": "999d"}, "ttl"),
                        ({"service": "x", "ttl": "soon"}, "ttl"),
                        ({"service": "x", "extra": "1"}, "extra"),
                        ({"service": 5}, "service")):
        code, err = st.api("POST", "/v1/ca/sign", body)
        assert code == 400 and err.get("field") == field, (body, code, err)


def rotation(st):
    d = lib.tempdir("shoal-ca-rot-")
    old = os.path.join(d, "old.pem")
    shutil.copy(st.tls("secure", "cert.pem"), old)
    old_gen = st.ps()["secure-1"]["cert"]["ca_gen"]
    out = st.cli("ca", "rotate", "--json")
    assert out.returncode == 0, out
    o = json.loads(out.stdout)
    states = {c["gen"]: c["state"] for c in o["cas"]}
    assert states == {old_gen + 1: "active", old_gen: "retiring"}, o
    bundle = os.path.join(d, "bundle.pem")
    with open(bundle, "w") as f:
        f.write(o["bundle"])
    # the old leaf still verifies against the bundle during the overlap
    assert verify(bundle, old), openssl("verify", "-CAfile", bundle, old)
    # the instances get new certificates from the new CA at once, and the two-CA bundle
    lib.wait_until(lambda: all(r["cert"]["ca_gen"] == old_gen + 1 for r in st.ps().values()),
                   what="leaves from the new CA")
    lib.wait_until(lambda: pem_count(st.tls("secure", "ca.pem")) == 2, what="the 2-CA bundle")
    new = st.tls("secure", "cert.pem")
    assert verify(bundle, new), openssl("verify", "-CAfile", bundle, new)
    assert verify(st.tls("client", "ca.pem"), new)
    issuer = openssl("x509", "-in", new, "-noout", "-issuer").stdout
    assert f"shoal CA {old_gen + 1}" in issuer, issuer
    assert st.handshake(st.ps()["secure-1"]["port"])[1] == f"spiffe://{TD}/service/client"
    # the old CA leaves the bundle when its last leaf (8 s) has expired; then old leaves fail
    lib.wait_until(lambda: len(json.loads(st.cli("ca", "show", "--json").stdout)["cas"]) == 1,
                   timeout=30, interval=0.2, what="the old CA to retire")
    lib.wait_until(lambda: pem_count(st.tls("secure", "ca.pem")) == 1, what="the 1-CA bundle")
    with open(bundle, "w") as f:
        f.write(json.loads(st.cli("ca", "show", "--json").stdout)["bundle"])
    assert not verify(bundle, old), open(bundle).read()
    assert verify(bundle, st.tls("secure", "cert.pem")), openssl("verify", "-CAfile", bundle, st.tls("secure", "cert.pem"))
    # its files go at the control plane's next second
    lib.wait_until(lambda: not os.path.exists(os.path.join(st.data, "ca", f"ca-{old_gen}.key")),
                   what="the retired CA's key to be removed")


def bad_manifest(_):
    d = lib.tempdir("shoal-ca-bad-")
    for sec, what in (("{cert_ttl: 1s}", "security.cert_ttl"),
                      ("{trust_domain: 'Bad Domain'}", "security.trust_domain"),
                      ("{ca: {cert: x.pem}}", "key"), ("{tls: yes}", "tls")):
        path = os.path.join(d, "shoal.yaml")
        with open(path, "w") as f:
            f.write(f"services:\n  a:\n    command: [sleep, '1']\nsecurity: {sec}\n")
        out = subprocess.run([SHOAL, "check", "-f", path], capture_output=True, text=True,
                             timeout=30)
        assert out.returncode != 0 and what in out.stderr, (sec, out)


def server_flags(_):
    d = lib.tempdir("shoal-ca-srv-")
    port = lib.free_port()
    env = dict(os.environ, SHOAL_ADDR=f"127.0.0.1:{port}")
    env.pop("SHOAL_TOKEN", None)

    def run(*args):
        p = subprocess.Popen([SHOAL, "server", "--data-dir", d, "--listen", f"127.0.0.1:{port}",
                              *args], stderr=subprocess.PIPE, text=True, env=env)
        return p

    p = run("--trust-domain", "one.test")
    try:
        lib.wait_until(lambda: lib.tcp_listening(port), what="the server")
        with lib.api_open(f"http://127.0.0.1:{port}/v1/ca", data_dir=d) as r:
            assert json.loads(r.read())["trust_domain"] == "one.test"
    finally:
        lib.terminate(p)
    # the CA directory is refused for another trust domain: a clear error, nothing changed
    p = run("--trust-domain", "two.test")
    _, err = p.communicate(timeout=30)
    assert p.returncode == 1 and "one.test" in err and "two.test" in err, err
    # an external CA (made with the openssl command) signs; it cannot be rotated
    ext = lib.tempdir("shoal-ca-ext-")
    key, cert = os.path.join(ext, "ca.key"), os.path.join(ext, "ca.pem")
    out = openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-nodes", "-keyout", key, "-out", cert, "-days", "30", "-subj", "/CN=ext CA",
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    assert out.returncode == 0, out
    p = run("--ca-cert", cert, "--ca-key", key, "--trust-domain", "ext.test")
    try:
        lib.wait_until(lambda: lib.tcp_listening(port), what="the server")
        req = json.dumps({"service": "svc"}).encode()
        with lib.api_open(f"http://127.0.0.1:{port}/v1/ca/sign", data_dir=d, data=req,
                          method="POST") as r:
            leaf = json.loads(r.read())
        with open(os.path.join(ext, "leaf.pem"), "w") as f:
            f.write(leaf["cert"])
        assert verify(cert, os.path.join(ext, "leaf.pem"))
        assert leaf["identity"] == "spiffe://ext.test/service/svc"
        out = subprocess.run([SHOAL, "ca", "rotate", "--data-dir", d], capture_output=True,
                             text=True, timeout=30, env=env)
        assert out.returncode == 1 and "409" in out.stderr and "external" in out.stderr, out
        out = subprocess.run([SHOAL, "ca", "show", "--data-dir", d], capture_output=True,
                             text=True, timeout=30, env=env)
        assert "(external CA)" in out.stdout and "CN=ext CA" in out.stdout, out.stdout
    finally:
        lib.terminate(p)


def main():
    if not shutil.which("openssl"):
        print("SKIP: the openssl command is missing (apt-get install openssl)")
        return 77
    only = sys.argv[2] if len(sys.argv) > 2 else None
    checks = lib.Checks()
    # rotation before the 1 h leaf that ca_show_and_api signs: the CA it rotates out
    # retires when its last leaf expires
    st_tests = (instance_files, mutual_tls, renewal, rotation, ca_show_and_api)
    if not only or only in [f.__name__ for f in st_tests]:
        st = Stack()
        try:
            for fn in st_tests:
                if not only or only == fn.__name__:
                    checks.run(fn.__name__, lambda fn=fn: fn(st))
        finally:
            st.stop()
    for fn in (bad_manifest, server_flags):
        if not only or only == fn.__name__:
            checks.run(fn.__name__, lambda fn=fn: fn(None))
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main())
