#!/usr/bin/env python3
"""`shoal scale`, `shoal restart` and the autoscaler through the real binary: instances added
and removed under a bounded load with no failed GET (drain before stop), rolling restarts
(beside the old instance, or after it on a fixed port; a new instance that crash-loops stops
the restart and the old ones keep serving), the autoscaler raising replicas under load and
lowering them after (in-flight, requests/s and p99 targets), registration only after the first
passing check, and the API's errors. Usage: scale_test.py PATH/TO/shoal"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal_testlib as lib  # noqa: E402

SHOAL = os.path.abspath(sys.argv[1])


def main():
    d = lib.tempdir("shoal-scale-")
    gw, cp, mesh, solo = lib.free_port(), lib.free_port(), lib.free_port(), lib.free_port()
    echo = f"[{SHOAL}, echo, --listen, \"127.0.0.1:$PORT\""
    with open(os.path.join(d, "shoal.yaml"), "w") as f:
        f.write(f"""
name: scaletest
services:
  api:
    command: {echo}, --name, api]
    port: auto
    replicas: 2
    health: {{http: /health, interval: 1s, timeout: 500ms}}
    stop_grace: 2s
  web:
    command: {echo}, --name, web, --delay, 100ms]
    port: auto
    health: {{http: /health, interval: 1s, timeout: 500ms}}
    stop_grace: 2s
    autoscale: {{min: 1, max: 4, target: {{in_flight: 4}}, up_cooldown: 2s, down_cooldown: 4s}}
  solo:
    command: {echo}, --name, solo]
    port: {solo}
    health: {{http: /health, interval: 1s}}
    stop_grace: 2s
  flaky:
    command: [sh, -c, "if [ -e broken ]; then echo broken >&2; exit 1; fi; exec {SHOAL} echo --listen 127.0.0.1:$PORT --name flaky"]
    port: auto
    health: {{http: /health, interval: 1s}}
    stop_grace: 2s
  byrps:
    command: {echo}, --name, byrps]
    port: auto
    health: {{http: /health, interval: 1s}}
    stop_grace: 2s
    autoscale: {{min: 1, max: 3, target: {{rps: 20}}, up_cooldown: 1s, down_cooldown: 2s}}
  byp99:
    command: {echo}, --name, byp99, --delay, 60ms]
    port: auto
    health: {{http: /health, interval: 1s}}
    stop_grace: 2s
    autoscale: {{min: 1, max: 2, target: {{p99: 20ms}}, up_cooldown: 1s, down_cooldown: 2s}}
  late:
    command: [sh, -c, "until [ -e ready ]; do sleep 0.05; done; exec {SHOAL} echo --listen 127.0.0.1:$PORT --name late"]
    port: auto
    health: {{http: /health, interval: 1s}}
    stop_grace: 2s
gateway:
  listen: 127.0.0.1:{gw}
  routes:
    - {{match: {{prefix: /api}}, service: api}}
    - {{match: {{prefix: /web}}, service: web}}
    - {{match: {{prefix: /solo}}, service: solo}}
    - {{match: {{prefix: /flaky}}, service: flaky}}
    - {{match: {{prefix: /byrps}}, service: byrps}}
    - {{match: {{prefix: /byp99}}, service: byp99}}
