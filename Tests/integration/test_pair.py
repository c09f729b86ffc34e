"""The pair (issue 6): two lbd hosts, and lbd with a real keepalived, in network namespaces.

Lab (netlab.py): lb1 10.99.0.11, lb2 10.99.0.12 and a client 10.99.0.100 on one bridge; the VIP
is 10.99.0.10, VRID 51, adverts every 100 ms (keepalived: `vrrp_version 3`, `advert_int 0.1`).
Each lb host runs two backends on its own loopback, named after the host (lb1-a, lb1-b...), so the
client's answers say which host served them. The client probes with a new connection and one
request every 10 or 20 ms (vrrp_probe.py).

Needs root and `ip netns`; skipped otherwise. keepalived tests also need keepalived.
"""

from __future__ import annotations

import json
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lbdharness as h  # noqa: E402
from test_health import wait_until  # noqa: E402
from netlab import HOSTS, NetLab, netns_available, probe_results  # noqa: E402
from pairlab import (VIP, Host, Keepalived, down_interval_ms, failed, keepalived_complaints,  # noqa: E402
                     measure_failover, served_by, single_owner_for)

why_not = netns_available()
pytestmark = [
    pytest.mark.skipif(why_not is not None, reason=why_not or ""),
    pytest.mark.skipif(not h.lbd_available(), reason="lbd is not built"),
]


@pytest.fixture
def lab(tmp_path):
    lab = NetLab().setup()
    yield lab
    lab.close()
    # Under ThreadSanitizer (scripts/test), any report in an lbd's log fails the test.
    reports = [str(p) for p in tmp_path.rglob("lbd.err") if "WARNING: ThreadSanitizer" in p.read_text(errors="replace")]
    assert not reports, f"ThreadSanitizer reports in {reports}"


# -- lbd + lbd ------------------------------------------------------------------------------


def start_pair(lab, tmp_path, lb1_kw=None, lb2_kw=None):
    lb1 = Host(lab, "lb1", tmp_path, priority=150, **(lb1_kw or {})).start()
    assert lab.wait_owner(VIP, "lb1", 5) is not None, lb1.log()[-3000:]
    lb2 = Host(lab, "lb2", tmp_path, priority=100, **(lb2_kw or {})).start()
    return lb1, lb2


def test_election_single_owner_and_status(lab, tmp_path):
    lb1, lb2 = start_pair(lab, tmp_path)
    assert single_owner_for(lab, "lb1", 2.0) == []
    rows = probe_results(lab.probe(VIP, 80, 1.0, interval_ms=20), 30)
    assert len(rows) >= 40 and not failed(rows) and len(served_by(rows, "lb1")) == len(rows)
    s1, s2 = lb1.vrrp(), lb2.vrrp()
    assert s1["role"] == "master" and s2["role"] == "backup", (s1, s2)
    assert s2["master_address"] == lab.address("lb1")
    assert s1["counters"]["sent"] > 10 and s2["counters"]["received"] > 10
    assert sum(s2["counters"]["dropped"].values()) == 0, s2
    assert s2["counters"]["checksum_forms"].get("pseudo_header", 0) > 10  # keepalived's form, by default
    out = lab.run("lb1", [h.LBD_BIN, "ctl", "vrrp", "--admin", "127.0.0.1:9901"]).stdout
    assert out.startswith("role master (priority 150 of 150, multicast, vrid 51 on eth0)"), out
    metrics = lb2.admin("GET", "/metrics")[1]
    assert 'lbd_vrrp_role{role="backup"} 1' in metrics and "lbd_peer_sync_exchanges_total" in metrics


def test_host_down_backup_serves_within_bound(lab, tmp_path):
    """Link down and process killed at once; bound 3 x interval + skew + 50 ms (410.9 ms for lb2)."""
    bound = down_interval_ms(100) + 50
    outages = []
    lb1, lb2 = start_pair(lab, tmp_path)
    for run in range(3):
        if run > 0:
            # lb1 comes back (preempt) and takes the VIP again.
            lab.link("lb1", True)
            lb1.start()
            assert lab.wait_owner(VIP, "lb1", 5) is not None, lb1.log()[-3000:]
            time.sleep(0.5)
        prober = lab.probe(VIP, 80, 2.0, interval_ms=10, timeout_ms=200)
        time.sleep(0.6)
        t0 = time.monotonic()
        lb1.host_down()
        rows = probe_results(prober, 30)
        after = [r for r in served_by(rows, "lb2") if r["t"] >= t0 - 0.001]
        assert after, f"lb2 never served: {rows[-5:]}\n{lb2.log()[-3000:]}"
        outages.append((after[0]["end"] - t0) * 1000)
        assert lab.owners(VIP) in (["lb2"], ["lb1", "lb2"])  # lb1's crashed VIP stays behind its cable
    outages.sort()
    print(f"host down -> lb2 serving (ms): {[round(o) for o in outages]}, median {statistics.median(outages):.0f}, "
          f"bound {bound:.0f}")
    assert statistics.median(outages) <= bound, outages
    assert max(outages) <= bound + 250, outages  # a loaded 2-core CI machine gets one bad run


