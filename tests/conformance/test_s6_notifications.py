"""PROTOCOL.md section 6, change notifications: one per change, in revision order, and resets."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection
from redis.asyncio import Redis

from registryd import __version__
from registryd.config import Settings
from registryd.models import MasterHeartbeat, SetWorkerGraceful, WorkerConnected
from registryd.service import Registry
from registryd.store import Keys, RedisStore
from tests.conformance.support import announce_after_reset, assert_note_shape, epoch_eventually
from tests.harness import (
    Json,
    PrivateRedis,
    RunningDaemon,
    Wire,
    served,
    start_daemon,
    wait_for,
)

pytestmark = pytest.mark.integration


async def test_s6_notifications_are_persistent_json_with_contiguous_revisions(wire: Wire) -> None:
    """§6 "routing key workers.<id>.<event> a persistent JSON message"; revisions without gaps."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    calls: list[tuple[str, Json]] = [
        ("masterHeartbeat", {"masterid": 10, "name": "m"}),
        ("workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {"h": 1}}),
        ("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [1]}),
        ("set_worker_paused", {"workerid": wid, "paused": True}),
        ("workerDisconnected", {"workerid": wid, "masterid": 10}),
        ("masterStopped", {"masterid": 10}),
    ]
    for method, params in calls:
        await wire.ok(method, params)
    notes = await wire.notes(8)
    for note in notes:
        assert_note_shape(note)
    assert [
        f"workers.{wid}.new",
        "masters.10.active",
        f"workers.{wid}.connected",
        f"workers.{wid}.configured",
        f"workers.{wid}.state_updated",
        f"workers.{wid}.disconnected",
        f"workers.{wid}.configured",
        "masters.10.stopped",
    ] == [n.key for n in notes]
    assert list(range(1, 9)) == [n.body["revision"] for n in notes]
    assert 8 == await wire.revision()
    connected = notes[2].body
    assert (10, [10], {"h": 1}) == (
        connected["masterid"],
        connected["worker"]["connected_to"],
        connected["worker"]["workerinfo"],
    )


async def test_s6_each_command_names_its_notification(wire: Wire) -> None:
    """§6 each notification is "named after the command"; "masterid is always present"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    calls: list[tuple[str, Json]] = [
        ("workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {}}),
        ("workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {"new": "info"}}),
        ("workerConnected", {"workerid": wid, "masterid": 11, "workerinfo": {"new": "info"}}),
        ("workerDisconnected", {"workerid": wid, "masterid": 11}),
        ("workerConfigured", {"workerid": wid, "masterid": 12, "builderids": [1]}),
        ("workerConfigured", {"workerid": wid, "masterid": 12, "builderids": []}),
        ("workerConfigured", {"workerid": wid, "masterid": 13, "builderids": [2]}),
        ("deconfigureAllWorkersForMaster", {"masterid": 13}),
        ("set_worker_paused", {"workerid": wid, "paused": True}),
        ("set_worker_paused", {"workerid": wid, "paused": True, "pause_reason": "only reason"}),
        ("set_worker_graceful", {"workerid": wid, "graceful": True}),
        ("masterHeartbeat", {"masterid": 14}),
    ]
    for method, params in calls:
        await wire.ok(method, params)
    notes = await wire.notes(1 + len(calls))
    w = f"workers.{wid}."
    assert [
        (w + "new", None),
        (w + "connected", 10),
        (w + "connected", 10),
        (w + "connected", 11),
        (w + "disconnected", 11),
        (w + "configured", 12),
        (w + "configured", 12),
        (w + "configured", 13),
        (w + "configured", 13),
        (w + "state_updated", None),
        (w + "state_updated", None),
        (w + "state_updated", None),
        ("masters.14.active", 14),
    ] == [(n.key, n.body["masterid"]) for n in notes]
    assert all("masterid" in n.body for n in notes)


async def test_s6_notified_worker_is_the_full_unfiltered_record(wire: Wire) -> None:
    """§6 "worker": "the full, unfiltered worker record after the change"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    for masterid in (10, 11):
        await wire.ok("workerConnected", {"workerid": wid, "masterid": masterid, "workerinfo": {}})
        await wire.ok(
            "workerConfigured", {"workerid": wid, "masterid": masterid, "builderids": [masterid]}
        )
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [1, 2]})
    last = (await wire.notes(6))[-1]
    assert await wire.worker(wid) == last.body["worker"]
    assert [10, 11] == last.body["worker"]["connected_to"]


