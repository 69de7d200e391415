"""The mesh's inbound mTLS listener through the real binary: `shoal gateway` with inbound:
(TLS 1.3, a client certificate from the trust bundle required, the caller taken from the
certificate's SPIFFE ID) in front of `shoal echo`; two CAs (trust domains a.test and b.test) and
SPIFFE leaves made with the openssl command. Clients: Python ssl and openssl s_client.
SKIPs (77) without openssl. Usage: mtls_test.py PATH/TO/shoal [TEST_NAME...]"""
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal_testlib as lib  # noqa: E402

SHOAL = sys.argv[1]
ONLY = sys.argv[2:]
lib.set_binary(SHOAL)


def openssl(*args, check=True, data=b""):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=check,
                          timeout=30)


class Fixture:
    def __init__(self):
        self.dir = d = lib.tempdir("shoal-mtls-")
        for ca in ("caA", "caB"):
            openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", f"{d}/{ca}.key", "-out", f"{d}/{ca}.crt", "-days", "2",
                    "-subj", f"/CN=shoal test {ca}")
        self.leaf("names", "caA", "spiffe://a.test/service/names")
        self.leaf("caller", "caA", "spiffe://a.test/service/caller")
        self.leaf("intruder", "caB", "spiffe://b.test/service/caller")
        self.leaf("gateway", "caA", "spiffe://a.test/service/gateway")
        self.echo = lib.Echo("--name", "names")
        self.port, self.inbound = lib.free_port(), lib.free_port()
        cfg = f"{d}/mesh.yaml"
        with open(cfg, "w") as f:
            f.write(f"""listen: 127.0.0.1:{self.port}
workers: 2
access_log: true
identity: optional
inbound:
  listen: 127.0.0.1:{self.inbound}
  trust_domain: a.test
  client_ca: {d}/caA.crt
  certs:
    - {{cert: {d}/names.crt, key: {d}/names.key}}
clusters:
  - name: names
    endpoints: ["127.0.0.1:{self.echo.port}"]
routes:
  - name: names
    match: {{prefix: /}}
    cluster: names
""")
        self.proc = subprocess.Popen([SHOAL, "gateway", "-c", cfg, "--grace", "1s"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        assert line and json.loads(line)["msg"] == "gateway listening", line
        self.log, self.lines = [], []  # stderr; stdout (the access log, one JSON per request)
        threading.Thread(target=lambda: [self.log.append(x) for x in self.proc.stderr],
                         daemon=True).start()
        threading.Thread(target=lambda: [self.lines.append(x) for x in self.proc.stdout],
                         daemon=True).start()
        # the other side: a gateway (caller "gateway") that calls names over mTLS with its
        # own certificate, and a cluster that expects another identity from the same listener
        self.front = lib.free_port()
        cfg = f"{d}/front.yaml"
        with open(cfg, "w") as f:
            f.write(f"""listen: 127.0.0.1:{self.front}
workers: 1
identities:
  - {{service: gateway, cert: {d}/gateway.crt, key: {d}/gateway.key}}
clusters:
  - name: names
    endpoints: ["127.0.0.1:{self.inbound}"]
    mtls: {{identity: "spiffe://a.test/service/names", ca: {d}/caA.crt}}
  - name: impostor
    endpoints: ["127.0.0.1:{self.inbound}"]
    mtls: {{identity: "spiffe://a.test/service/billing", ca: {d}/caA.crt, server_name: names}}
routes:
  - {{name: impostor, match: {{prefix: /impostor}}, cluster: impostor}}
  - {{name: names, match: {{prefix: /}}, cluster: names}}
""")
        self.fproc = subprocess.Popen([SHOAL, "gateway", "-c", cfg, "--grace", "1s"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True)
        line = self.fproc.stderr.readline()
        assert line and json.loads(line)["msg"] == "gateway listening", line
        self.flog = []
        threading.Thread(target=lambda: [self.flog.append(x) for x in self.fproc.stderr],
                         daemon=True).start()

    def leaf(self, name, ca, uri):
        d = self.dir
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(f"subjectAltName=URI:{uri}\nbasicConstraints=critical,CA:FALSE\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.csr", "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/{ca}.crt", "-CAkey",
                f"{d}/{ca}.key", "-CAcreateserial", "-out", f"{d}/{name}.crt", "-days", "1",
                "-extfile", f"{d}/{name}.ext")

    def context(self, cert):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False  # SPIFFE leaves carry no DNS name; the chain is verified
        ctx.load_verify_locations(f"{self.dir}/caA.crt")
        if cert:
            ctx.load_cert_chain(f"{self.dir}/{cert}.crt", f"{self.dir}/{cert}.key")
        return ctx

    def get(self, cert, headers=None):
        c = http.client.HTTPSConnection("127.0.0.1", self.inbound, timeout=10,
                                        context=self.context(cert))
        try:
            c.request("GET", "/hello", headers={"Host": "names", **(headers or {})})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def access(self):
        rows = []
        for x in list(self.lines):
            try:
                rec = json.loads(x)
            except ValueError:
                continue
            if "caller" in rec and rec.get("route") == "names":
                rows.append(rec)
        return rows

    def stop(self):
        lib.terminate(self.fproc)
        lib.terminate(self.proc)
        self.echo.stop()
        bad = [x for x in self.log + self.flog if "Sanitizer" in x or "runtime error" in x]
        if bad:
            print("FAIL sanitizer report from the gateway:\n" + "".join(self.log[-40:]))
            sys.exit(1)
        shutil.rmtree(self.dir, ignore_errors=True)


def test_caller_certificate_names_the_caller(fx):
    status, _ = fx.get("caller")
    assert status == 200, status
    # a header claiming another caller changes nothing: the certificate decides
    status, _ = fx.get("caller", {"Proxy-Authorization": "Basic Zm9vOmJhcg=="})
    assert status == 200, status
    lib.wait_until(lambda: len([r for r in fx.access() if r["caller"] == "caller"]) >= 2,
                   what="two access log lines with caller=caller")
    assert not [r for r in fx.access() if r["caller"] != "caller"], fx.access()


def test_gateway_calls_other_mesh_with_its_certificate(fx):
    for i in range(3):  # pooled: one handshake serves them all
        c = http.client.HTTPConnection("127.0.0.1", fx.front, timeout=10)
        c.request("GET", f"/from-front/{i}", headers={"Host": "names"})
        r = c.getresponse()
        body = r.read()
        c.close()
        assert r.status == 200, (r.status, body)
    lib.wait_until(lambda: len([r for r in fx.access() if r["caller"] == "gateway"]) >= 3,
                   what="the inbound side naming the caller 'gateway' from its certificate")


def test_wrong_server_identity_refused(fx):
    c = http.client.HTTPConnection("127.0.0.1", fx.front, timeout=10)
    c.request("GET", "/impostor", headers={"Host": "names"})
    r = c.getresponse()
    r.read()
    c.close()
    assert r.status == 502, r.status
    assert not [x for x in fx.access() if "/impostor" in x.get("path", x.get("target", ""))]


def test_sni_picks_service_certificate_and_tls13(fx):
    r = openssl("s_client", "-connect", f"127.0.0.1:{fx.inbound}", "-servername", "names",
                "-CAfile", f"{fx.dir}/caA.crt", "-cert", f"{fx.dir}/caller.crt", "-key",
                f"{fx.dir}/caller.key", "-brief", check=False)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    assert "TLSv1.3" in out, out
    assert "Verification: OK" in out, out
    r = openssl("s_client", "-connect", f"127.0.0.1:{fx.inbound}", "-tls1_2", "-cert",
                f"{fx.dir}/caller.crt", "-key", f"{fx.dir}/caller.key", check=False)
    assert r.returncode != 0, "TLS 1.2 accepted on the inbound listener"


def refused(fx, cert):
    try:
        status, _ = fx.get(cert)
    except (ssl.SSLError, ConnectionError, http.client.HTTPException, OSError):
        return True
    return status != 200  # answered, but never served


def test_no_client_certificate_refused(fx):
    assert refused(fx, None), "a client without a certificate was served"


def test_other_trust_domain_refused(fx):
    assert refused(fx, "intruder"), "a certificate of another CA was served"


def test_plaintext_refused(fx):
    with socket.create_connection(("127.0.0.1", fx.inbound), timeout=10) as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: names\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert not data.startswith(b"HTTP/1.1 200"), data[:80]


if __name__ == "__main__":
    if not shutil.which("openssl"):
        print("SKIP: openssl missing")
        sys.exit(77)
    sys.exit(lib.run_tests([v for k, v in list(globals().items()) if k.startswith("test_")],
                           ONLY, setup=Fixture))