control_plane: {{listen: 127.0.0.1:{cp}}}
mesh: {{listen: 127.0.0.1:{mesh}}}
""")
    env = dict(os.environ)
    env.pop("SHOAL_TOKEN", None)
    env["SHOAL_ADDR"] = f"127.0.0.1:{cp}"
    data_dir = os.path.join(d, ".shoal")
    p, log, healthy = lib.start_up(SHOAL, os.path.join(d, "shoal.yaml"), env, cwd=d)
    checks = lib.Checks(log=lambda: log)
    check = checks.run

    def cli(*args, timeout=60):
        return subprocess.run([SHOAL, *args], env=env, capture_output=True, text=True,
                              timeout=timeout, cwd=d)

    def rows(service=None):
        out = cli("ps", "--json")
        assert out.returncode == 0, out.stderr
        return [r for r in json.loads(out.stdout) if service is None or r["service"] == service]

    def stack(service):
        with lib.api_open(f"http://127.0.0.1:{cp}/v1/stack", data_dir) as r:
            return [s for s in json.loads(r.read())["services"] if s["name"] == service][0]

    def get(path="/api"):
        with urllib.request.urlopen(f"http://127.0.0.1:{gw}{path}", timeout=5) as r:
            assert r.status == 200
            return json.loads(r.read())["served_by"]

    def registered_only_once_its_check_passes():
        end = time.monotonic() + 20
        while time.monotonic() < end:
            out = cli("ps", "--json")  # fails until the control plane listens
            if out.returncode == 0 and all(r["health"] == "passing"
                                           for r in json.loads(out.stdout)
                                           if r["service"] == "api"):
                break
            time.sleep(0.1)
        time.sleep(1)  # late's probes keep failing meanwhile
        assert rows("late")[0]["health"] == "pending", rows("late")
        with lib.api_open(f"http://127.0.0.1:{cp}/v1/catalog/service/late", data_dir) as r:
            assert json.loads(r.read()) == [], "registered before its check passed"
        t0 = time.monotonic()
        open(os.path.join(d, "ready"), "w").close()
        assert healthy.wait(20), "never all healthy"
        with lib.api_open(f"http://127.0.0.1:{cp}/v1/health/service/late?passing",
                          data_dir) as r:
            assert len(json.loads(r.read())) == 1
        assert rows("late")[0]["health"] == "passing"
        assert [r["id"] for r in rows("api")] == ["api-1", "api-2"]
        print(f"    registered, passing, {time.monotonic() - t0:.2f} s after it could answer")

    def scale_up_spreads_traffic():
        load = lib.Load(get)
        t0 = time.monotonic()
        out = cli("scale", "api", "4", "--data-dir", data_dir, "--wait")
        took = time.monotonic() - t0
        assert out.returncode == 0, out.stderr
        assert "4 of 4 ready" in out.stderr, out.stderr
        # load samples with the new instances in the proxies: each one gets traffic
        try:
            r = lib.wait_until(lambda: (lambda r: r if len(r) == 4 and all(
                x["health"] == "passing" and x["rps"] > 0 for x in r) else None)(rows("api")),
                what="traffic (rps > 0) on all 4 passing instances")
        finally:
            load.stop()
        assert not load.failures, load.failures[:3]
        print(f"    4 of 4 ready {took:.1f} s after `shoal scale api 4`; rps per instance "
              f"{[x['rps'] for x in r]}; {load.done} GETs, 0 failed")

    def scale_down_under_load_fails_nothing():
        before = {x["id"]: x["pid"] for x in rows("api")}
        load = lib.Load(get)
        try:
            lib.wait_until(lambda: load.done >= 20 or load.failures, what="the load to run")
            t0 = time.monotonic()
            out = cli("scale", "api", "1", "--data-dir", data_dir, "--wait")
            took = time.monotonic() - t0
            done = load.done
            lib.wait_until(lambda: load.done >= done + 20 or load.failures,
                           what="more GETs after the scale-down")
        finally:
            load.stop()
        assert out.returncode == 0, out.stderr
        after = rows("api")
        assert [x["id"] for x in after] == ["api-1"], after  # the newest leave first
        gone = [pid for i, pid in before.items() if i != "api-1"]
        lib.wait_until(lambda: not any(lib.alive(pid) for pid in gone),
                       what="the retired instances to exit")
        assert not load.failures, load.failures[:3]
        drains = [json.loads(l)["drain_ms"] for l in log if "instance drained" in l]
        assert len(drains) >= 3, drains
        print(f"    4 -> 1 in {took:.1f} s (drains {drains[-3:]} ms); {load.done} GETs, 0 failed")

    def rolling_restart_under_load_fails_nothing():
        assert cli("scale", "api", "2", "--data-dir", data_dir, "--wait").returncode == 0
        before = {x["id"]: x["pid"] for x in rows("api")}
        load = lib.Load(get)
        try:
            lib.wait_until(lambda: load.done >= 20 or load.failures, what="the load to run")
            t0 = time.monotonic()
            out = cli("restart", "api", "--data-dir", data_dir, "--wait")
            took = time.monotonic() - t0
            done = load.done
            lib.wait_until(lambda: load.done >= done + 20 or load.failures,
                           what="more GETs after the restart")
        finally:
            load.stop()
        assert out.returncode == 0, out.stderr
        after = {x["id"]: x["pid"] for x in rows("api")}
        assert len(after) == 2 and not set(after) & set(before), (before, after)
        lib.wait_until(lambda: not any(lib.alive(pid) for pid in before.values()),
                       what="the replaced instances to exit")
        assert stack("api")["restart"]["state"] == "done"
        assert not load.failures, load.failures[:3]
        print(f"    {sorted(before)} -> {sorted(after)} in {took:.1f} s; "
              f"{load.done} GETs, 0 failed")

    def restart_on_a_fixed_port_replaces_it():
        old = rows("solo")[0]
        assert get("/solo") == "solo"
        out = cli("restart", "solo", "--data-dir", data_dir, "--wait")
        assert out.returncode == 0, out.stderr
        new = rows("solo")
        assert len(new) == 1 and new[0]["id"] != old["id"] and new[0]["port"] == solo, new
        assert not lib.alive(old["pid"])
        assert get("/solo") == "solo"

    def failed_restart_stops_and_keeps_the_old():
        old = rows("flaky")[0]
        open(os.path.join(d, "broken"), "w").close()  # new processes of flaky now exit 1
        try:
            out = cli("restart", "flaky", "--data-dir", data_dir, "--wait", timeout=90)
        finally:
            os.unlink(os.path.join(d, "broken"))
        assert out.returncode == 1, (out.returncode, out.stderr)
        assert "crash-looping" in out.stderr, out.stderr
        assert stack("flaky")["restart"]["state"] == "stopped"
        r = lib.wait_until(lambda: (lambda r: r if len(r) == 1 else None)(rows("flaky")),
                           what="the failed new flaky instance to be removed")
        assert [x["id"] for x in r] == [old["id"]] and r[0]["pid"] == old["pid"], r
        assert get("/flaky") == "flaky"

    def autoscaler_follows_load():
        stop = threading.Event()
        failures = []

        def worker():
            while not stop.is_set():
                try:
                    get("/web")
                except (urllib.error.URLError, ConnectionError, ValueError) as e:
                    failures.append(repr(e))
        threads = [threading.Thread(target=worker) for _ in range(16)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        up_at = None
        try:
            end = t0 + 40  # the autoscaler's own samples and cooldowns, on a busy machine
            while time.monotonic() < end:
                s = stack("web")
                if s["replicas"] == 4 and s["ready"] == 4:
                    up_at = time.monotonic() - t0
                    break
                time.sleep(0.2)
            # a load sample with the 4 instances (for the report below)
            rps = lib.wait_until(lambda: up_at is None or stack("web")["rps"],
                                 what="a load sample of web")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=10)
        assert up_at is not None, stack("web")
        assert not failures, failures[:3]
        t1, down_at = time.monotonic(), None
        while time.monotonic() < t1 + 40:
            s = stack("web")
            if s["replicas"] == 1 and s["instances"] == 1 and s["retiring"] == 0:
                down_at = time.monotonic() - t1
                break
            time.sleep(0.2)
        assert down_at is not None, stack("web")
        scaled = [json.loads(l) for l in log if '"comp":"autoscaler"' in l]
        # up once; down in one step or more (the second the load stops asks for fewer, not 1)
        msgs = [s["msg"] for s in scaled]
        assert msgs[0] == "scaling up" and set(msgs[1:]) == {"scaling down"}, scaled
        print(f"    16 concurrent GETs of 100 ms ({rps:.0f} req/s): 4 of 4 ready {up_at:.1f} s "
              f"after the load began; back to 1 {down_at:.1f} s after it stopped "
              f"(down_cooldown 4s)")

    def autoscaler_rps_and_p99_targets():
        def until(pred, secs):
            end = time.monotonic() + secs
            while time.monotonic() < end:
                if pred():
                    return True
                time.sleep(0.2)
            return False
        loads = [lib.Load(lambda: get("/byrps"), pause=0.002),
                 lib.Load(lambda: get("/byp99"), pause=0)]
        try:
            up_rps = until(lambda: stack("byrps")["replicas"] == 3, 30)
            up_p99 = until(lambda: stack("byp99")["replicas"] == 2, 30)
            seen = (stack("byrps")["rps"], stack("byp99")["p99_ms"])
        finally:
            for load in loads:
                load.stop()
        assert up_rps and up_p99, (stack("byrps"), stack("byp99"))
        assert not loads[0].failures and not loads[1].failures
        assert until(lambda: stack("byrps")["replicas"] == 1 and stack("byp99")["replicas"] == 1,
                     40), (stack("byrps"), stack("byp99"))
        print(f"    rps target 20: {seen[0]:.0f} req/s -> 3 instances; p99 target 20 ms: "
              f"p99 {seen[1]:.0f} ms -> 2 instances; both back to 1 after the load")

    def api_errors_are_clear():
        def post(path, body, token=True):
            tok = open(os.path.join(data_dir, "token")).read().strip()
            req = urllib.request.Request(f"http://127.0.0.1:{cp}{path}", data=body,
                                         method="POST")
            if token:
                req.add_header("Authorization", f"Bearer {tok}")
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())
        st, body = post("/v1/scale/nope", b'{"replicas": 2}')
        assert st == 404 and "no service named 'nope'" in body["error"], (st, body)
        st, body = post("/v1/scale/api", b'{"replicas": "two"}')
        assert st == 400 and body.get("field") == "replicas", (st, body)
        st, body = post("/v1/scale/api", b'{"replicas": 1001}')
        assert st == 400, (st, body)
        st, body = post("/v1/scale/api", b'{"replicas": 2}', token=False)
        assert st in (401, 403), (st, body)
        st, body = post("/v1/scale/solo", b'{"replicas": 2}')
        assert st == 400 and "fixed port" in body["error"], (st, body)
        st, body = post("/v1/restart/nope", b"")
        assert st == 404, (st, body)
        out = cli("scale", "api", "many", "--data-dir", data_dir)
        assert out.returncode == 2 and "replicas" in out.stderr, (out.returncode, out.stderr)
        out = cli("restart", "nope", "--data-dir", data_dir)
        assert out.returncode == 1 and "404" in out.stderr, (out.returncode, out.stderr)
        assert len(rows("api")) == 2  # nothing changed

    def sigterm_leaves_no_child():
        pids = [r["pid"] for r in rows() if r["pid"]]
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
        left = [pid for pid in pids if lib.alive(pid)]
        assert len(pids) >= 5 and not left, (pids, left)
        lib.wait_until(lambda: any('"msg":"stopped"' in l for l in log),  # the log reader thread
                       what="'stopped' in shoal up's log")

    def restart_of_an_instance_waiting_on_a_dependency():
        cp2, mesh2, port2 = lib.free_port(), lib.free_port(), lib.free_port()
        d2 = lib.tempdir("shoal-scale-wait-")
        with open(os.path.join(d2, "shoal.yaml"), "w") as f:
            f.write(f"""
