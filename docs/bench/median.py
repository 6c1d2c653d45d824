#!/usr/bin/env python3
"""Median (and range) of several `spindle bench` runs of one suite.

    python3 docs/bench/median.py docs/bench/models-echo-run1 docs/bench/models-echo-run2 ...

Reads each DIR/results.json and prints, per model and connection count, the
median requests/s with its min-max, the median p99 latency, the median server
CPU (% of a core) and CPU time per request, and the median context switches
per request (both from the samples `spindle bench` takes at the edges of each
measured window, over the server and its child processes). A failed
point is shown as failed and left out of the medians.
"""
import json
import statistics
import sys


def median_of(values):
    """The median of the values that are there (None where a point has none)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def main(dirs):
    runs = [json.load(open(f"{d}/results.json")) for d in dirs]
    points = {}
    order = []
    for run in runs:
        duration = run["duration_sec"]
        for p in run["points"]:
            key = (p["model"], p["workload"], p["connections"])
            if key not in points:
                points[key] = []
                order.append(key)
            points[key].append((p, duration))
    print(f"Medians of {len(runs)} runs:")
    for r in runs:
        print(f"- `{r['command']}`")
    print()
    print("| model | workload | connections | requests/s, median (min-max) | p99 (us), median | server CPU (% of a core), median | server CPU per request (us), median | context switches per request, median | failed runs |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for key in order:
        ok = [(p, d) for p, d in points[key] if p.get("ok")]
        failed = len(points[key]) - len(ok)
        if not ok:
            print(f"| {key[0]} | {key[1]} | {key[2]} | failed | | | | | {failed} |")
            continue
        rates = [p["requests_per_sec"] for p, _ in ok]
        p99 = statistics.median(p["latency_us"]["p99"] for p, _ in ok)
        cpu = statistics.median(p["server"]["cpu_percent"] for p, _ in ok)
        cpu_us = median_of(p["server"].get("cpu_us_per_request") for p, _ in ok)
        cs = median_of(p["server"].get("context_switches_per_request") for p, _ in ok)
        # Idle points make almost no requests; per request means nothing there.
        cs_text = "-" if key[1] == "idle" or cs is None else f"{cs:.3f}"
        cpu_us_text = "-" if key[1] == "idle" or cpu_us is None else f"{cpu_us:.1f}"
        print(
            f"| {key[0]} | {key[1]} | {key[2]} | {statistics.median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f}) "
            f"| {p99:,.0f} | {cpu:.0f} | {cpu_us_text} | {cs_text} | {failed} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
