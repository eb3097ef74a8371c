#!/usr/bin/env python3
"""Turn the captures in tests/fuzz/seeds/*.pcap into fuzz corpora.

    tests/fuzz/seeds/make_corpus.py            # write tests/fuzz/corpus/<target>/
    tests/fuzz/seeds/make_corpus.py --trim IN.pcap OUT.pcap [--max N]

The captures come from the integration tests (capture.sh): curl against the
http app, the lossy echo, the hostile battery, UDP echo and malformed UDP,
ping and malformed frames. Each frame becomes one file, named by the SHA-1
of its content (so duplicates collapse), in the corpus of every target that
takes it:

  parse_frame    the frame as captured
  process_frame  the frame readdressed to the fuzz core (src/fuzzing:
                 198.18.0.1, 02:00:00:00:00:01; the peers keep their host
                 number in 198.18.0.0/24), checksums adjusted by RFC 1624 so
                 that a good one stays good and a bad one stays bad
  wire_ethernet  the frame
  wire_arp       the ARP packet
  wire_ipv4      the IPv4 packet
  wire_icmp      the ICMP message
  wire_udp       source and destination address (8 bytes), then the datagram
  wire_tcp       source and destination address (8 bytes), then the segment

At most --cap files per target (default 300; 150 for the wire targets), chosen
for variety: frames are grouped by shape (EtherType, protocol, TCP flags and
option kinds, ICMP type, length in 64-byte steps, checksum good or bad) and
taken one per group in turn. Existing files of those targets are replaced.
Plain Python, no scapy: pcap and the headers are parsed by hand.

--trim keeps at most N frames of a capture (default 400), chosen the same
way, in capture order: how the kept captures were made small.
"""

import argparse
import hashlib
import os
import struct
import sys
from collections import OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))
FUZZ = os.path.dirname(HERE)

CORE_MAC = bytes([2, 0, 0, 0, 0, 1])
CORE_NET = bytes([198, 18, 0])
WIRE_TARGETS = ["wire_ethernet", "wire_arp", "wire_ipv4", "wire_icmp", "wire_udp", "wire_tcp"]
FRAME_TARGETS = ["parse_frame", "process_frame"]


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a pcap file")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise ValueError(f"{path}: link type {linktype}, not Ethernet")
    at = 24
    while at + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(endian + "IIII", data[at : at + 16])
        at += 16
        yield (sec, frac, data[at : at + incl])
        at += incl


def write_pcap(path, records):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for sec, frac, frame in records:
            f.write(struct.pack("<IIII", sec, frac, len(frame), len(frame)))
            f.write(frame)


def csum_words(b):
    if len(b) % 2:
        b = b + b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def l3_offset(frame):
    """(offset of the EtherType's payload, EtherType), one 802.1Q tag skipped."""
    if len(frame) < 14:
        return None, None
    et = struct.unpack("!H", frame[12:14])[0]
    if et == 0x8100 and len(frame) >= 18:
        return 18, struct.unpack("!H", frame[16:18])[0]
    return 14, et


def layers(frame):
    """The pieces of a frame each wire target takes (those present)."""
    out = {"wire_ethernet": frame}
    off, et = l3_offset(frame)
    if off is None:
        return out
    l3 = frame[off:]
    if et == 0x0806:
        out["wire_arp"] = l3
    if et != 0x0800 or len(l3) < 20 or l3[0] >> 4 != 4:
        return out
    hl = (l3[0] & 15) * 4
    total = struct.unpack("!H", l3[2:4])[0]
    if hl < 20 or total < hl or total > len(l3):
        return out
    ip = l3[:total]
    out["wire_ipv4"] = ip
    frag = struct.unpack("!H", ip[6:8])[0] & 0x3FFF
    if frag & 0x1FFF:
        return out
    proto, l4, addrs = ip[9], ip[hl:], ip[12:20]
    if proto == 1:
        out["wire_icmp"] = l4
    elif proto == 17:
        out["wire_udp"] = addrs + l4
    elif proto == 6:
        out["wire_tcp"] = addrs + l4
    return out


def tcp_option_kinds(seg):
    if len(seg) < 20:
        return ()
    hl = (seg[12] >> 4) * 4
    opts, kinds, i = seg[20:hl], [], 0
    while i < len(opts):
        k = opts[i]
        if k == 0:
            break
        if k == 1:
            i += 1
            continue
        kinds.append(k)
        if i + 1 >= len(opts) or opts[i + 1] < 2:
            kinds.append(-1)
            break
        i += opts[i + 1]
    return tuple(kinds)


