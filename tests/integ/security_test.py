#!/usr/bin/env python3
"""The admin API's tokens through the real binary (issue 14, part 1): every route but
GET /v1/status refuses a request without a token (401) and one with an unknown token (403);
scoped tokens (read, write, admin, a key prefix, a TTL) made, listed and revoked with the CLI;
the audit log names who wrote what and holds no secret; under `shoal up` each instance gets its
own token (SHOAL_TOKEN, SHOAL_ADDR) that reads its service's config keys and nothing else.
Usage: security_test.py PATH/TO/shoal [TEST]"""
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
ROOT = "security-test-root-token-0123456789"

# Every route of the admin API's table (src/admin/routes.c) with a request it accepts.
ROUTES = [
    ("GET", "/v1/agent/self"), ("GET", "/v1/catalog/datacenters"), ("GET", "/v1/instances"),
    ("POST", "/v1/stop"), ("GET", "/v1/logs"), ("GET", "/v1/stack"),
    ("POST", "/v1/scale/x"), ("POST", "/v1/restart/x"), ("GET", "/v1/kv/a"),
    ("PUT", "/v1/kv/a"), ("DELETE", "/v1/kv/a"), ("GET", "/v1/config/history/a"),
    ("POST", "/v1/config/rollback/a?index=1"), ("PUT", "/v1/agent/service/register"),
    ("PUT", "/v1/agent/service/deregister/x"), ("PUT", "/v1/agent/check/pass/service:x"),
    ("PUT", "/v1/agent/check/warn/service:x"), ("PUT", "/v1/agent/check/fail/service:x"),
    ("GET", "/v1/catalog/services"), ("GET", "/v1/catalog/service/x"),
    ("GET", "/v1/health/service/x"), ("GET", "/v1/sd/prometheus"), ("GET", "/v1/sd/endpoints/x"),
    ("GET", "/v1/events/services"), ("GET", "/v1/events/kv/a"), ("GET", "/v1/token/self"),
    ("GET", "/v1/tokens"), ("POST", "/v1/tokens"), ("DELETE", "/v1/tokens/x"),
    ("GET", "/v1/audit"), ("GET", "/v1/intentions"), ("POST", "/v1/intentions"),
    ("DELETE", "/v1/intentions/x"), ("GET", "/v1/intentions/check?from=a&to=b"),
    ("GET", "/v1/ca"), ("POST", "/v1/ca/rotate"), ("POST", "/v1/ca/sign"),
]


