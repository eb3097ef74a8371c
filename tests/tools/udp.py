#!/usr/bin/env python3
"""UDP client checks against dpstack's udp-echo, run inside the test host.

    udp.py sizes HOST PORT MIN MAX         echo of every payload size MIN..=MAX
    udp.py big HOST PORT SIZE COUNT        COUNT echoes of SIZE-byte datagrams
    udp.py flows HOST PORT FLOWS PER       FLOWS sockets at once, PER datagrams each
    udp.py refused HOST PORT               a connected socket must see ECONNREFUSED
    udp.py send HOST PORT COUNT SIZE       fire and forget (for udp-sink)
    udp.py echo-server HOST PORT SECONDS [HOLD_MS]
                                           a Linux echo server on HOST:PORT for
                                           SECONDS (for dpstack's udp-client);
                                           with HOLD_MS, requests are held that
                                           long and answered in one burst

Prints one JSON object; exits non-zero when the check fails. Each echo is
retried (up to 3 sends) only if no reply came within the timeout; every reply
is compared byte for byte. Addresses must be in 198.18.0.0/15.
"""
import json
import select
import socket
import sys


def check_addr(host):
    o = [int(x) for x in host.split(".")]
    if not (o[0] == 198 and o[1] in (18, 19)):
        raise SystemExit("refusing address outside 198.18.0.0/15: " + host)


def payload(size, salt):
    return bytes((i * 7 + salt) & 0xFF for i in range(size))


def echo_once(s, dest, data, tries=3, timeout=1.0):
    s.settimeout(timeout)
    for _ in range(tries):
        s.sendto(data, dest)
        try:
            while True:
                got, _ = s.recvfrom(70000)
                if got == data:
                    return "ok", 0
                # A late reply to an earlier probe: keep reading.
                if len(got) != len(data):
                    continue
                return "corrupt", 0
        except socket.timeout:
            continue
    return "lost", 0


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    check_addr(host)
    dest = (host, port)
    out = {"mode": mode}
    ok = True
    if mode == "sizes":
        lo, hi = int(sys.argv[4]), int(sys.argv[5])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        bad = []
        for size in range(lo, hi + 1):
            r, _ = echo_once(s, dest, payload(size, size))
            if r != "ok":
                bad.append((size, r))
        out.update(checked=hi - lo + 1, bad=bad[:20], nbad=len(bad))
        ok = not bad
    elif mode == "big":
        size, count = int(sys.argv[4]), int(sys.argv[5])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        good = 0
        results = []
        for i in range(count):
            r, _ = echo_once(s, dest, payload(size, i), timeout=2.0)
            results.append(r)
            good += r == "ok"
        out.update(count=count, good=good, results=results[:20])
        ok = good == count
    elif mode == "flows":
        flows, per = int(sys.argv[4]), int(sys.argv[5])
        socks = []
        for _ in range(flows):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("0.0.0.0", 0))
            s.setblocking(False)
            socks.append(s)
        want = {}
        for k in range(per):
            for f, s in enumerate(socks):
                data = ("flow%d-seq%d-" % (f, k)).encode() + payload(32, f + k)
                want[(f, data)] = True
                s.sendto(data, dest)
        got = 0
        corrupt = 0
        deadline = 5.0
        import time
        end = time.time() + deadline
        while want and time.time() < end:
            r, _, _ = select.select(socks, [], [], 0.2)
            for s in r:
                f = socks.index(s)
                while True:
                    try:
                        data, _ = s.recvfrom(2048)
                    except BlockingIOError:
                        break
                    if want.pop((f, data), None):
                        got += 1
                    else:
                        corrupt += 1
        per_flow = [0] * flows
        for (f, _) in want:
            per_flow[f] += 1
        out.update(flows=flows, sent=flows * per, answered=got, corrupt=corrupt,
                   ports=[s.getsockname()[1] for s in socks], missing_per_flow=per_flow)
        ok = got == flows * per and corrupt == 0
    elif mode == "refused":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(dest)
        s.settimeout(2.0)
        result = "no answer"
        for _ in range(3):
            s.send(b"anyone there?")
            try:
                s.recv(100)
                result = "answered"
                break
            except ConnectionRefusedError:
                result = "refused"
                break
            except socket.timeout:
                continue
        out.update(result=result)
        ok = result == "refused"
    elif mode == "send":
        count, size = int(sys.argv[4]), int(sys.argv[5])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(count):
            s.sendto(payload(size, i), dest)
        out.update(sent=count)
    elif mode == "echo-server":
        import time
        secs = float(sys.argv[4])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(dest)
        hold = float(sys.argv[5]) / 1000 if len(sys.argv) > 5 else 0.0
        echoed, peers, held, first = 0, set(), [], 0.0
        end = time.time() + secs
        while time.time() < end:
            wait = 0.2 if not held else max(0.0, first + hold - time.time())
            s.settimeout(wait if wait > 0 else None)
            if wait > 0:
                try:
                    data, src = s.recvfrom(65535)
                    if not held:
                        first = time.time()
                    held.append((data, src))
                    peers.add(src)
                except socket.timeout:
                    pass
            if held and time.time() >= first + hold:
                for data, src in held:
                    s.sendto(data, src)
                echoed += len(held)
                held = []
        out.update(echoed=echoed, peers=len(peers))
    else:
        raise SystemExit("unknown mode " + mode)
    print(json.dumps(out))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
