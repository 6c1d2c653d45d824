#!/usr/bin/env bash
# Spindle's models beside the async standard (issue 14), same load
# generator, same run: `spindle load echo` and `spindle load http` at 1,
# 16, 64, 128, 256 and 1,024 connections against each server named. From
# the project root:
#
#   docs/bench/references.sh [SERVER...]   # default: pool thread reactor tokio
#
# SERVER: a Spindle model (`serve echo|http --model NAME`, defaults
# otherwise, on the listen backlog `spindle bench` uses), or `tokio`: the
# tokio echo server (examples/tokio_echo.rs) for echo and the hyper web
# counter (examples/hyper_counter.rs) for http, on tokio's default of one
# worker thread per core. Every point: closed loop, 3 s after 1 s warm-up.
# Cells: requests/s, then errors and connections never served if any.
set -euo pipefail
source docs/bench/lib.sh
servers=("$@")
[ $# -gt 0 ] || servers=(pool thread reactor tokio)
counts=(1 16 64 128 256 1024)
run cargo build --release --quiet --bin spindle --example tokio_echo --example hyper_counter
log=$(mktemp)
out=$(mktemp -d)
trap 'stop; rm -rf "$log" "$out"' EXIT
server() {  # server SUITE NAME: its command line
  case $1:$2 in
    echo:tokio) echo target/release/examples/tokio_echo 0 ;;
    http:tokio) echo target/release/examples/hyper_counter 0 ;;
    *) echo target/release/spindle serve "$1" --model "$2" --listen tcp:port=0:interface=127.0.0.1:backlog=1024 ;;
  esac
}
label() { [ "$1:$2" = http:tokio ] && echo hyper || echo "$2"; }
echo "# references, commit $(git rev-parse --short HEAD), $(date -u +%FT%TZ)"
for suite in echo http; do
  for s in "${servers[@]}"; do
    # shellcheck disable=SC2046  # the command line is split on purpose
    start "$s" "$log" $(server "$suite" "$s")
    for c in "${counts[@]}"; do
      echo "$(load)" >"$out/$suite.$s.$c.load"
      run target/release/spindle load "$suite" -t "127.0.0.1:$PORT" -c "$c" -d 3s --warmup 1s --json \
        >"$out/$suite.$s.$c.json" 2>"$out/$suite.$s.$c.err" || true
    done
    stop
  done
  echo
  echo "## $suite: requests/s (errors, connections never served)"
  printf '| connections |'; for s in "${servers[@]}"; do printf ' %s |' "$(label "$suite" "$s")"; done
  printf ' load average |\n|---:|'; for _ in "${servers[@]}"; do printf -- '---:|'; done; echo '---|'
  for c in "${counts[@]}"; do
    printf '| %s |' "$c"
    for s in "${servers[@]}"; do
      jq -j '" \(.requests_per_sec | floor)" + (if .errors_total > 0 or .fairness.connections_without_service > 0
        then " (\(.errors_total) err, \(.fairness.connections_without_service) unserved)" else "" end) + " |"' \
        "$out/$suite.$s.$c.json" 2>/dev/null || printf ' failed: %s |' "$(tail -1 "$out/$suite.$s.$c.err")"
    done
    echo " $(cat "$out/$suite.${servers[0]}.$c.load") |"
  done
done
