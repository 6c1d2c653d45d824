#!/usr/bin/env bash
# NOTES.md, "Workers for this workload" and "The keep-alive cliff, measured
# per client": the web counter under wrk with several --workers, then the
# per-client view of the cliff policies. From the project root.
set -euo pipefail
cargo build --release --quiet --bins --example keepalive_cliff
spindle=target/release/spindle
serve() {  # serve ARGS... ; sets $pid, waits for the port
  : >/tmp/http-workers.log
  "$spindle" serve http --listen tcp:18482:interface=127.0.0.1 "$@" >/tmp/http-workers.log 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q "starting on" /tmp/http-workers.log && break; sleep 0.05; done
}
for w in 16 64 256; do
  serve --workers "$w"
  for c in 64 256; do
    echo "## --workers $w, wrk -c$c, load $(cut -d' ' -f1 /proc/loadavg)"
    wrk -t2 -c"$c" -d5s --latency http://127.0.0.1:18482/ | grep -E 'Requests/sec|99%|errors|Non-2xx'
  done
  kill -INT "$pid"; wait "$pid" || true
done
for setup in "4 16" "64 256"; do
  set -- $setup
  for policy in hold release; do
    serve --workers "$1" --keepalive-cliff "$policy"
    echo "## --workers $1, $2 clients, --keepalive-cliff $policy, load $(cut -d' ' -f1 /proc/loadavg)"
    ./target/release/examples/keepalive_cliff 127.0.0.1:18482 "$2" 5
    wrk -t2 -c"$2" -d5s --latency http://127.0.0.1:18482/ | grep -E 'Requests/sec|99%|errors|Non-2xx'
    kill -INT "$pid"; wait "$pid" || true
  done
done
