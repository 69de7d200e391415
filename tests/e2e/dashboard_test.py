#!/usr/bin/env python3
"""The dashboard against examples/hello under `shoal up` on free ports: the /ui/ assets and
their headers, the session and CSRF contract of the API, then the browser run
(dashboard_test.mjs, playwright-core + chromium) with the stack's admin address and token.
Usage: dashboard_test.py PATH/TO/shoal (test_dashboard.sh sets SHOAL_CHROMIUM and
SHOAL_E2E_ARTIFACTS)."""
import gzip
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integ"))
import shoal_testlib as lib  # noqa: E402

SHOAL = os.path.abspath(sys.argv[1])


def http(url, method="GET", body=None, headers=None):
    """(status, headers, body bytes); errors are answers too."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def main():
    d = lib.tempdir("shoal-e2e-")
    ports = {p: lib.free_port() for p in ("8080", "8081", "7700", "7701")}
    with open(os.path.join(ROOT, "examples/hello/shoal.yaml")) as f:
        text = f.read()
    for fixed, free in ports.items():
        text = text.replace(f"127.0.0.1:{fixed}", f"127.0.0.1:{free}")
    text = text.replace("../../build/examples/", os.path.join(os.path.dirname(SHOAL), "examples") + "/")
    manifest = os.path.join(d, "shoal.yaml")
    with open(manifest, "w") as f:
        f.write(text)
    env = dict(os.environ)
    env.pop("SHOAL_TOKEN", None)
    proc, log, healthy = lib.start_up(SHOAL, manifest, env)
    checks = lib.Checks(log=lambda: log)
    admin = f"http://127.0.0.1:{ports['7700']}"
    gw = f"http://127.0.0.1:{ports['8080']}"
    try:
        assert healthy.wait(90), "shoal up never said all instances healthy"
        token = lib.token_of(os.path.join(d, ".shoal"))
        auth = {"Authorization": f"Bearer {token}"}

        def api(path, method="GET", body=None, headers=None):
            return http(admin + path, method, body, {**auth, **(headers or {})})

        def login(tok):
            st, h, b = http(admin + "/ui/login", "POST", json.dumps({"token": tok}).encode(),
                            {"Content-Type": "application/json"})
            assert st == 200, (st, b)
            cookie = h["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie, cookie
            return cookie.split(";")[0], json.loads(b)["csrf"]

        def assets():
            st, h, b = http(admin + "/ui/")
            assert st == 200 and h["Content-Type"].startswith("text/html"), (st, h)
            csp = h["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
            assert h["X-Content-Type-Options"] == "nosniff"
            assert b"app.js" in b
            st, h, b = http(admin + "/ui/app.js", headers={"Accept-Encoding": "gzip"})
            assert st == 200 and h["Content-Type"].startswith("text/javascript"), (st, h)
            assert h["Content-Encoding"] == "gzip" and len(gzip.decompress(b)) > len(b)
            st, _, _ = http(admin + "/ui/app.js", headers={"If-None-Match": h["ETag"]})
            assert st == 304, st
            st, h, _ = http(admin + "/ui/app.css")
            assert st == 200 and h["Content-Type"].startswith("text/css"), h
            class NoRedirect(urllib.request.HTTPRedirectHandler):
                def redirect_request(self, *args):
                    return None
            try:
                urllib.request.build_opener(NoRedirect).open(admin + "/ui", timeout=10)
                raise AssertionError("GET /ui was not redirected")
            except urllib.error.HTTPError as e:
                assert e.code == 301 and e.headers["Location"] == "/ui/", e.code
        checks.run("the /ui/ assets: CSP, types, gzip, ETag/304", assets)

        def session_csrf():
            cookie, csrf = login(token)
            c = {"Cookie": cookie}
            st, _, b = http(admin + "/v1/token/self", headers=c)
            assert st == 200 and json.loads(b)["id"] == "root", (st, b)
            st, _, b = http(admin + "/v1/kv/config/e2e/x", "PUT", b"1", c)
            assert st == 403 and json.loads(b)["field"] == "X-Shoal-CSRF", (st, b)
            st, _, b = http(admin + "/v1/kv/config/e2e/x", "PUT", b"1", {**c, "X-Shoal-CSRF": "0" * 48})
            assert st == 403, (st, b)
            st, _, b = http(admin + "/v1/kv/config/e2e/x", "PUT", b"1", {**c, "X-Shoal-CSRF": csrf})
            assert st == 200 and b.strip() == b"true", (st, b)
            st, _, b = http(admin + "/ui/session", headers=c)
            assert st == 200 and json.loads(b)["csrf"] == csrf, (st, b)
            st, _, _ = http(admin + "/ui/logout", "POST", b"", c)
            assert st == 403, st  # logout needs the CSRF value too
            st, h, _ = http(admin + "/ui/logout", "POST", b"", {**c, "X-Shoal-CSRF": csrf})
            assert st == 200 and "Max-Age=0" in h["Set-Cookie"], st
            st, _, b = http(admin + "/v1/token/self", headers=c)
            assert st == 401 and json.loads(b)["field"] == "session", (st, b)
            st, _, b = http(admin + "/ui/session", headers=c)
            assert json.loads(b) == {"logged_in": False}, b
            st, _, b = http(admin + "/ui/login", "POST", b'{"token": "shoal_0000000000000000_nope"}')
            assert st == 403, (st, b)
            st, _, b = http(admin + "/ui/login", "POST", b'{}')
            assert st == 400 and json.loads(b)["field"] == "token", (st, b)
        checks.run("session cookie: writes need X-Shoal-CSRF (403 without), logout ends it", session_csrf)

        def read_token():
            st, _, b = api("/v1/tokens", "POST", b'{"scope": "read", "name": "e2e-read"}')
            assert st == 201, (st, b)
            made = json.loads(b)
            cookie, csrf = login(made["token"])
            c = {"Cookie": cookie, "X-Shoal-CSRF": csrf}
            st, _, b = http(admin + "/v1/scale/greeter", "POST", b'{"replicas": 3}', c)
            assert st == 403 and b"scope 'read'" in b, (st, b)
            st, _, _ = api("/v1/tokens/" + made["id"], "DELETE")
            assert st == 200
            st, _, b = http(admin + "/v1/stack", headers={"Cookie": cookie})
            assert st == 401, (st, b)  # revoking the token ends its sessions
        checks.run("a read token's session cannot write; revoking ends it", read_token)

        def traffic():
            def both():
                for _ in range(5):
                    http(gw + "/hello")
                st, _, b = api("/v1/topology")
                return st == 200 and any(e["source"] == "greeter" and e["target"] == "names"
                                         for e in json.loads(b)["edges"])
            lib.wait_until(both, timeout=30, what="the greeter -> names edge")
            for v in (b"v1", b"v2"):
                st, _, b = api("/v1/kv/config/greeter/greeting", "PUT", v)
                assert st == 200, (st, b)
        checks.run("traffic through the gateway; two config versions", traffic)

        def browser():
            st, _, b = api("/v1/tokens", "POST", b'{"scope": "read", "name": "e2e-ui-read"}')
            assert st == 201, (st, b)
            benv = dict(env, SHOAL_ADMIN=admin, SHOAL_TOKEN_TEXT=token, SHOAL_BIN=SHOAL,
                        SHOAL_READ_TOKEN=json.loads(b)["token"],
                        SHOAL_ADDR=f"127.0.0.1:{ports['7700']}", SHOAL_GW=gw)
            r = subprocess.run(["node", os.path.join(HERE, "dashboard_test.mjs")], env=benv,
                               timeout=240, capture_output=True, text=True)
            sys.stdout.write(r.stdout)
            sys.stderr.write(r.stderr)
            assert r.returncode == 0, f"dashboard_test.mjs exited {r.returncode}"
            st, _, b = api("/v1/kv/config/greeter/greeting?raw")
            assert st == 200 and b == b"v1", (st, b)  # the rollback took effect
        checks.run("the browser run (dashboard_test.mjs)", browser)
    finally:
        lib.terminate(proc, timeout=20)
    sys.exit(checks.summary())


if __name__ == "__main__":
    main()
