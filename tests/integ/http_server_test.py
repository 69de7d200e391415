#!/usr/bin/env python3
"""Drives the real `shoal` binary's HTTP/1.1 server (through `shoal echo`) and client (through
`shoal fetch`) with raw sockets on 127.0.0.1. Every test is bounded in time and stops only the
processes it started. Usage: http_server_test.py PATH/TO/shoal [TEST_NAME...]"""
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
from shoal_testlib import Echo, Reader, get, TIMEOUT  # noqa: E402,F401

SHOAL = sys.argv[1]
ONLY = sys.argv[2:]
lib.set_binary(SHOAL)


# ---------------------------------------------------------------------------------------------
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


@test
def keepalive_and_pipelining(echo):
    s = echo.connect()
    s.sendall(get("/1") + get("/2") + get("/3"))
    r = Reader(s)
    for i in (1, 2, 3):
        st, h, body = r.response()
        assert st == 200, st
        assert json.loads(body)["target"] == f"/{i}", body
    # the connection stays open for a fourth request
    s.sendall(get("/4"))
    assert json.loads(r.response()[2])["target"] == "/4"
    s.close()


@test
def body_is_never_read_as_a_request(echo):
    s = echo.connect()
    smuggled = b"GET /evil HTTP/1.1\r\nHost: x\r\n\r\n"
    s.sendall(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
              + smuggled + get("/b"))
    r = Reader(s)
    a = json.loads(r.response()[2])
    b = json.loads(r.response()[2])
    assert a["target"] == "/a" and a["body_bytes"] == len(smuggled), a
    assert b["target"] == "/b", b
    s.close()


