"""Plain proxying: routing, smooth weighted round robin, forwarding headers, hop-by-hop
removal, access log."""

import time
import uuid

import lbdharness as h


def hdrs(resp_json, name):
    n = name.lower()
    return [v for k, v in resp_json["headers"] if k.lower() == n]


def test_get_through_lbd(stack):
    lbd, (b,) = stack.simple(["alpha"])
    r = h.get(lbd.port, "/")
    assert r.status == 200
    assert r.body == b"hello from alpha\n"
    assert r.header("X-Backend") == "alpha"
    assert b.stats()["requests"] == 1


def test_smooth_weighted_round_robin_exact(stack):
    lbd, (a, b) = stack.simple(["a", "b"], weights=[1, 2])
    seq = []
    with h.HttpClient(lbd.port) as c:
        for _ in range(300):
            r = c.request("GET", "/")
            assert r.status == 200
            seq.append(r.header("X-Backend"))
    assert seq.count("a") + seq.count("b") == 300
    assert abs(seq.count("a") - 100) <= 1, f"a={seq.count('a')} b={seq.count('b')}"
    assert abs(seq.count("b") - 200) <= 1, f"a={seq.count('a')} b={seq.count('b')}"
    # Smooth WRR interleaves: with weights 1:2 no backend is picked 3 times in a row.
    run, longest = 1, 1
    for x, y in zip(seq, seq[1:]):
        run = run + 1 if x == y else 1
        longest = max(longest, run)
    assert longest <= 2, f"not smooth: {''.join(seq[:30])}"
    # Backends agree with what the client saw.
    assert a.stats()["requests"] == seq.count("a")
    assert b.stats()["requests"] == seq.count("b")


def test_forwarded_headers_added(stack):
    lbd, _ = stack.simple(["b1"])
    j = h.get(lbd.port, "/headers").json()
    assert hdrs(j, "X-Forwarded-For") == ["127.0.0.1"]
    assert hdrs(j, "X-Forwarded-Proto") == ["http"]
    # An existing X-Forwarded-For is appended to, not replaced.
    j = h.get(lbd.port, "/headers", headers=[("X-Forwarded-For", "10.1.2.3")]).json()
    xff = ", ".join(hdrs(j, "X-Forwarded-For"))
    assert xff == "10.1.2.3, 127.0.0.1", xff
    # Host is passed through.
    assert hdrs(j, "Host") == ["lbd.test"]


def test_hop_by_hop_request_fields_removed(stack):
    lbd, _ = stack.simple(["b1"])
    with h.HttpClient(lbd.port) as c:
        r = c.request("GET", "/headers", headers=[
            ("Connection", "close, X-Secret"), ("X-Secret", "1"), ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"), ("Proxy-Connection", "keep-alive"), ("X-Kept", "yes")])
        assert r.status == 200
        j = r.json()
        names = {k.lower() for k, _ in j["headers"]}
        for gone in ("x-secret", "keep-alive", "te", "proxy-connection"):
            assert gone not in names, f"{gone} reached the backend: {j['headers']}"
        for v in hdrs(j, "Connection"):
            assert "x-secret" not in v.lower()
        assert hdrs(j, "X-Kept") == ["yes"]
        # The client asked for close: lbd answers, then closes.
        closed, extra = h.wait_closed(c.sock, 3)
        assert closed and extra == b""


def test_hop_by_hop_response_fields_removed(stack):
    lbd, _ = stack.simple(["b1"])
    r = h.get(lbd.port, "/hop-response")
    assert r.status == 200 and r.body == b"hop\n"
    names = {k.lower() for k, _ in r.headers}
    assert "x-internal" not in names, r.headers
    assert "keep-alive" not in names, r.headers
    assert r.header("X-Public") == "yes"
    assert "x-internal" not in r.connection_tokens()


def test_access_log_one_line_per_request(stack):
    lbd, _ = stack.simple(["b1"])
    markers = [f"mk-{uuid.uuid4().hex[:12]}" for _ in range(5)]
    with h.HttpClient(lbd.port) as c:
        for m in markers:
            assert c.request("GET", f"/headers/{m}").status == 200
        assert c.request("GET", "/no-such-route-" + markers[0]).status == 404
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        out = lbd.stdout()
        if all(m in out for m in markers) and "/no-such-route-" in out:
            break
        time.sleep(0.1)
    lines = lbd.stdout().splitlines()
    for m in markers:
        hits = [ln for ln in lines if f"/headers/{m}" in ln]
        assert len(hits) == 1, f"{m}: {hits} in {lines[-20:]}"
        assert "200" in hits[0], hits[0]
    miss = [ln for ln in lines if "/no-such-route-" in ln]
    assert len(miss) == 1 and "404" in miss[0], miss
