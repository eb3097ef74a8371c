#!/usr/bin/env bash
# Issue 14's "side by side with Linux" rows 1 to 4. Rows 1-3: a sender behind
# dpstack-bridge at 20 ms RTT (10 ms each way) and 500 Mbit/s, a Linux
# receiver (perf/wan_tcp.py sink) on the other side, and the sender either
# dpstack (af_packet, 1 lcore, `tcp-send`) or Linux (perf/wan_tcp.py send,
# CUBIC), through the same bridge in the same run (each stack on a veth of
# its own in the senders' namespace, joined by a kernel bridge to the veth
# into dpstack-bridge):
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
#   3. fair: 4 flows at once for FAIR_SECS (30; --smoke: 5) through the
#      one bottleneck, no random loss: 4 dpstack flows (one tcp-send with 4
#      connections), 4 Linux flows, then 2 dpstack and 2 Linux together
#      (Linux's let go the moment dpstack's tcp-send opens its connections).
#      Each flow runs until the sink cuts it FAIR_SECS after its accept;
#      per-flow goodput, Jain's fairness index over the 4, and in the mixed
#      run each stack's share of the total.
#   4. echo: on a plain veth pair (no bridge, 50 us RTT), a Linux client in
#      a namespace sends ECHO_BYTES (40 MB; --smoke: 4 MB) through an echo
#      server and reads it back: dpstack `tcp-echo` (1 lcore, CPU 1, af_packet)
#      or a Linux echo server (wan_tcp.py echo-server, CPU 1, in a namespace
#      of its own) on the same veth end. nftables in the client's namespace
#      drops 1% of the client's segments and 1% or 3% of the server's
#      (numgen random, TCP to and from the echo port only), counting both:
#      the loss actually applied is in each line. Time from connect to the
#      last byte back, and goodput.
#
# Rows 1 (at 0% loss) and 3 also log goodput per 100 ms at the sink and
# each sender's congestion window every 20 ms (dpstack: tcp-send's
# SAMPLE_MS; Linux: TCP_INFO read by the sender), as CSV in OUTDIR, and
# plot them there (dpstack-gen plot-series; PNGs to $IMG if set).
#
#   perf/bench-wan.sh [--smoke] [OUTDIR]   (root; about 12 minutes, --smoke 1)
#   (environment: ROWS="bulk fct fair echo", FAIR_KINDS="dpstack linux mixed",
#    BULK_RUNS=3, FAIR_RUNS=3 (--smoke: 1), LOSSES="0 0.5 2", FCT_N=1000
#    (0: no FCT row), FAIR_SECS=30, ECHO_LOSSES="1 3", ECHO_RUNS=5, SINK_CPU=0, IMG,
#    DP_TCP_ARGS="", FCT_PCAP=1: capture row 2 and break its FCTs down,
#    perf/fct_pcap.py)
#
# One JSON line per measurement on stdout (and in OUTDIR/wan.jsonl), then a
# summary with the ratios dpstack/Linux. Rows 1-3: loss is on the data
# direction only (sender to sink); ACKs
# cross a clean path, with the same delay and rate limit. The bottleneck
# queue is one BDP: 20 ms * 500 Mbit/s = 1.25 MB (--queue-bytes 1250000);
# --limit (frames held per direction, 8192) covers it and the delay line
# (10 ms at 500 Mbit/s is about 413 full frames).
#
# Placement (2 CPUs): the bridge on CPU 1; the sender (dpstack's lcore or
# Linux's python sender) and the sink on CPU 0, with RPS steering both
# namespaces' receive processing to CPU 0 too. Linux's sender sleeps when
# it can; dpstack's lcore, sharing CPU 0 with the sink, runs as a user on a
# shared CPU would run it, with --idle-sleep (DP_IDLE_SLEEP us, 20; 0 to
# busy-poll): idle that long, it sleeps that long and the sink has the CPU.
# Busy-polling, it took the sink's CPU in time slices: the sink read and
# acknowledged in bursts, the four-flow row's slow starts overshot by
# several times the path (cwnds of 1-3 MB each on a 2.5 MB path) and the
# flows came out of them unequal (Jain's index 0.76-0.97 over 15 s runs);
# with it 0.96-0.99 in row-only runs on a quiet machine, though 0.917 in
# make bench at 5eaee6d: which flow leaves slow start with the largest
# window still decides most of it (docs/benchmarks-history.md, 2026-12-04).
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
# One run at a time: every run uses the same namespaces (dpwanS, dpwanR,
# ...) and deletes them when it ends.
if [ "${DPWAN_LOCKED:-}" != 1 ]; then
    DPWAN_LOCKED=1 exec flock /tmp/wan.lock bash "$(realpath "$0")" "$@"
