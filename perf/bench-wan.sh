#!/usr/bin/env bash
# Issue 14's "side by side with Linux" rows 1 and 2: a sender behind
# dpstack-bridge at 20 ms RTT (10 ms each way) and 500 Mbit/s, a Linux
# receiver (perf/wan_tcp.py sink) on the other side, and the sender either
# dpstack (af_packet, 1 lcore, `tcp-send`) or Linux (perf/wan_tcp.py send,
# CUBIC), through the same bridge in the same run:
#
#   1. bulk: one transfer (200 MB; --smoke: 20 MB) at 0%, 0.5% and 2%
#      random loss of the sender's frames: goodput as the sink saw it, from
#      accept to the sender's FIN. A transfer still running CAP seconds
#      after accept (20; --smoke: 3) is cut there by the sink (a reset), and
#      its goodput is what arrived by then ("capped": true): loss-limited
#      TCP at 20 ms moves 5-20 Mbit/s, and 200 MB would take minutes.
#   2. fct: 1000 transfers (--smoke: 40) of 64 KB on new connections at 1%
#      loss, 4 at a time (250 after each other on each of 4 connection
#      slots): flow completion time, connect to the sink's FIN, p50 and p99.
#
#   perf/bench-wan.sh [--smoke]     (root; about 3 minutes, --smoke 30 s)
#   (environment: LOSSES="0 0.5 2", FCT_N=1000 (0: no FCT row), SINK_CPU=0,
#   DP_TCP_ARGS="")
#
# One JSON line per measurement on stdout, then a summary with the ratios
# dpstack/Linux. Loss is on the data direction only (sender to sink); ACKs
# cross a clean path, with the same delay and rate limit. The bottleneck
# queue is one BDP: 20 ms * 500 Mbit/s = 1.25 MB (--queue-bytes 1250000);
# --limit (frames held per direction, 8192) covers it and the delay line
# (10 ms at 500 Mbit/s is about 413 full frames).
#
# Placement (2 CPUs): the bridge on CPU 1; the sender (dpstack's lcore or
# Linux's python sender) and the sink on CPU 0, with RPS steering both
# namespaces' receive processing to CPU 0 too. dpstack's lcore busy-polls,
# so it shares CPU 0 with the sink; Linux's sender sleeps when it can.
#
# Linux: CUBIC (set per socket), tcp_no_metrics_save=1 (no cached ssthresh
# carried from one transfer to the next, as dpstack has none), the kernel's
# buffer limits (tcp_wmem max 4 MB, tcp_rmem max 32 MB); dpstack: its defaults
# (CUBIC with HyStart++, IW10, buffers autotuned from 128 KiB to --tcp-wmem's
# 4 MiB, as Linux's). DP_TCP_ARGS adds dpstack options (e.g.
# DP_TCP_ARGS="--tcp-buffer 4194304" for fixed buffers). TSO, GSO, GRO and
# TX checksum offload are off on every veth end, so both senders put
# 1514-byte frames on the wire.
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE=0
[ "${1:-}" = --smoke ] && SMOKE=1
if [ $SMOKE = 1 ]; then
    BULK=20000000; CAP=3; FCT_N=${FCT_N:-40}
else
    BULK=200000000; CAP=20; FCT_N=${FCT_N:-1000}
fi
# The sink's CPU (0: beside the sender, as documented; 1: beside the bridge,
# to see what sharing CPU 0 with dpstack's busy-polling lcore costs).
SINK_CPU=${SINK_CPU:-0}
# Extra dpstack options (word-split): none, the defaults autotune buffers.
DP_TCP_ARGS=${DP_TCP_ARGS:-}
FCT_PAR=4; FCT_BYTES=65536; FCT_LOSS=1
LOSSES=${LOSSES:-"0 0.5 2"}
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then
    cargo build --release -q -p dpstack --bin dpstack
    cargo build --release -q -p perf --bin dpstack-bridge
else
    cargo build -q -p dpstack --bin dpstack
    cargo build -q -p perf --bin dpstack-bridge
fi
DP=target/$PROFILE/dpstack
BRIDGE=target/$PROFILE/dpstack-bridge
TOOL="python3 perf/wan_tcp.py"
S=dpwanS; R=dpwanR
LINUX_IP=198.18.62.1; SINK_IP=198.18.62.2; DP_IP=198.18.62.3; PORT=5001
TMP=$(mktemp -d /tmp/dpwan.XXXXXX)
RESULTS=$TMP/results.jsonl

stop_pid() {
    # Stop one process we started, by its id: SIGINT, then SIGKILL.
    local pid=$1
    kill -INT "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    [ -n "${DPID:-}" ] && stop_pid "$DPID"; DPID=
    [ -n "${SINK:-}" ] && stop_pid "$SINK"; SINK=
    [ -n "${BR:-}" ] && stop_pid "$BR"; BR=
}
teardown() {
    cleanup
    ip netns del $S 2>/dev/null || true; ip netns del $R 2>/dev/null || true
    ip link del ${S}0 2>/dev/null || true; ip link del ${R}0 2>/dev/null || true
}
trap teardown EXIT
trap 'echo "bench-wan: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
teardown

