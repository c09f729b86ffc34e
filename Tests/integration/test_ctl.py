"""`lbd ctl`, the admin API's command-line client, against a running lbd: tables, --json, every
write, the address and token read from the config file, and refusals (exit 1 with the reason,
exit 2 when lbd cannot be reached)."""

from __future__ import annotations

import json
import socket
import subprocess
import threading

import pytest

import lbdharness as h
from test_admin_writes import TOKEN, admin_stack, api, backends, shares, two_groups
from test_health import wait_until


def ctl(lbd, *args, token_file=None, config=None):
    cmd = [h.LBD_BIN, "ctl", *args]
    if config:
        cmd += ["--config", str(config)]
    else:
        cmd += ["--admin", f"127.0.0.1:{lbd.admin_port}", "--token-file", str(token_file or lbd.token_file)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20)


def started(stack, tmp_path, stable, canary):
    lbd = admin_stack(stack, {"web": two_groups(stable, canary, 90, 10)}, tmp_path)
    lbd.token_file = tmp_path / "admin.token"
    return lbd


def test_pools_table_and_json(stack, tmp_path):
    stable, canary = [stack.backend("s0"), stack.backend("s1")], [stack.backend("c0")]
    lbd = started(stack, tmp_path, stable, canary)
    r = ctl(lbd, "pools")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["POOL", "GROUP", "SHARE", "BACKEND"]
    assert any(l.split()[:3] == ["web", "stable", "90%"] for l in lines), r.stdout
    assert any(l.split()[:3] == ["web", "canary", "10%"] for l in lines), r.stdout
    for b in stable + canary:
        row = next(l for l in lines if b.address in l).split()
        assert row[1:5] == ["present", "up", "ready", "up"], row
    r = ctl(lbd, "pools", "web", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == api(lbd.admin_port, "GET", "/v1/pools/web", token=None)[1]
    r = ctl(lbd, "pools", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == api(lbd.admin_port, "GET", "/v1/pools", token=None)[1]
    assert "source: static" in ctl(lbd, "pools", "web").stdout
    assert ctl(lbd, "vrrp").stdout.strip() == '{"enabled": false}'


def test_every_write_changes_what_the_api_shows(stack, tmp_path):
    stable, canary = [stack.backend("s0"), stack.backend("s1")], [stack.backend("c0")]
    lbd = started(stack, tmp_path, stable, canary)
    s0, s1 = stable[0].address, stable[1].address
    assert ctl(lbd, "weight", "web", s0, "7").returncode == 0
    assert backends(lbd)[s0]["weight"] == 7
    assert ctl(lbd, "state", "web", s1, "drain").returncode == 0
    assert backends(lbd)[s1]["admin"] == "drain"
    assert ctl(lbd, "state", "web", s1, "maint").returncode == 0
    assert backends(lbd)[s1]["admin"] == "maint"
    assert ctl(lbd, "state", "web", s1, "ready").returncode == 0
    assert backends(lbd)[s1]["admin"] == "ready"
    r = ctl(lbd, "share", "web", "canary", "2.5")
    assert r.returncode == 0 and "2.50%" in r.stdout and "(file 10%)" in r.stdout, r.stdout
    assert shares(lbd) == {"stable": 97.5, "canary": 2.5}
    assert ctl(lbd, "promote", "web", "canary").returncode == 0
    assert shares(lbd) == {"stable": 0, "canary": 100}
    assert ctl(lbd, "revert", "web").returncode == 0
    assert shares(lbd) == {"stable": 100, "canary": 0}
    c1 = stack.backend("c1")
    r = ctl(lbd, "swap", "web", "canary", "--static", f"{c1.address}=3", canary[0].address)
    assert r.returncode == 0, r.stderr
    assert backends(lbd)[c1.address]["weight"] == 3 and backends(lbd)[canary[0].address]["weight"] == 1


def test_refusals_exit_1_with_the_reason_and_2_when_unreachable(stack, tmp_path):
    stable, canary = [stack.backend("s0")], [stack.backend("c0")]
    lbd = started(stack, tmp_path, stable, canary)
    wrong = tmp_path / "wrong.token"
    wrong.write_text("definitely-not-the-token\n")
    r = ctl(lbd, "weight", "web", stable[0].address, "3", token_file=wrong)
    assert r.returncode == 1 and "401" in r.stderr, (r.returncode, r.stderr)
    r = ctl(lbd, "weight", "nope", stable[0].address, "3")
    assert r.returncode == 1 and "404" in r.stderr and "no pool named nope" in r.stderr, r.stderr
    r = ctl(lbd, "weight", "web", stable[0].address, "0")
    assert r.returncode == 1 and "400" in r.stderr and "weight" in r.stderr, r.stderr
    r = subprocess.run([h.LBD_BIN, "ctl", "pools", "--admin", f"127.0.0.1:{h.free_port()}"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2 and "cannot reach" in r.stderr, r.stderr
    assert backends(lbd)[stable[0].address]["weight"] == 1


def test_address_and_token_come_from_the_config_file(stack, tmp_path):
    stable, canary = [stack.backend("s0")], [stack.backend("c0")]
    lbd = started(stack, tmp_path, stable, canary)
    r = ctl(lbd, "weight", "web", stable[0].address, "4", config=lbd.config_path)
    assert r.returncode == 0, r.stderr
    assert backends(lbd)[stable[0].address]["weight"] == 4
    assert TOKEN in (tmp_path / "admin.token").read_text()


def test_options_before_the_subcommand_and_a_table_in_columns(stack, tmp_path):
    stable, canary = [stack.backend("s0"), stack.backend("s1")], [stack.backend("c0")]
    lbd = started(stack, tmp_path, stable, canary)
    r = subprocess.run([h.LBD_BIN, "ctl", "--config", str(lbd.config_path), "--json", "pools"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and json.loads(r.stdout)["pools"][0]["name"] == "web", r.stderr
    r = subprocess.run([h.LBD_BIN, "ctl", "--admin", f"127.0.0.1:{lbd.admin_port}", "--token-file",
                        str(lbd.token_file), "weight", "web", stable[0].address, "5"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert backends(lbd)[stable[0].address]["weight"] == 5
    # Every backend row starts under BACKEND, its weight under WEIGHT.
    lines = ctl(lbd, "pools").stdout.splitlines()
    column, weight_column = lines[0].index("BACKEND"), lines[0].index("WEIGHT")
    for b in stable + canary:
        row = next(l for l in lines if b.address in l)
        assert row.index(b.address) == column, lines
        assert row[weight_column:].split()[0] == ("5" if b is stable[0] else "1"), lines


def test_share_takes_a_percent_sign_and_a_bad_number_changes_nothing(stack, tmp_path):
    stable, canary = [stack.backend("s0")], [stack.backend("c0")]
    lbd = started(stack, tmp_path, stable, canary)
    assert ctl(lbd, "share", "web", "canary", "12.34%").returncode == 0
    assert shares(lbd) == {"stable": 87.66, "canary": 12.34}
    r = ctl(lbd, "share", "web", "canary", "2.555")
    assert r.returncode == 1 and "400" in r.stderr and "2 decimals" in r.stderr, r.stderr
    r = ctl(lbd, "share", "web", "canary", "ten")
    assert r.returncode == 64 and "PERCENT" in r.stderr, r.stderr
    assert shares(lbd) == {"stable": 87.66, "canary": 12.34}
    assert ctl(lbd, "promote", "web", "canary").returncode == 0
    assert ctl(lbd, "revert", "web", "canary").returncode == 0
    assert shares(lbd) == {"stable": 100, "canary": 0}
    r = ctl(lbd, "revert", "web")
    assert r.returncode == 1 and "409" in r.stderr, r.stderr


def test_wrong_token_and_bad_admin_addresses(stack, tmp_path):
    stable, canary = [stack.backend("s0")], [stack.backend("c0")]
    lbd = started(stack, tmp_path, stable, canary)
    wrong = tmp_path / "wrong.token"
    wrong.write_text("definitely-not-the-token\n")
    r = ctl(lbd, "state", "web", stable[0].address, "drain", token_file=wrong)
    assert r.returncode == 1 and "401" in r.stderr and "Bearer" in r.stderr, r.stderr
    r = ctl(lbd, "state", "web", stable[0].address, "drain", token_file=tmp_path / "missing.token")
    assert r.returncode == 2 and "missing.token" in r.stderr, r.stderr
    assert backends(lbd)[stable[0].address]["admin"] == "ready"
    # A host name is refused rather than quietly replaced by the config file's address.
    r = subprocess.run([h.LBD_BIN, "ctl", "--admin", "localhost:9901", "pools"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 64 and "numeric HOST:PORT" in r.stderr, r.stderr
    r = subprocess.run([h.LBD_BIN, "ctl", "pools", "--config", str(tmp_path / "none.yaml")],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2 and "none.yaml" in r.stderr, r.stderr


def test_a_server_that_does_not_answer_http_exits_2(tmp_path):
    for reply in (b"", b"SSH-2.0-OpenSSH_9.2\r\n\r\n"):
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]

        def serve():
            conn, _ = srv.accept()
            conn.recv(65536)
            conn.sendall(reply)
            conn.close()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        r = subprocess.run([h.LBD_BIN, "ctl", "--admin", f"127.0.0.1:{port}", "pools"],
                           capture_output=True, text=True, timeout=20)
        t.join(5)
        srv.close()
        assert r.returncode == 2, (reply, r.returncode, r.stderr)
        assert ("closed without answering" if not reply else "not an HTTP answer") in r.stderr, r.stderr


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_admin_address_and_backend(stack, tmp_path):
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKEN + "\n")
    stable = [stack.backend("s0")]
    refused = stack.refusing()  # a port number nobody serves; the canary has share 0 and gets no traffic
    pools = {"web": {"balance": "round_robin", "retries": 2, "groups": {
        "stable": {"share": 100, "static": [stable[0].address]},
        "canary": {"share": 0, "static": [f"[::1]:{refused.port}"]}}}}
    lbd = stack.lbd(pools, admin={"listen": f"[::1]:{port}", "token_file": str(token_file)})

    def v6_listening():
        try:
            with socket.create_connection(("::1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until(v6_listening, 5, what="the admin endpoint on [::1]")
    admin = ["--admin", f"[::1]:{port}", "--token-file", str(token_file)]
    run = lambda *a: subprocess.run([h.LBD_BIN, "ctl", *admin, *a], capture_output=True, text=True, timeout=20)
    r = run("pools")
    assert r.returncode == 0 and f"[::1]:{refused.port}" in r.stdout, r.stderr
    r = run("--json", "state", "web", f"[::1]:{refused.port}", "maint")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    canary = next(g for g in doc["groups"] if g["name"] == "canary")
    assert canary["backends"][0]["admin"] == "maint"
    assert lbd.alive()


def test_swap_to_an_srv_name(stack, tmp_path):
    from test_discovery import instances, resolver
    stable, canary = [stack.backend("s0")], [stack.backend("c0")]
    discovered = [stack.backend("d0"), stack.backend("d1")]
    dns = stack.consul_dns()
    dns.set_service("canary", instances(discovered))
    lbd = admin_stack(stack, {"web": two_groups(stable, canary, 90, 10)}, tmp_path, resolvers=resolver(dns))
    lbd.token_file = tmp_path / "admin.token"
    r = ctl(lbd, "swap", "web", "canary", "--srv", "_canary._tcp.service.consul", "--resolver", "consul",
            "--slots", "4")
    assert r.returncode == 0, r.stderr
    r = ctl(lbd, "swap", "web", "canary", "--srv", "_x._tcp.service.consul", "--static", canary[0].address)
    assert r.returncode == 64 and "exactly one" in r.stderr, r.stderr

    def swapped():
        doc = api(lbd.admin_port, "GET", "/v1/pools/web", token=None)[1]
        group = next(g for g in doc["groups"] if g["name"] == "canary")
        addresses = {b.get("address") for b in group["backends"] if b["in_rotation"]}
        return group["source"] == "_canary._tcp.service.consul" and addresses == {d.address for d in discovered}

    wait_until(swapped, 5, what="the canary group serving the SRV members")
    assert "_canary._tcp.service.consul" in ctl(lbd, "pools").stdout
