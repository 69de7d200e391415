#!/usr/bin/env python3
"""Chaos tests: closed-loop GETs through shoal's gateway while upstream processes are killed
with SIGKILL; the share of GETs that succeed must reach --min-ratio (default 99.9%).

  chaos_test.py SHOAL gateway [options]   `shoal gateway` in front of three `shoal echo` on fixed
                                          ports; every 2-3 s one echo is killed -9 and started
                                          again on its port 100-500 ms later
  chaos_test.py SHOAL up [options]        `shoal up` of examples/hello; every 2-3 s one instance
                                          (greeter or names) is killed -9; the supervisor
                                          restarts it; all must be back (ready) at the end
  chaos_test.py SHOAL soak [--of up|gateway] [options]
                                          the same for minutes (--duration, default 300 s),
                                          sampling the shoal process's RSS and open fds: fails
                                          when RSS grows more than 5% after --warmup or the fd
                                          count does not stay flat

Load: --connections keep-alive connections driven by one epoll loop (one Python thread, so it
never uses more than one core; --think-ms pauses each connection between requests to use
less). A GET counts as ok on a 2xx; a non-2xx status, a reset, an early close or no answer
within --request-timeout counts as failed; GETs still in flight when the run ends are left
out. The summary is one JSON line starting with "chaos-summary ", with the gateway's breaker,
ejection and retry counters; exit 0 when every check passed, 1 otherwise.

Loopback only; bounded by --time-limit; kills only processes it started (for `up`: instances
whose parent is the `shoal up` it started). Python 3 standard library only."""
import argparse
import array
import errno
import json
import os
import random
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal_testlib as lib  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Load generator: N closed-loop keep-alive connections on one selector.

class _Conn:
    __slots__ = ("sock", "state", "t0", "buf", "out", "wake", "deadline")

    def __init__(self):
        self.sock = None
        self.state = "idle"   # idle (waiting to send) | connecting | busy (request sent)
        self.t0 = 0.0
        self.buf = b""
        self.out = b""
        self.wake = 0.0
        self.deadline = 0.0


