#!/usr/bin/env bash
# make bench: every benchmark of issue 7 side by side in one run, and
# docs/benchmarks.md regenerated from what it measured.
#
#   perf/bench.sh [SECONDS]            full run (default 5 s per measurement;
#                                      the WAN rows of perf/bench-wan.sh take
#                                      their own times, about 5 minutes)
#   perf/bench.sh --smoke OUTDIR       1 s each (WAN rows: --smoke), results
#                                      in OUTDIR (make test)
#
# The generator (dpstack-gen, wrk) runs on CPU 0 and the system under test
# on CPU 1. Every ratio is against a baseline measured in the same run.
# A measurement that fails is logged (`bench: ... not measured`) and the
# run goes on: bench_report.py writes "not measured" for its rows.
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE=0
if [ "${1:-}" = "--smoke" ]; then
    SMOKE=1; SECS=1; OUT=${2:?OUTDIR}; DOC=$OUT/benchmarks.md; IMG=$OUT; N_INSTR=200
else
    SECS=${1:-5}; OUT=/tmp/dpsbench; DOC=docs/benchmarks.md; IMG=docs/img; N_INSTR=2000
fi
mkdir -p "$OUT" "$IMG"
rm -f "$OUT/stdin"; mkfifo "$OUT/stdin"; exec 9<>"$OUT/stdin"
rm -f "$OUT"/*.json "$OUT"/*.hlog "$OUT"/*.txt
cargo build --release -q -p perf -p dpstack
BIN=$PWD/target/release
# The memif socket and EAL prefixes carry this run's PID: a smoke run
# (make test) beside a full one must not take its socket.
SOCK=/tmp/dpsbench-$$.sock
DUTP=dpsbdut$$
GENP=dpsbgen$$
MEM="--in-memory"
[ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -ge 256 ] || MEM="--no-huge -m 512 --no-shconf"
EAL="--no-pci $MEM --log-level=lib.eal:warning --log-level=pmd.net.memif:error"
DUT=
cleanup() {
    [ -n "$DUT" ] && { kill -TERM "$DUT" 2>/dev/null; wait "$DUT" 2>/dev/null || true; }
    DUT=
    for ns in dpsbH dpsbK; do ip netns del $ns 2>/dev/null || true; done
    ip link del dpsv0 2>/dev/null || true
    ip link del dpsw1 2>/dev/null || true
    rm -f "$SOCK"
}
trap cleanup EXIT
cleanup
log() { echo "bench: $*" >&2; }
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR

# wait_listening
# shellcheck source=perf/memif-lib.sh
. perf/memif-lib.sh

# A file a background process writes is emptied here first, before the
# process starts: its shell truncates it only once it runs, and until then
# wait_ready would read the last run's "ready".
wait_ready() { # file
    for _ in $(seq 100); do grep -q 'dpstack: ready' "$1" && return 0; sleep 0.1; done
    cat "$1" >&2; return 1
}

# A DUT on the memif server side: dpstack LCORES APPS... or testpmd.
dut_dpstack() { # lcores args...
    local lc=$1; shift
    rm -f "$SOCK"; : >"$OUT/dut.txt"
    # shellcheck disable=SC2086
    ${DUT_BIN:-$BIN/dpstack} --lcores="$lc" $EAL --file-prefix $DUTP \
        --vdev=net_memif0,role=server,socket=$SOCK -- --ip 198.18.60.1/24 "$@" \
        >"$OUT/dut.txt" 2>&1 &
    DUT=$!
    wait_ready "$OUT/dut.txt" && wait_listening
}
dut_testpmd() { # lcores mode nb-cores
    rm -f "$SOCK"; : >"$OUT/dut.txt"
    # testpmd without a terminal exits when its stdin closes: give it a FIFO
    # this script holds open (fd 9), so that it runs until it is killed.
    # shellcheck disable=SC2086
    dpdk-testpmd --lcores="$1" $EAL --file-prefix $DUTP \
        --vdev=net_memif0,role=server,socket=$SOCK -- --forward-mode="$2" \
        --nb-cores="$3" --rxq="$3" --txq="$3" --auto-start --stats-period 0 \
        <&9 >"$OUT/dut.txt" 2>&1 &
    DUT=$!
    for _ in $(seq 100); do grep -q 'Press enter to exit' "$OUT/dut.txt" 2>/dev/null && break; sleep 0.1; done
    wait_listening
}
# Stop the target; one that did not exit 0 on SIGTERM (a crash, or a
# failed stop) is said, with its last lines.
stop_dut() {
    local rc=0
    if [ -n "$DUT" ]; then
        kill -TERM "$DUT" 2>/dev/null || true
        wait "$DUT" 2>/dev/null || rc=$?
        DUT=
        [ "$rc" = 0 ] || log "the target exited with status $rc on SIGTERM: $(tail -3 "$OUT/dut.txt" | tr '\n' ' ')"
    fi
    return 0
}

# dpstack-gen over memif: NAME MODE QUEUES RATE [more gen options]. A
# generator that fails (cannot connect, finds no peer, dies) says why.
gen_memif() {
    local name=$1 mode=$2 q=$3 rate=$4 rc=0; shift 4
    rm -f "$OUT/$name.json"
    # shellcheck disable=SC2086
    $BIN/dpstack-gen --lcores=0@0 $EAL --file-prefix $GENP \
        --vdev=net_memif0,role=client,socket=$SOCK -- --mode "$mode" --src 198.18.60.2 \
        --dst 198.18.60.1:7 --flows 8 --queues "$q" --rate "$rate" --seconds "$SECS" \
        --json "$OUT/$name.json" --hdr-log "$OUT/$name.hlog" --quiet "$@" >/dev/null \
        2>"$OUT/gen-$name.txt" || rc=$?
    [ "$rc" = 0 ] || log "$name: the generator failed (exit $rc): $(tail -3 "$OUT/gen-$name.txt" | tr '\n' ' ')"
    log "$name: $(cat "$OUT/$name.json" 2>/dev/null)"
}
rx_pps() {
    python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['rx_pps']))" "$1" 2>/dev/null \
        || echo 0
}

# One measurement against a freshly started target: NAME MODE QUEUES RATE
# GEN-OPTIONS... -- START-DUT-COMMAND... A target that did not start, or
# answered nothing (testpmd with 2 forwarding cores on memif has
# segfaulted here now and then), or a generator that failed, is tried
# again with a fresh target (3 tries), and that is said; then the row is
# not measured. A target that died under the generator is said too.
measure() {
    local name=$1 mode=$2 q=$3 rate=$4 rc; shift 4
    local gen=()
    while [ "$1" != "--" ]; do gen+=("$1"); shift; done
    shift
    for attempt in 1 2 3; do
        if ! "$@"; then
            log "$name: the target did not start (attempt $attempt): $(tail -3 "$OUT/dut.txt" | tr '\n' ' ')"
            stop_dut
            continue
        fi
        gen_memif "$name" "$mode" "$q" "$rate" "${gen[@]}"
        rc=0
        kill -0 "$DUT" 2>/dev/null || { wait "$DUT" 2>/dev/null || rc=$?; DUT=; }
        [ "$rc" = 0 ] || log "$name: THE TARGET DIED during the run (status $rc): $(tail -3 "$OUT/dut.txt" | tr '\n' ' ')"
        stop_dut
        [ "$(rx_pps "$OUT/$name.json")" -gt 0 ] && return 0
        log "$name: nothing came back (attempt $attempt): $(tail -3 "$OUT/dut.txt" | tr '\n' ' ')"
    done
    log "$name: not measured"
    rm -f "$OUT/$name.json" "$OUT/$name.hlog"
}

# 1. memif: UDP echo and ICMP echo, flat out, then at half of that rate.
# shellcheck disable=SC2317
memif_pair() { # name mode queues start-dut-command...
    local name=$1 mode=$2 q=$3; shift 3
    local mac=()
    [[ "$1" == dut_testpmd ]] && mac=(--dst-mac 02:00:00:00:00:01)
    measure "$name" "$mode" "$q" 0 "${mac[@]}" -- "$@"
    local half=$(( $(rx_pps "$OUT/$name.json") / 2 ))
    [ "$half" -gt 0 ] && measure "$name-half" "$mode" "$q" "$half" "${mac[@]}" -- "$@"
    return 0
}
memif_pair memif-udp-dpstack-1 udp 1 dut_dpstack "0@1" --app udp-echo:7
memif_pair memif-udp-testpmd-1 udp 1 dut_testpmd "0@1,1@1" macswap 1
memif_pair memif-udp-dpstack-2 udp 2 dut_dpstack "0@0,1@1" --app udp-echo:7
memif_pair memif-udp-testpmd-2 udp 2 dut_testpmd "0@1,1@0,2@1" macswap 2
memif_pair memif-icmp-dpstack-1 icmp 1 dut_dpstack "0@1"
memif_pair memif-icmp-testpmd-1 icmp 1 dut_testpmd "0@1,1@1" icmpecho 1
memif_pair memif-icmp-dpstack-2 icmp 2 dut_dpstack "0@0,1@1"
memif_pair memif-icmp-testpmd-2 icmp 2 dut_testpmd "0@1,1@0,2@1" icmpecho 2

# Before and after (issue 15: memif echo rates no lower than before): the
# same memif echo against dpstack built at BASE_COMMIT (1575fac, before the
# ingress redesign), alternating with this build, three runs each (one run
# swings 5.6-8.9 Mpps on this VM). Full runs only: the build of the old
# commit takes minutes (kept in /tmp/dpsbase-COMMIT).
BASE_COMMIT=${BASE_COMMIT:-1575fac}
base_build() {
    local dir=/tmp/dpsbase-$BASE_COMMIT
    if [ ! -x "$dir/target/release/dpstack" ]; then
        rm -rf "$dir"; mkdir -p "$dir"
        git archive "$BASE_COMMIT" | tar -x -C "$dir" || return 1
        (cd "$dir" && cargo build --release -q -p dpstack --bin dpstack) >&2 || return 1
    fi
    echo "$dir/target/release/dpstack"
}
dut_base() { local DUT_BIN=$BASE_BIN; dut_dpstack "$@"; }
if [ "$SMOKE" = 0 ]; then
    if BASE_BIN=$(base_build); then
        for i in 1 2 3; do
            for p in udp icmp; do
                app=(); [ $p = udp ] && app=(--app udp-echo:7)
                measure "ab-$p-base-$i" $p 1 0 -- dut_base "0@1" "${app[@]}"
                measure "ab-$p-now-$i" $p 1 0 -- dut_dpstack "0@1" "${app[@]}"
            done
        done
    else
        log "dpstack at $BASE_COMMIT did not build: before-and-after not measured"
    fi
fi

# 3b. TCP over memif: dpstack-gen's HTTP against dpstack's http app.
for m in tcp-rr tcp-crr; do
    if ! dut_dpstack "0@1" --app http:80:100; then
        log "memif-$m: the target did not start: not measured"; stop_dut; continue
    fi
    # shellcheck disable=SC2086
    $BIN/dpstack-gen --lcores=0@0 $EAL --file-prefix $GENP \
        --vdev=net_memif0,role=client,socket=$SOCK -- --mode $m --src 198.18.60.2/24 \
        --dst 198.18.60.1:80 --conns 32 --seconds "$SECS" --stack="--tcp-ports 1024-65535" \
        --json "$OUT/memif-$m-dpstack-1.json" --hdr-log "$OUT/memif-$m-dpstack-1.hlog" \
        --quiet >/dev/null 2>"$OUT/gen-$m.txt" \
        || log "memif-$m: the generator failed: $(tail -3 "$OUT/gen-$m.txt" | tr '\n' ' ')"
    log "memif-$m: $(cat "$OUT/memif-$m-dpstack-1.json" 2>/dev/null)"
    stop_dut
done

# 2. veth + af_packet: dpstack udp-echo vs a Linux recvmmsg/sendmmsg echo.
ip link add dpsv0 type veth peer name dpsv1
for i in dpsv0 dpsv1; do ip link set $i up; ethtool -K $i tx off >/dev/null; done
gen_veth() { # name rate
    # shellcheck disable=SC2086
    $BIN/dpstack-gen --lcores=0@0 $EAL --file-prefix $GENP \
        --vdev=net_af_packet0,iface=dpsv0,qpairs=1 -- --mode udp --src 198.18.61.2 \
        --dst 198.18.61.1:7 --flows 8 --rate "$2" --seconds "$SECS" \
        --json "$OUT/$1.json" --hdr-log "$OUT/$1.hlog" --quiet >/dev/null \
        || log "$1: the generator failed (exit $?)"
    log "$1: $(cat "$OUT/$1.json" 2>/dev/null)"
}
veth_dpstack() {
    : >"$OUT/dut.txt"
    # shellcheck disable=SC2086
    $BIN/dpstack --lcores=0@1 $EAL --file-prefix $DUTP \
        --vdev=net_af_packet0,iface=dpsv1,qpairs=1 -- --ip 198.18.61.1/24 --app udp-echo:7 \
        >"$OUT/dut.txt" 2>&1 &
    DUT=$!
    wait_ready "$OUT/dut.txt"
}
veth_dpstack; gen_veth veth-udp-dpstack 0; stop_dut
HALF=$(( $(rx_pps "$OUT/veth-udp-dpstack.json") / 2 ))
veth_dpstack; gen_veth veth-udp-dpstack-half $HALF; stop_dut
ip netns add dpsbK
ip link set dpsv1 netns dpsbK
ip -n dpsbK addr add 198.18.61.1/24 dev dpsv1; ip -n dpsbK link set dpsv1 up
ip -n dpsbK link set lo up
ip netns exec dpsbK taskset -c 1 $BIN/udpecho-kernel --mmsg --listen 198.18.61.1:7 \
    --seconds $((SECS * 2 + 20)) 2>/dev/null &
KE=$!
sleep 0.3
gen_veth veth-udp-linux 0
HALF=$(( $(rx_pps "$OUT/veth-udp-linux.json") / 2 ))
gen_veth veth-udp-linux-half $HALF
kill $KE 2>/dev/null; wait $KE 2>/dev/null || true
ip netns del dpsbK; ip link del dpsv0 2>/dev/null || true

# 3. TCP over veth: wrk against dpstack's http app and against nginx.
ip netns add dpsbH
ip link add dpsw1 type veth peer name dpsw0 netns dpsbH
ip link set dpsw1 up; ethtool -K dpsw1 tx off >/dev/null
ip -n dpsbH addr add 198.18.62.2/24 dev dpsw0; ip -n dpsbH link set dpsw0 up
ip -n dpsbH link set lo up
ip netns exec dpsbH ethtool -K dpsw0 tx off >/dev/null
BODY=$(head -c 100 /dev/zero | tr '\0' 'x')
run_wrk() { # name extra-header
    local h=()
    [ -n "$2" ] && h=(-H "$2")
    ip netns exec dpsbH taskset -c 0 wrk -t1 -c32 -d"${SECS}s" --latency "${h[@]}" \
        http://198.18.62.1/ >"$OUT/$1.txt" 2>&1 || true
    log "$1: $(grep -E 'Requests/sec|Non-2xx|errors' "$OUT/$1.txt" | tr -s ' ' | tr '\n' ' ')"
}
: >"$OUT/dut.txt"
# shellcheck disable=SC2086
$BIN/dpstack --lcores=0@1 $EAL --file-prefix $DUTP \
    --vdev=net_af_packet0,iface=dpsw1,qpairs=1 -- --ip 198.18.62.1/24 --app http:80:100 \
    --tcp-max-conns 65536 >"$OUT/dut.txt" 2>&1 &
DUT=$!
wait_ready "$OUT/dut.txt"
ip netns exec dpsbH ping -c 1 -W 2 198.18.62.1 >/dev/null
run_wrk wrk-rr-dpstack ""
run_wrk wrk-crr-dpstack "Connection: close"
stop_dut
ip netns add dpsbK
ip link set dpsw1 netns dpsbK
ip -n dpsbK addr add 198.18.62.1/24 dev dpsw1; ip -n dpsbK link set dpsw1 up
ip -n dpsbK link set lo up
cat >"$OUT/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $OUT/nginx.pid;
error_log $OUT/nginx.err;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server { listen 198.18.62.1:80; location / { return 200 "$BODY"; } }
}
EOF
ip netns exec dpsbK taskset -c 1 nginx -c "$OUT/nginx.conf" -e "$OUT/nginx.err" &
NG=$!
sleep 0.5
run_wrk wrk-rr-nginx ""
run_wrk wrk-crr-nginx "Connection: close"
kill $NG 2>/dev/null; wait $NG 2>/dev/null || true
ip netns del dpsbH; ip netns del dpsbK

# 5. Memory per idle connection: kept-alive connections over veth to
# dpstack's http app and to nginx, then a million in process (perf's connmem).
if [ "$SMOKE" = 1 ]; then CM=(--smoke "$OUT"); else CM=("$OUT"); fi
bash perf/bench-conn-memory.sh "${CM[@]}" >"$OUT/connmem.txt" \
    || log "bench-conn-memory.sh failed (exit $?): section 5 not measured in full"
while read -r l; do log "$l"; done <"$OUT/connmem.txt"

# 6. Issue 14's rows against Linux: over a WAN through dpstack-bridge
# (20 ms, 500 Mbit/s; one transfer, 1000 short ones, 4 competing flows)
# and the lossy echo on a plain veth, with their plots. Serialized with
# every other run that uses the WAN namespaces (bench-wan.sh takes
# /tmp/wan.lock itself).
if [ "$SMOKE" = 1 ]; then WAN=(--smoke); else WAN=(); fi
IMG=$(realpath "$IMG") bash perf/bench-wan.sh "${WAN[@]}" "$OUT/wan" >"$OUT/wan.txt" \
    || log "bench-wan.sh failed (exit $?): section 6 not measured in full"
while read -r l; do log "$l"; done < <(grep '^summary\|^  ' "$OUT/wan.txt")

# 7. Cycles per packet over memif against testpmd --record-core-cycles
# (issue 15), each target on CPU 1 and the generator on CPU 0.
if [ "$SMOKE" = 1 ]; then CY=(--smoke "$OUT"); else CY=("$OUT" "$SECS"); fi
bash perf/bench-cycles.sh "${CY[@]}" \
    || log "bench-cycles.sh: not every row measured (exit $?; its lines above say which)"

# 8. Keeps up like testpmd (issue 15): pktgen-dpdk over af_packet from a
# namespace, on CPU 0, against testpmd macswap and dpstack's udp-echo on CPU
# 1, alternately, at rising rates. Without pktgen (docs/load-testing.md) it
# says "not measured" and the report says so.
if [ "$SMOKE" = 1 ]; then KU=(--smoke "$OUT"); else KU=("$OUT"); fi
SECS=$SECS bash perf/bench-keepup.sh "${KU[@]}"

# 4. Instructions per packet on plain buffers (callgrind, deterministic),
# counted inside FuzzCore::receive only, net of the harness's own work.
cg() { # case -> instructions per frame (or per pair for tcp-data-ack)
    valgrind --tool=callgrind --toggle-collect='*FuzzCore*receive*' \
        --callgrind-out-file="$OUT/cg-$1.out" $BIN/pathcost "$1" "$N_INSTR" >/dev/null 2>&1
    awk -v n="$N_INSTR" '/^totals:/ {print $2 / n}' "$OUT/cg-$1.out"
}
H=$(cg harness)
for c in udp-echo icmp-echo tcp-data-ack; do
    frames=1; [ $c = tcp-data-ack ] && frames=2
    python3 - "$OUT" "$c" "$N_INSTR" "$(cg $c)" "$H" "$frames" <<'PY'
import sys, json
out, c, n, raw, h, frames = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
json.dump({"case": c, "n": n, "raw": raw, "harness": h * frames, "instructions": raw - h * frames},
          open(f"{out}/instr-{c}.json", "w"))
PY
    log "instructions $c: $(cat "$OUT/instr-$c.json")"
done

# Plots and the document.
# A plot whose data was not measured is said, and the report goes on.
$BIN/dpstack-gen plot "$IMG/memif-udp-half-load.png" "UDP echo over memif at half load, 1 lcore" \
    dpstack="$OUT/memif-udp-dpstack-1-half.hlog" testpmd-macswap="$OUT/memif-udp-testpmd-1-half.hlog" \
    || log "plot memif-udp-half-load failed (exit $?)"
$BIN/dpstack-gen plot "$IMG/veth-udp-half-load.png" "UDP echo over veth at half load" \
    dpstack="$OUT/veth-udp-dpstack-half.hlog" linux-mmsg="$OUT/veth-udp-linux-half.hlog" \
    || log "plot veth-udp-half-load failed (exit $?)"
$BIN/dpstack-gen plot "$IMG/memif-tcp.png" "HTTP over memif, dpstack-gen -> dpstack http, 32 connections" \
    kept-alive="$OUT/memif-tcp-rr-dpstack-1.hlog" new-connection="$OUT/memif-tcp-crr-dpstack-1.hlog" \
    || log "plot memif-tcp failed (exit $?)"
python3 perf/bench_report.py "$OUT" "$DOC" "$IMG" "$SECS" "$SMOKE"
log "wrote $DOC"
