"""The status page at / of the admin endpoint, rendered by a real headless Chromium: it shows the
pools, groups with shares, and backends with their three states and request counts."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

import lbdharness as h
from test_admin_writes import TOKEN, admin_stack, api, two_groups
from test_health import wait_until


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run_chromium(args, timeout=60) -> subprocess.CompletedProcess:
    """Chromium headless in its own process group, killed by PID on timeout."""
    proc = subprocess.Popen([chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--disable-dev-shm-usage", "--user-data-dir=" + args.pop(0), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"chromium did not finish in {timeout}s: {err[-2000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.skipif(chromium() is None, reason="no chromium binary (CI installs Debian's chromium)")
def test_status_page_renders_pools_groups_and_backends_in_a_real_browser(stack, tmp_path):
    stable = [stack.backend("s0"), stack.backend("s1")]
    canary = [stack.backend("c0")]
    lbd = admin_stack(stack, {"web": two_groups(stable, canary, 90, 10)}, tmp_path)
    wait_until(lambda: len(api(lbd.admin_port, "GET", "/v1/pools", token=None)[1]["pools"][0]["groups"][0]["backends"]) == 2,
               5, what="backends listed")
    for _ in range(20):
        assert h.get(lbd.port, "/").status == 200
    assert api(lbd.admin_port, "PUT", f"/v1/pools/web/backends/{stable[1].address}", {"state": "drain"}, token=TOKEN)[0] == 200
    url = f"http://127.0.0.1:{lbd.admin_port}/"
    dom = run_chromium([str(tmp_path / "profile-dom"), "--virtual-time-budget=5000", "--dump-dom", url]).stdout
    assert 'data-pool="web"' in dom, dom[:2000]
    assert 'data-group="stable"' in dom and 'data-group="canary"' in dom
    for b in stable + canary:
        assert f'data-backend="{b.address}"' in dom, (b.address, dom[:3000])
    for state in ("present", "up", "ready", "drain"):
        assert f">{state}</span>" in dom, state
    assert "90%" in dom and "10%" in dom
    banner = re.search(r'<div class="banner" id="error"[^>]*>(.*?)</div>', dom, re.S)
    assert banner and banner.group(1) == "", f"error banner shown: {banner and banner.group(0)}"
    assert 'id="updated">never<' not in dom, "the page refreshed from /v1/pools"
    # A screenshot for people (kept in the test's tmp dir).
    shot = tmp_path / "status.png"
    run_chromium([str(tmp_path / "profile-shot"), "--virtual-time-budget=5000", "--window-size=1280,700",
                  f"--screenshot={shot}", url])
    assert shot.exists() and shot.stat().st_size > 5000
    if os.environ.get("STATUS_SCREENSHOT"):
        shutil.copy(shot, os.environ["STATUS_SCREENSHOT"])
