#!/usr/bin/env bash
# Memory per idle connection (issue 13): what an established, kept-alive,
# idle connection costs dpstack, against nginx on Linux in the same run.
#
#   perf/bench-conn-memory.sh [OUTDIR] [CONNS] [INPROC]    full run (16000, 1000000)
#   perf/bench-conn-memory.sh --smoke OUTDIR               2000 and 20000 (make test)
#
# (a) CONNS connections over veth from a Linux host namespace
#     (perf/idle_clients.py, spread over processes: about 20000 open files
#     per process here), each sending one GET and keeping its connection
#     open, to dpstack's http:80 (1 lcore, --tcp-max-conns 65536) and then
#     to nginx (1 worker) on the same veth end moved into a namespace.
#     dpstack: VmRSS and RssAnon of its process before and after. nginx:
#     master and worker VmRSS before and after, plus the kernel's share,
#     measured twice, because slab and TCP memory are machine-wide and the
#     client's own sockets are Linux sockets too: the slab caches a socket
#     uses (TCP, sock_inode_cache, filp, dentry, eventpoll_*) grow by the
#     client's sockets alone in the dpstack run and by both ends in the
#     nginx run; the difference is nginx's sockets. /proc/net/sockstat's
#     `TCP: mem` (pages of socket buffers, machine-wide) is reported as is.
# (b) perf's connmem: INPROC connections in process on one core's TcpTable
#     (handshake only, then with one request and response each).
#
# Writes OUTDIR/connmem-{dpstack,nginx,inproc,inproc-exchange}.json and
# prints a summary; perf/bench.sh calls it and bench_report.py puts the
# rows in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE=0
if [ "${1:-}" = "--smoke" ]; then
    SMOKE=1; OUT=${2:?OUTDIR}; CONNS=2000; INPROC=20000
else
    OUT=${1:-/tmp/dpsconnmem}; CONNS=${2:-16000}; INPROC=${3:-1000000}