async def test_s6_commands_that_change_nothing_publish_nothing(wire: Wire) -> None:
    """§6 "A command that changes nothing ... publishes nothing" (and takes no revision)."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    setup: list[tuple[str, Json]] = [
        ("workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {"a": 1, "b": [2]}}),
        ("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [1, 2]}),
        ("set_worker_paused", {"workerid": wid, "paused": True, "pause_reason": "r"}),
        ("set_worker_graceful", {"workerid": wid, "graceful": True}),
        ("masterHeartbeat", {"masterid": 10, "name": "m"}),
    ]
    for method, params in setup:
        await wire.ok(method, params)
    await wire.event(
        {"type": "worker.graceful", "workerid": wid, "graceful": False}, message_id="r1"
    )
    await wire.settled()
    await wire.notes(7)
    before = await wire.revision()
    no_ops: list[tuple[str, Json]] = [
        ("workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {"b": [2], "a": 1}}),
        ("workerDisconnected", {"workerid": wid, "masterid": 11}),
        ("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [2, 1, 1]}),
        ("workerConfigured", {"workerid": wid, "masterid": 12, "builderids": []}),
        ("deconfigureAllWorkersForMaster", {"masterid": 30}),
        ("set_worker_paused", {"workerid": wid, "paused": True, "pause_reason": "r"}),
        ("set_worker_graceful", {"workerid": wid, "graceful": False}),
        ("findWorkerId", {"name": "w"}),
        ("masterHeartbeat", {"masterid": 10}),
        ("masterHeartbeat", {"masterid": 10, "name": "m"}),
    ]
    for method, params in no_ops:
        await wire.ok(method, params)
    await wire.event(
        {"type": "worker.graceful", "workerid": wid, "graceful": True}, message_id="r1"
    )
    assert [] == await wire.dead_letters()
    assert before == await wire.revision()
    assert await wire.quiet()


async def test_s6_master_notifications_carry_the_get_masters_record(wire: Wire) -> None:
    """§6 masters.<id>.active/stopped carry "master as in getMasters"."""
    await wire.ok("masterHeartbeat", {"masterid": 10, "name": "m"})
    (active,) = await wire.notes(1)
    listed_active = (await wire.ok("getMasters"))[0]
    await wire.ok("masterStopped", {"masterid": 10})
    (stopped,) = await wire.notes(1)
    listed_stopped = (await wire.ok("getMasters"))[0]
    for note in (active, stopped):
        assert_note_shape(note)
    assert ("masters.10.active", listed_active) == (active.key, active.body["master"])
    assert ("masters.10.stopped", listed_stopped) == (stopped.key, stopped.body["master"])
    assert (True, False) == (listed_active["active"], listed_stopped["active"])


async def test_s6_notifications_keep_revision_order_under_load(
    wire: Wire, amqp: AbstractConnection
) -> None:
    """§6 "published in revision order": 2,000 events published fast come out 1..N, none lost.

    Published on one channel without confirms: in order, and as fast as a master can.
    """
    wid = await wire.ok("findWorkerId", {"name": "busy"})
    channel = await amqp.channel(publisher_confirms=False)
    exchange = await channel.get_exchange(wire.events, ensure=False)
    for i in range(2000):  # alternating: each one is a change
        body = json.dumps({"type": "worker.graceful", "workerid": wid, "graceful": i % 2 == 0})
        message = aio_pika.Message(body.encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await exchange.publish(message, routing_key="worker.graceful")
    notes = await wire.notes(2001, timeout=30)
    await channel.close()
    assert all(aio_pika.DeliveryMode.PERSISTENT == n.message.delivery_mode for n in notes)
    assert list(range(1, 2002)) == [n.body["revision"] for n in notes]


async def test_s6_changes_committed_while_down_are_published_on_start(
    settings: Settings, redis: Redis, amqp: AbstractConnection, prefix: str
) -> None:
    """§6 "no committed change is ever left unpublished, even if the daemon dies" before it."""
    wire = await Wire.open(amqp, prefix)
    registry = Registry(RedisStore(redis, Keys(prefix)))
    await registry.start()
    wid = await registry.store.find_worker_id("offline")
    await registry.execute(MasterHeartbeat(masterid=5))
    await registry.execute(WorkerConnected(workerid=wid, masterid=5, workerinfo={}))
    await registry.execute(SetWorkerGraceful(workerid=wid, graceful=True))
    running = await start_daemon(settings)
    try:
        notes = await wire.notes(5)
        assert ["reset", "new", "active", "connected", "state_updated"] == [
            n.body["event"] for n in notes
        ]
    finally:
        await running.stop()
        await wire.close()


async def test_s6_changes_without_subscribers_log_no_errors(
    daemon: RunningDaemon, rpc: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    """§6 with nobody bound to the notifications exchange, publishing them logs no error."""
    caplog.set_level(logging.WARNING)
    for i in range(20):
        await rpc.ok("findWorkerId", {"name": f"lonely{i}"})
    await rpc.settled()
    relayed = daemon.daemon.metrics.registry.get_sample_value("registryd_relay_revision")
    assert 20 == relayed
    assert [] == [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_s6_get_changes_pages_the_notification_bodies(wire: Wire) -> None:
    """§6 getChanges: bodies "with revision > N in order, at most limit" (default 100)."""
    await asyncio.gather(*(wire.ok("findWorkerId", {"name": f"w{i}"}) for i in range(150)))
    await wire.ok("masterHeartbeat", {"masterid": 10})
    notes = await wire.notes(151)
    bodies = [n.body for n in notes]

    async def page(**params: int) -> Json:
        result: Json = await wire.ok("getChanges", params)
        assert ["revision", "changes"] == list(result)
        assert 151 == result["revision"]
        return result

    assert bodies[:100] == (await page(since=0))["changes"]
    assert bodies[100:] == (await page(since=100))["changes"]
    assert bodies == (await page(since=0, limit=1000))["changes"]
    assert bodies[:1] == (await page(since=0, limit=1))["changes"]
    assert bodies[150:] == (await page(since=150, limit=1))["changes"]
    assert bodies[42:52] == (await page(since=42, limit=10))["changes"]
    for since in (151, 152, 10**6, 2**63):
        assert [] == (await page(since=since))["changes"], since


async def test_s6_first_start_publishes_reset_and_ping_reports_the_epoch(wire: Wire) -> None:
    """§6 first start: registry.reset {"event","epoch","revision": 0}; ping's epoch; §5 ping."""
    assert wire.reset is not None
    ping = await wire.ok("ping")
    assert ["version", "revision", "epoch", "master_lease"] == list(ping)
    assert __version__ == ping["version"]
    assert isinstance(ping["epoch"], str)
    assert ping["epoch"]
    assert 0 == ping["revision"]
    assert "registry.reset" == wire.reset.key
    assert {"event": "reset", "epoch": ping["epoch"], "revision": 0} == wire.reset.body
    assert ["event", "epoch", "revision"] == list(wire.reset.body)
    assert aio_pika.DeliveryMode.PERSISTENT == wire.reset.message.delivery_mode
    assert {"revision": 0, "changes": []} == await wire.ok("getChanges", {"since": 0})
    await wire.ok("findWorkerId", {"name": "first"})
    assert 1 == (await wire.notes(1))[0].body["revision"]


