#!/usr/bin/env bash
# `make demo`: run `registryd serve` in the background, wait until it answers, run
# `registryd demo` against it, then stop the daemon with SIGTERM and wait for it.
# Exits with the demo's status. The daemon's console log goes to a temporary directory.
#
# The demo uses its own prefix (REGISTRYD_PREFIX, default registry-demo) so that it never
# touches a real registry on the same RabbitMQ and Redis, and no metrics port (a daemon
# already running here may hold the default one).
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRYD=${REGISTRYD:-.venv/bin/registryd}
WAIT_SECONDS=${WAIT_SECONDS:-20}
export REGISTRYD_PREFIX=${REGISTRYD_PREFIX:-registry-demo}
export REGISTRYD_METRICS_PORT=${REGISTRYD_METRICS_PORT:-0}
export REGISTRYD_LOG_FORMAT=${REGISTRYD_LOG_FORMAT:-console}

log="$(mktemp -d "${TMPDIR:-/tmp}/registryd-demo.XXXXXX")/serve.log"
daemon=

# Messages go to stderr and never fail the script (stdout may be a closed pipe).
say() { printf '[demo] %s\n' "$*" >&2 || true; }

stop_daemon() {
  local pid=$daemon
  daemon=
  [[ -n $pid ]] || return 0
  if kill -TERM "$pid" 2>/dev/null; then
    say "stopped the daemon (SIGTERM); waiting for it"
  fi
  wait "$pid" 2>/dev/null || true
}

# However the script ends (error, Ctrl-C, SIGTERM, a closed pipe), the daemon goes too.
trap stop_daemon EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
trap '' PIPE

say "starting registryd serve (prefix $REGISTRYD_PREFIX, log $log)"
"$REGISTRYD" serve >"$log" 2>&1 &
daemon=$!

answers() { "$REGISTRYD" check >/dev/null 2>&1 && "$REGISTRYD" masters >/dev/null 2>&1; }

for ((tries = WAIT_SECONDS * 2; ; tries--)); do
  if ! kill -0 "$daemon" 2>/dev/null; then
    say "registryd serve exited early; the end of its log:"
    tail -n 20 "$log" >&2
    exit 1
  fi
  answers && break
  if ((tries <= 0)); then
    say "the daemon did not answer within ${WAIT_SECONDS} s ($("$REGISTRYD" check || true))"
    tail -n 20 "$log" >&2
    exit 1
  fi
  sleep 0.5
done

say "the daemon answers; running registryd demo"
status=0
"$REGISTRYD" demo || status=$?
stop_daemon
say "registryd demo exited with status $status (daemon log: $log)"
exit "$status"
