#!/usr/bin/env python3
"""Turns bench/compare.sh's CSV into the Markdown tables of LATEST.md:
medians per tool and step, and kast's ratio to each peer and to the best
of them (below 1: kast is ahead). Tools named kast-* (kast in another
mode) get a column, not a ratio."""

import csv
import statistics
import sys
from collections import defaultdict

METRICS = [
    ("wall_s", "Wall time (s)", "{:.2f}"),
    ("peak_rss_kib", "Peak memory (MiB)", "{:.0f}"),
    ("cpu_s", "CPU time, user + system (s)", "{:.2f}"),
    ("store_bytes", "Store size after the step (MiB)", "{:.0f}"),
]
SCALE = {"peak_rss_kib": 1 / 1024, "store_bytes": 1 / 2**20}


def main(path):
    rows = list(csv.DictReader(open(path)))
    tools, steps = [], []
    values = defaultdict(list)
    for row in rows:
        if row["tool"] not in tools:
            tools.append(row["tool"])
        if row["step"] not in steps:
            steps.append(row["step"])
        for metric, _, _ in METRICS:
            values[(row["tool"], row["step"], metric)].append(float(row[metric]))
    steps.sort()
    peers = [t for t in tools if not t.startswith("kast")]
    reps = max(len(v) for v in values.values())
    median = {k: statistics.median(v) * SCALE.get(k[2], 1) for k, v in values.items()}

    print("# kast side by side\n")
    print(f"Medians of {reps} repetitions, tools alternating, page cache dropped "
          "before every step; settings and datasets: `bench/compare.sh`. "
          "Raw numbers: `LATEST.csv`.\n")
    for metric, title, fmt in METRICS:
        print(f"## {title}\n")
        print("| step | " + " | ".join(tools) + " | kast / best peer | " +
              " | ".join(f"kast / {p}" for p in peers) + " |")
        print("|---" * (2 + len(tools) + len(peers)) + "|")
        for step in steps:
            cells = [fmt.format(median[(t, step, metric)]) if (t, step, metric) in median
                     else "–" for t in tools]
            kast = median.get(("kast", step, metric))
            best = min((median[(p, step, metric)] for p in peers
                        if (p, step, metric) in median), default=None)
            ratios = [f"{kast / best:.2f}" if kast is not None and best else "–"]
            for p in peers:
                k, q = median.get(("kast", step, metric)), median.get((p, step, metric))
                ratios.append(f"{k / q:.2f}" if k is not None and q else "–")
            print(f"| {step} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
        print()


if __name__ == "__main__":
    main(sys.argv[1])