def _parse_response(buf):
    """(status, keep_alive, consumed) for a complete response at the start of buf, or None
    while incomplete. Raises ValueError on a malformed one."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > 65536:
            raise ValueError("response head over 64 KiB")
        return None
    lines = buf[:end].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError(f"bad status line {lines[0][:80]!r}")
    status = int(parts[1])
    length, chunked, keep = None, False, parts[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = value.endswith(b"chunked")
        elif name == b"connection":
            keep = b"close" not in value if keep else b"keep-alive" in value
    pos = end + 4
    if status in (204, 304) or 100 <= status < 200:
        return status, keep, pos
    if chunked:
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(buf[pos:eol].split(b";")[0], 16)
            pos = eol + 2
            if size == 0:
                while True:  # trailers, up to the empty line
                    eol = buf.find(b"\r\n", pos)
                    if eol < 0:
                        return None
                    if eol == pos:
                        return status, keep, eol + 2
                    pos = eol + 2
            if len(buf) < pos + size + 2:
                return None
            pos += size + 2
    if length is None:
        raise ValueError("response without Content-Length or chunked (read-to-close)")
    if len(buf) < pos + length:
        return None
    return status, keep, pos + length


class LoadGen:
    """Closed-loop GETs of <path> on 127.0.0.1:<port> over <conns> keep-alive connections, on
    one thread. Counts per status / error, keeps every latency and per-second ok/failed."""

    def __init__(self, port, path, conns, think_s=0.0, request_timeout=10.0):
        self.addr = ("127.0.0.1", port)
        self.req = f"GET {path} HTTP/1.1\r\nHost: chaos\r\nUser-Agent: shoal-chaos\r\n\r\n".encode()
        self.nconns = conns
        self.think = think_s
        self.timeout = request_timeout
        self.by = {}                     # "200" / "503" / "err:reset" -> count
        self.latency = array.array("d")  # seconds, every finished GET
        self.per_sec = {}                # second -> [ok, failed]
        self.first_seen = {}             # failure kind -> second it was first seen
        self.ok = self.failed = 0
        self.unfinished = 0
        self._stop = threading.Event()
        self._thread = None
        self.t_start = 0.0
        self.t_end = 0.0

    # accounting
    def _done(self, c, key, now):
        self.by[key] = self.by.get(key, 0) + 1
        self.latency.append(now - c.t0)
        sec = int(now - self.t_start)
        slot = self.per_sec.setdefault(sec, [0, 0])
        if key.startswith("2") and len(key) == 3:
            self.ok += 1
            slot[0] += 1
        else:
            self.failed += 1
            slot[1] += 1
            self.first_seen.setdefault(key, round(now - self.t_start, 3))

    def start(self):
        self._thread = threading.Thread(target=self._run, name="loadgen", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the load generator did not stop"

    def _close(self, sel, c):
        if c.sock is not None:
            try:
                sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            c.sock.close()
            c.sock = None
        c.buf = b""

    def _fail(self, sel, c, key, now):
        self._done(c, key, now)
        self._close(sel, c)
        c.state, c.wake = "idle", now + self.think

    def _send(self, sel, c, now):
        """Starts one GET on c (opening a connection when it has none)."""
        c.t0, c.deadline, c.buf = now, now + self.timeout, b""
        if c.sock is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rc = s.connect_ex(self.addr)
            c.sock = s
            if rc not in (0, errno.EINPROGRESS):
                self._fail(sel, c, "err:connect-" + errno.errorcode.get(rc, str(rc)), now)
                return
            c.state, c.out = "connecting", self.req
            sel.register(s, selectors.EVENT_WRITE, c)
            return
        c.state, c.out = "busy", self.req
        self._write(sel, c, now)

    def _write(self, sel, c, now):
        try:
            n = c.sock.send(c.out)
        except BlockingIOError:
            n = 0
        except OSError as e:
            self._fail(sel, c, "err:send-" + errno.errorcode.get(e.errno, str(e.errno)), now)
            return
        c.out = c.out[n:]
        sel.modify(c.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0), c)

    def _event(self, sel, c, mask, now):
        if c.state == "connecting":
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._fail(sel, c, "err:connect-" + errno.errorcode.get(err, str(err)), now)
                return
            c.state = "busy"
            self._write(sel, c, now)
            return
        if mask & selectors.EVENT_WRITE and c.out:
            self._write(sel, c, now)
            if c.sock is None:
                return
        if not mask & selectors.EVENT_READ:
            return
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except ConnectionResetError:
            self._fail(sel, c, "err:reset", now)
            return
        except OSError as e:
            self._fail(sel, c, "err:recv-" + errno.errorcode.get(e.errno, str(e.errno)), now)
            return
        if not data:
            self._fail(sel, c, "err:closed-mid-response" if c.buf else "err:closed", now)
            return
        if c.state != "busy":  # bytes nobody asked for
            self._fail(sel, c, "err:unsolicited-bytes", now)
            return
        c.buf += data
        try:
            got = _parse_response(c.buf)
        except ValueError as e:
            self._fail(sel, c, "err:bad-response", now)
            self.first_seen.setdefault("err:bad-response: " + str(e)[:80],
                                       round(now - self.t_start, 3))
            return
        if got is None:
            return
        status, keep, used = got
        self._done(c, str(status), now)
        if used != len(c.buf) or not keep:
            self._close(sel, c)
        c.buf = b""
        if self.think > 0:
            c.state, c.wake = "idle", now + self.think
        else:
            self._send(sel, c, now)

    def _run(self):
        sel = selectors.DefaultSelector()
        conns = [_Conn() for _ in range(self.nconns)]
        self.t_start = time.monotonic()
        for c in conns:
            c.wake = self.t_start
        next_scan = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_scan:
                    for c in conns:
                        if c.state == "idle" and c.wake <= now:
                            self._send(sel, c, now)
                        elif c.state != "idle" and now > c.deadline:
                            self._fail(sel, c, "err:timeout", now)
                    next_scan = now + (min(self.think, 0.01) if self.think > 0 else 0.05)
                if not sel.get_map():
                    time.sleep(max(0.0, next_scan - time.monotonic()))
                    continue
                for key, mask in sel.select(timeout=max(0.0, next_scan - now)):
                    self._event(sel, key.data, mask, time.monotonic())
        finally:
            self.t_end = time.monotonic()
            self.unfinished = sum(1 for c in conns if c.state != "idle")
            for c in conns:
                self._close(sel, c)
            sel.close()

    def summary(self):
        lat = sorted(self.latency)

        def pct(p):
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else None
        total = self.ok + self.failed
        secs = [s for s, (_, f) in sorted(self.per_sec.items()) if f]
        return {
            "requests": total, "ok": self.ok, "failed": self.failed,
            "ratio": round(self.ok / total, 6) if total else 0.0,
            "in_flight_at_end": self.unfinished,
            "by_status": dict(sorted(self.by.items())),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "p999_ms": pct(0.999),
            "max_ms": round(lat[-1] * 1000, 2) if lat else None,
            "rps": round(total / max(1e-9, self.t_end - self.t_start), 1),
            "seconds_with_failures": len(secs),
            "first_seen_s": self.first_seen,
        }

    def failure_timeline(self):
        """[[second, ok, failed]] for the seconds that had failures."""
        return [[s, v[0], v[1]] for s, v in sorted(self.per_sec.items()) if v[1]]


# ---------------------------------------------------------------------------------------------
# Processes

def cpu_seconds(pid):
    """utime + stime of <pid> in seconds, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def fd_count(pid):
    """(all open fds, of which sockets) of <pid>, or (-1, -1)."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return -1, -1
    socks = 0
    for n in names:
        try:
            socks += os.readlink(f"/proc/{pid}/fd/{n}").startswith("socket:")
        except OSError:
            pass
    return len(names), socks


def parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def http_get(port, path, timeout=5.0, data_dir=None):
    """GET; with data_dir, as the admin API wants it (the stack's token)."""
    with lib.api_open(f"http://127.0.0.1:{port}{path}", data_dir, timeout=timeout) as r:
        return r.status, r.read()


INTERESTING = re.compile(r"breaker|ejection|fast_fails|retries_total|upstream_errors|"
                         r"endpoint_healthy|responses_total|cluster_requests_total")


def gateway_counters(admin_port):
    """The breaker / ejection / retry / health lines of the gateway's /metrics."""
    try:
        _, text = http_get(admin_port, "/metrics")
    except OSError as e:
        return {"error": repr(e)}
    out = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#") and INTERESTING.search(line):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


class Sampler:
    """Samples RSS (KiB), open fds, sockets among them and CPU seconds of one pid every <every>
    seconds."""

    def __init__(self, pid, every):
        self.pid, self.every = pid, every
        self.samples = []  # (t, rss_kib, fds, sockets, cpu_s)
        self._stop = threading.Event()
        self.t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            rss = lib.proc_status_kib(self.pid, "VmRSS") if lib.alive(self.pid) else -1
            fds, socks = fd_count(self.pid)
            self.samples.append((round(time.monotonic() - self.t0, 1), rss, fds, socks,
                                 cpu_seconds(self.pid)))
            if self._stop.wait(self.every):
                return

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)