def test_planned_stop_loses_nothing(lab, tmp_path):
    """SIGTERM of the master: priority 0 while keeping the VIP until lb2's first advert."""
    lb1, lb2 = start_pair(lab, tmp_path)
    failures, straddles = [], []
    for run in range(3):
        if run > 0:
            lb1.start()
            assert lab.wait_owner(VIP, "lb1", 5) is not None, lb1.log()[-3000:]
            time.sleep(0.5)
        prober = lab.probe(VIP, 80, 2.5, interval_ms=20, timeout_ms=500)
        time.sleep(0.8)
        lb1.stop(signal.SIGTERM)
        assert lb1.proc.returncode == 0, lb1.log()[-3000:]
        rows = probe_results(prober, 30)
        assert served_by(rows, "lb2"), lb2.log()[-3000:]
        bad = failed(rows)
        failures.append(len(bad))
        straddles.append(len([r for r in bad if r["stage"] == "request"]))
        assert lab.wait_owner(VIP, "lb2", 2) is not None
    print(f"planned stop: failed probes per run {failures} (of them after the handshake: {straddles})")
    # A probe whose connection was made to lb1 just before the ARP switch can be reset (the
    # issue counts those apart); every other probe must succeed, in the median of the runs.
    assert statistics.median([f - s for f, s in zip(failures, straddles)]) == 0, (failures, straddles)
    assert max(straddles) <= 2, straddles
    assert "resign" in lb1.log().lower() or "priority 0" in lb1.log().lower()


def test_preempt_and_nopreempt(lab, tmp_path):
    lb1, lb2 = start_pair(lab, tmp_path)
    lb1.stop()
    assert lab.wait_owner(VIP, "lb2", 3) is not None
    # preempt (the default): lb1 returns and takes the VIP back after its down interval.
    lb1.start()
    took = lab.wait_owner(VIP, "lb1", 3)
    assert took is not None, lb1.log()[-3000:]
    assert single_owner_for(lab, "lb1", 1.0) == []
    lb1.stop()
    assert lab.wait_owner(VIP, "lb2", 3) is not None
    # nopreempt: lb1 returns with the higher priority and leaves lb2 the master.
    lb1.configure(priority=150, preempt=False).start()
    assert single_owner_for(lab, "lb2", 2.5) == []
    assert lb1.vrrp()["role"] == "backup"


def test_crash_leftover_vip_removed_at_start(lab, tmp_path):
    lb1, lb2 = start_pair(lab, tmp_path)
    lb1.crash()
    assert lab.wait_owner(VIP, "lb2", 3) is None  # lb1 still holds its leftover VIP: two owners
    assert lab.owners(VIP) == ["lb1", "lb2"]
    lb1.configure(priority=150, preempt=False).start()
    assert lab.wait_owner(VIP, "lb2", 2) is not None, lb1.log()[-3000:]
    assert single_owner_for(lab, "lb2", 1.0) == []


