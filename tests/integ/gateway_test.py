#!/usr/bin/env python3
"""The gateway through the real binary: `shoal gateway` in front of `shoal echo` upstreams and
raw Python upstreams, all on 127.0.0.1. Usage: gateway_test.py PATH/TO/shoal [TEST_NAME...]"""
import collections
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal_testlib as lib  # noqa: E402
from shoal_testlib import Echo, Reader, get  # noqa: E402

SHOAL = sys.argv[1]
ONLY = sys.argv[2:]
lib.set_binary(SHOAL)



class Gateway:
    """A `shoal gateway` process with a config written to a temp dir."""

    def __init__(self, config, workers=2, expect_fail=False):
        self.dir = lib.tempdir("shoal-gw-")
        self.path = os.path.join(self.dir, "gateway.yaml")
        self.port = lib.free_port()
        self.admin = lib.free_port()
        self.workers = workers
        self.write(config)
        self.proc = subprocess.Popen([SHOAL, "gateway", "-c", self.path, "--grace", "2s"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.log = []
        self.access = []
        if expect_fail:
            return
        line = self.proc.stderr.readline()
        assert line, "gateway did not start: " + self.proc.stderr.read()
        rec = json.loads(line)
        assert rec["msg"] == "gateway listening", line
        threading.Thread(target=self._drain, args=(self.proc.stderr, self.log), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.proc.stdout, self.access),
                         daemon=True).start()

    def header(self):
        return (f"listen: 127.0.0.1:{self.port}\nworkers: {self.workers}\n"
                f"admin: 127.0.0.1:{self.admin}\n")

    def write(self, config):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(self.header() + config)
        os.rename(tmp, self.path)  # the way editors save: the gateway watches the directory

    @staticmethod
    def _drain(stream, into):
        for line in stream:
            into.append(line)

    def wait_log(self, text, timeout=lib.WAIT):
        return lib.wait_until(lambda: next((l for l in list(self.log) if text in l), None),
                              timeout, f"a log line with {text!r}; log: {''.join(self.log[-5:])}")

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def request(self, path, method="GET", headers=None, body=None, conn=None):
        c = conn or self.conn()
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        if conn is None:
            c.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data

    def metrics(self):
        c = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=5)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def rss_peak_kib(self):
        return lib.proc_status_kib(self.proc.pid, "VmHWM")

    def rss_kib(self):
        return lib.proc_status_kib(self.proc.pid, "VmRSS")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("the gateway did not stop within 10s of SIGTERM")
            # a graceful stop exits 0: anything else (an abort, a sanitizer report) fails
            assert self.proc.returncode == 0, \
                f"gateway exited {self.proc.returncode}: {''.join(self.log[-10:])}"


class Upstreams:
    """Echo servers named e0, e1, ... on fixed ports (so one can be restarted in place)."""

    def __init__(self, n, *args):
        self.ports = [lib.free_port() for _ in range(n)]
        self.args = args
        self.procs = [Echo("--name", f"e{i}", *args, listen=f"127.0.0.1:{p}")
                      for i, p in enumerate(self.ports)]

    def endpoints(self):
        return "[" + ", ".join(f"127.0.0.1:{p}" for p in self.ports) + "]"

    def kill9(self, i):
        self.procs[i].proc.kill()
        self.procs[i].proc.wait()

    def restart(self, i, *args):
        self.procs[i] = Echo("--name", f"e{i}", *(args or self.args),
                             listen=f"127.0.0.1:{self.ports[i]}")

    def stop(self):
        for e in self.procs:
            e.stop()


def served_by(body):
    return json.loads(body)["served_by"]


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


