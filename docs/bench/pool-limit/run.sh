#!/usr/bin/env bash
# NOTES.md section 3: the pool's limit made visible. For each model: serve
# echo with --workers 64, hold 64 idle connections with `spindle load idle`,
# then measure one more client with `spindle load echo -c 1`.
# Usage: docs/bench/pool-limit/run.sh [path/to/spindle]   (default: target/release/spindle)
set -euo pipefail
spindle=${1:-target/release/spindle}
log=$(mktemp)
for model in pool thread reactor; do
  : >"$log"   # emptied here, not by the background redirection (a race)
  "$spindle" serve echo --model "$model" --workers 64 --listen tcp:0:interface=127.0.0.1 --grace 1s >"$log" 2>&1 &
  server=$!
  for _ in $(seq 100); do grep -q "starting on" "$log" && break; sleep 0.05; done
  port=$(grep -o "starting on [^ ]*" "$log" | awk '{print $3}' | sed 's/.*://')
  "$spindle" load idle -t "127.0.0.1:$port" -c 64 -d 6s --warmup 0s >/dev/null 2>&1 &
  idle=$!
  sleep 1.5   # let the 64 idle connections take their workers
  echo "## $model: one echo client while 64 idle connections are held (--workers 64)"
  "$spindle" load echo -t "127.0.0.1:$port" -c 1 -d 2s --warmup 0s --timeout 2s 2>&1 || true
  wait "$idle" || true
  kill -INT "$server"; wait "$server" || true
done
rm -f "$log"
