"""The admin API's writes (issue 5): bearer token, backend weights and admin states (ready, drain,
maint), group shares, promote and revert under load, a hot source swap; every change persisted in
the state file and surviving a restart and a reload (unless the file changed that same setting);
bad input answered 400/404/405/411/413/415 with the reason, and nothing changed by a refused write."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import lbdharness as h
from test_discovery import Load, assert_no_errors, rewrite_and_reload, served_by
from test_health import events, wait_until

TOKEN = "test-token-0123456789abcdef"


def api(port, method, path, body=None, token=TOKEN, content_type="application/json", raw=None):
    """(status, parsed JSON or text, headers)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if data is not None and content_type:
        req.add_header("Content-Type", content_type)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            status, headers, text = r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        status, headers, text = e.code, e.headers, e.read().decode()
    try:
        return status, json.loads(text), headers
    except ValueError:
        return status, text, headers


def admin_stack(stack, pools, tmp_path, token=TOKEN, **kw):
    port = h.free_port()
    admin = {"listen": f"127.0.0.1:{port}"}
    if token is not None:
        token_file = tmp_path / "admin.token"
        if token:
            token_file.write_text(token + "\n")
        admin["token_file"] = str(token_file)
    lbd = stack.lbd(pools, admin=admin, state_file=str(tmp_path / "state.json"), **kw)
    lbd.admin_port = port
    wait_admin(lbd)
    return lbd


def wait_admin(lbd):
    """The harness waits for the proxy listeners; the admin listener binds just after them."""
    wait_until(lambda: h.can_connect(lbd.admin_port, 0.2), 5, what="the admin endpoint listening")


def backends(lbd, pool="web") -> dict:
    status, doc, _ = api(lbd.admin_port, "GET", f"/v1/pools/{pool}", token=None)
    assert status == 200, doc
    return {b["address"]: b for g in doc["groups"] for b in g["backends"] if "address" in b}


def shares(lbd, pool="web") -> dict:
    status, doc, _ = api(lbd.admin_port, "GET", f"/v1/pools/{pool}", token=None)
    assert status == 200, doc
    return {g["name"]: g["share"] for g in doc["groups"]}


def two_groups(stable, canary, stable_share=95, canary_share=5) -> dict:
    return {"balance": "round_robin", "retries": 2, "groups": {
        "stable": {"share": stable_share, "static": [b.address for b in stable]},
        "canary": {"share": canary_share, "static": [b.address for b in canary]}}}


def restart(lbd):
    lbd.stop()
    lbd.start()
    wait_admin(lbd)


# ---------------------------------------------------------------------------------------------
# auth


def test_writes_need_the_token_and_a_refused_write_changes_nothing(stack, tmp_path):
    a, b = stack.backend("a"), stack.backend("b")
    lbd = admin_stack(stack, {"web": h.pool([a.address, b.address])}, tmp_path)
    before = backends(lbd)
    path = f"/v1/pools/web/backends/{a.address}"
    for token in (None, "wrong-token-0123456789", TOKEN + "x", TOKEN[:-1]):
        status, doc, headers = api(lbd.admin_port, "PUT", path, {"weight": 7}, token=token)
        assert status == 401 and "Bearer" in doc["error"], (token, status, doc)
        assert headers.get("WWW-Authenticate") == "Bearer"
    status, doc, _ = api(lbd.admin_port, "POST", "/v1/pools/web/promote", {"group": "main"}, token="nope")
    assert status == 401, doc
    assert backends(lbd) == before
    # A GET never changes anything, with or without a token.
    assert api(lbd.admin_port, "GET", "/v1/pools", token=None)[0] == 200
    status, doc, _ = api(lbd.admin_port, "PUT", path, {"weight": 7})
    assert status == 200 and [b for g in doc["groups"] for b in g["backends"] if b["address"] == a.address][0]["weight"] == 7