class Server:
    def __init__(self):
        self.dir = lib.tempdir("shoal-sec-")
        self.port = lib.free_port()
        env = dict(os.environ)
        env.pop("SHOAL_TOKEN", None)
        self.proc = subprocess.Popen([SHOAL, "server", "--data-dir", self.dir, "--listen",
                                      f"127.0.0.1:{self.port}", "--token", ROOT],
                                     stderr=subprocess.DEVNULL, env=env)
        lib.wait_until(lambda: lib.tcp_listening(self.port), what="the server to listen")
        self.env = dict(env, SHOAL_ADDR=f"127.0.0.1:{self.port}")

    def call(self, method, path, body=None, token=None, header="Authorization"):
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method)
        if token:
            req.add_header(header, f"Bearer {token}" if header == "Authorization" else token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def cli(self, *args, token=ROOT):
        return subprocess.run([SHOAL, *args], capture_output=True, text=True, timeout=30,
                              env=dict(self.env, SHOAL_TOKEN=token))

    def stop(self):
        lib.terminate(self.proc)


def every_route_needs_a_token(srv):
    for method, path in ROUTES:
        st, b = srv.call(method, path)
        assert st == 401 and json.loads(b)["field"] == "token", (method, path, st, b)
        st, b = srv.call(method, path, token="shoal_0000000000000000_" + "A" * 32)
        assert st == 403, (method, path, st, b)
    st, b = srv.call("GET", "/v1/status")
    assert st == 200, (st, b)
    # from a non-loopback view nothing changes: loopback reads are not open any more
    st, _ = srv.call("GET", "/v1/kv/a", token=ROOT)
    assert st == 404  # allowed, and absent


def scoped_tokens(srv):
    out = srv.cli("token", "create", "--scope", "read", "--name", "reader")
    assert out.returncode == 0 and out.stdout.startswith("shoal_"), out
    reader = out.stdout.strip()
    assert "shown once" in out.stderr, out.stderr
    out = srv.cli("token", "create", "--scope", "write", "--prefix", "config/app/", "--json")
    assert out.returncode == 0, out
    app = json.loads(out.stdout)
    assert app["scope"] == "write" and app["prefix"] == "config/app/", app
    writer = app["token"]

    assert srv.call("PUT", "/v1/kv/config/app/x", b"1", token=ROOT)[0] == 200
    # read: every read, no write
    assert srv.call("GET", "/v1/kv/config/app/x?raw", token=reader) == (200, b"1")
    assert srv.call("GET", "/v1/catalog/services", token=reader)[0] == 200
    st, b = srv.call("PUT", "/v1/kv/config/app/x", b"2", token=reader)
    assert st == 403 and "scope 'read'" in json.loads(b)["error"], (st, b)
    assert srv.call("GET", "/v1/tokens", token=reader)[0] == 403
    # a prefix: its keys only, read and write, and no other route
    assert srv.call("PUT", "/v1/kv/config/app/y", b"2", token=writer)[0] == 200
    assert srv.call("GET", "/v1/kv/config/app/?recurse", token=writer)[0] == 200
    for method, path in (("PUT", "/v1/kv/config/other/y"), ("GET", "/v1/kv/config/?recurse"),
                         ("GET", "/v1/kv/?keys"), ("GET", "/v1/catalog/services"),
                         ("GET", "/v1/events/kv/config/")):
        st, b = srv.call(method, path, b"x" if method == "PUT" else None, token=writer)
        assert st == 403 and "config/app/" in json.loads(b)["error"], (method, path, st, b)
    assert srv.call("POST", "/v1/tokens", {"scope": "admin"}, token=writer)[0] == 403
    # X-Consul-Token is read as well (Consul clients)
    assert srv.call("GET", "/v1/kv/config/app/y?raw", token=writer,
                    header="X-Consul-Token") == (200, b"2")
    # list shows them without their secrets; revoke ends one at once
    out = srv.cli("token", "list", "--json")
    rows = json.loads(out.stdout)
    assert {r["id"] for r in rows} >= {"root", app["id"]}, rows
    assert reader not in out.stdout and writer not in out.stdout
    assert srv.cli("token", "revoke", app["id"]).returncode == 0
    assert srv.call("GET", "/v1/kv/config/app/y", token=writer)[0] == 403
    # bad input: a clear error, nothing made
    n = len(rows)
    for body, field in (({"scope": "root"}, "scope"), ({"scope": "read", "ttl": "soon"}, "ttl"),
                        ({"scope": "read", "prefix": "a b"}, "prefix"),
                        ({"scope": "read", "extra": "x"}, "extra"), ("[1]", "body")):
        st, b = srv.call("POST", "/v1/tokens", body if isinstance(body, dict) else body.encode(),
                         token=ROOT)
        assert st == 400 and json.loads(b).get("field") == field, (body, st, b)
    bad = srv.cli("token", "create", "--scope", "everything")
    assert bad.returncode == 2 and "--scope" in bad.stderr, bad
    assert len(json.loads(srv.cli("token", "list", "--json").stdout)) == n - 1
    # tokens survive a restart (only their hashes are stored)
    assert srv.call("GET", "/v1/kv/config/app/x", token=reader)[0] == 200
    with open(os.path.join(srv.dir, "store.db"), "rb") as f:  # the store's file
        assert reader.encode() not in f.read()


def expiring_token(srv):
    out = srv.cli("token", "create", "--scope", "read", "--ttl", "1s")
    tok = out.stdout.strip()
    assert out.returncode == 0, out
    assert srv.call("GET", "/v1/catalog/services", token=tok)[0] == 200
    lib.wait_until(lambda: srv.call("GET", "/v1/catalog/services", token=tok)[0] == 401,
                   what="the 1 s token to expire")
    st, b = srv.call("GET", "/v1/catalog/services", token=tok)
    assert "expired" in json.loads(b)["error"], b
    rows = json.loads(srv.cli("token", "list", "--json").stdout)
    assert any(r.get("expired") for r in rows), rows


def audit_log(srv):
    out = srv.cli("token", "create", "--scope", "write", "--name", "auditor")
    tok = out.stdout.strip()
    tid = tok.split("_")[1]
    assert srv.call("PUT", "/v1/kv/audited", b"secret-value-123", token=tok)[0] == 200
    assert srv.call("PUT", "/v1/kv/refused", b"x")[0] == 401
    out = srv.cli("audit", "--json", "--token-id", tid)
    rows = json.loads(out.stdout)
    assert any(r["path"] == "/v1/kv/audited" and r["method"] == "PUT" and r["status"] == 200
               and r["token_name"] == "auditor" for r in rows), rows
    rows = json.loads(srv.cli("audit", "--json").stdout)
    assert any(r["path"] == "/v1/kv/refused" and r["status"] == 401 and r["token"] == ""
               for r in rows), rows
    table = srv.cli("audit", "--since", "1h")
    assert table.returncode == 0 and "/v1/kv/audited" in table.stdout, table
    assert srv.cli("audit", token=tok).returncode == 1  # a write token cannot read it
    # no secret anywhere in it: no token text, no value
    with open(os.path.join(srv.dir, "audit.log")) as f:
        text = f.read()
    assert tok not in text and ROOT not in text and "secret-value-123" not in text


def secret_values(srv):
    out = srv.cli("config", "set", "config/db/password", "hunter2-secret", "--secret")
    assert out.returncode == 0, out
    reader = srv.cli("token", "create", "--scope", "read").stdout.strip()
    own = srv.cli("token", "create", "--scope", "read", "--prefix", "config/db/").stdout.strip()
    # a read token sees that it exists, not the value; raw is refused
    st, b = srv.call("GET", "/v1/kv/config/db/password", token=reader)
    row = json.loads(b)[0]
    assert st == 200 and row["Value"] is None and row["Secret"] is True, (st, b)
    st, b = srv.call("GET", "/v1/kv/config/db/password?raw", token=reader)
    assert st == 403 and "secret" in json.loads(b)["error"], (st, b)
    st, b = srv.call("GET", "/v1/config/history/config/db/password", token=reader)
    assert st == 200 and b"hunter2" not in b and b"aHVudGVy" not in b, b  # nor base64 of it
    # the service's own prefix token, and write/admin tokens, read it
    assert srv.call("GET", "/v1/kv/config/db/password?raw", token=own) == (200, b"hunter2-secret")
    assert srv.call("GET", "/v1/kv/config/db/password?raw", token=ROOT)[1] == b"hunter2-secret"
    got = srv.cli("config", "get", "config/db/password", token=reader)
    assert got.returncode == 1 and "secret" in got.stderr, got
    # a rollback keeps the mark
    srv.cli("config", "set", "config/db/password", "plain-now")
    hist = json.loads(srv.call("GET", "/v1/config/history/config/db/password", token=ROOT)[1])
    old = [h for h in hist if h.get("Secret")][0]["ModifyIndex"]
    assert srv.cli("config", "rollback", "config/db/password", str(old)).returncode == 0
    assert json.loads(srv.call("GET", "/v1/kv/config/db/password", token=reader)[1])[0]["Value"] \
        is None
    # and it is in no log the server keeps
    with open(os.path.join(srv.dir, "audit.log")) as f:
        assert "hunter2" not in f.read()


def intentions_api_and_cli(srv):
    out = srv.cli("intentions", "--json")
    data = json.loads(out.stdout)
    assert data == {"default": "allow", "intentions": []}, data
    add = srv.cli("intention", "deny", "*", "names", "--method", "DELETE", "--json")
    assert add.returncode == 0, add
    rule = json.loads(add.stdout)
    assert rule["action"] == "deny" and rule["methods"] == ["DELETE"], rule
    assert srv.cli("intention", "allow", "greeter", "names").returncode == 0
    again = srv.cli("intention", "allow", "greeter", "names")
    assert again.returncode == 1 and "409" in again.stderr, again
    chk = srv.cli("intention", "check", "other", "names", "--method", "DELETE")
    assert chk.returncode == 1 and "denied" in chk.stdout and rule["id"] in chk.stdout, chk
    # an exact caller goes before '*' (Consul's precedence): greeter's allow decides
    chk = srv.cli("intention", "check", "greeter", "names", "--method", "DELETE")
    assert chk.returncode == 0 and "allow greeter -> names" in chk.stdout, chk
    chk = srv.cli("intention", "check", "greeter", "names")
    assert chk.returncode == 0 and "allow greeter -> names" in chk.stdout, chk
    table = srv.cli("intentions")
    assert "default: allow" in table.stdout and "DELETE" in table.stdout, table
    # bad input names the field, changes nothing
    for body, field in (({"from": "Bad!", "to": "x", "action": "allow"}, "from"),
                        ({"from": "a", "to": "b", "action": "maybe"}, "action"),
                        ({"from": "a", "to": "b", "action": "deny", "methods": ["FETCH"]},
                         "methods"),
                        ({"from": "a", "to": "b", "action": "deny", "paths": ["x"]}, "paths"),
                        ({"from": "a", "to": "b", "action": "deny", "why": "x"}, "why")):
        st, b = srv.call("POST", "/v1/intentions", body, token=ROOT)
        assert st == 400 and json.loads(b)["field"] == field, (body, st, b)
    assert len(json.loads(srv.cli("intentions", "--json").stdout)["intentions"]) == 2
    # a read token reads them, cannot change them
    reader = srv.cli("token", "create", "--scope", "read").stdout.strip()
    assert srv.call("GET", "/v1/intentions", token=reader)[0] == 200
    assert srv.call("POST", "/v1/intentions", {"from": "a", "to": "b", "action": "deny"},
                    token=reader)[0] == 403
    assert srv.cli("intention", "delete", rule["id"]).returncode == 0
    assert srv.cli("intention", "delete", rule["id"]).returncode == 1
    # they survive a restart of the server (API rules are stored)
    ids = {r["id"] for r in json.loads(srv.cli("intentions", "--json").stdout)["intentions"]}
    assert len(ids) == 1


CONFIG_READER = r"""
import http.server, os, urllib.request, urllib.error

def status(path):
    req = urllib.request.Request(f"http://{os.environ['SHOAL_ADDR']}{path}")
    req.add_header("Authorization", "Bearer " + os.environ["SHOAL_TOKEN"])
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return f"{r.status}:{r.read().decode()}"
    except urllib.error.HTTPError as e:
        return str(e.code)

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        svc = os.environ["SHOAL_SERVICE"]
        body = " ".join([status(f"/v1/kv/config/{svc}/greeting?raw"),
                         status("/v1/kv/config/other/secret?raw"),
                         status("/v1/catalog/services")]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def instance_tokens_under_up(_):
    d = lib.tempdir("shoal-sec-up-")
    cp, gw = lib.free_port(), lib.free_port()
    with open(os.path.join(d, "reader.py"), "w") as f:
        f.write(CONFIG_READER)
    with open(os.path.join(d, "shoal.yaml"), "w") as f:
        f.write(f"""
name: sectest
services:
  app:
    command: [python3, reader.py]
    port: auto
    health: {{http: /, interval: 1s}}
    config: {{greeting: hi}}
  other:
    command: [python3, reader.py]
    port: auto
    config: {{secret: s3}}
gateway:
  listen: 127.0.0.1:{gw}
  routes:
    - {{match: {{prefix: /}}, service: app}}
control_plane: {{listen: 127.0.0.1:{cp}}}
mesh: {{listen: 127.0.0.1:{lib.free_port()}}}
""")
    env = dict(os.environ)
    env.pop("SHOAL_TOKEN", None)
    p, log, healthy = lib.start_up(SHOAL, os.path.join(d, "shoal.yaml"), env, cwd=d)
    try:
        assert healthy.wait(30), "never healthy: " + "".join(log[-10:])
        with urllib.request.urlopen(f"http://127.0.0.1:{gw}/", timeout=10) as r:
            got = r.read().decode().split()
        # its own key (the manifest's default, under config/app/), not another's, nothing else
        assert got == ["200:hi", "403", "403"], got
        tokens = json.loads(subprocess.run(
            [SHOAL, "token", "list", "--json", "--addr", f"127.0.0.1:{cp}"], env=env,
            capture_output=True, text=True, timeout=30, cwd=d).stdout)
        inst = [t for t in tokens if t["name"].startswith("instance ")]
        assert sorted(t["name"] for t in inst) == ["instance app-1", "instance other-1"], tokens
        assert all(t["ephemeral"] and t["scope"] == "read" for t in inst), inst
        assert {t["prefix"] for t in inst} == {"config/app/", "config/other/"}, inst
    finally:
        lib.terminate(p)


def main():
    only = sys.argv[2] if len(sys.argv) > 2 else None
    checks = lib.Checks()
    srv = Server()
    try:
        for fn in (every_route_needs_a_token, scoped_tokens, expiring_token, audit_log,
                   secret_values, intentions_api_and_cli):
            if not only or only == fn.__name__:
                checks.run(fn.__name__, lambda fn=fn: fn(srv))
    finally:
        srv.stop()
    if not only or only == "instance_tokens_under_up":
        checks.run("instance_tokens_under_up", lambda: instance_tokens_under_up(None))
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main())
