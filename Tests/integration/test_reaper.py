"""The Reaper: steady load while backends are SIGKILLed and restarted; clients must see nothing.

Five backends run as separate processes (backend.py). lbd has active checks (/health, 500ms,
timeout 300ms, rise 2, fall 2) and retries 2. wrk (-t1 -c16, keep-alive, unthrottled) loads lbd
for REAPER_SECONDS (default 120); every 5 s one backend is SIGKILLed (by PID, round robin over the
five) and restarted on the same port 2.5 s later. Asserted: zero non-2xx answers, zero socket
errors (connect, read, write, timeout), at least 1,000 requests/s on average (x 0.9), lbd alive.

Backend ports are picked below the kernel's ephemeral range so that none of lbd's own outgoing
connections can sit on a dead backend's port while it is down (the restart could not bind it)."""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import lbdharness as h

SECONDS = int(os.environ.get("REAPER_SECONDS", "120"))
KILL_EVERY = 5.0
RESTART_AFTER = 2.5
BACKENDS = 5
CONNS = 16
MIN_RATE = 1000

pytestmark = pytest.mark.timeout(SECONDS + 150)

BACKEND_PY = str(Path(__file__).resolve().parent / "backend.py")

WRK_LUA = r"""
-- Counts non-2xx answers per status; prints one REAPER line with wrk's own error counters.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non2xx = 0; bystatus = {} end
function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      bystatus[status] = (bystatus[status] or 0) + 1
   end
end
function done(summary, latency, requests)
   local n, st = 0, {}
   for _, t in ipairs(threads) do
      n = n + t:get("non2xx")
      for k, v in pairs(t:get("bystatus")) do st[k] = (st[k] or 0) + v end
   end
   local parts = {}
   for k, v in pairs(st) do table.insert(parts, k .. ":" .. v) end
   local e = summary.errors
   io.write(string.format(
      "REAPER requests=%d duration_us=%d non2xx=%d err_connect=%d err_read=%d err_write=%d " ..
      "err_status=%d err_timeout=%d p50_us=%d p99_us=%d max_us=%d statuses=%s\n",
      summary.requests, summary.duration, n, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99), latency.max, table.concat(parts, ",")))
end
"""


def ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def fixed_ports(n: int) -> list[int]:
    """n free ports outside the ephemeral range."""
    lo, hi = ephemeral_range()
    span = (10000, lo - 1) if lo > 12000 else (hi + 1, 65535)
    ports: list[int] = []
    rnd = random.Random()
    for _ in range(2000):
        p = rnd.randint(*span)
        if p in ports:
            continue
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((h.HOST, p))
        except OSError:
            continue
        finally:
            s.close()
        ports.append(p)
        if len(ports) == n:
            return ports
    raise RuntimeError("no free ports outside the ephemeral range")


class BackendProcs:
    """backend.py processes, one per port; killed and restarted by PID."""

    def __init__(self, ports: list[int], workdir: Path):
        self.ports = ports
        self.names = [f"r{i}" for i in range(len(ports))]
        self.workdir = workdir
        self.procs: list[subprocess.Popen | None] = [None] * len(ports)
        self.starts = [0] * len(ports)
        self.lock = threading.Lock()

    def address(self, i) -> str:
        return f"{h.HOST}:{self.ports[i]}"

    def start(self, i, ready_timeout=5.0) -> None:
        """Starts backend i and waits until it accepts; retries if the port is briefly taken."""
        deadline = time.monotonic() + ready_timeout
        while True:
            self.starts[i] += 1
            log = open(self.workdir / f"{self.names[i]}.{self.starts[i]}.log", "wb")
            p = subprocess.Popen([sys.executable, BACKEND_PY, "--port", str(self.ports[i]), "--name", self.names[i]],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
            log.close()
            with self.lock:
                self.procs[i] = p
            while time.monotonic() < deadline:
                if p.poll() is not None:
                    break
                if h.can_connect(self.ports[i], 0.2):
                    return
                time.sleep(0.02)
            if p.poll() is None:
                self.kill(i)
                raise RuntimeError(f"backend {self.names[i]} not accepting on {self.ports[i]} after {ready_timeout}s")
            if time.monotonic() >= deadline:
                raise RuntimeError(f"backend {self.names[i]} keeps exiting (port {self.ports[i]}): "
                                   + (self.workdir / f"{self.names[i]}.{self.starts[i]}.log").read_text()[-500:])
            time.sleep(0.1)

    def kill(self, i) -> None:
        with self.lock:
            p = self.procs[i]
            self.procs[i] = None
        if p is not None and p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)

    def close(self) -> None:
        for i in range(len(self.ports)):
            self.kill(i)


def parse_reaper_line(out: str) -> dict:
    m = re.search(r"^REAPER (.*)$", out, re.M)
    if not m:
        return {}
    res = {}
    for kv in m.group(1).split():
        k, _, v = kv.partition("=")
        res[k] = int(v) if v.lstrip("-").isdigit() else v
    return res