def test_missing_token_file_is_created_private_and_without_one_writes_are_forbidden(stack, tmp_path):
    a = stack.backend("a")
    lbd = admin_stack(stack, {"web": h.pool([a.address])}, tmp_path, token="")
    token_file = tmp_path / "admin.token"
    token = token_file.read_text().strip()
    assert len(token) == 64 and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert events(lbd, "created admin.token_file with a new random token")
    assert api(lbd.admin_port, "PUT", f"/v1/pools/web/backends/{a.address}", {"weight": 2}, token=token)[0] == 200

    c = stack.backend("c")
    other = admin_stack(stack, {"web": h.pool([c.address])}, tmp_path / "x", token=None)
    status, doc, _ = api(other.admin_port, "PUT", f"/v1/pools/web/backends/{c.address}", {"weight": 2})
    assert status == 403 and "token_file" in doc["error"], doc


# ---------------------------------------------------------------------------------------------
# bad input


def test_bad_input_gets_the_right_status_and_reason(stack, tmp_path):
    a, b = stack.backend("a"), stack.backend("b")
    lbd = admin_stack(stack, {"web": two_groups([a], [b])}, tmp_path)
    port = lbd.admin_port
    before = (backends(lbd), shares(lbd))
    be = f"/v1/pools/web/backends/{a.address}"
    cases = [
        ("PUT", be, {"weight": 0}, 400, "weight"),
        ("PUT", be, {"weight": 257}, 400, "weight"),
        ("PUT", be, {"weight": 2.5}, 400, "weight"),
        ("PUT", be, {"weight": True}, 400, "weight"),
        ("PUT", be, {"state": "sleeping"}, 400, "state"),
        ("PUT", be, {"weight": 2, "colour": "red"}, 400, "unknown field colour"),
        ("PUT", be, {}, 400, "weight"),
        ("PUT", be, [1, 2], 400, "object"),
        ("PUT", "/v1/pools/web/groups/canary", {"share": 100.001}, 400, "share"),
        ("PUT", "/v1/pools/web/groups/canary", {"share": -1}, 400, "share"),
        ("PUT", "/v1/pools/web/groups/canary", {"share": 5, "srv": "_x._tcp.service.consul"}, 400, "exactly one"),
        ("PUT", "/v1/pools/web/groups/canary", {"static": ["nowhere"]}, 400, "static[0]"),
        ("PUT", "/v1/pools/web/groups/canary", {"static": [a.address]}, 400, "already listed"),
        ("PUT", "/v1/pools/web/groups/canary", {"srv": "bad name!", "resolver": "none"}, 400, "not a DNS name"),
        ("POST", "/v1/pools/web/promote", {}, 400, "group"),
        ("POST", "/v1/pools/web/promote", {"group": "nope"}, 404, "no group nope"),
        ("PUT", "/v1/pools/nope/backends/127.0.0.1:1", {"weight": 2}, 404, "no pool"),
        ("PUT", "/v1/pools/web/backends/127.0.0.1:1", {"weight": 2}, 404, "no backend"),
        ("PUT", "/v1/pools/web/groups/nope", {"share": 5}, 404, "no group"),
        ("GET", "/v1/nothing", None, 404, "no such path"),
        ("GET", be, None, 405, "PUT"),
        ("DELETE", "/v1/pools", None, 405, "GET"),
        ("POST", "/v1/pools/web/revert", {"group": 3}, 400, "group"),
    ]
    for method, path, body, want, reason in cases:
        status, doc, headers = api(port, method, path, body)
        assert status == want and reason in doc["error"], (method, path, body, status, doc)
        if want == 405:
            assert headers.get("Allow"), headers
    status, doc, _ = api(port, "PUT", be, raw=b"{not json", content_type="application/json")
    assert status == 400 and "JSON" in doc["error"], doc
    status, doc, _ = api(port, "PUT", be, raw=b'{"weight": 2}', content_type="text/plain")
    assert status == 415, doc
    status, doc, _ = api(port, "PUT", be, raw=b"x" * 70_000)
    assert status == 413, doc
    # Chunked bodies are refused (411), the connection closed.
    s, r = h.raw_exchange(port, b"PUT " + be.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode()
                          + b"\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
                          + b"d\r\n{\"weight\": 2}\r\n0\r\n\r\n")
    assert r.read_line().startswith(b"HTTP/1.1 411"), "chunked body"
    s.close()
    assert (backends(lbd), shares(lbd)) == before
    assert lbd.alive()


