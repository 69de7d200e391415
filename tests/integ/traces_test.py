#!/usr/bin/env python3
"""Traces through the real binary: span ingest (Zipkin v2 JSON, OTLP/HTTP JSON and protobuf) and
Zipkin's query API on `shoal server`'s admin listener, the span store's file in the data dir,
bad input refused whole, and the CLI (`shoal traces`, `shoal trace ID`).
The tests named test_client_* use real tracers from npm (tests/integ/traces-client): they run
from test_traces_clients.sh, which SKIPs (77) without node and npm.
Everything on 127.0.0.1, bounded in time. Usage: traces_test.py PATH/TO/shoal [TEST...]"""
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal_testlib as lib  # noqa: E402

SHOAL = os.path.abspath(sys.argv[1])
ONLY = sys.argv[2:]
lib.set_binary(SHOAL)
TOKEN = "traces-test-token-0123456789"
CLIENT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "traces-client")


class Server:
    """`shoal server` on an ephemeral port with a temporary data dir."""

    def __init__(self):
        self.dir = lib.tempdir("shoal-traces-")
        self.port = lib.free_port()
        self.addr = f"127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.pop("SHOAL_TOKEN", None)
        self.proc = subprocess.Popen(
            [SHOAL, "server", "--data-dir", self.dir, "--listen", self.addr, "--token", TOKEN],
            stderr=subprocess.PIPE, text=True, env=env)
        self.log = []
        while True:
            line = self.proc.stderr.readline()
            assert line, "server did not start: " + "".join(self.log)
            self.log.append(line)
            if "control plane listening" in line:
                break
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def call(self, method, path, body=None, ctype="application/json", token=TOKEN, timeout=20):
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        req = urllib.request.Request(f"http://{self.addr}{path}", data=data, method=method)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        if data is not None and ctype:
            req.add_header("Content-Type", ctype)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def call_enc(self, method, path, body, ctype, encoding):
        req = urllib.request.Request(f"http://{self.addr}{path}", data=body, method=method,
                                     headers={"Authorization": f"Bearer {TOKEN}",
                                              "Content-Type": ctype,
                                              "Content-Encoding": encoding})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def get_json(self, path):
        st, _, body = self.call("GET", path)
        assert st == 200, f"GET {path}: {st} {body[:300]!r}"
        return json.loads(body)

    def stop(self):
        assert lib.terminate(self.proc), "server did not stop on SIGTERM"
        assert self.proc.returncode == 0, "server exited %s: %s" % (
            self.proc.returncode, "".join(self.log[-5:]))


def hexid(n):
    return "".join(random.choice("0123456789abcdef") for _ in range(n))


def now_us():
    return int(time.time() * 1_000_000)


def zspan(trace, sid, name, svc, ts, dur, parent=None, kind=None, remote=None, tags=None,
          annotations=None):
    s = {"traceId": trace, "id": sid, "name": name, "timestamp": ts, "duration": dur,
         "localEndpoint": {"serviceName": svc, "ipv4": "127.0.0.1", "port": 8080}}
    if parent:
        s["parentId"] = parent
    if kind:
        s["kind"] = kind
    if remote:
        s["remoteEndpoint"] = {"serviceName": remote}
    if tags:
        s["tags"] = tags
    if annotations:
        s["annotations"] = annotations
    return s


def gateway_trace(slow_ms=5, error=False):
    """gateway -> greeter -> names, as the proxies' hops would record it (client + server)."""
    t, ts = hexid(32), now_us()
    g, gc, gr, grc, n = (hexid(16) for _ in range(5))
    dur = slow_ms * 1000
    spans = [
        zspan(t, g, "get /hello", "gateway", ts, dur + 400, kind="SERVER",
              tags={"http.path": "/hello", "http.method": "GET"}),
        zspan(t, gc, "get /hello", "gateway", ts + 50, dur + 300, parent=g, kind="CLIENT",
              remote="greeter"),
        zspan(t, gr, "get /hello", "greeter", ts + 100, dur + 200, parent=gc, kind="SERVER",
              tags={"http.path": "/hello"}),
        zspan(t, grc, "get /names", "greeter", ts + 150, dur, parent=gr, kind="CLIENT",
              remote="names", annotations=[{"timestamp": ts + 160, "value": "retry"}]),
        zspan(t, n, "get /names", "names", ts + 200, dur - 100 if dur > 100 else 1, parent=grc,
              kind="SERVER", tags={"error": "upstream 503"} if error else {"http.status_code": "200"}),
    ]
    return t, spans


