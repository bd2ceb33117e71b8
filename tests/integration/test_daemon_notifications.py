"""Change notifications: every committed change published, in revision order, at least once."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from redis.asyncio import Redis

from registryd.amqp.topology import Names
from registryd.config import Settings
from registryd.models import MasterHeartbeat, SetWorkerGraceful, WorkerConnected
from registryd.service import Registry
from registryd.store import Keys, RedisStore
from tests.harness import RawRpc, RunningDaemon, publish_event, start_daemon, wait_for

pytestmark = pytest.mark.integration


class Subscriber:
    """A queue bound to the notifications exchange with ``#``."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

    async def take(self, count: int, timeout: float = 10.0) -> list[tuple[str, dict[str, Any]]]:
        """The next ``count`` notifications as (routing key, body)."""
        out = []
        for _ in range(count):
            message = await asyncio.wait_for(self.inbox.get(), timeout)
            assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
            out.append((message.routing_key or "", json.loads(message.body)))
        return out

    async def nothing_more(self, rpc: RawRpc) -> bool:
        """True when no notification is waiting after a full RPC round trip plus a beat."""
        await rpc.result("ping")
        await asyncio.sleep(0.3)
        return self.inbox.empty()


@pytest.fixture
async def subscriber(amqp: AbstractConnection, prefix: str) -> AsyncIterator[Subscriber]:
    """Subscribed before the daemon starts, so it sees everything from the reset on."""
    channel = await amqp.channel()
    exchange = await channel.declare_exchange(
        Names(prefix).notifications, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "#")
    sub = Subscriber()
    await queue.consume(sub.inbox.put, no_ack=True)
    yield sub
    await channel.close()


async def test_first_start_publishes_reset(
    subscriber: Subscriber, daemon: RunningDaemon, rpc: RawRpc
) -> None:
    """A new epoch is announced on registry.reset with revision 0 and ping's epoch."""
    ((key, body),) = await subscriber.take(1)
    epoch = (await rpc.result("ping"))["epoch"]
    assert ("registry.reset", {"event": "reset", "epoch": epoch, "revision": 0}) == (key, body)


async def test_changes_are_notified_with_contiguous_revisions(
    subscriber: Subscriber, daemon: RunningDaemon, rpc: RawRpc
) -> None:
    """Each change goes out once, by routing key, with the full record and the next revision."""
    await subscriber.take(1)  # the reset
    wid = await rpc.result("findWorkerId", {"name": "w"})
    await rpc.result("masterHeartbeat", {"masterid": 10, "name": "m"})
    await rpc.result("workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {"h": 1}})
    await rpc.result("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [3]})
    await rpc.result("set_worker_paused", {"workerid": wid, "paused": True})
    await rpc.result("workerDisconnected", {"workerid": wid, "masterid": 10})
    await rpc.result("masterStopped", {"masterid": 10})
    got = await subscriber.take(8)
    assert [
        f"workers.{wid}.new",
        "masters.10.active",
        f"workers.{wid}.connected",
        f"workers.{wid}.configured",
        f"workers.{wid}.state_updated",
        f"workers.{wid}.disconnected",
        f"workers.{wid}.configured",
        "masters.10.stopped",
    ] == [key for key, _ in got]
    assert list(range(1, 9)) == [body["revision"] for _, body in got]
    connected = got[2][1]
    assert (10, [10], {"h": 1}) == (
        connected["masterid"],
        connected["worker"]["connected_to"],
        connected["worker"]["workerinfo"],
    )
    assert got[0][1]["masterid"] is None
    assert got[4][1]["masterid"] is None


async def test_no_op_commands_publish_nothing(
    subscriber: Subscriber, daemon: RunningDaemon, rpc: RawRpc
) -> None:
    """A duplicate connect, a disconnect where not connected, a lease refresh: all silent."""
    await subscriber.take(1)
    wid = await rpc.result("findWorkerId", {"name": "w"})
    await rpc.result("masterHeartbeat", {"masterid": 10})
    await rpc.result("workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {}})
    await subscriber.take(3)
    await rpc.result("workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {}})
    await rpc.result("workerDisconnected", {"workerid": wid, "masterid": 11})
    await rpc.result("masterHeartbeat", {"masterid": 10})
    await rpc.result("findWorkerId", {"name": "w"})
    assert await subscriber.nothing_more(rpc)
    assert 3 == (await rpc.result("ping"))["revision"]


async def test_notifications_keep_revision_order_under_load(
    subscriber: Subscriber,
    daemon: RunningDaemon,
    rpc: RawRpc,
    amqp: AbstractConnection,
    prefix: str,
) -> None:
    """2,000 events published fast come out as revisions 1..N in order, none missing."""
    await subscriber.take(1)
    wid = await rpc.result("findWorkerId", {"name": "busy"})
    channel = await amqp.channel()
    for i in range(2000):
        await publish_event(
            channel,
            Names(prefix),
            {"type": "worker.graceful", "workerid": wid, "graceful": i % 2 == 0},
        )
    got = await subscriber.take(2001, timeout=30)
    assert list(range(1, 2002)) == [body["revision"] for _, body in got]


async def test_changes_committed_while_down_are_published_on_start(
    subscriber: Subscriber, settings: Settings, redis: Redis, amqp: AbstractConnection, prefix: str
) -> None:
    """Changes committed with no relay running (a crash after commit) go out after the restart."""
    registry = Registry(RedisStore(redis, Keys(prefix)))
    await registry.start()
    wid = await registry.store.find_worker_id("offline")
    await registry.execute(MasterHeartbeat(masterid=5))
    await registry.execute(WorkerConnected(workerid=wid, masterid=5, workerinfo={}))
    await registry.execute(SetWorkerGraceful(workerid=wid, graceful=True))
    running = await start_daemon(settings)
    try:
        got = await subscriber.take(5)
        assert ["reset", "new", "active", "connected", "state_updated"] == [
            b["event"] for _, b in got
        ]
    finally:
        await running.stop()


async def test_master_expiry_is_notified(
    subscriber: Subscriber, settings: Settings, redis: Redis, amqp: AbstractConnection, prefix: str
) -> None:
    """A master silent for the lease expires: its worker disconnected, then masters.<id>.expired."""
    running = await start_daemon(settings.model_copy(update={"master_lease": 0.5}))
    try:
        rpc = await RawRpc.open(amqp, Names(prefix))
        wid = await rpc.result("findWorkerId", {"name": "w"})
        await rpc.result("masterHeartbeat", {"masterid": 9})
        await rpc.result("workerConnected", {"workerid": wid, "masterid": 9, "workerinfo": {}})
        got = await subscriber.take(6, timeout=10)
        assert [
            "registry.reset",
            f"workers.{wid}.new",
            "masters.9.active",
            f"workers.{wid}.connected",
            f"workers.{wid}.disconnected",
            "masters.9.expired",
        ] == [key for key, _ in got]
        assert got[-1][1]["master"]["active"] is False
    finally:
        await running.stop()


async def test_changes_without_subscribers_log_no_errors(
    daemon: RunningDaemon, rpc: RawRpc, caplog: pytest.LogCaptureFixture
) -> None:
    """With nobody bound to the notifications exchange, publishing them logs no error."""
    caplog.set_level(logging.WARNING)
    for i in range(20):
        await rpc.result("findWorkerId", {"name": f"lonely{i}"})
    await wait_for(
        lambda: daemon.daemon.metrics.registry.get_sample_value("registryd_relay_revision") == 20
    )
    assert [] == [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
