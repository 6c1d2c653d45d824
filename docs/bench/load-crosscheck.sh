#!/usr/bin/env bash
# The load generator cross-checked against wrk and h2load (NOTES.md, "The
# load generator, checked against wrk and h2load"): the same two servers
# (`spindle serve http`, pool, and nginx with one worker), the same
# connections, threads and duration, the three generators alternating in
# every round (their order rotates from round to round). Each run records
# requests/s, p50/p99, mean latency and the generator's CPU time
# (/usr/bin/time user+sys); load-crosscheck-table.py turns the runs into
# NOTES' table (CPU per request, Little's law).
#
#   flock /work/bench.lock docs/bench/load-crosscheck.sh        # from the project root
#   ROUNDS=3 DURATION=5 CONNECTIONS=64 THREADS=2 docs/bench/load-crosscheck.sh
#
# Needs wrk, nginx (nginx-light), h2load (Debian: apt-get install
# nghttp2-client), GNU time (/usr/bin/time), python3 and a release build.
# Writes docs/bench/load-crosscheck.txt (one line per run) and
# docs/bench/load-crosscheck.md (the table). h2load prints no percentiles:
# it runs twice per turn, once plain (requests/s, CPU, mean) and once with
# --log-file (one line per request), whose p50/p99 are computed here; the
# table says so.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${ROUNDS:-3}
duration=${DURATION:-5}
c=${CONNECTIONS:-64}
t=${THREADS:-2}
spindle_port=${SPINDLE_PORT:-18080}
nginx_port=${NGINX_PORT:-18090}
out=${OUT:-docs/bench/load-crosscheck}
for tool in wrk h2load nginx /usr/bin/time python3; do
  command -v "$tool" >/dev/null || {
    echo "load-crosscheck: needs $tool (h2load: apt-get install nghttp2-client; nginx: nginx-light; /usr/bin/time: time)" >&2
    exit 1
  }
done
cargo build --release --quiet
spindle=target/release/spindle
tmp=$(mktemp -d /tmp/load-crosscheck.XXXXXX)

sed -e "s#/tmp/load-nginx#$tmp#g" -e "s#127.0.0.1:18090#127.0.0.1:$nginx_port#" \
  docs/bench/wrk-comparison-nginx.conf >"$tmp/nginx.conf"
nginx -c "$tmp/nginx.conf" -p "$tmp" -g 'daemon off;' >"$tmp/nginx.out" 2>&1 &
nginx_pid=$!
"$spindle" serve http --listen "tcp:port=$spindle_port:interface=127.0.0.1:backlog=1024" \
  >"$tmp/spindle.log" 2>&1 &
spindle_pid=$!
trap 'kill -INT $spindle_pid 2>/dev/null; kill $nginx_pid 2>/dev/null; wait; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
  if curl -s -o /dev/null "http://127.0.0.1:$spindle_port/" &&
    curl -s -o /dev/null "http://127.0.0.1:$nginx_port/"; then break; fi
  sleep 0.1 # start-up poll in a measurement script, not a test
done

# to_us VALUE: wrk's "47.00us" / "2.07ms" / "1.02s" in microseconds.
to_us() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); print v + 0 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); print v * 1000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000000 }
    else print "nan" }'
}