# ---------------------------------------------------------------------------------------------
@test
def routes_and_actions(_):
    ups = Upstreams(1)
    gw = Gateway(f"""
clusters:
  - name: up
    endpoints: {ups.endpoints()}
routes:
  - name: hello
    match: {{path: /hello}}
    respond: {{status: 200, body: "hi\\n", content_type: text/plain}}
  - match: {{prefix: /old}}
    redirect: {{status: 301, location: /new}}
  - match: {{prefix: /only-post, methods: [POST]}}
    cluster: up
  - match: {{prefix: /canary, headers: {{X-Canary: "1"}}}}
    respond: {{status: 200, body: canary}}
  - match: {{glob: /files/*/raw}}
    respond: {{status: 200, body: glob}}
  - match: {{prefix: /api/, host: "*.example.com"}}
    rewrite_prefix: /
    cluster: up
    request_headers: {{add: {{X-Added: yes-it-is}}, remove: [X-Secret]}}
    response_headers: {{add: {{X-From-Gateway: "1"}}}}
""")
    try:
        st, h, body = gw.request("/hello")
        assert (st, h["content-type"], body) == (200, "text/plain", b"hi\n"), (st, h, body)
        st, h, _ = gw.request("/old/x")
        assert st == 301 and h["location"] == "/new", (st, h)
        st, h, body = gw.request("/nothing")
        assert st == 404 and json.loads(body)["error"] == "Not Found", (st, body)
        assert gw.request("/only-post")[0] == 404
        assert gw.request("/only-post", method="POST", body=b"x")[0] == 200
        assert gw.request("/canary")[0] == 404
        assert gw.request("/canary", headers={"X-Canary": "1"})[2] == b"canary"
        assert gw.request("/files/a/raw")[2] == b"glob"
        assert gw.request("/files/a/b/raw")[0] == 404  # '*' stays in one segment
        st, h, body = gw.request("/api/v1/x?q=1",
                                 headers={"Host": "shop.example.com", "X-Secret": "s",
                                          "X-Request-Id": "given-id-1"})
        seen = json.loads(body)
        assert st == 200 and seen["target"] == "/v1/x?q=1", seen
        assert seen["headers"]["X-Added"] == "yes-it-is" and "X-Secret" not in seen["headers"]
        assert seen["headers"]["X-Forwarded-For"] == "127.0.0.1", seen["headers"]
        assert seen["headers"]["X-Request-Id"] == "given-id-1"
        assert h["x-request-id"] == "given-id-1" and h["x-from-gateway"] == "1", h
        assert gw.request("/api/v1/x", headers={"Host": "example.org"})[0] == 404
        # a generated request id reaches the upstream and the client
        st, h, body = gw.request("/api/x", headers={"Host": "a.example.com"})
        assert len(h["x-request-id"]) == 36 and h["x-request-id"][14] == "4"  # UUIDv4
        up = json.loads(body)["headers"]
        assert up["X-Request-Id"] == h["x-request-id"]
        # W3C trace context: a new trace, or the caller's continued with a new span id
        tp = up["traceparent"].split("-")
        assert len(tp) == 4 and tp[0] == "00" and len(tp[1]) == 32 and len(tp[2]) == 16, tp
        caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        up = json.loads(gw.request("/api/x", headers={"Host": "a.example.com",
                                                       "traceparent": caller,
                                                       "tracestate": "congo=t61rcWkgMzE"})[2])
        tp = up["headers"]["traceparent"].split("-")
        assert tp[1] == "0af7651916cd43dd8448eb211c80319c" and tp[2] != "b7ad6b7169203331", tp
        assert tp[3] == "01" and up["headers"]["tracestate"] == "congo=t61rcWkgMzE"
        # one access log line per request, as JSON (written after the response: wait for it)
        def logged(pred):
            return lambda: any(pred(json.loads(line)) for line in list(gw.access))
        lib.wait_until(logged(lambda r: r["route"] == "hello" and r["status"] == 200),
                       what="the access log line of /hello")
        lib.wait_until(logged(lambda r: r["cluster"] == "up" and r["endpoint"]),
                       what="an access log line with cluster and endpoint")
        lib.wait_until(logged(lambda r: r["trace_id"] == "0af7651916cd43dd8448eb211c80319c"),
                       what="the access log line with the caller's trace id")
    finally:
        gw.stop()
        ups.stop()


def _spread(gw, n, conn=None, headers=None, path="/"):
    c = conn or gw.conn()
    count = collections.Counter()
    for _ in range(n):
        st, _, body = gw.request(path, conn=c, headers=headers)
        assert st == 200, (st, body)
        count[served_by(body)] += 1
    return count


@test
def load_balancing_policies(_):
    ups = Upstreams(3)
    eps = ups.ports
    gw = Gateway(f"""
clusters:
  - name: rr
    endpoints: {ups.endpoints()}
  - name: wrr
    lb: weighted
    endpoints:
      - {{address: 127.0.0.1:{eps[0]}, weight: 1}}
      - {{address: 127.0.0.1:{eps[1]}, weight: 2}}
      - {{address: 127.0.0.1:{eps[2]}, weight: 3}}
  - name: rnd
    lb: random
    endpoints: {ups.endpoints()}
  - name: ring
    lb: ring_hash
    hash_on: header:X-User
    endpoints: {ups.endpoints()}
  - name: mag
    lb: maglev
    hash_on: cookie:session
    endpoints: {ups.endpoints()}
  - name: least
    lb: least_request
    endpoints: {ups.endpoints()}
  - name: a
    endpoints: [127.0.0.1:{eps[0]}]
  - name: b
    endpoints: [127.0.0.1:{eps[1]}]
routes:
  - {{match: {{prefix: /rr}}, cluster: rr}}
  - {{match: {{prefix: /wrr}}, cluster: wrr}}
  - {{match: {{prefix: /rnd}}, cluster: rnd}}
  - {{match: {{prefix: /ring}}, cluster: ring}}
  - {{match: {{prefix: /mag}}, cluster: mag}}
  - {{match: {{prefix: /least}}, cluster: least}}
  - match: {{prefix: /split}}
    split: [{{cluster: a, weight: 90}}, {{cluster: b, weight: 10}}]
""", workers=1)
    try:
        rr = _spread(gw, 300, path="/rr")
        assert sorted(rr.values()) == [100, 100, 100], rr
        wrr = _spread(gw, 600, path="/wrr")
        assert (wrr["e0"], wrr["e1"], wrr["e2"]) == (100, 200, 300), wrr
        rnd = _spread(gw, 600, path="/rnd")
        assert all(140 <= v <= 260 for v in rnd.values()) and len(rnd) == 3, rnd
        least = _spread(gw, 300, path="/least")
        assert len(least) == 3, least
        users = collections.defaultdict(set)
        for u in range(30):
            for _ in range(3):
                st, _, body = gw.request("/ring", headers={"X-User": f"user{u}"})
                users[u].add(served_by(body))
        assert all(len(v) == 1 for v in users.values()), users  # sticky
        assert len(set().union(*users.values())) >= 2  # and spread
        sess = collections.defaultdict(set)
        for u in range(30):
            for _ in range(3):
                st, _, body = gw.request("/mag", headers={"Cookie": f"a=1; session=s{u}"})
                sess[u].add(served_by(body))
        assert all(len(v) == 1 for v in sess.values()) and len(set().union(*sess.values())) >= 2
        split = _spread(gw, 1000, path="/split")
        assert 50 <= split["e1"] <= 160 and split["e0"] + split["e1"] == 1000, split
    finally:
        gw.stop()
        ups.stop()


