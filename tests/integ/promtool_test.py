#!/usr/bin/env python3
"""`promtool check metrics` on what the real binary serves: a `shoal gateway` in front of two
`shoal echo` upstreams (one answering 503), after traffic that gives its counters and
histograms series, with a route name that needs escaping (quotes, a backslash, UTF-8). Its
admin /metrics must pass promtool with no complaint; a planted bad exposition must not, so a
check that silently passes everything cannot hide behind this test.
Usage: promtool_test.py PATH/TO/shoal PATH/TO/promtool"""
import http.client
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal_testlib as lib  # noqa: E402

SHOAL, PROMTOOL = sys.argv[1], sys.argv[2]
lib.set_binary(SHOAL)
ODD = 'shop "checkout" C:\\legacy café'  # the route name: quotes, a backslash, UTF-8
ODD_LABEL = 'route="shop \\"checkout\\" C:\\\\legacy café"'  # as the exposition escapes it


def promtool(text):
    """(exit status, complaints) of `promtool check metrics` on <text>."""
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=60)
    return p.returncode, (p.stdout + p.stderr).decode().strip()


def main():
    up, bad = lib.Echo("--name", "up"), lib.Echo("--name", "bad", "--status", "503")
    port, admin = lib.free_port(), lib.free_port()
    d = lib.tempdir("shoal-promtool-")
    with open(os.path.join(d, "gateway.yaml"), "w") as f:
        f.write(f"""listen: 127.0.0.1:{port}
workers: 1
admin: 127.0.0.1:{admin}
access_log: off
clusters:
  - name: up
    endpoints: [127.0.0.1:{up.port}]
  - name: bad
    endpoints: [127.0.0.1:{bad.port}]
    retry: {{max: 0}}
    breaker: {{consecutive_failures: 3, open: 60s}}
routes:
  - name: '{ODD.replace("'", "''")}'
    match: {{prefix: /shop}}
    cluster: up
  - match: {{prefix: /bad}}
    cluster: bad
  - match: {{prefix: /api}}
    cluster: up
""")
    gw = subprocess.Popen([SHOAL, "gateway", "-c", os.path.join(d, "gateway.yaml")],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    failures = []
    try:
        line = gw.stderr.readline()
        assert "gateway listening" in line, line + gw.stderr.read()

        def get(p, path):
            c = http.client.HTTPConnection("127.0.0.1", p, timeout=10)
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            c.close()
            return r.status, body
        # traffic: 2xx on two routes, 5xx from the upstream, then the breaker open (fast
        # fails), 404 without a route
        codes = [get(port, p)[0] for p in ["/shop/a", "/shop/b", "/api/x"] + ["/bad"] * 5 +
                 ["/nothing"]]
        assert codes == [200, 200, 200, 503, 503, 503, 503, 503, 404], codes

        def scrape():
            st, body = get(admin, "/metrics")
            assert st == 200, st
            return body.decode()
        # the scrape shows the traffic (no assumption on when counters are published)
        text = lib.wait_until(lambda: (lambda t: t if "shoal_gateway_requests_total 9\n" in t
                                       else None)(scrape()),
                              what="/metrics to count the 9 requests")
        with open(os.path.join(d, "metrics.txt"), "w") as f:
            f.write(text)
        must = [
            "# TYPE shoal_gateway_requests_total counter",
            "# TYPE shoal_route_request_duration_seconds histogram",
            "# TYPE shoal_cluster_upstream_duration_seconds histogram",
            f'shoal_route_request_duration_seconds_bucket{{{ODD_LABEL},caller="gateway",le="+Inf"}} 2',
            f'shoal_route_requests_total{{{ODD_LABEL},caller="gateway",class="2xx"}} 2',
            'shoal_cluster_requests_total{cluster="bad",class="5xx"} 3',
            "shoal_gateway_fast_fails_total 2",
            'shoal_gateway_responses_total{class="4xx"} 1',
        ]
        for want in must:
            if want not in text:
                failures.append(f"not in /metrics: {want}")
        rc, out = promtool(text)
        if rc != 0 or out:
            failures.append(f"promtool check metrics (exit {rc}) on the gateway's /metrics:\n"
                            + out)
        # the check is live: a counter without _total and without HELP must be reported
        rc, out = promtool("# TYPE bad_requests counter\nbad_requests 1\n")
        if rc == 0 and not out:
            failures.append("promtool accepted a planted bad exposition; the check proves nothing")
        samples = sum(1 for l in text.splitlines() if l and not l.startswith("#"))
    finally:
        lib.terminate(gw)
        up.stop()
        bad.stop()
    if gw.returncode != 0:
        failures.append(f"the gateway exited {gw.returncode}: {gw.stderr.read()[-500:]}")
    for f in failures:
        print(f"FAIL {f}")
    if failures:
        print(f"(the scrape is in {d}/metrics.txt)")
        return 1
    shutil.rmtree(d, ignore_errors=True)
    print(f"ok   promtool check metrics: no complaint on {samples} samples the gateway served")
    return 0


if __name__ == "__main__":
    sys.exit(main())
