#!/usr/bin/env bash
# Run every fuzz target of tests/fuzz (as `cargo fuzz list` reads them from
# tests/fuzz/Cargo.toml) and print one table: result and covered edges per
# target. From the repository root:
#
#   tests/fuzz/run.sh [fuzz]   each target FUZZ_SECONDS (default 60) on its
#                              kept corpus; `make fuzz`
#   tests/fuzz/run.sh regress  every file of tests/fuzz/corpus/<target>/ and
#                              tests/fuzz/crashes/<target>/ run once
#                              (libFuzzer -runs=0); `make fuzz-regress`
#
# Environment: FUZZ_SECONDS, FUZZ_TARGETS (a space-separated subset),
# FUZZ_LOGS (default /tmp/dpstack-fuzz: one log per target, and the inputs
# found in this run under new/<target>/). The kept corpus is read, never
# written: new inputs go to FUZZ_LOGS/new/<target>/ (docs/fuzzing.md says
# how to merge them in); a crash is written by libFuzzer to
# tests/fuzz/artifacts/<target>/. A target passes if it exits 0. Ends with
# the line "N passed, N failed" and exits 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-fuzz}
secs=${FUZZ_SECONDS:-60}
logs=${FUZZ_LOGS:-/tmp/dpstack-fuzz}
dir=tests/fuzz
case $mode in
fuzz | regress) ;;
*)
    echo "usage: $0 [fuzz|regress]" >&2
    exit 2
    ;;
esac

if ! command -v cargo-fuzz >/dev/null; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked >/tmp/dpstack-cargo-fuzz-install.log 2>&1 ||
        { tail -20 /tmp/dpstack-cargo-fuzz-install.log; exit 1; }
fi
targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list --fuzz-dir "$dir")}
[ -n "$targets" ] || { echo "no fuzz targets in $dir" >&2; exit 1; }
echo "building $(echo $targets | wc -w) fuzz targets"
cargo +nightly fuzz build --fuzz-dir "$dir" >"$logs.build.log" 2>&1 ||
    { tail -30 "$logs.build.log"; exit 1; }
mkdir -p "$logs"

pass=0 fail=0
rows=()
for t in $targets; do
    kept=$dir/corpus/$t crashes=$dir/crashes/$t new=$logs/new/$t log=$logs/$t.log
    mkdir -p "$kept"
    dirs=("$kept")
    [ -d "$crashes" ] && dirs+=("$crashes")
    start=$(date +%s)
    if [ "$mode" = regress ]; then
        echo "== $t: every kept input once"
        cargo +nightly fuzz run --fuzz-dir "$dir" "$t" "${dirs[@]}" -- -runs=0 >"$log" 2>&1
    else
        echo "== $t: ${secs}s"
        rm -rf "$new" && mkdir -p "$new"
        cargo +nightly fuzz run --fuzz-dir "$dir" "$t" "$new" "${dirs[@]}" -- \
            -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1
    fi
    rc=$?
    took=$(($(date +%s) - start))
    # libFuzzer's last status line: "#N DONE cov: X ft: Y corp: Z/.. exec/s: E"
    # (or the last one printed before a crash).
    line=$(grep -E '^#[0-9]+[[:space:]]+[A-Z]+[[:space:]]+cov: ' "$log" | tail -1)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$line")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$line")
    corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$line")
    execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$line")
    inputs=$(find "${dirs[@]}" -type f | wc -l)
    if [ $rc -eq 0 ]; then
        pass=$((pass + 1)) result=ok
    else
        fail=$((fail + 1)) result="FAIL($rc)"
        grep -E 'panicked at|SUMMARY|Test unit written|^Base64' "$log" | head -5 | sed 's/^/    /'
    fi
    rows+=("$(printf '%-16s %-9s %7s %7s %7s %7s %10s %6ss' "$t" "$result" "${cov:--}" "${ft:--}" \
        "$inputs" "${corp:--}" "${execs:--}" "$took")")
done

echo
printf '%-16s %-9s %7s %7s %7s %7s %10s %7s\n' target result cov ft kept corpus execs time
for r in "${rows[@]}"; do echo "$r"; done
echo "(cov: covered edges, libFuzzer's count; kept: inputs in corpus/ and crashes/; logs in $logs)"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