def judge_soak(samples, warmup, window, rss_limit, fd_slack):
    """Growth between the window right after warm-up and the last window. RSS may grow at most
    rss_limit (min of the last window over max of the first). Fds other than sockets (files,
    pipes, eventfds...) may grow at most fd_slack (max over max). Sockets come and go with the
    connection pools (tens of them either way within seconds), so only the lowest socket count
    of the last window above the highest of the first (plus fd_slack) fails: a gross leak, not
    a slow one. Returns (report, problems)."""
    if not samples:
        return {"error": "no samples"}, ["no samples"]
    end = samples[-1][0]
    base = [s for s in samples if warmup <= s[0] <= warmup + window]
    last = [s for s in samples if s[0] >= end - window]
    if not base or not last or end - window < warmup + window:
        return ({"error": f"run too short for warm-up {warmup}s + two {window}s windows"},
                [f"soak too short: {end:.0f}s sampled, need > {warmup + 2 * window:g}s"])
    rss_base, rss_last = max(s[1] for s in base), min(s[1] for s in last)
    other_base, other_last = max(s[2] - s[3] for s in base), max(s[2] - s[3] for s in last)
    sock_base, sock_last = max(s[3] for s in base), min(s[3] for s in last)
    growth = rss_last / rss_base - 1 if rss_base > 0 else 0.0
    report = {"warmup_s": warmup, "window_s": window, "rss_kib_after_warmup": rss_base,
              "rss_kib_end": rss_last, "rss_growth": round(growth, 4),
              "rss_kib_first": samples[0][1], "rss_kib_peak": max(s[1] for s in samples),
              "non_socket_fds_after_warmup": other_base, "non_socket_fds_end": other_last,
              "sockets_after_warmup_max": sock_base, "sockets_end_min": sock_last,
              "fds_min": min(s[2] for s in samples), "fds_max": max(s[2] for s in samples)}
    problems = []
    if growth > rss_limit:
        problems.append(f"RSS grew {growth * 100:.1f}% after warm-up ({rss_base} -> {rss_last} KiB),"
                        f" limit {rss_limit * 100:g}%")
    if other_last - other_base > fd_slack:
        problems.append(f"open fds other than sockets grew {other_base} -> {other_last} after "
                        f"warm-up (slack {fd_slack})")
    if sock_last - sock_base > fd_slack:
        problems.append(f"open sockets grew after warm-up: at least {sock_last} in the last "
                        f"{window:g} s, at most {sock_base} after warm-up (slack {fd_slack})")
    return report, problems


