#!/usr/bin/env python3
"""Traces of real requests through the real `shoal up`: examples/hello's greeter and names
behind the gateway give one trace per request (the gateway's hop, then greeter's call to names
through the mesh, joined because greeter passes `traceparent` on), Zipkin's dependencies API
draws gateway -> greeter and greeter -> names, and `shoal trace ID` prints the hops in order.
test_own_tracer adds a Node service with the OpenTelemetry SDK (tests/integ/traces-client/
traced_service.js): its own SERVER span, sent over OTLP with the instance's SHOAL_TOKEN, joins
the proxy's trace as the child of the gateway's hop (run by test_traces_up_otel.sh, which
SKIPs without node). Everything on 127.0.0.1 ephemeral ports, bounded in time.
Usage: traces_up_test.py PATH/TO/shoal [TEST...]"""
import json
import os
import random
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal_testlib as lib  # noqa: E402

SHOAL = os.path.abspath(sys.argv[1])
ONLY = sys.argv[2:]
lib.set_binary(SHOAL)
HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_DIR = os.path.join(HERE, "traces-client")
EXAMPLES = os.path.join(os.path.dirname(SHOAL), "examples")


def hexid(n):
    return "".join(random.choice("0123456789abcdef") for _ in range(n))


class Stack:
    """`shoal up` of examples/hello (greeter, names) and, with_worker, traced_service.js."""

    def __init__(self, with_worker=False):
        self.dir = lib.tempdir("shoal-traces-up-")
        self.cp, self.gw, self.zipkin = lib.free_port(), lib.free_port(), lib.free_port()
        mesh, gwadmin = lib.free_port(), lib.free_port()
        worker = ""
        routes = ""
        if with_worker:
            worker = f"""
  worker:
    command: [node, {os.path.join(CLIENT_DIR, "traced_service.js")}]
    working_dir: {CLIENT_DIR}
    port: auto
    health: {{http: /health, interval: 1s, start_period: 20s}}
"""
            routes = """
    - name: work
      match: {prefix: /work}
      service: worker
"""
        with open(os.path.join(self.dir, "shoal.yaml"), "w") as f:
            f.write(f"""
services:
  greeter:
    command: {os.path.join(EXAMPLES, "hello-greeter")}
    port: auto
    env: {{GREETING: hello}}
    health: {{http: /health, interval: 1s}}
    depends_on: [names]
  names:
    command: {os.path.join(EXAMPLES, "hello-names")}
    port: auto
    env: {{NAMES_DB: "${{SHOAL_DATA_DIR}}/names.sqlite"}}
    health: {{http: /health, interval: 1s}}
{worker}
gateway:
  listen: 127.0.0.1:{self.gw}
  admin: 127.0.0.1:{gwadmin}
  routes:
    - name: hello
      match: {{prefix: /hello}}
      service: greeter
{routes}
control_plane: {{listen: 127.0.0.1:{self.cp}}}
observe: {{zipkin_port: {self.zipkin}}}
mesh: {{listen: 127.0.0.1:{mesh}}}
""")
        env = {k: v for k, v in os.environ.items() if k not in ("SHOAL_ADDR", "SHOAL_TOKEN")}
        self.proc, self.log, healthy = lib.start_up(SHOAL, os.path.join(self.dir, "shoal.yaml"),
                                                    env)
        self.data = os.path.join(self.dir, ".shoal")
        assert healthy.wait(60), "never healthy: " + "".join(self.log[-10:])
        self.token = lib.token_of(self.data)

    def get_json(self, path, port=None):
        with lib.api_open(f"http://127.0.0.1:{port or self.cp}{path}", token=self.token,
                          timeout=20) as r:
            assert r.status == 200, (path, r.status)
            return json.loads(r.read())

    def through_gateway(self, path, trace):
        parent = hexid(16)
        req = urllib.request.Request(f"http://127.0.0.1:{self.gw}{path}",
                                     headers={"traceparent": f"00-{trace}-{parent}-01"})
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read(), parent

    def trace(self, trace, want):
        """The trace's spans once at least <want> are stored."""
        def got():
            try:
                spans = self.get_json(f"/api/v2/trace/{trace}")
            except urllib.error.HTTPError as e:
                if e.code == 404:
                    return None
                raise
            return spans if len(spans) >= want else None
        return lib.wait_until(got, timeout=20, what=f"{want} spans of trace {trace}")

    def stop(self):
        assert lib.terminate(self.proc, timeout=20), "shoal up did not stop on SIGTERM"
        assert self.proc.returncode == 0, "".join(self.log[-5:])


