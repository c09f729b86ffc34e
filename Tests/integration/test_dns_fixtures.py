"""Self-tests of the DNS fixtures (consuldns.ConsulDNS, bind9.Bind9), with dnspython (and dig once)
as the client. They do not need the lbd binary."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import time

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

import bind9 as bind9mod
from consuldns import FAULTS, ConsulDNS, hex_target

HOST = "127.0.0.1"
SRV_NAME = "_web._tcp.service.consul."


@pytest.fixture(scope="session", autouse=True)
def _lbd_binary():
    """Overrides conftest's skip-when-lbd-is-not-built: these tests only exercise the fixtures."""
    yield


@pytest.fixture
def consul():
    made = []

    def make(**kw):
        d = ConsulDNS(**kw).start()
        made.append(d)
        return d
    yield make
    for d in made:
        d.stop()


def instances(n, address="127.0.0.1", base_port=20000):
    return [(f"node-{i}", address, base_port + i) for i in range(n)]


def udp(d, name=SRV_NAME, rdtype="SRV", edns=None, timeout=2.0) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, use_edns=edns is not None, payload=edns or 512)
    return dns.query.udp(q, HOST, port=d.port, timeout=timeout)


def tcp(d, name=SRV_NAME, rdtype="SRV", timeout=2.0) -> dns.message.Message:
    return dns.query.tcp(dns.message.make_query(name, rdtype), HOST, port=d.port, timeout=timeout)


def srvs(msg) -> list:
    return [rd for rrset in msg.answer if rrset.rdtype == dns.rdatatype.SRV for rd in rrset]


def additional(msg) -> list[tuple[str, str, str]]:
    return [(rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rd.to_text())
            for rrset in msg.additional for rd in rrset]