fi
SMOKE=0
[ "${1:-}" = --smoke ] && { SMOKE=1; shift; }
if [ $SMOKE = 1 ]; then
    BULK=20000000; CAP=3; FCT_N=${FCT_N:-40}; FAIR_SECS=${FAIR_SECS:-5}; ECHO_BYTES=4000000
else
    BULK=200000000; CAP=20; FCT_N=${FCT_N:-1000}; FAIR_SECS=${FAIR_SECS:-30}; ECHO_BYTES=40000000
fi
ROWS=${ROWS:-"bulk fct fair echo"}
FAIR_KINDS=${FAIR_KINDS:-"dpstack linux mixed"}
# Runs of each row-1 transfer and each row-3 set, alternating between the
# stacks (the report takes each one's median run): one run of either swings
# with where the random drops, or the slow starts' losses, fall.
BULK_RUNS=${BULK_RUNS:-$([ $SMOKE = 1 ] && echo 1 || echo 3)}
FAIR_RUNS=${FAIR_RUNS:-$([ $SMOKE = 1 ] && echo 1 || echo 3)}
RUN=1
ECHO_LOSSES=${ECHO_LOSSES:-"1 3"}
# Echo runs per stack and loss (a single one swings 2-3x either way with
# where the random drops fall): the report compares the medians.
ECHO_RUNS=${ECHO_RUNS:-$([ $SMOKE = 1 ] && echo 1 || echo 5)}
# Each fair flow has more to send than the run lets it: the sink cuts it.
FAIR_BYTES=4000000000
# Congestion windows sampled this often (ms), goodput per 100 ms.
SAMPLE_MS=20
# The sink's CPU (0: beside the sender, as documented; 1: beside the bridge,
# to see what sharing CPU 0 with dpstack's busy-polling lcore costs).
SINK_CPU=${SINK_CPU:-0}
# Extra dpstack options (word-split): none, the defaults autotune buffers.
DP_TCP_ARGS=${DP_TCP_ARGS:-}
# dpstack's --idle-sleep (us; 0: busy-poll), see Placement above.
DP_IDLE_SLEEP=${DP_IDLE_SLEEP:-20}
FCT_PAR=4; FCT_BYTES=65536; FCT_LOSS=1
FCT_PCAP=${FCT_PCAP:-0}
LOSSES=${LOSSES:-"0 0.5 2"}
PROFILE=${PROFILE:-release}
if [ "$PROFILE" = release ]; then
    cargo build --release -q -p dpstack --bin dpstack
    cargo build --release -q -p perf --bin dpstack-bridge --bin dpstack-gen
else
    cargo build -q -p dpstack --bin dpstack
    cargo build -q -p perf --bin dpstack-bridge --bin dpstack-gen
