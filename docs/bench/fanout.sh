#!/usr/bin/env bash
# Chat fan-out (issue 15): 50 clients in one room, one sender, at most 64
# lines ahead of the slowest receiver, 5 s; delivered lines/s over all 50,
# for each server named, in one run. From the project root:
#
#   docs/bench/fanout.sh [SERVER...]   # default: twisted bare pool thread reactor
#
# SERVER: twisted (docs/bench/twisted_chat.py, the tutorial's PubProtocol),
# bare (examples/bare_chat.rs), or a Spindle model (`serve chat --model`).
# The load is examples/fanout_load.rs for every server.
set -euo pipefail
source docs/bench/lib.sh
servers=("$@")
[ $# -gt 0 ] || servers=(twisted bare pool thread reactor)
clients=50 window=64 secs=5
run cargo build --release --quiet --bin spindle --example bare_chat --example fanout_load
log=$(mktemp)
trap 'stop; rm -f "$log"' EXIT
echo "# fan-out, commit $(git rev-parse --short HEAD), $(date -u +%FT%TZ)"
echo "| server | lines/s | × twisted | p50 | p99 | disconnects | load average |"
echo "|---|---:|---:|---:|---:|---:|---|"
base=
for s in "${servers[@]}"; do
  # shellcheck disable=SC2046  # the command line is split on purpose
  start "$s" "$log" $(chat_server "$s")
  before=$(load)
  if ! result=$(run target/release/examples/fanout_load "127.0.0.1:$PORT" $clients $window $secs); then
    stop; echo "| $s | failed (its reason is on stderr) | | | | | $before |"; continue
  fi
  stop
  rate=$(sed 's/.*lines_per_sec=\([0-9]*\).*/\1/' <<<"$result")
  p50=$(sed 's/.*p50_us=\([0-9]*\).*/\1/' <<<"$result")
  p99=$(sed 's/.*p99_us=\([0-9]*\).*/\1/' <<<"$result")
  gone=$(sed 's/.*disconnects=\([0-9]*\).*/\1/' <<<"$result")
  [ "$s" = twisted ] && base=$rate
  ratio=$([ -n "$base" ] && awk -v r="$rate" -v b="$base" 'BEGIN{printf "%.1f×", r/b}' || echo "-")
  echo "| $s | $rate | $ratio | ${p50} µs | ${p99} µs | $gone | $before → $(load) |"
done
