#!/usr/bin/env python3
"""A spoofed SYN flood over an AF_PACKET socket, sources inside 198.18.0.0/15.

    synflood.py IFACE DST_MAC DST_IP DPORT SECONDS [EXCLUDE_NET24] [PPS]

Run inside the test host's namespace. Every SYN has a random source address
drawn from 198.18.0.0/15 (the benchmarking range, RFC 2544) and never from
EXCLUDE_NET24 (e.g. 198.18.23.0: the test's own /24, so that the target
answers every spoofed SYN through its gateway, which nobody answers), a
random source port and a random ISN, and carries an MSS option, as a SYN
from a real host would. hping3 --rand-source cannot be restricted to a
range (it draws from all of IPv4): this tool stands in for it.

Sends flat out for SECONDS (or at most PPS per second if given) and prints
one JSON line: {"sent": N, "seconds": S, "pps": R}.

Checksums are computed incrementally (RFC 1624): the constant words of the
IPv4 header and of the TCP header and pseudo-header are summed once, the
per-SYN words (source address, port, sequence number) added per frame.
"""
import json
import random
import socket
import struct
import sys
import time

NET = 0xC6120000  # 198.18.0.0
NET_BITS = 17  # /15


def fold(s: int) -> int:
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def words(b: bytes) -> int:
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))


def main() -> None:
    iface, dst_mac, dst_ip, dport, seconds = sys.argv[1:6]
    dport, seconds = int(dport), float(seconds)
    exclude = None
    if len(sys.argv) > 6 and sys.argv[6] != "-":
        exclude = struct.unpack("!I", socket.inet_aton(sys.argv[6]))[0] >> 8
    pps = float(sys.argv[7]) if len(sys.argv) > 7 else 0.0
    dst = socket.inet_aton(dst_ip)
    if struct.unpack("!I", dst)[0] >> (32 - 15) != NET >> (32 - 15):
        sys.exit(f"synflood: {dst_ip} is outside 198.18.0.0/15")

    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    src_mac = s.getsockname()[4]
    eth = bytes(int(x, 16) for x in dst_mac.split(":")) + src_mac + b"\x08\x00"

    # IPv4: 20 bytes, TCP: 20 + MSS option (4) = 24 bytes.
    tcp_len = 24
    ip_head = struct.pack("!BBHHHBB", 0x45, 0, 20 + tcp_len, 0, 0x4000, 64, 6)
    ip_const = fold(words(ip_head) + words(dst))
    # TCP words that never change: destination port, offset and flags
    # (6 words, SYN), window, urgent pointer, MSS option; and the
    # pseudo-header's destination, protocol and length.
    tcp_mid = struct.pack("!IBBH", 0, (6 << 4), 0x02, 64240)  # ack, off, SYN, window
    opts = struct.pack("!BBH", 2, 4, 1460)
    tcp_const = fold(dport + words(tcp_mid) + words(opts) + words(dst) + 6 + tcp_len)
    pre = eth + ip_head
    frame = struct.Struct("!24sHI4sHHI8sH2s4s")  # 24 = eth (14) + ip_head (10)
    assert frame.size == 14 + 20 + tcp_len
    tail = b"\x00\x00"

    rnd = random.getrandbits
    sent = 0
    start = time.monotonic()
    deadline = start + seconds
    batch = 256
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        if pps > 0 and sent > pps * (now - start):
            time.sleep(0.001)
            continue
        for _ in range(batch):
            host = rnd(NET_BITS)
            src = NET | host
            if (exclude is not None and src >> 8 == exclude) or host & 0xFF in (0, 255):
                continue
            sport = 1024 + rnd(16) % 64512
            seq = rnd(32)
            sh, sl = src >> 16, src & 0xFFFF
            ipc = (~fold(ip_const + sh + sl)) & 0xFFFF
            tc = (~fold(tcp_const + sh + sl + sport + (seq >> 16) + (seq & 0xFFFF))) & 0xFFFF
            s.send(frame.pack(pre, ipc, src, dst, sport, dport, seq, tcp_mid, tc, tail, opts))
            sent += 1
    took = time.monotonic() - start
    print(json.dumps({"sent": sent, "seconds": round(took, 3), "pps": round(sent / took)}))


if __name__ == "__main__":
    main()