def services(srv):
    return srv.get_json("/api/v2/services")


# ---- Zipkin v2 JSON ingest and the query API ---------------------------------------------------
def test_zipkin_ingest_and_query(srv):
    t, spans = gateway_trace(slow_ms=40)
    t2, spans2 = gateway_trace(slow_ms=2, error=True)
    st, _, body = srv.call("POST", "/api/v2/spans", spans + spans2)
    assert st == 202 and body == b"", (st, body)
    trace = lib.wait_until(lambda: srv.call("GET", f"/api/v2/trace/{t}")[0] == 200
                           and srv.get_json(f"/api/v2/trace/{t}"), what="trace stored")
    assert len(trace) == 5, trace
    assert {s["localEndpoint"]["serviceName"] for s in trace} == {"gateway", "greeter", "names"}
    by_id = {s["id"]: s for s in spans}
    for s in trace:
        sent = by_id[s["id"]]
        assert s["traceId"] == t and s.get("parentId") == sent.get("parentId"), s
        assert s["timestamp"] == sent["timestamp"] and s["duration"] == sent["duration"], s
        assert s.get("kind") == sent.get("kind") and s["name"] == sent["name"], s
    assert any(a["value"] == "retry" for s in trace for a in s.get("annotations", [])), trace
    # the services, span names and remote services the UI's drop-downs list
    assert {"gateway", "greeter", "names"} <= set(services(srv))
    assert srv.get_json("/api/v2/spans?serviceName=greeter") == ["get /hello", "get /names"]
    assert srv.get_json("/api/v2/remoteServices?serviceName=greeter") == ["names"]
    # searches: by service, minDuration (µs), annotationQuery, spanName, limit
    found = srv.get_json("/api/v2/traces?serviceName=names&limit=10")
    assert {tr[0]["traceId"] for tr in found} == {t, t2}, found
    slow = srv.get_json("/api/v2/traces?serviceName=greeter&minDuration=30000")
    assert [tr[0]["traceId"] for tr in slow] == [t], slow
    assert srv.get_json("/api/v2/traces?minDuration=100000000") == []
    errs = srv.get_json("/api/v2/traces?annotationQuery=error")
    assert [tr[0]["traceId"] for tr in errs] == [t2], errs
    q = urllib.parse.quote("retry and http.path=/hello")
    both = srv.get_json(f"/api/v2/traces?serviceName=greeter&annotationQuery={q}")
    assert {tr[0]["traceId"] for tr in both} == {t, t2}, both
    assert srv.get_json("/api/v2/traces?spanName=get%20/names&serviceName=gateway") == []
    assert len(srv.get_json("/api/v2/traces?limit=1")) == 1
    # a window in the past holds none of them
    assert srv.get_json("/api/v2/traces?endTs=1000000&lookback=1000") == []
    # dependencies: one call per client/server pair, errors counted on the failing edge
    deps = {(d["parent"], d["child"]): d for d in srv.get_json("/api/v2/dependencies?endTs="
                                                               f"{int(time.time() * 1000)}"
                                                               "&lookback=3600000")}
    assert deps[("gateway", "greeter")]["callCount"] == 2, deps
    assert deps[("greeter", "names")]["callCount"] == 2, deps
    assert deps[("greeter", "names")].get("errorCount") == 1, deps
    assert "errorCount" not in deps[("gateway", "greeter")], deps
    # a 64-bit trace id is kept and answered as 16 hex digits
    t64, ts = hexid(16), now_us()
    st, _, _ = srv.call("POST", "/api/v2/spans", [zspan(t64, hexid(16), "op", "short-ids", ts, 10)])
    assert st == 202
    got = srv.get_json(f"/api/v2/trace/{t64}")
    assert got[0]["traceId"] == t64, got
    # the file is the span store's own, in the data dir
    assert os.path.exists(os.path.join(srv.dir, "traces.sqlite"))


