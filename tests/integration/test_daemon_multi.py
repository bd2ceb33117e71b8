"""Several daemons on one RabbitMQ and one Redis: isolated by prefix, cooperative on one."""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from redis.asyncio import Redis

from registryd.amqp.topology import Names, delete_topology
from registryd.config import Settings
from registryd.store import Keys
from tests.harness import RawRpc, start_daemon, wait_for

pytestmark = pytest.mark.integration


async def test_two_prefixes_never_see_each_other(
    settings: Settings, redis: Redis, amqp: AbstractConnection, prefix: str
) -> None:
    """Two daemons with different prefixes keep separate workers, revisions and epochs."""
    other = f"{prefix}-b"
    first = await start_daemon(settings)
    second = await start_daemon(settings.model_copy(update={"prefix": other}))
    try:
        rpc_a = await RawRpc.open(amqp, Names(prefix))
        rpc_b = await RawRpc.open(amqp, Names(other))
        await rpc_a.result("findWorkerId", {"name": "only-in-a"})
        assert [] == await rpc_b.result("getWorkers")
        ping_a, ping_b = await rpc_a.result("ping"), await rpc_b.result("ping")
        assert (1, 0) == (ping_a["revision"], ping_b["revision"])
        assert ping_a["epoch"] != ping_b["epoch"]
    finally:
        await second.stop()
        await first.stop()
        await delete_topology(amqp, Names(other))
        async for key in redis.scan_iter(match=Keys(other).pattern()):
            await redis.delete(key)


async def test_two_daemons_on_one_prefix_publish_and_expire_once(
    settings: Settings, redis: Redis, amqp: AbstractConnection, prefix: str
) -> None:
    """Two daemons sharing a prefix: each notification goes out once, a master expires once."""
    channel = await amqp.channel()
    exchange = await channel.declare_exchange(
        Names(prefix).notifications, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(f"{prefix}-watch-{uuid.uuid4().hex[:6]}", exclusive=True)
    await queue.bind(exchange, "#")
    got: list[AbstractIncomingMessage] = []

    async def collect(message: AbstractIncomingMessage) -> None:
        got.append(message)

    await queue.consume(collect, no_ack=True)
    fast = settings.model_copy(update={"master_lease": 0.5})
    first, second = await start_daemon(fast), await start_daemon(fast)
    try:
        rpc = await RawRpc.open(amqp, Names(prefix))
        wid = await rpc.result("findWorkerId", {"name": "shared"})
        await rpc.result("masterHeartbeat", {"masterid": 8})
        await rpc.result("workerConnected", {"workerid": wid, "masterid": 8, "workerinfo": {}})
        await wait_for(lambda: any(m.routing_key == "masters.8.expired" for m in got), 15)
        await rpc.result("ping")
        await asyncio.sleep(1.5)  # time for a duplicate, if any, to arrive
        keys = [m.routing_key for m in got]
        revisions = [json.loads(m.body)["revision"] for m in got]
        assert [
            "registry.reset",
            f"workers.{wid}.new",
            "masters.8.active",
            f"workers.{wid}.connected",
            f"workers.{wid}.disconnected",
            "masters.8.expired",
        ] == keys
        assert [0, 1, 2, 3, 4, 5] == revisions
    finally:
        await second.stop()
        await first.stop()
