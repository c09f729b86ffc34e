"""ConsulDNS: a scriptable DNS server that answers like Consul's DNS interface, for tests.

It serves UDP and TCP on one free port of 127.0.0.1 from background threads of the test process.
The answer shape, the truncation rules and the empty/error cases follow Consul's source as
summarised in shared/notes/consul-dns.md (response_generator.go `trimUDPResponse` /
`trimTCPResponse`, legacy agent/dns.go, query_fetcher_v1.go):

    dns = ConsulDNS(dc="dc1").start()
    dns.set_service("web", [("node-a", "10.3.0.70", 8080),               # (node, address, port)
                            ("node-b", "10.3.0.71", 8080, 10),           # + weight
                            {"node": "n", "address": "10.0.0.5", "port": 21001,
                             "node_address": "10.0.0.5"}])               # a <node>.node. target
    dns.address                       # "127.0.0.1:PORT", for lbd's resolver config
    dns.fault = "servfail"            # or dns.set_fault("silence", count=3, transport="udp")
    [q for q in dns.queries() if q.qtype == "SRV" and q.transport == "tcp"]
    dns.stop()

Names served for service "web" (case-insensitive, any of them with or without ".dc1"):
`web.service.consul.`, `<tag>.web.service.consul.`, `_web._tcp.service.consul.`,
`_web._<tag>.service.consul.`, and for SRV only `_web._tcp.consul.` (".service" left out).
Also `<node>.node[.dc1].consul.` (A/AAAA/TXT), `<hex>.addr[.dc1].consul.` (A/AAAA) and the
SOA/NS of `consul.`. A name outside `consul.` gets REFUSED (no recursors).

Instances: a tuple `(node, address, port[, weight[, node_address]])`, a dict with those keys
(plus `tags`, `meta`), or an `Instance`. The SRV target is
- `<node>.node.<dc>.consul.` when the service uses its node's address (`node_address == address`);
- `<hex>.addr.<dc>.consul.` otherwise, which is the default (`node_address` None means "the node
  has an address of its own"), e.g. 127.0.0.1 -> `7f000001.addr.dc1.consul.`, an IPv6 address
  -> 32 hex digits;
- the name itself when `address` is not an IP (no address record is added for it).
Additional section, per answer: A/AAAA named as the target, then the node-meta TXT records named
`<node>.node.<dc>.consul.` (default meta {"consul-network-segment": ""}). Priority is always 1, the
weight is the instance's, TTL is `ttl` (per service with set_service(..., ttl=)); answers are
shuffled on every query (`shuffle=True`); (node, address, port) duplicates are dropped.

Truncation, as Consul does it (TC only with `enable_truncate=True`):
- UDP without EDNS or with EDNS <= 512: at most min(udp_answer_limit, 8) answers (default 3),
  then shrunk to fit 512 bytes (sized uncompressed when the count cap applied);
- UDP with EDNS > 512: shrunk to fit the advertised size (capped at 65467) minus 7;
- TCP: at most 1024 SRV answers (4096 for other types), then shrunk to fit 65523 bytes;
- whenever answers were dropped, the additional section is rebuilt from the kept answers with only
  the first record per target name (so the TXT records disappear, as in Consul).
The OPT record is echoed (with the query's payload size) only if the query had EDNS.

Empty service (unknown, no instances, or no instance with the tag): `empty="nxdomain"` (legacy
Consul) or `empty="nodata"` (NOERROR, 0 answers); both with the SOA
`consul. 0 IN SOA ns.consul. hostmaster.consul. <unix time> 3600 600 86400 0` in authority.

Wire format: written by a small encoder here (dnspython only parses queries, so 1000-record
answers take milliseconds). Owner names are compressed (`compress=True`); SRV targets are written
uncompressed (RFC 2782) but later names may point into them.

Faults (attributes `fault`, `fault_count`, `fault_transport`, or `set_fault()`; see FAULTS for
the list): a fault applies to every query until cleared, or to the next `fault_count` queries it
affects (then `fault` goes back to None); `fault_transport` limits it to "udp" or "tcp".
`tc_partial` never affects TCP. `delay` (seconds) holds every reply; `responder` can take over.
Every message received is logged (`queries()`), faulted or not.
"""

from __future__ import annotations

import ipaddress
import os
import random
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype

HOST = "127.0.0.1"

