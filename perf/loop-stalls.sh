#!/usr/bin/env bash
# The loop's stall counts by side work (issue 15): one lcore run for
# SECONDS, idle (net_af_packet on a fresh veth nothing sends on) or loaded
# (net_null, whose RX hands out a burst of zeroed frames on every call),
# then SIGINT; prints the final `cycles` line's stalls_* words.
#
#   perf/loop-stalls.sh idle|load [SECONDS] [DPSTACK_BIN] [-- dpstack options]
#
# stalls_snapshot was one a second before the latency hand-over; stalls_other
# is mostly the CPU taken from the lcore on a shared machine.
set -euo pipefail
mode=${1:?idle or load}
secs=${2:-6}
bin=${3:-target/release/dpstack}
shift $(( $# < 3 ? $# : 3 ))
[ "${1:-}" = "--" ] && shift
tag=lst$$
vdev=--vdev=net_null0
if [ "$mode" = idle ]; then
    ip link add ${tag}a type veth peer name ${tag}b
    trap 'ip link del ${tag}a 2>/dev/null || true' EXIT
    ip link set ${tag}a up
    ip link set ${tag}b up
    sysctl -qw net.ipv6.conf.${tag}a.disable_ipv6=1 net.ipv6.conf.${tag}b.disable_ipv6=1
    vdev=--vdev=net_af_packet0,iface=${tag}a,qpairs=1
fi
timeout -s INT "$secs" "$bin" -l 1 --no-pci --in-memory --file-prefix $tag \
    --log-level=lib.eal:warning $vdev -- --ip 198.18.99.1/24 --stats-interval 100 "$@" \
    | grep "final cycles core=0" | tr ' ' '\n' | grep -E '^(stalls_|iterations=)' | tr '\n' ' ' \
    || true # timeout's status
echo
