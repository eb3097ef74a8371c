#!/usr/bin/env bash
# Receive throughput over net_memif (shared memory, no kernel in the path):
# dpstack with udp-sink:9 on one lcore vs testpmd rxonly on one lcore,
# each fed by the same testpmd txonly generator (64-byte UDP to port 9,
# zero UDP checksum), measured in the same run.
#
#   perf/bench-memif-sink.sh [SECONDS]
#
# The generator runs on CPU 0, the receiver on CPU 1. Rates are medians of
# per-second samples after the first. dpstack does the whole receive path
# (Ethernet, IPv4 header checksum, UDP, socket lookup, application call);
# testpmd rxonly frees what it receives: the ratio is dpstack's cost over
# DPDK's floor.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-6}
cargo build --release -q
BIN=target/release/dpstack
SOCK=/tmp/dpsbench-memif.sock
OUT=/tmp/dpsbench-memif.out
cleanup() {
    [ -n "${RX:-}" ] && kill -TERM "$RX" 2>/dev/null && wait "$RX" 2>/dev/null || true
    rm -f "$SOCK"
}
trap cleanup EXIT
MEM="--in-memory"
[ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -ge 256 ] || MEM="--no-huge -m 512 --no-shconf"

generate() { # $1 = destination MAC
    (sleep "$SECS"; echo quit) | dpdk-testpmd --lcores='0@0,1@0' --no-pci $MEM --file-prefix dpsbgen \
        --log-level=lib.eal:warning --vdev=net_memif0,role=client,socket=$SOCK -- \
        --forward-mode=txonly --txpkts=64 --tx-ip=198.18.60.2,198.18.60.1 --eth-peer=0,"$1" \
        --auto-start --stats-period 0 >/dev/null 2>&1 || true
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }

# 1. dpstack
cleanup; RX=
# shellcheck disable=SC2086
$BIN -l 1 --no-pci $MEM --file-prefix dpsbsink --log-level=lib.eal:warning \
    --vdev=net_memif0,role=server,socket=$SOCK -- --ip 198.18.60.1/24 --app udp-sink:9 \
    --stats-interval 1 >"$OUT" 2>&1 &
RX=$!
for _ in $(seq 100); do grep -q 'dpstack: ready' "$OUT" && break; sleep 0.1; done
MAC=$(grep -o 'mac [0-9a-f:]*' "$OUT" | cut -d' ' -f2)
generate "$MAC"
kill -TERM "$RX"; wait "$RX" || true; RX=
DPS=$(grep '^stats core=total' "$OUT" | grep -oE ' udp_rx=[0-9]+' | cut -d= -f2 \
    | awk 'NR>1 && prev>0 && $1>prev {print $1-prev} {prev=$1}' | tail -n +2 | median || true)
DROPS=$(grep '^final core=total' "$OUT" | grep -oE 'drop_[a-z_]+=[1-9][0-9]*' | tr '\n' ' ' || true)

# 2. testpmd rxonly
rm -f "$SOCK"
dpdk-testpmd --lcores='0@1,1@1' --no-pci $MEM --file-prefix dpsbrx \
    --log-level=lib.eal:warning --vdev=net_memif0,role=server,socket=$SOCK -- \
    --forward-mode=rxonly --auto-start --stats-period 1 </dev/null >"$OUT.pmd" 2>&1 &
RX=$!
sleep 1.5
generate 02:00:00:00:00:01
kill -INT "$RX"; wait "$RX" || true; RX=
PMD=$(grep -oE 'Rx-pps: +[0-9]+' "$OUT.pmd" | awk '{print $2}' | awk '$1>0' | tail -n +2 | median || true)

echo "dpstack udp-sink (1 lcore): ${DPS:-0} datagrams/s  (drops: ${DROPS:-none})"
echo "testpmd rxonly  (1 lcore): ${PMD:-0} packets/s"
python3 -c "import sys; d,p=float(sys.argv[1] or 0),float(sys.argv[2] or 0); print('ratio dpstack/testpmd-rxonly: %.2f' % (d/p if p else 0))" "${DPS:-0}" "${PMD:-0}"
