#!/usr/bin/env python3
"""Listen addresses through the real binary: a server configured on "[::]:PORT" must listen on
the IPv6 wildcard "::" (seen in /proc/net/tcp6), not on ::1, and answer on [::1] and, since
shoal clears IPV6_V6ONLY, on 127.0.0.1 too. Covers `shoal server --listen`, `shoal gateway`
(listen and admin) and `shoal echo --listen`. Loopback only; exits 77 (SKIP) when the host has
no IPv6 loopback. Usage: listen_test.py PATH/TO/shoal [TEST...]"""
import http.client
import json
import os
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shoal_testlib as lib  # noqa: E402

SHOAL = sys.argv[1]
ONLY = sys.argv[2:]
lib.set_binary(SHOAL)
SKIP = 77


def has_ipv6():
    if not socket.has_ipv6 or not os.path.exists("/proc/net/tcp6"):
        return False
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def free_port6():
    """A port nobody listens on at the moment, on [::] (so on 127.0.0.1 too)."""
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listeners6(port):
    """The local addresses (32 hex digits, as /proc/net/tcp6 writes them) of the IPv6 sockets
    in LISTEN state on <port>."""
    out = []
    with open("/proc/net/tcp6") as f:
        next(f)
        for line in f:
            fields = line.split()
            addr, hexport = fields[1].split(":")
            if int(hexport, 16) == port and fields[3] == "0A":
                out.append(addr)
    return out


WILDCARD = "0" * 32
LOOPBACK = "00000000000000000000000001000000"  # ::1 as /proc/net/tcp6 prints it


def assert_wildcard(port, what):
    """<what> listens on [::]:port, the wildcard, and not on ::1 alone."""
    socks = lib.wait_until(lambda: listeners6(port), what=f"{what} listening on IPv6 port {port}")
    assert LOOPBACK not in socks, f"{what}: listens on ::1 instead of :: ({socks})"
    assert all(a == WILDCARD for a in socks), f"{what}: listens on {socks}, want only ::"


def http_get(host, port, path, headers=None):
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def stop(proc):
    assert lib.terminate(proc), "did not stop within 10s of SIGTERM"
    assert proc.returncode == 0, f"exited {proc.returncode}"


def wait_line(proc, text, log):
    """Reads proc's stderr until a line contains text (the process's own start deadline: it
    prints its listening line or exits)."""
    while True:
        line = proc.stderr.readline()
        assert line, f"exited before '{text}': {''.join(log[-5:])}"
        log.append(line)
        if text in line:
            return line


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


@test
def server_on_ipv6_wildcard(_):
    d = lib.tempdir("shoal-listen-")
    port = free_port6()
    env = dict(os.environ)
    env.pop("SHOAL_TOKEN", None)
    p = subprocess.Popen([SHOAL, "server", "--data-dir", d, "--listen", f"[::]:{port}",
                          "--token", "listen-test-token-0123456789"],
                         stderr=subprocess.PIPE, text=True, env=env)
    log = []
    try:
        wait_line(p, "control plane listening", log)
        threading.Thread(target=lambda: [log.append(x) for x in p.stderr], daemon=True).start()
        assert_wildcard(port, "shoal server --listen [::]")
        for host in ("::1", "127.0.0.1"):
            status, _ = http_get(host, port, "/v1/status")
            assert status == 200, f"GET on {host}: {status}"
    finally:
        stop(p)


@test
def gateway_listener_and_admin_on_ipv6_wildcard(_):
    d = lib.tempdir("shoal-listen-")
    port, admin = free_port6(), free_port6()
    path = os.path.join(d, "gateway.yaml")
    with open(path, "w") as f:
        f.write(f"listen: '[::]:{port}'\nadmin: '[::]:{admin}'\nworkers: 2\n"
                "routes:\n  - match: {prefix: /}\n    respond: {status: 200, body: here}\n")
    p = subprocess.Popen([SHOAL, "gateway", "-c", path, "--grace", "1s"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = []
    try:
        wait_line(p, "gateway listening", log)
        threading.Thread(target=lambda: [log.append(x) for x in p.stderr], daemon=True).start()
        assert_wildcard(port, "gateway listen [::]")
        assert_wildcard(admin, "gateway admin [::]")
        for host in ("::1", "127.0.0.1"):
            status, body = http_get(host, port, "/x")
            assert (status, body) == (200, b"here"), f"gateway on {host}: {status} {body!r}"
            status, _ = http_get(host, admin, "/ready")
            assert status == 200, f"admin on {host}: {status}"
    finally:
        stop(p)


@test
def echo_on_ipv6_wildcard(_):
    e = lib.Echo(listen="[::]:0")
    try:
        assert_wildcard(e.port, "shoal echo --listen [::]:0")
        status, _ = http_get("::1", e.port, "/")
        assert status == 200, f"echo on ::1: {status}"
    finally:
        e.stop()


@test
def bad_listen_address_is_refused_naming_it(_):
    p = subprocess.run([SHOAL, "echo", "--listen", "[::1]:99999"], capture_output=True,
                       text=True, timeout=10)
    assert p.returncode != 0, "echo accepted port 99999"
    assert "[::1]:99999" in p.stderr and "65535" in p.stderr, p.stderr


if __name__ == "__main__":
    if not has_ipv6():
        print("SKIP: this host has no IPv6 loopback (::1); the [::] listen checks need it")
        sys.exit(SKIP)
    sys.exit(lib.run_tests(TESTS, ONLY))
