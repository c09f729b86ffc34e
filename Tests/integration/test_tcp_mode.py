"""mode: tcp — bytes relayed both ways, half-close, large transfers."""

import hashlib
import socket
import threading
import time

import lbdharness as h
from backend import pattern_iter, pattern_sha256

MB = 1024 * 1024
EOF_MARKER = h.TcpEchoServer.EOF_MARKER


def tcp_lbd(stack, **kw):
    echo = stack.echo_server(**kw)
    port = h.free_port()
    lbd = stack.lbd({"echo": h.pool([echo.address])}, listeners=[h.listener("l4", port, "echo", mode="tcp")])
    return lbd, echo


def read_all(s, timeout=30):
    s.settimeout(timeout)
    out = bytearray()
    while True:
        d = s.recv(1 << 20)
        if not d:
            return bytes(out)
        out += d


def test_tcp_echo_both_ways(stack):
    lbd, echo = tcp_lbd(stack)
    time.sleep(0.2)
    base = echo.server.connections  # lbd's readiness probe may have opened one
    s = h.connect(lbd.port)
    try:
        # Not HTTP at all: lbd must not parse it.
        for msg in (b"hello\n", b"\x00\x01\x02 binary \xff", b"GET / HTTP/1.1\r\n\r\n", b"x" * 100000):
            s.sendall(msg)
            got = b""
            s.settimeout(10)
            while len(got) < len(msg):
                d = s.recv(65536)
                assert d, "lbd closed the TCP session"
                got += d
            assert got == msg
    finally:
        s.close()
    time.sleep(0.2)
    assert echo.server.connections == base + 1


def test_tcp_half_close(stack):
    """Client shuts down its write side; lbd forwards the FIN and still relays what the backend
    sends afterwards (the backend answers 0.3 s after seeing EOF)."""
    lbd, echo = tcp_lbd(stack, eof_delay=0.3)
    s = h.connect(lbd.port)
    try:
        s.sendall(b"last words")
        s.shutdown(socket.SHUT_WR)
        t0 = time.monotonic()
        got = read_all(s, 10)
        assert got == b"last words" + EOF_MARKER
        assert time.monotonic() - t0 >= 0.25
    finally:
        s.close()


def test_tcp_client_sends_nothing_then_half_closes(stack):
    lbd, echo = tcp_lbd(stack, eof_delay=0.0)
    s = h.connect(lbd.port)
    try:
        time.sleep(0.2)
        s.shutdown(socket.SHUT_WR)
        assert read_all(s, 10) == EOF_MARKER
    finally:
        s.close()


def test_tcp_50mb_both_directions(stack):
    lbd, echo = tcp_lbd(stack)
    total = 50 * MB
    s = h.connect(lbd.port, timeout=60)
    sent_err = []

    def sender():
        try:
            for p in pattern_iter(total, 256 * 1024):
                s.sendall(p)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            sent_err.append(e)

    t = threading.Thread(target=sender, daemon=True)
    with h.RssSampler(lbd) as rss:
        t.start()
        hs = hashlib.sha256()
        got = 0
        s.settimeout(60)
        tail = b""
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            # Hash only the echoed part; keep the last bytes to find the marker.
            take = min(len(d), max(0, total - got))
            hs.update(d[:take])
            tail += d[take:]
            got += take
        t.join(60)
    s.close()
    assert not sent_err, sent_err
    assert got == total
    assert hs.hexdigest() == pattern_sha256(total)
    assert tail == EOF_MARKER
    assert rss.max_kib < 64 * 1024, rss.max_kib


def test_tcp_backend_refused_closes_client(stack):
    dead = stack.refusing()
    port = h.free_port()
    lbd = stack.lbd({"echo": h.pool([dead.address])}, listeners=[h.listener("l4", port, "echo", mode="tcp")])
    s = h.connect(lbd.port)
    try:
        try:
            s.sendall(b"hello")
        except OSError:
            pass
        closed, extra = h.wait_closed(s, 5)
        assert closed and extra == b""
    finally:
        s.close()
    assert lbd.alive()
