#!/usr/bin/env python3
"""Linux ends of perf/bench-wan.sh: a TCP sink, and a Linux sender to compare
with dpstack's `tcp-send` app.

  wan_tcp.py sink --bind IP --port P [--cap-secs S] [--series F --label L]
      Accepts connections, reads and discards everything, checks it is the
      pattern tcp-send and tcp-client send (byte i is (7i + 13) mod 251),
      and closes its side once it has read the peer's FIN. One JSON line a
      connection on stdout:
        {"peer": "IP:PORT", "bytes": N, "secs": S, "ok": true,
         "capped": false, "mbit": M, "start_s": T}
      `secs` runs from accept to the peer's FIN (or the cap): `mbit` is the
      goodput the sink saw; a line {"accepted": "IP:PORT"} at each accept
      before it. A pattern mismatch resets the connection
      (ok false); so does a connection that is still open --cap-secs after
      accept (capped true), so that a transfer too slow for the run's time
      budget still gives a goodput, as measured up to the cap. With
      --series, every connection's goodput per 100 ms goes to F as CSV
      lines `L ADDR,SECONDS,MBIT` (ADDR: the peer's address and port;
      seconds from the first accept, as each line's start_s, the
      connection's accept), for perf/bench-wan.sh's plots.

  wan_tcp.py send --to IP:PORT --bytes N [--count K] [--cc cubic]
                  [--sample-ms MS --sample-out F --label L] [--go-file F]
      K transfers of N bytes, one after the other on new connections: each
      connects, sends the pattern, shuts down its side and waits for the
      sink's FIN. Its flow completion time (FCT) runs from connect() to
      that FIN, as tcp-send's. One JSON line at the end (the same figures as
      tcp-send's counters): count, completed, failed, fct_*_us (nearest
      rank), bytes_completed, elapsed_us, goodput_kbps; with --fcts, every
      transfer's FCT too (fcts_us), to merge runs side by side. With
      --sample-ms, a thread reads the socket's TCP_INFO (what `ss -tin`
      shows) that often and writes `L :LOCALPORT,SECONDS,CWND_KB` CSV lines
      to F (cwnd times the MSS; seconds from the first connect). With
      --go-file, it says {"waiting": F} and starts once F exists (to start
      together with others).

  wan_tcp.py echo-server --bind IP --port P
      Linux TCP echo: every byte of every connection back (a thread each).

  wan_tcp.py echo-client --to IP:PORT --bytes N [--timeout S]
      One connection: sends N bytes of the pattern while reading them back
      and checking them; one JSON line: bytes, secs (connect to the last
      byte back), goodput in Mbit/s (N / secs), ok.

  wan_tcp.py fairness FILE LABEL ADDR-PREFIX...  (for perf/bench-wan.sh)
      The sink's lines in FILE as one JSON object: per-flow goodput, Jain's
      fairness index, and each ADDR-PREFIX group's share of the total.

  wan_tcp.py median-run FILE ROW STACK     (for perf/bench-wan.sh)
      The run number of STACK's median run of ROW (bulk: by goodput; fair:
      by Jain's index) among FILE's JSON lines.

  wan_tcp.py second-goodputs CSV           (for perf/bench-wan.sh)
      A sink's --series of one connection as JSON: its goodput in each
      whole second (Mbit/s; the last, partial one left out) and a 95%
      interval of their mean (Student's t): how far apart two transfers'
      goodputs must be for a run to tell them apart.

  wan_tcp.py dpstack-series FILE LABEL      (for perf/bench-wan.sh)
      tcp-send's `tcp-send-sample` lines in dpstack's output FILE as CSV
      `LABEL #TRANSFER,SECONDS,CWND_KB` on stdout.

  wan_tcp.py dpstack-final FILE       (for perf/bench-wan.sh)
      The tcp-send app's counters and the stack's TCP totals from the last
      `final` block of dpstack's output, as one JSON object.

  wan_tcp.py merge-fcts FILE...       (for perf/bench-wan.sh)
      Several `send --fcts` results as one (quantiles over all transfers).

  wan_tcp.py summary FILE             (for perf/bench-wan.sh)
      The measurements' JSON lines side by side, with dpstack/Linux ratios.
"""
import argparse
import json
import math
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time

