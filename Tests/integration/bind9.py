"""Bind9: a real BIND9 `named` on 127.0.0.1 (UDP+TCP on one free port) serving one dynamic zone
(`consul.` by default), changed with `nsupdate`. For the ordinary path of SRV discovery.

    bind = Bind9().start()                       # returns once the zone's SOA answers
    bind.add_a("a.node.dc1.consul", "127.0.0.1")
    bind.add_srv("_web._tcp.service.consul", "a.node.dc1.consul", 8080, weight=1, priority=1)
    bind.remove_srv("_web._tcp.service.consul", "a.node.dc1.consul", 8080)
    bind.restart()                               # same port, same data (zone file + journal)
    bind.close()                                 # stop + remove the work dir

Command line: `named -g -4 -n 1 -c <dir>/named.conf` (foreground, logs to <dir>/named.log, IPv4
only, one worker thread), in its own process group, stopped by PID (SIGTERM, then SIGKILL).
Config: recursion off, no DNSSEC validation, no rndc (`controls { };`), no empty zones, no
interface rescans, `lock-file none`, pid/session-key/managed-keys files in the work dir. The zone
allows updates from 127.0.0.1 (no TSIG). Updates are written to `<zone>.db.jnl`, which named
replays at start, so `restart()` keeps them; the zone file itself is never rewritten by us
(named refuses a journal that no longer matches a hand-edited zone file).

Privileges: named runs as whoever runs the tests; as root it stays root (no `-u`), so it can
write its work dir whatever the dir's owner. AppArmor: Debian's profile for /usr/sbin/named only
allows /etc/bind, /var/cache/bind and /var/lib/bind; when that profile is loaded in enforce mode
(and we are root) the work dir is made under /var/cache/bind instead of /tmp.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

HOST = "127.0.0.1"


def named_path() -> str | None:
    for p in (shutil.which("named"), "/usr/sbin/named", "/usr/local/sbin/named"):
        if p and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def nsupdate_path() -> str | None:
    for p in (shutil.which("nsupdate"), "/usr/bin/nsupdate"):
        if p and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def available() -> bool:
    return named_path() is not None and nsupdate_path() is not None


def free_udp_tcp_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (checked, then released)."""
    for _ in range(100):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind((HOST, 0))
            port = t.getsockname()[1]
            u.bind((HOST, port))
            return port
        except OSError:
            continue
        finally:
            t.close()
            u.close()
    raise RuntimeError("no port free for both UDP and TCP")


def apparmor_confines_named() -> bool:
    try:
        with open("/sys/kernel/security/apparmor/profiles") as f:
            return any(ln.split(" (")[0] in ("named", "/usr/sbin/named") and "(enforce)" in ln for ln in f)
    except OSError:
        return False


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


