#!/usr/bin/env bash
# dpstack-bridge, checked end to end: two namespaces, A and B, each with a
# veth whose other end the bridge takes with net_af_packet, and Linux on
# both sides measuring what the bridge does to their traffic:
#
#   1. --delay-ms 10 (each way): ping RTT, expected about 20 ms;
#   2. --loss 5 (each way): ping loss, expected about 1-0.95^2 = 9.75% of
#      round trips, and 5% of each direction in the bridge's counters;
#   3. --rate-mbit 100: iperf3 TCP from A to B, expected a little under
#      100 Mbit/s of goodput (headers are counted by the bridge, not iperf3);
#   4. --delay-ms 10 --rate-mbit 100 together: a 20 ms, 100 Mbit/s WAN;
#   5. --ge-p 1 --ge-r 25 (each way): ping loss in bursts, expected
#      p/(p+r) = 3.85% per direction, 7.5% of round trips;
#   6. --duplicate 5 --reorder 10 --reorder-ms 3 (each way): ping's
#      duplicate replies, expected about 1.05^2-1 = 10.25% of round trips,
#      and the frames the bridge reordered;
#   7. the WAN of 4 with --ecn-mark-bytes 50000 and ECN on in both Linux
#      hosts (net.ipv4.tcp_ecn=1): the queue marks before it drops, so
#      iperf3 retransmits less than in 4 (slow start's overshoot still
#      fills the queue), at the same goodput; ecn_marked counts the marks.
#
#   perf/bench-bridge.sh [SECONDS]
#
# The bridge runs on CPU 1 (-l 1), everything else on CPU 0. Linux's peers
# have TSO, GSO, GRO and TX checksum offload off, so that every frame on the
# veths is a 1514-byte-or-less wire frame with its checksum done.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-5}
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then
    cargo build --release -q -p perf --bin dpstack-bridge
else
    cargo build -q -p perf --bin dpstack-bridge
fi
BIN=target/$PROFILE/dpstack-bridge
A=dpsbrA; B=dpsbrB
OUT=/tmp/dpsbridge.out
cleanup() {
    [ -n "${BR:-}" ] && kill -TERM "$BR" 2>/dev/null && wait "$BR" 2>/dev/null || true
    BR=
    [ -n "${IS:-}" ] && kill "$IS" 2>/dev/null && wait "$IS" 2>/dev/null || true
    IS=
}
teardown() {
    cleanup
    ip netns del $A 2>/dev/null || true; ip netns del $B 2>/dev/null || true
    ip link del dpsbrA0 2>/dev/null || true; ip link del dpsbrB0 2>/dev/null || true
}
trap teardown EXIT
teardown
ip netns add $A; ip netns add $B
for s in A B; do
    ns=dpsbr$s
    ip link add dpsbr${s}0 type veth peer name dpsbr${s}1
    ip link set dpsbr${s}1 netns $ns
    # The bridge's side: no IP stack of its own talking on it.
    sysctl -qw net.ipv6.conf.dpsbr${s}0.disable_ipv6=1
    ip link set dpsbr${s}0 up
    ethtool -K dpsbr${s}0 tso off gso off gro off tx off >/dev/null
    ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip -n $ns link set lo up; ip -n $ns link set dpsbr${s}1 up
    ip netns exec $ns ethtool -K dpsbr${s}1 tso off gso off gro off tx off >/dev/null
done
ip -n $A addr add 198.18.60.1/24 dev dpsbrA1
ip -n $B addr add 198.18.60.2/24 dev dpsbrB1

HUGE="--in-memory"
[ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -ge 128 ] || HUGE="--no-huge -m 512 --no-shconf"

# Start the bridge with the given options; wait until it forwards.
bridge() {
    rm -f $OUT
    # shellcheck disable=SC2086
    $BIN -l 1 --no-pci $HUGE --file-prefix dpsbridge --log-level=lib.eal:warning \
        --vdev=net_af_packet0,iface=dpsbrA0,qpairs=1 \
        --vdev=net_af_packet1,iface=dpsbrB0,qpairs=1 -- --stats-every 0 --seed 7 "$@" \
        >$OUT 2>&1 &
    BR=$!
    for _ in $(seq 100); do grep -q 'dpstack-bridge: A=' $OUT && break; sleep 0.1; done
    grep -q 'dpstack-bridge: A=' $OUT || { cat $OUT; exit 1; }
    # ARP both ways, through the bridge.
    ip netns exec $A taskset -c 0 ping -q -c 3 -i 0.2 -W 2 198.18.60.2 >/dev/null || true
}
# Stop the bridge; print its totals.
stop() {
    kill -TERM "$BR"; wait "$BR" || true; BR=
    grep 'total' $OUT | sed 's/^/    /'
}
# A counter of one direction ("A->B" or "B->A") from the bridge's totals.
counter() { grep "total.* $1:" $OUT | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }

echo "== 1. --delay-ms 10 each way: ping RTT"
bridge --delay-ms 10
P=$(ip netns exec $A taskset -c 0 ping -q -c 50 -i 0.05 198.18.60.2 | tail -1)
echo "    $P"
stop
RTT=$(echo "$P" | awk -F/ '{print $5}')
RTTMIN=$(echo "$P" | awk -F/ '{print $4}' | awk -F'= ' '{print $2}')

