#!/usr/bin/env bash
# Run systemd/registryd.service, hardening and all, under a real systemd: PID 1 of a
# privileged podman container (systemd needs the capabilities it has on a host to set up
# the unit's namespaces). The unit must reach READY ("Status: serving") as the sysusers
# user with no capabilities and its seccomp filter, feed the watchdog, be killed and
# restarted by it when stopped with SIGSTOP, and exit 0 on `systemctl stop`.
# Needs the image of scripts/check-container.sh (localhost/registryd:check): run that first.
set -euo pipefail
cd "$(dirname "$0")/.."
app=localhost/registryd:check
podman image exists "$app" || { echo "no $app: run scripts/check-container.sh first"; exit 1; }
image=localhost/registryd-systemd:check
name="registryd-systemd-$$"
prefix="t-systemd-$(date +%s)-$$"
port=$(.venv/bin/python -c 'from tests.harness import free_port; print(free_port())')
# shellcheck source=scripts/lib-podman.sh
source scripts/lib-podman.sh

# The image's venv is /opt/registryd; the unit's is /opt/registryd/venv.
sed 's#/opt/registryd/venv#/opt/registryd#g' systemd/registryd.service >"$work/registryd.service"
cp systemd/registryd.sysusers "$work/"
printf 'REGISTRYD_PREFIX=%s\nREGISTRYD_METRICS_PORT=%s\nREGISTRYD_GRACE=5\n' "$prefix" "$port" \
  >"$work/env"
cat >"$work/Containerfile" <<EOF
FROM $app AS app
FROM localhost/registryd-base:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends systemd systemd-sysv \
    && rm -rf /var/lib/apt/lists/*
COPY --from=app /opt/registryd /opt/registryd
COPY registryd.sysusers /usr/lib/sysusers.d/registryd.conf
COPY registryd.service /etc/systemd/system/registryd.service
RUN install -d /etc/registryd && touch /etc/registryd/registryd.toml \
    && systemctl enable registryd
CMD ["/lib/systemd/systemd"]
EOF
podman build --quiet --network host --tag "$image" "$work" >/dev/null
podman run --detach --name "$name" --privileged --systemd=always --network host \
  --volume "$work/env:/etc/registryd/env:ro" "$image" >/dev/null 2>&1

show() { podman exec "$name" systemctl show registryd --value -p "$1" 2>/dev/null || true; }
until_show() { # property, value, seconds
  for _ in $(seq $(($3 * 2))); do [[ $(show "$1") == "$2" ]] && return 0; sleep 0.5; done
  podman exec "$name" journalctl -u registryd --no-pager -o cat | tail -20
  echo "registryd.service: $1 never became $2 (is $(show "$1"))"
  exit 1
}

until_show StatusText serving 60
pid=$(show MainPID)
status=$(podman exec "$name" cat "/proc/$pid/status")
grep -q '^CapEff:[[:space:]]*0*$' <<<"$status" || { echo "capabilities left"; exit 1; }
grep -q '^Seccomp:[[:space:]]*2$' <<<"$status" || { echo "no seccomp filter"; exit 1; }
[[ $(show User) == registryd ]] || { echo "not User=registryd"; exit 1; }
podman exec "$name" getent passwd registryd >/dev/null || { echo "sysusers made no user"; exit 1; }
curl -fsS "http://127.0.0.1:$port/metrics" | grep -q '^process_cpu_seconds_total' ||
  { echo "no process_* series under the sandbox"; exit 1; }

podman exec "$name" systemctl kill --signal=SIGSTOP registryd
until_show NRestarts 1 45                    # WatchdogSec=30s: killed, then restarted
until_show StatusText serving 60
podman exec "$name" systemctl stop registryd
[[ $(show Result) == success && $(show ExecMainStatus) == 0 ]] ||
  { echo "stop: result $(show Result), status $(show ExecMainStatus)"; exit 1; }
echo "registryd.service under systemd $(podman exec "$name" systemctl --version | head -1 |
  cut -d' ' -f2): READY as registryd without capabilities, seccomp on, process_* served," \
  "watchdog kill and restart, stop exit 0"