# ---------------------------------------------------------------------------------------------
# Scenario: shoal gateway + three shoal echo

class GatewayScenario:
    name = "gateway"
    path = "/chaos"

    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.ports = [lib.free_port() for _ in range(3)]
        self.echoes = [None, None, None]
        self.gw = None
        self.restart_failures = 0

    def start(self):
        for i in range(3):
            self.echoes[i] = self._echo(i)
        self.port, self.admin = lib.free_port(), lib.free_port()
        eps = ", ".join(f"127.0.0.1:{p}" for p in self.ports)
        workers = f"workers: {self.args.workers}\n" if self.args.workers else ""
        # Default resilience (no retry/breaker/outlier keys); active health checks as the
        # example manifest has them.
        cfg = (f"listen: 127.0.0.1:{self.port}\nadmin: 127.0.0.1:{self.admin}\n{workers}"
               f"clusters:\n  - name: echo\n    endpoints: [{eps}]\n"
               f"    health: {{path: /health, interval: 1s, timeout: 500ms}}\n"
               f"routes:\n  - {{match: {{prefix: /}}, cluster: echo}}\n")
        path = os.path.join(self.tmp, "gateway.yaml")
        with open(path, "w") as f:
            f.write(cfg)
        self.errlog = os.path.join(self.tmp, "gateway.stderr")
        self.gw = subprocess.Popen([self.args.shoal, "gateway", "-c", path, "--grace", "2s"],
                                   stdout=subprocess.DEVNULL, stderr=open(self.errlog, "w"))
        lib.wait_until(lambda: self.gw.poll() is not None or self._logged("gateway listening"),
                       10, "the gateway to listen")
        assert self.gw.poll() is None, f"gateway exited {self.gw.returncode}: {self._tail()}"
        lib.wait_until(lambda: self._get_ok(), 10, "a first 200 through the gateway")
        log(f"gateway pid {self.gw.pid} on :{self.port} (admin :{self.admin}), "
            f"echo upstreams on {self.ports}")

    def _echo(self, i):
        # the port may need a moment to be free again
        echo = lambda: lib.Echo("--name", f"e{i}", listen=f"127.0.0.1:{self.ports[i]}")  # noqa: E731
        return lib.wait_until(echo,
                              2, f"echo e{i} listening on {self.ports[i]} again",
                              interval=0.05, retry_on=(AssertionError, ValueError))

    def _logged(self, text):
        with open(self.errlog) as f:
            return text in f.read()

    def _tail(self):
        with open(self.errlog) as f:
            return "".join(f.readlines()[-10:])

    def _get_ok(self):
        try:
            return http_get(self.port, self.path)[0] == 200
        except OSError:
            return False

    def main_pid(self):
        return self.gw.pid

    def load_port(self):
        return self.port

    def admin_port(self):
        return self.admin

    def chaos_once(self, rng, stop):
        i = rng.randrange(3)
        e = self.echoes[i]
        e.proc.kill()
        e.proc.wait()
        delay = rng.uniform(*self.args.restart_delay)
        stop.wait(delay)  # restart even when stopping: the run ends with all three up
        try:
            self.echoes[i] = self._echo(i)
        except AssertionError:
            self.restart_failures += 1
            raise
        return f"e{i} (:{self.ports[i]}) killed, back after {delay * 1000:.0f} ms"

    def finish(self):
        """Checks at the end: all three up and the gateway alive. Returns problems."""
        problems = []
        if self.gw.poll() is not None:
            problems.append(f"the gateway exited {self.gw.returncode}: {self._tail()}")
        down = [i for i, e in enumerate(self.echoes) if e is None or e.proc.poll() is not None]
        if down:
            problems.append(f"echo upstreams not running at the end: {down}")
        return problems

    def stop(self):
        problems = []
        if self.gw is not None and self.gw.poll() is None:
            self.gw.send_signal(signal.SIGTERM)
            try:
                rc = self.gw.wait(timeout=15)
                if rc != 0:
                    problems.append(f"gateway exited {rc} on SIGTERM: {self._tail()}")
            except subprocess.TimeoutExpired:
                self.gw.kill()
                self.gw.wait()
                problems.append("gateway did not stop within 15 s of SIGTERM")
        for e in self.echoes:
            if e is not None:
                e.stop()
        return problems

    def log_text(self):
        return "" if self.gw is None else open(self.errlog).read()