class Bind9:
    """A BIND9 primary for one dynamic zone. See the module docstring."""

    def __init__(self, zone="consul", workdir: str | Path | None = None, port: int | None = None,
                 ready_timeout=10.0):
        self.named = named_path()
        self.nsupdate_bin = nsupdate_path()
        if self.named is None or self.nsupdate_bin is None:
            raise RuntimeError("BIND9 not installed: apt-get install -y bind9 bind9-dnsutils")
        self.zone = _fqdn(zone.lower())
        self.ready_timeout = ready_timeout
        self._own_dir = workdir is None
        if workdir is None:
            base = None
            if apparmor_confines_named() and os.access("/var/cache/bind", os.W_OK):
                base = "/var/cache/bind"
            workdir = tempfile.mkdtemp(prefix="lbd-bind9-", dir=base)
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.port = port or free_udp_tcp_port()
        self.address = f"{HOST}:{self.port}"
        self.conf_path = self.dir / "named.conf"
        self.zone_path = self.dir / f"{self.zone.rstrip('.') or 'root'}.db"
        self.log_path = self.dir / "named.log"
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._write_files()

    # -- files ------------------------------------------------------------------------------

    def _write_files(self):
        d = str(self.dir)
        self.conf_path.write_text(f"""options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    dump-file "{d}/named.dump";
    statistics-file "{d}/named.stats";
    lock-file none;
    listen-on port {self.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    empty-zones-enable no;
    automatic-interface-scan no;
    allow-query {{ any; }};
    minimal-responses no;
}};
controls {{ }};
zone "{self.zone}" {{
    type primary;
    file "{self.zone_path.name}";
    journal "{self.zone_path.name}.jnl";
    allow-update {{ 127.0.0.1; }};
}};
""")
        if not self.zone_path.exists():
            self.zone_path.write_text(
                "$TTL 0\n"
                f"@ IN SOA ns.{self.zone} hostmaster.{self.zone} 1 3600 600 86400 0\n"
                f"@ IN NS ns.{self.zone}\n"
                "ns IN A 127.0.0.1\n")

    # -- lifecycle --------------------------------------------------------------------------

    def command(self) -> list[str]:
        return [self.named, "-g", "-4", "-n", "1", "-c", str(self.conf_path)]

    def start(self) -> "Bind9":
        if self.alive():
            return self
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True, cwd=str(self.dir))
        try:
            self.wait_ready()
        except Exception:
            self.stop()
            raise
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def wait_ready(self, timeout: float | None = None):
        """Queries the zone's SOA over UDP until named answers it (bounded)."""
        timeout = self.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        q = dns.message.make_query(self.zone, "SOA")
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"named exited with {self.proc.returncode}\n{self.log()}")
            try:
                r = dns.query.udp(q, HOST, port=self.port, timeout=0.2)
                if r.rcode() == dns.rcode.NOERROR and r.answer:
                    return
            except (dns.exception.Timeout, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"named not answering SOA {self.zone} on {self.address} after "
                                   f"{timeout}s\n{self.log()}")
            time.sleep(0.05)

    def stop(self, grace=5.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; by PID only."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        if self._log:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def restart(self) -> "Bind9":
        """Stops and starts named on the same port with the same zone file and journal."""
        self.stop()
        return self.start()

    def close(self):
        """stop(), then remove the work dir if this object made it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def log(self, tail=6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    # -- updates ----------------------------------------------------------------------------

    def nsupdate(self, commands: list[str], timeout=15.0) -> str:
        """Sends `update ...` lines (one `send`) with nsupdate over TCP; raises on failure."""
        script = f"server {HOST} {self.port}\nzone {self.zone}\n" + "\n".join(commands) + "\nsend\n"
        p = subprocess.run([self.nsupdate_bin, "-v", "-t", "5"], input=script, capture_output=True,
                           text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"nsupdate failed ({p.returncode}): {p.stderr.strip()}\nscript:\n{script}")
        return p.stdout

    def add_srv(self, name, target, port, weight=1, priority=1, ttl=0):
        self.nsupdate([f"update add {_fqdn(name)} {ttl} IN SRV {priority} {weight} {port} {_fqdn(target)}"])

    def remove_srv(self, name, target, port) -> int:
        """Deletes every SRV record of `name` with this target and port (any priority/weight);
        returns how many there were."""
        recs = [r for r in self.query(name, "SRV")
                if r.target.to_text().lower() == _fqdn(target).lower() and r.port == int(port)]
        if recs:
            self.nsupdate([f"update delete {_fqdn(name)} IN SRV {r.priority} {r.weight} {r.port} "
                           f"{r.target.to_text()}" for r in recs])
        return len(recs)

    def add_a(self, name, address, ttl=0):
        self.nsupdate([f"update add {_fqdn(name)} {ttl} IN A {address}"])

    def add_aaaa(self, name, address, ttl=0):
        self.nsupdate([f"update add {_fqdn(name)} {ttl} IN AAAA {address}"])

    def remove_name(self, name):
        """Deletes every record of `name`."""
        self.nsupdate([f"update delete {_fqdn(name)}"])

    # -- reading back -----------------------------------------------------------------------

    def query(self, name, rdtype="SRV", tcp=True, timeout=2.0) -> list:
        """The rdatas of `name`/`rdtype` as named serves them now (empty list if none)."""
        q = dns.message.make_query(_fqdn(name), rdtype)
        r = (dns.query.tcp if tcp else dns.query.udp)(q, HOST, port=self.port, timeout=timeout)
        want = dns.rdatatype.from_text(rdtype)
        return [rd for rrset in r.answer if rrset.rdtype == want for rd in rrset]
