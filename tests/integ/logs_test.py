#!/usr/bin/env python3
"""The log store through the real `shoal up`: a service prints JSON lines (level, message,
trace id) and plain lines; they are found by a word, by trace id, by level, by service and
instance through GET /v1/logs and `shoal logs`; a request sent through the gateway with a
traceparent leaves access lines of the gateway and the mesh and the service's own line, all
found by that trace id; bad parameters get 400 naming them.
Usage: logs_test.py PATH/TO/shoal"""
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal_testlib as lib  # noqa: E402

SHOAL = os.path.abspath(sys.argv[1])

T_JSON = "4bf92f3577b34da6a3ce929d0e0e4736"  # in the service's JSON line
T_TEXT = "0af7651916cd43dd8448eb211c80319c"  # in a plain line, as trace_id=
T_REQ = "11112222333344445555666677778888"   # sent through the gateway in a traceparent

APP = r"""
import http.server, json, os, sys, urllib.request

print(json.dumps({"level": "error", "msg": "payment marmalade declined",
                  "trace_id": "%s", "span_id": "00f067aa0ba902b7", "order": 42}), flush=True)
print("WARN cache quince is cold trace_id=%s", flush=True)
print("plain porridge line without a level", flush=True)
sys.stderr.write("ERROR stderr gooseberry line\n")
sys.stderr.flush()

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/app/work"):
            tp = self.headers.get("traceparent", "")
            print(json.dumps({"level": "info", "msg": "work received", "traceparent": tp}),
                  flush=True)
            # a call through the mesh (HTTP_PROXY): the mesh's access line carries the trace
            req = urllib.request.Request("http://app/inner", headers={"traceparent": tp})
            with urllib.request.urlopen(req, timeout=5) as r:
                r.read()
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
""" % (T_JSON, T_TEXT)


