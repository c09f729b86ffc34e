"""Fixtures: backends, hostile servers and lbd processes, all torn down by object/PID."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lbdharness as h  # noqa: E402
from backend import Backend  # noqa: E402


class Stack:
    """Owns everything one test (or module) starts; `close()` stops it all."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.backends: list[Backend] = []
        self.servers = []
        self.lbds: list[h.Lbd] = []
        self.refusers: list[h.RefusingPort] = []
        self.dns_servers = []   # ConsulDNS and Bind9 fixtures, stopped in close()

    def backend(self, name="b1") -> Backend:
        b = Backend(name).start()
        self.backends.append(b)
        return b

    def server(self, handler, name="scripted") -> h.ScriptedServer:
        s = h.ScriptedServer(handler, name).start()
        self.servers.append(s)
        return s

    def echo_server(self, **kw) -> h.TcpEchoServer:
        s = h.TcpEchoServer(**kw).start()
        self.servers.append(s)
        return s

    def refusing(self) -> h.RefusingPort:
        r = h.RefusingPort()
        self.refusers.append(r)
        return r

    def consul_dns(self, **kw):
        """A started ConsulDNS (consuldns.py); `kw` go to its constructor (empty=, ttl=, ...)."""
        from consuldns import ConsulDNS
        d = ConsulDNS(**kw).start()
        self.dns_servers.append(d)
        return d

    def bind9(self, **kw):
        """A started, ready BIND9 `named` with a dynamic `consul.` zone (bind9.py)."""
        from bind9 import Bind9
        b = Bind9(**kw)
        self.dns_servers.append(b)
        b.start()
        return b

    def lbd(self, pools: dict, listeners: list | None = None, **cfg_kw) -> h.Lbd:
        """Starts lbd for `pools`; default: one http listener `public` on a free port for pool `web`."""
        if listeners is None:
            listeners = [h.listener("public", h.free_port(), "web")]
        cfg = h.make_config(pools, listeners, **cfg_kw)
        lbd = h.Lbd(cfg, self.workdir, name=f"lbd{len(self.lbds)}")
        self.lbds.append(lbd)
        lbd.start()
        lbd.port = lbd.ports()[0]
        return lbd

    def simple(self, names=("b1",), weights=None, **cfg_kw):
        """Backends named `names` behind lbd's pool `web`. Returns (lbd, backends)."""
        bs = [self.backend(n) for n in names]
        weights = weights or [1] * len(bs)
        lbd = self.lbd({"web": h.pool([(b.address, w) for b, w in zip(bs, weights)])}, **cfg_kw)
        return lbd, bs

    def close(self):
        for lbd in self.lbds:
            lbd.stop()
        for b in self.backends:
            b.stop()
        for s in self.servers:
            s.stop()
        for r in self.refusers:
            r.close()
        for d in self.dns_servers:
            (getattr(d, "close", None) or d.stop)()

    def report(self) -> str:
        out = []
        for lbd in self.lbds:
            out.append(f"--- {lbd.config_path} (pid {lbd.proc.pid if lbd.proc else None}, "
                       f"rc {lbd.proc.returncode if lbd.proc else None}) stderr tail:\n{lbd.stderr()[-3000:]}")
        return "\n".join(out)


@pytest.fixture(scope="session", autouse=True)
def _lbd_binary():
    if not h.lbd_available():
        pytest.skip(f"lbd binary not found at {h.LBD_BIN} (set LBD_BIN or build first)")


@pytest.fixture
def stack(tmp_path, request):
    st = Stack(tmp_path)
    yield st
    st.close()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(st.report())
    if os.environ.get("LBD_TSAN"):
        # lbd built with -sanitize=thread (scripts/test): any report fails the test.
        for lbd in st.lbds:
            text = lbd.stderr_path.read_text(errors="replace") if lbd.stderr_path.exists() else ""
            if "ThreadSanitizer" in text:
                i = text.index("ThreadSanitizer")
                pytest.fail(f"ThreadSanitizer report in {lbd.stderr_path}:\n{text[max(0, i - 200):i + 4000]}")


@pytest.fixture(scope="module")
def module_stack(tmp_path_factory):
    st = Stack(tmp_path_factory.mktemp("stack"))
    yield st
    st.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
