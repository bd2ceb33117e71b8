#!/usr/bin/env bash
# `make demo`: run `registryd serve` in the background, run `registryd demo` against it
# once it answers, stop the daemon with SIGTERM, then delete everything the demo made.
# A progress line per step goes to stderr; the demo's own output to stdout. Exits with
# the demo's status (see `registryd --help` for the codes). Arguments go to
# `registryd demo` (e.g. `scripts/demo.sh --masters 3`).
#
# Safe next to a real registry: the demo has a prefix of its own (REGISTRYD_PREFIX,
# default registry-demo), acts as masters 9001 and up with workers demo-worker-N only,
# and refuses a prefix holding anything else. The clean-up (`registryd purge-demo`)
# deletes the prefix's Redis keys, queues and exchanges, and refuses the same way. No
# metrics port (a daemon already running here may hold the default one).
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRYD=${REGISTRYD:-.venv/bin/registryd}
WAIT_SECONDS=${WAIT_SECONDS:-20}
export REGISTRYD_PREFIX=${REGISTRYD_PREFIX:-registry-demo}
export REGISTRYD_METRICS_PORT=${REGISTRYD_METRICS_PORT:-0}
export REGISTRYD_LOG_FORMAT=${REGISTRYD_LOG_FORMAT:-console}

log="$(mktemp -d "${TMPDIR:-/tmp}/registryd-demo.XXXXXX")/serve.log"
daemon=
started=$EPOCHREALTIME

# Progress goes to stderr and never fails the script (stderr may be a closed pipe).
say() {
  local elapsed
  elapsed=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  printf '[demo %5ss] %s\n' "$elapsed" "$*" >&2 || true
}

stop_daemon() {
  local pid=$daemon
  daemon=
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# However the script ends (error, Ctrl-C, SIGTERM, a closed pipe), the daemon goes too.
trap stop_daemon EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap '' PIPE

say "1/4 starting registryd serve on prefix $REGISTRYD_PREFIX (log: $log)"
"$REGISTRYD" serve >"$log" 2>&1 &
daemon=$!

say "2/4 running registryd demo once the daemon answers (up to ${WAIT_SECONDS} s)"
status=0
"$REGISTRYD" demo --wait "$WAIT_SECONDS" "$@" || status=$?
if ! kill -0 "$daemon" 2>/dev/null; then
  say "registryd serve exited early; the end of its log:"
  tail -n 20 "$log" >&2
  ((status != 0)) || status=1
fi

say "3/4 stopping the daemon (SIGTERM)"
stop_daemon

say "4/4 deleting what the demo made on prefix $REGISTRYD_PREFIX"
cleaned=0
"$REGISTRYD" purge-demo >&2 || cleaned=$?
((status != 0)) || status=$cleaned

say "done: registryd demo exited with status $status (daemon log: $log)"
exit "$status"
