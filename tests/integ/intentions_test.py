#!/usr/bin/env python3
"""Intentions enforced by the real `shoal up` (issue 14, part 4): a deny-by-default stack where
the manifest allows the gateway in and caller -> back; other -> back is refused with 403 naming
the rule; an intention added with the CLI under load applies to new requests within a second;
a more specific deny (methods) wins over the general allow; refusals are in the access log.
Usage: intentions_test.py PATH/TO/shoal"""
import json
import os
import subprocess
import sys
import time
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
            # through the mesh, by name, with nothing but the environment shoal gave us
            try:
                with urllib.request.urlopen("http://back/data", timeout=5) as r:
                    got = {"status": r.status, "denied_by": None}
            except urllib.error.HTTPError as e:
                got = {"status": e.code, "denied_by": e.headers.get("X-Shoal-Denied-By")}
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
    d = lib.tempdir("shoal-intent-")
    gw, cp = lib.free_port(), lib.free_port()
    with open(os.path.join(d, "caller.py"), "w") as f:
        f.write(CALLER)
    with open(os.path.join(d, "shoal.yaml"), "w") as f:
        f.write(f"""
name: intents
services:
  back:
    command: [{SHOAL}, echo, --listen, "127.0.0.1:$PORT", --name, back]
    port: auto
    health: {{http: /health, interval: 1s}}
  caller:
    command: [python3, caller.py]
    port: auto
    health: {{http: /health, interval: 1s}}
  other:
    command: [python3, caller.py]
    port: auto
    health: {{http: /health, interval: 1s}}
gateway:
  listen: 127.0.0.1:{gw}
  routes:
    - {{match: {{prefix: /caller}}, service: caller}}
    - {{match: {{prefix: /other}}, service: other}}
    - {{match: {{prefix: /back}}, service: back}}
control_plane: {{listen: 127.0.0.1:{cp}}}
mesh: {{listen: 127.0.0.1:{lib.free_port()}}}
security:
  default: deny
  intentions:
    - {{from: gateway, to: caller, action: allow}}
    - {{from: gateway, to: other, action: allow}}
    - {{from: caller, to: back, action: allow}}
""")
    env = dict(os.environ)
    env.pop("SHOAL_TOKEN", None)
    for k in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        env.pop(k, None)
    p, log, healthy = lib.start_up(SHOAL, os.path.join(d, "shoal.yaml"), env, cwd=d)
    checks = lib.Checks(log=lambda: log)
    data_dir = os.path.join(d, ".shoal")

    def via(name):
        with urllib.request.urlopen(f"http://127.0.0.1:{gw}/{name}/call", timeout=10) as r:
            return json.loads(r.read())

    def cli(*args):
        return subprocess.run([SHOAL, *args, "--addr", f"127.0.0.1:{cp}"], env=env, cwd=d,
                              capture_output=True, text=True, timeout=30)

    try:
        checks.run("healthy", lambda: healthy.wait(30) or (_ for _ in ()).throw(
            AssertionError("never healthy")))

        def allowed_and_denied():
            assert via("caller") == {"status": 200, "denied_by": None}, via("caller")
            got = via("other")
            assert got["status"] == 403 and got["denied_by"] == "default: deny", got
            # the gateway's own call to a service no rule lets it reach
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{gw}/back/x", timeout=10)
                raise AssertionError("gateway -> back was allowed")
            except urllib.error.HTTPError as e:
                assert e.code == 403 and e.headers["X-Shoal-Denied-By"] == "default: deny", e
        checks.run("deny_by_default_refuses_and_names_the_rule", allowed_and_denied)

        def change_applies_within_a_second():
            stop, results = [False], []

            def load():
                while not stop[0]:
                    results.append((time.monotonic(), via("other")["status"]))
            import threading
            t = threading.Thread(target=load)
            t.start()
            try:
                lib.wait_until(lambda: len(results) > 5, what="load on other -> back")
                out = cli("intention", "allow", "other", "back")
                t_change = time.monotonic()
                assert out.returncode == 0, out
                lib.wait_until(lambda: any(s == 200 and ts > t_change for ts, s in results),
                               what="other -> back allowed")
                first = min(ts for ts, s in results if s == 200 and ts > t_change)
                # every call that started a second after the change was allowed
                late = [s for ts, s in results if ts > t_change + 1.0]
                lib.wait_until(lambda: len([1 for ts, _ in results if ts > t_change + 1.0]) > 5,
                               what="calls after the change")
                late = [s for ts, s in results if ts > t_change + 1.0]
                assert set(late) == {200}, late[:20]
                print(f"    first allowed call {1000 * (first - t_change):.0f} ms after the CLI "
                      f"returned; {len(late)} calls after 1 s all allowed")
            finally:
                stop[0] = True
                t.join(timeout=20)
        checks.run("an_intention_change_under_load_applies_within_1s",
                   change_applies_within_a_second)

        def specific_deny_wins():
            out = cli("intention", "deny", "caller", "back", "--method", "GET", "--json")
            assert out.returncode == 0, out
            rid = json.loads(out.stdout)["id"]
            got = lib.wait_until(lambda: (lambda g: g if g["status"] == 403 else None)(
                via("caller")), what="caller -> back GET denied")
            assert got["denied_by"] == f"intention {rid}: deny caller -> back", got
            assert cli("intention", "delete", rid).returncode == 0
            lib.wait_until(lambda: via("caller")["status"] == 200, what="allowed again")
        checks.run("a_specific_deny_goes_before_the_general_allow", specific_deny_wins)

        def refusals_in_the_access_log():
            def denied():
                with lib.api_open(f"http://127.0.0.1:{cp}/v1/logs?service=mesh&q=denied&limit=50",
                                  data_dir) as r:
                    rows = json.loads(r.read())
                return [json.loads(x["line"]) for x in rows if '"denied_by"' in x["line"]]
            rows = lib.wait_until(denied, what="a denied_by access line")
            assert any(r["status"] == 403 and r["caller"] == "other" and
                       r["denied_by"] == "default: deny" for r in rows), rows[:3]
        checks.run("refusals_are_in_the_access_log", refusals_in_the_access_log)
    finally:
        lib.terminate(p)
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main())