def test_reaper(stack, tmp_path, capsys):
    wrk = shutil.which("wrk")
    if wrk is None:
        pytest.skip("wrk is not installed")
    ports = fixed_ports(BACKENDS)
    procs = BackendProcs(ports, tmp_path)
    kills: list[tuple[float, str]] = []
    stop = threading.Event()
    reaper_errors: list[str] = []
    wrk_proc = None
    try:
        for i in range(BACKENDS):
            procs.start(i)
        pool = h.pool([procs.address(i) for i in range(BACKENDS)], retries=2,
                      health={"http": {"path": "/health", "expect": 200}, "interval": "500ms",
                              "timeout": "300ms", "rise": 2, "fall": 2})
        lbd = stack.lbd({"web": pool}, log={"access_log": False})

        # All five in rotation before the load starts.
        def all_up():
            got = set()
            for _ in range(4 * BACKENDS):
                try:
                    r = h.get(lbd.port, "/", timeout=2)
                except OSError:
                    continue
                if r.status == 200:
                    got.add(r.header("X-Backend"))
            return got == set(procs.names)
        deadline = time.monotonic() + 10
        while not all_up():
            assert time.monotonic() < deadline, "not all 5 backends in rotation after 10s:\n" + lbd.stderr()
            time.sleep(0.1)

        script = tmp_path / "reaper.lua"
        script.write_text(WRK_LUA)
        wrk_out = tmp_path / "wrk.out"
        with open(wrk_out, "wb") as f:
            wrk_proc = subprocess.Popen([wrk, "-t1", f"-c{CONNS}", f"-d{SECONDS}s", "-s", str(script),
                                         f"http://{h.HOST}:{lbd.port}/"],
                                        stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        t0 = time.monotonic()

        def reaper():
            n = 0
            while True:
                at = t0 + KILL_EVERY * (n + 1)
                if at + 0.5 > t0 + SECONDS or stop.wait(max(0.0, at - time.monotonic())):
                    return
                i = n % BACKENDS
                kills.append((time.monotonic() - t0, procs.names[i]))
                procs.kill(i)
                if stop.wait(RESTART_AFTER):
                    return
                try:
                    procs.start(i)
                except RuntimeError as e:
                    reaper_errors.append(str(e))
                    return
                n += 1

        rt = threading.Thread(target=reaper, daemon=True)
        rt.start()
        try:
            wrk_proc.wait(SECONDS + 60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"wrk still running {SECONDS + 60}s after start")
        stop.set()
        rt.join(10)

        out = wrk_out.read_text(errors="replace")
        res = parse_reaper_line(out)
        assert res, f"no REAPER line in wrk's output (rc {wrk_proc.returncode}):\n{out}"
        secs = res["duration_us"] / 1e6
        socket_errors = res["err_connect"] + res["err_read"] + res["err_write"] + res["err_timeout"]
        lbd_counts = {m: len(re.findall(f'msg="{m}"', lbd.stderr_path.read_text(errors="replace")))
                      for m in ("backend connect failed", "backend ejected", "backend state changed",
                                "retry budget exhausted", "request aborted", "group capped")}
        summary = (
            f"reaper: {SECONDS}s, {len(kills)} SIGKILLs ({', '.join(f'{t:.1f}s {n}' for t, n in kills)})\n"
            f"  requests {res['requests']} in {secs:.1f}s = {res['requests'] / secs:.0f}/s; "
            f"non-2xx {res['non2xx']} ({res['statuses'] or '-'}); socket errors: connect {res['err_connect']} "
            f"read {res['err_read']} write {res['err_write']} timeout {res['err_timeout']}; "
            f"p50 {res['p50_us'] / 1000:.2f} ms p99 {res['p99_us'] / 1000:.2f} ms max {res['max_us'] / 1000:.1f} ms\n"
            f"  lbd log: " + ", ".join(f"{k}: {v}" for k, v in lbd_counts.items()))
        with capsys.disabled():
            print("\n" + summary)

        assert not reaper_errors, reaper_errors
        assert len(kills) >= max(1, int(SECONDS // KILL_EVERY) - 1), kills
        assert lbd.alive(), "lbd died\n" + lbd.stderr()
        # lbd's decisions (state changes, ejections, the cap), without the per-request lines.
        excerpt = "lbd log (decisions only, last 40):\n" + "\n".join(
            [ln for ln in lbd.stderr_path.read_text(errors="replace").splitlines()
             if re.search(r'msg="(backend state changed|backend ejected|group capped|group no longer capped)"', ln)][-40:])
        assert res["non2xx"] == 0 and res["err_status"] == 0, f"non-2xx answers\n{summary}\n{excerpt}"
        assert socket_errors == 0, f"socket errors\n{summary}\n{excerpt}"
        assert res["requests"] >= MIN_RATE * SECONDS * 0.9, f"too few requests\n{summary}"
    finally:
        stop.set()
        if wrk_proc is not None and wrk_proc.poll() is None:
            os.kill(wrk_proc.pid, signal.SIGKILL)
            wrk_proc.wait(5)
        procs.close()