# ---------------------------------------------------------------------------------------------
# Scenario: shoal up of examples/hello

class UpScenario:
    name = "up"
    path = "/hello"

    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.proc = None
        self.kills = {}     # instance id -> [monotonic times we killed it]
        self.skipped = 0

    def start(self):
        a = self.args
        self.ports = {p: lib.free_port() for p in ("8080", "8081", "7700", "7701")}
        with open(os.path.join(ROOT, "examples/hello/shoal.yaml")) as f:
            text = f.read()
        for fixed, free in self.ports.items():
            assert f"127.0.0.1:{fixed}" in text, fixed
            text = text.replace(f"127.0.0.1:{fixed}", f"127.0.0.1:{free}")
        bindir = os.path.join(os.path.dirname(os.path.abspath(a.shoal)), "examples")
        for exe in ("hello-greeter", "hello-names"):
            assert os.access(os.path.join(bindir, exe), os.X_OK), \
                f"{bindir}/{exe} is not built (make builds it next to shoal)"
        assert "../../build/examples/" in text
        text = text.replace("../../build/examples/", bindir + "/")
        # the manifest lives in the temp dir: its working_dir and data_dir (.shoal, where
        # names keeps its SQLite file) are there
        manifest = os.path.join(self.tmp, "shoal.yaml")
        with open(manifest, "w") as f:
            f.write(text)
        env = dict(os.environ)
        env.pop("SHOAL_TOKEN", None)
        self.proc, self.log, healthy = lib.start_up(a.shoal, manifest, env, cwd=self.tmp)
        end = time.monotonic() + 60
        while not healthy.wait(0.2):
            assert self.proc.poll() is None, \
                f"shoal up exited {self.proc.returncode}: {''.join(self.log[-10:])}"
            assert time.monotonic() < end, \
                f"not all instances healthy within 60 s: {''.join(self.log[-10:])}"
        lib.wait_until(lambda: self._get_ok(), 10, "a first 200 from /hello")
        log(f"shoal up pid {self.proc.pid}: gateway :{self.ports['8080']} "
            f"(admin :{self.ports['8081']}), control plane :{self.ports['7700']}")

    def _get_ok(self):
        try:
            return http_get(self.ports["8080"], self.path)[0] == 200
        except OSError:
            return False

    def instances(self):
        _, body = http_get(self.ports["7700"], "/v1/instances",
                           data_dir=os.path.join(self.tmp, ".shoal"))
        return json.loads(body)

    def stack(self):
        _, body = http_get(self.ports["7700"], "/v1/stack",
                           data_dir=os.path.join(self.tmp, ".shoal"))
        return json.loads(body)

    def main_pid(self):
        return self.proc.pid

    def load_port(self):
        return self.ports["8080"]

    def admin_port(self):
        return self.ports["8081"]

    def chaos_once(self, rng, stop):
        now = time.monotonic()
        try:
            insts = self.instances()
        except (OSError, ValueError) as e:
            self.skipped += 1
            return f"GET /v1/instances failed: {e!r} (skipped)"
        passing = {}
        for i in insts:
            if i["state"] == "running" and i["health"] == "passing":
                passing[i["service"]] = passing.get(i["service"], 0) + 1
        victims = []
        for i in insts:
            recent = [t for t in self.kills.get(i["id"], []) if now - t < 60]
            self.kills[i["id"]] = recent
            # a ready instance whose service keeps another ready one (killing the last one
            # takes the whole service away: no proxy can hide that), killed fewer than
            # --max-kills times in the last minute (5 restarts within 60 s is a crash loop
            # by design, docs/manifest.md)
            if (i["state"] == "running" and i["health"] == "passing" and i.get("pid", 0) > 0
                    and passing.get(i["service"], 0) >= 2 and len(recent) < self.args.max_kills
                    and parent_of(i["pid"]) == self.proc.pid):
                victims.append(i)
        if not victims:
            self.skipped += 1
            return "no instance may be killed now (skipped)"
        v = rng.choice(victims)
        os.kill(v["pid"], signal.SIGKILL)
        self.kills[v["id"]].append(now)
        return f"{v['id']} (pid {v['pid']}) killed"

    def finish(self):
        """All instances back (running, passing, as many ready as wanted) within the deadline."""
        problems = []
        if self.proc.poll() is not None:
            return [f"shoal up exited {self.proc.returncode}: {''.join(self.log[-10:])}"]
        state = {}

        def all_back():
            try:
                st = self.stack()
                insts = self.instances()
            except (OSError, ValueError):
                return False
            state.update(stack=st, instances=insts)
            ok = all(s["ready"] == s["replicas"] and s["instances"] == s["replicas"]
                     for s in st["services"])
            return ok and all(i["state"] == "running" and i["health"] == "passing"
                              for i in insts)
        t0 = time.monotonic()
        try:
            lib.wait_until(all_back, self.args.recover_deadline, "every instance back", interval=0.2)
            log(f"every instance running and passing {time.monotonic() - t0:.1f} s after the "
                "last kill window")
        except AssertionError as e:
            brief = [(i["id"], i["state"], i["health"], i["restarts"])
                     for i in state.get("instances", [])]
            problems.append(f"{e}: instances {brief}")
        self.final_instances = [{k: i.get(k) for k in ("id", "state", "health", "restarts")}
                                for i in state.get("instances", [])]
        return problems

    def stop(self):
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            pids = [p for p in (i.get("pid", 0) for i in self._safe_instances()) if p > 0]
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=30)
                if rc != 0:
                    problems.append(f"shoal up exited {rc} on SIGTERM")
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("shoal up did not stop within 30 s of SIGTERM")
            left = [p for p in pids if lib.alive(p) and parent_of(p) in (self.proc.pid, 1)]
            if left:
                problems.append(f"instances still running after shoal up stopped: {left}")
        return problems

    def _safe_instances(self):
        try:
            return self.instances()
        except (OSError, ValueError):
            return []

    def log_text(self):
        return "".join(self.log) if self.proc is not None else ""


