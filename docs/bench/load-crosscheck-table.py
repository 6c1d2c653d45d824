#!/usr/bin/env python3
"""NOTES' cross-check table from load-crosscheck.sh's raw runs.

    python3 docs/bench/load-crosscheck-table.py docs/bench/load-crosscheck.txt

Per server and generator: the median over rounds of requests/s, p50, p99
and mean latency; CPU per request (user+sys over requests, median of the
runs); Little's law: with every connection always waiting on one request,
mean latency = connections / throughput, so the table gives both and
their ratio. Then spindle load's requests/s and CPU per request as ratios
to each tool's, per round (the same round, back to back), median and range.
"""

import re
import statistics
import sys
from collections import defaultdict

path = sys.argv[1]
runs = defaultdict(list)  # (server, tool) -> [run]
by_round = defaultdict(dict)  # (round, server) -> tool -> run
connections = None
for line in open(path):
    m = re.search(r"(\d+) connections", line)
    if line.startswith("#"):
        if m and connections is None:
            connections = int(m.group(1))
        continue
    f = line.split()
    if len(f) < 12:
        continue
    run = {
        "rps": float(f[3]),
        "requests": int(f[4]),
        "p50": None if f[5] == "-" else float(f[5]),
        "p99": None if f[6] == "-" else float(f[6]),
        "mean": float(f[7]),
        "cpu": float(f[8]) + float(f[9]),
        "load": f[10],
    }
    run["cpu_per_req_us"] = run["cpu"] / run["requests"] * 1e6
    runs[(f[1], f[2])].append(run)
    by_round[(f[0], f[1])][f[2]] = run


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def us(x):
    if x is None:
        return "-"
    return f"{x / 1000:.2f} ms" if x >= 1000 else f"{x:.0f} us"


names = {
    "wrk": "`wrk -t2 --latency`",
    "h2load": "`h2load --h1`",
    "h2load-log": "`h2load --h1 --log-file` (for its percentiles)",
    "spindle": "`spindle load http`",
}
print(
    "| server | generator | runs | requests/s (median) | p50 | p99 | mean latency |"
    " connections / throughput | mean ÷ (c / X) | CPU per request |"
)
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for server in ["spindle", "nginx"]:
    for tool in ["wrk", "h2load", "h2load-log", "spindle"]:
        rs = runs.get((server, tool))
        if not rs:
            continue
        rps = med(r["rps"] for r in rs)
        mean = med(r["mean"] for r in rs)
        little = connections / rps * 1e6
        label = "spindle serve http" if server == "spindle" else "nginx, 1 worker"
        print(
            f"| {label} | {names[tool]} | {len(rs)} | {rps:,.0f} | {us(med(r['p50'] for r in rs))}"
            f" | {us(med(r['p99'] for r in rs))} | {us(mean)} | {us(little)} | {mean / little:.2f}"
            f" | {med(r['cpu_per_req_us'] for r in rs):.2f} us |"
        )
print()
print(
    "| server | spindle load ÷ | requests/s ratio: median (min-max) | CPU per request ratio: median (min-max) |"
)
print("|---|---|---|---|")
for server in ["spindle", "nginx"]:
    for tool in ["wrk", "h2load"]:
        rps, cpu = [], []
        for (rnd, srv), tools in sorted(by_round.items()):
            if srv != server or tool not in tools or "spindle" not in tools:
                continue
            rps.append(tools["spindle"]["rps"] / tools[tool]["rps"])
            cpu.append(tools["spindle"]["cpu_per_req_us"] / tools[tool]["cpu_per_req_us"])
        if not rps:
            continue
        label = "spindle serve http" if server == "spindle" else "nginx, 1 worker"
        print(
            f"| {label} | {tool} | {med(rps):.2f} ({min(rps):.2f}-{max(rps):.2f})"
            f" | {med(cpu):.2f} ({min(cpu):.2f}-{max(cpu):.2f}) |"
        )
loads = [r["load"] for rs in runs.values() for r in rs]
print()
print(f"Load average (1 min) before the runs: {min(loads)} to {max(loads)}.")
