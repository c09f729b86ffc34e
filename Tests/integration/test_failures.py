"""Backend faults and slow clients (bad-inputs.md sections C and D)."""

import socket
import threading
import time

import pytest

import lbdharness as h


def assert_lbd_error(r, status):
    assert r.status == status, r
    assert "close" in r.connection_tokens(), f"lbd's own {status} must carry Connection: close: {r.headers}"


def test_refused_backend_is_retried(stack):
    dead = stack.refusing()
    alive = stack.backend("alive")
    lbd = stack.lbd({"web": h.pool([dead.address, alive.address], retries=2)})
    for i in range(20):
        r = h.get(lbd.port, "/")
        assert r.status == 200, (i, r)
        assert r.body == b"hello from alive\n"
    with h.HttpClient(lbd.port) as c:
        for i in range(20):
            r = c.request("GET", "/")
            assert r.status == 200, (i, r)
    assert alive.stats()["requests"] == 40


def test_all_backends_refusing_gives_503(stack):
    d1, d2 = stack.refusing(), stack.refusing()
    lbd = stack.lbd({"web": h.pool([d1.address, d2.address], retries=2)})
    for _ in range(3):
        with h.HttpClient(lbd.port) as c:
            t0 = time.monotonic()
            r = c.request("GET", "/")
            assert time.monotonic() - t0 < 2.0
            assert_lbd_error(r, 503)
            assert h.wait_closed(c.sock, 3)[0]


def test_backend_never_answers_gives_504(stack):
    hole = stack.server(h.blackhole_handler, "blackhole")
    lbd = stack.lbd({"web": h.pool([hole.address], retries=2)}, timeouts={"backend_response": "1s"})
    with h.HttpClient(lbd.port, timeout=10) as c:
        t0 = time.monotonic()
        r = c.request("GET", "/")
        el = time.monotonic() - t0
        assert_lbd_error(r, 504)
        assert 0.9 <= el <= 3.0, f"504 after {el:.2f}s"
        assert h.wait_closed(c.sock, 3)[0]


def test_slowloris_gets_408_at_header_deadline(stack):
    lbd, _ = stack.simple(["b1"], timeouts={"client_head": "3s"})
    s = h.connect(lbd.port, timeout=10)
    stop = threading.Event()
    t0 = time.monotonic()

    def dribble():
        try:
            s.sendall(b"GET / HTTP/1.1\r\n")
            for i in range(12):
                if stop.wait(1.0):
                    return
                s.sendall(b"X-Slow-%d: %d\r\n" % (i, i))
        except OSError:
            pass

    t = threading.Thread(target=dribble, daemon=True)
    t.start()
    try:
        r = h.read_response(h.BufferedSocket(s))
        el = time.monotonic() - t0
        assert_lbd_error(r, 408)
        assert 2.5 <= el <= 5.0, f"408 after {el:.2f}s"
        closed, _ = h.wait_closed(s, 2)
        assert closed
        assert time.monotonic() - t0 <= 6.0
    finally:
        stop.set()
        s.close()
        t.join(3)


def test_idle_client_without_request_is_closed(stack):
    """S2: connect and send nothing → closed at the head deadline (408 optional)."""
    lbd, _ = stack.simple(["b1"], timeouts={"client_head": "2s", "client_idle": "2s"})
    s = h.connect(lbd.port, timeout=10)
    t0 = time.monotonic()
    closed, extra = h.wait_closed(s, 6)
    el = time.monotonic() - t0
    s.close()
    assert closed, "idle connection still open after 6s"
    assert 1.5 <= el <= 4.5, el
    assert extra == b"" or extra.startswith(b"HTTP/1.1 408"), extra[:100]


def test_slow_body_times_out(stack):
    """S3: a body at 1 byte/s must not hold the connection open for ever."""
    lbd, _ = stack.simple(["b1"], timeouts={"client_head": "3s", "client_idle": "3s",
                                            "backend_response": "3s"})
    s = h.connect(lbd.port, timeout=20)
    stop = threading.Event()

    def dribble():
        try:
            s.sendall(b"POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            for _ in range(100):
                if stop.wait(1.0):
                    return
                s.sendall(b"x")
        except OSError:
            pass

    t = threading.Thread(target=dribble, daemon=True)
    t.start()
    t0 = time.monotonic()
    try:
        closed, extra = h.wait_closed(s, 15)
        assert closed, f"body at 1 B/s still open after {time.monotonic() - t0:.1f}s"
        assert not extra.startswith(b"HTTP/1.1 200"), extra[:100]
    finally:
        stop.set()
        s.close()
        t.join(3)


BAD_BACKEND_RESPONSES = {
    # B4: closes before any response byte.
    "closes-before-response": (b"", 502),
    # B5: garbage status line.
    "garbage-status-line": (b"HELLO THERE\r\n\r\n", 502),
    # B6: two different Content-Length values.
    "two-content-lengths": (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 7\r\n\r\nabcdefg", 502),
    # B8: space before colon in a response field.
    "space-before-colon": (b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", 502),
    # B8: 100 KiB response header.
    "huge-response-header": (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100 * 1024 + b"\r\nContent-Length: 2\r\n\r\nok", 502),
}


@pytest.mark.parametrize("case", list(BAD_BACKEND_RESPONSES))
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_bad_backend_response_gives_502(stack, case, method):
    payload, status = BAD_BACKEND_RESPONSES[case]
    srv = stack.server(h.canned_handler(payload), case)
    lbd = stack.lbd({"web": h.pool([srv.address], retries=2)})
    with h.HttpClient(lbd.port, timeout=10) as c:
        t0 = time.monotonic()
        r = c.request(method, "/", body=b"abc" if method == "POST" else None)
        assert_lbd_error(r, status)
        assert time.monotonic() - t0 < 5
        assert h.wait_closed(c.sock, 3)[0]
    assert lbd.alive()


def test_response_without_length_read_to_eof(stack):
    """B12: a response with neither CL nor TE ends at the backend's EOF; the client gets it all."""
    body = b"body-until-eof-" * 1000
    srv = stack.server(h.canned_handler(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body), "eof")
    lbd = stack.lbd({"web": h.pool([srv.address])})
    with h.HttpClient(lbd.port) as c:
        r = c.request("GET", "/")
        assert r.status == 200
        assert r.body == body


def test_truncated_backend_body_aborts_client(stack):
    """B9: body shorter than its Content-Length then FIN → the client must not see a clean end."""
    srv = stack.server(h.canned_handler(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 20), "short")
    lbd = stack.lbd({"web": h.pool([srv.address])})
    with h.HttpClient(lbd.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            r = c.read()
        except h.IncompleteBody as e:
            assert e.got == 20
        except (ConnectionResetError, h.PeerClosed):
            pass
        else:
            pytest.fail(f"client saw a complete response from a truncated backend body: {r}")


def test_backend_reset_before_response_gives_502(stack):
    srv = stack.server(h.canned_handler(b"", linger_rst=True), "rst")
    lbd = stack.lbd({"web": h.pool([srv.address])})
    r = h.get(lbd.port, "/")
    assert_lbd_error(r, 502)


def test_abandoned_partial_requests_do_not_hurt(stack):
    """Clients that send half a head and vanish leave lbd serving normally."""
    good = stack.backend("good")
    lbd = stack.lbd({"web": h.pool([good.address])})
    socks = []
    for _ in range(20):
        s = socket.create_connection((h.HOST, lbd.port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # incomplete, abandoned
        socks.append(s)
    for s in socks:
        s.close()
    for _ in range(5):
        assert h.get(lbd.port, "/").status == 200
    assert lbd.alive()