FAULTS = {
    None: "normal Consul answers",
    "servfail": "SERVFAIL, question echoed, no records (Consul: RPC failure, no leader)",
    "refused": "REFUSED",
    "formerr": "FORMERR (Consul's oversize bug, consul#17228)",
    "nxdomain": "NXDOMAIN + SOA, as if the service had no instance (whatever `empty` says)",
    "nodata": "NOERROR, 0 answers + SOA, as if the service had no instance",
    "silence": "no reply at all; TCP connections are accepted and read but never answered",
    "tc_partial": "UDP: TC=1 and only the first `tc_partial_answers` (1) answers; TCP: the full answer",
    "wrong_id": "a reply with a wrong ID first, then the right reply (a client that ignores it wins)",
    "wrong_id_only": "only a reply with a wrong ID",
    "garbage": "random bytes (1-300, never starting with the query's ID); TCP: length-prefixed",
    "wrong_question": "right ID, but the question and answers are for another name",
    "qr0": "the right reply with QR=0",
    "short": "the first 7 bytes of the right reply (shorter than a header)",
    "ancount_lie": "the right reply with ANCOUNT=65535",
    "ptr_loop": "an answer whose owner name is a compression pointer to itself",
    "bad_rdlength": "an SRV answer whose RDLENGTH runs past the end of the message",
    "tcp_short": "TCP: the length prefix of the full reply, half of it, then close; UDP: half a datagram",
    "tcp_close": "TCP: close the connection after reading the query; UDP: no reply",
}

_IN = 1
_A, _NS, _SOA, _TXT, _AAAA, _SRV, _OPT, _ANY = 1, 2, 6, 16, 28, 33, 41, 255
_KINDS = ("service", "node", "addr", "query", "connect", "ingress", "virtual")
MAX_UDP_ANSWER_LIMIT = 8
DEFAULT_MAX_UDP = 512
MAX_UDP_DATAGRAM = 65467     # 65535 - 68
MAX_TCP_SIZE = 65523         # 64k - 12


@dataclass(frozen=True)
class Instance:
    node: str
    address: str
    port: int
    weight: int = 1
    node_address: str | None = None
    tags: tuple = ()
    meta: tuple | None = None   # ((key, value), ...); None = Consul's default network segment


@dataclass(frozen=True)
class Query:
    """One message received. `qname` is lowercased with a trailing dot; `qtype` a string ("SRV");
    both None if the message did not parse. `fault` is the fault applied to it (None = normal)."""
    transport: str            # "udp" or "tcp"
    qname: str | None
    qtype: str | None
    has_edns: bool
    edns_payload: int | None
    source_port: int
    id: int
    rd: bool
    time: float               # time.monotonic()
    fault: str | None = None
    size: int = 0


def _fqdn(s: str) -> str:
    return s if s.endswith(".") else s + "."


def _ip(s: str):
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        return None


def _as_instance(x) -> Instance:
    if isinstance(x, Instance):
        return x
    if isinstance(x, dict):
        d = dict(x)
        meta = d.pop("meta", None)
        tags = tuple(d.pop("tags", ()) or ())
        inst = Instance(tags=tags, meta=tuple(meta.items()) if meta is not None else None, **d)
    else:
        inst = Instance(*x)
    if not (0 <= int(inst.port) <= 65535 and 0 <= int(inst.weight) <= 65535):
        raise ValueError(f"bad port or weight in {x!r}")
    return inst


def hex_target(address: str) -> str:
    """Consul's `.addr.` label: 8 hex digits for IPv4, 32 for IPv6."""
    return _ip(address).packed.hex()


def _L(name: str) -> tuple:
    """A domain name as a tuple of label bytes (the root is ())."""
    return tuple(lb.encode() for lb in name.strip(".").split(".") if lb)


def _text(labels: tuple) -> str:
    return ".".join(lb.decode("ascii", "replace") for lb in labels) + "."


def _rr(owner: tuple, rtype: int, ttl: int, rdata) -> tuple:
    """A record: rdata is wire bytes, or (prefix bytes, name labels) for SRV (the target is written
    uncompressed, RFC 2782)."""
    return (owner, rtype, ttl, rdata)


def _addr_rr(owner: tuple, ttl: int, address: str) -> tuple:
    ip = _ip(address)
    return _rr(owner, _A if ip.version == 4 else _AAAA, ttl, ip.packed)


def _txt_rr(owner: tuple, ttl: int, text: str) -> tuple:
    b = text.encode()[:255]
    return _rr(owner, _TXT, ttl, bytes([len(b)]) + b)


