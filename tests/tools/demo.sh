#!/usr/bin/env bash
# make demo: a test host in a network namespace, dpstack on 2 lcores over a
# veth pair (net_af_packet, qpairs=2), pinged and ARPed from the host, a UDP
# echo round trip, HTTP with curl, 10 MB through TCP echo, then SIGTERM and
# the final counters, with the flow records (which core handled which flow).
# Before the end: a short capture by dpdk-dumpcap read back with tcpdump
# (with hugepages: capture needs EAL's shared configuration), a curl of
# the Prometheus endpoint, and a connection held open by curl shown by
# dpstack-ss (the connections view, read from DPDK telemetry).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/release/dpstack}
SS=${SS:-target/release/dpstack-ss}
NS=dpsdemo
A=dpdemo0   # dpstack's end
B=dpdemo1   # the host's end
OUT=$(mktemp)
PCAP=/tmp/dpsdemo.pcapng
METRICS=127.0.0.1:9464

cleanup() {
    [ -n "${CURL:-}" ] && kill "$CURL" 2>/dev/null || true
    [ -n "${PID:-}" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    ip link del "$A" 2>/dev/null || true
    rm -f "$OUT" "$PCAP" /dev/hugepages/dpsdemomap_*
}
trap cleanup EXIT
cleanup

ip netns add "$NS"
ip link add "$A" type veth peer name "$B"
ip link set "$B" netns "$NS"
ip link set "$A" up
ethtool -K "$A" tx off >/dev/null
ip -n "$NS" addr add 198.18.0.2/24 dev "$B"
ip -n "$NS" link set "$B" up
ip -n "$NS" link set lo up
ip netns exec "$NS" ethtool -K "$B" tx off >/dev/null

# With hugepages, EAL's shared configuration (no --in-memory), so that
# dpdk-dumpcap can attach as a secondary process.
HUGE=""
CAPTURE=1
[ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -ge 256 ] || { HUGE="--no-huge -m 512 --no-shconf"; CAPTURE=0; }
echo "+ $BIN -l 0-1 --no-pci $HUGE --file-prefix dpsdemo --vdev=net_af_packet0,iface=$A,qpairs=2 -- --ip 198.18.0.1/24 --stats-interval 2 --flow-records 64 --app udp-echo:7 --app tcp-echo:7 --app http:80:64 --metrics $METRICS"
# shellcheck disable=SC2086
"$BIN" -l 0-1 --no-pci $HUGE --file-prefix dpsdemo --log-level=lib.eal:warning \
    --vdev=net_af_packet0,iface=$A,qpairs=2 -- \
    --ip 198.18.0.1/24 --stats-interval 2 --flow-records 64 --app udp-echo:7 --app tcp-echo:7 --app http:80:64 --metrics $METRICS >"$OUT" 2>&1 &
PID=$!
for _ in $(seq 100); do grep -q 'dpstack: ready' "$OUT" && break; sleep 0.1; done
grep '^dpstack:' "$OUT" || { cat "$OUT"; exit 1; }

echo; echo "+ ip netns exec $NS arping -c 2 -I $B 198.18.0.1"
ip netns exec "$NS" arping -c 2 -I "$B" 198.18.0.1
echo; echo "+ ip netns exec $NS ping -c 5 -i 0.2 198.18.0.1"
ip netns exec "$NS" ping -c 5 -i 0.2 198.18.0.1
echo; echo "+ ip netns exec $NS ping -c 3 -s 1472 198.18.0.1"
ip netns exec "$NS" ping -c 3 -s 1472 198.18.0.1
echo; echo "+ ip -n $NS neigh show 198.18.0.1"
ip -n "$NS" neigh show 198.18.0.1
echo; echo "+ UDP echo of 'hello dpstack' to 198.18.0.1:7"
ip netns exec "$NS" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.sendto(b"hello dpstack", ("198.18.0.1", 7)); print("reply:", s.recvfrom(2048))'

echo; echo "+ ip netns exec $NS curl -si http://198.18.0.1/ (keep-alive, twice)"
ip netns exec "$NS" curl -si --max-time 5 http://198.18.0.1/ http://198.18.0.1/again
echo; echo "+ 10 MB through tcp-echo:7 both ways, sha256 compared"
ip netns exec "$NS" python3 tests/tools/tcp.py stream 198.18.0.1 7 10000000

if [ "$CAPTURE" = 1 ]; then
    echo; echo "+ dpdk-dumpcap --file-prefix=dpsdemo -i net_af_packet0 -f icmp -c 6 -w $PCAP (while the host pings 3 times)"
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/librte_mempool_dpaa.so.23 timeout 20 stdbuf -oL \
        dpdk-dumpcap --file-prefix=dpsdemo -i net_af_packet0 -f icmp -c 6 -w "$PCAP" >"$PCAP.log" 2>&1 &
    DUMPCAP=$!
    for _ in $(seq 100); do grep -q 'Capturing on' "$PCAP.log" && break; sleep 0.1; done
    ip netns exec "$NS" ping -c 3 -i 0.2 198.18.0.1 >/dev/null
    wait "$DUMPCAP" || { cat "$PCAP.log"; exit 1; }
    rm -f "$PCAP.log"
    echo "+ tcpdump -nr $PCAP"
    tcpdump -nr "$PCAP" 2>/dev/null
else
    echo; echo "(no free hugepages: dpstack runs with --no-shconf and dpdk-dumpcap cannot attach)"
fi

echo; echo "+ curl -s http://$METRICS/metrics (a few of its lines)"
curl -s --max-time 5 "http://$METRICS/metrics" |
    grep -E '^dpstack_(rx_packets_total|tx_packets_total|icmp_echo_replies_total|tcp_established|app_echoed|latency_seconds_(bucket\{kind="icmp",le="(1e-05|0.0001)"\}|count))'

echo; echo "+ ip netns exec $NS curl --rate 4/m http://198.18.0.1/ http://198.18.0.1/ & (two GETs 15 s apart, one connection)"
ip netns exec "$NS" curl -s --max-time 30 --rate 4/m -o /dev/null -o /dev/null http://198.18.0.1/ http://198.18.0.1/ &
CURL=$!
sleep 1
echo "+ $SS --file-prefix dpsdemo -a (dpstack's connections, as ss -tina)"
"$SS" --file-prefix dpsdemo -a
kill "$CURL" 2>/dev/null || true
wait "$CURL" 2>/dev/null || true
CURL=

echo; echo "+ kill -TERM dpstack"
kill -TERM "$PID"
wait "$PID"; rc=$?; PID=
echo "dpstack exited with $rc; its final counters:"
grep -E '^(dpstack: stopping|final)' "$OUT" | perl -pe 's/ (?!core=|in_use=)[a-z0-9_]+=0\b//g'