def test_weight_set_on_master_holds_after_failover(lab, tmp_path):
    lb1, lb2 = start_pair(lab, tmp_path)
    code, text = lb1.admin("PUT", "/v1/pools/web/backends/127.0.0.1:9001", {"weight": 3})
    assert code == 200, text
    code, text = lb1.admin("PUT", "/v1/pools/web/backends/127.0.0.1:9002", {"state": "drain"})
    assert code == 200, text
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pool = json.loads(lb2.admin("GET", "/v1/pools/web")[1])
        backends = {b["address"]: b for g in pool["groups"] for b in g["backends"]}
        if backends["127.0.0.1:9001"]["weight"] == 3 and backends["127.0.0.1:9002"]["admin"] == "drain":
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"lb2 never got lb1's changes: {backends}\n{lb2.log()[-3000:]}")
    lb1.host_down()
    deadline = time.monotonic() + 3
    while not lab.has_address("lb2", VIP) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert lab.has_address("lb2", VIP)
    rows = probe_results(lab.probe(VIP, 80, 1.0, interval_ms=20), 30)
    assert rows and not failed(rows)
    assert {r["who"] for r in rows} == {"lb2-a"}, rows[:5]
    # A change made on the new master goes back to the old one when it returns.
    code, _ = lb2.admin("PUT", "/v1/pools/web/backends/127.0.0.1:9002", {"state": "ready"})
    assert code == 200
    lab.link("lb1", True)
    lb1.configure(priority=150, preempt=False).start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pool = json.loads(lb1.admin("GET", "/v1/pools/web")[1])
        backends = {b["address"]: b for g in pool["groups"] for b in g["backends"]}
        if backends["127.0.0.1:9002"]["admin"] == "ready" and backends["127.0.0.1:9001"]["weight"] == 3:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"lb1 did not catch up: {backends}")


def inject(lab, case, dst, vrid=51, priority=200, count=1):
    r = lab.run("client", [sys.executable, str(Path(__file__).resolve().parent / "vrrp_inject.py"),
                           lab.address("client"), dst, case, str(vrid), str(priority), str(count)], timeout=60)
    assert r.returncode == 0, r.stderr


def test_bad_adverts_are_dropped_and_counted(lab, tmp_path):
    """bad-inputs.md G: V1 (TTL != 255), V5 (version, checksum, VRID, length), V6 (interval 0)."""
    lb1, lb2 = start_pair(lab, tmp_path)
    cases = {"ttl64": "bad_ttl", "badsum": "bad_checksum", "truncated": "truncated", "zerointerval": "zero_interval"}
    for case in cases:
        inject(lab, case, lab.address("lb1"), priority=254)
    inject(lab, "good", lab.address("lb1"), vrid=52, priority=254)
    inject(lab, "v2", lab.address("lb1"), priority=254)
    time.sleep(0.3)
    s = lb1.vrrp()
    for reason in cases.values():
        assert s["counters"]["dropped"].get(reason) == 1, (reason, s["counters"])
    assert s["counters"]["dropped"].get("other_vrid") == 1
    assert s["counters"]["dropped"].get("bad_version") == 1 and s["counters"]["mismatches"].get("version") == 1
    assert s["role"] == "master" and [t["to"] for t in s["transitions"]] == ["backup", "master"]
    assert "does not match this instance" in lb1.log()
    assert single_owner_for(lab, "lb1", 0.5) == []
    # V2 for contrast: a well-formed higher-priority advert from the link is obeyed (multicast mode
    # cannot tell it from a peer; unicast mode below can).
    inject(lab, "good", lab.address("lb1"), priority=254)
    time.sleep(0.2)
    assert lb1.vrrp()["role"] == "backup"


def test_advert_flood_costs_little_and_changes_nothing(lab, tmp_path):
    """V6: 20,000 adverts in a burst (another VRID, and zero-interval ones for ours) are dropped
    and counted with bounded work: the master stays master, the VIP never moves, and lbd's CPU
    for the whole flood stays small."""
    from test_resources import cpu_seconds
    lb1, lb2 = start_pair(lab, tmp_path)
    cpu0 = cpu_seconds(lb1.proc.pid)
    inject(lab, "good", lab.address("lb1"), vrid=52, priority=254, count=10000)
    inject(lab, "zerointerval", lab.address("lb1"), priority=254, count=10000)
    time.sleep(0.3)
    cpu = cpu_seconds(lb1.proc.pid) - cpu0
    s = lb1.vrrp()
    dropped = s["counters"]["dropped"]
    print(f"advert flood: dropped {dropped}, lb1 CPU {cpu:.2f}s")
    # Some of a burst this size overflow the socket buffer in the kernel; what arrives is counted.
    assert dropped.get("other_vrid", 0) >= 5000 and dropped.get("zero_interval", 0) >= 5000, dropped
    assert s["role"] == "master" and [t["to"] for t in s["transitions"]] == ["backup", "master"]
    assert single_owner_for(lab, "lb1", 0.5) == []
    assert cpu < 1.5, cpu
    assert lb1.log().count("does not match this instance") <= 2


