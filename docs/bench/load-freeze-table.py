#!/usr/bin/env python3
"""NOTES' frozen-server table from load-freeze.sh's raw reports.

    python3 docs/bench/load-freeze-table.py docs/bench/load-freeze.txt

One row per run: spindle load's corrected latency (from each request's
intended send time) and, from the same run, its uncorrected latency (from
the actual send), with the accounting identity scheduled = completed +
failed + unsent; then wrk's, which measures from the actual send only and
schedules nothing.
"""

import json
import re
import sys


def us(x):
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f} s"
    if x >= 1000:
        return f"{x / 1000:.2f} ms"
    return f"{x:.0f} us"


def wrk_us(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
    n, unit = float(m.group(1)), m.group(2)
    return n * {"us": 1, "ms": 1e3, "s": 1e6, "m": 6e7}[unit]


sections = []
current = None
for line in open(sys.argv[1]):
    if line.startswith("=== "):
        f = line.split()
        current = {
            "server": f[1],
            "freeze": f[3],
            "tool": f[4],
            "load": f[-3],
            "text": "",
        }
        if f[4] == "spindle":
            current["tool"] = "spindle"
        sections.append(current)
    elif current is not None:
        current["text"] += line

print(
    "| server | freeze | generator | scheduled | completed | failed | unsent |"
    " p50 | p90 | p99 | max | errors | load avg |"
)
print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
for s in sections:
    server = "spindle serve http" if s["server"] == "spindle" else "nginx, 1 worker"
    if s["tool"] == "spindle":
        d = json.loads(s["text"])
        a = d["accounting"]
        assert a["scheduled"] == a["completed"] + a["failed"] + a["unsent"], a
        errors = ", ".join(f'{e["kind"]} {e["count"]}' for e in d["errors"]) or "none"
        for label, key in [("corrected", "corrected_latency_us"), ("uncorrected", "uncorrected_latency_us")]:
            lat = d["open_loop"][key]
            counts = (
                f'{a["scheduled"]:,} | {a["completed"]:,} | {a["failed"]:,} | {a["unsent"]:,}'
                if label == "corrected"
                else "(same run) | | |"
            )
            print(
                f'| {server} | {s["freeze"]} s | `spindle load --rate`, {label} | {counts}'
                f' | {us(lat["p50"])} | {us(lat["p90"])} | {us(lat["p99"])} | {us(lat["max"])}'
                f' | {errors if label == "corrected" else ""} | {s["load"]} |'
            )
    else:
        t = s["text"]
        pct = dict(re.findall(r"^\s+(\d+)%\s+(\S+)", t, re.M))
        lat = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", t, re.M)
        requests = int(re.search(r"(\d+) requests in", t).group(1))
        sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
        failed = sum(int(x) for x in sock.groups()) if sock else 0
        errors = (
            f"connect {sock.group(1)}, read {sock.group(2)}, write {sock.group(3)}, timeout {sock.group(4)}"
            if sock
            else "none"
        )
        print(
            f'| {server} | {s["freeze"]} s | `wrk` (closed loop) | - | {requests:,} | {failed:,} | -'
            f' | {us(wrk_us(pct["50"]))} | {us(wrk_us(pct["90"]))} | {us(wrk_us(pct["99"]))}'
            f' | {us(wrk_us(lat.group(3)))} | {errors} | {s["load"]} |'
        )