fi
mkdir -p "$OUT"
cargo build --release -q -p perf -p dpstack
BIN=$PWD/target/release
PROCS=$(( (CONNS + 3999) / 4000 ))
H=dpscH; K=dpscK; DPIF=dpsc1; HIF=dpsc0
MEM="--in-memory"
[ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" -ge 256 ] || MEM="--no-huge -m 512 --no-shconf"
DUT=; CL=; NG=
log() { echo "bench-conn-memory: $*" >&2; }
cleanup() {
    [ -n "$CL" ] && { kill -TERM "$CL" 2>/dev/null; wait "$CL" 2>/dev/null || true; }
    [ -n "$DUT" ] && { kill -TERM "$DUT" 2>/dev/null; wait "$DUT" 2>/dev/null || true; }
    [ -n "$NG" ] && { kill -QUIT "$NG" 2>/dev/null; wait "$NG" 2>/dev/null || true; }
    CL=; DUT=; NG=
    exec 8>&-
    ip netns del $H 2>/dev/null || true
    ip netns del $K 2>/dev/null || true
    ip link del $DPIF 2>/dev/null || true
}
trap cleanup EXIT
cleanup

status_kb() { # pid field -> KiB
    awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}
# Slab bytes of the caches a socket uses, machine-wide.
slab_bytes() {
    awk '$1 ~ /^(TCP|sock_inode_cache|filp|dentry|eventpoll_epi|eventpoll_pwq)$/ {s += $3 * $4}
         END {print s + 0}' /proc/slabinfo
}
tcp_mem_pages() { awk '$1 == "TCP:" {for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1)}' /proc/net/sockstat; }

# The client holds its connections until fd 8 (its stdin) closes.
start_clients() { # target-ip -> sets CL and READY (the client's `ready` line)
    rm -f "$OUT/clients.fifo" "$OUT/clients.txt"; mkfifo "$OUT/clients.fifo"
    ip netns exec $H taskset -c 0 /usr/bin/python3 perf/idle_clients.py "$1" 80 "$CONNS" "$PROCS" \
        <"$OUT/clients.fifo" >"$OUT/clients.txt" 2>&1 &
    CL=$!
    exec 8>"$OUT/clients.fifo"
    for _ in $(seq 1500); do grep -q '^ready' "$OUT/clients.txt" && break; sleep 0.1; done
    READY=$(grep '^ready' "$OUT/clients.txt" || true)
    [ -n "$READY" ] || { cat "$OUT/clients.txt" >&2; READY="ready held=0 failed=$CONNS"; }
    log "$READY"
}
stop_clients() {
    exec 8>&-
    [ -n "$CL" ] && { wait "$CL" 2>/dev/null || true; }
    CL=
}
held_of() { sed -n 's/.*held=\([0-9]*\).*/\1/p' <<<"$1"; }
failed_of() { sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$1"; }

ip netns add $H
ip link add $DPIF type veth peer name $HIF netns $H
ip link set $DPIF up; ethtool -K $DPIF tx off >/dev/null
sysctl -qw net.ipv6.conf.$DPIF.disable_ipv6=1 2>/dev/null || true
ip -n $H addr add 198.18.63.2/24 dev $HIF; ip -n $H link set $HIF up; ip -n $H link set lo up
ip netns exec $H ethtool -K $HIF tx off >/dev/null
ip netns exec $H sysctl -qw net.ipv4.ip_local_port_range="10000 65000"

# (a) dpstack
# shellcheck disable=SC2086
$BIN/dpstack --lcores=0@1 --no-pci $MEM --file-prefix dpscdut --log-level=lib.eal:warning \
    --vdev=net_af_packet0,iface=$DPIF,qpairs=1 -- --ip 198.18.63.1/24 --app http:80:100 \
    --tcp-max-conns 65536 --stats-interval 1 >"$OUT/connmem-dut.txt" 2>&1 &
DUT=$!
for _ in $(seq 100); do grep -q 'dpstack: ready' "$OUT/connmem-dut.txt" && break; sleep 0.1; done
grep -q 'dpstack: ready' "$OUT/connmem-dut.txt" || { cat "$OUT/connmem-dut.txt" >&2; exit 1; }
ip netns exec $H ping -c 1 -W 2 198.18.63.1 >/dev/null
ip netns exec $H curl -s -o /dev/null --max-time 5 http://198.18.63.1/
sleep 1
D_RSS0=$(status_kb $DUT VmRSS); D_ANON0=$(status_kb $DUT RssAnon)
D_SLAB0=$(slab_bytes); D_TCPMEM0=$(tcp_mem_pages)
T0=$(date +%s.%N)
start_clients 198.18.63.1
T1=$(date +%s.%N)
sleep 2
D_RSS1=$(status_kb $DUT VmRSS); D_ANON1=$(status_kb $DUT RssAnon)
D_SLAB1=$(slab_bytes); D_TCPMEM1=$(tcp_mem_pages)
cat /proc/$DUT/smaps_rollup >"$OUT/connmem-dpstack-smaps.txt" 2>/dev/null || true
# The stack's own view (the newest complete stats block).
LAST=$(grep '^stats core=total' "$OUT/connmem-dut.txt" | tail -1)
gauge() { grep -oE "(^| )$1=[0-9]+" <<<"$LAST" | cut -d= -f2 || true; }
D_CONNS=$(gauge tcp_connections); D_MEMB=$(gauge tcp_mem_bytes); D_MEMP=$(gauge tcp_mem_peak)
stop_clients
kill -TERM $DUT; wait $DUT 2>/dev/null || true; DUT=
python3 - "$OUT/connmem-dpstack.json" "$CONNS" "$(held_of "$READY")" "$(failed_of "$READY")" \
    "$D_RSS0" "$D_RSS1" "$D_ANON0" "$D_ANON1" "$D_SLAB0" "$D_SLAB1" "$D_TCPMEM0" "$D_TCPMEM1" \
    "${D_CONNS:-}" "${D_MEMB:-}" "${D_MEMP:-}" "$(awk -v a="$T0" -v b="$T1" 'BEGIN {print b - a}')" <<'PY'
import json, sys
a = sys.argv
held = int(a[3] or 0)
opt = lambda v: int(v) if v else None
r = {"conns": int(a[2]), "held": held, "failed": int(a[4] or 0),
     "rss_before_kb": int(a[5]), "rss_after_kb": int(a[6]),
     "anon_before_kb": int(a[7]), "anon_after_kb": int(a[8]),
     "client_slab_bytes": int(a[10]) - int(a[9]),
     "tcp_mem_pages_delta": int(a[12]) - int(a[11]),
     "tcp_connections": opt(a[13]), "tcp_mem_bytes": opt(a[14]), "tcp_mem_peak": opt(a[15]),
     "open_seconds": float(a[16])}
r["bytes_per_conn"] = (r["rss_after_kb"] - r["rss_before_kb"]) * 1024 / max(held, 1)
r["anon_bytes_per_conn"] = (r["anon_after_kb"] - r["anon_before_kb"]) * 1024 / max(held, 1)
json.dump(r, open(a[1], "w"))
print(json.dumps(r))
PY

# (a) nginx, on the same veth end, in a namespace of its own.
ip netns add $K
ip link set $DPIF netns $K
ip -n $K addr add 198.18.63.1/24 dev $DPIF; ip -n $K link set $DPIF up; ip -n $K link set lo up
ip netns exec $K ethtool -K $DPIF tx off >/dev/null
BODY=$(head -c 100 /dev/zero | tr '\0' 'x')
cat >"$OUT/connmem-nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid $OUT/connmem-nginx.pid;
error_log $OUT/connmem-nginx.err;
events { worker_connections 19000; }
http {
    access_log off;
    keepalive_timeout 600s;
    keepalive_requests 1000000;
    server { listen 198.18.63.1:80 backlog=4096; location / { return 200 "$BODY"; } }
}
EOF
ip netns exec $K taskset -c 1 nginx -c "$OUT/connmem-nginx.conf" -e "$OUT/connmem-nginx.err" &
NG=$!
for _ in $(seq 50); do [ -n "$(pgrep -P $NG)" ] && break; sleep 0.1; done
ip netns exec $H curl -s -o /dev/null --max-time 5 http://198.18.63.1/
sleep 1
nginx_rss() { # master + workers, KiB
    local s; s=$(status_kb $NG VmRSS)
    for p in $(pgrep -P $NG); do s=$(( s + $(status_kb "$p" VmRSS) )); done
    echo "$s"
}
N_RSS0=$(nginx_rss); N_SLAB0=$(slab_bytes); N_TCPMEM0=$(tcp_mem_pages)
T0=$(date +%s.%N)
start_clients 198.18.63.1
T1=$(date +%s.%N)
sleep 2
N_RSS1=$(nginx_rss); N_SLAB1=$(slab_bytes); N_TCPMEM1=$(tcp_mem_pages)
N_INUSE=$(ip netns exec $K awk '$1 == "TCP:" {print $3}' /proc/net/sockstat)
stop_clients
kill -QUIT $NG; wait $NG 2>/dev/null || true; NG=
python3 - "$OUT/connmem-nginx.json" "$CONNS" "$(held_of "$READY")" "$(failed_of "$READY")" \
    "$N_RSS0" "$N_RSS1" "$N_SLAB0" "$N_SLAB1" "$N_TCPMEM0" "$N_TCPMEM1" "$N_INUSE" \
    "$OUT/connmem-dpstack.json" "$(awk -v a="$T0" -v b="$T1" 'BEGIN {print b - a}')" <<'PY'
import json, sys
a = sys.argv
held = int(a[3] or 0)
d = json.load(open(a[12]))
slab = int(a[8]) - int(a[7])
# Both ends' sockets grew the slab here, only the client's in the dpstack
# run (scaled to this run's count): the difference is nginx's side.
client = d["client_slab_bytes"] * held / max(d["held"], 1)
r = {"conns": int(a[2]), "held": held, "failed": int(a[4] or 0),
     "rss_before_kb": int(a[5]), "rss_after_kb": int(a[6]),
     "slab_bytes_both_ends": slab, "slab_bytes_client_end": round(client),
     "server_slab_bytes": round(slab - client),
     "tcp_mem_pages_delta": int(a[10]) - int(a[9]), "tcp_inuse": int(a[11]),
     "open_seconds": float(a[13])}
r["rss_bytes_per_conn"] = (r["rss_after_kb"] - r["rss_before_kb"]) * 1024 / max(held, 1)
r["kernel_bytes_per_conn"] = (r["server_slab_bytes"] + max(r["tcp_mem_pages_delta"], 0) * 4096) / max(held, 1)
r["bytes_per_conn"] = r["rss_bytes_per_conn"] + r["kernel_bytes_per_conn"]
# As the issue counted it: nginx's whole resident memory plus the kernel's.
r["bytes_per_conn_whole_rss"] = r["rss_after_kb"] * 1024 / max(held, 1) + r["kernel_bytes_per_conn"]
json.dump(r, open(a[1], "w"))
print(json.dumps(r))
PY

# (b) in process
$BIN/connmem --conns "$INPROC" --json "$OUT/connmem-inproc.json" >/dev/null
$BIN/connmem --conns "$INPROC" --exchange --json "$OUT/connmem-inproc-exchange.json" >/dev/null

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
d, n = json.load(open(f"{out}/connmem-dpstack.json")), json.load(open(f"{out}/connmem-nginx.json"))
print(f"dpstack http:80, {d['held']} idle connections ({d['failed']} failed): "
      f"{d['bytes_per_conn'] / 1024:.2f} KB each (VmRSS), {d['anon_bytes_per_conn'] / 1024:.2f} KB (RssAnon); "
      f"tcp_mem_bytes={d['tcp_mem_bytes']} tcp_mem_peak={d['tcp_mem_peak']}")
print(f"nginx, {n['held']} idle connections ({n['failed']} failed): {n['bytes_per_conn'] / 1024:.2f} KB each "
      f"(nginx {n['rss_bytes_per_conn'] / 1024:.2f} KB + kernel {n['kernel_bytes_per_conn'] / 1024:.2f} KB); "
      f"whole nginx RSS + kernel: {n['bytes_per_conn_whole_rss'] / 1024:.2f} KB")
print(f"ratio dpstack/nginx: {d['bytes_per_conn'] / max(n['bytes_per_conn'], 1):.2f}")
for f in ["connmem-inproc", "connmem-inproc-exchange"]:
    r = json.load(open(f"{out}/{f}.json"))
    print(f"in process ({'one request and response' if r['exchange'] else 'handshake only'}): "
          f"{r['conns']} of {r['target']} connections, {r['bytes_per_conn'] / 1024:.2f} KB each"
          f" (+ {r['pte_bytes_per_conn'] / 1024:.2f} KB page tables) in {r['seconds']:.1f} s"
          + (f"; stopped: {r['stopped']}" if r['stopped'] else ""))
PY