@test
def kill9_of_one_upstream_fails_no_get_and_it_returns(_):
    ups = Upstreams(3)
    gw = Gateway(f"""
clusters:
  - name: up
    endpoints: {ups.endpoints()}
    outlier: {{consecutive_errors: 1, base_ejection: 1s}}
    health: {{path: /health, interval: 200ms, timeout: 200ms, healthy_threshold: 1,
              unhealthy_threshold: 1}}
routes:
  - {{match: {{prefix: /}}, cluster: up}}
""")
    failures = []
    done = collections.Counter()

    def load(n):
        c = gw.conn()
        for _ in range(n):
            try:
                st, _, body = gw.request("/x", conn=c)
                if st != 200:
                    failures.append((st, body))
                else:
                    done[served_by(body)] += 1
            except Exception as exc:  # noqa: BLE001
                failures.append(repr(exc))
                c = gw.conn()
            time.sleep(0.002)
    try:
        threads = [threading.Thread(target=load, args=(300,)) for _ in range(4)]
        for t in threads:
            t.start()
        lib.wait_until(lambda: sum(done.values()) >= 40 or failures,
                       what="the load to be running before the kill")
        ups.kill9(1)
        for t in threads:
            t.join(timeout=60)
        assert not failures, failures[:5]
        assert sum(done.values()) == 1200
        # back: restart on the same port; health checks and the ejection's end let it in again
        ups.restart(1)
        lib.wait_until(lambda: _spread(gw, 20)["e1"] > 0, what="e1 to get traffic again")
    finally:
        gw.stop()
        ups.stop()


@test
def ejected_endpoint_returns_once_its_check_passes(_):
    """Issue 10: a killed upstream restarted on its port stayed outlier-ejected for the whole
    ejection time. A passing active health check returns it at once; the cluster breaker (the
    default: error ratio over requests after retries) never opens for one dead endpoint."""
    ups = Upstreams(3)
    gw = Gateway(f"""
clusters:
  - name: up
    endpoints: {ups.endpoints()}
    outlier: {{consecutive_errors: 1, base_ejection: 120s}}
    health: {{path: /health, interval: 200ms, timeout: 200ms, healthy_threshold: 1,
              unhealthy_threshold: 50}}
routes:
  - {{match: {{prefix: /}}, cluster: up}}
""", workers=1)
    try:
        ups.kill9(1)
        c = gw.conn()
        for _ in range(60):
            st, _, body = gw.request("/x", conn=c)
            assert st == 200, (st, body)
        m = gw.metrics()
        assert m['shoal_cluster_ejections_total{cluster="up"}'] >= 1, m
        assert m['shoal_cluster_breaker_open{cluster="up"}'] == 0, m
        assert m["shoal_gateway_fast_fails_total"] == 0, m
        ups.restart(1)
        t0 = time.monotonic()
        lib.wait_until(lambda: _spread(gw, 30)["e1"] > 0, interval=0.05,
                       what="the restarted endpoint back long before its 120 s ejection ends")
        print(f"    back in rotation {time.monotonic() - t0:.2f} s after its restart")
    finally:
        gw.stop()
        ups.stop()


@test
def panic_threshold_routes_to_all_when_too_few_are_left(_):
    """Three of four upstreams die. Ejection takes them out one by one; with the default
    panic_threshold (50%) the third ejection would leave 25%, so the cluster routes to all four
    again (the dead ones keep getting attempts, retried elsewhere); with panic_threshold: 0
    only the live one gets traffic once all three are out. No GET fails either way."""
    def dead_attempts(gw, ports):
        m = gw.metrics()
        return sum(m.get(f'shoal_endpoint_requests_total{{cluster="up",endpoint="127.0.0.1:{p}",'
                         f'class="error"}}', 0) for p in ports)

    for panic, keeps_trying in (("50", True), ("0", False)):
        ups = Upstreams(4)
        gw = Gateway(f"""
clusters:
  - name: up
    endpoints: {ups.endpoints()}
    retry: {{max: 3, budget: 100%, min_per_second: 1000, backoff: 1ms, backoff_max: 2ms}}
    outlier: {{consecutive_errors: 1, base_ejection: 120s, max_ejection_percent: 100,
              panic_threshold: {panic}}}
routes:
  - {{match: {{prefix: /}}, cluster: up}}
""", workers=1)
        try:
            for i in (1, 2, 3):
                ups.kill9(i)
            dead = ups.ports[1:]
            c = gw.conn()
            for _ in range(40):  # ejects the three, whatever the order
                st, _, body = gw.request("/x", conn=c)
                assert st == 200, (panic, st, body)
            before = dead_attempts(gw, dead)
            for _ in range(40):
                st, _, body = gw.request("/x", conn=c)
                assert st == 200, (panic, st, body)
            after = dead_attempts(gw, dead)
            assert (after > before) == keeps_trying, (panic, before, after)
        finally:
            gw.stop()
            ups.stop()


