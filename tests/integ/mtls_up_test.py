#!/usr/bin/env python3
"""mTLS between two meshes with two real `shoal up` stacks on one machine (issue 14, part 3):
stack B's manifest names stack A's CA (cert + key) as its external CA, so both issue in one trust
domain; B's mesh has an inbound mTLS listener (mesh.inbound) and deny-by-default intentions
allowing caller -> names; A's manifest has remote_services.names (B's inbound address, the
identity B must prove, the bundle). A's caller calls http://names/ by name through A's mesh:
200, and B's access log names the caller "caller" (from the certificate A's mesh presented);
A's other service is refused by B's intentions (403 naming the rule). A plaintext client and a
client with a certificate of another CA are refused by B's inbound listener (openssl s_client,
Python ssl). SKIPs (77) without openssl. Usage: mtls_up_test.py PATH/TO/shoal"""
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal_testlib as lib  # noqa: E402

SHOAL = os.path.abspath(sys.argv[1])

CALLER = r"""
import http.server, json, os, urllib.request, urllib.error

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            out = b"ok"
        else:
            try:
                with urllib.request.urlopen("http://names/data", timeout=5) as r:
                    got = {"status": r.status, "denied_by": None, "body": r.read().decode()}
            except urllib.error.HTTPError as e:
                got = {"status": e.code, "denied_by": e.headers.get("X-Shoal-Denied-By"),
                       "body": e.read().decode(errors="replace")}
            out = json.dumps(got).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *a):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def main():
    if not shutil.which("openssl"):
        print("SKIP: openssl missing")
        return 77
    d = lib.tempdir("shoal-mtls-up-")
    a_dir, b_dir = os.path.join(d, "a"), os.path.join(d, "b")
    os.makedirs(a_dir)
    os.makedirs(b_dir)
    a_gw, a_cp, b_cp, b_in = lib.free_port(), lib.free_port(), lib.free_port(), lib.free_port()
    a_data = os.path.join(a_dir, ".shoal")
    with open(os.path.join(a_dir, "caller.py"), "w") as f:
        f.write(CALLER)
    with open(os.path.join(a_dir, "shoal.yaml"), "w") as f:
        f.write(f"""
name: stack-a
services:
  caller:
    command: [python3, caller.py]
    port: auto
    health: {{http: /health, interval: 1s}}
  other:
    command: [python3, caller.py]
    port: auto
    health: {{http: /health, interval: 1s}}
remote_services:
  names:
    address: 127.0.0.1:{b_in}
    identity: spiffe://shoal.local/service/names
    ca: .shoal/ca/ca-1.pem
gateway:
  listen: 127.0.0.1:{a_gw}
  routes:
    - {{match: {{prefix: /caller}}, service: caller}}
    - {{match: {{prefix: /other}}, service: other}}
control_plane: {{listen: 127.0.0.1:{a_cp}}}
mesh: {{listen: 127.0.0.1:{lib.free_port()}}}
""")
    with open(os.path.join(b_dir, "shoal.yaml"), "w") as f:
        f.write(f"""
name: stack-b
services:
  names:
    command: [{SHOAL}, echo, --listen, "127.0.0.1:$PORT", --name, names]
    port: auto
    health: {{http: /health, interval: 1s}}
control_plane: {{listen: 127.0.0.1:{b_cp}}}
mesh:
  listen: 127.0.0.1:{lib.free_port()}
  inbound: 127.0.0.1:{b_in}
  access_log: true
security:
  ca: {{cert: {a_data}/ca/ca-1.pem, key: {a_data}/ca/ca-1.key}}
  default: deny
  intentions:
    - {{from: caller, to: names, action: allow}}
""".replace("  access_log: true\n", ""))
    env = dict(os.environ)
    env.pop("SHOAL_TOKEN", None)
    for k in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        env.pop(k, None)
    pa, log_a, healthy_a = lib.start_up(SHOAL, os.path.join(a_dir, "shoal.yaml"), env, cwd=a_dir)
    pb, log_b = None, []
    checks = lib.Checks(log=lambda: log_a[-4:] + log_b[-8:])
    try:
        checks.run("stack_a_healthy", lambda: healthy_a.wait(30) or (_ for _ in ()).throw(
            AssertionError("stack A never healthy")))
        pb, log_b, healthy_b = lib.start_up(SHOAL, os.path.join(b_dir, "shoal.yaml"), env,
                                            cwd=b_dir)
        checks.run("stack_b_healthy", lambda: healthy_b.wait(30) or (_ for _ in ()).throw(
            AssertionError("stack B never healthy")))

        def via(name):
            with urllib.request.urlopen(f"http://127.0.0.1:{a_gw}/{name}/call", timeout=10) as r:
                return json.loads(r.read())

        def caller_reaches_names():
            got = via("caller")
            assert got["status"] == 200, got
            got = via("caller")
            assert got["status"] == 200, got
        checks.run("caller_calls_remote_service_by_name_over_mtls", caller_reaches_names)

        def other_refused_by_b():
            got = via("other")
            assert got["status"] == 403 and got["denied_by"] == "default: deny", got
        checks.run("b_intentions_apply_to_a_callers_certificate", other_refused_by_b)

        def plaintext_refused():
            with socket.create_connection(("127.0.0.1", b_in), timeout=10) as s:
                s.sendall(b"GET /data HTTP/1.1\r\nHost: names\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            assert not data.startswith(b"HTTP/1.1 200"), data[:80]
        checks.run("plaintext_refused", plaintext_refused)

        def other_trust_domain_refused():
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{d}/x.key", "-out",
                            f"{d}/x.crt", "-days", "1", "-subj", "/CN=intruder",
                            "-addext", "subjectAltName=URI:spiffe://evil.test/service/caller"],
                           check=True, capture_output=True, timeout=30)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.load_cert_chain(f"{d}/x.crt", f"{d}/x.key")
            served = False
            try:
                with socket.create_connection(("127.0.0.1", b_in), timeout=10) as raw:
                    with ctx.wrap_socket(raw, server_hostname="names") as s:
                        s.sendall(b"GET /data HTTP/1.1\r\nHost: names\r\n\r\n")
                        served = s.recv(64).startswith(b"HTTP/1.1 200")
            except (ssl.SSLError, ConnectionError, OSError):
                pass
            assert not served, "a certificate of another CA was served"
            r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{b_in}",
                                "-servername", "names"], input=b"", capture_output=True,
                               timeout=30)
            out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
            assert "TLSv1.3" in out or "alert" in out, out  # no certificate: refused
        checks.run("other_trust_domain_and_no_certificate_refused", other_trust_domain_refused)
    finally:
        if pb:
            lib.terminate(pb)
        lib.terminate(pa)
    bad = [x for x in log_a + log_b if "Sanitizer" in x or "runtime error" in x]
    checks.result("no_sanitizer_report", not bad, "".join(bad[:20]))
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main())