echo "== 2. --loss 5 each way: ping loss"
bridge --loss 5
N=$((SECS * 400))
P=$(ip netns exec $A taskset -c 0 ping -q -c $N -i 0.002 -W 1 198.18.60.2 | grep 'packet loss')
echo "    $P"
sleep 1
stop
LOSS=$(echo "$P" | sed -E 's/.* ([0-9.]+)% packet loss.*/\1/')
AB=$(python3 -c "print('%.2f' % (100 * $(counter 'A->B' dropped_loss) / max($(counter 'A->B' received), 1)))")
BA=$(python3 -c "print('%.2f' % (100 * $(counter 'B->A' dropped_loss) / max($(counter 'B->A' received), 1)))")

iperf() {
    ip netns exec $B taskset -c 0 iperf3 -s -1 -B 198.18.60.2 >/dev/null 2>&1 &
    IS=$!
    sleep 0.5
    ip netns exec $A taskset -c 0 iperf3 -c 198.18.60.2 -t "$SECS" -J \
        | python3 -c "import json,sys; r=json.load(sys.stdin)['end']; print('%.1f %d' % (r['sum_received']['bits_per_second']/1e6, r['sum_sent'].get('retransmits', 0)))"
    wait "$IS" || true; IS=
}

echo "== 3. --rate-mbit 100: iperf3 TCP A -> B"
bridge --rate-mbit 100
R=$(iperf)
echo "    goodput $(echo "$R" | cut -d' ' -f1) Mbit/s, retransmits $(echo "$R" | cut -d' ' -f2)"
stop
RATE=$(echo "$R" | cut -d' ' -f1)

echo "== 4. --delay-ms 10 --rate-mbit 100 --queue-bytes 250000: iperf3 TCP A -> B"
bridge --delay-ms 10 --rate-mbit 100 --queue-bytes 250000
W=$(iperf)
echo "    goodput $(echo "$W" | cut -d' ' -f1) Mbit/s, retransmits $(echo "$W" | cut -d' ' -f2)"
stop
WAN=$(echo "$W" | cut -d' ' -f1)

echo "== 5. --ge-p 1 --ge-r 25 each way: ping loss in bursts"
bridge --ge-p 1 --ge-r 25
P=$(ip netns exec $A taskset -c 0 ping -q -c $N -i 0.002 -W 1 198.18.60.2 | grep 'packet loss')
echo "    $P"
sleep 1
stop
GE=$(echo "$P" | sed -E 's/.* ([0-9.]+)% packet loss.*/\1/')
GEAB=$(python3 -c "print('%.2f' % (100 * $(counter 'A->B' dropped_burst_loss) / max($(counter 'A->B' received), 1)))")
GEBA=$(python3 -c "print('%.2f' % (100 * $(counter 'B->A' dropped_burst_loss) / max($(counter 'B->A' received), 1)))")

echo "== 6. --duplicate 5 --reorder 10 --reorder-ms 3 each way: ping duplicates"
bridge --duplicate 5 --reorder 10 --reorder-ms 3
P=$(ip netns exec $A taskset -c 0 ping -q -c $N -i 0.002 -W 1 198.18.60.2 | grep 'packet loss')
echo "    $P"
sleep 1
stop
DUP=$(echo "$P" | sed -E 's/.*\+([0-9]+) duplicates.*/\1/')
DUP=$(python3 -c "print('%.2f' % (100 * ${DUP:-0} / $N))")

echo "== 7. --delay-ms 10 --rate-mbit 100 --queue-bytes 250000 --ecn-mark-bytes 50000, ECN on: iperf3 TCP A -> B"
for ns in $A $B; do ip netns exec $ns sysctl -qw net.ipv4.tcp_ecn=1; done
bridge --delay-ms 10 --rate-mbit 100 --queue-bytes 250000 --ecn-mark-bytes 50000
E=$(iperf)
echo "    goodput $(echo "$E" | cut -d' ' -f1) Mbit/s, retransmits $(echo "$E" | cut -d' ' -f2)"
stop
ECNWAN=$(echo "$E" | cut -d' ' -f1)
ECNRTX=$(echo "$E" | cut -d' ' -f2)
MARKED=$(counter 'A->B' ecn_marked)

echo "summary: rtt_ms_avg=$RTT rtt_ms_min=$RTTMIN (want ~20) ping_loss_pct=$LOSS (want ~9.75) loss_a_to_b_pct=$AB loss_b_to_a_pct=$BA (want ~5) tcp_mbit=$RATE (want ~95) wan_tcp_mbit=$WAN ge_ping_loss_pct=$GE (want ~7.5) ge_loss_a_to_b_pct=$GEAB ge_loss_b_to_a_pct=$GEBA (want ~3.85) ping_dup_pct=$DUP (want ~10.25) ecn_wan_tcp_mbit=$ECNWAN ecn_retransmits=$ECNRTX (want fewer than section 4's $(echo "$W" | cut -d' ' -f2)) ecn_marked_a_to_b=$MARKED"
