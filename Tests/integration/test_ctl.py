"""`lbd ctl`, the admin API's command-line client, against a running lbd: tables, --json, every
write, the address and token read from the config file, and refusals (exit 1 with the reason,
exit 2 when lbd cannot be reached)."""

from __future__ import annotations

import json
import subprocess

import lbdharness as h
from test_admin_writes import TOKEN, admin_stack, api, backends, shares, two_groups


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
