#!/usr/bin/env bash
# UDP echo round trips: dpstack's udp-echo on one lcore vs a Linux-socket
# echo server (perf's udpecho-kernel) on one CPU, measured in the same run
# with the same load generator (perf's udpload), which runs on the other CPU.
#
#   perf/bench-udp-echo.sh [SECONDS] [FLOWS] [WINDOW] [SIZE]
#
# Both servers sit behind a veth pair from the load generator's namespace, so
# the kernel's veth path is in both measurements; what differs is the server.
# Prints one JSON line per run and the ratios dpstack/kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}; FLOWS=${2:-16}; WINDOW=${3:-4}; SIZE=${4:-64}
cargo build --release -q -p perf -p dpstack
BIN=target/release
H=dpsbh; K=dpsbk
cleanup() {
    [ -n "${DP:-}" ] && kill -TERM "$DP" 2>/dev/null && wait "$DP" 2>/dev/null || true
    [ -n "${KE:-}" ] && kill "$KE" 2>/dev/null || true
    ip netns del $H 2>/dev/null || true; ip netns del $K 2>/dev/null || true
    ip link del dpsbs0 2>/dev/null || true
}
trap cleanup EXIT
cleanup
ip netns add $H; ip netns add $K
# load generator <-> dpstack
ip link add dpsbs0 type veth peer name dpsbh0
ip link set dpsbh0 netns $H
ip link set dpsbs0 up; ethtool -K dpsbs0 tx off >/dev/null
ip -n $H addr add 198.18.50.2/24 dev dpsbh0; ip -n $H link set dpsbh0 up
ip netns exec $H ethtool -K dpsbh0 tx off >/dev/null
# load generator <-> kernel echo server
ip -n $H link add dpsbh1 type veth peer name dpsbk0 netns $K
ip -n $H addr add 198.18.51.2/24 dev dpsbh1; ip -n $H link set dpsbh1 up
ip -n $K addr add 198.18.51.1/24 dev dpsbk0; ip -n $K link set dpsbk0 up
ip -n $H link set lo up; ip -n $K link set lo up
ip netns exec $H ethtool -K dpsbh1 tx off >/dev/null
ip netns exec $K ethtool -K dpsbk0 tx off >/dev/null

HUGE="--in-memory"
[ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -ge 256 ] || HUGE="--no-huge -m 512 --no-shconf"
# shellcheck disable=SC2086
$BIN/dpstack -l 1 --no-pci $HUGE --file-prefix dpsbench --log-level=lib.eal:warning \
    --vdev=net_af_packet0,iface=dpsbs0,qpairs=1 -- --ip 198.18.50.1/24 --app udp-echo:7 \
    >/tmp/dpsbench.out 2>&1 &
DP=$!
for _ in $(seq 100); do grep -q 'dpstack: ready' /tmp/dpsbench.out && break; sleep 0.1; done
grep -q 'dpstack: ready' /tmp/dpsbench.out || { cat /tmp/dpsbench.out; exit 1; }
ip netns exec $K taskset -c 1 $BIN/udpecho-kernel --listen 198.18.51.1:7 --seconds $((SECS * 3 + 20)) &
KE=$!
sleep 0.5
LOAD="--flows $FLOWS --window $WINDOW --size $SIZE"
# Warm up ARP and caches on both paths.
ip netns exec $H taskset -c 0 $BIN/udpload --target 198.18.50.1:7 $LOAD --seconds 1 >/dev/null
ip netns exec $H taskset -c 0 $BIN/udpload --target 198.18.51.1:7 $LOAD --seconds 1 >/dev/null
DPS=$(ip netns exec $H taskset -c 0 $BIN/udpload --target 198.18.50.1:7 $LOAD --seconds $SECS)
KER=$(ip netns exec $H taskset -c 0 $BIN/udpload --target 198.18.51.1:7 $LOAD --seconds $SECS)
echo "dpstack: $DPS"
echo "kernel:  $KER"
python3 - "$DPS" "$KER" <<'PY'
import json, sys
d, k = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("ratio dpstack/kernel: round_trips_per_sec %.2f  p50 %.2f  p99 %.2f  corrupt %d/%d"
      % (d["round_trips_per_sec"] / max(k["round_trips_per_sec"], 1e-9),
         d["rtt_us_p50"] / max(k["rtt_us_p50"], 1e-9),
         d["rtt_us_p99"] / max(k["rtt_us_p99"], 1e-9),
         d["corrupt"], k["corrupt"]))
PY