PERIOD = 251
CHUNK = 1 << 20
PATTERN = bytes((i * 7 + 13) % 251 for i in range(CHUNK + PERIOD))


def reset(sock):
    """Close with RST (SO_LINGER 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class Conn:
    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = peer
        self.bytes = 0
        self.ok = True
        self.start = time.monotonic()
        # Bytes at the last goodput sample (--series).
        self.sampled = 0


def sink(args):
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((args.bind, args.port))
    lsock.listen(1024)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    pat = memoryview(PATTERN)
    conns = {}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    series = open(args.series, "w") if args.series else None
    every = 0.1
    epoch = [None]
    next_tick = [0.0]
    print(json.dumps({"listening": f"{args.bind}:{args.port}"}), flush=True)

    def sample(c, now, dt):
        """One connection's goodput since its last sample."""
        if series and dt > 0:
            mbit = (c.bytes - c.sampled) * 8 / dt / 1e6
            series.write(f"{args.label} {c.peer},{now - epoch[0]:.3f},{mbit:.3f}\n")
        c.sampled = c.bytes

    def tick(now):
        """Every open connection's goodput over the last 100 ms."""
        if not series or epoch[0] is None or now < next_tick[0]:
            return
        for c in conns.values():
            sample(c, now, now - max(c.start, next_tick[0] - every))
        next_tick[0] += every * (1 + int((now - next_tick[0]) / every))

    def done(c, capped=False):
        secs = time.monotonic() - c.start
        sample(c, time.monotonic(), time.monotonic() - max(c.start, next_tick[0] - every))
        sel.unregister(c.sock)
        del conns[c.sock.fileno()]
        if c.ok and not capped:
            c.sock.close()
        else:
            reset(c.sock)
        mbit = c.bytes * 8 / secs / 1e6 if secs > 0 else 0.0
        print(
            json.dumps(
                {
                    "peer": c.peer,
                    "bytes": c.bytes,
                    "secs": round(secs, 6),
                    "ok": c.ok,
                    "capped": capped,
                    "mbit": round(mbit, 3),
                    "start_s": round(c.start - epoch[0], 6),
                }
            ),
            flush=True,
        )

    while not stop:
        wait = 0.1
        if series and epoch[0] is not None:
            wait = min(wait, max(0.0, next_tick[0] - time.monotonic()))
        try:
            events = sel.select(timeout=wait)
        except InterruptedError:
            continue
        for key, _ in events:
            if key.data is None:
                while True:
                    try:
                        s, (ip, port) = lsock.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    s.setblocking(False)
                    c = Conn(s, f"{ip}:{port}")
                    if epoch[0] is None:
                        epoch[0] = c.start
                        next_tick[0] = c.start + every
                    print(json.dumps({"accepted": c.peer}), flush=True)
                    conns[s.fileno()] = c
                    sel.register(s, selectors.EVENT_READ, c)
                continue
            c = key.data
            try:
                n = c.sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                c.ok = False
                done(c)
                continue
            if n == 0:
                done(c)
                continue
            o = c.bytes % PERIOD
            if mv[:n] != pat[o : o + n]:
                c.ok = False
                c.bytes += n
                done(c)
                continue
            c.bytes += n
        if args.cap_secs:
            now = time.monotonic()
            for c in [c for c in conns.values() if now - c.start > args.cap_secs]:
                done(c, capped=True)
        tick(time.monotonic())
    if series:
        series.close()


