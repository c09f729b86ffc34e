"""SIGTERM: stop accepting, finish in-flight requests, exit 0 within the grace."""

import signal
import threading
import time

import lbdharness as h


def test_sigterm_drains_in_flight_request(stack):
    lbd, (b,) = stack.simple(["b1"], timeouts={"shutdown_grace": "10s"})
    result = {}

    def slow():
        try:
            with h.HttpClient(lbd.port, timeout=15) as c:
                result["resp"] = c.request("GET", "/sleep/1500")
                result["t"] = time.monotonic()
        except Exception as e:  # noqa: BLE001
            result["err"] = e

    t = threading.Thread(target=slow)
    t.start()
    # Wait until the backend has the request.
    deadline = time.monotonic() + 5
    while b.stats()["heads"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert b.stats()["heads"] == 1
    t_term = time.monotonic()
    lbd.signal(signal.SIGTERM)

    # New connections are refused soon after, while the slow request is still in flight.
    refused_at = None
    while time.monotonic() - t_term < 1.2:
        if h.is_refused(lbd.port, 0.2):
            refused_at = time.monotonic()
            break
        time.sleep(0.05)
    assert refused_at is not None, "lbd still accepting 1.2s after SIGTERM"
    assert "resp" not in result, "in-flight request finished before the listener check"
    assert lbd.alive(), "lbd exited before the in-flight request finished"

    t.join(10)
    assert "err" not in result, result.get("err")
    r = result["resp"]
    assert r.status == 200 and r.body == b"slept 1500\n"
    rc = lbd.wait(12)
    assert rc == 0, f"lbd exit code {rc}\n{lbd.stderr()}"
    assert time.monotonic() - t_term < 10.5


def test_sigterm_idle_exits_promptly(stack):
    lbd, _ = stack.simple(["b1"])
    assert h.get(lbd.port, "/").status == 200
    # An idle keep-alive client must not hold shutdown up to the grace.
    c = h.HttpClient(lbd.port)
    try:
        assert c.request("GET", "/").status == 200
        t0 = time.monotonic()
        lbd.signal(signal.SIGTERM)
        rc = lbd.wait(12)
        assert rc == 0, f"exit code {rc}\n{lbd.stderr()}"
        assert time.monotonic() - t0 < 3.0, "idle keep-alive connection delayed shutdown"
        assert h.wait_closed(c.sock, 2)[0]
    finally:
        c.close()


def test_sigterm_grace_bounds_exit(stack):
    """A request that outlives the grace does not keep lbd alive."""
    lbd, (b,) = stack.simple(["b1"], timeouts={"shutdown_grace": "1s"})
    result = {}

    def slow():
        try:
            with h.HttpClient(lbd.port, timeout=15) as c:
                result["resp"] = c.request("GET", "/sleep/8000")
        except Exception as e:  # noqa: BLE001
            result["err"] = e

    t = threading.Thread(target=slow, daemon=True)
    t.start()
    deadline = time.monotonic() + 5
    while b.stats()["heads"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    lbd.signal(signal.SIGTERM)
    rc = lbd.wait(8)
    el = time.monotonic() - t0
    assert rc is not None, "lbd still running 8s after SIGTERM with a 1s grace"
    assert el < 3.0, f"exit took {el:.1f}s with a 1s grace"
    t.join(10)
    assert "resp" not in result or result["resp"].status != 200