@test
def breaker_opens_fails_fast_half_opens_and_closes(_):
    ups = Upstreams(1, "--status", "503")
    gw = Gateway(f"""
clusters:
  - name: up
    endpoints: {ups.endpoints()}
    retry: {{max: 0}}
    outlier: {{consecutive_errors: 0}}
    breaker: {{consecutive_failures: 3, open: 1s}}
routes:
  - {{match: {{prefix: /}}, cluster: up}}
""", workers=1)
    # The open window is checked without trusting wall time on a busy machine: the gateway's
    # own answers (X-Shoal-Breaker, the fast-fail counter) say whether the breaker was open,
    # and a probe's answer arriving >= 1s after the request that opened it is a lower bound
    # that only an early half-open can break.
    def probe():
        """(sent, answered) of the first request the breaker lets through, else None."""
        t_sent = time.monotonic()
        st, h, _ = gw.request("/x")
        return None if h.get("x-shoal-breaker") == "open" else (t_sent, time.monotonic(), st)
    try:
        for i in range(3):
            t_open = time.monotonic()  # before the request whose failure opens the breaker
            st, h, _ = gw.request("/x")
            assert st == 503 and "x-shoal-breaker" not in h, (st, h)
        fast = gw.metrics().get("shoal_gateway_fast_fails_total", 0)
        st, h, _ = gw.request("/x")
        assert st == 503 and h.get("x-shoal-breaker") == "open", (st, h)
        # failed fast, without asking the upstream: counted as such
        assert gw.metrics()["shoal_gateway_fast_fails_total"] == fast + 1
        # still failing when half-open: the probe goes through, and it opens again
        t_sent, t_answered, st = lib.wait_until(probe, what="the breaker to let a probe through")
        assert st == 503, st
        assert t_answered - t_open >= 0.99, \
            f"half-open {t_answered - t_open:.3f}s after opening, before open: 1s"
        assert gw.request("/x")[1].get("x-shoal-breaker") == "open"
        t_open = t_sent
        # the upstream recovers: the next probe closes the breaker
        ups.kill9(0)
        ups.restart(0, "--status", "200")
        t_sent, t_answered, st = lib.wait_until(
            lambda: (lambda r: r if r and r[2] == 200 else None)(probe()),
            what="a probe to reach the recovered upstream and close the breaker")
        assert t_answered - t_open >= 0.99, \
            f"half-open {t_answered - t_open:.3f}s after opening again, before open: 1s"
        assert all(gw.request("/x")[0] == 200 for _ in range(5))
        assert gw.metrics()["shoal_gateway_fast_fails_total"] >= 2
    finally:
        gw.stop()
        ups.stop()


@test
def an_answer_that_cannot_be_retried_reaches_the_client_whole(_):
    """A retryable status (here 503 with on: [5xx]) on a request that may not be retried (a
    POST) is the upstream's own answer: its body reaches the client (it used to be replaced by
    the gateway's own JSON error)."""
    ups = Upstreams(1, "--status", "503")
    gw = Gateway(f"""
clusters:
  - name: up
    endpoints: {ups.endpoints()}
    retry: {{max: 2, on: [5xx, 409]}}
routes:
  - {{match: {{prefix: /}}, cluster: up}}
""", workers=1)
    try:
        st, h, body = gw.request("/x", method="POST", body=b"hello")
        assert st == 503 and served_by(body) == "e0", (st, body)  # echo's body, not ours
        assert gw.metrics()["shoal_gateway_retries_total"] == 0
    finally:
        gw.stop()
        ups.stop()


@test
def retry_budget_caps_amplification(_):
    ups = Upstreams(2, "--status", "503")
    gw = Gateway(f"""
clusters:
  - name: up
    endpoints: {ups.endpoints()}
    retry: {{max: 3, on: [5xx], backoff: 1ms, backoff_max: 2ms, budget: 20%,
             min_per_second: 1}}
    outlier: {{consecutive_errors: 0}}
    breaker: {{consecutive_failures: 0, error_ratio: 0}}
routes:
  - {{match: {{prefix: /}}, cluster: up}}
""", workers=1)
    try:
        c = gw.conn()
        n = 400
        for _ in range(n):
            assert gw.request("/x", conn=c)[0] == 503
        m = gw.metrics()
        retries = m["shoal_gateway_retries_total"]
        amplification = (n + retries) / n
        print(f"    {n} requests, {retries:.0f} retries: amplification {amplification:.2f} "
              f"(3 retries each would be 4.00)")
        assert retries >= 20, retries  # retries do happen
        assert amplification <= 1.3, amplification
    finally:
        gw.stop()
        ups.stop()


