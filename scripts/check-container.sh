#!/usr/bin/env bash
# Build the Dockerfile with podman and run the image against this machine's RabbitMQ and
# Redis: it must turn healthy by its own HEALTHCHECK, run as uid 10001, serve /metrics,
# and exit 0 on `podman stop` (SIGTERM). Needs podman, runc and debootstrap (Debian:
# apt-get install podman runc debootstrap); no registry of images is needed: the base is
# a Debian bookworm made with debootstrap (python3, python3-venv), kept as
# localhost/registryd-base:bookworm for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null || {
    echo "$tool not installed (apt-get install podman runc debootstrap)"
    exit 1
  }
done
base=localhost/registryd-base:bookworm
image=localhost/registryd:check
prefix="t-container-$(date +%s)-$$"
port=$(.venv/bin/python -c 'from tests.harness import free_port; print(free_port())')
name="registryd-check-$$"
# shellcheck source=scripts/lib-podman.sh
source scripts/lib-podman.sh

if ! podman image exists "$base"; then
  echo "making $base with debootstrap (a few minutes, once)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" ||
    { tail -20 "$work/debootstrap.log"; exit 1; }
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar -C "$work/rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - "$base" >/dev/null
fi

# The host's trust store goes to the build's RUN steps only (a TLS-inspecting proxy in
# front of PyPI); the image keeps its own.
trust=()
[[ -f /etc/ssl/certs/ca-certificates.crt ]] &&
  trust=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
podman build --quiet --format docker --network host "${trust[@]}" \
  --build-arg BASE="$base" --tag "$image" . >/dev/null

podman run --detach --name "$name" --network host \
  --env REGISTRYD_PREFIX="$prefix" --env REGISTRYD_METRICS_HOST=127.0.0.1 \
  --env REGISTRYD_METRICS_PORT="$port" --env REGISTRYD_GRACE=5 \
  "$image" >/dev/null 2>"$work/run.err" || { cat "$work/run.err"; exit 1; }

healthy=
for _ in $(seq 60); do
  if podman healthcheck run "$name" >/dev/null 2>&1; then healthy=yes; break; fi
  sleep 0.5
done
[[ -n $healthy ]] || { podman logs "$name" | tail -20; echo "never healthy"; exit 1; }

uid=$(podman exec "$name" id -u)
[[ $uid == 10001 ]] || { echo "runs as uid $uid, not 10001"; exit 1; }
podman exec "$name" python3 -c "import urllib.request as u; \
  assert b'registryd_build_info' in u.urlopen('http://127.0.0.1:$port/metrics').read()"

podman stop --time 20 "$name" >/dev/null 2>&1
code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
[[ $code == 0 ]] || { podman logs "$name" | tail -20; echo "exit code $code on SIGTERM"; exit 1; }
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "image $image: built, healthy, uid 10001, /metrics served, SIGTERM exit 0 ($((size / 1000000)) MB)"
