"""bad-inputs.md sections A and B (H1–H48), table driven: raw request bytes on a fresh
connection → the status(es) lbd must answer, whether the connection must close afterwards,
and what the backend may (not) have seen."""

from __future__ import annotations

import hashlib
import socket
import time
from dataclasses import dataclass
from typing import Callable

import pytest

import lbdharness as h

LBD_ERRORS = {400, 405, 408, 413, 414, 417, 431, 501, 502, 503, 504, 505}

G = b"GET /headers HTTP/1.1\r\nHost: x\r\n"           # complete it with b"\r\n" or more fields
P = b"POST /headers HTTP/1.1\r\nHost: x\r\n"
CHUNKED = b"Transfer-Encoding: chunked\r\n"


def chunked_post(body: bytes, te=CHUNKED) -> bytes:
    return P + te + b"\r\n" + body


HELLO_CHUNKED = b"5\r\nhello\r\n0\r\n\r\n"


# ---- checks on what the backend saw (list of backend.Request completed since the case began)

def one(new):
    assert len(new) == 1, f"backend saw {len(new)} requests: {[r.request_line for r in new]}"
    return new[0]


def names(req):
    return [k.decode("latin-1").lower() for k, _ in req.headers]


def body_is(expected: bytes):
    def check(resp, new):
        r = one(new)
        assert r.body_len == len(expected) and r.body_head == expected, (r.body_len, r.body_head[:50])
    return check


def h16_check(resp, new):
    r = one(new)
    assert r.body_head == b"hello"
    assert "content-length" not in names(r), r.headers
    assert r.header_all("host") == ["x"], r.headers
    assert [t for t in r.trailers if t[0].lower() in ("content-length", "transfer-encoding", "host")] == [], r.trailers
    te = r.header_all("transfer-encoding")
    assert te in ([], ["chunked"]), te


def h17_check(resp, new):
    r = one(new)
    assert r.target == "/headers"
    assert r.body_len == len(SMUGGLED) and r.body_head == SMUGGLED


def h18_check(resp, new):
    assert [r.target for r in new] == ["/headers/1", "/headers/2"]


def no_forwarded_lookalikes(resp, new):
    r = one(new)
    ns = names(r)
    assert "x_forwarded_for" not in ns and "x_forwarded_proto" not in ns, r.headers
    assert r.header_all("x-forwarded-for") == ["127.0.0.1"], r.headers
    assert r.header_all("x-forwarded-proto") == ["http"], r.headers


def h29_check(resp, new):
    r = one(new)
    vals = [v for k, v in r.headers if k.lower() == b"x-a"]
    assert vals == [b"caf\xe9 \xff\x80"], r.headers


def h36_check(resp, new):
    r = one(new)
    assert r.version == "HTTP/1.1", f"a proxy sends its own version: {r.request_line!r}"


def upgrade_stripped(resp, new):
    assert resp.status != 101
    r = one(new)
    ns = names(r)
    assert "upgrade" not in ns, r.headers
    assert "http2-settings" not in ns, r.headers
    for v in r.header_all("connection"):
        assert "upgrade" not in v.lower() and "http2-settings" not in v.lower(), r.headers


def h48_check(resp, new):
    r = one(new)
    assert r.header_all("x-forwarded-for") == ["127.0.0.1"], r.headers


def h48b_check(resp, new):
    r = one(new)
    assert r.header_all("x-forwarded-proto") == ["http"], r.headers


def h42_check(resp, new):
    assert resp.header("allow") and "GET" in resp.header("allow"), resp.headers  # RFC 9110 §15.5.6
    assert not new, "CONNECT reached the backend"


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


@dataclass
class Case:
    id: str
    raw: bytes
    expect: tuple           # acceptable final statuses of the (first) response
    close: bool | None      # True: closed after the responses; False: still usable; None: either
    check: Callable | None = None
    responses: int = 1
    shut_wr: bool = False


def E(id, raw, status=400, close=True):
    statuses = status if isinstance(status, tuple) else (status,)
    return Case(id, raw, statuses, close)


def OK(id, raw, check=None, close=False, **kw):
    return Case(id, raw, (200,), close, check, **kw)


