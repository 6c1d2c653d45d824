#!/usr/bin/env bash
# slowloris (issue 14): the real PyPI `slowloris`, 1,000 sockets, a header
# every 3 s, against the web counter on each server named, while an
# ordinary curl is tried 50 times over 20 s (one every 0.4 s, each given
# 5 s). Counts the curls answered 200 and their p50 time. Loopback only;
# each server's attack ends by itself. From the project root:
#
#   docs/bench/slowloris.sh [SERVER...]   # default: pool thread reactor twisted
#
# SERVER: a Spindle model (`serve http --model NAME`, every default kept),
# or twisted (docs/bench/twisted_web.py, the tutorial's counter on
# twisted.web).
set -euo pipefail
source docs/bench/lib.sh
servers=("$@")
[ $# -gt 0 ] || servers=(pool thread reactor twisted)
sockets=1000 tries=50
[ "$(ulimit -n)" -ge 4096 ] || ulimit -n 4096   # slowloris holds 1,000 sockets
run cargo build --release --quiet --bin spindle
log=$(mktemp) attack_log=$(mktemp) curls=$(mktemp -d)
attack=
trap '[ -n "$attack" ] && kill "$attack" 2>/dev/null; stop; rm -rf "$log" "$attack_log" "$curls"' EXIT
established() { ss -Htn state established "( sport = :$PORT )" | wc -l; }
echo "# slowloris, $sockets sockets, commit $(git rev-parse --short HEAD), $(date -u +%FT%TZ)"
echo "| server | curls answered | p50 of those answered | other outcomes | server's open connections (slowloris's count) as curls start | load average |"
echo "|---|---:|---:|---|---:|---|"
for s in "${servers[@]}"; do
  case $s in
    twisted) start "$s" "$log" python3 docs/bench/twisted_web.py 0 ;;
    *) start "$s" "$log" target/release/spindle serve http --model "$s" --listen tcp:port=0:interface=127.0.0.1 ;;
  esac
  before=$(load)
  echo "\$ timeout 40 slowloris 127.0.0.1 -p $PORT -s $sockets --sleeptime 3 &" >&2
  timeout 40 slowloris 127.0.0.1 -p "$PORT" -s "$sockets" --sleeptime 3 >"$attack_log" 2>&1 &
  attack=$!
  # The attack is on once slowloris has opened its sockets and says how
  # many it holds (15 s at most).
  for _ in $(seq 150); do grep -q "Socket count" "$attack_log" && break; sleep 0.1; done
  held="$(established) (slowloris: $(grep -o 'Socket count: [0-9]*' "$attack_log" | head -1 | awk '{print $3}'))"
  rm -f "$curls"/*
  echo "\$ curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}' http://127.0.0.1:$PORT/   # $tries times, every 0.4 s" >&2
  pids=()
  for i in $(seq "$tries"); do
    curl -s -o /dev/null --max-time 5 -w '%{http_code} %{time_total}\n' "http://127.0.0.1:$PORT/" >"$curls/$i" 2>/dev/null &
    pids+=($!)
    sleep 0.4   # the schedule of the ordinary client
  done
  wait "${pids[@]}" || true
  kill "$attack" 2>/dev/null || true; wait "$attack" 2>/dev/null || true; attack=
  stop
  results=$(cat "$curls"/*)
  answered=$(grep -c '^200 ' <<<"$results" || true)
  p50=$(grep '^200 ' <<<"$results" | awk '{print $2 * 1000}' | sort -n |
    awk '{v[NR]=$1} END {if (NR) printf "%.1f ms", v[int((NR+1)/2)]; else print "-"}' || true)
  others=$(grep -v '^200 ' <<<"$results" | awk '{print ($1 == "000" ? "no answer in 5 s" : $1)}' | sort | uniq -c | awk '{n=$1; $1=""; printf "%s%d ×%s", sep, n, $0; sep=", "}' || true)
  echo "| $s | $answered of $tries | $p50 | ${others:--} | $held | $before → $(load) |"
done
