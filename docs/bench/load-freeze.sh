#!/usr/bin/env bash
# Coordinated omission, measured (NOTES.md, "A frozen server: what each
# generator reports"): the server is stopped (SIGSTOP) for FREEZE seconds
# in the middle of a 10 s run, then resumed (SIGCONT). `spindle load` runs
# open loop at a fixed rate and charges each request from its intended
# send time (wrk2's rule); wrk runs closed loop (it has no rate) and times
# each request from when it was sent, so the requests it did not send
# while the server was stopped appear in no figure. Both get the same
# connections, threads and response timeout; freezes of 0 (the baseline),
# 3 and 5 s (5 s = --timeout, the issue's case), on both servers.
#
#   flock /work/bench.lock docs/bench/load-freeze.sh     # from the project root
#
# Servers: `spindle serve http` with --keepalive-timeout 60s (its default,
# 5 s, would close the frozen connections itself when it wakes: that is
# the server's policy, not the generator's to measure) and nginx with one
# worker (the worker process is the one stopped). Needs wrk, nginx,
# python3, a release build. Writes docs/bench/load-freeze.txt (the raw
# reports) and docs/bench/load-freeze.md (the table).
set -euo pipefail
cd "$(dirname "$0")/../.."
c=${CONNECTIONS:-16}
rate=${RATE:-1000}
duration=${DURATION:-10}
at=${FREEZE_AT:-2.5}
timeout=${TIMEOUT:-5}
freezes=${FREEZES:-"0 3 5"}
spindle_port=${SPINDLE_PORT:-18080}
nginx_port=${NGINX_PORT:-18090}
out=${OUT:-docs/bench/load-freeze}
for tool in wrk nginx python3 curl; do
  command -v "$tool" >/dev/null || { echo "load-freeze: needs $tool" >&2; exit 1; }
done
cargo build --release --quiet
spindle=target/release/spindle
tmp=$(mktemp -d /tmp/load-freeze.XXXXXX)

sed -e "s#/tmp/load-nginx#$tmp#g" -e "s#127.0.0.1:18090#127.0.0.1:$nginx_port#" \
  docs/bench/wrk-comparison-nginx.conf >"$tmp/nginx.conf"
nginx -c "$tmp/nginx.conf" -p "$tmp" -g 'daemon off;' >"$tmp/nginx.out" 2>&1 &
nginx_pid=$!
"$spindle" serve http --keepalive-timeout 60s \
  --listen "tcp:port=$spindle_port:interface=127.0.0.1:backlog=1024" >"$tmp/spindle.log" 2>&1 &
spindle_pid=$!
trap 'kill -CONT $spindle_pid $nginx_worker 2>/dev/null; kill -INT $spindle_pid 2>/dev/null; kill $nginx_pid 2>/dev/null; wait; rm -rf "$tmp"' EXIT
nginx_worker=
for _ in $(seq 100); do
  nginx_worker=$(pgrep -P "$nginx_pid" | head -1 || true)
  if [ -n "$nginx_worker" ] && curl -s -o /dev/null "http://127.0.0.1:$spindle_port/" &&
    curl -s -o /dev/null "http://127.0.0.1:$nginx_port/"; then break; fi
  sleep 0.1 # start-up poll in a measurement script, not a test
done

# freeze PID SECONDS: stops PID FREEZE_AT seconds from now for SECONDS.
freeze() {
  [ "$2" = 0 ] && return 0
  sleep "$at"
  kill -STOP "$1"
  sleep "$2"
  kill -CONT "$1"
}

{
  echo "# commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src bin || echo ' (+ uncommitted changes)'), $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "# spindle load http -t HOST:PORT -c $c -d ${duration}s --warmup 0s --rate $rate --timeout ${timeout}s --json"
  echo "# wrk -t1 -c$c -d${duration}s --latency --timeout ${timeout}s URL"
  echo "# the server stopped ${at}s after the generator started, for FREEZE s"
  for server in spindle nginx; do
    if [ "$server" = spindle ]; then port=$spindle_port pid=$spindle_pid; else port=$nginx_port pid=$nginx_worker; fi
    for f in $freezes; do
      echo "=== $server freeze $f spindle load $(cut -d' ' -f1-3 /proc/loadavg)"
      freeze "$pid" "$f" &
      freezer=$!
      "$spindle" load http -t "127.0.0.1:$port" -c "$c" -d "${duration}s" --warmup 0s \
        --rate "$rate" --timeout "${timeout}s" --json | python3 -c 'import json, sys; d = json.load(sys.stdin); d.pop("raw", None); print(json.dumps(d))'
      wait "$freezer"
      echo "=== $server freeze $f wrk $(cut -d' ' -f1-3 /proc/loadavg)"
      freeze "$pid" "$f" &
      freezer=$!
      wrk -t1 -c"$c" -d"${duration}s" --latency --timeout "${timeout}s" "http://127.0.0.1:$port/"
      wait "$freezer"
    done
  done
} >"$out.txt"
python3 docs/bench/load-freeze-table.py "$out.txt" | tee "$out.md"
