"""Keep-alive on both sides and pipelining."""

import threading

import lbdharness as h
from backend import pattern_sha256
import hashlib

WORKERS = 2


def test_client_connection_reused(stack):
    lbd, (b,) = stack.simple(["b1"], workers=WORKERS)
    with h.HttpClient(lbd.port) as c:
        for i in range(50):
            r = c.request("GET", f"/headers/{i}")
            assert r.status == 200, (i, r)
            assert "close" not in r.connection_tokens(), (i, r.headers)
            assert r.json()["target"] == f"/headers/{i}"
    assert b.stats()["requests"] == 50


def test_backend_connections_reused_sequential(stack):
    lbd, (b,) = stack.simple(["b1"], workers=WORKERS)
    with h.HttpClient(lbd.port) as c:
        for _ in range(200):
            assert c.request("GET", "/").status == 200
    # Fresh client connections may land on any worker: at most one backend connection each.
    for _ in range(100):
        assert h.get(lbd.port, "/").status == 200
    st = b.stats()
    assert st["requests"] == 300
    assert st["connections"] <= WORKERS, f"backend saw {st['connections']} connections for 300 requests"


def test_backend_connections_reused_concurrent(stack):
    lbd, (b,) = stack.simple(["b1"], workers=WORKERS)
    conc = 4
    errors = []

    def client():
        try:
            with h.HttpClient(lbd.port) as c:
                for _ in range(50):
                    r = c.request("GET", "/")
                    if r.status != 200:
                        errors.append(r)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=client) for _ in range(conc)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors[:3]
    st = b.stats()
    assert st["requests"] == conc * 50
    assert st["connections"] <= WORKERS * conc, st


def test_backend_close_not_reused(stack):
    """A backend response with Connection: close must not leave a dead connection in the pool."""
    lbd, (b,) = stack.simple(["b1"], workers=1)
    c = h.HttpClient(lbd.port)
    try:
        for i in range(5):
            r = c.request("GET", "/close")
            assert r.status == 200 and r.body == b"closing\n"
            if "close" in r.connection_tokens():
                assert h.wait_closed(c.sock, 3)[0]
                c.close()
                c = h.HttpClient(lbd.port)
            r = c.request("GET", "/")
            assert r.status == 200, (i, r)
    finally:
        c.close()
    assert b.stats()["connections"] >= 5


def test_pipelined_requests_answered_in_order(stack):
    lbd, (b,) = stack.simple(["b1"], workers=WORKERS)
    with h.HttpClient(lbd.port) as c:
        raw = b"".join(b"GET /headers/p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(10))
        c.send(raw)
        for i in range(10):
            r = c.read()
            assert r.status == 200
            assert r.json()["target"] == f"/headers/p{i}", (i, r.json()["target"])
        # Still usable afterwards.
        assert c.request("GET", "/").status == 200


def test_pipelined_mixed_sizes_and_bodies(stack):
    lbd, (b,) = stack.simple(["b1"], workers=WORKERS)
    body = b"pipelined-body-" * 100
    reqs = [
        b"GET /size/300000 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
        b"GET /chunked/100000 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /sha256 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"GET /sleep/200 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /headers/last HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    with h.HttpClient(lbd.port) as c:
        c.send(b"".join(reqs))
        r = c.read()
        assert r.status == 200 and hashlib.sha256(r.body).hexdigest() == pattern_sha256(300000)
        r = c.read()
        assert r.status == 200 and r.body == body
        r = c.read()
        assert r.status == 200 and hashlib.sha256(r.body).hexdigest() == pattern_sha256(100000)
        r = c.read()
        assert r.status == 200 and r.json()["sha256"] == hashlib.sha256(b"hello").hexdigest()
        r = c.read()
        assert r.status == 200 and r.body == b"slept 200\n"
        r = c.read()
        assert r.status == 200 and r.json()["target"] == "/headers/last"


def test_pipeline_flood_beyond_depth_is_answered_in_order(stack):
    """R4: far more pipelined requests than max_pipeline_depth (32) in one write: lbd stops
    reading while responses are pending and still answers every one, in order."""
    lbd, (b,) = stack.simple(["b1"], workers=WORKERS)
    n = 300
    with h.HttpClient(lbd.port, timeout=30) as c:
        c.send(b"".join(b"GET /headers/f%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(n)))
        for i in range(n):
            r = c.read()
            assert r.status == 200, (i, r)
            assert r.json()["target"] == f"/headers/f{i}"
    assert b.stats()["requests"] == n
