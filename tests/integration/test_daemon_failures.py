"""Backends failing under a running daemon: answers stay honest, nothing is lost."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from aio_pika.abc import AbstractConnection
from redis.asyncio import Redis

from registryd.config import Settings
from tests.harness import PrivateRedis, Wire, start_daemon, start_daemon_unready, wait_for

pytestmark = pytest.mark.integration


async def test_redis_loss_answers_unavailable_then_recovers(
    settings: Settings, private_redis: PrivateRedis, amqp: AbstractConnection, prefix: str
) -> None:
    """Redis killed: RPC 'unavailable' within 5 s, events wait; back empty: reset, then applied."""
    await private_redis.start()
    wire = await Wire.open(amqp, prefix, redis_url=private_redis.url)
    running = await start_daemon(settings.model_copy(update={"redis_url": private_redis.url}))
    try:
        await wire.attach(dead=False)
        first_epoch = (await wire.ok("ping"))["epoch"]
        private_redis.kill()
        reply = await wire.call("getWorkers", timeout=5)  # PROTOCOL.md §5: within 5 s
        assert ("unavailable", True) == (reply["error"]["code"], reply["error"]["retryable"])
        await wire.event({"type": "master.heartbeat", "masterid": 7, "name": "kept"})
        await wait_for(lambda: not running.daemon.health.ready)
        await private_redis.start()
        await wait_for(lambda: running.daemon.health.ready, 20)

        async def applied() -> bool:
            reply = await wire.call("getMasters")
            return bool(reply["ok"]) and [7] == [m["id"] for m in reply["result"]]

        await wait_for(applied, 20)
        assert first_epoch != (await wire.ok("ping"))["epoch"]
        events: list[object] = []
        while not wire.notes_inbox.empty() or len(events) < 3:
            events.append((await wire.notes(1))[0].body.get("event"))
            if events[-1] == "active":
                break
        assert ["reset", "reset", "active"] == events
    finally:
        await running.stop()
        await wire.close()


def _connections_of(name: str) -> list[str]:
    """The broker-side pids of the connections whose client properties mention ``name``."""
    out = subprocess.run(
        ["rabbitmqctl", "list_connections", "pid", "client_properties", "-q"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    return [line.split("\t", 1)[0] for line in out.splitlines() if name in line]


async def test_broker_connection_loss_is_recovered(
    settings: Settings, redis: Redis, amqp: AbstractConnection, rpc: Wire, prefix: str
) -> None:
    """The daemon's broker connection closed under it: it reconnects and applies later events."""
    running = await start_daemon(settings)
    try:
        pids = await asyncio.to_thread(_connections_of, prefix)
        assert len(pids) == 1
        await asyncio.to_thread(
            subprocess.run,
            ["rabbitmqctl", "close_connection", pids[0], "test: broker loss"],
            check=True,
            capture_output=True,
        )
        await wait_for(lambda: not running.daemon.health.ready)
        await wait_for(lambda: running.daemon.health.ready, 20)
        await rpc.event({"type": "master.heartbeat", "masterid": 3})
        await rpc.settled()
        assert [3] == [m["id"] for m in await rpc.ok("getMasters")]
    finally:
        await running.stop()


async def test_rpc_answers_unavailable_while_redis_is_down_at_start(
    settings: Settings, amqp: AbstractConnection, prefix: str
) -> None:
    """Started with Redis unreachable: not ready, RPC 'unavailable' within 5 s, events kept."""
    dead = PrivateRedis()  # a port nobody listens on until start()
    running = await start_daemon_unready(settings.model_copy(update={"redis_url": dead.url}))
    wire = await Wire.open(amqp, prefix, notes=False, redis_url=dead.url)
    try:
        await wire.attach(dead=False)
        reply = await wire.call("ping", timeout=5)  # PROTOCOL.md §5: within 5 s
        assert ("unavailable", True) == (reply["error"]["code"], reply["error"]["retryable"])
        assert not running.daemon.health.ready
        await wire.event({"type": "master.heartbeat", "masterid": 2})
        await dead.start()
        await wait_for(lambda: running.daemon.health.ready, 20)
        await wire.settled()
        assert [2] == [m["id"] for m in await wire.ok("getMasters")]
    finally:
        await running.stop()
        await wire.close()
        dead.kill()
