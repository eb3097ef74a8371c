#!/usr/bin/python3
"""Parse a Prometheus text exposition from stdin with the prometheus_client
library's own parser, check each histogram (cumulative buckets, +Inf equal
to _count), and print every sample as JSON: [[name, {labels}, value], ...].
Exits non-zero if the text does not parse or a histogram is wrong."""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def check_histogram(family):
    series = {}
    for s in family.samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        series.setdefault(key, {"buckets": [], "count": None, "sum": None})
        if s.name.endswith("_bucket"):
            series[key]["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            series[key]["count"] = s.value
        elif s.name.endswith("_sum"):
            series[key]["sum"] = s.value
    for key, h in series.items():
        b = h["buckets"]
        if not b or b[-1][0] != math.inf:
            raise SystemExit(f"{family.name}{key}: no +Inf bucket")
        for (le0, c0), (le1, c1) in zip(b, b[1:]):
            if le1 <= le0 or c1 < c0:
                raise SystemExit(f"{family.name}{key}: buckets not cumulative: {b}")
        if h["count"] != b[-1][1] or h["sum"] is None:
            raise SystemExit(f"{family.name}{key}: +Inf {b[-1][1]} != count {h['count']}")


def main():
    text = sys.stdin.read()
    out = []
    families = 0
    for family in text_string_to_metric_families(text):
        families += 1
        if family.type == "histogram":
            check_histogram(family)
        for s in family.samples:
            out.append([s.name, s.labels, s.value])
    if families == 0:
        raise SystemExit("no metric family")
    print(json.dumps(out))


main()