# ---------------------------------------------------------------------------------------------
# weights and admin states


def test_weight_survives_a_reload_and_a_restart_until_the_file_changes_it(stack, tmp_path):
    a, b = stack.backend("a"), stack.backend("b")
    lbd = admin_stack(stack, {"web": h.pool([a.address, b.address])}, tmp_path, workers=1)
    assert served_by(lbd.port, 20) == Counter({"a": 10, "b": 10})
    assert api(lbd.admin_port, "PUT", f"/v1/pools/web/backends/{a.address}", {"weight": 3})[0] == 200
    assert served_by(lbd.port, 40) == Counter({"a": 30, "b": 10})
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["overrides"]["backends"]["web"][a.address]["weight"] == 3, saved

    # A reload of the same file keeps it.
    rewrite_and_reload(lbd, lbd.cfg["pools"])
    assert backends(lbd)[a.address]["weight"] == 3
    assert served_by(lbd.port, 40) == Counter({"a": 30, "b": 10})

    # A restart restores it from the state file.
    restart(lbd)
    assert events(lbd, "restored admin overrides from the state file")
    assert backends(lbd)[a.address]["weight"] == 3
    assert served_by(lbd.port, 40) == Counter({"a": 30, "b": 10})

    # A reload whose file changes b's weight keeps a's override; one that changes a's drops it.
    rewrite_and_reload(lbd, {"web": h.pool([a.address, (b.address, 2)])})
    assert backends(lbd)[a.address]["weight"] == 3 and backends(lbd)[b.address]["weight"] == 2
    rewrite_and_reload(lbd, {"web": h.pool([(a.address, 5), (b.address, 2)])})
    assert backends(lbd)[a.address]["weight"] == 5
    assert events(lbd, "reload: admin override dropped")
    assert "backends" not in (json.loads((tmp_path / "state.json").read_text()).get("overrides") or {}) or \
        a.address not in json.loads((tmp_path / "state.json").read_text())["overrides"]["backends"].get("web", {})


def test_drain_lets_in_flight_finish_and_maint_stops_checks_until_ready(stack, tmp_path):
    a, b = stack.backend("a"), stack.backend("b")
    health = {"http": {"path": "/health", "expect": 200}, "interval": "200ms", "timeout": "150ms", "rise": 2, "fall": 2}
    lbd = admin_stack(stack, {"web": h.pool([a.address, b.address], health=health)}, tmp_path, workers=1)
    wait_until(lambda: all(x["in_rotation"] for x in backends(lbd).values()) and len(backends(lbd)) == 2, 5,
               what="both up")
    # A slow request in flight on a, then drain a: the request finishes, new ones go to b only.
    result = {}

    def slow():
        result["r"] = h.get(lbd.port, "/sleep/1000", timeout=10)
    import threading
    # Route the slow request to a: with round robin over 2 members, send until a takes it.
    t = None
    for _ in range(4):
        before = a.stats()["heads"]
        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.2)
        if a.stats()["heads"] > before:
            break
        t.join()
    assert api(lbd.admin_port, "PUT", f"/v1/pools/web/backends/{a.address}", {"state": "drain"})[0] == 200
    st = backends(lbd)[a.address]
    assert st["admin"] == "drain" and st["state"] == "drain" and not st["in_rotation"] and st["health"] == "up", st
    assert served_by(lbd.port, 20) == Counter({"b": 20})
    t.join(5)
    assert result["r"].status == 200 and result["r"].header("X-Backend") == "a", "the request in flight finished"

    # maint: checks stop; back to ready, a must pass its checks again before it serves.
    assert api(lbd.admin_port, "PUT", f"/v1/pools/web/backends/{a.address}", {"state": "maint"})[0] == 200
    time.sleep(0.3)
    checks = a.stats()["health_checks"]
    time.sleep(1.0)
    assert a.stats()["health_checks"] == checks, "no checks in maint"
    assert served_by(lbd.port, 10) == Counter({"b": 10})
    assert api(lbd.admin_port, "PUT", f"/v1/pools/web/backends/{a.address}", {"state": "ready"})[0] == 200
    assert backends(lbd)[a.address]["in_rotation"] is False, "not before a passing check"
    wait_until(lambda: backends(lbd)[a.address]["in_rotation"], 3, what="a back after its checks")
    assert a.stats()["health_checks"] >= checks + 2
    assert served_by(lbd.port, 20) == Counter({"a": 10, "b": 10})
    # Admin state survives a restart too.
    assert api(lbd.admin_port, "PUT", f"/v1/pools/web/backends/{b.address}", {"state": "drain"})[0] == 200
    restart(lbd)
    wait_until(lambda: backends(lbd)[a.address]["in_rotation"], 5, what="a up after restart")
    assert backends(lbd)[b.address]["admin"] == "drain"
    assert served_by(lbd.port, 10) == Counter({"a": 10})


