# shellcheck shell=bash disable=SC2154 # $name and $prefix are set by the sourcing script
# Sourced by check-container.sh and check-systemd-live.sh: a work directory, the podman
# settings this kind of host needs, and, on exit, the container and the test prefix gone.
# The caller sets $name (the container) and $prefix (registryd's, for the clean-up).
work=$(mktemp -d)

cleanup() {
  podman rm --force --ignore "$name" >/dev/null 2>&1 || true
  .venv/bin/python - "$prefix" <<'EOF' || true
import asyncio, sys
import aio_pika
from redis.asyncio import Redis
from tests.harness import AMQP_URL, REDIS_URL, clean_prefix

async def main() -> None:
    connection = await aio_pika.connect(AMQP_URL)
    redis = Redis.from_url(REDIS_URL)
    await clean_prefix(connection, redis, sys.argv[1])
    await redis.aclose()
    await connection.close()

asyncio.run(main())
EOF
  rm -rf "$work"
}
trap cleanup EXIT

# Some hosts (this project's CI machines) give root no CAP_SYS_RESOURCE, so podman's
# default nproc/nofile ulimits cannot be set, and mix cgroup v1 and v2, which crun
# refuses; runc copes. Neither setting changes what the image is.
printf '[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n' >"$work/containers.conf"
export CONTAINERS_CONF="$work/containers.conf"