fi
DP=target/$PROFILE/dpstack
BRIDGE=target/$PROFILE/dpstack-bridge
GEN=target/$PROFILE/dpstack-gen
TOOL="python3 perf/wan_tcp.py"
S=dpwanS; R=dpwanR
LINUX_IP=198.18.62.1; SINK_IP=198.18.62.2; DP_IP=198.18.62.3; PORT=5001
if [ -n "${1:-}" ]; then
    TMP=$1; mkdir -p "$TMP"; rm -f "$TMP"/wan* "$TMP"/*.sink "$TMP"/*.dp "$TMP"/*.linux*
else
    TMP=$(mktemp -d /tmp/dpwan.XXXXXX)
fi
IMG=${IMG:-$TMP}
mkdir -p "$IMG"
RESULTS=$TMP/wan.jsonl
# Row 4's namespaces and veth: the client, and Linux's echo server.
E=dpechoC; K=dpechoK
ECHO_PORT=7007; ECHO_DP_IP=198.18.63.1; ECHO_CLIENT_IP=198.18.63.2

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
    [ -n "${ECHO:-}" ] && stop_pid "$ECHO"; ECHO=
    [ -n "${TCPDUMP:-}" ] && stop_pid "$TCPDUMP"; TCPDUMP=
}
teardown() {
    cleanup
    ip netns del $S 2>/dev/null || true; ip netns del $R 2>/dev/null || true
    ip link del ${S}0 2>/dev/null || true; ip link del ${R}0 2>/dev/null || true
    ip netns del $E 2>/dev/null || true; ip netns del $K 2>/dev/null || true
    ip link del dpe0 2>/dev/null || true
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
# The senders' side: each stack on a veth of its own, joined to ${S}1 by a
# kernel bridge in the namespace (${S}d1: dpstack's af_packet; ${S}l1:
# Linux's address). On one shared veth, dpstack's af_packet socket got a
# copy of every frame on it, Linux's outgoing data included (the PMD does
# not set PACKET_IGNORE_OUTGOING): in the mixed fair run its lcore took in
# ~490,000 frames for ~150,000 sent and its ring dropped ~4,000-5,800 of
# them, its own ACKs among them, on a cost Linux's senders did not have.
# The bridge learns each stack's MAC and forwards it only its own frames.
ip netns exec $S sysctl -qw net.ipv6.conf.default.disable_ipv6=1
ip -n $S link add ${S}br type bridge
ip -n $S link set ${S}1 master ${S}br
for p in d l; do
    ip -n $S link add ${S}${p}0 type veth peer name ${S}${p}1
    ip -n $S link set ${S}${p}0 master ${S}br
    for e in ${S}${p}0 ${S}${p}1; do
        ip netns exec $S ethtool -K $e tso off gso off gro off tx off >/dev/null
        ip -n $S link set $e up
    done
    ip netns exec $S sh -c "echo 1 > /sys/class/net/${S}${p}1/queues/rx-0/rps_cpus"
done
ip -n $S link set ${S}br up
ip -n $S addr add $LINUX_IP/24 dev ${S}l1
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
    local try
    # A fresh-clone CI run once saw a bridge print nothing for 30 s (not seen
    # again in many runs): where it was stuck goes to stderr, and it is
    # started once more before the run gives up.
    for try in 1 2; do
        # Emptied before the start: the last bridge's "A=" must not be read
        # as this one's (the shell truncates only once the child runs).
        : >"$BOUT"
        # shellcheck disable=SC2046
        $BRIDGE -l 1 --no-pci $(eal_mem) --file-prefix dpwanbr --log-level=lib.eal:warning \
            --vdev=net_af_packet0,iface=${S}0,qpairs=1 \
            --vdev=net_af_packet1,iface=${R}0,qpairs=1 -- --stats-every 0 --seed 7 \
            --delay-ms 10 --rate-mbit 500 --queue-bytes 1250000 --loss "$1",0 \
            >"$BOUT" 2>&1 &
        BR=$!
        for _ in $(seq 300); do grep -qs 'dpstack-bridge: A=' "$BOUT" && break; sleep 0.1; done
        grep -qs 'dpstack-bridge: A=' "$BOUT" && break
        echo "bench-wan: the bridge did not start in 30 s (try $try), its output:" >&2
        cat "$BOUT" >&2
        for t in /proc/$BR/task/*; do
            echo "# thread ${t##*/}: $(tr -d '\0' <"$t/comm" 2>/dev/null)" \
                "state $(awk '/^State/ {print $2}' "$t/status" 2>/dev/null)" \
                "wchan $(cat "$t/wchan" 2>/dev/null)" >&2
            cat "$t/stack" >&2 2>/dev/null || true
        done
        grep -E 'HugePages_(Total|Free)' /proc/meminfo >&2 || true
        stop_pid "$BR"; BR=
        [ "$try" = 2 ] && exit 1
    done
    # ARP both ways, through the bridge (and its loss: a few tries).
    ip netns exec $S ping -q -c 3 -i 0.2 -W 2 $SINK_IP >/dev/null || true
}
stop_bridge() {
    stop_pid "$BR"; BR=
    grep 'total' "$BOUT" | sed 's/^/# bridge /' >&2 || true
}

