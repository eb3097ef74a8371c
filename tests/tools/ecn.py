#!/usr/bin/env python3
"""ECN (RFC 3168) against dpstack's tcp-echo, run inside the test host with
net.ipv4.tcp_ecn=1 (Linux asks for ECN in its SYNs).

    ecn.py HOST PORT BYTES IFACE   echo BYTES through HOST:PORT while capturing
                                   on IFACE what HOST sends

Prints one JSON object: Linux's view of the connection (TCP_INFO's
tcpi_options: ECN negotiated, ECT seen), the flags of HOST's SYN-ACK, and
HOST's segments by ECN codepoint (data segments, first sends and resends
told apart by sequence number; segments without data), and the frames the
capture dropped (then a resend may count as a first send). Exits non-zero
when the echo is wrong. Addresses must be in 198.18.0.0/15.
"""
import json
import socket
import struct
import sys
import threading
import time

ETH_P_ALL = 0x0003
SO_RCVBUFFORCE = 33
SOL_PACKET = 263
PACKET_STATISTICS = 6
TCPI_OPT_ECN = 8
TCPI_OPT_ECN_SEEN = 16
CODEPOINTS = ["not-ect", "ect1", "ect0", "ce"]


def check_addr(host):
    o = [int(x) for x in host.split(".")]
    if not (o[0] == 198 and o[1] in (18, 19)):
        raise SystemExit("refusing address outside 198.18.0.0/15: " + host)


def main():
    host, port, total, iface = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    check_addr(host)
    src = socket.inet_aton(host)
    cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    # Root may go past rmem_max: a capture that drops frames could take a
    # resend for a first send.
    cap.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
    cap.bind((iface, 0))
    cap.settimeout(0.2)
    seen = {
        "syn_ack_flags": None,
        "data_new": {c: 0 for c in CODEPOINTS},
        "data_resent": {c: 0 for c in CODEPOINTS},
        "no_data": {c: 0 for c in CODEPOINTS},
        "cwr": 0,
    }
    done = threading.Event()

    def sniff():
        high = None  # the highest sequence number HOST sent, plus one
        while not done.is_set():
            try:
                f = cap.recv(65535)
            except socket.timeout:
                continue
            if len(f) < 54 or f[12:14] != b"\x08\x00" or f[14 + 12 : 14 + 16] != src:
                continue
            ihl = (f[14] & 0x0F) * 4
            if f[14 + 9] != 6:
                continue
            ecn = CODEPOINTS[f[15] & 3]
            total_len = struct.unpack("!H", f[16:18])[0]
            t = 14 + ihl
            seq = struct.unpack("!I", f[t + 4 : t + 8])[0]
            flags = f[t + 13]
            doff = (f[t + 12] >> 4) * 4
            length = total_len - ihl - doff
            if flags & 0x02:
                seen["syn_ack_flags"] = flags
                high = (seq + 1) & 0xFFFFFFFF
                continue
            if flags & 0x80:
                seen["cwr"] += 1
            if length == 0:
                seen["no_data"][ecn] += 1
                continue
            # New data starts at or past the highest sequence sent (as
            # dpstack's SND.MAX); anything below is a resend.
            new = high is None or ((seq - high) & 0xFFFFFFFF) < (1 << 31)
            seen["data_new" if new else "data_resent"][ecn] += 1
            if new:
                high = (seq + length) & 0xFFFFFFFF

    th = threading.Thread(target=sniff)
    th.start()
    time.sleep(0.2)
    s = socket.create_connection((host, port), timeout=10)
    data = bytes((i * 7 + 13) % 251 for i in range(65536)) * (total // 65536 + 1)
    data = data[:total]
    got = bytearray()

    def writer():
        s.sendall(data)

    w = threading.Thread(target=writer)
    w.start()
    while len(got) < total:
        b = s.recv(1 << 16)
        if not b:
            break
        got += b
    w.join()
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    options = info[5]
    s.close()
    time.sleep(0.3)
    done.set()
    th.join()
    # struct tpacket_stats: packets, drops (since the socket opened).
    drops = struct.unpack("II", cap.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))[1]
    out = {
        "capture_drops": drops,
        "echoed": bytes(got) == data,
        "ecn": bool(options & TCPI_OPT_ECN),
        "ecn_seen": bool(options & TCPI_OPT_ECN_SEEN),
    }
    out.update(seen)
    print(json.dumps(out))
    sys.exit(0 if out["echoed"] else 1)


if __name__ == "__main__":
    main()