def nearest_rank(sorted_values, q):
    if not sorted_values:
        return 0
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def quantile_ci(sorted_values, q):
    """A distribution-free 95% confidence interval for the q-quantile: the
    values at the ranks dpstack's tcp-send uses (quantile_ci_ranks in
    src/app/builtin.rs; binomial count below the quantile, taken as normal)."""
    n = len(sorted_values)
    if n == 0:
        return 0, 0
    half = 1.96 * math.sqrt(n * q * (1 - q))
    hi = min(math.ceil(n * q + half) + 1, n)
    lo = min(max(math.floor(n * q - half), 1), hi)
    return sorted_values[lo - 1], sorted_values[hi - 1]


# struct tcp_info (linux/tcp.h): 8 bytes of u8 fields, then u32s. The
# offsets of the two sampled: the MSS and the window in segments.
TCPI_SND_MSS, TCPI_SND_CWND = 16, 80
# struct tcp_info's chrono counters (Linux 4.10+, us): the time the socket
# had data in flight (busy), and of that, limited by the peer's window or
# by its own send buffer (the application not writing fast enough); the
# rest of busy is cwnd-limited.
TCPI_BUSY_TIME, TCPI_RWND_LIMITED, TCPI_SNDBUF_LIMITED = 168, 176, 184
# ... and the segments it retransmitted (tcpi_total_retrans).
TCPI_TOTAL_RETRANS = 100


def tcp_chrono(sock):
    """The socket's busy / rwnd-limited / sndbuf-limited time (ms) and its
    retransmitted segments, or None."""
    try:
        b = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 192)
    except OSError:
        return None
    if len(b) < TCPI_SNDBUF_LIMITED + 8:
        return None
    busy, rwnd, sndbuf = (
        struct.unpack_from("Q", b, o)[0] // 1000
        for o in (TCPI_BUSY_TIME, TCPI_RWND_LIMITED, TCPI_SNDBUF_LIMITED)
    )
    (retrans,) = struct.unpack_from("I", b, TCPI_TOTAL_RETRANS)
    return {
        "busy_ms": busy,
        "rwnd_limited_ms": rwnd,
        "sndbuf_limited_ms": sndbuf,
        "retransmitted": retrans,
    }


class InfoSampler(threading.Thread):
    """Reads one socket's TCP_INFO every `ms` while it is set, as CSV."""

    def __init__(self, ms, out, label):
        super().__init__(daemon=True)
        self.every = ms / 1000
        self.out = open(out, "w")
        self.label = label
        self.sock = None
        self.epoch = None
        self.lock = threading.Lock()

    def watch(self, sock):
        with self.lock:
            self.sock = sock
            if self.epoch is None:
                self.epoch = time.monotonic()

    def run(self):
        nxt = time.monotonic()
        while True:
            nxt += self.every
            time.sleep(max(0.0, nxt - time.monotonic()))
            with self.lock:
                s = self.sock
                if s is None:
                    continue
                try:
                    port = s.getsockname()[1]
                    b = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
                except OSError:
                    continue
            (mss,) = struct.unpack_from("I", b, TCPI_SND_MSS)
            (cwnd,) = struct.unpack_from("I", b, TCPI_SND_CWND)
            t = time.monotonic() - self.epoch
            self.out.write(f"{self.label} :{port},{t:.3f},{cwnd * mss / 1000:.1f}\n")
            self.out.flush()


