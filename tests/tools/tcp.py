#!/usr/bin/env python3
"""TCP checks against dpstack's tcp-echo and http apps, run inside the test host.

    tcp.py stream HOST PORT BYTES          send BYTES through tcp-echo while reading
                                           the echo; sha256 of both must be equal
    tcp.py concurrent HOST PORT N BYTES    N connections at once, each echoes BYTES
    tcp.py refused HOST PORT               connect must fail with ECONNREFUSED (RST)
    tcp.py http-pipeline HOST PORT BODY    3 pipelined GETs, a HEAD, a POST (405),
                                           then a malformed request (400, closed)
    tcp.py echo-server PORT COUNT          a Linux listener: echo COUNT connections,
                                           then print what it saw
    tcp.py hostile HOST PORT IFACE         hostile segments into a live connection
    tcp.py echo-later PORT DELAY           a Linux listener: one connection, read it to
                                           its FIN, wait DELAY seconds, send it all
                                           back and close; print what it saw

Prints one JSON object; exits non-zero when the check fails. Addresses must be
in 198.18.0.0/15.
"""
import hashlib
import json
import os
import select
import socket
import sys
import threading
import time


def check_addr(host):
    o = [int(x) for x in host.split(".")]
    if not (o[0] == 198 and o[1] in (18, 19)):
        raise SystemExit("refusing address outside 198.18.0.0/15: " + host)


def fail(msg, **kw):
    kw["error"] = msg
    print(json.dumps(kw))
    sys.exit(1)


def pattern(n, seed=1):
    """n deterministic pseudo-random bytes."""
    out = bytearray()
    block = hashlib.sha256(b"dpstack-%d" % seed).digest()
    i = 0
    while len(out) < n:
        block = hashlib.sha256(block + i.to_bytes(4, "big")).digest()
        out += block * 64
        i += 1
    return bytes(out[:n])


def stream(host, port, total, timeout=600):
    data = pattern(min(total, 1 << 22))
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sent_hash = hashlib.sha256()
    recv_hash = hashlib.sha256()
    got = 0
    err = []

    def writer():
        try:
            left = total
            while left > 0:
                chunk = data[: min(left, len(data))]
                s.sendall(chunk)
                sent_hash.update(chunk)
                left -= len(chunk)
            s.shutdown(socket.SHUT_WR)
        except Exception as e:  # noqa: BLE001
            err.append(repr(e))

    t = threading.Thread(target=writer)
    start = time.time()
    t.start()
    s.settimeout(timeout)
    while True:
        try:
            b = s.recv(1 << 20)
        except Exception as e:  # noqa: BLE001
            err.append(repr(e))
            break
        if not b:
            break
        recv_hash.update(b)
        got += len(b)
    t.join()
    secs = time.time() - start
    s.close()
    res = {
        "sent": total,
        "received": got,
        "sha_sent": sent_hash.hexdigest(),
        "sha_received": recv_hash.hexdigest(),
        "secs": round(secs, 3),
        "mbit_s": round(total * 8 / secs / 1e6, 1) if secs > 0 else 0,
        "errors": err,
    }
    if got != total or res["sha_sent"] != res["sha_received"] or err:
        fail("echo differs", **res)
    print(json.dumps(res))


def concurrent(host, port, n, size):
    data = pattern(size, seed=7)
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((host, port))
        socks.append(s)
    state = {s: {"out": 0, "in": bytearray(), "done": False} for s in socks}
    deadline = time.time() + 60
    connected = set()
    while time.time() < deadline and not all(v["done"] for v in state.values()):
        live = [s for s in socks if not state[s]["done"]]
        w = [s for s in live if state[s]["out"] < size]
        r, wr, _ = select.select(live, w, [], 1.0)
        for s in wr:
            st = state[s]
            try:
                k = s.send(data[st["out"]:])
                st["out"] += k
                connected.add(s)
                if st["out"] == size:
                    s.shutdown(socket.SHUT_WR)
            except BlockingIOError:
                pass
            except OSError as e:
                fail("send: %r" % e)
        for s in r:
            st = state[s]
            try:
                b = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                fail("recv: %r" % e)
            if not b:
                st["done"] = True
            else:
                st["in"] += b
    done = sum(1 for v in state.values() if v["done"] and bytes(v["in"]) == data)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    res = {"connections": n, "complete": done, "ports": ports}
    if done != n:
        fail("not all connections completed", **res)
    print(json.dumps(res))