def test_unicast_pair_drops_non_peers(lab, tmp_path):
    """Unicast adverts (unicast_peers); V3: an advert from an address that is not a peer is dropped."""
    lb1, lb2 = start_pair(
        lab, tmp_path, lb1_kw={"extra_vrrp": {"unicast_peers": [lab.address("lb2")]}},
        lb2_kw={"extra_vrrp": {"unicast_peers": [lab.address("lb1")]}})
    assert single_owner_for(lab, "lb1", 1.0) == []
    assert lb2.vrrp()["mode"] == "unicast" and lb2.vrrp()["counters"]["received"] > 5
    inject(lab, "good", lab.address("lb1"), priority=254)
    time.sleep(0.2)
    s = lb1.vrrp()
    assert s["role"] == "master" and s["counters"]["dropped"].get("not_a_peer") == 1, s
    # V4: a fake master "resigning" (priority 0) from a non-peer would make the backup take over
    # after Skew_Time; it is dropped instead.
    inject(lab, "good", lab.address("lb2"), priority=0)
    time.sleep(0.3)
    s2 = lb2.vrrp()
    assert s2["role"] == "backup" and s2["counters"]["dropped"].get("not_a_peer") == 1, s2
    assert single_owner_for(lab, "lb1", 0.5) == []
    lb1.stop()
    assert lab.wait_owner(VIP, "lb2", 2) is not None


def client_arp_mac(lab, address) -> str | None:
    """The MAC the client's neighbour table holds for `address` (not refreshed: only gratuitous
    ARP moves it while both hosts would answer a request)."""
    out = lab.run("client", ["ip", "neigh", "show", address]).stdout.split()
    return out[out.index("lladdr") + 1] if "lladdr" in out else None


def host_mac(host) -> str:
    return f"02:99:00:00:00:{HOSTS[host]:02x}"


@pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft (nftables)")
def test_partition_both_masters_then_the_lower_priority_yields_and_arp_follows(lab, tmp_path):
    """V7: lb2 stops hearing adverts (nft drops IP protocol 112 in its namespace), so both hosts
    are master. lb1 still hears lb2's lower-priority adverts and answers each with its own advert
    and gratuitous ARP, so a client whose ARP entry moved to lb2 comes back to lb1 even during the
    split. When the partition heals, lb2 yields and lb1 is the only owner."""
    lb1, lb2 = start_pair(lab, tmp_path)
    assert single_owner_for(lab, "lb1", 0.5) == []
    lab.http("client", "GET", f"http://{VIP}/")   # the client learns the VIP's MAC (lb1's)
    assert client_arp_mac(lab, VIP) == host_mac("lb1")
    nft = ["nft", "add", "table", "inet", "vrrptest"], \
        ["nft", "add", "chain", "inet", "vrrptest", "in", "{ type filter hook input priority 0; }"], \
        ["nft", "add", "rule", "inet", "vrrptest", "in", "ip", "protocol", "112", "drop"]
    for argv in nft:
        lab.run("lb2", argv, check=True)
    wait_until(lambda: lb2.vrrp()["role"] == "master", 3, what="lb2 master while partitioned")
    assert lab.owners(VIP) == ["lb1", "lb2"] and lb1.vrrp()["role"] == "master"
    # The client's entry pointed at lb2 (as lb2's takeover ARP may do): lb1's answers to lb2's
    # adverts take it back once the kernel's ARP lock time (1 s) has passed.
    lab.run("client", ["ip", "neigh", "replace", VIP, "lladdr", host_mac("lb2"), "dev", "eth0", "nud", "stale"], check=True)
    t0 = time.monotonic()
    wait_until(lambda: client_arp_mac(lab, VIP) == host_mac("lb1"), 4, what="client ARP back on lb1 during the split")
    during = time.monotonic() - t0
    lab.run("lb2", ["nft", "delete", "table", "inet", "vrrptest"], check=True)
    healed = lab.wait_owner(VIP, "lb1", 2)
    assert healed is not None, (lb1.vrrp(), lb2.vrrp())
    print(f"split: client ARP back on lb1 {during:.2f}s after it moved; healed: lb2 yielded in {healed * 1000:.0f} ms")
    assert lb1.vrrp()["role"] == "master" and lb2.vrrp()["role"] == "backup"
    assert single_owner_for(lab, "lb1", 0.5) == []
    assert client_arp_mac(lab, VIP) == host_mac("lb1")


