"""The admin endpoint, read-only part: /healthz, /v1/pools with the three separate states per
backend (discovery present/absent/stale, health up/down, admin ready), /metrics in Prometheus text
with the discovery staleness gauge and overflow counter, and its refusals (404, 405, 400)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request

import lbdharness as h
from test_discovery import instances, resolver, srv_pool, tcp_health
from test_health import wait_until


def admin_get(port, path, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def backends_by_port(port) -> dict:
    status, _, body = admin_get(port, "/v1/pools")
    assert status == 200, body
    doc = json.loads(body)
    return {b["id"].rsplit(":", 1)[1]: b for p in doc["pools"] for g in p["groups"] for b in g["backends"]}, doc


def metric(text, name, **labels) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_pools_show_three_states_and_metrics_follow_discovery(stack):
    backends = [stack.backend(f"a{n}") for n in range(3)]
    dns = stack.consul_dns()
    dns.set_service("web", instances(backends))
    admin_port = h.free_port()
    lbd = stack.lbd({"web": srv_pool(health=tcp_health(), slots=4)}, resolvers=resolver(dns),
                    admin={"listen": f"127.0.0.1:{admin_port}"})
    assert admin_get(admin_port, "/healthz")[:3:2] == (200, "ok\n")

    def all_up():
        bs, _ = backends_by_port(admin_port)
        return len(bs) == 3 and all(b["in_rotation"] and b["health"] == "up" for b in bs.values())
    wait_until(all_up, 5, what="3 backends up in /v1/pools")
    bs, doc = backends_by_port(admin_port)
    group = doc["pools"][0]["groups"][0]
    assert group["source"] == "_web._tcp.service.consul" and group["share"] == 100 and group["capped"] is False
    assert {b["discovery"] for b in bs.values()} == {"present"} and {b["admin"] for b in bs.values()} == {"ready"}
    assert all(b["checks"]["enabled"] and b["weight"] == 1 for b in bs.values())

    # Removed from DNS: absent (slot held), out of rotation.
    dns.set_service("web", instances(backends[:2]))
    gone = str(backends[2].port)
    wait_until(lambda: backends_by_port(admin_port)[0][gone]["discovery"] == "absent", 3, what="absent")
    assert backends_by_port(admin_port)[0][gone]["in_rotation"] is False

    # DNS silent: the last good set is stale, and the gauge grows.
    dns.fault = "silence"
    wait_until(lambda: backends_by_port(admin_port)[0][str(backends[0].port)]["discovery"] == "stale", 5,
               what="stale")
    time.sleep(1.2)
    _, headers, text = admin_get(admin_port, "/metrics")
    assert headers["Content-Type"].startswith("text/plain")
    stale = metric(text, "lbd_discovery_stale_seconds", pool="web", group="main")
    assert stale is not None and stale >= 1.0, text
    assert metric(text, "lbd_discovery_failures_total", pool="web", group="main") >= 1
    assert metric(text, "lbd_backend_in_rotation", pool="web", discovery="stale") == 1
    assert metric(text, "lbd_reloads_total", result="ok") == 0

    # Overflow: 6 records for 4 slots.
    dns.fault = None
    more = [stack.backend(f"o{n}") for n in range(4)]
    dns.set_service("web", instances(backends[:2] + more))
    wait_until(lambda: (metric(admin_get(admin_port, "/metrics")[2], "lbd_discovery_overflow_total",
                               pool="web", group="main") or 0) >= 1, 5, what="overflow counted")


def test_refusals(stack):
    a = stack.backend("a")
    admin_port = h.free_port()
    stack.lbd({"web": h.pool([a.address])}, admin={"listen": f"127.0.0.1:{admin_port}"})
    assert admin_get(admin_port, "/nope")[0] == 404
    status, headers, _ = admin_get(admin_port, "/v1/pools", method="POST")
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    _, reader = h.raw_exchange(admin_port, b"GET /v1/pools HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
    assert h.read_response(reader).status == 400


def test_non_loopback_admin_without_token_is_refused(stack, tmp_path):
    a = stack.backend("a")
    cfg = h.make_config({"web": h.pool([a.address])}, [h.listener("public", h.free_port())],
                        admin={"listen": f"0.0.0.0:{h.free_port()}"})
    path = tmp_path / "open-admin.yaml"
    path.write_text(h.to_yaml(cfg))
    r = subprocess.run([h.LBD_BIN, "run", "--config", str(path)], capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert "non-loopback address needs admin.token_file" in r.stderr, r.stderr


def test_metrics_count_traffic_per_backend_group_and_pool(stack):
    """Requests, responses by class, errors and latency histograms per backend, group and pool,
    also shown per backend in /v1/pools."""
    a, b = stack.backend("a"), stack.backend("b")
    dead = h.RefusingPort()
    stack.refusers.append(dead)
    admin_port = h.free_port()
    lbd = stack.lbd({"web": h.pool([a.address, b.address, f"127.0.0.1:{dead.port}"], retries=2)}, workers=1,
                    admin={"listen": f"127.0.0.1:{admin_port}"})
    for _ in range(30):
        assert h.get(lbd.port, "/").status == 200
    for _ in range(3):
        assert h.get(lbd.port, "/nope").status == 404
    text = admin_get(admin_port, "/metrics")[2]
    for name in ("lbd_backend_requests_total", "lbd_backend_responses_total", "lbd_backend_errors_total",
                 "lbd_backend_request_duration_seconds", "lbd_group_requests_total", "lbd_pool_requests_total",
                 "lbd_pool_request_duration_seconds", "lbd_backend_admin_state", "lbd_backend_weight"):
        assert f"# TYPE {name} " in text, name
    ok = sum(metric(text, "lbd_backend_responses_total", backend=x.address, **{"class": "2xx"}) for x in (a, b))
    notfound = sum(metric(text, "lbd_backend_responses_total", backend=x.address, **{"class": "4xx"}) for x in (a, b))
    assert (ok, notfound) == (30, 3), (ok, notfound)
    assert metric(text, "lbd_pool_requests_total", pool="web") == 33
    assert metric(text, "lbd_pool_responses_total", pool="web", **{"class": "2xx"}) == 30
    assert metric(text, "lbd_group_responses_total", group="main", **{"class": "4xx"}) == 3
    assert metric(text, "lbd_pool_request_duration_seconds_count", pool="web") == 33
    assert metric(text, "lbd_group_request_duration_seconds_count", group="main") == 33
    assert metric(text, "lbd_backend_request_duration_seconds_bucket", backend=a.address, le="+Inf") >= 10
    # The refusing backend: its connect failures are errors (the request went on to another).
    assert metric(text, "lbd_backend_errors_total", backend=f"127.0.0.1:{dead.port}") >= 1
    assert metric(text, "lbd_group_errors_total", group="main") >= 1
    assert metric(text, "lbd_backend_admin_state", backend=a.address, state="ready") == 1
    bs, _ = backends_by_port(admin_port)
    assert bs[str(a.port)]["responses"]["2xx"] + bs[str(b.port)]["responses"]["2xx"] == 30
    assert bs[str(a.port)]["requests"] >= 10 and bs[str(dead.port)]["errors"] >= 1
