#!/usr/bin/env bash
# Keeps up like testpmd (issue 15): pktgen-dpdk over af_packet from a
# namespace host sends 64-byte UDP to the target for SECONDS at each rate,
# and counts what comes back; the target is, alternately, dpdk-testpmd
# --forward-mode=macswap and dpstack's udp-echo:7, each on one lcore alone
# on CPU 1, on the same af_packet port (dpskA) of a veth whose other end
# (dpskB) is in namespace dpskns. pktgen runs on CPU 0: it pins a spinning
# thread of its own to CPU 0 whatever its --lcores, so the target never
# shares that CPU.
#
#   perf/bench-keepup.sh [OUTDIR]          the sweep (default /tmp/dpskeepup)
#   perf/bench-keepup.sh --smoke OUTDIR    one short rate, one run
#
# Environment: RATES (packets per second, in order; default 148800 297600
# 595200 892800 1190400, 1 2 4 6 8% of the 10 Gbit/s af_packet reports),
# RUNS (2), SECS (5 s per measurement), PKTGEN (the binary, default
# /opt/pktgen/build/app/pktgen: docs/load-testing.md says how to build it).
# The sweep stops after the first rate where testpmd echoed less than 99%
# in some run, or where pktgen sent less than 10% more than at the rate
# before (its ceiling here, ~125 kpps asked for 148.8k: higher rates would
# measure nothing new); KEEP_GOING=1
# measures every rate of RATES.
#
# One JSON line per (target, rate, run) in OUTDIR/keepup.jsonl: what
# pktgen sent and got back (its port counters, read by
# perf/pktgen/rate-sweep.lua after it stopped and waited 1.5 s), the echoed
# fraction, the same from dpskB's kernel counters (over pktgen's whole run:
# they include its warm-up and ARP), the frames that reached dpskA but not
# the target (its af_packet ring drops: dpskA's rx_packets over the
# target's lifetime less the target's own RX count), and over the window
# in which pktgen sent (between the MARK lines rate-sweep.lua writes): how
# long the target's polling thread waited for its CPU
# (/proc/PID/task/TID/schedstat), who ran on CPU 1 instead (`sched`: perf
# sched_switch, perf/sched_gaps.py; SCHED_TRACE=0 leaves it out), and for
# dpstack its loop's stalls by side work and its long iterations
# (telemetry at both ends), besides its final `port ring_drops=`, stall
# counts and cycle histogram. Then one summary line per rate and the
# verdict (a "keepup-summary" JSON line and text on stderr).
#
# Without pktgen it says "not measured" and exits 0 (a machine without
# pktgen: make test runs perf/bench.sh --smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
PKTGEN=${PKTGEN:-/opt/pktgen/build/app/pktgen}
if [ "${1:-}" = "--smoke" ]; then
    OUT=${2:?OUTDIR}
    RATES=148800; RUNS=1; SECS=2
else
    OUT=${1:-/tmp/dpskeepup}
    RATES=${RATES:-148800 297600 595200 892800 1190400}; RUNS=${RUNS:-2}; SECS=${SECS:-5}