ip netns add $S; ip netns add $R
for ns in $S $R; do
    ip link add ${ns}0 type veth peer name ${ns}1
    ip link set ${ns}1 netns $ns
    # The bridge's side: no IP stack of its own talking on it.
    sysctl -qw net.ipv6.conf.${ns}0.disable_ipv6=1
    ip link set ${ns}0 up
    ethtool -K ${ns}0 tso off gso off gro off tx off >/dev/null
    ip netns exec $ns sysctl -qw net.ipv6.conf.all.disable_ipv6=1
    ip -n $ns link set lo up; ip -n $ns link set ${ns}1 up
    ip netns exec $ns ethtool -K ${ns}1 tso off gso off gro off tx off >/dev/null
    # Receive processing (the kernel's TCP, and af_packet's copy for
    # dpstack) on CPU 0, beside the sender and the sink, not on the
    # bridge's CPU that transmits into the veth.
    ip netns exec $ns sh -c "echo 1 > /sys/class/net/${ns}1/queues/rx-0/rps_cpus"
done
ip -n $S addr add $LINUX_IP/24 dev ${S}1
ip -n $R addr add $SINK_IP/24 dev ${R}1
# CUBIC per socket (TCP_CONGESTION in wan_tcp.py, root may pick any
# available algorithm): this kernel's default is BBR, and a namespace may
# only pick from tcp_allowed_congestion_control (reno bbr here).
ip netns exec $S sysctl -qw net.ipv4.tcp_no_metrics_save=1

# EAL memory: hugepages if free, else plain memory.
eal_mem() {
    if [ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -ge 160 ]; then
        echo "--in-memory"
    else
        echo "--no-huge -m 512 --no-shconf"
    fi
}

# bridge LOSS: the WAN, LOSS percent lost from the sender's side (A) to B.
# Its output in a file of its own ($BOUT): a new bridge's output must not be
# mistaken for the last one's.
bridge() {
    BOUT=$TMP/bridge-$1.out
    # shellcheck disable=SC2046
    $BRIDGE -l 1 --no-pci $(eal_mem) --file-prefix dpwanbr --log-level=lib.eal:warning \
        --vdev=net_af_packet0,iface=${S}0,qpairs=1 \
        --vdev=net_af_packet1,iface=${R}0,qpairs=1 -- --stats-every 0 --seed 7 \
        --delay-ms 10 --rate-mbit 500 --queue-bytes 1250000 --loss "$1",0 \
        >"$BOUT" 2>&1 &
    BR=$!
    for _ in $(seq 300); do grep -qs 'dpstack-bridge: A=' "$BOUT" && break; sleep 0.1; done
    grep -qs 'dpstack-bridge: A=' "$BOUT" || {
        echo "bench-wan: the bridge did not start in 30 s:" >&2; cat "$BOUT" >&2; exit 1
    }
    # ARP both ways, through the bridge (and its loss: a few tries).
    ip netns exec $S ping -q -c 3 -i 0.2 -W 2 $SINK_IP >/dev/null || true
}
stop_bridge() {
    stop_pid "$BR"; BR=
    grep 'total' "$BOUT" | sed 's/^/# bridge /' >&2 || true
}

# sink NAME [CAP]: the Linux sink in R on CPU 0, its lines in $TMP/NAME.sink.
sink() {
    ip netns exec $R taskset -c "$SINK_CPU" $TOOL sink --bind $SINK_IP --port $PORT \
        --cap-secs "${2:-0}" >"$TMP/$1.sink" 2>&1 &
    SINK=$!
    for _ in $(seq 50); do grep -q listening "$TMP/$1.sink" && break; sleep 0.1; done
}
stop_sink() { stop_pid "$SINK"; SINK=; }

# dpstack_send NAME BYTES CONNS REPEAT TIMEOUT: tcp-send on 1 lcore (CPU 0)
# until every transfer is done; its output in $TMP/NAME.dp.
dpstack_send() {
    local out=$TMP/$1.dp app="tcp-send:$SINK_IP:$PORT"
    # shellcheck disable=SC2046,SC2086
    ip netns exec $S $DP -l 0 --no-pci $(eal_mem) --file-prefix dpwandp \
        --log-level=lib.eal:warning --vdev=net_af_packet0,iface=${S}1,qpairs=1 -- \
        --ip $DP_IP/24 --stats-interval 1 $DP_TCP_ARGS \
        --app "$app:$2:$3:$4" >"$out" 2>&1 &
    DPID=$!
    local deadline=$((SECONDS + $5))
    while [ $SECONDS -lt $deadline ]; do
        if ! kill -0 $DPID 2>/dev/null; then
            echo "dpstack exited early:" >&2; tail -20 "$out" >&2; break
        fi
        grep "^stats core=0 app=$app " "$out" 2>/dev/null | tail -1 | grep -q ' pending=0 ' && break
        sleep 0.2
    done
    stop_pid $DPID; DPID=
}

