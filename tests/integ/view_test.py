#!/usr/bin/env python3
"""The live status view of `shoal up` on a terminal (a pseudo-terminal here): the view is drawn
on the alternate screen with the services and instances, shoal's own log goes to
<data_dir>/shoal.log, SIGTERM restores the screen; --plain keeps plain log lines.
Usage: view_test.py PATH/TO/shoal"""
import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal_testlib as lib  # noqa: E402

SHOAL = os.path.abspath(sys.argv[1])


def run_on_pty(args, seconds, cwd):
    """Runs shoal with a 30x120 terminal for <seconds>, then SIGTERM; (exit code, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    env = dict(os.environ, TERM="xterm")
    env.pop("NO_COLOR", None)
    env.pop("SHOAL_TOKEN", None)
    p = subprocess.Popen([SHOAL, *args], stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                         env=env, cwd=cwd)
    os.close(slave)
    out = b""

    def read_for(t):
        nonlocal out
        end = time.monotonic() + t
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                if p.poll() is not None:
                    return
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other side closed
                return
            if not chunk:
                return
            out += chunk
    try:
        read_for(seconds)
        p.send_signal(signal.SIGTERM)
        read_for(15)
        return p.wait(timeout=15), out.decode(errors="replace")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


def main():
    d = lib.tempdir("shoal-view-")
    cp, mesh = lib.free_port(), lib.free_port()
    with open(os.path.join(d, "shoal.yaml"), "w") as f:
        f.write(f"""
name: viewtest
services:
  web:
    command: [{SHOAL}, echo, --listen, "127.0.0.1:$PORT", --name, web]
    port: auto
    replicas: 2
    health: {{http: /health, interval: 1s}}
control_plane: {{listen: 127.0.0.1:{cp}}}
mesh: {{listen: 127.0.0.1:{mesh}}}
""")
    checks = lib.Checks()
    state = {}

    def view_is_drawn():
        rc, out = run_on_pty(["up", "-f", "shoal.yaml"], 3.5, d)
        state["out"] = out
        assert rc == 0, (rc, out[-500:])
        assert "\x1b[?1049h" in out, "no alternate screen"
        frame = out.split("\x1b[H")[-1]
        for want in ("shoal up viewtest", "SERVICE", "INSTANCE", "OUTPUT", "web-1", "web-2"):
            assert want in frame, (want, frame)
        rows = [l for l in frame.splitlines() if l.lstrip("\x1b[0123456789m").startswith("web ")]
        assert rows and "2/2" in rows[0], rows
        assert frame.count("passing") == 2, frame
        assert "echo server listening" in frame, frame  # the services' output

    def screen_restored_on_sigterm():
        out = state["out"]
        tail = out[out.rindex("\x1b[?1049l"):]
        assert "stopping (SIGTERM)" in tail and "shoal up: stopped" in tail, tail

    def own_log_in_the_data_dir():
        with open(os.path.join(d, ".shoal", "shoal.log")) as f:
            recs = [json.loads(line) for line in f]
        msgs = [r["msg"] for r in recs]
        assert "all instances healthy" in msgs and "stopped" in msgs, msgs[-5:]
        assert '"comp":"supervisor"' not in state["out"], "log lines reached the terminal"

    def plain_keeps_log_lines():
        rc, out = run_on_pty(["up", "-f", "shoal.yaml", "--plain"], 2.5, d)
        assert rc == 0, (rc, out[-500:])
        assert "\x1b[?1049h" not in out, "the view was drawn with --plain"
        assert "all instances healthy" in out, out[-800:]

    checks.run("view_is_drawn_with_services_and_instances", view_is_drawn)
    checks.run("screen_restored_on_sigterm", screen_restored_on_sigterm)
    checks.run("own_log_in_the_data_dir", own_log_in_the_data_dir)
    checks.run("plain_keeps_log_lines", plain_keeps_log_lines)
    return checks.summary()


if __name__ == "__main__":
    sys.exit(main())
