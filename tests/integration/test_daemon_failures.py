"""Backends failing under a running daemon: answers stay honest, nothing is lost."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from redis.asyncio import Redis

from registryd.amqp.topology import Names
from registryd.config import Settings
from tests.harness import (
    PrivateRedis,
    RawRpc,
    publish_event,
    start_daemon,
    start_daemon_unready,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def notifications(
    amqp: AbstractConnection, prefix: str
) -> AsyncIterator[asyncio.Queue[AbstractIncomingMessage]]:
    """Every notification of the prefix, as it is published."""
    channel = await amqp.channel()
    exchange = await channel.declare_exchange(
        Names(prefix).notifications, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "#")
    got: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    await queue.consume(got.put, no_ack=True)
    yield got
    await channel.close()


async def test_redis_loss_answers_unavailable_then_recovers(
    settings: Settings,
    private_redis: PrivateRedis,
    amqp: AbstractConnection,
    prefix: str,
    notifications: asyncio.Queue[AbstractIncomingMessage],
) -> None:
    """Redis killed: RPC 'unavailable' within 5 s, events wait; back empty: reset, then applied."""
    names = Names(prefix)
    await private_redis.start()
    running = await start_daemon(settings.model_copy(update={"redis_url": private_redis.url}))
    try:
        rpc = await RawRpc.open(amqp, names)
        first_epoch = (await rpc.result("ping"))["epoch"]
        private_redis.kill()
        started = time.monotonic()
        reply = await rpc.call("getWorkers")
        took = time.monotonic() - started
        assert ("unavailable", True) == (reply["error"]["code"], reply["error"]["retryable"])
        assert took < 5.0
        channel = await amqp.channel()
        await publish_event(
            channel, names, {"type": "master.heartbeat", "masterid": 7, "name": "kept"}
        )
        await wait_for(lambda: not running.daemon.health.ready)
        await private_redis.start()
        await wait_for(lambda: running.daemon.health.ready, 20)

        async def applied() -> bool:
            reply = await rpc.call("getMasters")
            return bool(reply["ok"]) and [7] == [m["id"] for m in reply["result"]]

        await wait_for(applied, 20)
        assert first_epoch != (await rpc.result("ping"))["epoch"]
        bodies: list[dict[str, object]] = []
        while not notifications.empty() or len(bodies) < 3:
            bodies.append(json.loads((await asyncio.wait_for(notifications.get(), 10)).body))
            if bodies[-1].get("event") == "active":
                break
        assert ["reset", "reset", "active"] == [b["event"] for b in bodies]
    finally:
        await running.stop()


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
    settings: Settings, redis: Redis, amqp: AbstractConnection, prefix: str
) -> None:
    """The daemon's broker connection closed under it: it reconnects and applies later events."""
    names = Names(prefix)
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
        channel = await amqp.channel()
        await publish_event(channel, names, {"type": "master.heartbeat", "masterid": 3})
        rpc = await RawRpc.open(amqp, names)

        async def applied() -> bool:
            return [3] == [m["id"] for m in await rpc.result("getMasters")]

        await wait_for(applied)
    finally:
        await running.stop()


async def test_rpc_answers_unavailable_while_redis_is_down_at_start(
    settings: Settings, amqp: AbstractConnection, prefix: str
) -> None:
    """Started with Redis unreachable: not ready, RPC 'unavailable' within 5 s, events kept."""
    dead = PrivateRedis()  # a port nobody listens on until start()
    running = await start_daemon_unready(settings.model_copy(update={"redis_url": dead.url}))
    try:
        rpc = await RawRpc.open(amqp, Names(prefix))
        started = time.monotonic()
        reply = await rpc.call("ping")
        assert ("unavailable", True) == (reply["error"]["code"], reply["error"]["retryable"])
        assert time.monotonic() - started < 5.0
        assert not running.daemon.health.ready
        channel = await amqp.channel()
        await publish_event(channel, Names(prefix), {"type": "master.heartbeat", "masterid": 2})
        await dead.start()
        await wait_for(lambda: running.daemon.health.ready, 20)

        async def applied() -> bool:
            return [2] == [m["id"] for m in await rpc.result("getMasters")]

        await wait_for(applied)
    finally:
        await running.stop()
        dead.kill()
