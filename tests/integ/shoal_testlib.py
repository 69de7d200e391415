"""Shared pieces of shoal's integration tests: processes on 127.0.0.1 and a raw HTTP reader.
Everything is bounded in time; only processes started here are stopped, by PID."""
import atexit
import json
import os
import urllib.request
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SHOAL = None  # set by the test script: path of the shoal binary
TIMEOUT = 10.0
WAIT = 20.0  # deadline of wait_until: generous, CI is a busy 2-core machine running ASan


_TEMP_DIRS = []


def tempdir(prefix):
    """A new temporary directory, removed when the test program exits (pass or fail)."""
    d = tempfile.mkdtemp(prefix=prefix)
    _TEMP_DIRS.append(d)
    return d


atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in _TEMP_DIRS])


def wait_until(fn, timeout=WAIT, what=None, interval=0.02, retry_on=()):
    """Polls fn() every <interval> s until it returns something truthy, and returns that value.
    After <timeout> s raises AssertionError naming <what> (default: fn's source name) and the
    last value fn returned. Exceptions of the types in <retry_on> count as "not yet"; any other
    propagates. Tests wait on the condition this way, never on a fixed sleep."""
    end = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
        except retry_on as exc:  # noqa: PERF203
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= end:
            name = what or getattr(fn, "__name__", "condition")
            raise AssertionError(f"timed out after {timeout:g}s waiting for {name} "
                                 f"(last: {last!r:.300})")
        time.sleep(interval)


def _tcp_sockets():
    """(local_port, remote_port, state, rx_queue) of each TCP socket in /proc/net/tcp{,6}."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, rem, state, queues = fields[1], fields[2], fields[3], fields[4]
                    yield (int(local.rsplit(":", 1)[1], 16), int(rem.rsplit(":", 1)[1], 16),
                           state, int(queues.split(":")[1], 16))
        except FileNotFoundError:
            pass


def tcp_listening(port):
    """Whether a socket listens on <port> (any address)."""
    return any(lp == port and st == "0A" for lp, _, st, _ in _tcp_sockets())


def tcp_rx_queue(local_port, remote_port):
    """Bytes the kernel holds unread for the socket <local_port> <- <remote_port> (the server
    side of a connection), or -1 when there is no such socket."""
    for lp, rp, st, rx in _tcp_sockets():
        if lp == local_port and rp == remote_port and st != "0A":
            return rx
    return -1


def tcp_established(remote_port):
    """How many ESTABLISHED TCP connections (IPv4 and IPv6, any process in this network
    namespace) have 127.0.0.1:<remote_port> (or ::1) as their remote end: the connections
    clients hold to a server on that port, as the kernel sees them."""
    return sum(1 for _, rp, st, _ in _tcp_sockets() if st == "01" and rp == remote_port)


def proc_status_kib(pid, field):
    """A /proc/<pid>/status memory field (VmRSS, VmHWM) in KiB, or -1."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def free_port():
    """A port nobody listens on at the moment, on 127.0.0.1."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Checks:
    """Runs named checks in order, printing ok/FAIL with the time taken (and, on failure, the
    tail of <log>, a list of lines, when given); summary() prints the counts."""

    def __init__(self, log=None):
        self.passed = self.failed = 0
        self.log = log

    def run(self, name, fn):
        t0 = time.monotonic()
        try:
            fn()
            self.passed += 1
            print(f"ok   {name} ({time.monotonic() - t0:.2f}s)", flush=True)
        except Exception as exc:  # noqa: BLE001 - report and go on
            self.failed += 1
            tail = "".join(self.log()[-8:]) if self.log else ""
            print(f"FAIL {name}: {type(exc).__name__}: {exc}\n{tail}", flush=True)

    def result(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {name}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {name}: {detail}", flush=True)

    def summary(self):
        print(f"{self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0


class Load:
    """Calls fn() in a loop on a thread (pause seconds apart) until stop(); counts the calls
    that returned and keeps the repr of those that raised (URLError, ConnectionError,
    ValueError). Bounded by the caller: stop() ends it."""

    def __init__(self, fn, pause=0.005):
        import urllib.error
        self.done, self.failures = 0, []
        self._stop = threading.Event()
        errors = (urllib.error.URLError, ConnectionError, ValueError)

        def loop():
            while not self._stop.is_set():
                try:
                    fn()
                    self.done += 1
                except errors as e:
                    self.failures.append(repr(e))
                time.sleep(pause)
        self._thread = threading.Thread(target=loop)
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)
        return self


def terminate(proc, timeout=10):
    """SIGTERM to a Popen we started, waited for <timeout> s, then SIGKILL. Returns True when it
    stopped on SIGTERM (or had already exited)."""
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False


def alive(pid):
    """Whether process <pid> exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def token_of(data_dir):
    """The root API token `shoal up`/`shoal server` keeps in DATA_DIR/token."""
    with open(os.path.join(data_dir, "token")) as f:
        return f.read().strip()