# Each run_* prints: requests/s requests p50_us p99_us mean_us user_s sys_s
run_wrk() {
  local o
  o=$(/usr/bin/time -f "cpu %U %S" wrk -t"$t" -c"$c" -d"${duration}s" --latency "$1" 2>&1)
  echo "$(awk '/Requests\/sec/ {print $2}' <<<"$o") $(awk '/requests in/ {print $1}' <<<"$o")" \
    "$(to_us "$(awk '$1=="50%" {print $2}' <<<"$o")") $(to_us "$(awk '$1=="99%" {print $2}' <<<"$o")")" \
    "$(to_us "$(awk '$1=="Latency" && $2 != "Distribution" {print $2}' <<<"$o")") $(awk '$1=="cpu" {print $2, $3}' <<<"$o")"
}
run_h2load() {
  local o
  o=$(/usr/bin/time -f "cpu %U %S" h2load --h1 -t"$t" -c"$c" -D"$duration" "$1" 2>&1)
  # "time for request:  27us  4.86ms  80us ..." (min max mean sd).
  echo "$(awk '/^finished in/ {print $4}' <<<"$o") $(awk '/^requests:/ {print $8}' <<<"$o") - -" \
    "$(to_us "$(awk '/^time for request:/ {print $6}' <<<"$o")") $(awk '$1=="cpu" {print $2, $3}' <<<"$o")"
}
# h2load with --log-file: one line per request, "start_us status elapsed_us".
run_h2load_log() {
  local o
  o=$(/usr/bin/time -f "cpu %U %S" h2load --h1 -t"$t" -c"$c" -D"$duration" \
    --log-file="$tmp/h2load.log" "$1" 2>&1)
  local pct
  pct=$(python3 -c '
import sys
v = sorted(int(l.split()[2]) for l in open(sys.argv[1]) if l.strip())
q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
print(q(0.50), q(0.99), sum(v) / len(v))' "$tmp/h2load.log")
  echo "$(awk '/^finished in/ {print $4}' <<<"$o") $(awk '/^requests:/ {print $8}' <<<"$o") $pct" \
    "$(awk '$1=="cpu" {print $2, $3}' <<<"$o")"
}
run_spindle() {
  local o
  o=$(/usr/bin/time -f "cpu %U %S" "$spindle" load http -t "$1" -c "$c" -d "${duration}s" \
    --warmup 0s --threads "$t" --json 2>&1)
  echo "$(grep -v '^cpu ' <<<"$o" | python3 -c '
import json, sys
d = json.load(sys.stdin)
l = d["latency_us"]
assert d["errors_total"] == 0, "spindle load reported errors"
print("%.1f %d %.1f %.1f %.1f" % (d["requests_per_sec"], d["requests"], l["p50"], l["p99"], l["mean"]))')" \
    "$(awk '$1=="cpu" {print $2, $3}' <<<"$o")"
}

tools=(wrk h2load h2load-log spindle)
{
  echo "# spindle load vs wrk vs h2load, raw runs; script docs/bench/load-crosscheck.sh"
  echo "# commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src bin || echo ' (+ uncommitted changes)'), $(date -u '+%Y-%m-%d %H:%M UTC'), $c connections, $t threads, ${duration}s per run"
  echo "# wrk -t$t -c$c -d${duration}s --latency URL"
  echo "# h2load --h1 -t$t -c$c -D$duration URL   (h2load-log: the same with --log-file=FILE)"
  echo "# spindle load http -t HOST:PORT -c $c -d ${duration}s --warmup 0s --threads $t --json"
  echo "# round server tool requests_per_sec requests p50_us p99_us mean_us user_s sys_s loadavg1 loadavg5"
  for round in $(seq "$rounds"); do
    for server in spindle nginx; do
      if [ "$server" = spindle ]; then port=$spindle_port; else port=$nginx_port; fi
      url="http://127.0.0.1:$port/"
      n=${#tools[@]}
      for i in $(seq 0 $((n - 1))); do
        tool=${tools[$(((i + round - 1) % n))]}
        load=$(cut -d' ' -f1-2 /proc/loadavg)
        case $tool in
          wrk) r=$(run_wrk "$url") ;;
          h2load) r=$(run_h2load "$url") ;;
          h2load-log) r=$(run_h2load_log "$url") ;;
          spindle) r=$(run_spindle "127.0.0.1:$port") ;;
        esac
        echo "$round $server $tool $r $load"
      done
    done
  done
} | tee "$out.txt"
python3 docs/bench/load-crosscheck-table.py "$out.txt" | tee "$out.md"