def main():
    d = lib.tempdir("shoal-logs-")
    gw, cp, mesh = lib.free_port(), lib.free_port(), lib.free_port()
    with open(os.path.join(d, "app.py"), "w") as f:
        f.write(APP)
    with open(os.path.join(d, "shoal.yaml"), "w") as f:
        f.write(f"""
name: logstest
services:
  app:
    command: [python3, app.py]
    port: auto
    health: {{http: /health, interval: 1s}}
gateway:
  listen: 127.0.0.1:{gw}
  routes:
    - {{match: {{prefix: /app}}, service: app}}
control_plane: {{listen: 127.0.0.1:{cp}}}
mesh: {{listen: 127.0.0.1:{mesh}}}
""")
    env = dict(os.environ)
    env.pop("SHOAL_TOKEN", None)
    p, log, healthy = lib.start_up(SHOAL, os.path.join(d, "shoal.yaml"), env)
    checks = lib.Checks(log=lambda: log)
    check = checks.run
    token = {}

    def api(query, expect=200):
        if "t" not in token:
            with open(os.path.join(d, ".shoal", "token")) as f:
                token["t"] = f.read().strip()
        req = urllib.request.Request(f"http://127.0.0.1:{cp}/v1/logs?{query}",
                                     headers={"Authorization": f"Bearer {token['t']}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == expect, r.status
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            assert e.code == expect, (e.code, e.read())
            return json.loads(e.read())

    def q(**params):
        return api(urllib.parse.urlencode(params))

    def cli(*args):
        out = subprocess.run([SHOAL, "logs", *args], env=dict(env, SHOAL_ADDR=f"127.0.0.1:{cp}"),
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, (args, out.stderr)
        return out.stdout

    def cli_json(*args):
        return [json.loads(l) for l in cli(*args, "--json").splitlines()]

    def started():
        assert healthy.wait(30), "never all healthy"
        assert os.path.exists(os.path.join(d, ".shoal", "logs.sqlite"))

    def json_line_by_word():
        rows = lib.wait_until(lambda: q(q="marmalade"), what="the JSON line by a word")
        assert len(rows) == 1, rows
        r = rows[0]
        assert r["service"] == "app" and r["instance"] == "app-1" and r["stream"] == "stdout", r
        assert r["level"] == "error" and r["message"] == "payment marmalade declined", r
        assert r["trace_id"] == T_JSON and r["span_id"] == "00f067aa0ba902b7", r
        assert json.loads(r["line"])["order"] == 42, r  # the raw line as printed
        assert isinstance(r["seq"], int) and r["ms"] > 0, r
        # a word only in the raw JSON, and a prefix
        assert [x["seq"] for x in q(q="order")] == [r["seq"]], q(q="order")
        assert len(q(q="marma*")) == 1

    def by_trace_id():
        rows = q(trace=T_JSON)
        assert [x["message"] for x in rows] == ["payment marmalade declined"], rows
        rows = lib.wait_until(lambda: q(trace=T_TEXT), what="the plain line by its trace id")
        assert len(rows) == 1 and rows[0]["level"] == "warn", rows
        assert rows[0]["line"] == f"WARN cache quince is cold trace_id={T_TEXT}", rows
        # upper case and the trace id as a word of the text find it too
        assert len(q(trace=T_TEXT.upper())) == 1
        assert len(q(q=T_TEXT)) == 1

    def filters():
        lib.wait_until(lambda: q(q="gooseberry"), what="the stderr line")
        levels = {x["message"]: x["level"] for x in q(service="app", level="warn")}
        assert levels.get("payment marmalade declined") == "error", levels
        assert "ERROR stderr gooseberry line" in levels, levels
        assert not any("porridge" in m for m in levels), levels
        rows = q(q="gooseberry")
        assert rows[0]["stream"] == "stderr" and rows[0]["level"] == "error", rows
        assert q(service="nope") == []
        assert len(q(instance="app-1", q="porridge")) == 1
        assert q(instance="app-2", q="porridge") == []
        now = int(time.time() * 1000)
        assert len(q(q="porridge", since="10m")) == 1
        assert q(q="porridge", until=str(now - 3600 * 1000)) == []
        assert len(q(q="porridge", since=str(now - 600 * 1000), until=str(now + 1000))) == 1
        assert len(q(limit="1")) == 1
        # FTS5 operators typed by a user are words, never syntax
        assert q(q="porridge OR marmalade") == []
        assert q(q="AND") == []

    def access_lines_by_trace_id():
        tp = f"00-{T_REQ}-00f067aa0ba902b7-01"
        req = urllib.request.Request(f"http://127.0.0.1:{gw}/app/work",
                                     headers={"traceparent": tp})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200

        def linked():
            rows = q(trace=T_REQ)
            kinds = {(x["service"], x["stream"]) for x in rows}
            want = {("gateway", "access"), ("mesh", "access"), ("app", "stdout")}
            return rows if want <= kinds else None
        rows = lib.wait_until(linked, what="gateway, mesh and app lines of the trace")
        gwl = [x for x in rows if x["service"] == "gateway"][0]
        assert gwl["level"] == "info" and gwl["message"].startswith("GET /app/work 200 "), gwl
        assert json.loads(gwl["line"])["trace_id"] == T_REQ, gwl
        meshl = [x for x in rows if x["service"] == "mesh"][0]
        assert meshl["message"].startswith("GET ") and "/inner 200 " in meshl["message"], meshl
        # the access line's words are searchable
        assert any(x["seq"] == gwl["seq"] for x in q(q="work", service="gateway"))

    def bad_params():
        for params, field in (({"q": '"unbalanced'}, "q"), ({"q": "***"}, "q"),
                              ({"q": "x" * 600}, "q"), ({"level": "loud"}, "level"),
                              ({"trace": "xyz"}, "trace"), ({"limit": "0"}, "limit"),
                              ({"limit": "100000"}, "limit"), ({"since": "soon"}, "since"),
                              ({"until": "-1"}, "until"), ({"after": "x"}, "after"),
                              ({"service": "s" * 200}, "service")):
            body = api(urllib.parse.urlencode(params), expect=400)
            assert body["field"] == field and body["error"], (params, body)

    def cli_search():
        rows = cli_json("--grep", "marmalade")
        assert len(rows) == 1 and rows[0]["trace_id"] == T_JSON, rows
        rows = cli_json("app", "--trace", T_TEXT)
        assert len(rows) == 1 and "quince" in rows[0]["line"], rows
        rows = cli_json("--level", "error", "--since", "10m")
        assert {r["message"] for r in rows} >= {"payment marmalade declined",
                                                 "ERROR stderr gooseberry line"}, rows
        assert all(r["level"] in ("error", "fatal") for r in rows), rows
        text = cli("--trace", T_REQ)
        assert "gateway" in text and "mesh" in text and "app-1" in text, text
        out = subprocess.run([SHOAL, "logs", "--level", "loud"],
                             env=dict(env, SHOAL_ADDR=f"127.0.0.1:{cp}"), capture_output=True,
                             text=True, timeout=10)
        assert out.returncode != 0 and "level" in out.stderr, out
        out = subprocess.run([SHOAL, "logs", "--grep", '"oops'],
                             env=dict(env, SHOAL_ADDR=f"127.0.0.1:{cp}"), capture_output=True,
                             text=True, timeout=10)
        assert out.returncode != 0 and "q" in out.stderr, out

    def follow():
        f = subprocess.Popen([SHOAL, "logs", "-f", "--grep", "work", "--json"],
                             env=dict(env, SHOAL_ADDR=f"127.0.0.1:{cp}"), stdout=subprocess.PIPE,
                             text=True)
        try:
            first = json.loads(f.stdout.readline())  # what is there already
            assert "work" in first["line"], first
            tp = "00-99990000999900009999000099990000-00f067aa0ba902b7-01"
            with urllib.request.urlopen(urllib.request.Request(
                    f"http://127.0.0.1:{gw}/app/work", headers={"traceparent": tp}),
                    timeout=10) as r:
                r.read()
            seen = []
            while not any(r.get("trace_id") == "99990000999900009999000099990000" for r in seen):
                line = f.stdout.readline()
                assert line, "follower ended"
                seen.append(json.loads(line))
        finally:
            f.terminate()
            f.wait(timeout=10)

    def stop_keeps_the_store():
        assert lib.terminate(p, timeout=30), "shoal up did not stop on SIGTERM"
        assert p.returncode == 0, p.returncode
    try:
        check("stack_up_with_a_log_store", started)
        check("json_line_found_by_a_word", json_line_by_word)
        check("lines_found_by_trace_id", by_trace_id)
        check("filters_service_instance_level_time_limit", filters)
        check("access_lines_of_gateway_and_mesh_found_by_trace_id", access_lines_by_trace_id)
        check("bad_parameters_are_400_naming_them", bad_params)
        check("cli_grep_trace_level_since", cli_search)
        check("cli_follow_prints_new_lines", follow)
        check("sigterm_stops_cleanly", stop_keeps_the_store)
    finally:
        lib.terminate(p, timeout=30)
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main())