# linux_send NAME BYTES COUNT PAR: PAR senders, COUNT transfers each.
linux_send() {
    local pids=()
    for p in $(seq "$4"); do
        ip netns exec $S taskset -c 0 $TOOL send --to $SINK_IP:$PORT --bytes "$2" \
            --count "$3" --fcts >"$TMP/$1.linux.$p" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
}
retrans() { ip netns exec $S nstat -asz TcpRetransSegs | awk '/TcpRetransSegs/ {print $2}'; }

# emit ROW STACK LOSS JSON-FIELDS: one measurement line.
emit() {
    python3 -c "
import json, sys
d = {'bench': 'wan', 'row': sys.argv[1], 'stack': sys.argv[2], 'loss_pct': float(sys.argv[3])}
d.update(json.loads(sys.argv[4]))
print(json.dumps(d))" "$@" | tee -a "$RESULTS"
}
# The sink's line for the one bulk connection, as JSON fields.
bulk_fields() {
    python3 -c "
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{\"peer')]
if not rows:
    print(json.dumps({'bytes': 0, 'secs': 0, 'goodput_mbit': 0, 'ok': False, 'capped': False}))
else:
    r = rows[0]
    print(json.dumps({'bytes': r['bytes'], 'secs': r['secs'], 'goodput_mbit': r['mbit'],
                      'ok': r['ok'], 'capped': r['capped'], 'complete': r['ok'] and not r['capped'],
                      'sink_connections': len(rows), 'extra': json.loads(sys.argv[2])}))
" "$@"
}
fct_fields() {
    python3 -c "
import json, sys
r = json.loads(sys.argv[1]); sink = [json.loads(l) for l in open(sys.argv[2]) if l.startswith('{\"peer')]
out = {'transfers': r['completed'] + r['failed'], 'bytes': int(sys.argv[3]),
       'completed': r['completed'], 'failed': r['failed'],
       'sink_ok': sum(1 for s in sink if s['ok'] and s['bytes'] == int(sys.argv[3]))}
for q in ('min', 'p50', 'p90', 'p99', 'max', 'mean'):
    out[f'fct_{q}_ms'] = round(r[f'fct_{q}_us'] / 1000, 2)
out['extra'] = {k: v for k, v in r.items() if k.startswith('tcp_') or k.startswith('drop_')}
print(json.dumps(out))" "$@"
}

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
echo "# bench-wan: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs));" \
    "bridge on CPU 1, sender and sink on CPU 0 (only 2 CPUs); load average $LOAD;" \
    "commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)$([ $SMOKE = 1 ] && echo ', smoke')"

for loss in $LOSSES; do
    bridge "$loss"
    echo "# bulk, $loss% loss: dpstack" >&2
    sink "bulk-$loss-dp" $CAP
    dpstack_send "bulk-$loss" $BULK 1 1 $((CAP + 30))
    sleep 0.3; stop_sink
    extra=$($TOOL dpstack-final "$TMP/bulk-$loss.dp")
    emit bulk dpstack "$loss" "$(bulk_fields "$TMP/bulk-$loss-dp.sink" "$extra")"
    echo "# bulk, $loss% loss: Linux" >&2
    sink "bulk-$loss-linux" $CAP
    before=$(retrans)
    linux_send "bulk-$loss" $BULK 1 1
    after=$(retrans)
    sleep 0.3; stop_sink
    emit bulk linux "$loss" "$(bulk_fields "$TMP/bulk-$loss-linux.sink" \
        "{\"tcp_retransmits\": $((after - before))}")"
    stop_bridge
done

[ "$FCT_N" -gt 0 ] && {
bridge $FCT_LOSS
PER=$((FCT_N / FCT_PAR))
echo "# fct, $FCT_N x $FCT_BYTES bytes, $FCT_LOSS% loss: dpstack" >&2
sink fct-dp
dpstack_send fct $FCT_BYTES $FCT_PAR $PER $((FCT_N / 2 + 60))
sleep 0.3; stop_sink
emit fct dpstack $FCT_LOSS "$(fct_fields "$($TOOL dpstack-final "$TMP/fct.dp")" "$TMP/fct-dp.sink" $FCT_BYTES)"
echo "# fct, $FCT_N x $FCT_BYTES bytes, $FCT_LOSS% loss: Linux" >&2
sink fct-linux
before=$(retrans)
linux_send fct $FCT_BYTES $PER $FCT_PAR
after=$(retrans)
sleep 0.3; stop_sink
merged=$($TOOL merge-fcts "$TMP"/fct.linux.*)
merged=$(echo "$merged" | python3 -c "import json,sys; d=json.load(sys.stdin); d['tcp_retransmits']=$((after - before)); print(json.dumps(d))")
emit fct linux $FCT_LOSS "$(fct_fields "$merged" "$TMP/fct-linux.sink" $FCT_BYTES)"
stop_bridge
}

echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (at the start: $LOAD)"
$TOOL summary "$RESULTS"
echo "# raw outputs in $TMP"
