# Shell functions shared by the memif benchmarks (perf/bench.sh,
# perf/bench-cycles.sh); source it after setting SOCK and defining log().

# Wait until the memif server's socket SOCK is listening (up to 10 s): the
# socket is abstract by default, which ss lists as @PATH.
wait_listening() {
    for _ in $(seq 100); do
        ss -xlH 2>/dev/null | grep -qE " @?$SOCK " && return 0
        sleep 0.1
    done
    log "nothing listens on $SOCK"
    return 1
}
