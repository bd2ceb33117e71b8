"""PROTOCOL.md section 8, running it: signals, retries, check, configuration, HTTP, prefixes."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

import pytest
from aio_pika.abc import AbstractConnection
from redis.asyncio import Redis

from registryd.config import Settings
from tests.conformance.support import POISON
from tests.harness import (
    AMQP_URL,
    REGISTRYD,
    PrivateRedis,
    Served,
    Wire,
    cli_env,
    free_port,
    http_get,
    listening_ports,
    served,
    serving,
    wait_for,
)

pytestmark = pytest.mark.integration


async def test_s8_sigint_stops_serve_with_exit_0(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§8 serve runs "until SIGTERM/SIGINT ... and exits 0 within the grace period" (SIGINT)."""
    with served(tmp_path, prefix, REGISTRYD_GRACE="3") as serve:
        await serve.reaches(200)
        assert 0 == await serve.stop(signal.SIGINT, timeout=3), serve.log()[-2000:]


async def test_s8_backends_down_at_start_are_retried_and_logged_without_secrets(
    tmp_path: Path,
    prefix: str,
    amqp: AbstractConnection,
    private_redis: PrivateRedis,
    other_prefix: str,  # its fixture cleans up Redis keys of both prefixes
) -> None:
    """§8 a backend down at start: "keeps retrying ... each attempt logged", no secrets logged.

    Meanwhile RPC is answered `unavailable` within §5's 5 s (a bounded wait, not a timing).
    """
    wrong = AMQP_URL.replace("guest:guest", "guest:s3cr3t-amqp")
    dead_redis = f"redis://:s3cr3t-redis@127.0.0.1:{private_redis.port}/0"
    with (
        served(tmp_path, other_prefix, REGISTRYD_AMQP_URL=wrong) as no_broker,
        served(tmp_path, prefix, REGISTRYD_REDIS_URL=dead_redis) as no_redis,
    ):
        wire = await Wire.open(amqp, prefix, notes=False)
        await wire.await_rpc_queue(amqp)
        assert no_redis.process.poll() is None, no_redis.log()
        await wire.attach()
        reply = await wire.send(b'{"method": "ping"}', timeout=5)
        assert ("unavailable", True) == (reply["error"]["code"], reply["error"]["retryable"])
        await wire.event({"type": "master.heartbeat", "masterid": 5, "name": "kept"})

        def retried(serve: Served) -> bool:
            return sum("retry" in json.dumps(r) for r in serve.records()) >= 2

        await wait_for(lambda: retried(no_broker) and retried(no_redis), 15)
        assert 503 == await no_broker.health()
        assert 503 == await no_redis.health()
        await private_redis.start()  # now Redis answers, with the password unused
        await no_redis.reaches(200)

        async def kept() -> bool:
            reply = await wire.call("getMasters")
            return bool(reply["ok"]) and [5] == [m["id"] for m in reply["result"]]

        await wait_for(kept, 10)
        await no_broker.stopped()
        await no_redis.stopped()
        for serve in (no_broker, no_redis):
            serve.records()  # every line is JSON
            text = serve.log() + serve.out.read_text(encoding="utf-8")
            assert "s3cr3t" not in text
        await wire.close()


async def test_s8_sigterm_waits_at_most_the_grace_for_in_flight_work(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection, private_redis: PrivateRedis
) -> None:
    """§8 "SIGTERM waits at most REGISTRYD_GRACE seconds"; the held event is not lost.

    The grace is 1 s; the bounded wait allows 2.5 s more for the interpreter to exit.
    """
    await private_redis.start()
    with served(
        tmp_path, prefix, REGISTRYD_REDIS_URL=private_redis.url, REGISTRYD_GRACE="1"
    ) as serve:
        await serve.reaches(200)
        wire = await Wire.open(amqp, prefix, notes=False)
        private_redis.kill()
        await wire.event({"type": "master.heartbeat", "masterid": 5})
        await serve.reaches(503)
        assert 0 == await serve.stop(timeout=1 + 2.5), serve.log()[-2000:]
        queue = await wire.channel.declare_queue(wire.events, passive=True)
        assert 1 == queue.declaration_result.message_count
        await wire.close()