# sink NAME [CAP [SERIES-LABEL]]: the Linux sink in R on CPU 0, its lines
# in $TMP/NAME.sink; with a label, goodput per 100 ms in $TMP/wan-NAME.goodput.csv.
sink() {
    local series=()
    [ -n "${3:-}" ] && series=(--series "$TMP/wan-$1.goodput.csv" --label "$3")
    : >"$TMP/$1.sink"
    ip netns exec $R taskset -c "$SINK_CPU" $TOOL sink --bind $SINK_IP --port $PORT \
        --cap-secs "${2:-0}" "${series[@]}" >"$TMP/$1.sink" 2>&1 &
    SINK=$!
    for _ in $(seq 50); do grep -q listening "$TMP/$1.sink" && break; sleep 0.1; done
}
stop_sink() { stop_pid "$SINK"; SINK=; }

# dpstack_start NAME BYTES CONNS REPEAT [SAMPLE_MS]: tcp-send on 1 lcore
# (CPU 0), its output in $TMP/NAME.dp; returns once it is ready.
# dpstack_wait NAME TIMEOUT: until every transfer is done, then stops it.
# dpstack_send NAME BYTES CONNS REPEAT TIMEOUT [SAMPLE_MS]: both.
dpstack_start() {
    local out=$TMP/$1.dp app="tcp-send:$SINK_IP:$PORT"
    : >"$out"
    # shellcheck disable=SC2046,SC2086
    ip netns exec $S $DP -l 0 --no-pci $(eal_mem) --file-prefix dpwandp \
        --log-level=lib.eal:warning --vdev=net_af_packet0,iface=${S}d1,qpairs=1 -- \
        --ip $DP_IP/24 --stats-interval 1 --idle-sleep $DP_IDLE_SLEEP $DP_TCP_ARGS \
        --app "$app:$2:$3:$4:${5:-0}" >"$out" 2>&1 &
    DPID=$!
    for _ in $(seq 300); do grep -qs 'dpstack: ready' "$out" && break; sleep 0.1; done
}
dpstack_send() {
    dpstack_start "$1" "$2" "$3" "$4" "${6:-0}"
    dpstack_wait "$1" "$5"
}
dpstack_wait() {
    local out=$TMP/$1.dp app="tcp-send:$SINK_IP:$PORT"
    local deadline=$((SECONDS + $2))
    while [ $SECONDS -lt $deadline ]; do
        if ! kill -0 $DPID 2>/dev/null; then
            echo "dpstack exited early:" >&2; tail -20 "$out" >&2; break
        fi
        grep "^stats core=0 app=$app " "$out" 2>/dev/null | tail -1 | grep -q ' pending=0 ' && break
        sleep 0.2
    done
    stop_pid $DPID; DPID=
}

# linux_start NAME BYTES COUNT PAR [SAMPLE_MS [GO-FILE]]: PAR senders in the
# background (their ids in LPIDS), COUNT transfers each; with SAMPLE_MS,
# each one's cwnd in $TMP/NAME.linux.P.cwnd.csv; with GO-FILE, they start
# once it exists. linux_wait: until they end.
linux_start() {
    LPIDS=()
    # Linux starts cold, as dpstack does: a new dpstack resolves the sink's
    # MAC before its first SYN (ARP through the bridge, one round trip),
    # and Linux's neighbour cache kept it from the run before. With it
    # kept, Linux's flows in the mixed four-flow row started a round trip
    # ahead, twice dpstack's window all through slow start, and left it
    # with larger windows that CUBIC did not even out in 30 s: dpstack's
    # share 35-48% (docs/benchmarks-history.md, 2026-12-04, afternoon).
    ip -n $S neigh flush all
    local go=()
    [ -n "${6:-}" ] && go=(--go-file "$6")
    for p in $(seq "$4"); do
        ip netns exec $S taskset -c 0 $TOOL send --to $SINK_IP:$PORT --bytes "$2" \
            --count "$3" --fcts --sample-ms "${5:-0}" --sample-out "$TMP/$1.linux.$p.cwnd.csv" \
            --label linux "${go[@]}" >"$TMP/$1.linux.$p" 2>&1 &
        LPIDS+=($!)
    done
}
linux_wait() { for p in "${LPIDS[@]}"; do wait "$p" || true; done; LPIDS=(); }
linux_send() { linux_start "$@"; linux_wait; }
retrans() { ip netns exec $S nstat -asz TcpRetransSegs | awk '/TcpRetransSegs/ {print $2}'; }