def test_query_errors(srv):
    st, _, body = srv.call("GET", "/api/v2/trace/" + hexid(32))
    assert st == 404, (st, body)
    st, _, body = srv.call("GET", "/api/v2/trace/xyz")
    assert st == 400 and json.loads(body)["field"] == "traceId", body
    st, _, body = srv.call("GET", "/api/v2/traces?minDuration=fast")
    assert st == 400 and json.loads(body)["field"] == "minDuration", body
    st, _, body = srv.call("GET", "/api/v2/traces?limit=0")
    assert st == 400 and json.loads(body)["field"] == "limit", body
    st, _, body = srv.call("GET", "/api/v2/traces?annotationQuery=" + urllib.parse.quote("a and =b"))
    assert st == 400 and json.loads(body)["field"] == "annotationQuery", body
    st, _, body = srv.call("GET", "/api/v2/spans")
    assert st == 400 and json.loads(body)["field"] == "serviceName", body


def test_ingest_needs_the_token(srv):
    t, spans = gateway_trace()
    st, _, body = srv.call("POST", "/api/v2/spans", spans, token=None)
    assert st == 401, (st, body)
    st, _, body = srv.call("POST", "/v1/traces", {"resourceSpans": []}, token=None)
    assert st == 401, (st, body)
    assert srv.call("GET", f"/api/v2/trace/{t}")[0] == 404