def send(args):
    sampler = None
    if args.sample_ms:
        sampler = InfoSampler(args.sample_ms, args.sample_out, args.label)
        sampler.start()
    if args.go_file:
        print(json.dumps({"waiting": args.go_file}), flush=True)
    while args.go_file and not os.path.exists(args.go_file):
        time.sleep(0.005)
    ip, port = args.to.rsplit(":", 1)
    dst = (ip, int(port))
    pat = memoryview(PATTERN)
    fcts = []
    # Each transfer's chrono counters, for single transfers (a fair flow).
    chronos = []
    failed = 0
    first = last = None
    for _ in range(args.count):
        t0 = time.monotonic()
        first = first if first is not None else t0
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if args.cc:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, args.cc.encode())
            s.settimeout(args.timeout)
            s.connect(dst)
            if sampler:
                sampler.watch(s)
            sent = 0
            while sent < args.bytes:
                o = sent % PERIOD
                n = min(args.bytes - sent, CHUNK)
                sent += s.send(pat[o : o + n])
            s.shutdown(socket.SHUT_WR)
            while True:
                d = s.recv(4096)
                if not d:
                    break
            t1 = time.monotonic()
            chronos.append(tcp_chrono(s))
            fcts.append(round((t1 - t0) * 1e6))
            last = t1
            if sampler:
                sampler.watch(None)
            s.close()
        except OSError:
            failed += 1
            chronos.append(tcp_chrono(s))
            if sampler:
                sampler.watch(None)
            reset(s)
    fcts.sort()
    completed = len(fcts)
    elapsed = round((last - first) * 1e6) if last is not None else 0
    done = completed * args.bytes
    print(
        json.dumps(
            {
                "count": args.count,
                "completed": completed,
                "failed": failed,
                "bytes_completed": done,
                "elapsed_us": elapsed,
                "goodput_kbps": done * 8 * 1000 // elapsed if elapsed else 0,
                "fct_min_us": fcts[0] if fcts else 0,
                "fct_p50_us": nearest_rank(fcts, 0.5),
                "fct_p90_us": nearest_rank(fcts, 0.9),
                "fct_p99_us": nearest_rank(fcts, 0.99),
                "fct_max_us": fcts[-1] if fcts else 0,
                "fct_mean_us": sum(fcts) // completed if completed else 0,
                **({"fcts_us": fcts} if args.fcts else {}),
                **({"chrono": chronos[0]} if args.count == 1 and chronos else {}),
            }
        ),
        flush=True,
    )


def echo_server(args):
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((args.bind, args.port))
    lsock.listen(64)

    def serve(c):
        buf = bytearray(CHUNK)
        try:
            while True:
                n = c.recv_into(buf)
                if n == 0:
                    break
                c.sendall(memoryview(buf)[:n])
        except OSError:
            pass
        c.close()

    print(json.dumps({"listening": f"{args.bind}:{args.port}"}), flush=True)
    while True:
        c, _ = lsock.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def echo_client(args):
    ip, port = args.to.rsplit(":", 1)
    pat = memoryview(PATTERN)
    buf = bytearray(CHUNK)
    t0 = time.monotonic()
    s = socket.create_connection((ip, int(port)), timeout=args.timeout)
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    sent = got = 0
    ok = True
    deadline = t0 + args.timeout
    while got < args.bytes and ok and time.monotonic() < deadline:
        for _, ev in sel.select(timeout=0.5):
            if ev & selectors.EVENT_WRITE and sent < args.bytes:
                o = sent % PERIOD
                try:
                    sent += s.send(pat[o : o + min(args.bytes - sent, 65536)])
                except BlockingIOError:
                    pass
                if sent == args.bytes:
                    sel.modify(s, selectors.EVENT_READ)
            if ev & selectors.EVENT_READ:
                try:
                    n = s.recv_into(buf)
                except BlockingIOError:
                    continue
                if n == 0:
                    ok = False
                    break
                o = got % PERIOD
                if buf[:n] != PATTERN[o : o + n]:
                    ok = False
                got += n
    secs = time.monotonic() - t0
    s.close()
    ok = ok and got == args.bytes
    print(json.dumps({"bytes": got, "secs": round(secs, 4), "ok": ok,
                      "mbit": round(got * 8 / secs / 1e6, 2) if secs > 0 else 0}), flush=True)


def jain(xs):
    """Jain's fairness index: 1 when all are equal, 1/n when one has all."""
    return sum(xs) ** 2 / (len(xs) * sum(x * x for x in xs)) if xs and any(xs) else 0.0