CASES = [
    # ---- A. framing and smuggling
    E("H1-cl-then-te", P + b"Content-Length: 5\r\n" + CHUNKED + b"\r\n" + HELLO_CHUNKED),
    E("H1-te-then-cl", P + CHUNKED + b"Content-Length: 5\r\n\r\n" + HELLO_CHUNKED),
    E("H2-two-cl-differ", P + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
    E("H3-two-cl-same", P + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
    E("H3-cl-list-same", P + b"Content-Length: 5, 5\r\n\r\nhello"),
    E("H4-cl-plus", P + b"Content-Length: +3\r\n\r\nabc"),
    E("H4-cl-minus", P + b"Content-Length: -1\r\n\r\nabc"),
    E("H4-cl-hex", P + b"Content-Length: 0x3\r\n\r\nabc"),
    E("H4-cl-empty", P + b"Content-Length: \r\n\r\nabc"),
    E("H5-cl-2^64+3", P + b"Content-Length: 18446744073709551619\r\n\r\nabc"),
    E("H5-cl-2^63", P + b"Content-Length: 9223372036854775808\r\n\r\nabc"),
    E("H5-cl-30-digits", P + b"Content-Length: 100000000000000000000000000003\r\n\r\nabc"),
    E("H6-te-chunked-gzip", chunked_post(HELLO_CHUNKED, b"Transfer-Encoding: chunked, gzip\r\n")),
    E("H6-te-identity", chunked_post(b"hello", b"Transfer-Encoding: identity\r\n"), (400, 501)),
    E("H6-te-xchunked", chunked_post(HELLO_CHUNKED, b"Transfer-Encoding: xchunked\r\n"), (400, 501)),
    E("H7-te-twice-fields", chunked_post(HELLO_CHUNKED, CHUNKED + CHUNKED)),
    E("H7-te-twice-list", chunked_post(HELLO_CHUNKED, b"Transfer-Encoding: chunked, chunked\r\n")),
    E("H8-te-on-http10", b"POST /headers HTTP/1.0\r\nHost: x\r\n" + CHUNKED + b"\r\n" + HELLO_CHUNKED),
    E("H9-te-space-before-colon", chunked_post(HELLO_CHUNKED, b"Transfer-Encoding : chunked\r\n")),
    E("H9-cl-space-before-colon", P + b"Content-Length : 5\r\n\r\nhello"),
    OK("H10-te-htab", chunked_post(HELLO_CHUNKED, b"Transfer-Encoding:\tchunked\r\n"), body_is(b"hello")),
    E("H11-size-over-2^64", chunked_post(b"10000000000000001\r\nhello\r\n0\r\n\r\n")),
    E("H11-size-17-hex-digits", chunked_post(b"FFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n")),
    E("H11-size-0x", chunked_post(b"0x5\r\nhello\r\n0\r\n\r\n")),
    E("H11-size-plus", chunked_post(b"+5\r\nhello\r\n0\r\n\r\n")),
    E("H11-size-empty", chunked_post(b"\r\nhello\r\n0\r\n\r\n")),
    OK("H12-chunk-ext", chunked_post(b"5;a=b\r\nhello\r\n0;c\r\n\r\n"), body_is(b"hello")),
    E("H12-chunk-ext-over-limit", chunked_post(b"5;a=" + b"x" * 5000 + b"\r\nhello\r\n0\r\n\r\n")),
    E("H13-bare-lf-in-ext", chunked_post(b"5;a=b\nc\r\nhello\r\n0\r\n\r\n")),
    E("H13-chunk-lines-bare-lf", chunked_post(b"5\nhello\n0\n\n")),
    E("H13-size-line-bare-lf", chunked_post(b"5\nhello\r\n0\r\n\r\n")),
    E("H14-size-trailing-sp", chunked_post(b"5 \r\nhello\r\n0\r\n\r\n")),
    E("H15-data-longer-than-size", chunked_post(b"3\r\nhello\r\n0\r\n\r\n")),
    E("H15-no-crlf-after-data", chunked_post(b"5\r\nhelloXX0\r\n\r\n")),
    OK("H16-trailer-framing-fields",
       chunked_post(b"5\r\nhello\r\n0\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\nHost: evil\r\n\r\n"),
       h16_check),
    OK("H17-cl-body-holding-a-request", G + b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED, h17_check),
    OK("H18-two-pipelined-gets",
       b"GET /headers/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /headers/2 HTTP/1.1\r\nHost: x\r\n\r\n",
       h18_check, responses=2),
    E("H19-bytes-after-400", P + b"Content-Length: -1\r\n\r\n" + G + b"\r\n"),
    OK("H20-half-close-after-request", G + b"\r\n", close=True, shut_wr=True),
    # ---- B. request line, header syntax, limits
    E("H21-all-bare-lf", b"GET /headers HTTP/1.1\nHost: x\n\n"),
    E("H21-one-bare-lf", b"GET /headers HTTP/1.1\r\nHost: x\n\r\n"),
    E("H22-bare-cr-in-value", G + b"X-A: a\rb\r\n\r\n"),
    E("H23-obs-fold", G + b"X-A: a\r\n b\r\n\r\n"),
    E("H24-name-with-space", G + b"X A: 1\r\n\r\n"),
    E("H24-name-with-at", G + b"X@A: 1\r\n\r\n"),
    E("H24-name-with-paren", G + b"X(A: 1\r\n\r\n"),
    OK("H25-underscore-lookalikes", G + b"X_Forwarded_For: 6.6.6.6\r\nX_Forwarded_Proto: https\r\n\r\n",
       no_forwarded_lookalikes),
    E("H26-empty-name", G + b": x\r\n\r\n"),
    E("H27-nul-in-value", G + b"X-A: a\x00b\r\n\r\n"),
    E("H27-lf-in-value", G + b"X-A: a\nb\r\n\r\n"),
    E("H28-ctl-0x01-in-value", G + b"X-A: a\x01b\r\n\r\n"),
    E("H28-del-in-value", G + b"X-A: a\x7fb\r\n\r\n"),
    OK("H29-obs-text", G + b"X-A: caf\xe9 \xff\x80\r\n\r\n", h29_check),
    E("H30-nul-in-target", b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n"),
    E("H30-sp-in-target", b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"),
    E("H31-two-sp-before-target", b"GET  /headers HTTP/1.1\r\nHost: x\r\n\r\n"),
    E("H31-two-sp-before-version", b"GET /headers  HTTP/1.1\r\nHost: x\r\n\r\n"),
    E("H32-70k-target", b"GET /" + b"a" * (70 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    E("H33-70k-header", G + b"X-Big: " + b"a" * (70 * 1024) + b"\r\n\r\n", 431),
    E("H33-header-section-over-32k", G + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(40)) + b"\r\n", 431),
    E("H34-150-fields", G + b"".join(b"X-F-%d: v\r\n" % i for i in range(150)) + b"\r\n", 431),
    E("H35-http09", b"GET /\r\n\r\n"),
    OK("H36-http12", b"GET /headers HTTP/1.2\r\nHost: x\r\n\r\n", h36_check),
    E("H37-http20-in-h1", b"GET /headers HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    E("H37-lowercase-version", b"GET /headers http/1.1\r\nHost: x\r\n\r\n"),
    E("H38-no-host", b"GET /headers HTTP/1.1\r\n\r\n"),
    E("H39-two-hosts", G + b"Host: y\r\n\r\n"),
    E("H40-absolute-form-other-host", b"GET http://other.example/headers HTTP/1.1\r\nHost: x\r\n\r\n"),
    E("H41-lowercase-method", b"get /headers HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    E("H41-unknown-method", b"FOO /headers HTTP/1.1\r\nHost: x\r\n\r\n", 501),
    E("H41-non-token-method", b"G(T /headers HTTP/1.1\r\nHost: x\r\n\r\n"),
    Case("H42-connect", b"CONNECT host:443 HTTP/1.1\r\nHost: host:443\r\n\r\n", (405,), True, h42_check),
    OK("H43-websocket-upgrade-stripped",
       G + b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n", upgrade_stripped),
    OK("H44-h2c-upgrade-stripped",
       G + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
       upgrade_stripped),
    E("H44-h2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    # H45 (Expect: 100-continue) needs a conversation: see test_h45_expect_100_continue.
    E("H46-expect-bogus", G + b"Expect: 200-bogus\r\n\r\n", 417),
    OK("H47-crlf-before-request-line", b"\r\n" + G + b"\r\n"),
    OK("H48-client-nominates-xff", G + b"Connection: close, X-Forwarded-For\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
       h48_check, close=True),
    OK("H48-client-nominates-xfp", G + b"Connection: X-Forwarded-Proto\r\nX-Forwarded-Proto: https\r\n\r\n",
       h48b_check),
]


@pytest.fixture(scope="module")
def target(module_stack):
    b = module_stack.backend("bad-inputs")
    lbd = module_stack.lbd({"web": h.pool([b.address])}, timeouts={"client_head": "5s"})
    return lbd, b


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(target, case: Case):
    lbd, backend = target
    assert lbd.alive(), "lbd died in an earlier case"
    n0 = backend.log_len()
    s, r = h.raw_exchange(lbd.port, case.raw, timeout=8, shut_wr=case.shut_wr)
    try:
        responses = []
        for i in range(case.responses):
            try:
                responses.append(h.read_response(r))
            except (h.PeerClosed, ConnectionResetError) as e:
                pytest.fail(f"{case.id}: connection ended before response {i + 1} "
                            f"({type(e).__name__}); expected {case.expect}")
            except socket.timeout:
                pytest.fail(f"{case.id}: no response {i + 1} within 8s; expected {case.expect}")
        first = responses[0]
        assert first.status in case.expect, f"{case.id}: got {first!r}, expected {case.expect}"
        for extra in responses[1:]:
            assert extra.status == 200, extra
        is_error = first.status in LBD_ERRORS
        if is_error:
            assert "close" in first.connection_tokens(), f"{case.id}: lbd error without Connection: close: {first.headers}"
            assert first.body, f"{case.id}: lbd error without a short text body"

        if case.close is True:
            closed, extra = h.wait_closed(s, 3)
            assert closed, f"{case.id}: connection still open 3s after the response"
            assert extra == b"", f"{case.id}: bytes after the final response: {extra[:200]!r}"
        elif case.close is False:
            s.sendall(b"GET /headers/alive HTTP/1.1\r\nHost: x\r\n\r\n")
            # Checked below, after the backend's view.
        if is_error:
            time.sleep(0.2)
            new = backend.requests_since(n0)
            assert new == [], f"{case.id}: backend completed a request: {[q.request_line for q in new]}"
            if case.check:
                case.check(first, new)
        elif case.check:
            new = backend.requests_since(n0)
            new = [q for q in new if q.target != "/headers/alive"]
            case.check(first, new)
        if case.close is False:
            probe = h.read_response(r)
            assert probe.status == 200, f"{case.id}: follow-up request on the same connection got {probe!r}"
            assert probe.json()["target"] == "/headers/alive"
    finally:
        s.close()
    assert lbd.alive(), f"lbd died on {case.id}:\n{lbd.stderr()[-3000:]}"


def test_h45_expect_100_continue(target):
    """H45: lbd relays the backend's 100 or sends its own, then the final response."""
    lbd, backend = target
    n0 = backend.log_len()
    s = h.connect(lbd.port, timeout=8)
    try:
        r = h.BufferedSocket(s)
        s.sendall(b"POST /sha256 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = h.read_response(r, stop_on_interim=True)
        assert interim.status == 100, f"expected 100 Continue before the body, got {interim!r}"
        s.sendall(b"hello")
        final = h.read_response(r)
        assert final.status == 200, final
        assert final.json()["sha256"] == hashlib.sha256(b"hello").hexdigest()
        assert final.json()["len"] == 5
        # Still a usable keep-alive connection.
        s.sendall(b"GET /headers/after-100 HTTP/1.1\r\nHost: x\r\n\r\n")
        again = h.read_response(r)
        assert again.status == 200 and again.json()["target"] == "/headers/after-100"
    finally:
        s.close()
    assert [q.path for q in backend.requests_since(n0)] == ["/sha256", "/headers/after-100"]


def test_catalogue_coverage():
    """Every H1–H48 is covered by a row above (H45 by its own test)."""
    covered = {c.id.split("-")[0] for c in CASES} | {"H45"}
    missing = [f"H{i}" for i in range(1, 49) if f"H{i}" not in covered]
    assert not missing, missing