def by_local(spans, service):
    return [s for s in spans if s.get("localEndpoint", {}).get("serviceName") == service]


def test_hello_one_trace_and_dependencies(_):
    st = Stack()
    try:
        trace = hexid(32)
        status, body, parent = st.through_gateway("/hello", trace)
        assert status == 200, (status, body)
        spans = st.trace(trace, 2)
        gw, gr = by_local(spans, "gateway"), by_local(spans, "greeter")
        assert len(gw) == 1 and len(gr) == 1, json.dumps(spans, indent=1)
        gw, gr = gw[0], gr[0]
        # the gateway's hop continues the caller's trace; greeter's call to names is its child
        assert gw["traceId"] == trace and gw.get("parentId") == parent, gw
        assert gw["remoteEndpoint"]["serviceName"] == "greeter", gw
        assert gr.get("parentId") == gw["id"], (gw, gr)
        assert gr["remoteEndpoint"]["serviceName"] == "names", gr
        assert gw["timestamp"] <= gr["timestamp"], (gw, gr)
        deps = {(d["parent"], d["child"]): d["callCount"]
                for d in st.get_json("/api/v2/dependencies?lookback=600000")}
        assert deps.get(("gateway", "greeter"), 0) >= 1, deps
        assert deps.get(("greeter", "names"), 0) >= 1, deps
        # observe.zipkin_port: Zipkin's API on a port of its own, with the same tokens, and
        # nothing else there
        zdeps = {(d["parent"], d["child"]): d["callCount"]
                 for d in st.get_json("/api/v2/dependencies?lookback=600000", port=st.zipkin)}
        assert zdeps == deps, (zdeps, deps)
        assert len(st.get_json(f"/api/v2/trace/{trace}", port=st.zipkin)) == 2
        for path, token, code in (("/api/v2/services", "", 401), ("/v1/status", st.token, 404),
                                  ("/v1/instances", st.token, 404)):
            try:
                lib.api_open(f"http://127.0.0.1:{st.zipkin}{path}", token=token).close()
                raise AssertionError(f"{path}: answered on the Zipkin port")
            except urllib.error.HTTPError as e:
                assert e.code == code, (path, e.code)
        p = subprocess.run([SHOAL, "trace", trace, "--addr", f"127.0.0.1:{st.cp}", "--token",
                            st.token], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p
        body = [ln for ln in p.stdout.splitlines() if "|" in ln]
        assert len(body) == 2, p.stdout
        # gateway's hop (to greeter), then greeter's (to names), one step further in
        assert body[0].lstrip().startswith("gateway"), p.stdout
        assert body[1].lstrip().startswith("greeter"), p.stdout
        indents = [len(ln) - len(ln.lstrip(" ")) for ln in body]
        assert indents[0] < indents[1], p.stdout
        print(p.stdout, end="")
    finally:
        st.stop()


def test_own_tracer(_):
    st = Stack(with_worker=True)
    try:
        trace = hexid(32)
        status, body, parent = st.through_gateway("/work", trace)
        assert status == 200, (status, body)
        got = json.loads(body)
        # the SDK's export with the instance's token was accepted; the token still only reads
        # its own config keys
        assert got["export"] and all(r["code"] == 0 for r in got["export"]), got
        assert got["readStatus"] == 403, got
        assert got["traceId"] == trace, got
        spans = st.trace(trace, 2)
        gw, wk = by_local(spans, "gateway"), by_local(spans, "worker")
        assert len(gw) == 1 and len(wk) == 1, json.dumps(spans, indent=1)
        gw, wk = gw[0], wk[0]
        assert gw.get("parentId") == parent and gw["remoteEndpoint"]["serviceName"] == "worker"
        # the service's own span is the child of the gateway's hop
        assert got["parentSpanId"] == gw["id"], (got, gw)
        assert wk.get("parentId") == gw["id"] and wk["id"] == got["spanId"], (gw, wk)
        assert wk.get("kind") == "SERVER" and wk["name"] == "get /work", wk
        deps = {(d["parent"], d["child"]) for d in st.get_json("/api/v2/dependencies")}
        assert ("gateway", "worker") in deps, deps
    finally:
        st.stop()


TESTS = [test_hello_one_trace_and_dependencies, test_own_tracer]

if __name__ == "__main__":
    if not ONLY:
        ONLY = ["test_hello_one_trace_and_dependencies"]
    if "test_own_tracer" in ONLY and not shutil.which("node"):
        print("SKIP: node not found")
        sys.exit(77)
    sys.exit(lib.run_tests(TESTS, ONLY))
