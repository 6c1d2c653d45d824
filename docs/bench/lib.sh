# Shared by the reference scripts (fanout.sh, paste.sh, references.sh,
# slowloris.sh): start a server in the background, find its port in its
# log, stop it. Source it; it needs bash.

# Prints and runs a command line, so every number has its command beside it.
run() { echo "\$ $*" >&2; "$@"; }

# The load average, quoted beside every measurement.
load() { cut -d' ' -f1-3 /proc/loadavg; }

# start NAME LOG CMD...: starts CMD with its output in LOG and waits (10 s
# at most) for its `... starting on PORT` line; sets SERVER_PID and PORT.
start() {
  local name=$1 log=$2; shift 2
  echo "\$ $* &   # $name" >&2
  : >"$log"
  "$@" >"$log" 2>&1 &
  SERVER_PID=$!
  PORT=
  for _ in $(seq 100); do
    PORT=$(grep -o "starting on [0-9.:]*[0-9]" "$log" | head -1 | sed 's/.*[ :]//' || true)
    [ -n "$PORT" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1   # start-up poll in a measurement script, not a test
  done
  echo "$name did not start; its log:" >&2; cat "$log" >&2
  return 1
}

# stop: ends the server `start` started (SIGINT: Spindle and Twisted both
# stop gracefully on it), then SIGKILL if it is still there after 5 s.
stop() {
  kill -INT "$SERVER_PID" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$SERVER_PID" 2>/dev/null || { wait "$SERVER_PID" 2>/dev/null; return 0; }
    sleep 0.1
  done
  kill -KILL "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null || true
}

# chat_server NAME: the command line of chat server NAME: twisted, bare,
# or a Spindle model (serve chat --model NAME).
chat_server() {
  case $1 in
    twisted) echo python3 docs/bench/twisted_chat.py 0 ;;
    bare) echo target/release/examples/bare_chat 0 ;;
    *) echo target/release/spindle serve chat --model "$1" --listen tcp:port=0:interface=127.0.0.1 ;;
  esac
}