@test
def slow_upstream_gives_504(_):
    ups = Upstreams(1, "--delay", "2s")
    gw = Gateway(f"""
clusters:
  - name: up
    endpoints: {ups.endpoints()}
    timeouts: {{per_try: 300ms, request: 1s}}
    retry: {{max: 0}}
routes:
  - {{match: {{prefix: /}}, cluster: up}}
""")
    try:
        t0 = time.monotonic()
        st, _, body = gw.request("/slow")
        took = time.monotonic() - t0
        # 504, not the upstream's 200 after 2 s: a timeout fired before the upstream answered;
        # and not before the 300 ms per-try timeout (no upper bound on a busy machine's time)
        assert st == 504, (st, body)
        assert took > 0.29, took
    finally:
        gw.stop()
        ups.stop()


class RawUpstream:
    """Accepts connections and answers every request with fixed bytes; records what arrives."""

    def __init__(self, answer):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.answer = answer
        self.received = b""
        self.conns = 0
        self.running = True
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while self.running:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        c.settimeout(5)
        try:
            data = c.recv(65536)
            self.received += data
            if data and self.answer:
                c.sendall(self.answer)
            time.sleep(0.1)
        except OSError:
            pass
        c.close()

    def stop(self):
        self.running = False
        self.sock.close()