# emit ROW STACK LOSS JSON-FIELDS: one measurement line.
emit() {
    python3 -c "
import json, sys
d = {'bench': 'wan', 'row': sys.argv[1], 'stack': sys.argv[2], 'loss_pct': float(sys.argv[3]), 'run': $RUN}
d.update(json.loads(sys.argv[4]))
print(json.dumps(d))" "$@" | tee -a "$RESULTS"
}
# The sink's line for the one bulk connection, as JSON fields; with the
# sink's goodput series (SERIES-CSV), the goodput of each whole second and
# a 95% interval of their mean (wan_tcp.py second-goodputs).
bulk_fields() { # SINK-LINES EXTRA-JSON [SERIES-CSV]
    python3 -c "
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{\"peer')]
if not rows:
    print(json.dumps({'bytes': 0, 'secs': 0, 'goodput_mbit': 0, 'ok': False, 'capped': False}))
else:
    r = rows[0]
    out = {'bytes': r['bytes'], 'secs': r['secs'], 'goodput_mbit': r['mbit'],
           'ok': r['ok'], 'capped': r['capped'], 'complete': r['ok'] and not r['capped'],
           'sink_connections': len(rows), 'extra': json.loads(sys.argv[2])}
    if len(sys.argv) > 3 and sys.argv[3]:
        out.update(json.loads(sys.argv[3]))
    print(json.dumps(out))
" "$1" "$2" "$([ -s "${3:-}" ] && $TOOL second-goodputs "$3" || true)"
}
fct_fields() {
    python3 -c "
import json, sys
r = json.loads(sys.argv[1]); sink = [json.loads(l) for l in open(sys.argv[2]) if l.startswith('{\"peer')]
out = {'transfers': r['completed'] + r['failed'], 'bytes': int(sys.argv[3]),
       'completed': r['completed'], 'failed': r['failed'],
       'sink_ok': sum(1 for s in sink if s['ok'] and s['bytes'] == int(sys.argv[3]))}
for q in ('min', 'p50', 'p90', 'p99', 'p99_lo', 'p99_hi', 'max', 'mean'):
    out[f'fct_{q}_ms'] = round(r[f'fct_{q}_us'] / 1000, 2)
out['extra'] = {k: v for k, v in r.items() if k.startswith('tcp_') or k.startswith('drop_')}
print(json.dumps(out))" "$@"
}

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
echo "# bench-wan: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs));" \
    "bridge on CPU 1, sender and sink on CPU 0 (only 2 CPUs); load average $LOAD;" \
    "commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)$([ $SMOKE = 1 ] && echo ', smoke')"

has_row() { [[ " $ROWS " == *" $1 "* ]]; }

# Row 1 at 0% loss and row 3 are plotted: the sink's goodput per 100 ms,
# the senders' congestion windows. Row 1's series at every loss also give
# each transfer's goodput per second (the spread of its mean).
# Each loss BULK_RUNS times, alternating dpstack and Linux; the first run's
# files keep the plain names (the plots use the first run at 0%).
has_row bulk && for loss in $LOSSES; do
    bridge "$loss"
    for RUN in $(seq "$BULK_RUNS"); do
    b=bulk-$loss$([ "$RUN" = 1 ] || echo "-r$RUN")
    echo "# bulk, $loss% loss, run $RUN of $BULK_RUNS: dpstack" >&2
    sink "$b-dp" $CAP dpstack
    sm=$([ "$loss" = 0 ] && [ "$RUN" = 1 ] && echo $SAMPLE_MS || echo 0)
    dpstack_send "$b" $BULK 1 1 $((CAP + 30)) "$sm"
    [ "$sm" = 0 ] || $TOOL dpstack-series "$TMP/$b.dp" dpstack >"$TMP/wan-$b.dp.cwnd.csv"
    sleep 0.3; stop_sink
    extra=$($TOOL dpstack-final "$TMP/$b.dp")
    emit bulk dpstack "$loss" "$(bulk_fields "$TMP/$b-dp.sink" "$extra" "$TMP/wan-$b-dp.goodput.csv")"
    echo "# bulk, $loss% loss, run $RUN of $BULK_RUNS: Linux" >&2
    sink "$b-linux" $CAP linux
    before=$(retrans)
    linux_send "$b" $BULK 1 1 "$sm"
    after=$(retrans)
    sleep 0.3; stop_sink
    emit bulk linux "$loss" "$(bulk_fields "$TMP/$b-linux.sink" \
        "{\"tcp_retransmits\": $((after - before))}" "$TMP/wan-$b-linux.goodput.csv")"
    done
    RUN=1
    stop_bridge
done

has_row fct && [ "$FCT_N" -gt 0 ] && {
bridge $FCT_LOSS
if [ "$FCT_PCAP" = 1 ]; then
    # Both stacks' transfers, headers only, where they leave the senders'
    # namespace: perf/fct_pcap.py reads it.
    ip netns exec $S tcpdump -i ${S}1 -s 100 -w "$TMP/fct.pcap" -n tcp >/dev/null 2>&1 &
    TCPDUMP=$!
    sleep 1
fi
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
if [ -n "${TCPDUMP:-}" ]; then
    sleep 1; stop_pid "$TCPDUMP"; TCPDUMP=
    python3 perf/fct_pcap.py "$TMP/fct.pcap" | sed 's/^/# fct capture: /' >&2
fi
stop_bridge
}

# first_accept SINK-LINES IP: when the sink accepted IP's first connection,
# in seconds from its first accept of all.
first_accept() {
    python3 -c "
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{\"peer')]
print(min([r['start_s'] for r in rows if r['peer'].startswith(sys.argv[2] + ':')] or [0]))" "$@"
}
# shift_csv SECONDS: LABEL,X,Y lines with X moved by SECONDS.
shift_csv() { awk -F, -v o="$1" 'BEGIN { OFS = "," } { $2 = sprintf("%.3f", $2 + o); print }'; }

# fair NAME DP_FLOWS LINUX_FLOWS: that many flows at once, FAIR_SECS each
# (run $RUN: its files named NAME-rRUN after the first).
fair() {
    local name=fair-$1$([ "$RUN" = 1 ] || echo "-r$RUN")
    local go=$TMP/$name.go
    rm -f "$go"
    sink "$name" "$FAIR_SECS" "$1"
    # Linux's senders wait for $go: started (python's start is slow on a
    # loaded machine), then let go the moment dpstack's tcp-send opens its
    # connections (its first cwnd sample, at t_us=0: its EAL start takes a
    # second or two), so that all four start within a few milliseconds.
    # (Letting go once the sink had accepted dpstack's connections gave
    # them a head start of about 100 ms, 5 round trips of slow start: 32
    # times Linux's window when the queue first overflowed, which CUBIC's
    # convergence does not make up in 30 s.)
    if [ "$3" -gt 0 ]; then
        linux_start "$name" $FAIR_BYTES 1 "$3" $SAMPLE_MS "$go"
        for _ in $(seq 200); do
            [ "$(cat "$TMP/$name".linux.[0-9] | grep -c '^{"waiting"')" -ge "$3" ] && break
            sleep 0.05
        done
    fi
    if [ "$2" -gt 0 ]; then
        # dpstack_start returns once dpstack is ready, after the app
        # opened its connections: the go goes from a watcher of its output.
        (
            for _ in $(seq 6000); do
                grep -qs '^tcp-send-sample .* t_us=0 ' "$TMP/$name.dp" && break
                sleep 0.005
            done
            touch "$go"
        ) &
        local watcher=$!
        dpstack_start "$name" $FAIR_BYTES "$2" 1 $SAMPLE_MS
        wait "$watcher" || true
    fi
    touch "$go"
    [ "$2" -gt 0 ] && dpstack_wait "$name" $((FAIR_SECS + 30))
    [ "$3" -gt 0 ] && linux_wait
    sleep 0.3; stop_sink
    # The sink's series by stack and port.
    sed -i "s/^$1 $DP_IP:/dpstack :/; s/^$1 $LINUX_IP:/linux :/" "$TMP/wan-$name.goodput.csv"
    # Each sender's samples run from its own first connect: on the sink's
    # clock, from its first accept.
    [ "$2" -gt 0 ] && $TOOL dpstack-series "$TMP/$name.dp" dpstack |
        shift_csv "$(first_accept "$TMP/$name.sink" $DP_IP)" >"$TMP/wan-$name.dp.cwnd.csv"
    { cat "$TMP/$name".linux.*.cwnd.csv 2>/dev/null || true; } |
        shift_csv "$(first_accept "$TMP/$name.sink" $LINUX_IP)" >"$TMP/wan-$name.linux.cwnd.csv"
    local f; f=$($TOOL fairness "$TMP/$name.sink" dpstack=$DP_IP linux=$LINUX_IP)
    emit fair "$1" 0 "$(echo "$f" | python3 -c "
import json, sys
d = json.load(sys.stdin); d.update({'dpstack_flows_started': $2, 'linux_flows_started': $3, 'secs': $FAIR_SECS})
print(json.dumps(d))")"
}
has_row fair && {
bridge 0
for RUN in $(seq "$FAIR_RUNS"); do
    for kind in $FAIR_KINDS; do
        echo "# fair, 4 flows for $FAIR_SECS s, run $RUN of $FAIR_RUNS: $kind" >&2
        case $kind in
        dpstack) fair dpstack 4 0 ;;
        linux) fair linux 0 4 ;;
        mixed) fair mixed 2 2 ;;
        esac
    done