def api_open(url, data_dir=None, token=None, data=None, method=None, timeout=5):
    """urllib.request.urlopen of an admin API URL with 'Authorization: Bearer' (every route but
    GET /v1/status needs a token): <token>, or the root token of <data_dir>."""
    req = urllib.request.Request(url, data=data, method=method)
    tok = token if token is not None else token_of(data_dir) if data_dir else None
    if tok:
        req.add_header("Authorization", f"Bearer {tok}")
    return urllib.request.urlopen(req, timeout=timeout)


def start_up(shoal, manifest, env, cwd=None, args=()):
    """Starts `shoal up -f <manifest> [args...]`; returns (proc, log, healthy): log collects its
    stderr lines (a thread reads them), healthy is set at "all instances healthy"."""
    log, healthy = [], threading.Event()
    p = subprocess.Popen([shoal, "up", "-f", manifest, *args], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, cwd=cwd)

    def drain():
        for line in p.stderr:
            log.append(line)
            if "all instances healthy" in line:
                healthy.set()
    threading.Thread(target=drain, daemon=True).start()
    return p, log, healthy


def set_binary(path):
    global SHOAL
    SHOAL = path


class Echo:
    """A `shoal echo` process on an ephemeral port."""

    def __init__(self, *args, listen="127.0.0.1:0"):
        self.proc = subprocess.Popen(
            [SHOAL, "echo", "--listen", listen, *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        rec = json.loads(line)
        assert rec["msg"] == "echo server listening", line
        self.port = rec["port"]
        # keep draining stderr so the server never blocks on a full pipe
        self.log = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def rss_peak_kib(self):
        return proc_status_kib(self.proc.pid, "VmHWM")

    def rss_kib(self):
        return proc_status_kib(self.proc.pid, "VmRSS")

    def stop(self):
        terminate(self.proc)


class Reader:
    """Reads HTTP/1.1 responses from a socket (Content-Length, chunked or until close)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            raise EOFError("connection closed")
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self, head_request=False):
        status_line = self.line().decode()
        version, status = status_line.split(" ")[0], int(status_line.split(" ")[1])
        headers = {}
        while True:
            line = self.line()
            if not line:
                break
            name, value = line.decode().split(":", 1)
            headers[name.strip().lower()] = value.strip()
        body = b""
        if head_request or status in (204, 304) or 100 <= status < 200:
            pass
        elif "content-length" in headers:
            body = self.exact(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                size = int(self.line().split(b";")[0], 16)
                if size == 0:
                    while self.line():
                        pass
                    break
                body += self.exact(size)
                self.exact(2)
        else:
            try:
                while True:
                    self._fill()
            except EOFError:
                pass
            body, self.buf = self.buf, b""
        return status, headers, body

    def closed(self, wait=TIMEOUT):
        """True when the peer closes (EOF or reset) within wait seconds with no more data."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(1)
        except (ConnectionResetError, socket.timeout):
            return False if not isinstance(sys.exc_info()[1], ConnectionResetError) else True
        return data == b""


def get(path, host="x", extra=""):
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()




def run_tests(tests, only, setup=None):
    """Runs each test(fixture) and prints 'N passed, N failed'. Returns the exit status."""
    passed = failed = 0
    fixture = setup() if setup else None
    try:
        for fn in tests:
            if only and fn.__name__ not in only:
                continue
            t0 = time.monotonic()
            try:
                fn(fixture)
                passed += 1
                print(f"ok   {fn.__name__} ({time.monotonic() - t0:.2f}s)", flush=True)
            except Exception as exc:  # noqa: BLE001 - report and go on
                failed += 1
                print(f"FAIL {fn.__name__}: {type(exc).__name__}: {exc}", flush=True)
    finally:
        if fixture is not None and hasattr(fixture, "stop"):
            fixture.stop()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0