# ---------------------------------------------------------------------------------------------

def run(args):
    kind = args.of if args.scenario == "soak" else args.scenario
    tmp = tempfile.mkdtemp(prefix=f"shoal-chaos-{kind}-")
    sc = (GatewayScenario if kind == "gateway" else UpScenario)(args, tmp)
    rng = random.Random(args.seed)
    problems, events = [], []
    sampler = load = None
    stop = threading.Event()
    try:
        sc.start()
        main_pid = sc.main_pid()
        sampler = Sampler(main_pid, args.sample_every)
        cpu0, ru0 = cpu_seconds(main_pid), resource.getrusage(resource.RUSAGE_SELF)
        load = LoadGen(sc.load_port(), sc.path, args.connections, args.think_ms / 1000.0,
                       args.request_timeout)
        t0 = time.monotonic()
        load.start()
        log(f"{kind}: {args.connections} connections, GET {sc.path}, {args.duration:g} s, "
            f"a kill every {args.kill_every[0]:g}-{args.kill_every[1]:g} s (seed {args.seed})")
        end = t0 + args.duration
        next_kill = t0 + rng.uniform(*args.kill_every)
        kills = 0
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now < next_kill:
                stop.wait(min(next_kill, end) - now)
                continue
            what = sc.chaos_once(rng, stop)
            t = round(time.monotonic() - t0, 2)
            events.append([t, what])
            kills += "skipped" not in what
            if args.verbose:
                log(f"  t={t:6.2f}s {what}")
            next_kill = now + rng.uniform(*args.kill_every)
        load.stop()
        wall = time.monotonic() - t0
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu1 = cpu_seconds(main_pid)
        problems += sc.finish()
        sampler.stop()
        summary = {"scenario": args.scenario, "target": kind, "duration_s": round(wall, 1),
                   "connections": args.connections, "think_ms": args.think_ms,
                   "kills": kills, "seed": args.seed}
        summary.update(load.summary())
        summary["min_ratio"] = args.min_ratio
        summary["cpu"] = {
            "loadgen_core_share": round((ru1.ru_utime + ru1.ru_stime - ru0.ru_utime
                                         - ru0.ru_stime) / wall, 3),
            "shoal_core_share": (round((cpu1 - cpu0) / wall, 3)
                                 if cpu0 is not None and cpu1 is not None else None),
            "cores": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)}
        if kind == "up":
            summary["skipped_kill_rounds"] = sc.skipped
            summary["instances_at_end"] = getattr(sc, "final_instances", None)
        summary["gateway_metrics"] = gateway_counters(sc.admin_port())
        if summary["requests"] == 0:
            problems.append("no request finished")
        elif summary["ratio"] < args.min_ratio:
            problems.append(f"{summary['ok']}/{summary['requests']} GETs ok "
                            f"({summary['ratio'] * 100:.3f}%), below --min-ratio "
                            f"{args.min_ratio * 100:g}%")
        samples = sampler.samples
        summary["shoal_rss_kib"] = [samples[0][1], max(s[1] for s in samples), samples[-1][1]]
        summary["shoal_fds"] = [samples[0][2], max(s[2] for s in samples), samples[-1][2]]
        if args.scenario == "soak":
            report, bad = judge_soak(samples, args.warmup, args.window, args.rss_growth,
                                     args.fd_slack)
            summary["soak"] = report
            problems += bad
            print("soak samples [t_s, rss_kib, fds, sockets, cpu_s]: "
                  + json.dumps([list(s) for s in samples]), flush=True)
        print("failure timeline [second, ok, failed]: " + json.dumps(load.failure_timeline()),
              flush=True)
        print("kills [t_s, what]: " + json.dumps(events), flush=True)
        print("chaos-summary " + json.dumps(summary), flush=True)
        if args.json_out:
            with open(args.json_out, "a") as f:
                f.write(json.dumps(summary) + "\n")
    except Exception as e:  # noqa: BLE001 - report, stop what was started, fail
        problems.append(f"{type(e).__name__}: {e}")
    finally:
        stop.set()
        if load is not None and load._thread is not None and load._thread.is_alive():
            load.stop()
        if sampler is not None:
            sampler.stop()
        text = sc.log_text()
        problems += sc.stop()
        bad = [l for l in text.splitlines() if "Sanitizer" in l or "runtime error" in l]
        if bad:
            problems.append("sanitizer report:\n" + "\n".join(bad[:10]))
        if problems:
            print("--- shoal log tail ---\n" + "\n".join(text.splitlines()[-15:]), flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
    for p in problems:
        print(f"FAIL chaos {args.scenario}: {p}", flush=True)
    if not problems:
        print(f"ok   chaos {args.scenario}", flush=True)
    return 1 if problems else 0


def pair(text):
    a, _, b = text.partition(",")
    lo, hi = float(a), float(b or a)
    if lo < 0 or hi < lo:
        raise argparse.ArgumentTypeError(f"{text!r}: want MIN,MAX with 0 <= MIN <= MAX")
    return lo, hi


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shoal", help="path of the shoal binary")
    p.add_argument("scenario", choices=("gateway", "up", "soak"))
    p.add_argument("--of", choices=("gateway", "up"), default="up",
                   help="soak: which scenario to run for long (default up)")
    p.add_argument("--duration", type=float, help="seconds of load (default 35; soak 300)")
    p.add_argument("--connections", type=int, default=16, help="closed-loop connections")
    p.add_argument("--think-ms", type=float, default=0.0,
                   help="pause of each connection between two GETs (default 0: closed loop)")
    p.add_argument("--kill-every", type=pair, default=(2.0, 3.0), metavar="MIN,MAX",
                   help="seconds between kills, uniform (default 2,3)")
    p.add_argument("--restart-delay", type=pair, default=(0.1, 0.5), metavar="MIN,MAX",
                   help="gateway: seconds before a killed echo starts again (default 0.1,0.5)")
    p.add_argument("--workers", type=int, default=0, help="gateway: workers (default: shoal's)")
    p.add_argument("--max-kills", type=int, default=4,
                   help="up: kills of one instance within 60 s at most (default 4; the 5th "
                        "restart within 60 s is a crash loop by design)")
    p.add_argument("--request-timeout", type=float, default=10.0,
                   help="seconds without a full answer before a GET counts as failed")
    p.add_argument("--min-ratio", type=float, default=0.999,
                   help="share of GETs that must succeed (default 0.999)")
    p.add_argument("--recover-deadline", type=float, default=30.0,
                   help="up: seconds for every instance to be back after the run")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--sample-every", type=float, default=None,
                   help="seconds between RSS / fd samples (default 5; soak 2)")
    p.add_argument("--warmup", type=float, default=60.0,
                   help="soak: seconds before the baseline window (default 60)")
    p.add_argument("--window", type=float, default=30.0,
                   help="soak: length of the baseline and the final window (default 30)")
    p.add_argument("--rss-growth", type=float, default=0.05,
                   help="soak: RSS growth allowed after warm-up (default 0.05)")
    p.add_argument("--fd-slack", type=int, default=4,
                   help="soak: growth allowed of the open fds (default 4)")
    p.add_argument("--time-limit", type=float, default=None,
                   help="hard limit in seconds for the whole run (default duration + 180)")
    p.add_argument("--json-out", help="append the summary line to this file")
    p.add_argument("-v", "--verbose", action="store_true", help="log every kill")
    args = p.parse_args()
    if args.duration is None:
        args.duration = 300.0 if args.scenario == "soak" else 35.0
    if args.sample_every is None:
        args.sample_every = 2.0 if args.scenario == "soak" else 5.0
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    if args.connections < 1:
        p.error("--connections must be at least 1")
    if not 0 < args.min_ratio <= 1:
        p.error("--min-ratio must be in (0, 1]")
    args.shoal = os.path.abspath(args.shoal)
    if not os.access(args.shoal, os.X_OK):
        p.error(f"{args.shoal} is not an executable")
    lib.set_binary(args.shoal)
    limit = args.time_limit or args.duration + 180

    def watchdog():
        # the hard limit: stop what we started (our children, by PID) and fail
        print(f"FAIL chaos {args.scenario}: hard time limit of {limit:g} s reached", flush=True)
        pids = child_pids()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            end = time.monotonic() + 5
            while time.monotonic() < end and any(lib.alive(p) for p in pids):
                time.sleep(0.05)
        os._exit(1)
    timer = threading.Timer(limit, watchdog)
    timer.daemon = True
    timer.start()
    rc = run(args)
    timer.cancel()
    return rc


def child_pids():
    """The processes this one started (from any of its threads)."""
    direct = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{task}/children") as f:
                direct += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return sorted(set(direct))


if __name__ == "__main__":
    sys.exit(main())