# ---------------------------------------------------------------------------------------------
# shares, canary, promote, revert, swap


def count_with_wrk(port, seconds, connections=16):
    subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
                   capture_output=True, text=True, timeout=seconds + 30, check=True)


def test_canary_share_is_exact_whatever_the_instance_counts(stack, tmp_path):
    """50 stable backends and 1 canary at a 1% share set through the API: of at least 100,000
    requests the canary gets 1% +/- 0.2 points (counted by the backends themselves)."""
    stable = [stack.backend(f"s{i}") for i in range(50)]
    canary = [stack.backend("canary")]
    lbd = admin_stack(stack, {"web": two_groups(stable, canary, 50, 50)}, tmp_path, log={"access_log": False})
    status, doc, _ = api(lbd.admin_port, "PUT", "/v1/pools/web/groups/canary", {"share": 1})
    assert status == 200 and {g["name"]: g["share"] for g in doc["groups"]} == {"stable": 99, "canary": 1}, doc
    assert {g["name"]: g["configured_share"] for g in doc["groups"]} == {"stable": 50, "canary": 50}

    def proxied(bs):
        return sum(b.stats()["proxied"] for b in bs)
    base_s, base_c = proxied(stable), proxied(canary)
    deadline = time.monotonic() + 120
    while proxied(stable) + proxied(canary) - base_s - base_c < 100_000 and time.monotonic() < deadline:
        count_with_wrk(lbd.port, 5)
    s, c = proxied(stable) - base_s, proxied(canary) - base_c
    total = s + c
    assert total >= 100_000, total
    share = 100.0 * c / total
    print(f"\ncanary at 1%: {c} of {total} requests = {share:.3f}%")
    assert abs(share - 1.0) <= 0.2, share
    assert all(b.stats()["proxied"] > 0 for b in stable), "every stable backend served"