# ---- bad input: 400 naming the field, nothing stored ------------------------------------------
def raw_post_head(srv, path, length, ctype="application/json"):
    """Sends only the head of a POST announcing <length> body bytes; returns the status."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall((f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                   f"Content-Type: {ctype}\r\nContent-Length: {length}\r\n\r\n").encode())
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ")[1])


def otlp_json(trace, span, parent="", service="otlp-svc", name="op"):
    t0 = time.time_ns()
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "hand"}, "spans": [{
            "traceId": trace, "spanId": span, "parentSpanId": parent, "name": name, "kind": 2,
            "startTimeUnixNano": str(t0), "endTimeUnixNano": str(t0 + 1_500_000),
            "attributes": [{"key": "http.response.status_code", "value": {"intValue": "200"}}],
            "status": {"code": 0}}]}]}]}


def pb_varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def pb_len(field, payload):
    return pb_varint(field << 3 | 2) + pb_varint(len(payload)) + payload


def otlp_proto(trace, span, service="otlp-pb-svc", name="op"):
    """An ExportTraceServiceRequest written by hand (field numbers of opentelemetry-proto)."""
    t0 = time.time_ns()
    kv = pb_len(1, b"service.name") + pb_len(2, pb_len(1, service.encode()))
    resource = pb_len(1, kv)
    sp = (pb_len(1, trace) + pb_len(2, span) + pb_len(5, name.encode()) + pb_varint(6 << 3) +
          pb_varint(2) + pb_varint(7 << 3 | 1) + t0.to_bytes(8, "little") +
          pb_varint(8 << 3 | 1) + (t0 + 2_000_000).to_bytes(8, "little"))
    scope_spans = pb_len(2, sp)
    return pb_len(1, pb_len(1, resource) + pb_len(2, scope_spans))


def test_bad_input_stores_nothing(srv):
    before = set(services(srv))
    good = zspan(hexid(32), hexid(16), "op", "bad-input-svc", now_us(), 10)
    # Zipkin JSON
    cases = [
        (b"[{", "body"),
        (b'{"traceId": "x"}', "body"),
        (json.dumps([good, dict(good, traceId="abc")]).encode(), "[1].traceId"),
        (json.dumps([good, dict(good, id=hexid(15))]).encode(), "[1].id"),
        (json.dumps([dict(good, parentId=hexid(32))]).encode(), "[0].parentId"),
        (json.dumps([dict(good, traceId=hexid(32).upper())]).encode(), "[0].traceId"),
        (json.dumps([dict(good, kind="SIDEWAYS")]).encode(), "[0].kind"),
        (json.dumps([dict(good, timestamp=-5)]).encode(), "[0].timestamp"),
        (json.dumps([dict(good, tags={"n": 5})]).encode(), "[0].tags.n"),
        (json.dumps([good] * 10001).encode(), "body"),
    ]
    for body, field in cases:
        st, _, reply = srv.call("POST", "/api/v2/spans", body)
        assert st == 400, (field, st, reply)
        assert json.loads(reply)["field"] == field, (field, reply)
    # OTLP JSON
    tr, sp = hexid(32), hexid(16)
    bad_id = otlp_json(tr, sp)
    bad_id["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = hexid(30)
    for body, field in [(b"{oops", "body"), (json.dumps({"resourceSpans": 5}).encode(), "resourceSpans"),
                        (json.dumps(bad_id).encode(),
                         "resourceSpans[0].scopeSpans[0].spans[0].traceId")]:
        st, hdrs, reply = srv.call("POST", "/v1/traces", body)
        assert st == 400, (field, st, reply)
        r = json.loads(reply)
        assert r["field"] == field and r["code"] == 3 and r["message"], reply
    # OTLP protobuf: garbage, a truncated message, a 15-byte trace id
    good_pb = otlp_proto(os.urandom(16), os.urandom(8))
    for body in [b"\xff\xff\xff", good_pb[:-3], otlp_proto(os.urandom(15), os.urandom(8))]:
        st, hdrs, reply = srv.call("POST", "/v1/traces", body, ctype="application/x-protobuf")
        assert st == 400, (st, reply)
        assert hdrs["Content-Type"] == "application/x-protobuf", hdrs
        assert reply[:2] == b"\x08\x03", reply  # google.rpc.Status code 3 (INVALID_ARGUMENT)
    st, _, reply = srv.call("POST", "/v1/traces", b"{}", ctype="text/plain")
    assert st == 415, (st, reply)
    # oversize: refused from the announced length
    assert raw_post_head(srv, "/api/v2/spans", 17 << 20) == 413
    assert raw_post_head(srv, "/v1/traces", 17 << 20, "application/x-protobuf") == 413
    # nothing of the above was stored
    assert set(services(srv)) == before, services(srv)
    assert srv.get_json("/api/v2/traces?serviceName=bad-input-svc") == []


def test_gzip_bodies(srv):
    import gzip
    t, spans = gateway_trace()
    st, _, body = srv.call_enc("POST", "/api/v2/spans", gzip.compress(json.dumps(spans).encode()),
                               "application/json", "gzip")
    assert st == 202, (st, body)
    assert len(srv.get_json(f"/api/v2/trace/{t}")) == 5
    tr, sp = os.urandom(16), os.urandom(8)
    st, hdrs, body = srv.call_enc("POST", "/v1/traces", gzip.compress(otlp_proto(tr, sp)),
                                  "application/x-protobuf", "gzip")
    assert st == 200 and body == b"", (st, body)
    assert srv.get_json(f"/api/v2/trace/{tr.hex()}")[0]["id"] == sp.hex()
    before = set(services(srv))
    # a bomb: 200 MiB of zeros in about 200 KiB; refused at the 64 MiB cap
    bomb = gzip.compress(b"\0" * (200 << 20), compresslevel=9)
    st, _, body = srv.call_enc("POST", "/api/v2/spans", bomb, "application/json", "gzip")
    assert st == 413 and json.loads(body)["field"] == "body", (st, body)
    bad = gzip.compress(json.dumps(spans).encode())
    bad = bad[:20] + bytes([bad[20] ^ 0xFF]) + bad[21:]
    st, _, body = srv.call_enc("POST", "/api/v2/spans", bad, "application/json", "gzip")
    assert st == 400 and json.loads(body)["field"] == "body", (st, body)
    st, hdrs, body = srv.call_enc("POST", "/v1/traces", b"not gzip", "application/x-protobuf",
                                  "gzip")
    assert st == 400 and body[:2] == b"\x08\x03", (st, body)
    st, _, body = srv.call_enc("POST", "/api/v2/spans", b"[]", "application/json", "br")
    assert st == 415 and json.loads(body)["field"] == "Content-Encoding", (st, body)
    assert set(services(srv)) == before


# ---- OTLP written by hand (the real SDKs are in test_client_*) ---------------------------------
def test_otlp_hand_written(srv):
    tr, sp = hexid(32), hexid(16)
    st, hdrs, reply = srv.call("POST", "/v1/traces", otlp_json(tr, sp))
    assert st == 200 and json.loads(reply) == {}, (st, reply)
    got = srv.get_json(f"/api/v2/trace/{tr}")
    assert got[0]["localEndpoint"]["serviceName"] == "otlp-svc" and got[0]["kind"] == "SERVER", got
    assert got[0]["duration"] == 1500 and got[0]["tags"]["http.response.status_code"] == "200", got
    trb, spb = os.urandom(16), os.urandom(8)
    st, hdrs, reply = srv.call("POST", "/v1/traces", otlp_proto(trb, spb),
                               ctype="application/x-protobuf")
    assert st == 200 and reply == b"" and hdrs["Content-Type"] == "application/x-protobuf", (st, reply)
    got = srv.get_json(f"/api/v2/trace/{trb.hex()}")
    assert got[0]["id"] == spb.hex() and got[0]["duration"] == 2000, got
    assert got[0]["localEndpoint"]["serviceName"] == "otlp-pb-svc", got


# ---- the CLI -----------------------------------------------------------------------------------
def shoal_cli(srv, *args):
    p = subprocess.run([SHOAL, *args, "--addr", srv.addr, "--token", TOKEN], capture_output=True,
                       text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def test_cli_traces_and_waterfall(srv):
    t, spans = gateway_trace(slow_ms=120, error=True)
    assert srv.call("POST", "/api/v2/spans", spans)[0] == 202
    rc, out, err = shoal_cli(srv, "traces", "--service", "gateway", "--min", "100ms")
    assert rc == 0, err
    line = next(ln for ln in out.splitlines() if t in ln)
    assert "gateway" in line and "get /hello" in line and "5" in line.split(), line
    assert "error" in line.lower(), line
    rc, out, err = shoal_cli(srv, "traces", "--service", "gateway", "--json", "--limit", "50")
    assert rc == 0, err
    rows = json.loads(out)
    row = next(r for r in rows if r["trace_id"] == t)
    assert row["spans"] == 5 and row["error"] is True and row["root_service"] == "gateway", row
    rc, out, err = shoal_cli(srv, "trace", t)
    assert rc == 0, err
    lines = [ln for ln in out.splitlines() if ln.strip()]
    body = [ln for ln in lines if "get /" in ln]
    assert len(body) == 5, out
    order = ["gateway", "gateway", "greeter", "greeter", "names"]
    for ln, svc in zip(body, order):
        assert svc in ln, (svc, ln)
    # indented by depth: each hop one step further in
    indents = [len(ln) - len(ln.lstrip(" ")) for ln in (ln.split("|")[0] for ln in body)]
    assert indents == sorted(indents) and indents[0] < indents[-1], out
    assert "\x1b[" not in out, "colour on a pipe"
    assert any("ERROR" in ln or "!" in ln for ln in body if "names" in ln), out
    rc, out, err = shoal_cli(srv, "trace", t, "--json")
    assert rc == 0 and len(json.loads(out)) == 5, (rc, err)
    rc, out, err = shoal_cli(srv, "trace", hexid(32))
    assert rc == 1 and "no trace" in err.lower(), (rc, err)
    rc, out, err = shoal_cli(srv, "trace", "nothex")
    assert rc == 2 and "trace id" in err.lower(), (rc, err)


# ---- real tracers from npm ---------------------------------------------------------------------
def send_with_clients(srv, *which):
    p = subprocess.run(["node", "send_traces.js", f"http://{srv.addr}", TOKEN, *which],
                       cwd=CLIENT_DIR, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"send_traces.js failed ({p.returncode}): {p.stderr[-2000:]}"
    return json.loads(p.stdout)


def test_client_otel_and_zipkin_js(srv):
    sent = send_with_clients(srv)
    for name, want_spans, remote in [("otel_json", 3, "inventory"), ("otel_proto", 3, "inventory"),
                                     ("zipkin", 2, "payments")]:
        r = sent[name]
        trace = lib.wait_until(lambda: srv.call("GET", f"/api/v2/trace/{r['traceId']}")[0] == 200
                               and srv.get_json(f"/api/v2/trace/{r['traceId']}"),
                               what=f"{name} trace")
        assert len(trace) == want_spans, (name, trace)
        assert {s["localEndpoint"]["serviceName"] for s in trace} == {r["service"]}, trace
        root = next(s for s in trace if "parentId" not in s)
        assert root["kind"] == "SERVER" and root["duration"] >= 25000, (name, root)
        assert any(s.get("remoteEndpoint", {}).get("serviceName") == remote for s in trace), trace
        if name.startswith("otel"):
            failing = next(s for s in trace if s["name"] == "charge")
            assert failing["tags"]["error"] == "card declined", failing
            assert failing["annotations"][0]["value"] == "retrying", failing
            assert root["tags"]["http.response.status_code"] == "200", root
        # the minDuration search finds it by service; a larger bound does not
        found = srv.get_json(f"/api/v2/traces?serviceName={r['service']}&minDuration=25000")
        assert r["traceId"] in {tr[0]["traceId"] for tr in found}, found
        assert srv.get_json(f"/api/v2/traces?serviceName={r['service']}&minDuration=60000000") == []
    assert {"otel-json-svc", "otel-proto-svc", "zipkin-js-svc"} <= set(services(srv))
    deps = {(d["parent"], d["child"]) for d in srv.get_json("/api/v2/dependencies")}
    assert {("otel-json-svc", "inventory"), ("otel-proto-svc", "inventory"),
            ("zipkin-js-svc", "payments")} <= deps, deps
    errs = srv.get_json("/api/v2/traces?serviceName=otel-proto-svc&annotationQuery=error")
    assert [tr[0]["traceId"] for tr in errs] == [sent["otel_proto"]["traceId"]], errs


# ---- shoal up runs the same store ----------------------------------------------------------
def test_up_stores_spans(_srv):
    d = lib.tempdir("shoal-up-traces-")
    cp, mesh = lib.free_port(), lib.free_port()
    with open(os.path.join(d, "shoal.yaml"), "w") as f:
        f.write(f"""
