#!/usr/bin/env python3
"""`shoal up` through the real binary: a two-service manifest on free loopback ports; all
healthy, traffic through the gateway, kill -9 of an instance under a bounded load (restarted,
no failed GET), SIGTERM leaves no child. Usage: up_test.py PATH/TO/shoal"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal_testlib as lib  # noqa: E402

SHOAL = os.path.abspath(sys.argv[1])



CALLER = r"""
import http.server, json, os, urllib.request

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health" and os.path.exists(f"sick-{os.getpid()}"):
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/health":
            body = b"ok"
        else:
            with urllib.request.urlopen("http://back/from-caller", timeout=5) as r:
                got = json.loads(r.read())
            got["env_mesh"] = os.environ.get("SHOAL_MESH")
            body = json.dumps(got).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass

import sys
sys.stdout.buffer.write(b"caller up \xff\xfe\xc3\xa9t\xc3 end\n")  # not UTF-8, then "et"
sys.stdout.buffer.write(b"ctl \x1b[2J\x1b]0;title\x07 c1 \xc2\x9b2J raw \x9b end\n")  # ESC, CSI
big = os.environ.get("BIG", "")
print(f"big {len(big)} {big.strip('x')} {os.environ.get('SHOAL_DATA_DIR')}", flush=True)
sys.stdout.flush()
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""



