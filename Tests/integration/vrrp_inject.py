#!/usr/bin/env python3
"""Sends one crafted VRRP packet (IP header included) from this namespace: bad-input tests.

Usage: vrrp_inject.py SRC DST CASE [VRID] [PRIORITY]
CASE: good | ttl64 | badsum | v2 | truncated | zerointerval
The VRRP checksum is keepalived's form (IPv4 pseudo-header) unless the case breaks it.
"""

import socket
import struct
import sys


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def main():
    src, dst, case = sys.argv[1:4]
    vrid = int(sys.argv[4]) if len(sys.argv) > 4 else 51
    prio = int(sys.argv[5]) if len(sys.argv) > 5 else 200
    count = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    s_ip, d_ip = socket.inet_aton(src), socket.inet_aton(dst)
    vip = socket.inet_aton("10.99.0.10")
    version = 2 if case == "v2" else 3
    interval = 0 if case == "zerointerval" else 10
    if version == 3:
        body = struct.pack("!BBBBHH", 0x31, vrid, prio, 1, interval, 0) + vip
        pseudo = s_ip + d_ip + struct.pack("!BBH", 0, 112, len(body))
        sum_ = csum(pseudo + body)
    else:
        body = struct.pack("!BBBBBBH", 0x21, vrid, prio, 1, 0, 1, 0) + vip + b"\0" * 8
        sum_ = csum(body)
    if case == "badsum":
        sum_ ^= 0x0101
    body = body[:6] + struct.pack("!H", sum_) + body[8:]
    if case == "truncated":
        body = body[:6]
    ttl = 64 if case == "ttl64" else 255
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(body), 1, 0, ttl, 112, 0, s_ip, d_ip)
    header = header[:10] + struct.pack("!H", csum(header)) + header[12:]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    for _ in range(count):
        s.sendto(header + body, (dst, 0))


if __name__ == "__main__":
    main()