# 101,000 real changes: about a minute on a quiet machine, several on a loaded one.
@pytest.mark.timeout(400)
async def test_s6_old_history_requires_resync(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§6 "N is older than the retained history (at least the last 100,000 changes)": resync."""
    with served(tmp_path, prefix) as serve:  # a process of its own: 100,000 changes go fast
        await serve.reaches(200)
        wire = await Wire.open(amqp, prefix, notes=False)  # 100,000 notifications: no
        await wire.attach()
        workers = 1000
        ids: list[int] = []
        for start in range(0, workers, 250):
            ids += await asyncio.gather(
                *(wire.ok("findWorkerId", {"name": f"w{i}"}) for i in range(start, start + 250))
            )
        channel = await amqp.channel(publisher_confirms=False)
        raw = await channel.get_underlay_channel()
        rounds = 50  # each: every worker configured on master 7, then master 7 deconfigured
        for builder in range(1, rounds + 1):
            for wid in ids:
                body = b'{"type":"worker.configured","workerid":%d,"masterid":7,"builderids":[%d]}'
                await raw.basic_publish(
                    body % (wid, builder), exchange=wire.events, routing_key="x"
                )
            deconfigure = b'{"type": "master.deconfigured", "masterid": 7}'
            await raw.basic_publish(deconfigure, exchange=wire.events, routing_key="x")
        current = workers + rounds * 2 * workers

        async def reached() -> bool:
            return await wire.revision() >= current

        await wait_for(reached, 60)
        reply = await wire.call("getChanges", {"since": 0})
        assert ("resync_required", False) == (
            reply.get("error", {}).get("code"),
            reply.get("error", {}).get("retryable"),
        )
        since = current - 100_000
        recent = await wire.ok("getChanges", {"since": since, "limit": 1})
        assert [since + 1] == [c["revision"] for c in recent["changes"]]
        await channel.close()
        await wire.close()
        await serve.stopped()


async def test_s6_redis_back_empty_makes_a_new_epoch_announced_first(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection, private_redis: PrivateRedis
) -> None:
    """§6 Redis back empty: a new epoch, registry.reset first, revisions from 1, a warning."""
    await private_redis.start()
    wire = await Wire.open(amqp, prefix, redis_url=private_redis.url)
    with served(tmp_path, prefix, REGISTRYD_REDIS_URL=private_redis.url) as serve:
        await serve.reaches(200)
        await wire.attach()
        (first,) = await wire.notes(1)
        for i in range(3):
            await wire.ok("findWorkerId", {"name": f"old{i}"})
        await wire.notes(3)
        private_redis.kill()
        await private_redis.start()
        notes = await announce_after_reset(wire, 5)
        epoch = await epoch_eventually(wire)
        assert epoch != first.body["epoch"]
        assert [("registry.reset", 0)] + [(n.key, i) for i, n in enumerate(notes[1:], 1)] == [
            (n.key, n.body["revision"]) for n in notes
        ]
        assert {"event": "reset", "epoch": epoch, "revision": 0} == notes[0].body
        await serve.stopped()
        warnings = [r for r in serve.records() if r.get("level") == "warning"]
        assert any(epoch in json.dumps(r) for r in warnings), serve.log()
    await wire.close()


async def test_s6_reset_precedes_the_new_epochs_changes_after_data_loss(
    redis: Redis, wire: Wire
) -> None:
    """§6 after data loss, no change of the new epoch is published before registry.reset."""
    for i in range(3):
        await wire.ok("findWorkerId", {"name": f"old{i}"})
    await wire.notes(3)
    keys = [key async for key in redis.scan_iter(match=Keys(wire.prefix).pattern())]
    await redis.delete(*keys)
    notes = await announce_after_reset(wire, 5)
    assert ["registry.reset"] + [f"workers.{i}.new" for i in range(1, 6)] == [
        n.key for n in notes[:6]
    ]
    assert list(range(6)) == [n.body["revision"] for n in notes[:6]]
