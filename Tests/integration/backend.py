#!/usr/bin/env python3
"""A real HTTP/1.1 keep-alive backend for lbd's integration tests and demos.

Threaded, raw sockets (no http.server): it parses Content-Length and chunked request bodies,
answers pipelined requests in order and keeps connections alive. Routes:

  GET  /                 200 "hello from <name>\\n", header X-Backend: <name>
  GET  /size/<n>         n pattern bytes, Content-Length, written in 64 KiB pieces
  GET  /chunked/<n>      n pattern bytes, chunked, pieces of varying sizes
  POST|PUT /echo         the request body back, Content-Length
  POST /sha256           {"len", "sha256", "framing", "trailers"} of the request body (streamed);
                         ?slow_bytes=N&rate=R reads the first N body bytes at R bytes/s
  ANY  /headers[/...]    {"request_line", "headers": [[name, value], ...], "trailers", "body_len", "body"}
  GET  /sleep/<ms>       sleeps, then 200 "slept <ms>\\n"
  GET  /close            200 with Connection: close, then closes the connection
  GET  /hop-response     200 carrying hop-by-hop fields (Connection: X-Internal, X-Internal, Keep-Alive)
  GET  /_stats           {"name", "connections", "requests", "heads", "errors", "health_checks",
                         "proxied", "failing_health"}
  GET  /health           200 "ok\n", or 500 "failing\n" while health failing is on (health checks)
  GET  /_health/fail     turns health failing on (GET /health answers 500); 200
  GET  /_health/ok       turns it off again; 200

`requests` counts every answered request; `health_checks` those to /health; `proxied` the others
except the control routes /_stats and /_health/* (what a proxy forwarded from its clients).

Every response carries X-Backend: <name>. Body bytes are the pattern `i % 251` for byte i, so a
client can check a hash without either side holding the whole body (see `pattern_sha256`).

Run standalone: python3 backend.py --port P --name N [--fail-health]
Or in-process:   b = Backend("a").start(); b.port; b.stop()
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import threading
import time
import urllib.parse

PATTERN_PERIOD = 251
PIECE = 64 * 1024
_PATTERN = bytes(i % PATTERN_PERIOD for i in range(PATTERN_PERIOD * ((PIECE * 4) // PATTERN_PERIOD + 2)))


def pattern_piece(offset: int, length: int) -> bytes:
    """Bytes [offset, offset+length) of the infinite pattern; length <= 256 KiB."""
    assert 0 <= length <= PIECE * 4
    start = offset % PATTERN_PERIOD
    return _PATTERN[start:start + length]


def pattern_iter(total: int, piece: int = PIECE):
    off = 0
    while off < total:
        n = min(piece, total - off)
        yield pattern_piece(off, n)
        off += n


_SHA_CACHE: dict[int, str] = {}


def pattern_sha256(total: int) -> str:
    if total not in _SHA_CACHE:
        h = hashlib.sha256()
        for p in pattern_iter(total, PIECE * 4):
            h.update(p)
        _SHA_CACHE[total] = h.hexdigest()
    return _SHA_CACHE[total]


class ProtocolError(Exception):
    pass


class PeerClosed(Exception):
    pass


class BufferedSocket:
    """A socket with a read buffer: lines, exact reads, pieces. Raises PeerClosed on EOF."""

    def __init__(self, sock: socket.socket, bufsize: int = 256 * 1024):
        self.sock = sock
        self.buf = bytearray()
        self.bufsize = bufsize

    def fill(self) -> None:
        data = self.sock.recv(self.bufsize)
        if not data:
            raise PeerClosed()
        self.buf += data

    def read_until(self, sep: bytes, limit: int) -> bytes:
        """Bytes up to and including sep."""
        start = 0
        while True:
            i = self.buf.find(sep, start)
            if i >= 0:
                out = bytes(self.buf[:i + len(sep)])
                del self.buf[:i + len(sep)]
                return out
            if len(self.buf) > limit:
                raise ProtocolError("line or head too long")
            start = max(0, len(self.buf) - len(sep) + 1)
            self.fill()

    def read_line(self, limit: int = 65536) -> bytes:
        """One line without its CRLF; a bare LF is a protocol error."""
        line = self.read_until(b"\n", limit)
        if not line.endswith(b"\r\n"):
            raise ProtocolError("bare LF")
        return line[:-2]

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_some(self, maxn: int) -> bytes:
        if not self.buf:
            self.fill()
        n = min(maxn, len(self.buf))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_to_eof(self, sink=None, maxn: int = 1 << 62) -> int:
        got = 0
        while True:
            if self.buf:
                chunk = bytes(self.buf)
                self.buf.clear()
            else:
                chunk = self.sock.recv(self.bufsize)
                if not chunk:
                    return got
            got += len(chunk)
            if sink:
                sink(chunk)
            if got > maxn:
                raise ProtocolError("body too long")


def parse_chunked(reader: BufferedSocket, trailers_out: list, strict: bool = True):
    """Yields the decoded data of a chunked body; appends trailer fields to trailers_out."""
    while True:
        line = reader.read_line(8192) if strict else reader.read_until(b"\n", 8192).rstrip(b"\r\n")
        size_text = line.split(b";", 1)[0]
        if not size_text or any(c not in b"0123456789abcdefABCDEF" for c in size_text) or len(size_text) > 15:
            raise ProtocolError("bad chunk size %r" % line[:40])
        size = int(size_text, 16)
        if size == 0:
            break
        left = size
        while left:
            piece = reader.read_some(min(left, 256 * 1024))
            left -= len(piece)
            yield piece
        if reader.read_exact(2) != b"\r\n":
            raise ProtocolError("no CRLF after chunk data")
    while True:
        line = reader.read_line(65536)
        if line == b"":
            return
        name, _, value = line.partition(b":")
        trailers_out.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))


class Request:
    def __init__(self, method, target, version, request_line, headers):
        self.method = method
        self.target = target
        self.version = version
        self.request_line = request_line
        self.headers = headers  # list of (bytes name, bytes value)
        self.trailers: list = []
        self.body_len = 0
        self.body_sha = None
        self.body_head = b""
        self.framing = "none"
        self.path, _, self.query_text = target.partition("?")
        self.query = dict(urllib.parse.parse_qsl(self.query_text))

    def header(self, name: str):
        """The first value of a field (str, latin-1), or None."""
        n = name.lower().encode()
        for k, v in self.headers:
            if k.lower() == n:
                return v.decode("latin-1")
        return None

    def header_all(self, name: str) -> list[str]:
        n = name.lower().encode()
        return [v.decode("latin-1") for k, v in self.headers if k.lower() == n]

    def connection_tokens(self) -> set[str]:
        toks = set()
        for v in self.header_all("connection"):
            toks |= {t.strip().lower() for t in v.split(",") if t.strip()}
        return toks

    def to_json(self) -> dict:
        return {
            "request_line": self.request_line,
            "method": self.method,
            "target": self.target,
            "version": self.version,
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in self.headers],
            "trailers": [list(t) for t in self.trailers],
            "body_len": self.body_len,
            "body": self.body_head.decode("latin-1"),
            "framing": self.framing,
        }


class Backend:
    """HTTP/1.1 keep-alive test backend. Thread per connection."""

    def __init__(self, name: str = "backend", host: str = "127.0.0.1", port: int = 0,
                 fail_health: bool = False):
        self.name = name
        self.fail_health = fail_health  # GET /health answers 500 while set (settable at runtime)
        self.host = host
        self.lsock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(512)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = 0          # accepted TCP connections
        self.requests = 0             # complete requests answered
        self.heads = 0                # request heads parsed (body may not have completed)
        self.health_checks = 0        # requests to /health
        self.proxied = 0              # requests other than /health, /_stats and /_health/*
        self.errors: list[str] = []   # protocol errors seen (what lbd sent was malformed)
        self.log: list[Request] = []  # completed requests, most recent last (bounded)
        self.open_socks: set = set()
        self.stopped = False
        self.thread = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "Backend":
        self.thread = threading.Thread(target=self._accept_loop, name=f"backend-{self.name}", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped = True
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.open_socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stats(self) -> dict:
        with self.lock:
            return {"name": self.name, "connections": self.connections, "requests": self.requests,
                    "heads": self.heads, "errors": list(self.errors), "health_checks": self.health_checks,
                    "proxied": self.proxied, "failing_health": self.fail_health}

    def requests_since(self, n: int) -> list[Request]:
        with self.lock:
            return list(self.log[n:]) if n <= len(self.log) else []

    def log_len(self) -> int:
        with self.lock:
            return len(self.log)

    def _accept_loop(self) -> None:
        while not self.stopped:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.connections += 1
                self.open_socks.add(s)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s: socket.socket) -> None:
        r = BufferedSocket(s)
        try:
            while not self.stopped:
                try:
                    keep = self._one(r)
                except PeerClosed:
                    return
                except ProtocolError as e:
                    with self.lock:
                        self.errors.append(str(e))
                    try:
                        s.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbackend 400\n")
                    except OSError:
                        pass
                    return
                if not keep:
                    return
        except OSError:
            return
        finally:
            with self.lock:
                self.open_socks.discard(s)
            try:
                s.close()
            except OSError:
                pass

    # One request/response exchange. Returns whether to keep the connection.
    def _one(self, r: BufferedSocket) -> bool:
        head = r.read_until(b"\r\n\r\n", 1 << 20)
        lines = head[:-4].split(b"\r\n")
        for ln in lines:
            if b"\n" in ln or b"\r" in ln:
                raise ProtocolError("bare CR/LF in head")
        try:
            request_line = lines[0].decode("latin-1")
            method, target, version = request_line.split(" ")
        except ValueError:
            raise ProtocolError("bad request line %r" % lines[0][:80])
        headers = []
        for ln in lines[1:]:
            name, sep, value = ln.partition(b":")
            if not sep or not name or name != name.strip():
                raise ProtocolError("bad header line %r" % ln[:80])
            headers.append((name, value.strip(b" \t")))
        req = Request(method, target, version, request_line, headers)
        with self.lock:
            self.heads += 1

        te = req.header_all("transfer-encoding")
        cls = req.header_all("content-length")
        if te and cls:
            raise ProtocolError("both TE and CL")
        if len(set(cls)) > 1:
            raise ProtocolError("conflicting CL")
        if te:
            codings = [c.strip().lower() for c in ",".join(te).split(",")]
            if codings != ["chunked"]:
                raise ProtocolError("unsupported TE %r" % te)
            req.framing = "chunked"
        elif cls:
            if not cls[0].isdigit():
                raise ProtocolError("bad CL")
            req.framing = "length"

        keep = version == "HTTP/1.1" and "close" not in req.connection_tokens()
        if version == "HTTP/1.0" and "keep-alive" in req.connection_tokens():
            keep = True

        def body_iter():
            if req.framing == "chunked":
                yield from parse_chunked(r, req.trailers)
            elif req.framing == "length":
                left = int(cls[0])
                while left:
                    p = r.read_some(min(left, 256 * 1024))
                    left -= len(p)
                    yield p

        has_body = req.framing == "chunked" or (req.framing == "length" and int(cls[0]) > 0)
        if has_body and version == "HTTP/1.1" and (req.header("expect") or "").lower() == "100-continue":
            r.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

        consumed = {"done": False}
        sha = hashlib.sha256()

        def consume(slow_bytes=0, rate=0):
            t0 = time.monotonic()
            for p in body_iter():
                if slow_bytes and req.body_len < slow_bytes and rate:
                    ahead = (req.body_len + len(p)) / rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
                if len(req.body_head) < 65536:
                    req.body_head += p[:65536 - len(req.body_head)]
                req.body_len += len(p)
                sha.update(p)
            req.body_sha = sha.hexdigest()
            consumed["done"] = True

        path = req.path
        send = r.sock.sendall
        # Slow reads use small reads so that backpressure reaches the sender.
        if path == "/sha256" and "slow_bytes" in req.query:
            r.bufsize = 16 * 1024
            consume(int(req.query["slow_bytes"]), int(req.query.get("rate", "2000000")))
            r.bufsize = 256 * 1024
        else:
            consume()
        with self.lock:
            self.requests += 1
            if req.path == "/health":
                self.health_checks += 1
            elif req.path != "/_stats" and not req.path.startswith("/_health/"):
                self.proxied += 1
            self.log.append(req)
            if len(self.log) > 5000:
                del self.log[:1000]

        close_after = not keep

        def respond(status, body=b"", headers=(), reason=None):
            reasons = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 400: "Bad Request",
                       500: "Internal Server Error"}
            hs = [("X-Backend", self.name), ("Content-Length", str(len(body)))] + list(headers)
            if close_after:
                hs.append(("Connection", "close"))
            out = f"HTTP/1.1 {status} {reason or reasons.get(status, 'Status')}\r\n"
            out += "".join(f"{k}: {v}\r\n" for k, v in hs) + "\r\n"
            send(out.encode("latin-1") + body)

        parts = path.split("/")
        if path == "/" and method in ("GET", "HEAD"):
            respond(200, f"hello from {self.name}\n".encode(), [("Content-Type", "text/plain")])
        elif path.startswith("/size/") and method == "GET":
            n = int(parts[2])
            hs = f"HTTP/1.1 200 OK\r\nX-Backend: {self.name}\r\nContent-Length: {n}\r\n"
            if close_after:
                hs += "Connection: close\r\n"
            send(hs.encode() + b"\r\n")
            for p in pattern_iter(n):
                send(p)
        elif path.startswith("/chunked/") and method == "GET":
            n = int(parts[2])
            hs = f"HTTP/1.1 200 OK\r\nX-Backend: {self.name}\r\nTransfer-Encoding: chunked\r\n"
            if close_after:
                hs += "Connection: close\r\n"
            send(hs.encode() + b"\r\n")
            sizes = [1, 100, PIECE, 7, 3000, PIECE - 1, 40000]
            off, i = 0, 0
            while off < n:
                k = min(sizes[i % len(sizes)], n - off)
                send(b"%x\r\n" % k + pattern_piece(off, k) + b"\r\n")
                off += k
                i += 1
            send(b"0\r\nX-Trailer: yes\r\n\r\n")
        elif path == "/echo" and method in ("POST", "PUT"):
            if req.body_len > len(req.body_head):
                respond(400, b"echo body too large\n")
                return False
            ct = req.header("content-type")
            respond(200, req.body_head, [("Content-Type", ct)] if ct else [])
        elif path == "/sha256" and method in ("POST", "PUT"):
            out = {"len": req.body_len, "sha256": req.body_sha, "framing": req.framing,
                   "trailers": [list(t) for t in req.trailers]}
            respond(200, json.dumps(out).encode(), [("Content-Type", "application/json")])
        elif path == "/headers" or path.startswith("/headers/"):
            respond(200, json.dumps(req.to_json()).encode(), [("Content-Type", "application/json")])
        elif path.startswith("/sleep/") and method == "GET":
            ms = int(parts[2])
            time.sleep(ms / 1000.0)
            respond(200, f"slept {ms}\n".encode())
        elif path == "/close" and method == "GET":
            close_after = True
            respond(200, b"closing\n")
        elif path == "/hop-response" and method == "GET":
            respond(200, b"hop\n", [("Connection", "X-Internal"), ("X-Internal", "secret"),
                                    ("Keep-Alive", "timeout=5"), ("X-Public", "yes")])
        elif path == "/health" and method in ("GET", "HEAD"):
            if self.fail_health:
                respond(500, b"failing\n")
            else:
                respond(200, b"ok\n")
        elif path in ("/_health/fail", "/_health/ok") and method == "GET":
            self.fail_health = path == "/_health/fail"
            respond(200, f"health {'failing' if self.fail_health else 'ok'}\n".encode())
        elif path == "/_stats":
            respond(200, json.dumps(self.stats()).encode(), [("Content-Type", "application/json")])
        else:
            respond(404, b"not found\n")
        return not close_after


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="backend")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--fail-health", action="store_true", help="start with GET /health answering 500")
    a = ap.parse_args()
    b = Backend(a.name, a.host, a.port, fail_health=a.fail_health).start()
    print(f"backend {a.name} listening on {b.address}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        b.stop()


if __name__ == "__main__":
    main()