services:
  web:
    command: [{SHOAL}, echo, --listen, "127.0.0.1:$PORT"]
    port: auto
    health: {{http: /health, interval: 1s}}
control_plane: {{listen: 127.0.0.1:{cp}}}
mesh: {{listen: 127.0.0.1:{mesh}}}
""")
    env = {k: v for k, v in os.environ.items() if k not in ("SHOAL_ADDR", "SHOAL_TOKEN")}
    p, log, healthy = lib.start_up(SHOAL, os.path.join(d, "shoal.yaml"), env)
    data = os.path.join(d, ".shoal")
    try:
        assert healthy.wait(20), "never healthy: " + "".join(log[-5:])
        with open(os.path.join(data, "token")) as f:
            token = f.read().strip()
        t, spans = gateway_trace(slow_ms=3)
        req = urllib.request.Request(f"http://127.0.0.1:{cp}/api/v2/spans",
                                     data=json.dumps(spans).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 202
        out = subprocess.run([SHOAL, "trace", t, "--addr", f"127.0.0.1:{cp}", "--data-dir", data],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and out.stdout.count("get /") == 5, out
        # spans sent right before the stop are written by the store's close
        t2, spans2 = gateway_trace(slow_ms=1)
        req = urllib.request.Request(f"http://127.0.0.1:{cp}/api/v2/spans",
                                     data=json.dumps(spans2).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 202
    finally:
        assert lib.terminate(p, timeout=20), "shoal up did not stop on SIGTERM"
    assert p.returncode == 0, "".join(log[-5:])
    import sqlite3
    db = sqlite3.connect(f"file:{data}/traces.sqlite?mode=ro", uri=True)
    n = db.execute("SELECT count(*) FROM traces WHERE trace_id IN (?, ?)",
                   (bytes.fromhex(t), bytes.fromhex(t2))).fetchone()[0]
    db.close()
    assert n == 2, n


TESTS = [test_zipkin_ingest_and_query, test_query_errors, test_ingest_needs_the_token,
         test_bad_input_stores_nothing, test_gzip_bodies, test_otlp_hand_written, test_cli_traces_and_waterfall,
         test_up_stores_spans, test_client_otel_and_zipkin_js]

if __name__ == "__main__":
    if not ONLY:
        ONLY = [t.__name__ for t in TESTS if not t.__name__.startswith("test_client_")]
    sys.exit(lib.run_tests(TESTS, ONLY, setup=Server))