def _name_wire(labels: tuple) -> bytes:
    return b"".join(bytes([len(lb)]) + lb for lb in labels) + b"\x00"


def _put_name(buf: bytearray, table, labels: tuple, use_ptr=True):
    for i in range(len(labels)):
        if table is not None:
            key = b".".join(labels[i:]).lower()
            off = table.get(key)
            if off is not None and use_ptr:
                buf += struct.pack("!H", 0xC000 | off)
                return
            if off is None and len(buf) < 0x3FFF:
                table[key] = len(buf)
        buf.append(len(labels[i]))
        buf += labels[i]
    buf.append(0)


def _render(msg_id, flags, qlabels, qtype, answers=(), authority=(), additional=(), edns_payload=None,
            compress=True) -> bytes:
    """A DNS message in wire format, with name compression (owner names only) if `compress`."""
    buf = bytearray(12)
    table = {} if compress else None
    # Consul answers with the lowercased name: a mixed-case question must not be a compression target.
    mixed = any(lb != lb.lower() for lb in qlabels)
    _put_name(buf, None if mixed else table, qlabels)
    buf += struct.pack("!HH", qtype, _IN)
    for section in (answers, authority, additional):
        for owner, rtype, ttl, rdata in section:
            _put_name(buf, table, owner)
            buf += struct.pack("!HHI", rtype, _IN, ttl & 0xFFFFFFFF)
            if isinstance(rdata, bytes):
                buf += struct.pack("!H", len(rdata)) + rdata
            else:
                start = len(buf)
                buf += b"\x00\x00" + rdata[0]
                _put_name(buf, table, rdata[1], use_ptr=False)
                struct.pack_into("!H", buf, start, len(buf) - start - 2)
    arcount = len(additional)
    if edns_payload is not None:
        buf += b"\x00" + struct.pack("!HHIH", _OPT, edns_payload & 0xFFFF, 0, 0)
        arcount += 1
    struct.pack_into("!HHHHHH", buf, 0, msg_id, flags, 1, len(answers), len(authority), arcount)
    return bytes(buf)


def _question_end(wire: bytes) -> int | None:
    """Offset just past the first question (uncompressed qname) of a message, or None."""
    off = 12
    try:
        while True:
            n = wire[off]
            if n == 0:
                off += 1
                break
            if n & 0xC0:
                off += 2
                break
            off += 1 + n
        off += 4
    except IndexError:
        return None
    return off if off <= len(wire) else None


