#!/usr/bin/env python3
"""Where the time of bench-wan's 64 KB transfers goes, from a capture on the
senders' side of the bridge (perf/bench-wan.sh with FCT_PCAP=1 writes
OUTDIR/fct.pcap on dpwanS1; tcpdump must be installed to read it).

  fct_pcap.py PCAP [--sink IP] [--linux IP] [--show N]

Each connection to the sink runs from its first SYN to the sink's FIN, as
seen at the capture (the senders' own FCTs also hold what their SYN waited
for before it reached the wire, e.g. ARP). A transfer is loss-free when no
data sequence went twice and its SYN went once. For each stack (the
connections from --linux's address are Linux's, all others dpstack's):
the count, the FCT quantiles of all and of the loss-free ones, and for the
loss-free ones the median of each part of the transfer:

  synack      SYN to SYN-ACK (the path's round trip, and the sink's kernel)
  react       SYN-ACK to the first data segment (the sender)
  ack_excess  the mean, per transfer, of each ACK's time after the data
              segment it acknowledges, less the path's 20 ms: the sink's
              lateness (its CPU, its delayed ACKs)
  rounds      data segments per round trip (a gap of 5 ms starts a round)
  fin         the last data segment to the sink's FIN

With --show N, the segment-by-segment timeline of the N-th quantile's
loss-free transfer of each stack (N in 0-100), times in ms from its SYN.
"""
import argparse
import collections
import re
import statistics
import subprocess
import sys

LINE = re.compile(r"^(\d+\.\d+) IP (\S+)\.(\d+) > (\S+)\.(\d+): Flags \[([^\]]*)\], (.*)$")
PATH_RTT_MS = 20.0


def read(pcap, sink):
    """Each connection's packets, (time, dir, flags, seq, end, ack, len,
    rest), dir S from the sender, R from the sink, by (sender IP, port)."""
    text = subprocess.run(["tcpdump", "-r", pcap, "-tt", "-nn", "-S"], capture_output=True,
                          text=True, check=True).stdout
    conns = collections.defaultdict(list)
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        t, sip, sport, dip, dport, flags, rest = m.groups()
        key, d = ((sip, sport), "S") if dip == sink else ((dip, dport), "R")
        span = re.search(r"seq (\d+):(\d+)", rest)
        seq = re.search(r"seq (\d+)", rest)
        ack = re.search(r"ack (\d+)", rest)
        length = re.search(r"length (\d+)", rest)
        conns[key].append((float(t), d, flags,
                           int(seq.group(1)) if seq else None,
                           int(span.group(2)) if span else None,
                           int(ack.group(1)) if ack else None,
                           int(length.group(1)) if length else 0, rest))
    return conns


def transfer(pk):
    """The parts of one transfer (None if it has no SYN first or no FIN)."""
    if not pk or pk[0][1] != "S" or "S" not in pk[0][2]:
        return None
    t0 = pk[0][0]
    fin = [p[0] for p in pk if p[1] == "R" and "F" in p[2]]
    synack = [p[0] for p in pk if p[1] == "R" and "S" in p[2]]
    data = [p for p in pk if p[1] == "S" and p[6] > 0]
    if not fin or not synack or not data:
        return None
    seen, resent, sent_at, excess = set(), 0, {}, []
    for p in pk:
        if p[1] == "S" and p[6] > 0:
            resent += p[3] in seen
            seen.add(p[3])
            sent_at.setdefault(p[4], p[0])
        elif p[1] == "R" and "S" not in p[2] and p[5] in sent_at:
            excess.append((p[0] - sent_at.pop(p[5])) * 1000 - PATH_RTT_MS)
    rounds = [1]
    for a, b in zip(data, data[1:]):
        if b[0] - a[0] > 0.005:
            rounds.append(0)
        rounds[-1] += 1
    syns = sum(1 for p in pk if p[1] == "S" and "S" in p[2])
    return {
        "fct": (fin[0] - t0) * 1000,
        "clean": resent == 0 and syns == 1,
        "synack": (synack[0] - t0) * 1000,
        "react": (data[0][0] - synack[0]) * 1000,
        "ack_excess": statistics.mean(excess) if excess else 0.0,
        "rounds": tuple(rounds),
        "fin": (fin[0] - data[-1][0]) * 1000,
        "packets": pk,
    }


def quantiles(xs):
    xs = sorted(xs)
    if not xs:
        return "none"
    q = lambda f: xs[min(len(xs) - 1, int(f * len(xs)))]
    return "min %.1f p25 %.1f p50 %.1f p75 %.1f p90 %.1f max %.1f" % (
        xs[0], q(0.25), q(0.5), q(0.75), q(0.9), xs[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pcap")
    p.add_argument("--sink", default="198.18.62.2")
    p.add_argument("--linux", default="198.18.62.1")
    p.add_argument("--show", type=float, help="print this quantile's loss-free timeline")
    a = p.parse_args()
    by_stack = collections.defaultdict(list)
    for key, pk in read(a.pcap, a.sink).items():
        t = transfer(pk)
        if t:
            by_stack["linux" if key[0] == a.linux else "dpstack"].append(t)
    for stack in ("dpstack", "linux"):
        ts = by_stack.get(stack, [])
        clean = [t for t in ts if t["clean"]]
        print(f"{stack}: {len(ts)} transfers, FCT ms {quantiles([t['fct'] for t in ts])}")
        print(f"  loss-free {len(clean)}: FCT ms {quantiles([t['fct'] for t in clean])}")
        if not clean:
            continue
        med = lambda k: statistics.median(t[k] for t in clean)
        shapes = collections.Counter(t["rounds"] for t in clean).most_common(3)
        print("  medians (ms): synack %.2f react %.2f ack_excess %.2f fin %.2f; rounds %s" % (
            med("synack"), med("react"), med("ack_excess"), med("fin"),
            ", ".join(f"{list(s)} x{n}" for s, n in shapes)))
        if a.show is not None:
            clean.sort(key=lambda t: t["fct"])
            t = clean[min(len(clean) - 1, int(a.show / 100 * len(clean)))]
            t0 = t["packets"][0][0]
            print(f"  timeline, FCT {t['fct']:.2f} ms:")
            for pkt in t["packets"]:
                print("  %8.3f %s %-4s %s" % ((pkt[0] - t0) * 1000, pkt[1], pkt[2], pkt[7][:70]))


if __name__ == "__main__":
    sys.exit(main())
