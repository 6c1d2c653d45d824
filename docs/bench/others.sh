#!/usr/bin/env bash
# The measurements of NOTES.md's sections before the models (load generator
# against wrk, the web counter beside nginx, chat fan-out, the command
# server), in one run. From the project root, on a quiet machine.
#
#   docs/bench/others.sh
#
# Writes docs/bench/wrk-comparison.txt, http-vs-nginx.txt, chat-fanout.md,
# cmd-latency.md. Needs wrk and nginx (.ci/run installs both).
set -euo pipefail
out=docs/bench
cargo build --release --quiet
spindle=target/release/spindle
log() { echo "== $(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg): $*" >&2; }
mkdir -p /tmp/load-nginx
nginx -c "$PWD/$out/wrk-comparison-nginx.conf" -p /tmp/load-nginx -g 'daemon off;' \
  >/tmp/load-nginx/out.log 2>&1 &
nginx_pid=$!
"$spindle" serve http --listen tcp:port=18080:interface=127.0.0.1 >/tmp/spindle-http.log 2>&1 &
spindle_pid=$!
trap 'kill -INT $spindle_pid 2>/dev/null; kill $nginx_pid 2>/dev/null' EXIT
for _ in $(seq 100); do
  if grep -q "starting on" /tmp/spindle-http.log && curl -s -o /dev/null http://127.0.0.1:18090/; then break; fi
  sleep 0.1   # start-up poll in a measurement script, not a test
done
log "commit $(git rev-parse --short HEAD): wrk against spindle load"
{ echo "# wrk vs spindle load, raw runs (see NOTES.md). Script: docs/bench/wrk-comparison.sh"
  bash "$out/wrk-comparison.sh"; } >"$out/wrk-comparison.txt"
log "spindle serve http beside nginx"
for c in 16 64 256; do
  for port in 18090 18080; do
    echo "## port $port (18090 nginx, 18080 spindle), $c connections, load $(cut -d' ' -f1 /proc/loadavg)"
    wrk -t2 -c"$c" -d5s --latency "http://127.0.0.1:$port/"
  done
done >"$out/http-vs-nginx.txt"
log "chat fan-out"
cargo bench --quiet --bench chat_fanout >"$out/chat-fanout.md"
log "command server latency"
cargo bench --quiet --bench cmd_latency >"$out/cmd-latency.md"
log "done"
