#!/usr/bin/env python3
"""Hold N keep-alive client connections open to a proxy, for bench/run's memory measurement.

Each connection connects, sends one `GET /` and reads the whole response (so the proxy has
parsed a request and picked a backend on it), then stays open and idle. When all are open,
prints `READY <n>` on stdout and stays idle until SIGUSR1 (or --hold seconds); then prints
`HELD <open> closed_by_peer=<n>`, counting connections the proxy closed meanwhile, and exits.
Exits non-zero, with a message on stderr, if a connection fails or a response is not a 200.
"""

import argparse
import resource
import signal
import socket
import sys
import time


def read_response(sock: socket.socket) -> bytes:
    """Reads one HTTP/1.1 response framed by Content-Length; returns its status line."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before the response head ({len(buf)} bytes read)")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"connection" and value.strip().lower() == b"close":
            raise ConnectionError("the proxy answered with Connection: close")
    if length is None:
        raise ConnectionError(f"response without Content-Length: {head[:200]!r}")
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed in the response body")
        body += chunk
    return lines[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--hold", type=float, default=120.0, help="seconds to stay open after READY")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-connection socket timeout")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.count + 64
    if soft < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
        except (ValueError, OSError):
            pass
        if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need:
            print(f"idle.py: open-file limit {soft}/{hard} is below {need}", file=sys.stderr)
            return 2

    stop = []  # set by SIGUSR1; installed before READY so an early signal cannot kill us
    signal.signal(signal.SIGUSR1, lambda *_: stop.append(True))

    request = f"GET / HTTP/1.1\r\nHost: {args.host}:{args.port}\r\nUser-Agent: lbd-bench-idle\r\n\r\n".encode()
    socks = []
    started = time.monotonic()
    try:
        for i in range(args.count):
            s = socket.create_connection((args.host, args.port), timeout=args.timeout)
            s.sendall(request)
            status = read_response(s)
            if not status.startswith(b"HTTP/1.1 200"):
                raise ConnectionError(f"unexpected status line {status!r}")
            socks.append(s)
    except (OSError, ConnectionError, ValueError) as e:
        print(f"idle.py: connection {len(socks) + 1} of {args.count} failed: {e}", file=sys.stderr)
        return 1
    print(f"READY {len(socks)} in {time.monotonic() - started:.1f}s", flush=True)

    # Stay idle until bench/run has measured the proxy (SIGUSR1) or the hold time is over.
    deadline = time.monotonic() + args.hold
    while not stop and time.monotonic() < deadline:
        time.sleep(0.1)
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    print(f"HELD {len(socks) - closed} closed_by_peer={closed}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
