#!/usr/bin/env bash
# Every measurement behind NOTES.md sections 1-6 (the concurrency models),
# in one run, on this machine. Run it from the project root on a quiet
# machine: each step logs the load average, and NOTES.md quotes it.
#
#   docs/bench/models.sh [RUNS]      # RUNS sweeps of section 1 (default 3)
#
# Writes docs/bench/models-{echo,http}-run*/ (results.json, results.md, SVG
# charts), models-*-process/, models-*-median.md, idle-memory.md,
# pool-limit/output.txt, blocking-work.md, inbox-hop.md, echo-models.md.
set -euo pipefail
runs=${1:-3}
out=docs/bench
cargo build --release --quiet
spindle=target/release/spindle
log() { echo "== $(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg): $*" >&2; }

log "commit $(git rev-parse --short HEAD)"
for r in $(seq 1 "$runs"); do
  for suite in echo http; do
    idle=0
    if [ "$r" = 1 ]; then idle=10000; fi
    log "section 1: $suite, run $r of $runs"
    "$spindle" bench "$suite" --model pool --model thread --model reactor \
      --connections 1,4,16,64,256,1024 --idle "$idle" -d 2s --warmup 1s \
      --out "$out/models-$suite-run$r" >/dev/null
  done
done
for suite in echo http; do
  log "section 1: $suite, process model"
  "$spindle" bench "$suite" --model process --connections 1,4,16,64,256 --idle 0 \
    -d 2s --warmup 3s --out "$out/models-$suite-process" >/dev/null
  python3 "$out/median.py" "$out"/models-"$suite"-run* "$out/models-$suite-process" \
    >"$out/models-$suite-median.md"
done
log "section 1: the same echo, with a client thread per connection"
SPINDLE_CONNS=1,4,16,64,256 SPINDLE_BENCH_SECS=2 cargo bench --quiet --bench echo_models \
  >"$out/echo-models.md"
log "section 2: idle memory"
cargo bench --quiet --bench idle_memory >"$out/idle-memory.md"
log "section 3: the pool's limit"
"$out/pool-limit/run.sh" "$spindle" >"$out/pool-limit/output.txt"
log "section 4: blocking work"
cargo bench --quiet --bench blocking_work >"$out/blocking-work.md"
log "section 5: the channel hop"
cargo bench --quiet --bench inbox_hop >"$out/inbox-hop.md"
log "done"