def test_promote_and_revert_under_load_without_a_failed_request(stack, tmp_path):
    stable = [stack.backend(f"s{i}") for i in range(3)]
    canary = [stack.backend("c0"), stack.backend("c1")]
    lbd = admin_stack(stack, {"web": two_groups(stable, canary, 90, 10)}, tmp_path)
    with Load(lbd.port, threads=4) as load:
        time.sleep(0.5)
        status, doc, _ = api(lbd.admin_port, "POST", "/v1/pools/web/promote", {"group": "canary"})
        t_promote = time.monotonic()
        assert status == 200 and {g["name"]: g["share"] for g in doc["groups"]} == {"stable": 0, "canary": 100}
        time.sleep(1.0)
        t_revert_sent = time.monotonic()
        status, doc, _ = api(lbd.admin_port, "POST", "/v1/pools/web/revert", {})
        t_revert = time.monotonic()
        assert status == 200 and {g["name"]: g["share"] for g in doc["groups"]} == {"stable": 100, "canary": 0}
        time.sleep(1.0)
    assert_no_errors(load, lbd)
    with load.lock:
        results = list(load.results)
    # After each change only the new group answers, but for at most one request per client
    # thread that was already in flight (the client records a response when it has read it).
    after_promote = Counter(b for t, s, b in results if t_promote < t < t_revert_sent)
    after_revert = Counter(b for t, s, b in results if t > t_revert)
    assert after_promote["c0"] + after_promote["c1"] > 100, after_promote
    assert sum(after_promote.values()) - after_promote["c0"] - after_promote["c1"] <= 4, after_promote
    assert sum(after_revert[f"s{i}"] for i in range(3)) > 100, after_revert
    assert after_revert["c0"] + after_revert["c1"] <= 4, after_revert
    print(f"\npromote + revert under load: {len(results)} requests, 0 errors")
    # Revert brought the file's shares back, scaled to 100% without the canary.
    restart(lbd)
    assert shares(lbd) == {"stable": 100, "canary": 0}
    # A reload whose file changes the shares drops the overrides: the file's shares apply.
    rewrite_and_reload(lbd, {"web": two_groups(stable, canary, 80, 20)})
    assert shares(lbd) == {"stable": 80, "canary": 20}


def test_share_rescales_the_other_groups_and_only_group_is_refused(stack, tmp_path):
    a, b, c = stack.backend("a"), stack.backend("b"), stack.backend("c")
    pools = {"web": {"groups": {"g1": {"share": 60, "static": [a.address]}, "g2": {"share": 30, "static": [b.address]},
                                "g3": {"share": 10, "static": [c.address]}}},
             "solo": h.pool([stack.backend("d").address])}
    lbd = admin_stack(stack, pools, tmp_path, listeners=[h.listener("public", h.free_port(), "web")])
    assert api(lbd.admin_port, "PUT", "/v1/pools/web/groups/g3", {"share": 55})[0] == 200
    assert shares(lbd) == {"g1": 30, "g2": 15, "g3": 55}
    assert api(lbd.admin_port, "PUT", "/v1/pools/web/groups/g3", {"share": "0.01%"})[0] == 200
    assert shares(lbd) == {"g1": 66.66, "g2": 33.33, "g3": 0.01}
    status, doc, _ = api(lbd.admin_port, "PUT", "/v1/pools/solo/groups/main", {"share": 50})
    assert status == 409 and "only group" in doc["error"], doc
    status, doc, _ = api(lbd.admin_port, "POST", "/v1/pools/solo/revert", {"group": "main"})
    assert status == 409, doc


def test_swap_a_group_source_through_the_api_under_load_and_it_survives_a_restart(stack, tmp_path):
    a, b, c = stack.backend("a"), stack.backend("b"), stack.backend("c")
    lbd = admin_stack(stack, {"web": h.pool([a.address])}, tmp_path, workers=1)
    with Load(lbd.port, threads=4) as load:
        time.sleep(0.3)
        status, doc, _ = api(lbd.admin_port, "PUT", "/v1/pools/web/groups/main",
                             {"static": [b.address, {"address": c.address, "weight": 3}]})
        assert status == 200, doc
        t_swap = time.monotonic()
        time.sleep(1.0)
    assert_no_errors(load, lbd)
    with load.lock:
        later = Counter(bk for t, s, bk in load.results if t > t_swap + 0.3)
    assert set(later) == {"b", "c"}, later
    restart(lbd)
    assert served_by(lbd.port, 40) == Counter({"c": 30, "b": 10})
    assert events(lbd, "restored admin overrides from the state file")


