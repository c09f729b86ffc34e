"""The pair's lab hosts, shared by Tests/integration/test_pair.py and bench/failover: an lb host
(two backends and lbd, with failover or as a plain proxy beside keepalived) and keepalived.
See netlab.py for the namespaces and test_pair.py for the layout."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lbdharness as h  # noqa: E402
from netlab import NetLab, probe_results  # noqa: E402

VIP = "10.99.0.10"
KEY = "pair-test-shared-key-0123456789abcdef"
INTERVAL_MS = 100
TOKEN = "pair-test-admin-token-0123456789"

def skew_ms(priority: int) -> float:
    return (256 - priority) * INTERVAL_MS / 256


def down_interval_ms(priority: int) -> float:
    return 3 * INTERVAL_MS + skew_ms(priority)


class Host:
    """One lb host: its two backends, and lbd (with failover, or as a plain proxy beside keepalived)."""

    def __init__(self, lab: NetLab, name: str, workdir: Path, priority=100, preempt=True, failover=True, **more):
        self.lab, self.name = lab, name
        self.dir = workdir / name
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "sync.key").write_text(KEY + "\n")
        (self.dir / "admin.token").write_text(TOKEN + "\n")
        self.configure(priority, preempt, failover, **more)
        self.proc = None
        self.backends = [lab.backend(name, 9001, f"{name}-a"), lab.backend(name, 9002, f"{name}-b")]

    def configure(self, priority=100, preempt=True, failover=True, extra_vrrp=None, health=False) -> "Host":
        """Writes lbd.yaml; takes effect at the next start."""
        self.priority = priority
        peer = "lb2" if self.name == "lb1" else "lb1"
        vrrp = {
            "interface": "eth0", "vrid": 51, "priority": priority, "advert_interval": f"{INTERVAL_MS}ms",
            "virtual_ips": [f"{VIP}/24"], "preempt": preempt,
            "peer_sync": {"peer": f"{self.lab.address(peer)}:9902", "key_file": "sync.key"},
        }
        vrrp.update(extra_vrrp or {})
        web = {"groups": {"main": {"share": 100, "static": ["127.0.0.1:9001", "127.0.0.1:9002"]}}}
        if health:
            web["health"] = {"http": {"path": "/health", "expect": 200}, "interval": "100ms", "timeout": "80ms",
                             "rise": 1, "fall": 1}
            web["max_unhealthy"] = "100%"
        cfg = h.make_config(
            {"web": web},
            [{"name": "vip", "bind": f"{VIP}:80" if failover else "0.0.0.0:80", "mode": "http", "pool": "web"}],
            workers=1, log={"access_log": False},
            admin={"listen": "127.0.0.1:9901", "token_file": "admin.token"}, state_file="state.json")
        if failover:
            cfg["failover"] = {"vrrp": vrrp}
        (self.dir / "lbd.yaml").write_text(h.to_yaml(cfg))
        return self

    def start(self) -> "Host":
        self.err = open(self.dir / "lbd.err", "ab")
        self.proc = self.lab.popen(self.name, [h.LBD_BIN, "run", "--config", self.dir / "lbd.yaml"], stderr=self.err)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"lbd on {self.name} exited: {self.log()[-2000:]}"
            if self.admin("GET", "/healthz")[0] == 200:
                return self
            time.sleep(0.05)
        raise AssertionError(f"lbd on {self.name} did not start: {self.log()[-2000:]}")

    def admin(self, method, path, body=None) -> tuple[int, str]:
        return self.lab.http(self.name, method, f"http://127.0.0.1:9901{path}", body=body, token=TOKEN)

    def vrrp(self) -> dict:
        code, text = self.admin("GET", "/v1/vrrp")
        assert code == 200, text
        return json.loads(text)

    def log(self) -> str:
        return (self.dir / "lbd.err").read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        if self.proc is not None:
            NetLab.stop(self.proc, sig, timeout)

    def crash(self):
        """kill -9: no priority-0 advert, the VIP stays configured."""
        self.proc.kill()
        self.proc.wait(5)

    def host_down(self):
        """The cable and the process at the same instant."""
        self.lab.link(self.name, False)
        self.proc.kill()
        self.proc.wait(5)


class Keepalived:
    def __init__(self, lab: NetLab, host: str, workdir: Path, priority: int, preempt=True):
        self.lab, self.host = lab, host
        self.dir = workdir / f"keepalived-{host}"
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "keepalived.conf").write_text(f"""global_defs {{
    router_id {host}
    vrrp_version 3
    script_user root
    enable_script_security
}}
vrrp_instance VI_1 {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int {INTERVAL_MS / 1000}
    {"" if preempt else "nopreempt"}
    virtual_ipaddress {{
        {VIP}/24 dev eth0
    }}
}}
""")
        self.proc = None

    def start(self) -> "Keepalived":
        d = self.dir
        self.out = open(d / "keepalived.log", "ab")
        self.proc = self.lab.popen(
            self.host,
            ["keepalived", "-n", "-l", "-D", "-P", "-f", d / "keepalived.conf", "-p", d / "k.pid", "-r", d / "v.pid",
             "-c", d / "c.pid"],
            stdout=self.out, stderr=self.out)
        return self

    def log(self) -> str:
        return (self.dir / "keepalived.log").read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM):
        NetLab.stop(self.proc, sig)

    def host_down(self):
        self.lab.link(self.host, False)
        # keepalived's VRRP child has PDEATHSIG=SIGTERM, which would be a graceful stop: stop both
        # processes first (notes/vrrp.md section 5, "hostdown").
        child = (self.dir / "v.pid").read_text().strip() if (self.dir / "v.pid").exists() else None
        if child:
            os.kill(int(child), signal.SIGSTOP)
        self.proc.send_signal(signal.SIGSTOP)
        if child:
            os.kill(int(child), signal.SIGKILL)
        self.proc.kill()
        self.proc.wait(5)


COMPLAINTS = ("checksum", "wrong version", "interval mismatch", "address list", "ip address associated",
              "invalid ttl", "received an invalid", "bad ", "mismatch")


def keepalived_complaints(log: str) -> list[str]:
    return [line for line in log.splitlines() if any(c in line.lower() for c in COMPLAINTS)]




def single_owner_for(lab: NetLab, host: str, seconds: float) -> list[list[str]]:
    """Samples VIP ownership for `seconds`; returns every sample that was not exactly [host]."""
    bad = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        owners = lab.owners(VIP)
        if owners != [host]:
            bad.append(owners)
        time.sleep(0.02)
    return bad


def served_by(rows, host) -> list[dict]:
    return [r for r in rows if r["ok"] and (r["who"] or "").startswith(host)]


def failed(rows) -> list[dict]:
    return [r for r in rows if not r["ok"]]


def measure_failover(lab: NetLab, master, planned: bool, seconds=2.0, lead=0.6):
    """Probes the VIP while `master` (a Host or Keepalived on lb1) stops: SIGTERM when `planned`,
    else host down. Returns (ms from the event to the first answer served by lb2, or None; rows)."""
    prober = lab.probe(VIP, 80, seconds, interval_ms=20 if planned else 10, timeout_ms=500 if planned else 200)
    time.sleep(lead)
    t0 = time.monotonic()
    if planned:
        master.stop(signal.SIGTERM)
    else:
        master.host_down()
    rows = probe_results(prober, 30)
    after = [r for r in served_by(rows, "lb2") if r["t"] >= t0 - 0.001]
    return ((after[0]["end"] - t0) * 1000 if after else None), rows
