#!/usr/bin/env bash
# Capture the frames dpstack exchanges during one integration test, for the
# fuzz seeds (see make_corpus.py). Run as root, from the repository root:
#
#   tests/fuzz/seeds/capture.sh OUT.pcap TEST_BINARY TEST_NAME [MAX_FRAMES]
#
# TEST_BINARY is a built integration test (target/debug/deps/tcp-<hash>).
# The test names its interfaces dpa<pid%10000><n> (tests/common/mod.rs);
# every one that is up in the root namespace while it runs gets a
# tcpdump on it (dpstack's end of the veth: both directions), at most
# MAX_FRAMES frames each (default 2000), and the captures are merged
# (tcpdump and the system python3-scapy needed).
set -uo pipefail
out=$1 bin=$2 name=$3 max=${4:-2000}
tmp=$(mktemp -d /tmp/dpstack-capture.XXXXXX)
"$bin" "$name" --exact --test-threads=1 >"$tmp/test.log" 2>&1 &
test_pid=$!
tag="dpa$((test_pid % 10000))"
declare -A seen
while kill -0 "$test_pid" 2>/dev/null; do
    for ifc in $(ip -o link show up | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$tag" || true); do
        if [ -z "${seen[$ifc]:-}" ]; then
            seen[$ifc]=1
            tcpdump -i "$ifc" -U -s 0 -c "$max" -w "$tmp/$ifc.pcap" >/dev/null 2>&1 &
        fi
    done
    sleep 0.05
done
wait "$test_pid"; rc=$?
sleep 0.5
# The interfaces are gone with the test, so every tcpdump has ended.
wait
files=("$tmp"/*.pcap)
if [ -e "${files[0]}" ]; then
    /usr/bin/python3 - "$out" "${files[@]}" <<'PY'
import sys
from scapy.all import rdpcap, wrpcap
frames = []
for f in sys.argv[2:]:
    try:
        frames.extend(rdpcap(f))
    except Exception as e:  # a capture cut short
        print(f"{f}: {e}", file=sys.stderr)
frames.sort(key=lambda p: float(p.time))
wrpcap(sys.argv[1], frames)
print(f"{sys.argv[1]}: {len(frames)} frames")
PY
fi
echo "test exit $rc ($name); log $tmp/test.log"
exit $rc
