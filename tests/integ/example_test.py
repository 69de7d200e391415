#!/usr/bin/env python3
"""examples/hello through the real binaries: the example's own shoal.yaml, with its fixed
ports swapped for free ones and its commands pointed at this build. greeter calls names
through the mesh by name; names keeps its rows in its own SQLite file, across a restart of the
whole stack; kill -9 of a names instance under a bounded /hello load fails no request; under
`make asan` no service reports a sanitizer error.
Usage: example_test.py PATH/TO/shoal"""
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal_testlib as lib  # noqa: E402

SHOAL = os.path.abspath(sys.argv[1])
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEED = {"Ada", "Grace", "Barbara", "Margaret", "Linus"}



def main():
    d = lib.tempdir("shoal-example-")
    ports = {p: lib.free_port() for p in ("8080", "8081", "7700", "7701")}
    with open(os.path.join(ROOT, "examples/hello/shoal.yaml")) as f:
        text = f.read()
    for fixed, free in ports.items():
        assert f"127.0.0.1:{fixed}" in text, fixed
        text = text.replace(f"127.0.0.1:{fixed}", f"127.0.0.1:{free}")
    bindir = os.path.join(os.path.dirname(SHOAL), "examples")
    assert "../../build/examples/" in text
    text = text.replace("../../build/examples/", bindir + "/")
    manifest = os.path.join(d, "shoal.yaml")
    with open(manifest, "w") as f:
        f.write(text)
    gw = ports["8080"]
    env = dict(os.environ)
    env.pop("SHOAL_TOKEN", None)
    state = {}

    def start():
        p, log, healthy = lib.start_up(SHOAL, manifest, env)
        state.update(p=p, log=log, healthy=healthy)
        state.setdefault("logs", []).append(log)

    def stop():
        p = state["p"]
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0, "shoal up did not exit 0"

    def call(path, data=None):
        req = urllib.request.Request(f"http://127.0.0.1:{gw}{path}", data=data)
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())

    checks = lib.Checks(log=lambda: state.get("log", []))
    check = checks.run

    def all_healthy():
        start()
        assert state["healthy"].wait(30), "never all healthy"
        rec = json.loads([l for l in state["log"] if "all instances healthy" in l][0])
        print(f"    all 4 instances healthy {rec['ms']} ms after start")

    def hello_through_the_mesh():
        seen = set()
        for _ in range(20):
            status, got = call("/hello")
            assert status == 200, got
            word, name = got["greeting"].rstrip("!").split(", ", 1)
            assert word == "hello" and name in SEED, got
            seen.add(got["from"])
        assert len(seen) == 2, f"both greeter instances should answer: {seen}"

    def names_persist_in_their_own_database():
        status, _ = call("/names", data=b"Edsger")
        assert status == 201
        try:
            call("/names", data=b"not a name!")
            raise AssertionError("a bad name was accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 400, e.code
        assert "Edsger" in call("/names")[1]
        assert os.path.exists(os.path.join(d, ".shoal", "services", "names", "names.sqlite"))
        stop()
        start()
        assert state["healthy"].wait(30), "never all healthy after the restart"
        assert "Edsger" in call("/names")[1], "the row did not survive a restart"

    def instances():
        """The supervisor's instances, as `shoal ps --json` shows them, by id."""
        with lib.api_open(f"http://127.0.0.1:{ports['7700']}/v1/instances",
                          os.path.join(d, ".shoal")) as r:
            return {row["id"]: row for row in json.loads(r.read())}

    def kill9_of_names_under_load():
        load = lib.Load(lambda: call("/hello"))
        try:
            lib.wait_until(lambda: load.done >= 20 or load.failures,
                           what="the /hello load to be running")
            victim = [r for r in instances().values() if r["service"] == "names"][-1]
            os.kill(victim["pid"], signal.SIGKILL)
            # restarted under the same id, passing its health check, and the load goes on
            lib.wait_until(lambda: (lambda r: r["pid"] not in (0, victim["pid"]) and
                                    r["health"] == "passing")(instances()[victim["id"]]),
                           what=f"{victim['id']} to be restarted and passing")
            done = load.done
            lib.wait_until(lambda: load.done >= max(done + 20, 60) or load.failures,
                           what="more /hello calls after the restart")
        finally:
            load.stop()
        assert not load.failures, load.failures[:3]
        assert load.done > 50, load.done
        print(f"    {load.done} /hello calls (each one gateway -> greeter -> mesh -> names) "
              "while a names instance was killed, 0 failed")

    check("example_all_healthy", all_healthy)
    check("hello_calls_names_through_the_mesh", hello_through_the_mesh)
    check("names_persist_in_their_own_database", names_persist_in_their_own_database)
    def logs():
        env_cli = dict(env, SHOAL_ADDR=f"127.0.0.1:{ports['7700']}")
        out = subprocess.run([SHOAL, "logs", "names", "--grep", "listening", "--json"],
                             env=env_cli, capture_output=True, text=True, timeout=10)
        assert out.returncode == 0, out.stderr
        lines = [json.loads(l) for l in out.stdout.splitlines()]
        # the log store keeps the lines of the run before the restart too (same data dir)
        assert {l["instance"] for l in lines} == {"names-1", "names-2"}, lines
        assert len(lines) == 4, lines
        assert all(l["service"] == "names" and l["stream"] == "stdout" for l in lines), lines
        table = subprocess.run([SHOAL, "logs", "greeter"], env=env_cli, capture_output=True,
                               text=True, timeout=10)
        assert table.returncode == 0 and "greeter-1" in table.stdout, table
        assert "names-1" not in table.stdout, table.stdout
        try:
            lib.api_open(f"http://127.0.0.1:{ports['7700']}/v1/logs?since=soon",
                         os.path.join(d, ".shoal"))
            raise AssertionError("since=soon was accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 400 and json.loads(e.read())["field"] == "since", e.code
        state["follower"] = subprocess.Popen([SHOAL, "logs", "-f", "names", "--json"],
                                             env=env_cli, stdout=subprocess.PIPE, text=True)
        state["seen_seq"] = max(l["seq"] for l in lines)
    check("logs_by_service_and_grep", logs)
    check("kill9_of_names_under_load_fails_no_hello", kill9_of_names_under_load)

    def logs_follow():
        f = state["follower"]
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(f.stdout), daemon=True)
        reader.start()

        def restarted_output():
            got = [json.loads(l) for l in list(lines)]
            return [l for l in got if l["seq"] > state["seen_seq"] and "listening" in l["line"]]
        lib.wait_until(restarted_output,
                       what="the restarted instance's output to reach -f")
        f.send_signal(signal.SIGINT)
        f.wait(timeout=10)
        reader.join(timeout=10)
        assert f.returncode == 0, f.returncode
    check("logs_follow_sees_the_restarted_instance", logs_follow)
    def down():
        env_cli = dict(env, SHOAL_ADDR=f"127.0.0.1:{ports['7700']}")
        # without the token: refused, and everything keeps running
        no = subprocess.run([SHOAL, "down", "--data-dir", os.path.join(d, "nowhere")],
                            env=env_cli, capture_output=True, text=True, timeout=30)
        assert no.returncode == 1 and "401" in no.stderr, (no.returncode, no.stderr)
        assert call("/hello")[0] == 200
        pids = [json.loads(l)["pid"] for l in state["log"]
                if '"msg":"instance started"' in l and '"pid"' in l]
        ok = subprocess.run([SHOAL, "down", "--data-dir", os.path.join(d, ".shoal")],
                            env=env_cli, capture_output=True, text=True, timeout=70)
        assert ok.returncode == 0 and "stopped" in ok.stderr, (ok.returncode, ok.stderr)
        assert state["p"].wait(timeout=20) == 0, "shoal up did not exit 0 after shoal down"
        left = [p for p in pids if lib.alive(p)]
        assert not left, f"still running after shoal down: {left}"
    check("shoal_down_stops_everything_with_the_token_only", down)

    def fresh_data_dir_from_another_cwd():
        # `shoal up -f DIR/shoal.yaml --data-dir NEW` from elsewhere: nothing exists yet next
        # to the manifest or in NEW, and names finds its database through ${SHOAL_DATA_DIR}
        # (it used to open .shoal/names.sqlite relative to its working directory, and crash-loop)
        d2, cwd = lib.tempdir("shoal-example-m-"), lib.tempdir("shoal-cwd-")
        with open(os.path.join(d2, "shoal.yaml"), "w") as f:
            f.write(text)
        data = os.path.join(lib.tempdir("shoal-example-data-"), "data")
        p, log, healthy = lib.start_up(SHOAL, os.path.join(d2, "shoal.yaml"), env, cwd=cwd,
                                       args=("--data-dir", data))
        state["logs"].append(log)
        try:
            assert healthy.wait(30), "never all healthy:\n" + "".join(log[-15:])
            db = os.path.join(data, "services", "names", "names.sqlite")
            assert os.path.exists(db), os.listdir(data)
            assert os.stat(os.path.join(data, "services", "names")).st_mode & 0o777 == 0o700
            assert os.path.isdir(os.path.join(data, "services", "greeter"))
            assert not os.path.exists(os.path.join(d2, ".shoal")), os.listdir(d2)
            assert not os.listdir(cwd), os.listdir(cwd)
            status, got = call("/hello")
            assert status == 200 and got["greeting"].rstrip("!").split(", ", 1)[1] in SEED, got
        finally:
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=20) == 0, "shoal up did not exit 0"
    check("fresh_data_dir_from_another_cwd_all_healthy", fresh_data_dir_from_another_cwd)

    if state.get("p") and state["p"].poll() is None:
        check("stop", stop)
        if state["p"].poll() is None:
            state["p"].kill()
    if state.get("follower") and state["follower"].poll() is None:
        state["follower"].kill()
        state["follower"].wait()
    # under `make asan` the services are sanitized too: their reports arrive as log lines
    bad = [l for log in state.get("logs", []) for l in log
           if "Sanitizer" in l or "runtime error" in l]
    checks.result("services_report_no_sanitizer_errors", not bad, "\n" + "".join(bad[:10]))
    return checks.summary()

if __name__ == "__main__":
    sys.exit(main())