done
RUN=1
stop_bridge
}

# Row 4: the echo on a plain veth. nft_loss CLIENT% SERVER%: the drop rules
# in the client's namespace, counters from zero.
nft_loss() {
    ip netns exec $E nft delete table inet dpeloss 2>/dev/null || true
    ip netns exec $E nft -f - <<NFT
table inet dpeloss {
    chain out {
        type filter hook output priority 0; policy accept;
        tcp dport $ECHO_PORT counter numgen random mod 100 < $1 counter drop
    }
    chain in {
        type filter hook input priority 0; policy accept;
        tcp sport $ECHO_PORT counter numgen random mod 100 < $2 counter drop
    }
}
NFT
}
# The two rules' counters: client segments seen, dropped; server's the same.
nft_counts() {
    ip netns exec $E nft -j list table inet dpeloss | python3 -c "
import json, sys
seen = {}
for o in json.load(sys.stdin)['nftables']:
    r = o.get('rule')
    if r:
        seen[r['chain']] = [e['counter']['packets'] for e in r['expr'] if 'counter' in e]
(co, cd), (si, sd) = seen['out'], seen['in']
print(json.dumps({'client_segments': co, 'client_dropped': cd,
                  'client_loss_pct': round(100 * cd / co, 2) if co else 0,
                  'server_segments': si, 'server_dropped': sd,
                  'server_loss_pct': round(100 * sd / si, 2) if si else 0}))"
}
# echo_run STACK LOSS SERVER-IP: one echo through the server listening there.
echo_run() {
    nft_loss 1 "$2"
    local r
    r=$(ip netns exec $E taskset -c 0 $TOOL echo-client --to "$3:$ECHO_PORT" --bytes $ECHO_BYTES \
        --timeout 120 | tail -1)
    emit echo "$1" "$2" "$(python3 -c "
import json, sys
r = json.loads(sys.argv[1]); r.update(json.loads(sys.argv[2])); r['client_loss_set_pct'] = 1
print(json.dumps(r))" "$r" "$(nft_counts)")"
}
has_row echo && {
ip netns add $E
ip link add dpe0 type veth peer name dpe1
ip link set dpe1 netns $E
sysctl -qw net.ipv6.conf.dpe0.disable_ipv6=1
ip link set dpe0 up
ethtool -K dpe0 tso off gso off gro off tx off >/dev/null
ip netns exec $E sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip -n $E link set lo up; ip -n $E link set dpe1 up
ip netns exec $E ethtool -K dpe1 tso off gso off gro off tx off >/dev/null
ip -n $E addr add $ECHO_CLIENT_IP/24 dev dpe1
# One segment per skb: TCP builds segments of up to gso_max_segs MSS even
# with GSO off on the device (it is segmented below netfilter), and the
# drop rules must see, and drop, single segments.
ip link set dpe0 gso_max_segs 1
ip -n $E link set dpe1 gso_max_segs 1
echo "# echo, $ECHO_BYTES bytes: dpstack tcp-echo" >&2
: >"$TMP/echo.dp"
# shellcheck disable=SC2086
$DP -l 1 --no-pci $(eal_mem) --file-prefix dpwanecho --log-level=lib.eal:warning \
    --vdev=net_af_packet0,iface=dpe0,qpairs=1 -- --ip $ECHO_DP_IP/24 \
    --app tcp-echo:$ECHO_PORT >"$TMP/echo.dp" 2>&1 &
ECHO=$!
for _ in $(seq 300); do grep -qs 'dpstack: ready' "$TMP/echo.dp" && break; sleep 0.1; done
ip netns exec $E ping -q -c 2 -i 0.2 -W 2 $ECHO_DP_IP >/dev/null || true
for l in $ECHO_LOSSES; do for _ in $(seq "$ECHO_RUNS"); do echo_run dpstack "$l" $ECHO_DP_IP; done; done
stop_pid $ECHO; ECHO=
echo "# echo, $ECHO_BYTES bytes: Linux echo server" >&2
ip netns add $K
ip link set dpe0 netns $K
ip netns exec $K sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip -n $K link set lo up; ip -n $K addr add $ECHO_DP_IP/24 dev dpe0; ip -n $K link set dpe0 up
ip netns exec $K ethtool -K dpe0 tso off gso off gro off tx off >/dev/null
ip -n $K link set dpe0 gso_max_segs 1
: >"$TMP/echo.linux"
ip netns exec $K taskset -c 1 $TOOL echo-server --bind $ECHO_DP_IP --port $ECHO_PORT \
    >"$TMP/echo.linux" 2>&1 &
ECHO=$!
for _ in $(seq 50); do grep -qs listening "$TMP/echo.linux" && break; sleep 0.1; done
for l in $ECHO_LOSSES; do for _ in $(seq "$ECHO_RUNS"); do echo_run linux "$l" $ECHO_DP_IP; done; done
stop_pid $ECHO; ECHO=
}

