"""A small network lab in namespaces for the VRRP pair's tests (root only).

Topology: a bridge namespace joined by veth pairs to hosts `lb1` (10.99.0.11), `lb2` (10.99.0.12)
and `client` (10.99.0.100), each host's end named eth0 with a fixed MAC 02:99:00:00:00:<last
octet in hex>. Namespace names carry the test process's PID, so parallel runs do not collide, and
everything is deleted in `close()`: processes started through the lab (by PID), then namespaces.

    lab = NetLab().setup()
    p = lab.popen("lb1", ["lbd", "run", ...])
    lab.has_address("lb1", "10.99.0.10")
    lab.close()
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUBNET = "10.99.0"
HOSTS = {"lb1": 11, "lb2": 12, "client": 100}
_counter = itertools.count()


def netns_available() -> str | None:
    """None when this process can build the lab, else why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if not shutil.which("ip"):
        return "needs iproute2"
    name = f"lbdprobe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def sh(*argv, check=True, timeout=10) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))}: {r.stderr.strip()}")
    return r


class NetLab:
    def __init__(self):
        n = next(_counter)
        self.tag = f"lbd{os.getpid()}x{n}"
        self.ns = {h: f"{self.tag}-{h}" for h in HOSTS}
        self.ns["br"] = f"{self.tag}-br"
        self.procs: list[subprocess.Popen] = []

    # -- topology -------------------------------------------------------------------------

    def setup(self) -> "NetLab":
        try:
            for ns in self.ns.values():
                sh("ip", "netns", "add", ns)
            br = self.ns["br"]
            sh("ip", "-n", br, "link", "add", "br0", "type", "bridge")
            sh("ip", "-n", br, "link", "set", "br0", "up")
            for host, octet in HOSTS.items():
                ns = self.ns[host]
                port = f"v{host}"
                sh("ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", br)
                sh("ip", "-n", ns, "link", "set", "eth0", "address", f"02:99:00:00:00:{octet:02x}")
                sh("ip", "-n", ns, "addr", "add", f"{SUBNET}.{octet}/24", "dev", "eth0")
                sh("ip", "-n", ns, "link", "set", "eth0", "up")
                sh("ip", "-n", ns, "link", "set", "lo", "up")
                sh("ip", "-n", br, "link", "set", port, "master", "br0")
                sh("ip", "-n", br, "link", "set", port, "up")
        except Exception:
            self.close()
            raise
        return self

    def address(self, host: str) -> str:
        return f"{SUBNET}.{HOSTS[host]}"

    def link(self, host: str, up: bool) -> None:
        """The host's cable: its port on the bridge side, so the host itself still sees eth0 up."""
        sh("ip", "-n", self.ns["br"], "link", "set", f"v{host}", "up" if up else "down")

    def has_address(self, host: str, address: str) -> bool:
        r = sh("ip", "-n", self.ns[host], "-4", "-o", "addr", "show", "dev", "eth0", check=False)
        return any(line.split()[3].split("/")[0] == address for line in r.stdout.splitlines() if len(line.split()) > 3)

    def owners(self, address: str) -> list[str]:
        return [h for h in ("lb1", "lb2") if self.has_address(h, address)]

    def wait_owner(self, address: str, host: str, timeout: float) -> float | None:
        """Seconds until `host` alone holds `address`, or None."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.owners(address) == [host]:
                return time.monotonic() - t0
            time.sleep(0.01)
        return None

    # -- processes ------------------------------------------------------------------------

    def popen(self, host: str, argv: list, **kw) -> subprocess.Popen:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        p = subprocess.Popen(["ip", "netns", "exec", self.ns[host], *map(str, argv)], **kw)
        self.procs.append(p)
        return p

    def run(self, host: str, argv: list, timeout=10, check=False) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.ns[host], *argv, check=check, timeout=timeout)

    def backend(self, host: str, port: int, name: str) -> subprocess.Popen:
        p = self.popen(host, [sys.executable, HERE / "backend.py", "--port", port, "--name", name])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = self.run(host, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{port}/health"])
            if r.stdout == "200":
                return p
            time.sleep(0.05)
        raise RuntimeError(f"backend {name} in {host} did not start")

    def http(self, host: str, method: str, url: str, body=None, token=None, timeout=5) -> tuple[int, str]:
        argv = ["curl", "-s", "-m", str(timeout), "-X", method, "-w", "\n%{http_code}", url]
        if token:
            argv += ["-H", f"Authorization: Bearer {token}"]
        if body is not None:
            argv += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
        r = self.run(host, argv, timeout=timeout + 5)
        text, _, code = r.stdout.rpartition("\n")
        return int(code or 0), text

    def probe(self, url_host: str, port: int, seconds: float, interval_ms=20, timeout_ms=300) -> subprocess.Popen:
        """Starts the client prober (vrrp_probe.py); `.communicate()` gives its JSON lines."""
        return self.popen(
            "client",
            [sys.executable, HERE / "vrrp_probe.py", url_host, port, seconds, interval_ms, timeout_ms],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @staticmethod
    def stop(p: subprocess.Popen, sig=signal.SIGTERM, timeout=10.0) -> int | None:
        if p.poll() is not None:
            return p.returncode
        p.send_signal(sig)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait(5)

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def probe_results(p: subprocess.Popen, timeout: float) -> list[dict]:
    out, err = p.communicate(timeout=timeout)
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    if p.returncode != 0:
        raise RuntimeError(f"prober failed: {err}")
    return rows
