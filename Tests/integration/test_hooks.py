"""Health hooks: a pool's `hooks.command` runs on backend state changes with the pool's state in
LBD_* variables, rate-limited by `min_interval`, without blocking lbd (the hook sleeps; requests
keep flowing)."""

from __future__ import annotations

import time
from pathlib import Path

import lbdharness as h
from test_health import health, one, wait_first_ok


def read_runs(d: Path) -> list[dict]:
    runs = []
    for f in sorted(d.glob("run-*.env")):
        env = {}
        for line in f.read_text().splitlines():
            k, _, v = line.partition("=")
            env[k] = v
        runs.append(env)
    return sorted(runs, key=lambda e: int(e["T"]))


def test_hook_gets_pool_state_rate_limited_and_never_blocks(stack, tmp_path):
    out = tmp_path / "hooks"
    out.mkdir()
    bs = [stack.backend(f"b{i}") for i in range(3)]
    # The hook sleeps first: if lbd waited for it, requests below would stall.
    command = f"sleep 1; T=$(date +%s%N); env | grep '^LBD_' > {out}/run-$T.tmp; echo T=$T >> {out}/run-$T.tmp; " \
              f"mv {out}/run-$T.tmp {out}/run-$T.env"
    lbd = stack.lbd({"web": h.pool([b.address for b in bs], retries=2, max_unhealthy="50%", health=health(),
                                   hooks={"command": command, "min_interval": "1s"})})
    wait_first_ok(lbd)
    time.sleep(2.5)  # the startup transitions (3 x down -> up) run the hook, coalesced
    bs[0].fail_health = True
    slowest = 0.0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 4.0:  # checks fail, b0 leaves rotation, the hook runs and sleeps
        t = time.monotonic()
        status, _ = one(lbd.port)
        slowest = max(slowest, time.monotonic() - t)
        assert status == 200
        time.sleep(0.01)
    assert slowest < 0.5, f"a request took {slowest:.2f}s while a hook ran"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(r.get("LBD_STATE") == "down" for r in read_runs(out)):
        time.sleep(0.2)
    runs = read_runs(out)
    down = [r for r in runs if r.get("LBD_STATE") == "down"]
    assert down, f"no hook run for the backend going down: {runs}"
    last = down[-1]
    assert last["LBD_POOL"] == "web"
    assert last["LBD_EVENT"] == "backend"
    assert last["LBD_BACKEND"] == bs[0].address
    assert (last["LBD_POOL_MEMBERS"], last["LBD_POOL_UP"], last["LBD_POOL_DOWN"]) == ("3", "2", "1")
    assert (last["LBD_POOL_UP_PCT"], last["LBD_POOL_DOWN_PCT"], last["LBD_POOL_CAPPED"]) == ("66", "33", "0")
    # Startup's three transitions within one interval: the first ran at once, the rest were folded
    # into one trailing run with the latest state (all three up).
    startup = [r for r in runs if r.get("LBD_STATE") == "up"]
    assert 1 <= len(startup) <= 2, startup
    assert startup[-1]["LBD_POOL_UP"] == "3"
    # Never more often than min_interval (the hook's own 1 s sleep is the same for every run).
    times = [int(r["T"]) / 1e9 for r in runs]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g >= 0.9 for g in gaps), gaps
