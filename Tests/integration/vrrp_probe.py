#!/usr/bin/env python3
"""Client prober for the VRRP pair tests: one new TCP connection and one HTTP request every
INTERVAL_MS for SECONDS, each bounded by TIMEOUT_MS, to HOST:PORT.

Prints one JSON line per probe, in start order:
  {"t": start (CLOCK_MONOTONIC seconds, comparable across namespaces), "end": ..., "ok": bool,
   "who": X-Backend of the answer or null, "error": text or null, "stage": "connect" | "request"}
A probe that fails during the TCP handshake has stage "connect"; one whose connection was
established but got no whole answer has stage "request".

Usage: vrrp_probe.py HOST PORT SECONDS INTERVAL_MS TIMEOUT_MS
"""

import json
import socket
import sys
import threading
import time


def one(host, port, timeout, out, i):
    t = time.monotonic()
    row = {"t": t, "ok": False, "who": None, "error": None, "stage": "connect"}
    try:
        s = socket.create_connection((host, port), timeout=timeout)
        row["stage"] = "request"
        try:
            s.settimeout(max(0.05, timeout - (time.monotonic() - t)))
            s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        lines = head.split("\r\n")
        if lines and lines[0].startswith("HTTP/1.1 200"):
            row["ok"] = True
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "x-backend":
                    row["who"] = value.strip()
        else:
            row["error"] = f"status {lines[0] if lines else 'none'}"
    except OSError as e:
        row["error"] = f"{type(e).__name__}: {e}"
    row["end"] = time.monotonic()
    out[i] = row


def main():
    host, port, seconds, interval_ms, timeout_ms = sys.argv[1:6]
    port, seconds, interval, timeout = int(port), float(seconds), float(interval_ms) / 1000, float(timeout_ms) / 1000
    results = {}
    threads = []
    start = time.monotonic()
    i = 0
    while True:
        due = start + i * interval
        now = time.monotonic()
        if due - start >= seconds:
            break
        if due > now:
            time.sleep(due - now)
        th = threading.Thread(target=one, args=(host, port, timeout, results, i), daemon=True)
        th.start()
        threads.append(th)
        i += 1
    for th in threads:
        th.join(timeout + 1)
    for k in sorted(results):
        print(json.dumps(results[k]))


if __name__ == "__main__":
    main()
