#!/usr/bin/env python3
"""Caller identity in the mesh, through the real `shoal up` (docs/observability.md, "Caller
identity"): every instance's proxy URL carries its own credential; unmodified clients (Python
urllib, curl, and examples/hello's greeter with shoal's HTTP client) send it as
Proxy-Authorization; the mesh names the caller in its access log and in the caller label of
shoal_route_requests_total, strips the credential before the callee, answers 407 without one
(identity: required), and a restarted instance's old credential stops working.
Usage: identity_test.py PATH/TO/shoal"""
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal_testlib as lib  # noqa: E402

SHOAL = os.path.abspath(sys.argv[1])
BINDIR = os.environ.get("SHOAL_BINARY_DIR", os.path.dirname(SHOAL))

# caller: GET /call?via=urllib|curl calls http://callee/who through the mesh with nothing but
# the environment shoal gave it; GET /env shows its proxy URL and pid.
CALLER = r"""
import http.server, json, os, subprocess, urllib.error, urllib.parse, urllib.request

class H(http.server.BaseHTTPRequestHandler):
    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path == "/health":
            return self.reply(200, {"ok": True})
        if url.path == "/env":
            return self.reply(200, {"http_proxy": os.environ.get("http_proxy"),
                                    "HTTP_PROXY": os.environ.get("HTTP_PROXY"),
                                    "SHOAL_MESH": os.environ.get("SHOAL_MESH"),
                                    "pid": os.getpid()})
        via = q.get("via", ["urllib"])[0]
        if via == "curl":
            out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "http://callee/who"],
                                 capture_output=True, text=True, timeout=10)
            body, _, code = out.stdout.rpartition("\n")
            return self.reply(200, {"status": int(code or 0), "body": body})
        try:
            with urllib.request.urlopen("http://callee/who", timeout=5) as r:
                return self.reply(200, {"status": r.status, "body": r.read().decode()})
        except urllib.error.HTTPError as e:
            return self.reply(200, {"status": e.code, "body": e.read().decode()})

    def log_message(self, *a):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def main():
    if not shutil.which("curl"):
        print("SKIP: curl is not installed")
        return 77
    greeter = os.path.join(BINDIR, "examples", "hello-greeter")
    names = os.path.join(BINDIR, "examples", "hello-names")
    d = lib.tempdir("shoal-identity-")
    gw, cp, mesh, mesh_adm = lib.free_port(), lib.free_port(), lib.free_port(), lib.free_port()
    gw_adm = lib.free_port()
    with open(os.path.join(d, "caller.py"), "w") as f:
        f.write(CALLER)
    with open(os.path.join(d, "shoal.yaml"), "w") as f:
        f.write(f"""
name: identity
services:
  callee:
    command: [{SHOAL}, echo, --listen, "127.0.0.1:$PORT", --name, callee]
    port: auto
    health: {{http: /health, interval: 1s}}
  caller:
    command: [python3, caller.py]
    port: auto
    health: {{http: /health, interval: 1s}}
    stop_grace: 1s
    depends_on: [callee]
  names:
    command: [{names}]
    port: auto
    env: {{NAMES_DB: "${{SHOAL_DATA_DIR}}/names.sqlite"}}
    health: {{http: /health, interval: 1s}}
  greeter:
    command: [{greeter}]
    port: auto
    health: {{http: /health, interval: 1s}}
    depends_on: [names]
gateway:
  listen: 127.0.0.1:{gw}
  admin: 127.0.0.1:{gw_adm}
  routes:
    - {{name: caller, match: {{prefix: /caller}}, service: caller, rewrite_prefix: /}}
    - {{name: hello, match: {{prefix: /hello}}, service: greeter}}
control_plane: {{listen: 127.0.0.1:{cp}}}
mesh:
  listen: 127.0.0.1:{mesh}
  admin: 127.0.0.1:{mesh_adm}
  identity: required
  tracing: {{sample: 0, slow: 10s}}   # only traces a caller sampled, and errors