def test_a_restart_with_a_changed_file_lets_the_file_win_for_what_it_changed(stack, tmp_path):
    a, b = stack.backend("a"), stack.backend("b")
    lbd = admin_stack(stack, {"web": h.pool([a.address, b.address])}, tmp_path, workers=1)
    assert api(lbd.admin_port, "PUT", f"/v1/pools/web/backends/{a.address}", {"weight": 3})[0] == 200
    assert api(lbd.admin_port, "PUT", f"/v1/pools/web/backends/{b.address}", {"weight": 2, "state": "drain"})[0] == 200
    lbd.stop()
    cfg = dict(lbd.cfg)
    cfg["pools"] = {"web": h.pool([(a.address, 5), b.address])}
    lbd.cfg = cfg
    lbd.config_path.write_text(h.to_yaml(cfg))
    lbd.start()
    wait_admin(lbd)
    bs = backends(lbd)
    assert bs[a.address]["weight"] == 5, "the file changed a's weight: the file wins"
    assert bs[b.address]["weight"] == 2 and bs[b.address]["admin"] == "drain", "b's overrides stay"
    assert [e for e in events(lbd, "admin override not restored") if a.address in e.get("override", "")]
    saved = json.loads((tmp_path / "state.json").read_text())["overrides"]
    assert a.address not in saved["backends"]["web"] and saved["backends"]["web"][b.address]["weight"] == 2


def test_a_restored_override_never_brings_back_an_address_discovery_dropped(stack, tmp_path):
    from test_discovery import instances, resolver, srv_pool, tcp_health
    bs = [stack.backend(f"m{i}") for i in range(3)]
    dns = stack.consul_dns()
    dns.set_service("web", instances(bs))
    lbd = admin_stack(stack, {"web": srv_pool(health=tcp_health(), slots=4)}, tmp_path,
                      resolvers=resolver(dns, hold="0s"))
    wait_until(lambda: len(backends(lbd)) == 3 and all(b["in_rotation"] for b in backends(lbd).values()), 5,
               what="3 discovered")
    gone = bs[0].address
    assert api(lbd.admin_port, "PUT", f"/v1/pools/web/backends/{gone}", {"weight": 9, "state": "drain"})[0] == 200
    dns.set_service("web", instances(bs[1:]))
    wait_until(lambda: gone not in backends(lbd), 5, what="m0 gone from the pool")
    restart(lbd)
    wait_until(lambda: len(backends(lbd)) == 2, 5, what="2 discovered after the restart")
    assert gone not in backends(lbd), "the override did not bring m0 back"
    saved = json.loads((tmp_path / "state.json").read_text())["overrides"]
    assert saved["backends"]["web"][gone] == {"weight": 9, "state": "drain"}, "kept for when it returns"
    # Listed again: it is a member again, and the override applies to it.
    dns.set_service("web", instances(bs))
    wait_until(lambda: gone in backends(lbd), 5, what="m0 back")
    assert backends(lbd)[gone]["weight"] == 9 and backends(lbd)[gone]["admin"] == "drain"


# ---------------------------------------------------------------------------------------------
# browsers, rebinding and abuse (A6, A7)


def raw_admin(port, method, path, headers: dict, body=b"") -> int:
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    s, r = h.raw_exchange(port, head.encode() + b"\r\n" + body)
    try:
        return h.read_response(r).status
    finally:
        s.close()


