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
    """S3: a body at 1 byte/s must not hold the connection open for ever: 408 at client_body
    (each 1 KiB of body must arrive within it), however long backend_response is."""
    lbd, _ = stack.simple(["b1"], timeouts={"client_head": "3s", "client_idle": "3s",
                                            "client_body": "3s", "backend_response": "30s"})
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
        el = time.monotonic() - t0
        assert closed, f"body at 1 B/s still open after {el:.1f}s"
        assert extra.startswith(b"HTTP/1.1 408"), extra[:100]
        assert 2.5 <= el <= 6, el
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


class SynBlackhole:
    """A listening port whose accept queue is full and never drained: the kernel drops further
    SYNs, so a connect to it hangs as if a firewall ate them (B2, without nft)."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind((h.HOST, 0))
        self.lsock.listen(0)
        self.port = self.lsock.getsockname()[1]
        self.address = f"{h.HOST}:{self.port}"
        self.fillers = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((h.HOST, self.port))
            self.fillers.append(s)
        time.sleep(0.2)

    def hangs(self) -> bool:
        try:
            socket.create_connection((h.HOST, self.port), timeout=0.5).close()
            return False
        except socket.timeout:
            return True

    def close(self):
        for s in self.fillers + [self.lsock]:
            s.close()


def test_blackholed_backend_connect_times_out_and_the_next_one_serves(stack):
    """B2: a backend whose SYNs vanish costs at most timeouts.backend_connect, then lbd tries the
    next backend; with only that backend the client gets 503 in bounded time."""
    hole = SynBlackhole()
    try:
        assert hole.hangs(), "could not make a SYN blackhole (accept queue overflow) here"
        alive = stack.backend("alive")
        lbd = stack.lbd({"web": h.pool([hole.address, alive.address], retries=2)},
                        timeouts={"backend_connect": "500ms"}, workers=1)
        for i in range(4):
            t0 = time.monotonic()
            r = h.get(lbd.port, "/", timeout=10)
            el = time.monotonic() - t0
            assert r.status == 200 and r.body == b"hello from alive\n", (i, r)
            assert el < 2.0, f"request {i} took {el:.2f}s"
        only = stack.lbd({"web": h.pool([hole.address], retries=1)}, timeouts={"backend_connect": "500ms"})
        with h.HttpClient(only.port, timeout=10) as c:
            t0 = time.monotonic()
            r = c.request("GET", "/")
            el = time.monotonic() - t0
        assert_lbd_error(r, 503)
        assert 0.4 <= el <= 3.0, f"503 after {el:.2f}s"
        assert "backend connect failed" in only.stderr() + only.stdout()
    finally:
        hole.close()


def test_backend_reset_mid_body_aborts_the_client(stack):
    """B10: an RST in the middle of a response body ends the client's connection without a clean
    end; lbd stays up and the next request is served."""
    def handler(s):
        h.read_request_head(s)
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"y" * 30000)
        time.sleep(0.2)
        import struct
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    srv = stack.server(handler, "rst-mid-body")
    good = stack.backend("good")
    lbd = stack.lbd({"web": h.pool([srv.address]), "ok": h.pool([good.address])},
                    listeners=[h.listener("public", h.free_port(), "web"), h.listener("other", h.free_port(), "ok")])
    with h.HttpClient(lbd.port) as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            r = c.read()
        except h.IncompleteBody as e:
            assert e.got == 30000, e.got
        except (ConnectionResetError, h.PeerClosed):
            pass
        else:
            pytest.fail(f"client saw a complete response after the backend's reset: {r}")
    assert lbd.alive()
    assert "request aborted" in lbd.stderr(), lbd.stderr()[-2000:]
    assert h.get(lbd.ports()[1], "/").status == 200


def test_stale_pooled_connection_is_replayed_for_idempotent_requests_only(stack):
    """B13: the backend closes a pooled keep-alive connection just as lbd sends the next request
    on it. A GET without a body is sent again on a fresh connection (the client sees 200); a POST
    is not replayed (502), so the backend never gets it twice."""
    seen = []

    def handler(s):
        # Answers the first request on each connection, then takes the second and closes.
        head = h.read_request_head(s)
        seen.append(head.split(b"\r\n", 1)[0])
        body = b""
        if b"content-length: 3" in head.lower() and not head.endswith(b"abc"):
            body = s.recv(3)
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        head2 = h.read_request_head(s)
        if head2:
            seen.append(head2.split(b"\r\n", 1)[0] + b" (dropped)")
        s.close()
    srv = stack.server(handler, "closes-pooled")
    lbd = stack.lbd({"web": h.pool([srv.address], retries=2)}, workers=1)
    with h.HttpClient(lbd.port) as c:
        assert c.request("GET", "/first").status == 200
        time.sleep(0.1)
        r = c.request("GET", "/second")
        assert r.status == 200 and r.body == b"ok\n", r
    assert seen == [b"GET /first HTTP/1.1", b"GET /second HTTP/1.1 (dropped)", b"GET /second HTTP/1.1"], seen
    seen.clear()
    with h.HttpClient(lbd.port) as c:
        assert c.request("GET", "/third").status == 200
        time.sleep(0.1)
        r = c.request("POST", "/post", body=b"abc")
        assert_lbd_error(r, 502)
    assert seen.count(b"POST /post HTTP/1.1 (dropped)") == 1 and b"POST /post HTTP/1.1" not in seen, seen


def test_response_with_content_length_and_chunked_uses_chunked_and_is_not_reused(stack):
    """B7: a response carrying both Content-Length and Transfer-Encoding: chunked is framed by
    the chunked coding (the CL is dropped), and that backend connection is not reused."""
    conns = []

    def handler(s):
        conns.append(s)
        while True:
            head = h.read_request_head(s)
            if not head:
                return
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    srv = stack.server(handler, "cl-and-te")
    lbd = stack.lbd({"web": h.pool([srv.address])}, workers=1)
    with h.HttpClient(lbd.port) as c:
        for _ in range(3):
            r = c.request("GET", "/")
            assert r.status == 200 and r.body == b"hello world", r
            assert r.header("content-length") is None or r.header("content-length") == "11", r.headers
    assert srv.connections == 3, f"{srv.connections} backend connections for 3 requests (a CL+TE one was reused)"


@pytest.mark.parametrize("interim,status", [(200, 200), (1001, 502)])
def test_interim_responses_are_swallowed_up_to_a_cap(stack, interim, status):
    """B11: 200 x "100 Continue" before the final response: the client gets the final 200; a
    backend that never stops sending interim responses is cut off at 1000 with a 502."""
    srv = stack.server(h.canned_handler(b"HTTP/1.1 100 Continue\r\n\r\n" * interim
                                        + b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"), "interim")
    lbd = stack.lbd({"web": h.pool([srv.address], retries=0)})
    with h.HttpClient(lbd.port) as c:
        r = c.request("GET", "/")
    assert r.status == status, r
    if status == 200:
        assert r.body == b"ok\n" and len(r.interim) <= 1, len(r.interim)