# Plots: goodput per 100 ms at the sink, cwnd over time, for the single
# transfer at 0% and the 4-flow runs.
plot() { # PNG TITLE YDESC CSV...
    local out=$1 title=$2 y=$3; shift 3
    local have=()
    for f in "$@"; do [ -s "$f" ] && have+=("$f"); done
    if [ ${#have[@]} -gt 0 ]; then
        $GEN plot-series "$out" "$title" "seconds" "$y" "${have[@]}" || true
    fi
}
if has_row bulk && [[ " $LOSSES " == *" 0 "* ]]; then
    plot "$IMG/wan-bulk-goodput.png" "One transfer, 20 ms RTT, 500 Mbit/s, 0% loss: goodput per 100 ms" \
        "Mbit/s" "$TMP/wan-bulk-0-dp.goodput.csv" "$TMP/wan-bulk-0-linux.goodput.csv"
    cat "$TMP"/bulk-0.linux.*.cwnd.csv >"$TMP/wan-bulk-0.linux.cwnd.csv" 2>/dev/null || true
    plot "$IMG/wan-bulk-cwnd.png" "One transfer, 20 ms RTT, 500 Mbit/s, 0% loss: congestion window" \
        "cwnd (KB)" "$TMP/wan-bulk-0.dp.cwnd.csv" "$TMP/wan-bulk-0.linux.cwnd.csv"
fi
if has_row fair; then
    for run in $FAIR_KINDS; do
        # The plots show each set's median run (by Jain's index), the one
        # the report's table gives.
        m=$($TOOL median-run "$RESULTS" fair "$run")
        if [ -n "$m" ] && [ "$m" != 1 ]; then
            for f in "$TMP/wan-fair-$run-r$m".*; do
                cp "$f" "${f/-r$m./.}"
            done
        fi
        plot "$IMG/wan-fair-$run-goodput.png" "4 flows, one 500 Mbit/s bottleneck ($run): goodput per 100 ms" \
            "Mbit/s" "$TMP/wan-fair-$run.goodput.csv"
        plot "$IMG/wan-fair-$run-cwnd.png" "4 flows, one 500 Mbit/s bottleneck ($run): congestion window" \
            "cwnd (KB)" "$TMP/wan-fair-$run.dp.cwnd.csv" "$TMP/wan-fair-$run.linux.cwnd.csv"
    done
fi

echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (at the start: $LOAD)"
$TOOL summary "$RESULTS"
echo "# raw outputs in $TMP"