# Student's t, two-sided 95%, by degrees of freedom (1-30); 1.96 beyond.
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
       2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
       2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def mean_ci(xs):
    """The mean of xs and a 95% interval for it (t over n - 1 degrees)."""
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, m, m
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    h = (T95[n - 2] if n - 1 <= len(T95) else 1.96) * sd / math.sqrt(n)
    return m, m - h, m + h


def second_goodputs(args):
    # Each sample is the goodput since the one before (about 100 ms, more
    # when the sink was late): megabits per sample, summed by the second
    # its end falls in; whole seconds only.
    megabits, last = {}, None
    for line in open(args.file):
        parts = line.strip().rsplit(",", 2)
        if len(parts) != 3:
            continue
        t, mbit = float(parts[1]), float(parts[2])
        dt = t - last if last is not None else min(t, 0.1)
        last = t
        sec = int(max(t - 1e-6, 0.0))  # a sample ending at 1.000 s is the first second's
        megabits[sec] = megabits.get(sec, 0.0) + mbit * max(dt, 0.0)
    secs = [megabits.get(i, 0.0) for i in range(int(last))] if last is not None else []
    out = {"second_mbit": [round(x, 2) for x in secs]}
    if secs:
        m, lo, hi = mean_ci(secs)
        out.update({"second_mean_mbit": round(m, 2), "second_ci_mbit": [round(lo, 2), round(hi, 2)]})
    print(json.dumps(out))


def fairness(args):
    rows = [json.loads(l) for l in open(args.file) if l.startswith('{"peer')]
    flows = [{"peer": r["peer"], "mbit": r["mbit"], "secs": r["secs"], "bytes": r["bytes"],
              "ok": r["ok"]} for r in rows]
    total = sum(f["mbit"] for f in flows)
    out = {"flows": flows, "jain": round(jain([f["mbit"] for f in flows]), 4),
           "total_mbit": round(total, 2)}
    for prefix in args.groups:
        name, addr = prefix.split("=", 1)
        mine = [f["mbit"] for f in flows if f["peer"].startswith(addr + ":")]
        out[f"{name}_mbit"] = round(sum(mine), 2)
        out[f"{name}_flows"] = len(mine)
        out[f"{name}_share"] = round(sum(mine) / total, 4) if total else 0.0
    print(json.dumps(out))


def dpstack_series(args):
    for line in open(args.file):
        if not line.startswith("tcp-send-sample "):
            continue
        kv = dict(x.split("=", 1) for x in line.split()[1:])
        print(f"{args.label} #{kv['transfer']},{int(kv['t_us']) / 1e6:.3f},"
              f"{int(kv['cwnd']) / 1000:.1f}")


def dpstack_final(args):
    app, total = {}, {}
    with open(args.file) as f:
        for line in f:
            w = line.split()
            if len(w) < 2 or w[0] != "final":
                continue
            kv = dict(x.split("=", 1) for x in w[2:] if "=" in x)
            if w[1] == "core=total":
                total = kv
            elif len(w) > 2 and w[2].startswith("app=tcp-send:"):
                # Summed over cores (1 lcore in the benchmark).
                for k, v in kv.items():
                    if k == "app":
                        continue
                    if k.startswith("fct_") or k in ("elapsed_us", "goodput_kbps"):
                        app[k] = max(app.get(k, 0), int(v))
                    else:
                        app[k] = app.get(k, 0) + int(v)
    keys = ("tcp_retransmits", "tcp_fast_retransmits", "tcp_rto", "tcp_syn_retransmits",
            "tcp_tail_loss_probes", "tcp_rtt_cache_hits", "tcp_tx_segments", "drop_queue_full",
            "drop_no_buffer")
    out = dict(app)
    out.update({k: int(total[k]) for k in keys if k in total})
    print(json.dumps(out))