SMUGGLING = [
    # (name, bytes, expected status)
    ("cl-and-te", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-not-final", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    ("te-unknown", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    ("cl-differ", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    ("cl-sign", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello", 400),
    ("cl-space", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\nhello", 400),
    ("cl-overflow", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    ("space-before-colon", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n", 400),
    ("bare-lf", b"GET / HTTP/1.1\nHost: x\n\n", 400),
    ("bare-cr", b"GET / HTTP/1.1\rHost: x\r\n\r\n", 400),
    ("chunk-size-0x", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-overflow", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n", 400),
    ("chunk-junk-after-data", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n", 400),
    ("nul-in-value", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    ("ctl-in-target", b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("no-host", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("two-hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("http10-with-te", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("long-target", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ("long-field", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n", 431),
    ("too-many-fields", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", 431),
    ("long-method", b"A" * 40 + b" / HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    ("http2-version", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
]


@test
def smuggling_vectors_are_refused_and_close(echo):
    for name, raw, want in SMUGGLING:
        s = echo.connect()
        # a valid request behind the bad one must never be answered
        s.sendall(raw + get("/after"))
        r = Reader(s)
        st, h, body = r.response()
        assert st == want, f"{name}: status {st}, want {want}: {body!r}"
        assert h.get("connection") == "close", f"{name}: {h}"
        assert json.loads(body)["error"], name
        assert r.closed(), f"{name}: connection not closed"
        s.close()


@test
def valid_request_before_a_bad_one_is_answered(echo):
    s = echo.connect()
    s.sendall(get("/good") + b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n")
    r = Reader(s)
    st, _, body = r.response()
    assert st == 200 and json.loads(body)["target"] == "/good"
    assert r.response()[0] == 400
    s.close()


@test
def half_closed_client_still_gets_its_answers(echo):
    # shutdown(SHUT_WR) after the requests, as `nc -N` and some HTTP/1.0 clients do
    s = echo.connect()
    s.sendall(get("/1") + get("/2"))
    s.shutdown(socket.SHUT_WR)
    r = Reader(s)
    assert json.loads(r.response()[2])["target"] == "/1"
    assert json.loads(r.response()[2])["target"] == "/2"
    s.close()
    slow = Echo("--delay", "200ms")
    try:
        s = slow.connect()
        s.sendall(get("/late"))
        st, _, body = Reader(s).response()
        assert st == 200 and json.loads(body)["target"] == "/late"
    finally:
        slow.stop()


@test
def expect_100_continue(echo):
    s = echo.connect()
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    r = Reader(s)
    st, _, _ = r.response()
    assert st == 100, st
    s.sendall(b"hello")
    st, _, body = r.response()
    assert st == 200 and body == b"hello", (st, body)
    s.close()


@test
def big_unread_body_gets_the_answer_not_a_reset(echo):
    # /health answers without reading the body; past the 1 MiB the server drains to keep a
    # connection, it must close gracefully (linger, discarding) while the client still sends
    s = echo.connect()
    body = 16 << 20
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % body)
    chunk = b"x" * 65536
    for _ in range(body // len(chunk)):
        s.sendall(chunk)  # a reset here (EPIPE / ECONNRESET) is the bug
    r = Reader(s)
    st, h, _ = r.response()
    assert st == 200, (st, h)  # sent before the size was known: no "Connection: close"
    assert r.closed()
    s.close()


@test
def expect_100_continue_answered_without_reading_closes(echo):
    s = echo.connect()
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    r = Reader(s)
    st, h, _ = r.response()
    assert st == 200 and h.get("connection") == "close", (st, h)
    assert r.closed()
    s.close()


@test
def http10_keepalive_rules(echo):
    s = echo.connect()
    s.sendall(b"GET /a HTTP/1.0\r\n\r\n")
    r = Reader(s)
    st, h, _ = r.response()
    assert st == 200 and h.get("connection") == "close", h
    assert r.closed()
    s = echo.connect()
    s.sendall(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    r = Reader(s)
    st, h, _ = r.response()
    assert h.get("connection") == "keep-alive", h
    s.sendall(b"GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert json.loads(r.response()[2])["target"] == "/b"
    s.close()


@test
def head_response_has_no_body(echo):
    s = echo.connect()
    s.sendall(b"HEAD /x HTTP/1.1\r\nHost: x\r\n\r\n" + get("/y"))
    r = Reader(s)
    st, h, body = r.response(head_request=True)
    assert st == 200 and int(h["content-length"]) > 0 and body == b""
    assert json.loads(r.response()[2])["target"] == "/y"
    s.close()


@test
def chunked_request_streams_back(echo):
    s = echo.connect()
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    st, h, body = Reader(s).response()
    assert st == 200 and h.get("transfer-encoding") == "chunked" and body == b"hello world"
    s.close()


def _slow_conn(echo, payload):
    s = echo.connect()
    s.sendall(payload)
    return s, Reader(s)


@test
def slowloris_gets_408_and_others_are_served(e):
    echo = Echo("--timeout-header", "2s")
    try:
        t0 = time.monotonic()
        slow = [_slow_conn(echo, b"GET / HTTP/1.1\r\nHo") for _ in range(20)]
        s = echo.connect()
        s.sendall(get("/fast"))
        assert Reader(s).response()[0] == 200
        # served while no slow client has had its 408 yet: the server's own header timeout,
        # not wall time on a busy machine, says the fast one was not kept waiting
        for sock, _ in slow:
            sock.setblocking(False)
            try:
                got = sock.recv(1)
            except BlockingIOError:
                sock.setblocking(True)
                continue
            raise AssertionError(f"a slow client was answered ({got!r}) before the fast one")
        for sock, r in slow:
            sock.settimeout(lib.WAIT)
            st, h, _ = r.response()
            assert st == 408 and h.get("connection") == "close", st
            assert r.closed()
        took = time.monotonic() - t0
        assert 1.9 < took < 20, took  # the 2 s header timeout, not the 10 s default
    finally:
        echo.stop()


@test
def idle_and_body_timeouts(e):
    echo = Echo("--timeout-idle", "300ms", "--timeout-body", "300ms")
    try:
        s = echo.connect()
        t0 = time.monotonic()
        assert Reader(s).closed(lib.WAIT), "idle connection not closed"
        # the 300 ms idle timeout, not the 60 s default (no tighter bound on a busy machine)
        assert 0.2 < time.monotonic() - t0 < 20
        s = echo.connect()
        r = Reader(s)
        s.sendall(get("/a"))
        r.response()
        assert r.closed(lib.WAIT), "idle keep-alive connection not closed"
        s = echo.connect()
        s.sendall(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        r = Reader(s)
        st, h, _ = r.response()
        assert st == 408, st
        assert r.closed()
    finally:
        echo.stop()


@test
def graceful_shutdown_finishes_in_flight(e):
    echo = Echo("--delay", "700ms", "--shutdown-grace", "5s")
    try:
        s = echo.connect()
        s.sendall(get("/slow"))
        # the server has read the request (the kernel holds no unread byte of it) ...
        me = s.getsockname()[1]
        lib.wait_until(lambda: lib.tcp_rx_queue(echo.port, me) == 0,
                       what="the server to read the request")
        echo.proc.send_signal(signal.SIGTERM)
        # ... and, once it has the signal, no longer listens
        lib.wait_until(lambda: not lib.tcp_listening(echo.port), what="the listener to close")
        try:
            c = socket.create_connection(("127.0.0.1", echo.port), timeout=1)
            c.sendall(get("/new"))
            refused = c.recv(100) == b""
        except (ConnectionRefusedError, ConnectionResetError):
            refused = True
        assert refused, "a new connection was served during shutdown"
        r = Reader(s)
        st, h, body = r.response()
        assert st == 200 and json.loads(body)["target"] == "/slow"
        assert h.get("connection") == "close", h
        assert echo.proc.wait(timeout=5) == 0
    finally:
        echo.stop()


def _stream(sock, total, chunk=1 << 20):
    buf = b"\0" * chunk
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        sock.sendall(buf[:n])
        sent += n


@test
def upload_1gib_holds_memory_flat(echo):
    total = 1 << 30
    base = echo.rss_kib()
    s = echo.connect()
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
    _stream(s, total)
    st, _, body = Reader(s).response()
    assert st == 200 and json.loads(body)["body_bytes"] == total
    peak = echo.rss_peak_kib()
    assert peak - base < 16 * 1024, f"RSS grew from {base} KiB to a peak of {peak} KiB"
    print(f"    1 GiB upload: RSS {base} KiB before, peak {peak} KiB")
    s.close()


@test
def streamed_echo_with_slow_reader_holds_memory_flat(echo):
    """POST /echo sends each chunk back as it arrives; we read slowly at first, so the
    server's write queue fills and it must stop reading the upload (backpressure)."""
    total = 256 << 20
    base = echo.rss_kib()
    s = echo.connect()
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    got = {"n": 0}

    def reader():
        r = Reader(s)
        time.sleep(1.0)  # let the queues fill
        # read the raw chunked stream and count payload bytes
        assert r.line().startswith(b"HTTP/1.1 200")
        while r.line():
            pass
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
    t.join(timeout=60)
    assert not t.is_alive(), "echo stream did not finish"
    assert got["n"] == total, got
    peak = echo.rss_peak_kib()
    assert peak - base < 16 * 1024, f"RSS grew from {base} KiB to a peak of {peak} KiB"
    print(f"    256 MiB streamed echo: RSS {base} KiB before, peak {peak} KiB")
    s.close()


# --- the client, through `shoal fetch` ---------------------------------------------------
def fetch(*args, input=None):
    return subprocess.run([SHOAL, "fetch", *args], capture_output=True, timeout=60, input=input)


@test
def client_reuses_pooled_connections(echo):
    p = fetch("--stats", "-n", "5", f"http://127.0.0.1:{echo.port}/x")
    assert p.returncode == 0, p.stderr
    stats = json.loads(p.stderr.decode().strip().splitlines()[-1])
    assert stats["connects"] == 1 and stats["reuses"] == 4, stats


@test
def client_streams_a_large_body_both_ways(echo):
    data = os.urandom(8 << 20)
    p = fetch("-T", "-", f"http://127.0.0.1:{echo.port}/echo", input=data)
    assert p.returncode == 0, p.stderr
    assert p.stdout == data, (len(p.stdout), len(data))


@test
def client_reports_refused_connections(echo):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    p = fetch(f"http://127.0.0.1:{port}/")
    assert p.returncode == 1 and b"refused" in p.stderr, p.stderr


@test
def client_fails_on_error_status_and_bad_usage(echo):
    e404 = Echo("--status", "404")
    try:
        p = fetch(f"http://127.0.0.1:{e404.port}/")
        assert p.returncode == 1, p
    finally:
        e404.stop()
    p = fetch("ftp://x/")
    assert p.returncode == 2 and b"http://" in p.stderr, p.stderr


def main():
    passed = failed = 0
    echo = Echo()
    try:
        for fn in TESTS:
            if ONLY and fn.__name__ not in ONLY:
                continue
            t0 = time.monotonic()
            try:
                fn(echo)
                passed += 1
                print(f"ok   {fn.__name__} ({time.monotonic() - t0:.2f}s)", flush=True)
            except Exception as exc:  # noqa: BLE001 - report and go on
                failed += 1
                print(f"FAIL {fn.__name__}: {type(exc).__name__}: {exc}", flush=True)
            if echo.proc.poll() is not None:
                print("FAIL the echo server died; its log:\n" + "".join(echo.log[-20:]))
                failed += 1
                break
    finally:
        echo.stop()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
