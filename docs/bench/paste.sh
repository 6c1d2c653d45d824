#!/usr/bin/env bash
# The paste of issue 15: one member sends 50,000 short lines in one write
# into a room of 10 members that keep reading; for each server named, in
# one run: readers that got every line in order, readers disconnected, the
# paster's fate, when the last line came, and the server's RSS. From the
# project root:
#
#   docs/bench/paste.sh [SERVER...]   # default: twisted bare pool thread reactor
#
# SERVER as in fanout.sh. The client is examples/chat_paste.rs; its
# per-member lines go to stderr, the table to stdout.
set -euo pipefail
source docs/bench/lib.sh
servers=("$@")
[ $# -gt 0 ] || servers=(twisted bare pool thread reactor)
readers=10 lines=50000
run cargo build --release --quiet --bin spindle --example bare_chat --example chat_paste
log=$(mktemp)
trap 'stop; rm -f "$log"' EXIT
echo "# paste of $lines lines into $readers readers, commit $(git rev-parse --short HEAD), $(date -u +%FT%TZ)"
echo "| server | readers with every line, in order | readers disconnected | lines per reader (min–max) | paster | last line after | server RSS before → peak | load average |"
echo "|---|---:|---:|---:|---|---:|---:|---|"
field() { sed "s/.*$1=\([^ ]*\).*/\1/" <<<"$summary"; }
for s in "${servers[@]}"; do
  # shellcheck disable=SC2046  # the command line is split on purpose
  start "$s" "$log" $(chat_server "$s")
  before=$(load)
  if ! out=$(run target/release/examples/chat_paste "127.0.0.1:$PORT" $readers $lines "$SERVER_PID"); then
    stop; echo "| $s | failed (its reason is on stderr) | | | | | | $before |"; continue
  fi
  stop
  grep -v '^summary' <<<"$out" | sed "s/^/  $s /" >&2
  summary=$(grep '^summary' <<<"$out")
  paster=$(field paster_write)
  [ "$(field paster_disconnected)" = true ] && paster="$paster, disconnected"
  echo "| $s | $(field readers_complete) | $(field readers_disconnected) | $(field reader_lines_min)–$(field reader_lines_max) | $paster | $(field last_line_s) s | $(field rss_before_kib) → $(field rss_peak_kib) KiB | $before → $(load) |"
done