def merge_fcts(args):
    fcts, count, completed, failed, done = [], 0, 0, 0, 0
    for name in args.files:
        with open(name) as f:
            r = json.loads(f.read().strip().splitlines()[-1])
        fcts += r.get("fcts_us", [])
        count += r["count"]
        completed += r["completed"]
        failed += r["failed"]
        done += r["bytes_completed"]
    fcts.sort()
    print(json.dumps({
        "count": count, "completed": completed, "failed": failed, "bytes_completed": done,
        "fct_min_us": fcts[0] if fcts else 0,
        "fct_p50_us": nearest_rank(fcts, 0.5),
        "fct_p90_us": nearest_rank(fcts, 0.9),
        "fct_p99_us": nearest_rank(fcts, 0.99),
        "fct_p99_lo_us": quantile_ci(fcts, 0.99)[0],
        "fct_p99_hi_us": quantile_ci(fcts, 0.99)[1],
        "fct_max_us": fcts[-1] if fcts else 0,
        "fct_mean_us": sum(fcts) // len(fcts) if fcts else 0,
    }))


def read_rows(path):
    with open(path) as f:
        return [json.loads(l) for l in (line.strip() for line in f) if l.startswith("{")]


def median_of_runs(rows, row, stack, loss=None):
    """The median run of ROW for STACK (at LOSS): by goodput for a bulk
    transfer or an echo, by Jain's index for a set of flows; of an even number, the
    lower of the middle two. And every run's figure, in run order."""
    runs = [r for r in rows if r.get("row") == row and r.get("stack") == stack
            and (loss is None or r.get("loss_pct") == loss)]
    if not runs:
        return None, []
    key = {"fair": lambda r: r["jain"],
           # A failed echo counts as no goodput (as the report counts it).
           "echo": lambda r: r["mbit"] if r.get("ok") else 0.0}.get(row, lambda r: r["goodput_mbit"])
    ordered = sorted(runs, key=key)
    return ordered[(len(ordered) - 1) // 2], [key(r) for r in runs]


def median_run(args):
    m, _ = median_of_runs(read_rows(args.file), args.row, args.stack)
    if m:
        print(m.get("run", 1))


def summary(args):
    rows = read_rows(args.file)
    def find(row, stack, loss):
        if row in ("bulk", "fair", "echo"):
            return median_of_runs(rows, row, stack, loss)[0]
        return next((r for r in rows if r.get("row") == row and r.get("stack") == stack
                     and r.get("loss_pct") == loss), None)
    def ratio(a, b):
        return f"{a / b:.2f}" if a and b else "n/a"
    print("summary: goodput, one transfer, Mbit/s (sink-side; * = capped at the time limit; "
          "each stack's median run)")
    print(f"  {'loss %':>7} {'dpstack':>10} {'Linux':>10} {'dpstack/Linux':>14}")
    for loss in sorted({r["loss_pct"] for r in rows if r.get("row") == "bulk"}):
        d, l = find("bulk", "dpstack", loss), find("bulk", "linux", loss)
        def g(r):
            if not r:
                return "-", None
            return f"{r['goodput_mbit']:.1f}{'*' if r['capped'] else ''}", r["goodput_mbit"]
        (ds, dv), (ls, lv) = g(d), g(l)
        print(f"  {loss:>7} {ds:>10} {ls:>10} {ratio(dv, lv):>14}")
    for r in rows:
        if r.get("row") != "fct" or r.get("stack") != "dpstack":
            continue
        l = find("fct", "linux", r["loss_pct"])
        print(f"summary: {r['transfers']} transfers of {r['bytes']} bytes at {r['loss_pct']}% loss, "
              "FCT in ms (connect to the sink's FIN)")
        print(f"  {'':>7} {'dpstack':>10} {'Linux':>10} {'dpstack/Linux':>14}")
        for q in ("p50", "p99"):
            dv = r[f"fct_{q}_ms"]
            lv = l[f"fct_{q}_ms"] if l else None
            print(f"  {q:>7} {dv:>10.1f} {lv if lv is not None else '-':>10} {ratio(dv, lv):>14}")
        print(f"  {'failed':>7} {r['failed']:>10} {l['failed'] if l else '-':>10}")
    if any(r.get("row") == "fair" for r in rows):
        print("summary: 4 flows through one bottleneck, goodput per flow in Mbit/s (sink-side; "
              "each set's median run, and every run's index)")
        for run in ("dpstack", "linux", "mixed"):
            r, all_runs = median_of_runs(rows, "fair", run)
            if not r:
                continue
            flows = " ".join(f"{f['mbit']:.1f}" for f in r["flows"])
            every = ", ".join(f"{j:.3f}" for j in all_runs)
            line = f"  {run:>8}: Jain {r['jain']:.3f} ({every}), total {r['total_mbit']:.1f}; flows {flows}"
            if run == "mixed":
                d, l = r.get("dpstack_mbit", 0), r.get("linux_mbit", 0)
                line += f"; dpstack {d:.1f} vs Linux {l:.1f} ({ratio(d, l)})"
            print(line)
    echo = [r for r in rows if r.get("row") == "echo"]
    if echo:
        print("summary: echo over a plain veth, 1% of the client's segments lost, time and goodput "
              "(each stack's median run)")
        print(f"  {'server loss %':>14} {'dpstack':>18} {'Linux':>18} {'dpstack/Linux (goodput)':>24}")
        for loss in sorted({r["loss_pct"] for r in echo}):
            d, l = find("echo", "dpstack", loss), find("echo", "linux", loss)
            def e(r):
                return f"{r['secs']:.2f} s {r['mbit']:.0f} Mb/s" if r and r["ok"] else "failed"
            print(f"  {loss:>14} {e(d):>18} {e(l):>18} "
                  f"{ratio(d and d['mbit'], l and l['mbit']):>24}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("sink")
    k.add_argument("--bind", default="0.0.0.0")
    k.add_argument("--port", type=int, required=True)
    k.add_argument("--cap-secs", type=float, default=0.0)
    k.add_argument("--series", help="goodput per 100 ms, per connection, as CSV")
    k.add_argument("--label", default="sink")
    s = sub.add_parser("send")
    s.add_argument("--to", required=True)
    s.add_argument("--bytes", type=int, required=True)
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--cc", default="cubic")
    s.add_argument("--timeout", type=float, default=120.0)
    s.add_argument("--fcts", action="store_true", help="list every FCT")
    s.add_argument("--sample-ms", type=float, default=0.0, help="sample TCP_INFO this often")
    s.add_argument("--sample-out", default="/dev/null")
    s.add_argument("--label", default="linux")
    s.add_argument("--go-file", help="start once this file exists")
    e = sub.add_parser("echo-server")
    e.add_argument("--bind", default="0.0.0.0")
    e.add_argument("--port", type=int, required=True)
    c = sub.add_parser("echo-client")
    c.add_argument("--to", required=True)
    c.add_argument("--bytes", type=int, required=True)
    c.add_argument("--timeout", type=float, default=60.0)
    f = sub.add_parser("fairness")
    f.add_argument("file")
    f.add_argument("groups", nargs="*", help="NAME=ADDR: the share of flows from ADDR")
    sg = sub.add_parser("second-goodputs")
    sg.add_argument("file")
    ds = sub.add_parser("dpstack-series")
    ds.add_argument("file")
    ds.add_argument("label")
    d = sub.add_parser("dpstack-final")
    d.add_argument("file")
    m = sub.add_parser("merge-fcts")
    m.add_argument("files", nargs="+")
    y = sub.add_parser("summary")
    y.add_argument("file")
    mr = sub.add_parser("median-run", help="the run number of ROW's median run for STACK")
    mr.add_argument("file")
    mr.add_argument("row")
    mr.add_argument("stack")
    a = p.parse_args()
    {"sink": sink, "send": send, "dpstack-final": dpstack_final, "merge-fcts": merge_fcts,
     "summary": summary, "echo-server": echo_server, "echo-client": echo_client,
     "fairness": fairness, "dpstack-series": dpstack_series,
     "second-goodputs": second_goodputs, "median-run": median_run}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
