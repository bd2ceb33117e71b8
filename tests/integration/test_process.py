"""``registryd serve`` and ``registryd check`` as real processes, as systemd runs them."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from aio_pika.abc import AbstractConnection
from redis.asyncio import Redis

from tests.harness import REGISTRYD, Wire, cli_env, free_port, wait_for

pytestmark = pytest.mark.integration


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=2) as reply:
        body: bytes = reply.read()
        return body


def _health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


@pytest.fixture
def serve(
    prefix: str, redis: Redis, amqp: AbstractConnection
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``registryd serve`` in a subprocess with its health endpoint on a free port."""
    port = free_port()
    process = subprocess.Popen(
        [*REGISTRYD, "serve"],
        env=cli_env(prefix, REGISTRYD_METRICS_PORT=str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    yield process, port
    if process.poll() is None:
        process.kill()
    process.communicate()


async def test_serve_answers_then_stops_cleanly_on_sigterm(
    serve: tuple[subprocess.Popen[bytes], int], amqp: AbstractConnection, prefix: str
) -> None:
    """serve: healthz goes 200, events apply, SIGTERM exits 0 and logs JSON lines only."""
    process, port = serve
    await wait_for(lambda: _health(port) == 200, 20)
    rpc = await Wire.open(amqp, prefix, notes=False)
    await rpc.attach(dead=False)
    await rpc.event({"type": "master.heartbeat", "masterid": 4, "name": "x"})

    async def applied() -> bool:  # not settled(): its probe would count as an applied event
        return [4] == [m["id"] for m in await rpc.ok("getMasters")]

    await wait_for(applied)

    async def counted() -> bool:  # the RPC may read the commit before the consumer counts it
        metrics = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
        return b'registryd_events_total{outcome="applied"} 1.0' in metrics

    await wait_for(counted)
    await rpc.close()
    process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(process.wait, 5)  # the grace (REGISTRYD_GRACE=5) bounds it
    _, stderr = process.communicate()
    assert 0 == code
    lines = stderr.decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert "registryd stopped" == records[-1]["event"]
    assert "guest:guest" not in stderr.decode()


async def test_serve_with_taken_metrics_port_exits_1(prefix: str) -> None:
    """A metrics port already in use is a clear error at start and exit code 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await asyncio.to_thread(
            subprocess.run,
            [*REGISTRYD, "serve"],
            env=cli_env(prefix, REGISTRYD_METRICS_PORT=str(port)),
            capture_output=True,
            timeout=30,
            check=False,
        )
    assert 1 == result.returncode
    assert f"127.0.0.1:{port}" in result.stderr.decode()


def test_check_exit_codes(prefix: str) -> None:
    """check: 0 and "ok" when both answer; 1 and one line naming the failed service otherwise."""
    ok = subprocess.run(
        [*REGISTRYD, "check"], env=cli_env(prefix), capture_output=True, check=False
    )
    dead = free_port()
    bad = subprocess.run(
        [*REGISTRYD, "check"],
        env=cli_env(prefix, REGISTRYD_REDIS_URL=f"redis://:secret@127.0.0.1:{dead}/0"),
        capture_output=True,
        check=False,
    )
    assert (0, 1) == (ok.returncode, bad.returncode)
    out = bad.stdout.decode()
    assert 1 == len(out.splitlines())
    assert "redis" in out
    assert "rabbitmq" not in out
    assert "secret" not in out


def test_bad_configuration_is_a_clear_error(prefix: str) -> None:
    """An invalid setting names the variable and value given and what it must be; exit 2."""
    result = subprocess.run(
        [*REGISTRYD, "serve"],
        env=cli_env(prefix, REGISTRYD_LOG_FORMAT="xml"),
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert 2 == result.returncode
    assert "REGISTRYD_LOG_FORMAT='xml': must be 'json' or 'console'" in result.stderr.decode()