""")
    env = dict(os.environ)
    env.pop("SHOAL_TOKEN", None)
    for k in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        env.pop(k, None)
    out_path = os.path.join(d, "stdout.log")
    out = open(out_path, "w")
    log = []
    p = subprocess.Popen([SHOAL, "up", "-f", os.path.join(d, "shoal.yaml")], env=env,
                         stdout=out, stderr=subprocess.PIPE, text=True, cwd=d)
    import threading
    healthy = threading.Event()

    def drain():
        for line in p.stderr:
            log.append(line)
            if "all instances healthy" in line:
                healthy.set()
    threading.Thread(target=drain, daemon=True).start()
    checks = lib.Checks(log=lambda: log)
    check = checks.run
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def fetch(url, headers=None, opener=direct):
        req = urllib.request.Request(url, headers=headers or {})
        try:
            with opener.open(req, timeout=10) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def metric(name, labels, port=mesh_adm):
        _, _, text = fetch(f"http://127.0.0.1:{port}/metrics")
        want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
                       if labels else "")
        for line in text.splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return 0.0

    def access_log():
        """The mesh's access lines, from the log store (shoal up keeps them there)."""
        with lib.api_open(f"http://127.0.0.1:{cp}/v1/logs?service=mesh&limit=1000",
                          os.path.join(d, ".shoal")) as r:
            rows = json.loads(r.read())
        return [json.loads(row["line"]) for row in rows
                if row["line"].startswith("{") and '"caller"' in row["line"]]

    def caller_env():
        status, _, body = fetch(f"http://127.0.0.1:{gw}/caller/env")
        assert status == 200, (status, body)
        return json.loads(body)

    def all_healthy():
        assert healthy.wait(30), "never all healthy"
    check("all_healthy", all_healthy)

    def every_instance_has_its_own_credential():
        e = caller_env()
        assert e["http_proxy"] == e["HTTP_PROXY"] == e["SHOAL_MESH"], e
        assert re.fullmatch(rf"http://caller\.1:[0-9a-f]{{32}}@127\.0\.0\.1:{mesh}",
                            e["http_proxy"]), e
        # the secret is never written to shoal's own log
        secret = e["http_proxy"].split(":")[2].split("@")[0]
        assert not any(secret in l for l in log), "secret in shoal's log"
    check("every_instance_has_its_own_credential", every_instance_has_its_own_credential)

    def via(tool):
        before = metric("shoal_route_requests_total",
                        {"route": "callee", "caller": "caller", "class": "2xx"})
        status, _, body = fetch(f"http://127.0.0.1:{gw}/caller/call?via={tool}")
        assert status == 200, (status, body)
        got = json.loads(body)
        assert got["status"] == 200, got
        echo = json.loads(got["body"])
        assert echo["served_by"] == "callee", echo
        heads = {k.lower() for k in echo["headers"]}
        assert "proxy-authorization" not in heads, echo["headers"]  # stripped by the mesh
        lib.wait_until(lambda: metric("shoal_route_requests_total",
                                      {"route": "callee", "caller": "caller",
                                       "class": "2xx"}) >= before + 1,
                       what=f"the mesh to count the {tool} call under caller=caller")
        lib.wait_until(lambda: [r for r in access_log() if r["route"] == "callee" and
                                r["caller"] == "caller" and r["caller_instance"] == "caller-1"],
                       what="the mesh's access log line naming caller-1")
    check("python_urllib_sends_the_credential", lambda: via("urllib"))
    check("curl_sends_the_credential", lambda: via("curl"))

    def greeter_sends_the_credential():
        status, _, body = fetch(f"http://127.0.0.1:{gw}/hello")
        assert status == 200, (status, body)  # identity is required: names answered greeter
        lib.wait_until(lambda: metric("shoal_route_requests_total",
                                      {"route": "names", "caller": "greeter",
                                       "class": "2xx"}) >= 1,
                       what="the mesh to count greeter -> names")
    check("examples_greeter_sends_the_credential", greeter_sends_the_credential)

    def no_or_forged_credential_gets_407():
        mesh_url = f"http://127.0.0.1:{mesh}/who"
        status, heads, body = fetch(mesh_url, {"Host": "callee"})
        assert status == 407, (status, body)
        assert heads.get("Proxy-Authenticate") == 'Basic realm="shoal-mesh"', heads
        assert json.loads(body)["error"] == "Proxy Authentication Required", body
        forged = base64.b64encode(b"caller.1:" + b"0" * 32).decode()
        status, _, body = fetch(mesh_url, {"Host": "callee",
                                           "Proxy-Authorization": "Basic " + forged})
        assert status == 407 and "wrong password" in body, (status, body)
        # a header naming a caller is not an identity
        status, _, body = fetch(mesh_url, {"Host": "callee", "X-Shoal-Caller": "caller"})
        assert status == 407, (status, body)
        # the gateway's own requests are the caller "gateway" in its metrics (it is not asked)
        assert metric("shoal_route_requests_total",
                      {"route": "callee", "caller": "unknown", "class": "4xx"}) == 0
    check("no_or_forged_credential_gets_407", no_or_forged_credential_gets_407)

    def restart_gets_a_new_credential_and_the_old_one_dies():
        old = caller_env()
        os.kill(old["pid"], signal.SIGKILL)  # the process layer restarts it
        lib.wait_until(lambda: caller_env()["pid"] != old["pid"], timeout=30,
                       what="the caller to be restarted", retry_on=(AssertionError,
                                                                    urllib.error.URLError,
                                                                    ConnectionError))
        new = caller_env()
        assert new["http_proxy"] != old["http_proxy"], (old, new)
        assert new["http_proxy"].startswith("http://caller.1:"), new
        stale = urllib.request.build_opener(urllib.request.ProxyHandler({"http": old["http_proxy"]}))
        status, _, body = fetch("http://callee/who", opener=stale)
        assert status == 407, (status, body)
        fresh = urllib.request.build_opener(urllib.request.ProxyHandler({"http": new["http_proxy"]}))
        status, _, body = fetch("http://callee/who", opener=fresh)
        assert status == 200 and json.loads(body)["served_by"] == "callee", (status, body)
        status, _, body = fetch(f"http://127.0.0.1:{gw}/caller/call?via=urllib")
        assert status == 200 and json.loads(body)["status"] == 200, body
    check("restart_gets_a_new_credential_and_the_old_one_dies",
          restart_gets_a_new_credential_and_the_old_one_dies)

    def spans_per_hop():
        def spans(port):
            return metric("shoal_spans_recorded_total", {}, port)
        g0, m0 = spans(gw_adm), spans(mesh_adm)
        # the gateway samples every trace it starts (default 1.0); greeter passes the gateway's
        # traceparent on, so the mesh keeps its greeter -> names span at a 0 head rate
        status, _, _ = fetch(f"http://127.0.0.1:{gw}/hello")
        assert status == 200
        assert spans(gw_adm) >= g0 + 1, "no gateway span"
        assert spans(mesh_adm) == m0 + 1, (m0, spans(mesh_adm))
        # the caller does not pass traceparent on: its call starts a trace at the mesh, which
        # a 0 head rate does not keep...
        status, _, body = fetch(f"http://127.0.0.1:{gw}/caller/call?via=urllib")
        assert status == 200 and json.loads(body)["status"] == 200, body
        assert spans(mesh_adm) == m0 + 1, (m0, spans(mesh_adm))
        # ...but an error is kept whatever the rate
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": caller_env()["http_proxy"]}))
        status, _, body = fetch("http://nosuch/x", opener=opener)
        assert status == 503, (status, body)
        assert spans(mesh_adm) == m0 + 2, (m0, spans(mesh_adm))
        assert metric("shoal_spans_dropped_total", {}, mesh_adm) == 0
        assert metric("shoal_spans_dropped_total", {}, gw_adm) == 0
    check("spans_per_hop_sampled_errors_kept", spans_per_hop)

    def stop():
        assert lib.terminate(p, timeout=15), "shoal up did not stop"
    check("stop", stop)
    out.close()
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main())