@test
def malformed_upstream_response_gives_502(_):
    up = RawUpstream(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello")
    gw = Gateway(f"""
clusters:
  - name: up
    endpoints: [127.0.0.1:{up.port}]
    retry: {{max: 0}}
routes:
  - {{match: {{prefix: /}}, cluster: up}}
""")
    try:
        st, _, body = gw.request("/x")
        assert st == 502 and b"malformed" in body, (st, body)
    finally:
        gw.stop()
        up.stop()


@test
def cluster_idle_timeout_closes_pooled_connections(_):
    up = Echo("--name", "up")
    gw = Gateway(f"""
clusters:
  - name: short
    endpoints: [127.0.0.1:{up.port}]
    timeouts: {{idle: 300ms}}
  - name: long
    endpoints: [127.0.0.1:{up.port}]
routes:
  - {{match: {{prefix: /short}}, cluster: short}}
  - {{match: {{prefix: /long}}, cluster: long}}
""", workers=1)
    try:
        def peer(path):
            st, _, body = gw.request(path)
            assert st == 200, (st, body)
            return json.loads(body)["peer"]
        a = peer("/long")
        assert peer("/long") == a, "the pooled connection was not reused"
        t_sent = time.monotonic()
        b = peer("/short")  # the same address, other settings: a pool of its own
        assert b != a, "the short cluster reused the long cluster's connection"
        # the kernel's view of the gateway's connections to the upstream: long's and short's,
        # until the short pool's idle timeout closes its one
        assert lib.tcp_established(up.port) == 2, lib.tcp_established(up.port)
        lib.wait_until(lambda: lib.tcp_established(up.port) == 1,
                       what="the short cluster's idle connection to close")
        idle = time.monotonic() - t_sent
        assert idle >= 0.29, f"closed after {idle:.3f}s idle, before idle: 300ms"
        c = peer("/short")
        assert c != b, f"still the same upstream connection ({c}) after its idle timeout"
        # the long cluster's pool kept its own 60 s idle timeout meanwhile
        assert peer("/long") == a, "the short cluster's idle: 300ms closed the long one's connection"
    finally:
        gw.stop()
        up.stop()


@test
def smuggling_vectors_never_reach_the_upstream(_):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from http_server_test import SMUGGLING
    up = RawUpstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    gw = Gateway(f"""
clusters:
  - name: up
    endpoints: [127.0.0.1:{up.port}]
routes:
  - {{match: {{prefix: /}}, cluster: up}}
""")
    try:
        for name, raw, want in SMUGGLING:
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
            s.sendall(raw + get("/after"))
            r = Reader(s)
            st, h, _ = r.response()
            assert st == want, f"{name}: {st} != {want}"
            assert r.closed(), f"{name}: connection left open"
            s.close()
        assert up.conns == 0 and up.received == b"", (up.conns, up.received[:200])
        # the path to the upstream works (so the check above is not vacuous), and what reached
        # it is this one request only
        st, _, body = gw.request("/sentinel")
        assert (st, body) == (200, b"ok"), (st, body)
        assert up.conns == 1 and up.received.startswith(b"GET /sentinel ") and \
            up.received.count(b"HTTP/1.1\r\n") == 1, (up.conns, up.received[:300])
    finally:
        gw.stop()
        up.stop()


@test
def rate_limit_gives_429_with_retry_after(_):
    ups = Upstreams(1)
    gw = Gateway(f"""
clusters:
  - name: up
    endpoints: {ups.endpoints()}
routes:
  - match: {{prefix: /}}
    cluster: up
    rate_limit: {{rate: 5, burst: 5}}
""", workers=1)
    try:
        c = gw.conn()
        results = [gw.request("/x", conn=c) for _ in range(12)]
        codes = [r[0] for r in results]
        assert codes[:5] == [200] * 5, codes
        limited = [r for r in results if r[0] == 429]
        assert len(limited) >= 5, codes
        assert int(limited[0][1]["retry-after"]) >= 1
    finally:
        gw.stop()
        ups.stop()


@test
def streamed_200mib_body_keeps_gateway_memory_flat(_):
    ups = Upstreams(1)
    gw = Gateway(f"""
access_log: off
clusters:
  - name: up
    endpoints: {ups.endpoints()}
routes:
  - {{match: {{prefix: /}}, cluster: up}}
""")
    try:
        gw.request("/warm")
        base = gw.rss_kib()
        total = 200 << 20
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=30)
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        got = {"n": 0}

        def reader():
            r = Reader(s)
            assert r.line().startswith(b"HTTP/1.1 200")
            headers = []
            while True:
                line = r.line()
                if not line:
                    break
                headers.append(line.lower())
            if b"transfer-encoding: chunked" in headers:
                while True:
                    size = int(r.line(), 16)
                    if size == 0:
                        r.line()
                        break
                    got["n"] += len(r.exact(size))
                    r.exact(2)
        t = threading.Thread(target=reader)
        t.start()
        chunk = b"\0" * (1 << 20)
        frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        for _ in range(total // len(chunk)):
            s.sendall(frame)
        s.sendall(b"0\r\n\r\n")
        t.join(timeout=120)
        assert got["n"] == total, got
        peak = gw.rss_peak_kib()
        print(f"    200 MiB through the gateway: RSS {base} KiB before, peak {peak} KiB")
        assert peak - base < 16 * 1024, (base, peak)
    finally:
        gw.stop()
        ups.stop()


@test
def slowloris_does_not_delay_others(_):
    ups = Upstreams(1)
    gw = Gateway(f"""
clusters:
  - name: up
    endpoints: {ups.endpoints()}
routes:
  - {{match: {{prefix: /}}, cluster: up}}
""")
    try:
        slow = []
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHo")
            slow.append(s)
        for _ in range(20):
            assert gw.request("/fast")[0] == 200
        # served while every slow client still waits on its headers: a worker blocked by them
        # would only have served /fast once the 10 s header timeout had answered (408) and
        # closed them. The gateway's own timeout, not wall time on a busy machine, decides.
        for s in slow:
            s.setblocking(False)
            try:
                got = s.recv(1)
            except BlockingIOError:
                continue
            raise AssertionError(f"a slow client was answered or closed ({got!r}) before the "
                                 "fast requests were all served")
        for s in slow:
            s.close()
    finally:
        gw.stop()
        ups.stop()


@test
def stale_fallback_serves_the_last_good_get(_):
    ups = Upstreams(1)
    gw = Gateway(f"""
clusters:
  - name: up
    endpoints: {ups.endpoints()}
    retry: {{max: 0}}
routes:
  - match: {{prefix: /}}
    cluster: up
    fallback: {{max_entry: 64KiB, max_age: 1m}}
""", workers=1)
    try:
        st, h, fresh = gw.request("/catalog")
        assert st == 200 and "x-shoal-fallback" not in h
        ups.kill9(0)
        st, h, stale = gw.request("/catalog")
        assert st == 200 and h.get("x-shoal-fallback") == "stale", (st, h)
        assert stale == fresh
        assert gw.request("/other")[0] == 502  # nothing kept for it
    finally:
        gw.stop()
        ups.stop()


@test
def stale_copies_survive_a_reload(_):
    """A registry-fed cluster's config is rebuilt each time an instance comes or goes, which is
    when the stale copies are needed: a reload that leaves the route as it was keeps them (it
    used to start every route afresh)."""
    ups = Upstreams(1)
    base = f"""
clusters:
  - name: up
    endpoints: {ups.endpoints()}
    retry: {{max: 0}}
routes:
  - match: {{prefix: /catalog}}
    cluster: up
    fallback: {{max_entry: 64KiB, max_age: 1m}}
"""
    gw = Gateway(base, workers=1)
    try:
        st, h, fresh = gw.request("/catalog")
        assert st == 200 and "x-shoal-fallback" not in h
        gw.write(base + "  - {match: {prefix: /ping}, respond: {status: 200, body: pong}}\n")
        lib.wait_until(lambda: gw.request("/ping")[0] == 200, what="the reload")
        ups.kill9(0)
        st, h, stale = gw.request("/catalog")
        assert st == 200 and h.get("x-shoal-fallback") == "stale", (st, h)
        assert stale == fresh
    finally:
        gw.stop()
        ups.stop()


class WhoUpstream:
    """An upstream (Python's http.server, HTTP/1.0: one request per connection) whose body
    says who asked: path, Host, Authorization and Cookie. /setcookie answers with Set-Cookie,
    /nostore with Cache-Control: no-store, /private with Cache-Control: max-age=60, private."""

    HEADERS = {"/setcookie": ("Set-Cookie", "s=1"), "/nostore": ("Cache-Control", "no-store"),
               "/private": ("Cache-Control", "max-age=60, private"),
               "/public": ("Cache-Control", "public, max-age=60")}

    def __init__(self):
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(h):
                body = json.dumps({"path": h.path, "host": h.headers.get("Host"),
                                   "auth": h.headers.get("Authorization"),
                                   "cookie": h.headers.get("Cookie")}).encode()
                h.send_response(200)
                h.send_header("Content-Type", "application/json")
                h.send_header("Content-Length", str(len(body)))
                extra = WhoUpstream.HEADERS.get(h.path)
                if extra:
                    h.send_header(*extra)
                h.end_headers()
                h.wfile.write(body)

            def log_message(h, *args):
                pass
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.srv:
            self.srv.shutdown()
            self.srv.server_close()
            self.thread.join(timeout=10)
            self.srv = None


def _no_copy(st, h):
    """The cluster is down and no stale copy answered: 502, or 503 once the breaker opened."""
    return st in (502, 503) and "x-shoal-fallback" not in h


def _fallback_gateway(up, fallback):
    return Gateway(f"""
clusters:
  - name: up
    endpoints: [127.0.0.1:{up.port}]
    retry: {{max: 0}}
routes:
  - match: {{prefix: /}}
    cluster: up
    fallback: {fallback}
""", workers=1)


@test
def stale_fallback_is_never_shared_between_users_or_hosts(_):
    up = WhoUpstream()
    gw = _fallback_gateway(up, "{max_entry: 64KiB, max_age: 1m}")
    try:
        def ask(path, **hdrs):
            headers = {k.replace("_", "-"): v for k, v in hdrs.items()}
            return gw.request(path, headers=headers)
        # fresh answers, each of which the old cache kept under its target alone
        st, _, body_a = ask("/me", Authorization="Bearer a")
        assert st == 200 and json.loads(body_a)["auth"] == "Bearer a"
        assert ask("/mine", Cookie="session=a")[0] == 200
        st, _, pub_x = ask("/pub", Host="x.example")
        assert st == 200 and json.loads(pub_x)["host"] == "x.example"
        st, _, pub_y = ask("/pub", Host="y.example")
        assert st == 200 and json.loads(pub_y)["host"] == "y.example"
        for path in ("/setcookie", "/nostore", "/private", "/public"):
            assert ask(path)[0] == 200
        up.stop()
        # another user, or nobody, never gets user a's answer
        for who in ({"Authorization": "Bearer b"}, {}, {"Authorization": "Bearer a"}):
            st, h, body = ask("/me", **who)
            assert _no_copy(st, h) and body != body_a, (who, st, h, body)
        for who in ({"Cookie": "session=b"}, {}):
            st, h, body = ask("/mine", **who)
            assert _no_copy(st, h), (who, st, h, body)
        # each host has its own copy; a third host has none
        st, h, body = ask("/pub", Host="x.example")
        assert st == 200 and h.get("x-shoal-fallback") == "stale" and body == pub_x, body
        st, h, body = ask("/pub", Host="Y.EXAMPLE")
        assert st == 200 and h.get("x-shoal-fallback") == "stale" and body == pub_y, body
        st, h, body = ask("/pub", Host="z.example")
        assert _no_copy(st, h), (st, h, body)
        # answers that said "not for sharing" were not kept; a public one was
        for path in ("/setcookie", "/nostore", "/private"):
            st, h, body = ask(path)
            assert _no_copy(st, h), (path, st, h, body)
        st, h, _ = ask("/public")
        assert st == 200 and h.get("x-shoal-fallback") == "stale"
    finally:
        gw.stop()
        up.stop()


@test
def stale_fallback_per_credential_keeps_one_copy_each(_):
    up = WhoUpstream()
    gw = _fallback_gateway(up, "{max_age: 1m, per_credential: true}")
    users = [{"Authorization": "Bearer a"}, {"Authorization": "Bearer b"},
             {"Cookie": "session=c"}, {"Authorization": "Bearer a", "Cookie": "session=c"}, {}]
    try:
        fresh = []
        for u in users:
            st, _, body = gw.request("/me", headers=u)
            assert st == 200
            fresh.append(body)
        assert len(set(fresh)) == len(users)
        up.stop()
        for u, want in zip(users, fresh):
            st, h, body = gw.request("/me", headers=u)
            assert st == 200 and h.get("x-shoal-fallback") == "stale" and body == want, \
                (u, st, body, want)
        st, h, body = gw.request("/me", headers={"Authorization": "Bearer d"})
        assert _no_copy(st, h), (st, body)
        st, h, body = gw.request("/me", headers={"Authorization": "Bearer a",
                                                 "Cookie": "session=x"})
        assert _no_copy(st, h), (st, body)
        # the route's config shows the opt-in
        c = http.client.HTTPConnection("127.0.0.1", gw.admin, timeout=5)
        c.request("GET", "/config")
        cfg = json.loads(c.getresponse().read())
        c.close()
        assert '"per_credential": true' in json.dumps(cfg), cfg
    finally:
        gw.stop()
        up.stop()


@test
def unhealthy_endpoint_gets_no_traffic(_):
    good = Upstreams(1)
    bad = Upstreams(1, "--status", "503")
    gw = Gateway(f"""
clusters:
  - name: up
    endpoints: [127.0.0.1:{good.ports[0]}, 127.0.0.1:{bad.ports[0]}]
    retry: {{max: 0}}
    outlier: {{consecutive_errors: 0}}
    health: {{path: /check, interval: 100ms, timeout: 500ms, unhealthy_threshold: 2}}
routes:
  - {{match: {{prefix: /}}, cluster: up}}
""", workers=1)
    try:
        gw.wait_log("endpoint unhealthy")
        assert all(gw.request("/x")[0] == 200 for _ in range(30))
    finally:
        gw.stop()
        good.stop()
        bad.stop()


@test
def reload_under_load_fails_no_request(_):
    ups = Upstreams(2)
    base = f"""
clusters:
  - name: a
    endpoints: [127.0.0.1:{ups.ports[0]}]
  - name: b
    endpoints: [127.0.0.1:{ups.ports[1]}]
routes:
  - {{match: {{prefix: /}}, cluster: %s}}
"""
    gw = Gateway(base % "a")
    failures = []
    seen = collections.Counter()
    stop = threading.Event()

    def load():
        c = gw.conn()
        while not stop.is_set():
            try:
                st, _, body = gw.request("/x", conn=c)
                if st != 200:
                    failures.append(st)
                else:
                    seen[served_by(body)] += 1
            except Exception as exc:  # noqa: BLE001
                failures.append(repr(exc))
                c = gw.conn()
    try:
        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        # each reload is waited for: the load sees the new cluster's upstream answer
        for i in range(6):
            target = "e1" if i % 2 == 0 else "e0"
            before = seen[target]
            gw.write(base % ("b" if i % 2 == 0 else "a"))
            lib.wait_until(lambda: seen[target] > before + 20 or failures,
                           what=f"traffic to {target} after reload {i + 1}")
        gw.write(base % "a" + "  - {match: {prefix: /bad}, cluster: nosuch}\n")
        line = gw.wait_log("config rejected")
        # and the load goes on, unharmed, after the rejection
        before = seen["e0"]
        lib.wait_until(lambda: seen["e0"] > before + 20 or failures,
                       what="traffic after the rejected config")
        stop.set()
        for t in threads:
            t.join(timeout=10)
        assert not failures, failures[:5]
        assert seen["e0"] > 0 and seen["e1"] > 0, seen
        rec = json.loads(line)
        assert "gateway.yaml:" in rec["where"] and "nosuch" in rec["error"], rec
        assert gw.proc.poll() is None
        # the running config is the last good one: cluster a
        assert served_by(gw.request("/x")[2]) == "e0"
    finally:
        stop.set()
        gw.stop()
        ups.stop()


@test
def invalid_config_is_refused_with_its_position(_):
    gw = Gateway("""
clusters:
  - name: up
    endpoints: [127.0.0.1:1]
    timeouts: {per_try: 5x}
routes:
  - {match: {prefix: /}, cluster: up}
""", expect_fail=True)
    try:
        out, err = gw.proc.communicate(timeout=10)
        assert gw.proc.returncode == 1, gw.proc.returncode
        assert "gateway.yaml:8:" in err and "per_try" in err and "unit" in err, err
    finally:
        gw.stop()
    p = subprocess.run([SHOAL, "gateway", "--check", "-c", "/nonexistent.yaml"],
                       capture_output=True, text=True, timeout=10)
    assert p.returncode == 1 and "/nonexistent.yaml" in p.stderr, p.stderr


@test
def admin_ready_config_and_metrics(_):
    ups = Upstreams(1)
    gw = Gateway(f"""
clusters:
  - name: up
    endpoints: {ups.endpoints()}
routes:
  - match: {{prefix: /}}
    cluster: up
    request_headers: {{add: {{Authorization: Bearer secret-token}}}}
""")
    try:
        c = http.client.HTTPConnection("127.0.0.1", gw.admin, timeout=5)
        c.request("GET", "/ready")
        assert c.getresponse().read() == b"ready\n"
        c.request("GET", "/config")
        cfg = c.getresponse().read()
        assert b"secret-token" not in cfg and b"<redacted>" in cfg, cfg
        assert json.loads(cfg)["clusters"][0]["name"] == "up"
        gw.request("/x")
        m = gw.metrics()
        assert m["shoal_gateway_requests_total"] >= 1
        assert m['shoal_gateway_responses_total{class="2xx"}'] >= 1
        assert m['shoal_route_requests_total{route="route-0",caller="gateway",class="2xx"}'] >= 1
        assert m['shoal_cluster_requests_total{cluster="up",class="2xx"}'] >= 1
        ep = f"127.0.0.1:{ups.ports[0]}"
        assert m[f'shoal_endpoint_requests_total{{cluster="up",endpoint="{ep}",class="2xx"}}'] >= 1
        assert m['shoal_route_request_duration_seconds_count{route="route-0",caller="gateway"}'] >= 1
        assert m[f'shoal_endpoint_healthy{{cluster="up",endpoint="{ep}"}}'] == 1
        # the exposition passes promtool's checks
        promtool = os.environ.get("SHOAL_PROMTOOL") or "promtool"
        c.request("GET", "/metrics")
        text = c.getresponse().read()
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           timeout=30)
        assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), \
            (p.returncode, p.stdout, p.stderr)
    finally:
        gw.stop()
        ups.stop()


if __name__ == "__main__":
    sys.exit(lib.run_tests(TESTS, ONLY))