def main():
    d = lib.tempdir("shoal-up-")
    gw, adm, cp, mesh = lib.free_port(), lib.free_port(), lib.free_port(), lib.free_port()
    mesh_adm = lib.free_port()
    with open(os.path.join(d, "caller.py"), "w") as f:
        f.write(CALLER)
    with open(os.path.join(d, "shoal.yaml"), "w") as f:
        f.write(f"""
name: uptest
services:
  front:
    command: [{SHOAL}, echo, --listen, "127.0.0.1:$PORT", --name, front]
    port: auto
    replicas: 2
    health: {{http: /health, interval: 1s, timeout: 500ms}}
    depends_on: [back]
  back:
    command: [{SHOAL}, echo, --listen, "127.0.0.1:$PORT", --name, back]
    port: auto
    health: {{http: /health, interval: 1s}}
  caller:
    command: [python3, caller.py]
    port: auto
    env: {{BIG: "{"x" * 10240}${{SHOAL_SERVICE}}:$$:${{PORT}}"}}
    health: {{http: /health, interval: 1s, unhealthy_threshold: 2}}
    stop_grace: 1s
    depends_on: [back]
gateway:
  listen: 127.0.0.1:{gw}
  admin: 127.0.0.1:{adm}
  routes:
    - {{match: {{prefix: /front}}, service: front}}
    - {{match: {{prefix: /caller}}, service: caller}}
control_plane: {{listen: 127.0.0.1:{cp}}}
mesh: {{listen: 127.0.0.1:{mesh}, admin: 127.0.0.1:{mesh_adm}}}
""")
    env = dict(os.environ)
    env.pop("SHOAL_TOKEN", None)
    p, log, healthy = lib.start_up(SHOAL, os.path.join(d, "shoal.yaml"), env)

    def spawns(service=None):
        """The supervisor's "instance started" events (they carry the pid)."""
        out = []
        for line in list(log):
            if '"msg":"instance started"' in line and '"pid"' in line:
                rec = json.loads(line)
                if service is None or rec.get("service") == service:
                    out.append(rec)
        return out

    def get():
        with urllib.request.urlopen(f"http://127.0.0.1:{gw}/front/x", timeout=5) as r:
            return json.loads(r.read())["served_by"]

    checks = lib.Checks(log=lambda: log)
    check = checks.run

    def all_healthy():
        t0 = time.monotonic()
        assert healthy.wait(20), "never all healthy"
        rec = json.loads([l for l in log if "all instances healthy" in l][0])
        print(f"    all healthy {rec['ms']} ms after start (depends_on: back first)")
        order = [json.loads(l)["id"] for l in log if '"msg":"instance started"' in l and '"port"' in l]
        assert order[0].startswith("back"), order
        assert time.monotonic() - t0 < 20

    def traffic():
        assert all(get() == "front" for _ in range(10))

    def generation(service, port):
        """The generation the proxies' feed gives the instance on <port> (None: not listed)."""
        with lib.api_open(f"http://127.0.0.1:{cp}/v1/sd/endpoints/{service}",
                          os.path.join(d, ".shoal")) as r:
            for line in r.read().decode().splitlines():
                addr, _, gen = line.split()
                if addr == f"127.0.0.1:{port}":
                    return gen
        return None

    def instances():
        """The supervisor's instances, as `shoal ps --json` shows them, by id."""
        with lib.api_open(f"http://127.0.0.1:{cp}/v1/instances", os.path.join(d, ".shoal")) as r:
            return {row["id"]: row for row in json.loads(r.read())}

    def kill9_under_load():
        load = lib.Load(get)
        try:
            lib.wait_until(lambda: load.done >= 20 or load.failures,
                           what="the load to be running")
            victim = instances()["front-1"]
            before = generation("front", victim["port"])
            os.kill(victim["pid"], signal.SIGKILL)
            lib.wait_until(lambda: len(spawns("front")) >= 3,
                           what="the killed instance to be restarted")
            # the new process passes its health check and takes traffic again
            lib.wait_until(lambda: (lambda r: r["pid"] not in (0, victim["pid"]) and
                                    r["health"] == "passing")(instances()[victim["id"]]),
                           what=f"{victim['id']} to pass its health check again")
            # it left the registry when its process died and came back as a new registration
            # (a new generation in the proxies' feed: no ejection of the old process holds)
            lib.wait_until(lambda: generation("front", victim["port"]) not in (None, before),
                           what="front-1 registered again, as a new registration")
            done = load.done
            lib.wait_until(lambda: load.done >= done + 20 or load.failures,
                           what="more GETs after the restart")
        finally:
            load.stop()
        assert not load.failures, load.failures[:3]
        print(f"    {load.done} GETs during the kill -9, 0 failed")

    check("all_instances_healthy_in_dependency_order", all_healthy)
    check("traffic_through_the_gateway", traffic)
    check("kill9_of_an_instance_under_load_fails_no_get", kill9_under_load)

    def ps():
        env_ps = dict(env, SHOAL_ADDR=f"127.0.0.1:{cp}")
        out = subprocess.run([SHOAL, "ps", "--json"], env=env_ps, capture_output=True,
                             text=True, timeout=10)
        assert out.returncode == 0, out.stderr
        rows = {r["id"]: r for r in json.loads(out.stdout)}
        assert sorted(rows) == ["back-1", "caller-1", "front-1", "front-2"], sorted(rows)
        live = {rec["pid"] for rec in spawns()}
        for r in rows.values():
            assert r["state"] in ("running", "starting") and r["pid"] in live, r
            assert r["health"] == "passing" and r["port"] > 0, r
        assert sum(r["restarts"] for r in rows.values() if r["service"] == "front") >= 1, rows
        table = subprocess.run([SHOAL, "ps"], env=env_ps, capture_output=True, text=True,
                               timeout=10)
        assert table.returncode == 0 and table.stdout.startswith("SERVICE"), table
        assert len(table.stdout.splitlines()) == 5, table.stdout
    check("ps_lists_every_instance_with_pid_health_restarts", ps)

    def logs_stay_valid_json_whatever_a_service_prints():
        out = subprocess.run([SHOAL, "logs", "caller", "--json"],
                             env=dict(env, SHOAL_ADDR=f"127.0.0.1:{cp}"), capture_output=True,
                             text=True, timeout=10)
        assert out.returncode == 0, out.stderr
        lines = [json.loads(l)["line"] for l in out.stdout.splitlines()]
        assert "caller up ??\u00e9t? end" in lines, lines

        def kept():  # the file is flushed every 100 ms
            with open(os.path.join(d, ".shoal", "logs", "services.log")) as f:
                return [json.loads(l) for l in f if l.endswith("\n")]
        lib.wait_until(lambda: any(r["instance"] == "caller-1" and
                                   r["line"] == "caller up ??\u00e9t? end" for r in kept()),
                       what="the caller's line in services.log")
    check("logs_stay_valid_json_whatever_a_service_prints", logs_stay_valid_json_whatever_a_service_prints)

    def logs_show_control_characters_escaped():
        # text output: ESC and C1 controls (U+009B is CSI on a UTF-8 terminal) are shown as
        # \u001b / \u009b, never sent to the terminal; a raw byte that is not UTF-8 is '?'
        out = subprocess.run([SHOAL, "logs", "caller"],
                             env=dict(env, SHOAL_ADDR=f"127.0.0.1:{cp}"), capture_output=True,
                             timeout=10)
        assert out.returncode == 0, out.stderr
        assert b"\x1b" not in out.stdout and b"\x07" not in out.stdout, out.stdout
        assert b"\xc2\x9b" not in out.stdout and b"\x9b" not in out.stdout, out.stdout
        want = b"ctl \\u001b[2J\\u001b]0;title\\u0007 c1 \\u009b2J raw ? end"
        assert want in out.stdout, out.stdout
        # --json keeps the line as it was (JSON escapes it)
        js = subprocess.run([SHOAL, "logs", "caller", "--json"],
                            env=dict(env, SHOAL_ADDR=f"127.0.0.1:{cp}"), capture_output=True,
                            text=True, timeout=10)
        lines = [json.loads(l)["line"] for l in js.stdout.splitlines()]
        assert "ctl \x1b[2J\x1b]0;title\x07 c1 \x9b2J raw ? end" in lines, lines
    check("logs_show_control_characters_escaped", logs_show_control_characters_escaped)

    def long_env_value_and_data_dir_reach_the_service():
        # 10 KiB, references expanded (shoal up used to cut values at 4 KiB)
        out = subprocess.run([SHOAL, "logs", "caller", "--grep", "big ", "--json"],
                             env=dict(env, SHOAL_ADDR=f"127.0.0.1:{cp}"), capture_output=True,
                             text=True, timeout=10)
        lines = [json.loads(l)["line"] for l in out.stdout.splitlines()]
        assert lines, out
        n, tail, data = lines[0].split(" ")[1:]
        assert tail.startswith("caller:$:") and int(n) == 10240 + len(tail), lines[0][:200]
        assert data == os.path.join(d, ".shoal", "services", "caller"), data
        assert os.path.isdir(data)
    check("long_env_value_and_data_dir_reach_the_service",
          long_env_value_and_data_dir_reach_the_service)

    def failing_health_replaces_the_instance():
        env_ps = dict(env, SHOAL_ADDR=f"127.0.0.1:{cp}")

        def caller_row():
            out = subprocess.run([SHOAL, "ps", "--json"], env=env_ps, capture_output=True,
                                 text=True, timeout=10)
            return [r for r in json.loads(out.stdout) if r["id"] == "caller-1"][0]
        old = caller_row()
        open(os.path.join(d, f"sick-{old['pid']}"), "w").close()  # its /health now says 500
        t0, end, row = time.monotonic(), time.monotonic() + 20, old
        while time.monotonic() < end:
            row = caller_row()
            if row["pid"] not in (0, old["pid"]) and row["health"] == "passing":
                break
            time.sleep(0.2)
        assert row["pid"] not in (0, old["pid"]) and row["health"] == "passing", row
        assert row["restarts"] >= old["restarts"] + 1, (old, row)
        lib.wait_until(lambda: not lib.alive(old["pid"]), what="the sick process to be gone")
        assert any("failed its health check; replacing" in l for l in log)
        print(f"    replaced and passing again {time.monotonic() - t0:.1f} s after it fell sick")
    check("failing_health_replaces_the_instance", failing_health_replaces_the_instance)

    def mesh_by_host():
        req = urllib.request.Request(f"http://127.0.0.1:{mesh}/x", headers={"Host": "back"})
        with urllib.request.urlopen(req, timeout=5) as r:
            assert json.loads(r.read())["served_by"] == "back"
        via = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{mesh}"}))
        with via.open("http://front/y", timeout=5) as r:  # absolute-form, as a proxy sees it
            assert json.loads(r.read())["served_by"] == "front"
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{mesh}/", headers={"Host": "nope"})
            urllib.request.urlopen(req, timeout=5)
            raise AssertionError("unknown service answered")
        except urllib.error.HTTPError as e:
            body = e.read().decode()
            assert e.code == 503 and "no such service" in body and "back" in body, body
    check("mesh_routes_by_host_and_as_http_proxy", mesh_by_host)

    def service_calls_service_by_name():
        # caller fetches http://back/... with nothing but the environment shoal gave it
        with urllib.request.urlopen(f"http://127.0.0.1:{gw}/caller/z", timeout=5) as r:
            got = json.loads(r.read())
        assert got["served_by"] == "back", got
        # its own credential in the proxy URL (docs/observability.md, "Caller identity")
        assert re.fullmatch(rf"http://caller\.\d+:[0-9a-f]{{32}}@127\.0\.0\.1:{mesh}",
                            got["env_mesh"]), got
    check("service_calls_another_by_name_through_the_mesh", service_calls_service_by_name)

    def mesh_metrics_on_its_admin_listener():
        with urllib.request.urlopen(f"http://127.0.0.1:{mesh_adm}/metrics", timeout=5) as r:
            text = r.read().decode()
        calls = [l for l in text.splitlines()
                 if l.startswith('shoal_cluster_requests_total{cluster="back",class="2xx"}')]
        assert calls and float(calls[0].split()[-1]) >= 1, calls or text[:500]
        assert 'shoal_cluster_requests_in_flight{cluster="back"}' in text
    check("mesh_metrics_on_its_admin_listener", mesh_metrics_on_its_admin_listener)

    def sigterm_leaves_no_child():
        children = [rec["pid"] for rec in spawns()]
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=15) == 0, "shoal up did not exit 0"
        lib.wait_until(lambda: not [c for c in set(children) if lib.alive(c)],
                       what=f"children {sorted(set(children))} to be gone")
    check("sigterm_leaves_no_child", sigterm_leaves_no_child)
    if p.poll() is None:
        p.kill()
    def crash_loop_is_detected_and_backed_off():
        cp2, mesh2 = lib.free_port(), lib.free_port()
        d2 = lib.tempdir("shoal-up-crash-")
        with open(os.path.join(d2, "shoal.yaml"), "w") as f:
            f.write(f"""
services:
  crasher:
    command: [sh, -c, "echo dying; exit 3"]
    restart: always
control_plane: {{listen: 127.0.0.1:{cp2}}}
mesh: {{listen: 127.0.0.1:{mesh2}}}
""")
        p2 = subprocess.Popen([SHOAL, "up", "-f", os.path.join(d2, "shoal.yaml")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            env_ps = dict(env, SHOAL_ADDR=f"127.0.0.1:{cp2}")

            def row():
                out = subprocess.run([SHOAL, "ps", "--json"], env=env_ps, capture_output=True,
                                     text=True, timeout=10)
                return json.loads(out.stdout)[0] if out.returncode == 0 else None
            t_seen = time.monotonic()
            first = lib.wait_until(lambda: (lambda r: r if r and r["state"] == "crash-loop"
                                            else None)(row()), what="the crash loop")
            assert first["crash_loop"], first
            restarts = first["restarts"]
            # backed off: in a crash loop the next restart is backoff_max (30 s) away. The
            # window is let pass on purpose; its bound counts from before the snapshot above,
            # so a slow machine only makes the allowance larger, never the check flaky.
            time.sleep(2)
            last = row()
            window = time.monotonic() - t_seen
            assert last["restarts"] <= restarts + 1 + int(window // 30), (restarts, window, last)
            print(f"    crash loop after {restarts} restarts, then backed off")
        finally:
            p2.send_signal(signal.SIGTERM)
            p2.wait(timeout=20)
    check("crash_loop_is_detected_and_backed_off", crash_loop_is_detected_and_backed_off)

    def kill9_of_shoal_takes_what_instances_started():
        cp3, mesh3 = lib.free_port(), lib.free_port()
        d3 = lib.tempdir("shoal-up-kill9-")
        with open(os.path.join(d3, "shoal.yaml"), "w") as f:
            f.write(f"""
services:
  parent:
    command: [sh, -c, "sleep 300 & echo grandchild $$!; exec {SHOAL} echo --listen 127.0.0.1:$PORT"]
    port: auto
    health: {{http: /health, interval: 1s}}
control_plane: {{listen: 127.0.0.1:{cp3}}}
mesh: {{listen: 127.0.0.1:{mesh3}}}
""")
        p3, log3, healthy3 = lib.start_up(SHOAL, os.path.join(d3, "shoal.yaml"), env)
        try:
            assert healthy3.wait(20), "never healthy"
            lines = [json.loads(l).get("line", "") for l in log3 if '"comp":"service"' in l]
            grand = int([l for l in lines if l.startswith("grandchild ")][0].split()[1])
            child = [json.loads(l)["pid"] for l in log3
                     if '"msg":"instance started"' in l and '"pid"' in l][0]
            assert lib.alive(grand) and lib.alive(child), (grand, child)
            p3.kill()  # SIGKILL: no cleanup of its own
            p3.wait(timeout=10)
            # gone (their sleep 300 would outlive any deadline here), waited for, not assumed
            end = time.monotonic() + lib.WAIT
            while time.monotonic() < end and (lib.alive(grand) or lib.alive(child)):
                time.sleep(0.05)
            assert not lib.alive(child), f"instance {child} outlived kill -9 of shoal up"
            assert not lib.alive(grand), f"{grand}, started by the instance, outlived it"
        finally:
            if p3.poll() is None:
                p3.kill()
                p3.wait()
    check("kill9_of_shoal_takes_what_instances_started",
          kill9_of_shoal_takes_what_instances_started)
    def cli_finds_the_stack_from_anywhere():
        # shoal up publishes DATA_DIR for its admin address in $XDG_RUNTIME_DIR/shoal; the CLI,
        # run from another directory with no token, reads the token there (shoal down used to
        # answer 401 unless run next to the manifest)
        rt, other = lib.tempdir("shoal-xdg-"), lib.tempdir("shoal-cwd-")
        cp4, mesh4 = lib.free_port(), lib.free_port()
        d4 = lib.tempdir("shoal-up-cli-")
        with open(os.path.join(d4, "shoal.yaml"), "w") as f:
            f.write(f"""
services:
  web:
    command: [{SHOAL}, echo, --listen, "127.0.0.1:$PORT"]
    port: auto
    health: {{http: /health, interval: 1s}}
control_plane: {{listen: 127.0.0.1:{cp4}}}
mesh: {{listen: 127.0.0.1:{mesh4}}}
""")
        env4 = {k: v for k, v in env.items() if k not in ("SHOAL_ADDR", "SHOAL_TOKEN")}
        env4["XDG_RUNTIME_DIR"] = rt
        p4, log4, healthy4 = lib.start_up(SHOAL, os.path.join(d4, "shoal.yaml"), env4)
        addr = f"127.0.0.1:{cp4}"

        def cli(*args, timeout=15):
            return subprocess.run([SHOAL, *args], env=env4, cwd=other, capture_output=True,
                                  text=True, timeout=timeout)
        try:
            assert healthy4.wait(20), "never healthy"
            published = os.path.join(rt, "shoal", f"127.0.0.1_{cp4}")
            with open(published) as f:  # the data dir, and the pid that publishes it
                assert f.read().split("\n")[:2] == [os.path.realpath(os.path.join(d4, ".shoal")),
                                                     str(p4.pid)], published
            assert os.stat(published).st_mode & 0o777 == 0o600
            assert os.stat(os.path.join(rt, "shoal")).st_mode & 0o777 == 0o700
            ps = cli("ps", "--addr", addr)
            assert ps.returncode == 0 and "web-1" in ps.stdout, ps
            ps = cli("ps", "--json", "--data-dir", os.path.join(d4, ".shoal"), "--addr", addr)
            assert ps.returncode == 0 and json.loads(ps.stdout)[0]["id"] == "web-1", ps
            wr = cli("config", "set", "cli/found", "yes", "--addr", addr)  # a write: the token
            assert wr.returncode == 0, wr
            assert cli("config", "--addr", addr, "get", "cli/found").stdout == "yes"
            wrong = cli("config", "set", "cli/found", "no", "--addr", addr, "--token", "nope")
            assert wrong.returncode == 1 and "403" in wrong.stderr, wrong  # a flag wins
            bad = cli("ps", "--addr")
            assert bad.returncode == 2 and "needs a value" in bad.stderr, bad
            down = cli("down", "--addr", addr, timeout=70)
            assert down.returncode == 0 and "stopped" in down.stderr, down
            assert p4.wait(timeout=20) == 0
            assert not os.path.exists(published), "the runtime file outlived a clean stop"
            # a file left by a kill -9 names a pid that no longer runs: stale, removed, unused
            with open(published, "w") as f:
                f.write(f"{os.path.realpath(os.path.join(d4, '.shoal'))}\n{p4.pid}\n")
            os.chmod(published, 0o600)
            cli("ps", "--addr", addr)  # nothing listens: it fails, after looking for a token
            assert not os.path.exists(published), "a stale runtime file was used"
        finally:
            if p4.poll() is None:
                p4.kill()
                p4.wait()
    check("cli_finds_the_stack_from_anywhere", cli_finds_the_stack_from_anywhere)

    def help_lists_the_connection_options():
        for cmd in ("services", "ps", "logs", "down", "scale", "restart", "config"):
            out = subprocess.run([SHOAL, cmd, "--help"], capture_output=True, text=True,
                                 timeout=10)
            assert out.returncode == 0, (cmd, out)
            for opt in ("--addr ADDR", "--token TOKEN", "--data-dir DIR"):
                assert out.stdout.count(opt) >= 2, (cmd, opt, out.stdout)  # usage and list
    check("help_lists_the_connection_options", help_lists_the_connection_options)

    bad = subprocess.run([SHOAL, "up", "-f", "/nonexistent/shoal.yaml"], capture_output=True,
                         text=True, timeout=10)
    checks.result("missing_manifest_is_an_error",
                  bad.returncode == 1 and "/nonexistent/shoal.yaml" in bad.stderr,
                  f"{bad.returncode} {bad.stderr}")
    return checks.summary()

if __name__ == "__main__":
    sys.exit(main())