def refused(host, port):
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
    except ConnectionRefusedError:
        print(json.dumps({"refused": True}))
        return
    except Exception as e:  # noqa: BLE001
        fail("expected ECONNREFUSED, got %r" % e)
    fail("connected to a closed port")


def read_response(f):
    status = f.readline()
    if not status:
        return None, {}, b""
    headers = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    return status.decode().strip(), headers, f


def body_pattern(n):
    p = b"0123456789abcdefghijklmnopqrstuvwxyz\n"
    return (p * (n // len(p) + 1))[:n]


def http_pipeline(host, port, body):
    s = socket.create_connection((host, port), timeout=5)
    req = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    s.sendall(req * 3 + b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
              + b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    f = s.makefile("rb")
    seen = []
    for i in range(5):
        status, h, _ = read_response(f)
        if status is None:
            fail("connection closed after %d responses" % i, seen=seen)
        n = int(h.get("content-length", "-1"))
        if i < 3:
            got = f.read(n)
            if status != "HTTP/1.1 200 OK" or got != body_pattern(body):
                fail("bad pipelined response %d" % i, status=status, length=n)
        elif i == 3:
            if status != "HTTP/1.1 200 OK" or n != body:
                fail("bad HEAD response", status=status)
        else:
            if not status.startswith("HTTP/1.1 405"):
                fail("POST not refused", status=status)
            f.read(n)
        seen.append(status)
    # A malformed request: 400, then the server closes.
    s.sendall(b"GARBAGE\r\n\r\n")
    status, h, _ = read_response(f)
    if status is None or not status.startswith("HTTP/1.1 400"):
        fail("no 400 for a malformed request", status=status)
    f.read(int(h.get("content-length", "0")))
    rest = f.read()
    if rest != b"":
        fail("data after 400", rest=len(rest))
    seen.append(status)
    print(json.dumps({"responses": seen}))


def echo_server(port, count):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(256)
    srv.settimeout(30)
    seen = []
    lock = threading.Lock()

    def serve(c, addr):
        h = hashlib.sha256()
        n = 0
        c.settimeout(30)
        while True:
            b = c.recv(65536)
            if not b:
                break
            h.update(b)
            n += len(b)
            c.sendall(b)
        c.close()
        with lock:
            seen.append({"peer": "%s:%d" % addr, "bytes": n, "sha": h.hexdigest()})

    threads = []
    for _ in range(count):
        c, addr = srv.accept()
        t = threading.Thread(target=serve, args=(c, addr))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    print(json.dumps({"connections": seen}))


def echo_later(port, delay):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(1)
    srv.settimeout(30)
    c, addr = srv.accept()
    c.settimeout(30)
    data = bytearray()
    while True:
        b = c.recv(65536)
        if not b:
            break
        data += b
    time.sleep(delay)
    c.sendall(data)
    c.close()
    print(json.dumps({"peer": "%s:%d" % addr, "bytes": len(data)}))


def hostile(host, port, iface):
    """Inject hostile segments into a live connection and check the answers
    against RFC 9293 and RFC 5961; the connection must survive them."""
    from scapy.all import Ether, IP, TCP, Raw, AsyncSniffer, sendp, conf  # noqa: E402
    conf.verb = 0
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(b"hello")
    if s.recv(100) != b"hello":
        fail("no echo before the test")
    lport = s.getsockname()[1]
    time.sleep(0.3)
    # Learn the sequence numbers from the wire: our last segment's.
    sn = AsyncSniffer(iface=iface, filter="tcp and port %d" % port, store=True)
    sn.start()
    time.sleep(0.3)
    s.sendall(b"sync")
    if s.recv(100) != b"sync":
        fail("no echo of sync")
    time.sleep(0.3)
    pkts = sn.stop()
    ours = [p for p in pkts if p.haslayer(TCP) and p[TCP].sport == lport]
    theirs = [p for p in pkts if p.haslayer(TCP) and p[TCP].dport == lport]
    if not ours or not theirs:
        fail("could not observe the connection", n=len(pkts))
    last_ours = ours[-1]
    last_theirs = theirs[-1]
    host_nxt = last_theirs[TCP].ack  # what dpstack expects next from us
    dp_nxt = last_ours[TCP].ack  # what we expect next from dpstack
    mac_src = last_ours[Ether].src
    mac_dst = last_ours[Ether].dst
    src = last_ours[IP].src

    def probe(name, tcp, payload=b"", fix=None):
        pkt = Ether(src=mac_src, dst=mac_dst) / IP(src=src, dst=host) / tcp
        if payload:
            pkt = pkt / Raw(payload)
        raw = bytes(pkt)
        if fix:
            raw = fix(raw)
        sn = AsyncSniffer(iface=iface, store=True,
                          lfilter=lambda p: p.haslayer(TCP) and p[TCP].dport == lport
                          and p[IP].src == host)
        sn.start()
        time.sleep(0.1)
        sendp(raw, iface=iface)
        time.sleep(0.3)
        got = sn.stop()
        return [(str(p[TCP].flags), p[TCP].seq, p[TCP].ack) for p in got]

    base = dict(sport=lport, dport=port, window=1000)
    res = {}
    # An ACK-only answer: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
    ack_back = [("A", dp_nxt, host_nxt)]

    def bad_csum(raw):
        b = bytearray(raw)
        b[14 + 20 + 16] ^= 0xFF
        return bytes(b)

    def bad_opt(raw):
        # Replace the 4-byte option area (NOP NOP NOP NOP) with kind 8 len 1.
        b = bytearray(raw)
        b[14 + 20 + 20:14 + 20 + 24] = bytes([8, 1, 1, 1])
        # Fix the checksum: recompute with scapy.
        p = Ether(bytes(b))
        del p[TCP].chksum
        return bytes(p)

    cases = [
        ("bad_checksum", TCP(seq=host_nxt, ack=dp_nxt, flags="PA", **base), b"XXXX",
         bad_csum, []),
        ("data_beyond_window", TCP(seq=(host_nxt + 50_000_000) % 2**32, ack=dp_nxt,
                                   flags="PA", **base), b"XXXX", None, ack_back),
        ("rst_in_window_wrong_seq", TCP(seq=(host_nxt + 100) % 2**32, flags="R", **base),
         b"", None, ack_back),
        ("rst_out_of_window", TCP(seq=(host_nxt + 50_000_000) % 2**32, flags="R", **base),
         b"", None, []),
        ("syn_in_window", TCP(seq=(host_nxt + 10) % 2**32, flags="S", **base), b"", None,
         ack_back),
        ("ack_of_unsent_data", TCP(seq=host_nxt, ack=(dp_nxt + 1_000_000) % 2**32,
                                   flags="PA", **base), b"XXXX", None, ack_back),
        ("syn_fin", TCP(seq=host_nxt, flags="SF", **base), b"", None, []),
        ("syn_rst", TCP(seq=host_nxt, flags="SR", **base), b"", None, []),
        ("no_flags", TCP(seq=host_nxt, flags="", **base), b"XXXX", None, []),
        ("bad_option_length", TCP(seq=host_nxt, ack=dp_nxt, flags="PA",
                                  options=[("NOP", None)] * 4, **base), b"XXXX", bad_opt, []),
        ("old_ack_far_behind", TCP(seq=host_nxt, ack=(dp_nxt - 100_000_000) % 2**32,
                                   flags="PA", **base), b"XXXX", None, ack_back),
    ]
    bad = {}
    for name, tcp, payload, fix, want in cases:
        got = probe(name, tcp, payload, fix)
        res[name] = got
        if got != want:
            bad[name] = {"got": got, "want": want}
    # The connection survived all of it.
    s.sendall(b"still alive")
    s.settimeout(5)
    echo = b""
    while len(echo) < 11:
        b = s.recv(100)
        if not b:
            break
        echo += b
    res["survived"] = echo == b"still alive"
    s.close()
    if bad or not res["survived"]:
        fail("unexpected answers", bad=bad, res=res)
    print(json.dumps(res))


def main():
    a = sys.argv[1:]
    if not a:
        raise SystemExit(__doc__)
    cmd = a[0]
    if cmd in ("stream", "concurrent", "refused", "http-pipeline", "hostile"):
        check_addr(a[1])
    if cmd == "stream":
        stream(a[1], int(a[2]), int(a[3]))
    elif cmd == "concurrent":
        concurrent(a[1], int(a[2]), int(a[3]), int(a[4]))
    elif cmd == "refused":
        refused(a[1], int(a[2]))
    elif cmd == "http-pipeline":
        http_pipeline(a[1], int(a[2]), int(a[3]))
    elif cmd == "echo-server":
        echo_server(int(a[1]), int(a[2]))
    elif cmd == "echo-later":
        echo_later(int(a[1]), float(a[2]))
    elif cmd == "hostile":
        hostile(a[1], int(a[2]), a[3])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