services:
  never:
    command: [sleep, "60"]
    port: auto
    health: {{http: /health, interval: 1s}}
  blocked:
    command: {echo}, --name, blocked]
    port: {port2}
    depends_on: [never]
control_plane: {{listen: 127.0.0.1:{cp2}}}
mesh: {{listen: 127.0.0.1:{mesh2}}}
""")
        p2, log2, _ = lib.start_up(SHOAL, os.path.join(d2, "shoal.yaml"), env, cwd=d2)
        env2 = dict(env, SHOAL_ADDR=f"127.0.0.1:{cp2}")
        try:
            out = None
            for _ in range(100):
                out = subprocess.run([SHOAL, "restart", "blocked", "--data-dir",
                                      os.path.join(d2, ".shoal")], env=env2,
                                     capture_output=True, text=True, timeout=10)
                if out.returncode == 0 or "control plane" not in out.stderr:
                    break
                time.sleep(0.1)
            assert out.returncode == 0, out.stderr
            time.sleep(0.5)
            ps = subprocess.run([SHOAL, "ps", "--json"], env=env2, capture_output=True,
                                text=True, timeout=10)
            assert ps.returncode == 0 and p2.poll() is None, (ps.stderr, log2[-5:])
            blocked = [r for r in json.loads(ps.stdout) if r["service"] == "blocked"]
            assert [r["state"] for r in blocked] == ["waiting"], blocked
        finally:
            p2.send_signal(signal.SIGTERM)
            assert p2.wait(timeout=30) == 0, log2[-5:]

    try:
        check("registered_only_once_its_check_passes", registered_only_once_its_check_passes)
        check("scale_up_adds_instances_and_traffic_spreads", scale_up_spreads_traffic)
        check("scale_down_under_load_drains_and_fails_no_get", scale_down_under_load_fails_nothing)
        check("rolling_restart_under_load_fails_no_get", rolling_restart_under_load_fails_nothing)
        check("restart_on_a_fixed_port_replaces_it", restart_on_a_fixed_port_replaces_it)
        check("failed_restart_stops_and_keeps_the_old_instance",
              failed_restart_stops_and_keeps_the_old)
        check("autoscaler_scales_up_under_load_and_back_down", autoscaler_follows_load)
        check("autoscaler_rps_and_p99_targets", autoscaler_rps_and_p99_targets)
        check("api_and_cli_errors_are_clear", api_errors_are_clear)
        check("sigterm_leaves_no_child", sigterm_leaves_no_child)
        check("restart_of_an_instance_waiting_on_a_dependency",
              restart_of_an_instance_waiting_on_a_dependency)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main())
