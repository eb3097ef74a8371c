#!/usr/bin/env python3
"""Who took a polling thread's CPU, from `perf script` of sched:sched_switch.

    perf record -k CLOCK_MONOTONIC -e sched:sched_switch -C CPU -o FILE -- sleep S
    perf script -i FILE -F time,trace | sched_gaps.py TID [OWN_TIDS [FROM TO]]

FROM and TO (seconds of CLOCK_MONOTONIC, as Python's time.monotonic()
reads it) cut the window out of a longer trace.

Prints one JSON object: the span the trace covers, how long thread TID was
off its CPU (`off_ms`), in how many gaps, how many were over 1 ms and the
longest, and the time every other task ran on that CPU (`ran_ms`, by
command name, largest first; the threads in OWN_TIDS, comma separated, the
target's other threads, as `own:COMM/TID`): a busy-polling thread off its
CPU is a ring that fills unread.
"""
import json
import re
import sys

LINE = re.compile(r"^\s*(\d+\.\d+):\s+prev_comm=(.*?) prev_pid=(\d+) .*?==> next_comm=(.*?) next_pid=(\d+) ")


def gaps(lines, tid, own=frozenset(), window=(0.0, float("inf"))):
    """Returns the figures of thread `tid` from sched_switch lines, between
    the times `window` (the trace's own clock)."""
    first = last = None
    out_at = None
    off = []
    ran = {}
    own_turns, own_longest = 0, 0.0
    cur = None  # (comm, pid, since) of the task on the CPU
    for l in lines:
        m = LINE.match(l)
        if not m:
            continue
        t = float(m[1])
        if not window[0] <= t <= window[1]:
            continue
        prev_comm, prev_pid, next_comm, next_pid = m[2], int(m[3]), m[4], int(m[5])
        first = t if first is None else first
        last = t
        if cur is not None and cur[1] == prev_pid and prev_pid != tid:
            name = "idle" if prev_pid == 0 else f"own:{cur[0]}/{prev_pid}" if prev_pid in own else cur[0]
            ran[name] = ran.get(name, 0.0) + t - cur[2]
            if prev_pid in own:
                own_turns += 1
                own_longest = max(own_longest, t - cur[2])
        cur = (next_comm, next_pid, t)
        if prev_pid == tid:
            out_at = t
        if next_pid == tid and out_at is not None:
            off.append(t - out_at)
            out_at = None
    if out_at is not None and last is not None:
        off.append(last - out_at)
    return {
        "span_ms": round((last - first) * 1e3, 1) if first is not None else 0.0,
        "off_ms": round(sum(off) * 1e3, 1),
        "gaps": len(off),
        "gaps_over_1ms": sum(1 for g in off if g > 1e-3),
        "longest_ms": round(max(off, default=0.0) * 1e3, 2),
        # The six largest, and the target's own threads whatever their share.
        "ran_ms": {k: round(v * 1e3, 2) for i, (k, v) in enumerate(sorted(ran.items(), key=lambda kv: -kv[1]))
                   if i < 6 or k.startswith("own:")},
        # How often the target's own threads took the CPU, and their longest turn.
        "own_turns": own_turns,
        "own_longest_us": round(own_longest * 1e6, 1),
    }


if __name__ == "__main__":
    own = {int(t) for t in sys.argv[2].split(",") if t} if len(sys.argv) > 2 else set()
    window = (float(sys.argv[3]), float(sys.argv[4])) if len(sys.argv) > 4 else (0.0, float("inf"))
    print(json.dumps(gaps(sys.stdin, int(sys.argv[1]), own, window)))