def udp_raw(port, wire, wait=0.4, want=None) -> list[bytes]:
    """Sends one datagram; returns the datagrams received within `wait` seconds (or as soon as
    `want` of them arrived)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((HOST, port))
    s.send(wire)
    out, deadline = [], time.monotonic() + wait
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            s.settimeout(left)
            try:
                out.append(s.recv(65535))
            except (socket.timeout, ConnectionRefusedError):   # refused: nobody on the port (ICMP)
                return out
            if want is not None and len(out) >= want:
                return out
    finally:
        s.close()


def tcp_raw(port, wire, wait=0.4, want=None) -> tuple[bytes, bool]:
    """Sends one length-prefixed query; returns (bytes received within `wait`, peer closed);
    returns early once `want` complete length-prefixed messages arrived."""
    s = socket.create_connection((HOST, port), timeout=2)
    s.sendall(struct.pack("!H", len(wire)) + wire)
    data, deadline = b"", time.monotonic() + wait
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return data, False
            s.settimeout(left)
            try:
                d = s.recv(65535)
            except socket.timeout:
                return data, False
            except ConnectionResetError:
                return data, True
            if not d:
                return data, True
            data += d
            if want is not None and _complete(data) >= want:
                return data, False
    finally:
        s.close()


def _complete(data: bytes) -> int:
    """How many complete length-prefixed messages `data` holds."""
    n = 0
    while len(data) >= 2 and len(data) >= 2 + struct.unpack("!H", data[:2])[0]:
        data = data[2 + struct.unpack("!H", data[:2])[0]:]
        n += 1
    return n


def query_wire(name=SRV_NAME, rdtype="SRV", edns=None):
    q = dns.message.make_query(name, rdtype, use_edns=edns is not None, payload=edns or 512)
    return q, q.to_wire()


# ---------------------------------------------------------------------------------------------
# ConsulDNS: the answer shape

@pytest.mark.timeout(30)
def test_consul_answer_shape(consul):
    d = consul()
    d.set_service("web", [("h-0041", "10.3.0.65", 21621),                      # service address != node's
                          ("node-c", "10.3.0.70", 8080, 10, "10.3.0.70")])      # uses the node address
    r = udp(d)
    assert r.rcode() == dns.rcode.NOERROR
    assert r.flags & dns.flags.QR and r.flags & dns.flags.AA and r.flags & dns.flags.RD
    assert not r.flags & dns.flags.RA and not r.flags & dns.flags.TC
    assert r.edns < 0, "OPT in the reply to a query without EDNS"
    got = sorted((rd.priority, rd.weight, rd.port, rd.target.to_text()) for rd in srvs(r))
    assert got == [(1, 1, 21621, "0a030041.addr.dc1.consul."), (1, 10, 8080, "node-c.node.dc1.consul.")]
    assert all(rrset.ttl == 0 and rrset.name.to_text() == SRV_NAME for rrset in r.answer)
    extra = additional(r)
    assert ("0a030041.addr.dc1.consul.", "A", "10.3.0.65") in extra
    assert ("h-0041.node.dc1.consul.", "TXT", '"consul-network-segment="') in extra
    assert ("node-c.node.dc1.consul.", "A", "10.3.0.70") in extra
    assert ("node-c.node.dc1.consul.", "TXT", '"consul-network-segment="') in extra
    assert len(extra) == 4
    assert r.authority == []

    # EDNS echoed with the query's size; the answer repeats the lowercased name.
    q = dns.message.make_query("_WEB._TCP.Service.Consul.", "SRV", use_edns=0, payload=4096)
    r = dns.query.udp(q, HOST, port=d.port, timeout=2)
    assert r.edns == 0 and r.payload == 4096
    assert {rrset.name.to_text() for rrset in r.answer} == {SRV_NAME}
    assert r.answer[0].name.labels == tuple(lb.lower() for lb in r.answer[0].name.labels)

    # TTL and hex targets
    d.ttl = 30
    assert {rrset.ttl for rrset in udp(d).answer} == {30}
    assert hex_target("10.3.0.65") == "0a030041"
    assert hex_target("2001:db8:1:2:cafe::1337") == "20010db800010002cafe000000001337"


@pytest.mark.timeout(30)
def test_consul_name_forms_tags_and_other_lookups(consul):
    d = consul()
    d.set_service("web", [{"node": "a", "address": "10.0.0.1", "port": 1, "tags": ["v2", "canary"]},
                          {"node": "b", "address": "10.0.0.2", "port": 2, "tags": ["v1"]}])
    for name in ("_web._tcp.service.consul.", "_web._tcp.service.dc1.consul.", "_web._tcp.consul.",
                 "_web._tcp.dc1.consul.", "web.service.consul.", "web.service.dc1.consul.", "WEB.Service.consul."):
        r = udp(d, name)
        assert r.rcode() == dns.rcode.NOERROR and sorted(rd.port for rd in srvs(r)) == [1, 2], name
    for name in ("v2.web.service.consul.", "_web._v2.service.consul.", "canary.web.service.dc1.consul."):
        assert [rd.port for rd in srvs(udp(d, name))] == [1], name
    # A lookups of the service, the node and the .addr name
    assert sorted(rd.address for rs in udp(d, "web.service.consul.", "A").answer for rd in rs) == ["10.0.0.1", "10.0.0.2"]
    assert [rd.address for rs in udp(d, "0a000002.addr.dc1.consul.", "A").answer for rd in rs] == ["10.0.0.2"]
    assert udp(d, "consul.", "SOA").answer[0][0].rname.to_text() == "hostmaster.consul."
    # Unknown tag/service: the empty answer; another datacenter: empty; outside the domain: REFUSED.
    assert udp(d, "v9.web.service.consul.").rcode() == dns.rcode.NXDOMAIN
    assert udp(d, "web.service.dc2.consul.").rcode() == dns.rcode.NXDOMAIN
    assert udp(d, "example.com.", "A").rcode() == dns.rcode.REFUSED


@pytest.mark.timeout(30)
def test_consul_ipv6_addr_target_with_aaaa(consul):
    d = consul()
    d.set_service("web", [("n6", "2001:db8:1:2:cafe::1337", 8443)])
    r = udp(d)
    (rd,) = srvs(r)
    assert rd.target.to_text() == "20010db800010002cafe000000001337.addr.dc1.consul." and rd.port == 8443
    assert ("20010db800010002cafe000000001337.addr.dc1.consul.", "AAAA", "2001:db8:1:2:cafe::1337") in additional(r)
    assert ("n6.node.dc1.consul.", "TXT", '"consul-network-segment="') in additional(r)
    r = udp(d, "20010db800010002cafe000000001337.addr.dc1.consul.", "AAAA")
    assert [x.address for rs in r.answer for x in rs] == ["2001:db8:1:2:cafe::1337"]


@pytest.mark.timeout(30)
def test_consul_shuffles_every_query_and_dedupes(consul):
    d = consul(seed=1)
    d.set_service("web", instances(10) + [("node-0", "127.0.0.1", 20000)])     # a duplicate
    orders = {tuple(rd.port for rd in srvs(udp(d, edns=4096))) for _ in range(10)}
    assert len(orders) > 1 and all(len(o) == 10 for o in orders), orders
    d.shuffle = False
    orders = {tuple(rd.port for rd in srvs(udp(d, edns=4096))) for _ in range(5)}
    assert orders == {tuple(range(20000, 20010))}


# ---------------------------------------------------------------------------------------------
# ConsulDNS: truncation

@pytest.mark.timeout(30)
def test_consul_udp_cap_without_edns_and_full_answer_with_edns(consul):
    d = consul()
    d.set_service("web", instances(20))
    for edns in (None, 512, 256):
        r = udp(d, edns=edns)
        assert len(srvs(r)) == 3 and not r.flags & dns.flags.TC, (edns, r)
        # additional rebuilt for the kept answers, first record per name: the TXT records are gone
        assert additional(r) == [("7f000001.addr.dc1.consul.", "A", "127.0.0.1")]
    r = udp(d, edns=4096)
    assert len(srvs(r)) == 20 and not r.flags & dns.flags.TC
    assert sum(1 for x in additional(r) if x[1] == "TXT") == 20
    assert d.queries()[-1].has_edns and d.queries()[-1].edns_payload == 4096

    d.udp_answer_limit = 5
    assert len(srvs(udp(d))) == 5
    d.enable_truncate = True
    r = udp(d)
    assert len(srvs(r)) == 5 and r.flags & dns.flags.TC
    assert not udp(d, edns=4096).flags & dns.flags.TC


@pytest.mark.timeout(30)
def test_consul_edns_size_and_tcp_limits(consul):
    d = consul()
    d.set_service("web", [(f"n{i}", f"10.1.{i // 250}.{i % 250}", 20000 + i, 1, f"10.1.{i // 250}.{i % 250}")
                          for i in range(40)])
    q, wire = query_wire(edns=1232)
    (raw,) = udp_raw(d.port, wire)
    r = dns.message.from_wire(raw)
    assert len(raw) <= 1232 - 7 and 3 < len(srvs(r)) < 40 and not r.flags & dns.flags.TC
    targets = {rd.target.to_text() for rd in srvs(r)}
    assert {x[0] for x in additional(r)} == targets       # one A per kept target, nothing else

    r = tcp(d)
    assert len(srvs(r)) == 40 and len(additional(r)) == 80
    assert d.queries()[-1].transport == "tcp"

    d.set_service("web", instances(1500))
    t0 = time.monotonic()
    q, wire = query_wire()
    s = socket.create_connection((HOST, d.port), timeout=5)
    s.sendall(struct.pack("!H", len(wire)) + wire)
    n = struct.unpack("!H", _recv_exact(s, 2))[0]
    r = dns.message.from_wire(_recv_exact(s, n))
    s.close()
    assert n <= 65523 and len(srvs(r)) == 1024, (n, len(srvs(r)))
    assert time.monotonic() - t0 < 3


def _recv_exact(s, n) -> bytes:
    buf = b""
    while len(buf) < n:
        d = s.recv(n - len(buf))
        assert d, "connection closed early"
        buf += d
    return buf


# ---------------------------------------------------------------------------------------------
# ConsulDNS: empty answers, faults, the query log

@pytest.mark.timeout(30)
@pytest.mark.parametrize("empty", ["nxdomain", "nodata"])
def test_consul_empty_service(consul, empty):
    d = consul(empty=empty)
    d.set_service("web", [])
    for r in (udp(d), tcp(d), udp(d, "nosuch.service.consul.")):
        assert r.rcode() == (dns.rcode.NXDOMAIN if empty == "nxdomain" else dns.rcode.NOERROR)
        assert r.answer == []
        (soa,) = r.authority
        assert soa.name.to_text() == "consul." and soa.ttl == 0
        assert soa[0].mname.to_text() == "ns.consul." and soa[0].rname.to_text() == "hostmaster.consul."
        assert (soa[0].refresh, soa[0].retry, soa[0].expire, soa[0].minimum) == (3600, 600, 86400, 0)
        assert abs(soa[0].serial - time.time()) < 60


def _check_fault(d, fault):
    """Asserts what a client sees under `fault` over UDP and TCP."""
    q, wire = query_wire()
    if fault in ("servfail", "refused", "formerr", "nxdomain", "nodata"):
        want = {"servfail": dns.rcode.SERVFAIL, "refused": dns.rcode.REFUSED, "formerr": dns.rcode.FORMERR,
                "nxdomain": dns.rcode.NXDOMAIN, "nodata": dns.rcode.NOERROR}[fault]
        for r in (udp(d), tcp(d)):
            assert r.rcode() == want and r.answer == []
        return
    # how many replies to expect (None: wait the whole 0.4 s to see that nothing more comes)
    want = {"silence": None, "tcp_close": None, "wrong_id_only": None, "tcp_short": None,
            "wrong_id": 2}.get(fault, 1)
    got_udp = udp_raw(d.port, wire, want=want)
    got_tcp, closed = tcp_raw(d.port, wire, want=want)
    if fault == "silence":
        assert got_udp == [] and got_tcp == b"" and not closed
    elif fault == "tcp_close":
        assert got_udp == [] and got_tcp == b"" and closed
    elif fault == "tc_partial":
        r = dns.message.from_wire(got_udp[0])
        assert r.flags & dns.flags.TC and len(srvs(r)) == 1
        r = dns.message.from_wire(got_tcp[2:])
        assert not r.flags & dns.flags.TC and len(srvs(r)) == 5
    elif fault in ("wrong_id", "wrong_id_only"):
        for msgs, full in ((got_udp, 3), (_split_tcp(got_tcp), 5)):     # UDP without EDNS: 3
            assert struct.unpack("!H", msgs[0][:2])[0] != q.id
            if fault == "wrong_id":
                assert len(msgs) == 2 and struct.unpack("!H", msgs[1][:2])[0] == q.id
                assert len(srvs(dns.message.from_wire(msgs[1]))) == full
            else:
                assert len(msgs) == 1
    elif fault == "garbage":
        assert len(got_udp) == 1 and 1 <= len(got_udp[0]) <= 300 and got_udp[0][:2] != wire[:2]
        assert len(_split_tcp(got_tcp)) == 1
    elif fault == "wrong_question":
        for raw in (got_udp[0], _split_tcp(got_tcp)[0]):
            r = dns.message.from_wire(raw)
            assert r.id == q.id and r.question[0].name.to_text() == "wrong-web._tcp.service.consul."
    elif fault == "qr0":
        assert not got_udp[0][2] & 0x80 and got_udp[0][:2] == wire[:2]
    elif fault == "short":
        assert len(got_udp[0]) == 7 and len(_split_tcp(got_tcp)[0]) == 7
    elif fault in ("ancount_lie", "ptr_loop", "bad_rdlength"):
        for raw in (got_udp[0], _split_tcp(got_tcp)[0]):
            assert raw[:2] == wire[:2]
            with pytest.raises(dns.exception.DNSException):
                dns.message.from_wire(raw)
    elif fault == "tcp_short":
        claimed = struct.unpack("!H", got_tcp[:2])[0]
        assert closed and len(got_tcp) - 2 < claimed
        with pytest.raises(dns.exception.DNSException):
            dns.message.from_wire(got_udp[0])
    else:
        raise AssertionError(f"no check for fault {fault}")


def _split_tcp(data: bytes) -> list[bytes]:
    out = []
    while len(data) >= 2:
        n = struct.unpack("!H", data[:2])[0]
        out.append(data[2:2 + n])
        data = data[2 + n:]
    return out


@pytest.mark.timeout(30)
@pytest.mark.parametrize("fault", [f for f in FAULTS if f])
def test_consul_fault(consul, fault):
    d = consul(fault=fault)
    d.set_service("web", instances(5))
    _check_fault(d, fault)
    assert all(q.fault == fault for q in d.queries() if not (fault == "tc_partial" and q.transport == "tcp"))
    d.fault = None
    assert len(srvs(udp(d, edns=4096))) == 5


@pytest.mark.timeout(30)
def test_consul_fault_count_transport_delay_and_responder(consul):
    d = consul()
    d.set_service("web", instances(2))
    d.set_fault("servfail", count=2)
    assert [udp(d).rcode() for _ in range(3)] == [dns.rcode.SERVFAIL, dns.rcode.SERVFAIL, dns.rcode.NOERROR]
    assert d.fault is None and d.fault_count is None

    d.set_fault("silence", transport="udp")
    q, wire = query_wire()
    assert udp_raw(d.port, wire, wait=0.3) == []
    assert len(srvs(tcp(d))) == 2
    d.set_fault(None)
    with pytest.raises(ValueError):
        d.set_fault("nonsense")

    d.delay = 0.3
    t0 = time.monotonic()
    udp(d)
    assert time.monotonic() - t0 >= 0.29
    d.delay = 0

    def responder(q, transport):
        if q.question[0].name.to_text() == "special.service.consul.":
            r = dns.message.make_response(q)
            r.set_rcode(dns.rcode.YXDOMAIN)
            return r
        return None
    d.responder = responder
    assert udp(d, "special.service.consul.").rcode() == dns.rcode.YXDOMAIN
    assert len(srvs(udp(d))) == 2


@pytest.mark.timeout(30)
def test_consul_query_log(consul):
    d = consul()
    d.set_service("web", instances(1))
    udp(d)
    udp(d, edns=4096)
    udp(d, edns=1232)
    tcp(d)
    udp(d, "web.service.consul.", "A")
    log = d.queries()
    assert [(q.transport, q.qtype, q.has_edns, q.edns_payload) for q in log] == [
        ("udp", "SRV", False, None), ("udp", "SRV", True, 4096), ("udp", "SRV", True, 1232),
        ("tcp", "SRV", False, None), ("udp", "A", False, None)]
    assert all(q.qname == SRV_NAME for q in log[:4]) and log[4].qname == "web.service.consul."
    ports = [q.source_port for q in log if q.transport == "udp"]
    assert len(set(ports)) == len(ports), "dnspython uses a fresh socket per query"
    assert len(d.queries(qtype="SRV", transport="udp")) == 3
    assert len(d.wait_queries(5, timeout=0.1)) == 5
    # A malformed query is logged and answered FORMERR.
    got = udp_raw(d.port, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03ab")
    assert got and got[0][:2] == b"\x12\x34" and got[0][3] & 0xF == dns.rcode.FORMERR
    assert d.queries()[-1].qname is None
    d.clear_queries()
    assert d.queries() == []


@pytest.mark.timeout(30)
def test_consul_stop_is_quick_and_start_reuses_the_port(consul):
    d = consul()
    d.set_service("web", instances(1))
    tcp_conn = socket.create_connection((HOST, d.port), timeout=2)       # an idle TCP client
    port = d.port
    t0 = time.monotonic()
    d.stop()
    assert time.monotonic() - t0 < 1.5
    q, wire = query_wire()
    assert udp_raw(port, wire, wait=0.2) == []
    tcp_conn.close()
    d.start()
    assert d.port == port and len(srvs(udp(d))) == 1


# ---------------------------------------------------------------------------------------------
# BIND9

needs_named = pytest.mark.skipif(bind9mod.named_path() is None or bind9mod.nsupdate_path() is None,
                                 reason="BIND9 `named`/`nsupdate` not found (apt-get install bind9 bind9-dnsutils)")


@pytest.fixture
def bind(tmp_path):
    b = bind9mod.Bind9()
    try:
        yield b.start()
    finally:
        b.close()


@needs_named
@pytest.mark.timeout(30)
def test_bind9_nsupdate_add_remove_and_restart_keeps_data(bind):
    name = "_web._tcp.service.consul"
    bind.add_a("a.node.dc1.consul", "127.0.0.1")
    bind.add_aaaa("a.node.dc1.consul", "::1")
    bind.add_srv(name, "a.node.dc1.consul", 8080)
    bind.add_srv(name, "a.node.dc1.consul", 8081, weight=10, priority=2, ttl=30)

    r = dns.query.udp(dns.message.make_query(name + ".", "SRV"), HOST, port=bind.port, timeout=2)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert sorted((rd.priority, rd.weight, rd.port, rd.target.to_text()) for rd in srvs(r)) == [
        (1, 1, 8080, "a.node.dc1.consul."), (2, 10, 8081, "a.node.dc1.consul.")]
    assert ("a.node.dc1.consul.", "A", "127.0.0.1") in additional(r)     # BIND adds glue for SRV targets
    assert ("a.node.dc1.consul.", "AAAA", "::1") in additional(r)

    if shutil.which("dig"):
        out = subprocess.run(["dig", "+short", "+time=2", "+tries=1", "-p", str(bind.port), f"@{HOST}",
                              name, "SRV"], capture_output=True, text=True, timeout=10).stdout
        assert sorted(out.split("\n")[:2]) == ["1 1 8080 a.node.dc1.consul.", "2 10 8081 a.node.dc1.consul."], out

    assert bind.remove_srv(name, "a.node.dc1.consul", 8081) == 1
    assert [rd.port for rd in bind.query(name, "SRV")] == [8080]
    assert bind.remove_srv(name, "a.node.dc1.consul", 9999) == 0

    port, pid = bind.port, bind.pid
    bind.restart()
    assert bind.port == port and bind.pid != pid
    assert [rd.port for rd in bind.query(name, "SRV", tcp=False)] == [8080]
    assert [rd.address for rd in bind.query("a.node.dc1.consul", "A")] == ["127.0.0.1"]
    assert (bind.dir / f"{bind.zone_path.name}.jnl").exists()

    bind.remove_name("a.node.dc1.consul")
    assert bind.query("a.node.dc1.consul", "A") == [] and bind.query("a.node.dc1.consul", "AAAA") == []
    bind.stop()
    assert not bind.alive()
    with pytest.raises(dns.exception.Timeout):
        dns.query.udp(dns.message.make_query("consul.", "SOA"), HOST, port=port, timeout=0.3)