async def test_s8_check_names_each_failed_service_in_one_line(prefix: str) -> None:
    """§8 check "exits 0 when RabbitMQ and Redis answer, 1 otherwise", one line naming each."""
    dead = free_port()
    cases = {
        "ok": {},
        "rabbitmq": {"REGISTRYD_AMQP_URL": f"amqp://guest:s3cr3t@127.0.0.1:{dead}/"},
        "both": {
            "REGISTRYD_AMQP_URL": f"amqp://guest:s3cr3t@127.0.0.1:{dead}/",
            "REGISTRYD_REDIS_URL": f"redis://:s3cr3t@127.0.0.1:{dead}/0",
        },
    }
    runs = await asyncio.gather(
        *(
            asyncio.to_thread(
                subprocess.run,
                [*REGISTRYD, "check"],
                env=cli_env(prefix, **env),
                capture_output=True,
                timeout=30,
                check=False,
            )
            for env in cases.values()
        )
    )
    result = dict(zip(cases, runs, strict=True))
    assert [0, 1, 1] == [r.returncode for r in runs]
    assert all(1 == len(r.stdout.decode().splitlines()) for r in runs)
    rabbit_only = result["rabbitmq"].stdout.decode().lower()
    both = result["both"].stdout.decode().lower()
    assert ("rabbitmq" in rabbit_only, "redis" in rabbit_only) == (True, False)
    assert ("rabbitmq" in both, "redis" in both) == (True, True)
    assert all(b"s3cr3t" not in r.stdout + r.stderr for r in runs)


async def test_s8_toml_file_with_the_environment_winning(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§8 TOML keys (prefix, amqp.url, ..., metrics.port) and env: "the environment winning"."""
    port = free_port()
    dead = free_port()
    config = tmp_path / "registryd.toml"
    config.write_text(
        f'prefix = "{prefix}"\n'
        f'[amqp]\nurl = "amqp://guest:guest@127.0.0.1:{dead}/"\n'
        f'[redis]\nurl = "redis://127.0.0.1:{dead}/0"\n'
        "[masters]\nlease = 0.5\n"
        '[log]\nformat = "console"\n'
        f"[metrics]\nport = {port}\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in cli_env(prefix).items() if k != "REGISTRYD_PREFIX"}  # json wins
    with served(tmp_path, prefix, "--config", str(config), environ=env, port=port) as serve:
        await serve.reaches(200)  # metrics.port from the file; both URLs from the env
        wire = await Wire.open(amqp, prefix)
        await wire.attach()
        await wire.ok("masterHeartbeat", {"masterid": 3})  # on the file's prefix

        async def expired() -> bool:
            return [False] == [m["active"] for m in await wire.ok("getMasters")]

        await wait_for(expired, 5)  # masters.lease = 0.5 from the file
        await wire.close()
        await serve.stopped()
        assert serve.records()  # REGISTRYD_LOG_FORMAT=json won over the file's console


async def test_s8_metrics_and_healthz_over_http_on_127_0_0_1(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§8 HTTP "on 127.0.0.1 by default ... Prometheus text at /metrics and /healthz"."""
    with served(tmp_path, prefix) as serve:
        await serve.reaches(200)
        assert {("0100007F", serve.port)} == listening_ports(serve.process.pid)
        status, content_type, body = await asyncio.to_thread(http_get, serve.port, "/metrics")
        assert (200, True) == (status, content_type.startswith("text/plain"))
        text = body.decode()
        assert "# TYPE " in text
        assert "registryd_" in text
        await serve.stopped()


async def test_s8_metrics_port_0_turns_http_off(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§8 "REGISTRYD_METRICS_PORT (default 9822; 0 turns it off)"."""
    with served(tmp_path, prefix, REGISTRYD_METRICS_PORT="0") as serve:
        wire = await Wire.open(amqp, prefix, notes=False)
        await wire.await_rpc_queue(amqp)
        assert serve.process.poll() is None, serve.log()
        await wire.attach()
        assert 0 == (await wire.ok("ping"))["revision"]
        assert set() == listening_ports(serve.process.pid)
        await serve.stopped()
        await wire.close()


async def test_s8_sigterm_exits_0_within_grace_even_after_a_poison_event(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§8 SIGTERM "exits 0 within the grace period", even after a poison event.

    The grace is 2 s; the bounded wait allows 2.5 s more for the interpreter to exit.
    """
    with served(tmp_path, prefix, REGISTRYD_GRACE="2") as serve:
        await serve.reaches(200)
        wire = await Wire.open(amqp, prefix, notes=False)
        await wire.event(POISON)

        async def taken() -> bool:
            queue = await wire.channel.declare_queue(wire.events, passive=True)
            return queue.declaration_result.message_count == 0

        await wait_for(taken)
        assert 0 == await serve.stop(timeout=2 + 2.5), serve.log()[-1500:]
        await wire.close()


async def test_s8_two_prefixes_never_see_each_other(
    settings: Settings, redis: Redis, amqp: AbstractConnection, other_prefix: str
) -> None:
    """§8 "Two daemons with different prefixes on one RabbitMQ and one Redis never see" state."""
    async with (
        serving(settings, amqp) as wire_a,
        serving(settings, amqp, prefix=other_prefix) as wire_b,
    ):
        await wire_a.ok("findWorkerId", {"name": "only-in-a"})
        assert [] == await wire_b.ok("getWorkers")
        ping_a, ping_b = await wire_a.ok("ping"), await wire_b.ok("ping")
        assert (1, 0) == (ping_a["revision"], ping_b["revision"])
        assert ping_a["epoch"] != ping_b["epoch"]
        assert await wire_b.quiet()  # b's subscriber saw nothing of a's change