fi
K=$OUT/keepup
JSONL=$OUT/keepup.jsonl
mkdir -p "$K"
rm -f "$JSONL" "$K"/*
log() { echo "bench-keepup: $*" >&2; }
if [ ! -x "$PKTGEN" ]; then
    log "not measured: pktgen not found (docs/load-testing.md)"
    echo '{"row": "keepup-summary", "measured": false, "why": "pktgen not found (docs/load-testing.md)"}' >"$JSONL"
    exit 0
fi
# This script and what it runs (perf, telemetry reads, the shell's own
# polling) stay on CPU 0 with pktgen: CPU 1 is the target's alone. EAL pins
# the targets' lcores to CPU 1 itself.
taskset -pc 0 $$ >/dev/null
BIN=$PWD/target/release
[ -x "$BIN/dpstack" ] || cargo build --release -q -p dpstack
MEM="--in-memory"
[ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -ge 256 ] || MEM="--no-huge -m 512 --no-shconf"
EAL="--no-pci $MEM --log-level=lib.eal:warning"
NS=dpskns
# Who took CPU 1 in each window (perf's sched_switch; SCHED_TRACE=0: not).
SCHED_TRACE=${SCHED_TRACE:-1}
command -v perf >/dev/null || SCHED_TRACE=0
DUT=
FIFO=$K/stdin
rm -f "$FIFO"; mkfifo "$FIFO"; exec 8<>"$FIFO"
# One sweep at a time on this machine (the CPUs are the measurement).
exec 7>/tmp/dpskeepup.lock
flock 7
cleanup() {
    [ -n "$DUT" ] && { kill -TERM "$DUT" 2>/dev/null; wait "$DUT" 2>/dev/null || true; }
    DUT=
    ip netns del $NS 2>/dev/null || true
    ip link del dpskA 2>/dev/null || true
}
trap 'cleanup; rm -f "$FIFO"' EXIT
cleanup

ip netns add $NS
ip link add dpskA type veth peer name dpskB
ip link set dpskB netns $NS
sysctl -qw net.ipv6.conf.dpskA.disable_ipv6=1
ip netns exec $NS sysctl -qw net.ipv6.conf.dpskB.disable_ipv6=1
ip link set dpskA up; ip -n $NS link set dpskB up; ip -n $NS link set lo up
ethtool -K dpskA tx off >/dev/null; ip netns exec $NS ethtool -K dpskB tx off >/dev/null
MAC=$(cat /sys/class/net/dpskA/address)
VDEV=--vdev=net_af_packet0,iface=dpskA,qpairs=1

# Wait until the mark file says WHAT, or until pktgen (PID) has gone.
wait_mark() { # what pid
    for _ in $(seq 1500); do
        grep -q "^$1 " "$K/mark" 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 0
        sleep 0.04
    done
}
# dpstack's loop figures now (telemetry /dpstack/stats,0): the stalls by
# side work and the per-iteration histogram, cumulative; {} for testpmd.
figures() { # target
    [ "$1" = dpstack ] || { echo '{}'; return; }
    echo "/dpstack/stats,0" | timeout 10 dpdk-telemetry.py -f dpskdut 2>/dev/null \
        | python3 -c '
import json, sys
t = sys.stdin.read()
try:
    d = json.loads(t[t.index("{"):t.rindex("}") + 1])
except ValueError:
    d = {}
d = next(iter(d.values())) if d and "loop_iterations" not in d else d
print(json.dumps({k: v for k, v in d.items() if k.startswith(("loop_stalls_", "loop_cycles_"))
                  or k in ("loop_iterations", "tsc_hz")}))' || echo '{}'
}
mono() { python3 -c 'import time; print(time.monotonic())'; }
stat_a() { cat /sys/class/net/dpskA/statistics/rx_packets; }
stat_b() { ip netns exec $NS cat /sys/class/net/dpskB/statistics/"$1"; }
waited_ns() { awk '{print $2}' "/proc/$1/task/$2/schedstat" 2>/dev/null || echo 0; }

start_dpstack() {
    : >"$K/dut.txt"
    # shellcheck disable=SC2086
    $BIN/dpstack --lcores=0@1 $EAL --file-prefix dpskdut "$VDEV" -- \
        --ip 198.19.77.1/24 --app udp-echo:7 >"$K/dut.txt" 2>&1 &
    DUT=$!
    TID=$DUT
    for _ in $(seq 100); do grep -q 'dpstack: ready' "$K/dut.txt" && return 0; sleep 0.1; done
    cat "$K/dut.txt" >&2; return 1
}
start_testpmd() {
    : >"$K/dut.txt"
    # Its main lcore waits on stdin (a FIFO this script holds open, fd 8);
    # the forwarding lcore is its one worker thread; both on CPU 1.
    # shellcheck disable=SC2086
    dpdk-testpmd --lcores=0@1,1@1 $EAL --file-prefix dpskdut "$VDEV" -- \
        --forward-mode=macswap --nb-cores=1 --rxq=1 --txq=1 --auto-start \
        --stats-period 0 <&8 >"$K/dut.txt" 2>&1 &
    DUT=$!
    TID=
    for _ in $(seq 100); do
        grep -q 'Press enter to exit' "$K/dut.txt" 2>/dev/null && break; sleep 0.1
    done
    local t
    for t in /proc/"$DUT"/task/*; do
        grep -qE '^(rte|lcore)-worker' "$t/comm" 2>/dev/null && TID=$(basename "$t")
    done
    [ -n "$TID" ] || { cat "$K/dut.txt" >&2; return 1; }
}
stop_dut() { # signal
    kill -"$1" "$DUT" 2>/dev/null || true
    wait "$DUT" 2>/dev/null || true
    DUT=
}

# One measurement: TARGET RATE RUN; appends its JSON line.
measure() {
    local target=$1 rate=$2 run=$3 name=$1-$2-$3 pct a0 a1 b0 b1 c0 c1 w0 w1 t0 t1 sched=
    pct=$(python3 -c "import sys; print(f'{int(sys.argv[1]) / (10e9 / (84 * 8)) * 100:.4f}')" "$rate")
    "start_$target"
    a0=$(stat_a); b0=$(stat_b tx_packets); c0=$(stat_b rx_packets)
    rm -f "$K/mark"
    if [ "$SCHED_TRACE" = 1 ]; then
        # Started before pktgen (perf takes a while to start); the window
        # is cut out of it by time (CLOCK_MONOTONIC, as mono() reads).
        perf record -q -k CLOCK_MONOTONIC -e sched:sched_switch -C 1 \
            -o "$K/$name.perf" -- sleep $((SECS + 90)) >/dev/null 2>&1 &
        sched=$!
        sleep 1
    fi
    DUT_MAC=$MAC RATES=$pct SECS=$SECS LATENCY=0 SWEEP_OUT=$K/$name.sweep MARK=$K/mark \
        timeout $((SECS + 60)) ip netns exec $NS "$PKTGEN" --lcores='(0-1)@0' \
        --no-pci --file-prefix dpskpg --no-huge -m 1536 --no-shconf \
        --vdev=net_af_packet1,iface=dpskB -- -P -m 1.0 -f perf/pktgen/rate-sweep.lua \
        </dev/null >"$K/$name-pktgen.txt" 2>&1 &
    local pg=$! own= m0 m1
    # The window: from pktgen's start of sending to its stop (the marks
    # perf/pktgen/rate-sweep.lua writes), not its start-up.
    wait_mark start $pg
    w0=$(waited_ns "$DUT" "$TID"); t0=$(date +%s%N)
    m0=$(mono)
    f0=$(figures "$target")
    own=$(ls /proc/"$DUT"/task 2>/dev/null | tr '\n' ',')
    wait_mark stop $pg
    w1=$(waited_ns "$DUT" "$TID"); t1=$(date +%s%N)
    m1=$(mono)
    f1=$(figures "$target")
    if [ -n "$sched" ]; then
        kill -INT $sched 2>/dev/null || true; wait $sched 2>/dev/null || true
    fi
    wait $pg || true
    b1=$(stat_b tx_packets); c1=$(stat_b rx_packets)
    sleep 0.2
    a1=$(stat_a)
    if [ "$target" = dpstack ]; then stop_dut INT; else stop_dut TERM; fi
    cp "$K/dut.txt" "$K/$name-dut.txt"
    local gaps='{}'
    if [ -s "$K/$name.perf" ]; then
        gaps=$(perf script -i "$K/$name.perf" -F time,trace 2>/dev/null \
            | python3 perf/sched_gaps.py "$TID" "$own" "$m0" "$m1" || echo '{}')
    fi
    rm -f "$K/$name.perf"
    python3 - "$target" "$rate" "$run" "$SECS" "$K/$name.sweep" "$K/$name-dut.txt" \
        "$((a1 - a0))" "$((b1 - b0))" "$((c1 - c0))" "$((w1 - w0))" "$((t1 - t0))" \
        "$(cut -d' ' -f1 /proc/loadavg)" "$f0" "$f1" "$gaps" >>"$JSONL" <<'PY'
import json, re, sys
target, rate, run, secs, sweep, dut = sys.argv[1:7]
a_rx, b_tx, b_rx, waited, window = map(int, sys.argv[7:12])
row = {"row": "keepup", "target": target, "rate": int(rate), "run": int(run), "secs": int(secs),
       "a_rx": a_rx, "b_tx": b_tx, "b_rx": b_rx, "waited_ns": waited, "window_ns": window,
       "load1": float(sys.argv[12])}
try:
    f = [l.split() for l in open(sweep) if l.startswith("sweep:")][-1]
    row["sent"], row["received"] = int(f[2]), int(f[3])
except (OSError, IndexError, ValueError):
    row["sent"] = row["received"] = 0
row["sent_pps"] = row["sent"] / int(secs)
row["echoed"] = row["received"] / row["sent"] if row["sent"] else 0.0
row["kernel_echoed"] = b_rx / b_tx if b_tx else 0.0
t = open(dut, errors="replace").read()
if target == "dpstack":
    m = re.search(r"final port driver=\S+ ipackets=(\d+) opackets=(\d+)", t)
    rx, tx = (int(m[1]), int(m[2])) if m else (None, None)
    m = re.search(r"final port ring_drops=(\d+)", t)
    row["ring_drops"] = int(m[1]) if m else None
    m = re.search(r"final cycles core=0 (.*)", t)
    if m:
        kv = dict(w.split("=", 1) for w in m[1].split())
        row["max_iteration_us"] = round(int(kv["max_iteration_cycles"]) / int(kv["tsc_mhz"]), 1)
        row["cycles_per_packet"] = float(kv["cycles_per_packet"])
        row["stalls"] = {k[len("stalls_"):]: int(v) for k, v in kv.items() if k.startswith("stalls_")}
    m = re.search(r"final loop core=0 (.*)", t)
    if m:
        row["loop_hist"] = {k: int(v) for k, v in (w.split("=", 1) for w in m[1].split())}
    m = re.search(r"final core=0 .*", t)
    if m:
        kv = dict(w.split("=", 1) for w in m[0].split()[2:] if "=" in w)
        row["udp_rx"], row["udp_tx"] = int(kv.get("udp_rx", 0)), int(kv.get("udp_tx", 0))
        row["dropped"] = sum(int(v) for k, v in kv.items() if k.startswith("drop_"))
else:
    # testpmd at exit: "Forward statistics for port 0" then
    # "RX-packets: N  RX-dropped: M  RX-total: T" and "TX-packets: N ..."
    m = re.search(r"Forward statistics for port 0.*?RX-packets: +(\d+).*?TX-packets: +(\d+)", t, re.S)
    rx, tx = (int(m[1]), int(m[2])) if m else (None, None)
row["target_rx"], row["target_tx"] = rx, tx
# The window's own figures: dpstack's loop (telemetry read at the start
# and at the stop of sending) and who ran on CPU 1 meanwhile.
f0, f1 = json.loads(sys.argv[13] or "{}"), json.loads(sys.argv[14] or "{}")
if f1:
    hz = f1.get("tsc_hz", 0)
    row["window_stalls"] = {k[len("loop_stalls_"):]: v - f0.get(k, 0) for k, v in f1.items()
                            if k.startswith("loop_stalls_")}
    # Iterations over 2^17 cycles (about 50 us), by their bound in us.
    row["window_long_iterations"] = {
        f"le_{int(k[len('loop_cycles_le_'):]) * 1e6 / hz:.0f}us" if k != "loop_cycles_inf" else "inf":
        v - f0.get(k, 0) for k, v in f1.items()
        if k.startswith("loop_cycles_") and hz and v - f0.get(k, 0) > 0
        and (k == "loop_cycles_inf" or int(k[len("loop_cycles_le_"):]) >= 1 << 17)}
gaps = json.loads(sys.argv[15] or "{}")
if gaps:
    row["sched"] = gaps
# Frames that reached dpskA and were not read by the target: af_packet's
# ring drops, seen from outside (the same for both targets).
row["ring_drops_ext"] = a_rx - rx if rx is not None else None
print(json.dumps(row))
PY
    log "$(tail -1 "$JSONL")"
}

rates=()
for r in $RATES; do rates+=("$r"); done
for rate in "${rates[@]}"; do
    for run in $(seq "$RUNS"); do
        measure testpmd "$rate" "$run"
        measure dpstack "$rate" "$run"
    done
    # Stop past the rate where testpmd dropped 1%, or past pktgen's limit
    # (KEEP_GOING=1: measure every rate of RATES).
    [ "${KEEP_GOING:-0}" = 1 ] && continue
    python3 - "$JSONL" "$rate" <<'PY' || break
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rate = int(sys.argv[2])
sent = lambda rt: max((r["sent_pps"] for r in rows if r.get("target") == "testpmd" and r["rate"] == rt),
                      default=0)
t = [r for r in rows if r.get("target") == "testpmd" and r["rate"] == rate]
prev = max((r["rate"] for r in rows if r.get("row") == "keepup" and r["rate"] < rate), default=None)
# pktgen's ceiling: asked for more, it sent less than 10% more than before.
ceiling = prev is not None and sent(rate) < 1.1 * sent(prev)
sys.exit(1 if any(r["echoed"] < 0.99 for r in t) or ceiling else 0)
PY
done

python3 - "$JSONL" <<'PY' | tee -a "$JSONL" >&2
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"keepup"' in l]
rates = sorted({r["rate"] for r in rows})
summary = {"row": "keepup-summary", "measured": True, "rates": []}
limit = None
for rate in rates:
    t = {r["run"]: r for r in rows if r["rate"] == rate and r["target"] == "testpmd"}
    d = {r["run"]: r for r in rows if r["rate"] == rate and r["target"] == "dpstack"}
    ratios = [d[i]["echoed"] / t[i]["echoed"] if t[i]["echoed"] else 0.0 for i in sorted(t) if i in d]
    tp_ok = all(r["echoed"] >= 0.99 for r in t.values())
    summary["rates"].append({"rate": rate, "sent_pps": [round(r["sent_pps"]) for r in t.values()],
                             "testpmd_echoed": [r["echoed"] for r in t.values()],
                             "dpstack_echoed": [r["echoed"] for r in d.values()],
                             "ratio": ratios, "testpmd_1pct_ok": tp_ok})
    pc = lambda rs: " ".join("%.2f%%" % (r["echoed"] * 100) for r in rs.values())
    print(f"keepup: {rate} pps: testpmd {pc(t)}, dpstack {pc(d)}, "
          f"dpstack/testpmd {' '.join('%.3f' % x for x in ratios)}", file=sys.stderr)
    if limit is None and not tp_ok:
        limit = rate
# The rates judged: every one up to and including the first where testpmd
# echoed less than 99% in some run (all of them if it never did).
judged = [s for s in summary["rates"] if limit is None or s["rate"] <= limit]
summary["testpmd_drop_rate"] = limit
# The first rate that got no more out of pktgen than the one before (less
# than 10% more sent): its ceiling on this machine.
summary["pktgen_limit"] = next((b["rate"] for a, b in zip(summary["rates"], summary["rates"][1:])
                                if max(b["sent_pps"], default=0) < 1.1 * max(a["sent_pps"], default=0)),
                               None)
summary["judged_up_to"] = judged[-1]["rate"] if judged else None
summary["worst_ratio"] = min((x for s in judged for x in s["ratio"]), default=0.0)
# The largest share of its window a target's polling thread waited for its
# CPU: above 10% the runs measure the machine's other work, not the target.
summary["waited_max"] = max((r["waited_ns"] / r["window_ns"] for r in rows if r["window_ns"]), default=0.0)
summary["met"] = bool(judged) and all(len(s["ratio"]) == len(s["testpmd_echoed"]) > 0 and
                                      min(s["ratio"]) >= 0.99 for s in judged)
print(f"keepup: dpstack >= 0.99 of testpmd's echoes at every rate up to {summary['judged_up_to']} pps "
      f"({'testpmd dropped 1% there' if limit else 'testpmd never dropped 1%'}"
      f"{'; pktgen sent no more at %d pps than at the rate before' % summary['pktgen_limit'] if summary['pktgen_limit'] else ''}): "
      f"{'met' if summary['met'] else 'NOT met'} (worst {summary['worst_ratio']:.3f})"
      f"{'; a target waited %.0f%% of its window for its CPU: not a verdict' % (summary['waited_max'] * 100) if summary['waited_max'] > 0.1 else ''}",
      file=sys.stderr)
print(json.dumps(summary))
PY
