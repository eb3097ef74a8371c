#!/usr/bin/env bash
# Cycles per packet over memif, dpstack against dpdk-testpmd
# --record-core-cycles, in the same run with the same generator (issue 15):
# dpstack udp-echo:7 against testpmd macswap, dpstack's ICMP echo against
# testpmd icmpecho, flat out and at one offered rate for both (half of
# what dpstack reached flat out), REPS runs of each, alternating. One JSON
# line per measurement in OUTDIR/cycles.jsonl (the generator's reports and
# the targets' outputs in OUTDIR/cycles/); bench_report.py makes section 7
# of docs/benchmarks.md of them.
#
#   [REPS=3] [PROTOS="udp icmp"] [BIN=DIR] perf/bench-cycles.sh [--smoke] OUTDIR [SECONDS]
#
# Both count the TSC cycles of loop iterations that received frames
# (dpstack: or sent them) over the packets those carried: testpmd prints
# its figure when asked (`show fwd stats all`), dpstack in its `cycles`
# line at exit. Both are read while the generator still sends (memif's
# counters read zero once its peer has gone, and testpmd then prints no
# figure). The generator runs on CPU 0, the target on CPU 1.
#
# A busy-polling thread that loses its CPU for a while comes back to a
# full ring: the iteration that then carries those frames holds the time
# it did not run. On a shared machine that time is most of the figure, so
# each row also gives it net of the time the target's polling thread
# waited for its CPU in the same window (/proc/PID/task/TID/schedstat,
# the second field): the cycles it actually ran per packet. The time a
# hypervisor takes from the whole VM (steal) is not in it. dpstack also
# gives its figure without the iterations over 100 us (stalls, whatever
# held them up); testpmd has no such figure.
#
# A measurement that fails (a target that does not start, a generator
# that cannot connect twice over, a figure that cannot be read) is said
# on stderr and written as a row without figures: bench_report.py says
# "not measured" for it, and the other rows go on.
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE=0
[ "${1:-}" = "--smoke" ] && { SMOKE=1; shift; }
OUT=${1:?OUTDIR}
SECS=${2:-5}
[ "$SMOKE" = 1 ] && SECS=1
CY=$OUT/cycles
mkdir -p "$CY"
rm -f "$OUT/cycles.jsonl" "$CY"/*
# BIN: where dpstack and dpstack-gen are (another build's, to compare two).
BIN=${BIN:-$PWD/target/release}
# Names of this run's own (the PID in them): a second run at the same time
# (make test's smoke form beside make bench) must not take this run's
# socket or telemetry from under it.
SOCK=/tmp/dpscyc-$$.sock
DUTP=dpscycdut$$
GENP=dpscycgen$$
MEM="--in-memory"
[ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -ge 256 ] || MEM="--no-huge -m 512 --no-shconf"
EAL="--no-pci $MEM --log-level=lib.eal:warning --log-level=pmd.net.memif:error"
DUT=
FIFO=$CY/stdin
cleanup() {
    [ -n "$DUT" ] && { kill -TERM "$DUT" 2>/dev/null; wait "$DUT" 2>/dev/null || true; }
    DUT=
    rm -f "$SOCK"
}
trap 'cleanup; rm -f "$FIFO"' EXIT
log() { echo "bench-cycles: $*" >&2; }
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR

# wait_listening
# shellcheck source=perf/memif-lib.sh
. perf/memif-lib.sh

# The nanoseconds thread TID of process PID has waited for a CPU.
waited_ns() { awk '{print $2}' "/proc/$1/task/$2/schedstat" 2>/dev/null || echo 0; }

# The polling thread: dpstack's main thread runs its one lcore; testpmd's
# forwarding lcore is its one worker thread.
poll_tid() { # pid kind
    local t
    if [ "$2" = dpstack ]; then echo "$1"; return; fi
    for _ in $(seq 50); do
        for t in /proc/"$1"/task/*; do
            grep -qE '^(rte|lcore)-worker' "$t/comm" 2>/dev/null && { basename "$t"; return; }
        done
        sleep 0.1
    done
    echo "$1"
}

start_dpstack() { # proto
    local app=()
    [ "$1" = udp ] && app=(--app udp-echo:7)
    rm -f "$SOCK"
    # shellcheck disable=SC2086
    $BIN/dpstack --lcores=0@1 $EAL --file-prefix $DUTP \
        --vdev=net_memif0,role=server,socket=$SOCK -- --ip 198.18.60.1/24 "${app[@]}" \
        >"$CY/dut.txt" 2>&1 &
    DUT=$!
    for _ in $(seq 100); do
        grep -q 'dpstack: ready' "$CY/dut.txt" && { wait_listening; return; }
        sleep 0.1
    done
    cat "$CY/dut.txt" >&2; return 1
}
start_testpmd() { # proto
    local mode=macswap
    [ "$1" = icmp ] && mode=icmpecho
    rm -f "$SOCK"
    # Interactive, its commands from a FIFO this script holds open (fd 8):
    # forwarding starts at once and the figure is asked for while the
    # generator still sends; its output line-buffered, to be read as it
    # comes. A new FIFO for each testpmd: a command the last one left
    # unread (its `quit`) must not reach this one.
    exec 8>&-
    rm -f "$FIFO"; mkfifo "$FIFO"; exec 8<>"$FIFO"
    # shellcheck disable=SC2086
    stdbuf -oL dpdk-testpmd --lcores=0@1,1@1 $EAL --file-prefix $DUTP \
        --vdev=net_memif0,role=server,socket=$SOCK -- -i --auto-start \
        --forward-mode=$mode --nb-cores=1 --rxq=1 --txq=1 --record-core-cycles \
        <&8 >"$CY/dut.txt" 2>&1 &
    DUT=$!
    for _ in $(seq 100); do grep -q 'testpmd>' "$CY/dut.txt" 2>/dev/null && break; sleep 0.1; done
    grep -q 'testpmd>' "$CY/dut.txt" || { cat "$CY/dut.txt" >&2; return 1; }
    wait_listening
}

# The target's figures now, as one JSON object: {"cycles", "packets",
# "mhz", stalls...}, cumulative since it started. dpstack: telemetry
# (/dpstack/stats,0). testpmd: `show fwd stats all` (it prints no figure
# before its first packet: zeros then).
figures() { # target
    if [ "$1" = dpstack ]; then
        echo "/dpstack/stats,0" | timeout 10 dpdk-telemetry.py -f $DUTP 2>/dev/null \
            | python3 -c '
import json, sys
t = sys.stdin.read()
d = json.loads(t[t.index("{"):t.rindex("}") + 1])
d = next(iter(d.values())) if "loop_busy_cycles" not in d else d
out = {"cycles": d["loop_busy_cycles"], "packets": d["loop_busy_packets"], "mhz": d["tsc_hz"] // 1000000,
       "stalled_cycles": d["loop_stalled_busy_cycles"], "stalled_packets": d["loop_stalled_busy_packets"]}
out.update({k[len("loop_"):]: v for k, v in d.items() if k.startswith("loop_stalls_")})
print(json.dumps(out))'
    else
        local n
        n=$(wc -l <"$CY/dut.txt")
        echo "show fwd stats all" >&8
        for _ in $(seq 60); do
            tail -n +"$((n + 1))" "$CY/dut.txt" | grep -qE '^ +[+]+$' && break
            sleep 0.05
        done
        sleep 0.1
        tail -n +"$((n + 1))" "$CY/dut.txt" | python3 -c '
import json, re, sys
# CPU cycles/packet=2746.70 (total cycles=3003531002 / total macswap
# packets=1093504) at 2250 MHz Clock
m = re.search(r"cycles/packet=[\d.]+ \(\D*cycles=(\d+) / total \w+ packets=(\d+)\) at (\d+) MHz", sys.stdin.read())
print(json.dumps({"cycles": int(m[1]), "packets": int(m[2]), "mhz": int(m[3])} if m else {"cycles": 0, "packets": 0, "mhz": 0}))'
    fi
}

# The generator against the target just started, in the background:
# sets GEN to its PID. Returns 1 if it did not start sending (it could not
# connect, or found no peer) within 20 s; it is stopped then.
start_gen() { # name target proto rate
    local mac=()
    [ "$2" = testpmd ] && mac=(--dst-mac 02:00:00:00:00:01)
    rm -f "$CY/$1.json"; : >"$CY/gen.txt"
    # The window: from the generator's start of sending (its banner,
    # after ARP) for SECONDS, while it sends (memif's counters read zero
    # once the peer has gone, and a generator whose peer vanishes under
    # it can crash). It sends for 2 s more than that.
    # shellcheck disable=SC2086
    $BIN/dpstack-gen --lcores=0@0 $EAL --file-prefix $GENP \
        --vdev=net_memif0,role=client,socket=$SOCK -- --mode "$3" --src 198.18.60.2 \
        --dst 198.18.60.1:7 --flows 8 --queues 1 --rate "$4" --seconds $((SECS + 2)) \
        --json "$CY/$1.json" --quiet "${mac[@]}" >/dev/null 2>"$CY/gen.txt" &
    GEN=$!
    for _ in $(seq 400); do
        grep -q '^dpstack-gen: .* flows' "$CY/gen.txt" && return 0
        kill -0 "$GEN" 2>/dev/null || break
        sleep 0.05
    done
    kill "$GEN" 2>/dev/null || true
    wait "$GEN" 2>/dev/null || true
    return 1
}

stop_target() { # target
    [ "$1" = testpmd ] && { echo quit >&8 || true; }
    cleanup
}

# One measurement: NAME TARGET PROTO RATE. Sets PPS to the rate the
# generator got back (packets per second; 0 when not measured). A target
# that does not start, or a generator that does not start sending, is
# tried again with a fresh target (up to 3 times), and said.
measure() {
    local name=$1 target=$2 proto=$3 rate=$4
    local tid w0 w1 t0 t1 f0 f1 attempt started=0 why=""
    PPS=0
    for attempt in 1 2 3; do
        if ! "start_$target" "$proto"; then
            why="the target did not start"
            log "$name: $why (attempt $attempt): $(tail -3 "$CY/dut.txt" | tr '\n' ' ')"
            stop_target "$target"
            continue
        fi
        if start_gen "$name" "$target" "$proto" "$rate"; then
            started=1
            break
        fi
        why="the generator did not start"
        log "$name: $why (attempt $attempt), trying again with a new target: $(tail -3 "$CY/gen.txt" | tr '\n' ' ')"
        stop_target "$target"
    done
    if [ "$started" = 0 ]; then
        log "$name: not measured: $why, 3 times"
        python3 -c 'import json, sys; print(json.dumps({"row": "cycles", "name": sys.argv[1], "target": sys.argv[2],
"proto": sys.argv[3], "offered_pps": int(sys.argv[4]), "rx_pps": 0, "not_measured": sys.argv[5]}))' \
            "$name" "$target" "$proto" "$rate" "$why" >>"$OUT/cycles.jsonl"
        return 1
    fi
    tid=$(poll_tid "$DUT" "$target")
    t0=$(date +%s%N)
    w0=$(waited_ns "$DUT" "$tid")
    f0=$(figures "$target") || { log "$name: first figures unreadable"; f0='{}'; }
    sleep "$SECS"
    t1=$(date +%s%N)
    w1=$(waited_ns "$DUT" "$tid")
    f1=$(figures "$target") || { log "$name: second figures unreadable"; f1='{}'; }
    wait "$GEN" || log "$name: the generator exited with $?: $(tail -3 "$CY/gen.txt" | tr '\n' ' ')"
    stop_target "$target"
    cp "$CY/dut.txt" "$CY/$name-dut.txt"
    PPS=$(python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['rx_pps']))" \
        "$CY/$name.json" 2>/dev/null) || PPS=0
    python3 - "$name" "$target" "$proto" "$rate" "$PPS" "$((w1 - w0))" "$f0" "$f1" "$((t1 - t0))" \
        >>"$OUT/cycles.jsonl" <<'PY'
import json, sys
name, target, proto, rate, pps, waited = sys.argv[1:7]
def figures(t):
    try:
        return json.loads(t or "{}")
    except ValueError:
        return {}
f0, f1 = figures(sys.argv[7]), figures(sys.argv[8])
row = {"row": "cycles", "name": name, "target": target, "proto": proto,
       "offered_pps": int(rate), "rx_pps": int(pps), "waited_ns": int(waited),
       "window_ns": int(sys.argv[9])}
if f1.get("packets"):
    row.update({k: v - f0.get(k, 0) for k, v in f1.items() if k != "mhz"})
    row["mhz"] = f1["mhz"]
if row.get("packets", 0) > 0:
    row["cycles_per_packet"] = row["cycles"] / row["packets"]
    ran = max(row["cycles"] - row["waited_ns"] * row["mhz"] / 1000, 0)
    row["ran_cycles_per_packet"] = ran / row["packets"]
else:
    row["not_measured"] = "no packets counted by the target in the window"
if row.get("packets", 0) > row.get("stalled_packets", 0) and "stalled_cycles" in row:
    row["unstalled_cycles_per_packet"] = ((row["cycles"] - row["stalled_cycles"])
                                          / (row["packets"] - row["stalled_packets"]))
print(json.dumps(row))
PY
    log "$(tail -1 "$OUT/cycles.jsonl")"
}

# A measurement that failed is said and the others go on: the exit status
# says whether every one was made.
#
# Each target runs REPS times (3; --smoke: 1) flat out, then REPS times at
# one offered rate (half of dpstack's median flat-out rate), both in the
# order dpstack testpmd, testpmd dpstack, dpstack testpmd, ...: on this
# shared machine one run can land in a slow spell of the VM's CPU that the
# next one misses (both targets have read half or double their usual
# figure, whatever the build), so bench_report.py compares the medians and
# lists every run. The first run of each keeps the plain name (udp-dpstack,
# udp-dpstack-half), the others take -r2, -r3 (udp-dpstack-half-r2).
# PROTOS (udp icmp) picks the echoes measured.
REPS=${REPS:-${FLAT_REPS:-3}}
[ "$SMOKE" = 1 ] && REPS=1
PROTOS=${PROTOS:-udp icmp}
failed=()

# REPS alternating runs of both targets: NAME_SUFFIX PROTO RATE. Appends
# dpstack's reply rates to RATES.
alternate() {
    local suffix=$1 proto=$2 rate=$3 rep sfx target order
    for rep in $(seq "$REPS"); do
        sfx=$suffix
        [ "$rep" -gt 1 ] && sfx="$suffix-r$rep"
        order=(dpstack testpmd)
        [ $((rep % 2)) = 0 ] && order=(testpmd dpstack)
        for target in "${order[@]}"; do
            if measure "$proto-$target$sfx" "$target" "$proto" "$rate"; then
                if [ "$target" = dpstack ] && [ "$PPS" -gt 0 ]; then RATES+=("$PPS"); fi
            else
                failed+=("$proto-$target$sfx")
            fi
        done
    done
}

for proto in $PROTOS; do
    RATES=()
    alternate "" "$proto" 0
    half=0
    [ ${#RATES[@]} -gt 0 ] && half=$(printf '%s\n' "${RATES[@]}" | sort -n \
        | awk '{v[NR] = $1} END {print int(v[int((NR + 1) / 2)] / 2)}')
    if [ "$half" -gt 0 ]; then
        alternate -half "$proto" "$half"
    else
        log "$proto: dpstack answered nothing flat out: the same-rate rows are not measured"
        failed+=("$proto-dpstack-half" "$proto-testpmd-half")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    log "not measured: ${failed[*]}"
    exit 1
fi
