#!/usr/bin/env python3
"""Send crafted (mostly malformed) Ethernet frames over an AF_PACKET socket.

    frames.py IFACE DST_MAC SRC_IP DST_IP KIND [COUNT]

Run inside the test host's namespace. Builds every header by hand with
struct, so each defect is exactly the one named. Prints how many frames went
out. Addresses must be in 198.18.0.0/15.
"""
import socket
import struct
import sys


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def mac(s: str) -> bytes:
    return bytes(int(x, 16) for x in s.split(":"))


def ip4(s: str) -> bytes:
    return socket.inet_aton(s)


def ipv4(src, dst, proto, payload, ident=1, flags_off=0, ihl=5, total=None, bad_cksum=False, ttl=64):
    total = 20 + len(payload) if total is None else total
    hdr = struct.pack("!BBHHHBBH4s4s", (4 << 4) | ihl, 0, total, ident, flags_off, ttl, proto, 0, src, dst)
    c = csum(hdr)
    if bad_cksum:
        c ^= 0x5555
    hdr = hdr[:10] + struct.pack("!H", c) + hdr[12:]
    return hdr + payload


def udp(src, dst, sport, dport, payload, length=None, bad_cksum=False):
    length = 8 + len(payload) if length is None else length
    hdr = struct.pack("!HHHH", sport, dport, length, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, 8 + len(payload))
    c = csum(pseudo + hdr + payload) or 0xFFFF
    if bad_cksum:
        c ^= 0x5555
    return struct.pack("!HHHH", sport, dport, length, c) + payload


def icmp_echo(ident, seq, data, bad_cksum=False):
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    c = csum(hdr + data)
    if bad_cksum:
        c ^= 0x5555
    return struct.pack("!BBHHH", 8, 0, c, ident, seq) + data


def arp(src_mac, src_ip, dst_ip, hlen=6):
    sha = src_mac + b"\0" * (hlen - 6) if hlen >= 6 else src_mac[:hlen]
    return struct.pack("!HHBBH", 1, 0x0800, hlen, 4, 1) + sha + src_ip + b"\0" * hlen + dst_ip


def frames(kind, dst_mac, src_mac, src, dst, i):
    eth_ip = dst_mac + src_mac + b"\x08\x00"
    eth_arp = b"\xff" * 6 + src_mac + b"\x08\x06"
    echo = icmp_echo(0x77, i, b"dpstack-test-payload")
    if kind == "runt":  # an Ethernet header and nothing else
        return [eth_ip]
    if kind == "ip_short":  # 10 bytes of an IPv4 header
        return [eth_ip + ipv4(src, dst, 1, echo)[:10]]
    if kind == "ihl_lt5":
        return [eth_ip + ipv4(src, dst, 1, echo, ihl=4)]
    if kind == "totlen_beyond":
        return [eth_ip + ipv4(src, dst, 1, echo, total=20 + len(echo) + 200)]
    if kind == "ip_bad_cksum":
        return [eth_ip + ipv4(src, dst, 1, echo, bad_cksum=True)]
    if kind == "arp_bad_hlen":
        return [eth_arp + arp(src_mac, src, dst, hlen=7)]
    if kind == "icmp_bad_cksum":
        return [eth_ip + ipv4(src, dst, 1, icmp_echo(0x77, i, b"x" * 20, bad_cksum=True))]
    if kind == "oversize":
        # A frame past a 1500 MTU that is not one whole datagram: an echo
        # with 1560 bytes after its IPv4 datagram. (One whole datagram
        # longer than the MTU is taken: af_packet's fanout reassembles.)
        return [eth_ip + ipv4(src, dst, 1, icmp_echo(0x77, i, b"o" * 20)) + b"\0" * 1560]
    if kind == "not_for_us":
        return [b"\x02\x99\x99\x99\x99\x99" + src_mac + b"\x08\x00" + ipv4(src, dst, 1, echo)]
    if kind == "udp_bad_cksum":
        return [eth_ip + ipv4(src, dst, 17, udp(src, dst, 5000 + i, 7, b"bad checksum", bad_cksum=True))]
    if kind == "udp_len_long":
        return [eth_ip + ipv4(src, dst, 17, udp(src, dst, 5000 + i, 7, b"long length", length=8 + 11 + 8))]
    if kind == "udp_len_short":
        return [eth_ip + ipv4(src, dst, 17, udp(src, dst, 5000 + i, 7, b"short length", length=8 + 4))]
    if kind == "frag_overlap":
        # Two fragments of one datagram: bytes 0..1000 and 504..1504.
        body = udp(src, dst, 6000, 7, b"v" * 2000)
        ident = 0x4000 + i
        return [
            eth_ip + ipv4(src, dst, 17, body[:1000], ident=ident, flags_off=0x2000),
            eth_ip + ipv4(src, dst, 17, body[504:1504], ident=ident, flags_off=0x2000 | (504 // 8)),
        ]
    if kind == "frag_flood":
        # First fragments of datagrams that never complete, each claiming
        # a far-away tail so reassembly must reserve memory.
        ident = 0x6000 + i
        return [eth_ip + ipv4(src, dst, 17, b"f" * 1400, ident=ident, flags_off=0x2000 | (40000 // 8))]
    raise SystemExit("unknown kind " + kind)


def main():
    iface, dst_mac, src_ip, dst_ip, kind = sys.argv[1:6]
    count = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    for a in (src_ip, dst_ip):
        o = [int(x) for x in a.split(".")]
        if not (o[0] == 198 and o[1] in (18, 19)):
            raise SystemExit("refusing address outside 198.18.0.0/15: " + a)
    with open("/sys/class/net/%s/address" % iface) as f:
        src_mac = mac(f.read().strip())
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    sent = 0
    for i in range(count):
        for fr in frames(kind, mac(dst_mac), src_mac, ip4(src_ip), ip4(dst_ip), i):
            s.send(fr)
            sent += 1
    print(sent)


if __name__ == "__main__":
    main()