class ConsulDNS:
    """A Consul-like DNS server (UDP+TCP, one port, 127.0.0.1). See the module docstring.

    Constructor options (all attributes may be changed at runtime):
      dc="dc1", domain="consul", ttl=0, shuffle=True, udp_answer_limit=3, enable_truncate=False,
      empty="nxdomain"|"nodata", compress=True, node_meta_txt=True, soa_rname="hostmaster",
      fault=None, fault_count=None, fault_transport=None ("udp"/"tcp"/None = both),
      tc_partial_answers=1, delay=0.0 (seconds before every reply), responder=None, seed=None,
      port=0 (0 = a free port; kept across stop()/start()).

    `responder(query_msg: dns.message.Message, transport: str)` may return None (answer normally),
    b"" (no reply), bytes (sent as the reply) or a dns.message.Message (rendered as the reply).
    """

    def __init__(self, dc="dc1", domain="consul", ttl=0, shuffle=True, udp_answer_limit=3,
                 enable_truncate=False, empty="nxdomain", compress=True, node_meta_txt=True,
                 soa_rname="hostmaster", fault=None, fault_count=None, fault_transport=None,
                 tc_partial_answers=1, delay=0.0, responder=None, seed=None, port=0):
        if empty not in ("nxdomain", "nodata"):
            raise ValueError("empty must be 'nxdomain' or 'nodata'")
        self.dc = dc.lower()
        self.domain = domain.lower().strip(".")
        self.ttl = ttl
        self.shuffle = shuffle
        self.udp_answer_limit = udp_answer_limit
        self.enable_truncate = enable_truncate
        self.empty = empty
        self.compress = compress
        self.node_meta_txt = node_meta_txt
        self.soa_rname = soa_rname
        self.tc_partial_answers = tc_partial_answers
        self.delay = delay
        self.responder = responder
        self.lock = threading.RLock()
        self.fault = None
        self.fault_count = None
        self.fault_transport = None
        self.set_fault(fault, fault_count, fault_transport)
        self._services: dict[str, tuple[list[Instance], int | None]] = {}
        self._log: list[Query] = []
        self._rand = random.Random(seed)
        self.port = port
        self.address = f"{HOST}:{port}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._udp = self._tcp = None
        self.started = False

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> "ConsulDNS":
        if self.started:
            return self
        self._stop.clear()
        self._bind()
        self.address = f"{HOST}:{self.port}"
        for target in (self._udp_loop, self._tcp_loop):
            t = threading.Thread(target=target, daemon=True, name=f"consuldns-{target.__name__}")
            t.start()
            self._threads.append(t)
        self.started = True
        return self

    def _bind(self):
        last = None
        for _ in range(50):
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                tcp.bind((HOST, self.port))
                port = tcp.getsockname()[1]
                udp.bind((HOST, port))
            except OSError as e:
                last = e
                tcp.close()
                udp.close()
                if self.port:
                    time.sleep(0.1)   # a fixed port (restart): wait for it
                continue
            tcp.listen(64)
            tcp.settimeout(0.1)
            udp.settimeout(0.1)
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self._tcp, self._udp, self.port = tcp, udp, port
            return
        raise RuntimeError(f"ConsulDNS: no UDP+TCP port (last error {last})")

    def stop(self):
        """Closes both sockets and every TCP connection; joins the threads (bounded). The port is
        kept, so start() serves on it again."""
        if not self.started:
            return
        self._stop.set()
        with self.lock:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(2)
        self._threads = []
        for s in (self._udp, self._tcp):
            try:
                s.close()
            except OSError:
                pass
        self.started = False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- data -------------------------------------------------------------------------------

    def set_service(self, name: str, instances, ttl: int | None = None):
        """Replaces the instances of service `name` (an empty list: the service has none)."""
        insts, seen = [], set()
        for x in instances:
            i = _as_instance(x)
            key = (i.node, i.address, int(i.port))
            if key in seen:       # Consul drops (node, address, port) duplicates
                continue
            seen.add(key)
            insts.append(i)
        with self.lock:
            self._services[name.lower()] = (insts, ttl)

    def remove_service(self, name: str):
        with self.lock:
            self._services.pop(name.lower(), None)

    def services(self) -> dict:
        with self.lock:
            return {k: list(v[0]) for k, v in self._services.items()}

    def set_fault(self, fault=None, count=None, transport=None):
        """`fault` one of FAULTS; `count` = only the next N queries it applies to (then None);
        `transport` = "udp" or "tcp" to apply it to one transport only."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {sorted(k for k in FAULTS if k)}")
        if transport not in (None, "udp", "tcp"):
            raise ValueError("transport must be None, 'udp' or 'tcp'")
        with self.lock:
            self.fault, self.fault_count, self.fault_transport = fault, count, transport

    # -- the log ----------------------------------------------------------------------------

    def queries(self, qtype=None, transport=None, qname=None) -> list[Query]:
        """Every message received so far (oldest first), optionally filtered."""
        with self.lock:
            log = list(self._log)
        return [q for q in log if (qtype is None or q.qtype == qtype)
                and (transport is None or q.transport == transport)
                and (qname is None or q.qname == _fqdn(qname.lower()))]

    def clear_queries(self):
        with self.lock:
            self._log.clear()

    def wait_queries(self, n: int, timeout=5.0, **filters) -> list[Query]:
        """Waits until at least `n` queries match `filters`; returns them (raises on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            qs = self.queries(**filters)
            if len(qs) >= n:
                return qs
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(qs)} of {n} queries matching {filters} after {timeout}s")
            time.sleep(0.01)

    # -- serving ----------------------------------------------------------------------------

    def _udp_loop(self):
        sock = self._udp
        while not self._stop.is_set():
            try:
                data, peer = sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            delay = self.delay
            if delay:
                threading.Thread(target=self._udp_one, args=(data, peer, delay), daemon=True).start()
            else:
                self._udp_one(data, peer, 0)

    def _udp_one(self, data, peer, delay):
        try:
            replies = self._handle(data, "udp", peer[1])
            if delay and self._stop.wait(delay):
                return
            for r in replies:
                if isinstance(r, bytes) and r:
                    self._udp.sendto(r, peer)
        except OSError:
            pass

    def _tcp_loop(self):
        while not self._stop.is_set():
            try:
                conn, peer = self._tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self._conns.add(conn)
            threading.Thread(target=self._tcp_conn, args=(conn, peer), daemon=True).start()

    def _recv_exact(self, conn, n) -> bytes | None:
        buf = b""
        while len(buf) < n:
            try:
                d = conn.recv(n - len(buf))
            except socket.timeout:
                if self._stop.is_set():
                    return None
                continue
            except OSError:
                return None
            if not d:
                return None
            buf += d
        return buf

    def _tcp_conn(self, conn, peer):
        idle_deadline = time.monotonic() + 30
        try:
            conn.settimeout(0.2)
            while not self._stop.is_set() and time.monotonic() < idle_deadline:
                try:
                    r, _, _ = select.select([conn], [], [], 0.2)
                except (OSError, ValueError):
                    return
                if not r:
                    continue
                hdr = self._recv_exact(conn, 2)
                if hdr is None:
                    return
                (n,) = struct.unpack("!H", hdr)
                data = self._recv_exact(conn, n)
                if data is None:
                    return
                idle_deadline = time.monotonic() + 30
                replies = self._handle(data, "tcp", peer[1])
                if self.delay and self._stop.wait(self.delay):
                    return
                for rep in replies:
                    if rep is None:
                        continue
                    if rep is _CLOSE:
                        return
                    if isinstance(rep, _Partial):
                        conn.sendall(struct.pack("!H", rep.claimed) + rep.data)
                        return
                    if len(rep) > 65535:   # "message too large": Consul closes
                        return
                    conn.sendall(struct.pack("!H", len(rep)) + rep)
        except OSError:
            pass
        finally:
            with self.lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    # -- one query --------------------------------------------------------------------------

    def _take_fault(self, transport: str) -> str | None:
        with self.lock:
            f = self.fault
            if f is None:
                return None
            if self.fault_transport not in (None, transport):
                return None
            if f == "tc_partial" and transport == "tcp":
                return None
            if self.fault_count is not None:
                if self.fault_count <= 0:
                    self.fault = self.fault_count = None
                    return None
                self.fault_count -= 1
                if self.fault_count == 0:
                    self.fault = self.fault_count = None
            return f

    def _handle(self, data: bytes, transport: str, sport: int) -> list:
        """Returns the list of replies to send, in order (bytes, _CLOSE or _Partial)."""
        try:
            q = dns.message.from_wire(data)
        except Exception:  # noqa: BLE001 - any malformed query
            qid = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 0
            with self.lock:
                self._log.append(Query(transport, None, None, False, None, sport, qid, False,
                                       time.monotonic(), None, len(data)))
            if len(data) < 12:
                return []
            flags = dns.flags.QR | (struct.unpack("!H", data[2:4])[0] & dns.flags.RD) | dns.rcode.FORMERR
            return [struct.pack("!HHHHHH", qid, flags, 0, 0, 0, 0)]
        qname = q.question[0].name if q.question else None
        qtype = q.question[0].rdtype if q.question else None
        fault = self._take_fault(transport)
        with self.lock:
            self._log.append(Query(transport, qname.to_text().lower() if qname else None,
                                   dns.rdatatype.to_text(qtype) if qtype is not None else None,
                                   q.edns >= 0, int(q.payload) if q.edns >= 0 else None, sport, q.id,
                                   bool(q.flags & dns.flags.RD), time.monotonic(), fault, len(data)))
        responder = self.responder
        if responder is not None:
            out = responder(q, transport)
            if out is not None:
                if isinstance(out, dns.message.Message):
                    out = out.to_wire(max_size=65535)
                return [out] if out else []
        if q.opcode() != dns.opcode.QUERY or len(q.question) != 1:
            return [self._rcode_reply(q, dns.rcode.NOTIMP if q.opcode() != dns.opcode.QUERY
                                      else dns.rcode.FORMERR)]
        if fault is None:
            return [self._answer(q, transport)]
        return self._faulty(q, data, transport, fault)

    def _flags(self, q, rcode=0, tc=False) -> int:
        f = dns.flags.QR | dns.flags.AA | (q.flags & dns.flags.RD) | (rcode & 0xF)
        if tc:
            f |= dns.flags.TC
        return f

    def _edns(self, q):
        return int(q.payload) if q.edns >= 0 else None

    def _qlabels(self, q) -> tuple:
        return tuple(lb for lb in q.question[0].name.labels if lb)

    def _rcode_reply(self, q, rcode) -> bytes:
        if not q.question:
            return struct.pack("!HHHHHH", q.id, dns.flags.QR | (rcode & 0xF), 0, 0, 0, 0)
        return _render(q.id, self._flags(q, rcode), self._qlabels(q), q.question[0].rdtype,
                       edns_payload=self._edns(q))

    def _faulty(self, q, data, transport, fault) -> list:
        if fault in ("servfail", "refused", "formerr"):
            return [self._rcode_reply(q, {"servfail": dns.rcode.SERVFAIL, "refused": dns.rcode.REFUSED,
                                          "formerr": dns.rcode.FORMERR}[fault])]
        if fault in ("nxdomain", "nodata"):
            return [self._empty(q, fault)]
        if fault == "silence":
            return []
        if fault == "tcp_close":
            return [_CLOSE] if transport == "tcp" else []
        if fault == "tc_partial":
            return [self._answer(q, transport, partial=self.tc_partial_answers)]
        if fault == "wrong_question":
            ql = self._qlabels(q)
            other = (b"wrong-" + ql[0].lstrip(b"_"),) + ql[1:] if ql else (b"wrong",)
            return [self._answer(q, transport, as_labels=other)]
        good = self._answer(q, transport)
        if fault in ("wrong_id", "wrong_id_only"):
            bad_id = (q.id + 1 + self._rand.randrange(0xFFFE)) & 0xFFFF
            bad = struct.pack("!H", bad_id) + good[2:]
            return [bad, good] if fault == "wrong_id" else [bad]
        if fault == "garbage":
            n = self._rand.randint(1, 300)
            g = bytearray(os.urandom(n))
            if n >= 2 and g[0:2] == struct.pack("!H", q.id):
                g[0] ^= 0xFF
            return [bytes(g)]
        if fault == "qr0":
            return [good[:2] + bytes([good[2] & 0x7F]) + good[3:]]
        if fault == "short":
            return [good[:7]]
        if fault == "ancount_lie":
            return [good[:6] + b"\xff\xff" + good[8:]]
        if fault in ("ptr_loop", "bad_rdlength"):
            end = _question_end(data) or 12
            question = data[12:end]
            hdr = struct.pack("!HHHHHH", q.id, self._flags(q), 1, 1, 0, 0)
            srv = struct.pack("!HHH", 1, 1, 80)
            if fault == "ptr_loop":
                off = 12 + len(question)
                rr = struct.pack("!HHHIH", 0xC000 | off, _SRV, _IN, 0, 9) + srv + b"\x01a\x00"
            else:
                rr = struct.pack("!HHHIH", 0xC00C, _SRV, _IN, 0, 0x0100) + srv + b"\x00"
            return [hdr + question + rr]
        if fault == "tcp_short":
            half = good[: max(1, len(good) // 2)]
            return [_Partial(len(good), half)] if transport == "tcp" else [half]
        raise AssertionError(fault)

    # -- Consul's answers -------------------------------------------------------------------

    def _soa(self) -> tuple:
        d = _L(self.domain)
        rdata = (_name_wire(_L("ns." + self.domain)) + _name_wire(_L(f"{self.soa_rname}.{self.domain}"))
                 + struct.pack("!IIIII", int(time.time()) & 0xFFFFFFFF, 3600, 600, 86400, 0))
        return _rr(d, _SOA, 0, rdata)

    def _empty(self, q, mode=None, qlabels=None) -> bytes:
        mode = mode or self.empty
        rcode = dns.rcode.NXDOMAIN if mode == "nxdomain" else dns.rcode.NOERROR
        return _render(q.id, self._flags(q, rcode), qlabels or self._qlabels(q), q.question[0].rdtype, [],
                       [self._soa()], edns_payload=self._edns(q), compress=self.compress)

    def _nodata(self, q, qlabels=None) -> bytes:
        return self._empty(q, "nodata", qlabels)

    def _simple(self, q, qlabels, answers, additional=()) -> bytes:
        return _render(q.id, self._flags(q), qlabels, q.question[0].rdtype, answers, (), additional,
                       self._edns(q), self.compress)

    def _parse(self, labels: list):
        """labels: lowercased str labels of the question (no root).
        -> ("apex",) | ("service", svc, tag, dc, rfc2782) | ("node", node, dc) |
        ("addr", hex, dc) | ("invalid",) | None (outside the domain)."""
        dom = self.domain.split(".")
        if labels[-len(dom):] != dom:
            return None
        rest = labels[:-len(dom)]
        if not rest:
            return ("apex",)
        dc = self.dc
        if rest[-1] not in _KINDS:
            if rest[-1].startswith("_") and len(rest) == 2:           # _svc._tcp.consul.
                return ("service", rest[0][1:], _rfc_tag(rest[1]), dc, True)
            if len(rest) >= 2 and rest[-2] in _KINDS:
                dc = rest[-1]
                rest = rest[:-1]
            elif len(rest) == 3 and rest[0].startswith("_") and rest[1].startswith("_"):
                return ("service", rest[0][1:], _rfc_tag(rest[1]), rest[2], True)  # _svc._tcp.dc1.consul.
            else:
                return ("invalid",)
        kind, parts = rest[-1], rest[:-1]
        if not parts:
            return ("invalid",)
        if kind == "service":
            if len(parts) == 2 and parts[0].startswith("_") and parts[1].startswith("_"):
                return ("service", parts[0][1:], _rfc_tag(parts[1]), dc, True)
            return ("service", parts[-1], ".".join(parts[:-1]) or None, dc, False)
        if kind == "node":
            return ("node", ".".join(parts), dc)
        if kind == "addr" and len(parts) == 1:
            return ("addr", parts[0], dc)
        return ("invalid",)

    def _answer(self, q, transport, partial=None, as_labels=None) -> bytes:
        """The answer to `q`; with `as_labels`, written as if the question had been that name."""
        qtype = q.question[0].rdtype
        parsed = self._parse([lb.decode("ascii", "replace").lower() for lb in self._qlabels(q)])
        qlabels = self._qlabels(q) if as_labels is None else as_labels
        low = tuple(lb.lower() for lb in qlabels)                  # the answers' owner name
        if parsed is None:
            return self._rcode_reply(q, dns.rcode.REFUSED)
        kind = parsed[0]
        if kind == "invalid":
            return self._empty(q, "nxdomain", qlabels)
        if kind == "apex":
            if qtype == _SOA:
                return self._simple(q, qlabels, [self._soa()])
            if qtype == _NS:
                ns = _L("ns." + self.domain)
                return self._simple(q, qlabels, [_rr(low, _NS, 0, _name_wire(ns))], [_addr_rr(ns, 0, HOST)])
            return self._nodata(q, qlabels)
        if parsed[3 if kind == "service" else 2] != self.dc:
            return self._empty(q, None, qlabels)
        if kind == "addr":
            try:
                packed = bytes.fromhex(parsed[1])
            except ValueError:
                return self._empty(q, "nxdomain", qlabels)
            if len(packed) not in (4, 16):
                return self._empty(q, "nxdomain", qlabels)
            if qtype not in ((_A if len(packed) == 4 else _AAAA), _ANY):
                return self._nodata(q, qlabels)
            return self._simple(q, qlabels, [_addr_rr(low, self.ttl, str(ipaddress.ip_address(packed)))])
        with self.lock:
            services = dict(self._services)
        if kind == "node":
            found = [i for insts, _ in services.values() for i in insts if i.node.lower() == parsed[1]]
            if not found:
                return self._empty(q, "nxdomain", qlabels)
            inst = found[0]
            addr = inst.node_address or inst.address
            recs = []
            ip = _ip(addr)
            if ip is not None and (qtype == _ANY or (qtype == _A and ip.version == 4)
                                   or (qtype == _AAAA and ip.version == 6)):
                recs.append(_addr_rr(low, self.ttl, addr))
            if qtype in (_TXT, _ANY):
                recs += self._meta_txt(inst, low, self.ttl)
            return self._simple(q, qlabels, recs) if recs else self._nodata(q, qlabels)

        _, svc, tag, _dc, rfc = parsed
        insts, svc_ttl = services.get(svc, ([], None))
        ttl = self.ttl if svc_ttl is None else svc_ttl
        if tag:
            insts = [i for i in insts if tag in [t.lower() for t in i.tags]]
        if not insts:
            return self._empty(q, None, qlabels)
        insts = list(insts)
        if self.shuffle:
            self._rand.shuffle(insts)
        if qtype == _SRV:
            entries = [self._srv_entry(i, low, ttl) for i in insts]
        elif qtype in (_A, _AAAA, _ANY) and not rfc:
            entries = []
            for i in insts:
                ip = _ip(i.address)
                if ip is not None and (qtype == _ANY or (qtype == _A) == (ip.version == 4)):
                    entries.append((_addr_rr(low, ttl, i.address), None, []))
            if not entries:
                return self._nodata(q, qlabels)
        else:
            return self._nodata(q, qlabels)
        return self._trimmed(q, qlabels, entries, transport, partial)

    def _meta_txt(self, inst: Instance, node_labels: tuple, ttl: int) -> list:
        if not self.node_meta_txt:
            return []
        meta = inst.meta if inst.meta is not None else (("consul-network-segment", ""),)
        return [_txt_rr(node_labels, ttl, v if k.startswith("rfc1035-") else f"{k}={v}") for k, v in meta]

    def _srv_entry(self, inst: Instance, owner: tuple, ttl: int) -> tuple:
        """-> (SRV record, lowercased target labels or None, [additional records])."""
        node_labels = _L(f"{inst.node.lower()}.node.{self.dc}.{self.domain}")
        ip = _ip(inst.address)
        extras = []
        if ip is None:
            target = _L(inst.address.lower())
        else:
            if inst.node_address is not None and _ip(inst.node_address) == ip:
                target = node_labels
            else:
                target = _L(f"{ip.packed.hex()}.addr.{self.dc}.{self.domain}")
            extras.append(_addr_rr(target, ttl, inst.address))
        extras += self._meta_txt(inst, node_labels, ttl)
        srv = _rr(owner, _SRV, ttl, (struct.pack("!HHH", 1, int(inst.weight), int(inst.port)), target))
        return (srv, target, extras)

    def _trimmed(self, q, qlabels, entries, transport, partial) -> bytes:
        """Consul's trimUDPResponse / trimTCPResponse (see the module docstring)."""
        qtype = q.question[0].rdtype
        full_extra, index, seen = [], {}, set()
        for _, _, ex in entries:
            for rr in ex:
                if rr in seen:
                    continue
                seen.add(rr)
                full_extra.append(rr)
                index.setdefault(rr[0], rr)          # first record per name (Consul's indexRRs)

        def synced(k):
            out, done = [], set()
            for _, target, _ in entries[:k]:
                if target is None or target in done:
                    continue
                done.add(target)
                if target in index:
                    out.append(index[target])
            return out

        def size(k, sync, compress):
            return len(_render(q.id, 0, qlabels, qtype, [e[0] for e in entries[:k]], (),
                               synced(k) if sync else full_extra, None, compress))

        def fit(hi, limit, compress):
            """Largest k in [1, hi] whose message (additional rebuilt) fits `limit` (1 if none)."""
            lo = 1
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if size(mid, True, compress) <= limit:
                    lo = mid
                else:
                    hi = mid - 1
            return lo

        n = len(entries)
        edns = self._edns(q)
        k, cut, tc = n, False, False
        if partial is not None:                       # the tc_partial fault
            k, cut, tc = min(n, max(1, partial)), True, True
        elif transport == "udp":
            max_size = DEFAULT_MAX_UDP
            if edns is not None and edns > max_size:
                max_size = edns
            max_size = min(max_size, MAX_UDP_DATAGRAM)
            size_compress = self.compress
            limit = min(MAX_UDP_ANSWER_LIMIT, self.udp_answer_limit)
            if max_size == DEFAULT_MAX_UDP and n > limit:
                size_compress = False                 # Consul sizes these uncompressed
                k, cut = limit, True
            if k > 1 and size(k, cut, size_compress) > max_size - 7:
                k, cut = fit(k - 1, max_size - 7, size_compress), True
            tc = cut and self.enable_truncate
        else:
            cap = 1024 if qtype == _SRV else 4096
            if n > cap:
                k, cut = cap, True
            if k > 1 and size(k, cut, self.compress) > MAX_TCP_SIZE:
                k, cut = fit(k - 1, MAX_TCP_SIZE, self.compress), True
            tc = cut and self.enable_truncate
        return _render(q.id, self._flags(q, 0, tc), qlabels, qtype, [e[0] for e in entries[:k]], (),
                       synced(k) if cut else full_extra, edns, self.compress)


def _rfc_tag(label: str) -> str | None:
    """RFC 2782 protocol label: `_tcp` means no tag, any other `_x` filters on tag x."""
    t = label[1:] if label.startswith("_") else label
    return None if t == "tcp" else t


class _Close:
    pass


_CLOSE = _Close()


@dataclass
class _Partial:
    claimed: int
    data: bytes = field(default=b"")