def test_browser_origins_and_rebound_host_names_are_refused(stack, tmp_path):
    """A6: a cross-origin page (Origin) and a DNS-rebinding page (Host not loopback) get 403,
    reads and writes alike, even with the right token; loopback names and the status page's own
    origin are answered."""
    a = stack.backend("a")
    lbd = admin_stack(stack, {"web": h.pool([a.address])}, tmp_path)
    port = lbd.admin_port
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    be = f"/v1/pools/web/backends/{a.address}"
    for host in (f"127.0.0.1:{port}", "localhost", f"localhost:{port}", "127.1.2.3", f"[::1]:{port}"):
        assert raw_admin(port, "GET", "/v1/pools", {"Host": host}) == 200, host
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "localhost.evil", "[::2]"):
        assert raw_admin(port, "GET", "/v1/pools", {"Host": host}) == 403, host
        assert raw_admin(port, "PUT", be, {"Host": host, **auth}, b'{"weight": 7}') == 403, host
    assert raw_admin(port, "GET", "/v1/pools", {"Host": f"127.0.0.1:{port}", "Origin": "http://evil.example"}) == 403
    assert raw_admin(port, "GET", "/v1/pools", {"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}"}) == 200
    assert raw_admin(port, "PUT", be, {"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}", **auth},
                     b'{"weight": 7}') == 403
    assert raw_admin(port, "PUT", be, {"Host": f"127.0.0.1:{port}", "Origin": "null", **auth}, b'{"weight": 7}') == 403
    assert backends(lbd)[a.address]["weight"] == 1
    assert raw_admin(port, "PUT", be, {"Host": f"127.0.0.1:{port}", **auth}, b'{"weight": 7}') == 200
    assert backends(lbd)[a.address]["weight"] == 7


def test_admin_slowloris_deep_json_and_concurrent_writes(stack, tmp_path):
    """A7: the admin endpoint caps its own connections (32, the rest wait in the backlog) and
    gives each 10 s in all, so slow clients hold it for a bounded time; JSON nested 20,000 deep is
    a 400, not a crash; 40 concurrent writes are applied one at a time, each logged (without the
    token)."""
    a = stack.backend("a")
    lbd = admin_stack(stack, {"web": h.pool([a.address])}, tmp_path)
    port = lbd.admin_port
    be = f"/v1/pools/web/backends/{a.address}"
    deep = b"[" * 20000 + b"]" * 20000
    assert raw_admin(port, "PUT", be, {"Host": "localhost", "Authorization": f"Bearer {TOKEN}",
                                       "Content-Type": "application/json"}, deep) == 400
    assert lbd.alive()

    slow = []
    t0 = time.monotonic()
    for _ in range(32):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /v1/pools HTTP/1.1\r\nHost: localhost\r\n")
        slow.append(s)
    time.sleep(0.3)
    # A 33rd client waits for a place rather than being refused or starving lbd's descriptors.
    waiting = socket.create_connection(("127.0.0.1", port), timeout=15)
    waiting.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    answered = {}

    def wait_answer():
        try:
            answered["head"] = waiting.recv(100)
            answered["at"] = time.monotonic() - t0
        except OSError as e:
            answered["error"] = e
    waiter = threading.Thread(target=wait_answer)
    waiter.start()
    # Each slow client keeps sending a header line a second; the 10 s deadline is for the whole
    # request, not per read.
    closed_at = {}
    while len(closed_at) < 32 and time.monotonic() - t0 < 15:
        for i, s in enumerate(slow):
            if i in closed_at:
                continue
            try:
                s.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed_at[i] = time.monotonic() - t0
        time.sleep(1)
    for s in slow:
        s.close()
    waiter.join(5)
    waiting.close()
    assert len(closed_at) == 32 and max(closed_at.values()) < 14, closed_at
    assert answered.get("head", b"").startswith(b"HTTP/1.1 200"), answered
    assert 8 <= answered["at"] <= 13, answered

    results = []

    def write(w):
        results.append(api(port, "PUT", be, {"weight": w})[0])
    threads = [threading.Thread(target=write, args=(w,)) for w in range(1, 41)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results.count(200) == 40, Counter(results)
    assert backends(lbd)[a.address]["weight"] in range(1, 41)
    # The deep-JSON write and the 40 concurrent ones, each logged once its answer is written.
    wait_until(lambda: lbd.stderr_path.read_text().count("admin request") >= 41, 5, what="41 admin request lines")
    assert TOKEN not in lbd.stderr_path.read_text()