def test_tracked_pool_moves_the_vip(lab, tmp_path):
    """track {pool: web, min_healthy: 2, weight: -100}: lb1 (150) drops to 50 when a backend fails
    its checks, lb2 (100) preempts; when it recovers, lb1 takes the VIP back."""
    track = {"track": {"pool": "web", "min_healthy": 2, "weight": -100}}
    lb1, lb2 = start_pair(lab, tmp_path, lb1_kw={"extra_vrrp": track, "health": True}, lb2_kw={"health": True})
    assert lb1.vrrp()["effective_priority"] == 150
    code, _ = lab.http("lb1", "GET", "http://127.0.0.1:9001/_health/fail")
    assert code == 200
    assert lab.wait_owner(VIP, "lb2", 3) is not None, lb1.log()[-3000:]
    s = lb1.vrrp()
    assert s["effective_priority"] == 50 and s["role"] == "backup"
    assert "vrrp tracking changed" in lb1.log()
    lab.http("lb1", "GET", "http://127.0.0.1:9001/_health/ok")
    assert lab.wait_owner(VIP, "lb1", 3) is not None
    assert lb1.vrrp()["effective_priority"] == 150


# -- lbd + keepalived -------------------------------------------------------------------------

needs_keepalived = pytest.mark.skipif(shutil.which("keepalived") is None, reason="needs keepalived")


@needs_keepalived
def test_mixed_pair_lbd_master_keepalived_backup(lab, tmp_path):
    lb1 = Host(lab, "lb1", tmp_path, priority=150).start()
    assert lab.wait_owner(VIP, "lb1", 5) is not None
    Host(lab, "lb2", tmp_path, failover=False).start()
    ka = Keepalived(lab, "lb2", tmp_path, priority=100).start()
    time.sleep(1.0)
    assert single_owner_for(lab, "lb1", 1.0) == [], ka.log()[-2000:]
    # Planned stop of lbd: keepalived takes over with nothing lost.
    _, rows = measure_failover(lab, lb1, planned=True)
    assert served_by(rows, "lb2"), ka.log()[-2000:]
    planned_failures = len(failed(rows))
    assert lab.wait_owner(VIP, "lb2", 2) is not None
    # lbd returns and preempts.
    lb1.start()
    assert lab.wait_owner(VIP, "lb1", 3) is not None, lb1.log()[-3000:]
    time.sleep(0.5)
    # Host down of lbd: keepalived takes over.
    outage, _ = measure_failover(lab, lb1, planned=False)
    assert outage is not None, ka.log()[-2000:]
    print(f"mixed (lbd master): planned stop failed probes {planned_failures}; host down outage {outage:.0f} ms")
    assert planned_failures <= 1
    assert outage <= down_interval_ms(100) + 250
    log = ka.log()
    assert "Entering MASTER STATE" in log and "Entering BACKUP STATE" in log
    assert keepalived_complaints(log) == [], keepalived_complaints(log)


@needs_keepalived
def test_mixed_pair_keepalived_master_lbd_backup(lab, tmp_path):
    Host(lab, "lb1", tmp_path, failover=False).start()
    ka = Keepalived(lab, "lb1", tmp_path, priority=150).start()
    assert lab.wait_owner(VIP, "lb1", 5) is not None, ka.log()[-2000:]
    lb2 = Host(lab, "lb2", tmp_path, priority=100).start()
    time.sleep(1.0)
    assert single_owner_for(lab, "lb1", 1.0) == []
    assert lb2.vrrp()["role"] == "backup"
    # Planned stop of keepalived: it drops the VIP at once; lbd takes over after its skew time.
    _, rows = measure_failover(lab, ka, planned=True)
    assert served_by(rows, "lb2"), lb2.log()[-3000:]
    planned_failures = len(failed(rows))
    assert lab.wait_owner(VIP, "lb2", 2) is not None
    # keepalived returns and preempts; lbd yields.
    ka.start()
    assert lab.wait_owner(VIP, "lb1", 3) is not None, ka.log()[-2000:]
    assert single_owner_for(lab, "lb1", 1.0) == []
    # Host down of keepalived's host.
    outage, _ = measure_failover(lab, ka, planned=False)
    assert outage is not None, lb2.log()[-3000:]
    print(f"mixed (keepalived master): planned stop failed probes {planned_failures}; host down outage {outage:.0f} ms")
    assert outage <= down_interval_ms(100) + 250
    s = lb2.vrrp()
    assert s["role"] == "master"
    assert sum(s["counters"]["dropped"].values()) == 0, s
    assert sum(s["counters"]["mismatches"].values()) == 0, s
    assert keepalived_complaints(ka.log()) == [], keepalived_complaints(ka.log())