def shape(frame):
    """What makes two frames different for the fuzzer's purpose."""
    off, et = l3_offset(frame)
    key = [et, len(frame) // 64]
    parts = layers(frame)
    ip = parts.get("wire_ipv4")
    if ip is not None:
        key += [ip[9], csum_words(ip[: (ip[0] & 15) * 4]) == 0xFFFF, (ip[0] & 15) > 5,
                bool(struct.unpack("!H", ip[6:8])[0] & 0x3FFF)]
    if "wire_tcp" in parts:
        seg = parts["wire_tcp"][8:]
        if len(seg) >= 20:
            key += [seg[13], tcp_option_kinds(seg), len(seg) > (seg[12] >> 4) * 4]
    if "wire_icmp" in parts and len(parts["wire_icmp"]) >= 2:
        key += [parts["wire_icmp"][0], parts["wire_icmp"][1]]
    if "wire_udp" in parts and len(parts["wire_udp"]) >= 12:
        key += [struct.unpack("!H", parts["wire_udp"][10:12])[0]]
    if "wire_arp" in parts and len(parts["wire_arp"]) >= 8:
        key += [parts["wire_arp"][6:8]]
    return tuple(key)


def pick(items, cap, key):
    """At most `cap` of `items` (deduplicated by content), one per shape in turn."""
    groups = OrderedDict()
    seen = set()
    for it in items:
        content = it if isinstance(it, bytes) else it[2]
        if content in seen:
            continue
        seen.add(content)
        groups.setdefault(key(it), []).append(it)
    chosen, queues = [], [list(g) for g in groups.values()]
    while len(chosen) < cap and any(queues):
        for q in queues:
            if q and len(chosen) < cap:
                chosen.append(q.pop(0))
    return chosen


def adjust(csum, old, new):
    """RFC 1624 eqn. 3: the checksum after `old` bytes became `new`."""
    s = (~csum & 0xFFFF) + (~csum_words(old) & 0xFFFF) + csum_words(new)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def readdress(frame, stack_ips, stack_macs):
    """The frame as the fuzz core would see it (see the module doc)."""
    f = bytearray(frame)

    def mac(m):
        return CORE_MAC if bytes(m) in stack_macs else bytes(m)

    def addr(a):
        a = bytes(a)
        if a in stack_ips:
            return CORE_NET + b"\x01"
        if a[:2] == bytes([198, 18]):
            return CORE_NET + a[3:4]
        return a

    if len(f) < 14:
        return bytes(f)
    f[0:6], f[6:12] = mac(f[0:6]), mac(f[6:12])
    off, et = l3_offset(bytes(f))
    if et == 0x0806 and len(f) >= off + 28:
        a = off
        f[a + 8 : a + 14] = mac(f[a + 8 : a + 14])
        f[a + 14 : a + 18] = addr(f[a + 14 : a + 18])
        f[a + 18 : a + 24] = mac(f[a + 18 : a + 24])
        f[a + 24 : a + 28] = addr(f[a + 24 : a + 28])
    if et != 0x0800 or len(f) < off + 20:
        return bytes(f)
    old = bytes(f[off + 12 : off + 20])
    new = addr(old[:4]) + addr(old[4:])
    if old == new:
        return bytes(f)
    f[off + 12 : off + 20] = new
    c = struct.unpack("!H", f[off + 10 : off + 12])[0]
    f[off + 10 : off + 12] = struct.pack("!H", adjust(c, old, new))
    hl = (f[off] & 15) * 4
    first = struct.unpack("!H", f[off + 6 : off + 8])[0] & 0x1FFF == 0
    at = {6: 16, 17: 6}.get(f[off + 9])
    l4 = off + hl
    if first and at is not None and len(f) >= l4 + at + 2:
        c = struct.unpack("!H", f[l4 + at : l4 + at + 2])[0]
        if not (f[off + 9] == 17 and c == 0):  # UDP without a checksum
            c = adjust(c, old, new)
            if f[off + 9] == 17 and c == 0:
                c = 0xFFFF
            f[l4 + at : l4 + at + 2] = struct.pack("!H", c)
    return bytes(f)


def stack_addresses(frames):
    """dpstack's addresses in a capture: 198.18.X.1 and the MAC it sends from."""
    ips, macs = set(), set()
    for fr in frames:
        off, et = l3_offset(fr)
        if et == 0x0800 and len(fr) >= off + 20:
            src = fr[off + 12 : off + 16]
            if src[:2] == bytes([198, 18]) and src[3] == 1:
                ips.add(src)
                macs.add(fr[6:12])
    return ips, macs


def write_corpus(target, blobs, cap):
    d = os.path.join(FUZZ, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        os.remove(os.path.join(d, name))
    chosen = pick(blobs, cap, lambda b: shape(b) if target in FRAME_TARGETS + ["wire_ethernet"] else (len(b) // 64, b[:1]))
    for b in chosen:
        with open(os.path.join(d, hashlib.sha1(b).hexdigest()), "wb") as f:
            f.write(b)
    return len(chosen)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trim", nargs=2, metavar=("IN", "OUT"))
    ap.add_argument("--max", type=int, default=400)
    ap.add_argument("--cap", type=int, default=300)
    ap.add_argument("--wire-cap", type=int, default=150)
    a = ap.parse_args()

    if a.trim:
        recs = list(read_pcap(a.trim[0]))
        keep = pick(recs, a.max, lambda r: shape(r[2]))
        order = {id(r): i for i, r in enumerate(recs)}
        keep.sort(key=lambda r: order[id(r)])
        write_pcap(a.trim[1], keep)
        print(f"{a.trim[1]}: {len(keep)} of {len(recs)} frames")
        return

    pcaps = sorted(p for p in os.listdir(HERE) if p.endswith(".pcap"))
    if not pcaps:
        sys.exit(f"no captures in {HERE}")
    per_target = {t: [] for t in FRAME_TARGETS + WIRE_TARGETS}
    for p in pcaps:
        frames = [r[2] for r in read_pcap(os.path.join(HERE, p))]
        ips, macs = stack_addresses(frames)
        for fr in frames:
            per_target["parse_frame"].append(fr)
            per_target["process_frame"].append(readdress(fr, ips, macs))
            for t, b in layers(fr).items():
                per_target[t].append(b)
    for t, blobs in per_target.items():
        cap = a.wire_cap if t in WIRE_TARGETS else a.cap
        n = write_corpus(t, blobs, cap)
        print(f"{t}: {n} files ({len(set(blobs))} distinct of {len(blobs)})")


if __name__ == "__main__":
    main()
