#!/bin/bash
# Interleaved wrk vs spindle load, same server, same settings. Expects
# `spindle serve http` on 127.0.0.1:18080 and nginx (wrk-comparison-nginx.conf)
# on 127.0.0.1:18090, and a release build (cargo build --release).
cd "$(dirname "$0")/../.."
for round in 1 2 3; do
  for port in 18080 18090; do
    w=$( { /usr/bin/time -f "%U %S" wrk -t2 -c64 -d5s --latency http://127.0.0.1:$port/ ; } 2>&1 )
    wr=$(echo "$w" | awk '/Requests\/sec/ {print $2}'); wp=$(echo "$w" | awk '$1=="99%" {print $2}'); wc=$(echo "$w" | tail -1)
    s=$( { /usr/bin/time -f "%U %S" ./target/release/spindle load http -t 127.0.0.1:$port -c 64 -d 5s --warmup 0s --threads 2 --json ; } 2>&1 )
    sr=$(echo "$s" | head -n -1 | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f %.0f %d" % (d["requests_per_sec"], d["latency_us"]["p99"], d["errors_total"]))')
    sc=$(echo "$s" | tail -1)
    echo "round $round port $port | wrk $wr req/s p99 $wp cpu(u s) $wc | spindle $sr (req/s p99us errors) cpu(u s) $sc | load $(cut -d' ' -f1 /proc/loadavg)"
  done
done
