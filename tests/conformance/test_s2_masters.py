"""PROTOCOL.md section 2, masters: heartbeats, clean stops and expiry of silent masters."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from aio_pika.abc import AbstractConnection
from redis.asyncio import Redis

from registryd.config import Settings
from tests.conformance.support import MASTER_KEYS, iso_utc, record, stop_fixture
from tests.harness import Wire, serving, start_daemon

pytestmark = pytest.mark.integration


async def test_s2_get_masters_shape_names_and_order(wire: Wire) -> None:
    """§2 getMasters {"id","name","active","last_seen"} by id; name null, renames, <= 200."""
    started = datetime.now(UTC)
    for masterid in (100, 9):
        await wire.ok("masterHeartbeat", {"masterid": masterid})
    await wire.ok("masterHeartbeat", {"masterid": 10, "name": "ci-1:/srv/master"})
    masters = await wire.ok("getMasters")
    assert [(9, None, True), (10, "ci-1:/srv/master", True), (100, None, True)] == [
        (m["id"], m["name"], m["active"]) for m in masters
    ]
    for master in masters:
        assert MASTER_KEYS == list(master)
        assert master["last_seen"].endswith("Z")
        seen = iso_utc(master["last_seen"])
        assert started - timedelta(seconds=5) <= seen <= datetime.now(UTC) + timedelta(seconds=5)
    await wire.ok("masterHeartbeat", {"masterid": 10, "name": "n" * 200})
    await wire.ok("masterHeartbeat", {"masterid": 9, "name": "renamed"})
    await wire.ok("masterHeartbeat", {"masterid": 9})
    names = {m["id"]: m["name"] for m in await wire.ok("getMasters")}
    assert ("renamed", "n" * 200) == (names[9], names[10])


async def test_s2_masters_seen_only_in_worker_ops_are_not_listed(wire: Wire) -> None:
    """§2 getMasters "lists the masters that have sent a heartbeat or been stopped"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    await wire.ok("workerConnected", {"workerid": wid, "masterid": 5, "workerinfo": {}})
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 6, "builderids": [1]})
    await wire.ok("deconfigureAllWorkersForMaster", {"masterid": 7})
    assert [] == await wire.ok("getMasters")
    await wire.ok("masterStopped", {"masterid": 8})
    assert [(8, False)] == [(m["id"], m["active"]) for m in await wire.ok("getMasters")]


async def test_s2_master_stopped_drops_the_master_everywhere_and_notifies(wire: Wire) -> None:
    """§2/§6 masterStopped drops the master everywhere; disconnected/configured, then stopped."""
    a, b, c, d = await stop_fixture(wire, 10)
    before = [await wire.worker(w) for w in (a, b, c, d)]
    await wire.ok("masterStopped", {"masterid": 10})
    notes = await wire.notes(4)
    assert [
        (f"workers.{a}.disconnected", 10),
        (f"workers.{b}.configured", 10),
        (f"workers.{c}.disconnected", 10),
        ("masters.10.stopped", 10),
    ] == [(n.key, n.body["masterid"]) for n in notes]
    after = [await wire.worker(w) for w in (a, b, c, d)]
    assert (
        record(a, "a", info={"h": "a"}, paused=True, reason="kept", conn=[99], cfg=[(99, 1)])
        == after[0]
    )
    assert (record(b, "b"), record(c, "c"), before[3]) == (after[1], after[2], after[3])
    assert [n.body["worker"] for n in notes[:3]] == after[:3]
    assert [(10, "m", False)] == [
        (m["id"], m["name"], m["active"]) for m in await wire.ok("getMasters")
    ]
    assert await wire.quiet()


async def test_s2_heartbeat_reactivates_an_inactive_master(wire: Wire) -> None:
    """§2 "A heartbeat from an inactive master makes it active again" (masters.<id>.active)."""
    await wire.ok("masterHeartbeat", {"masterid": 10, "name": "m"})
    await wire.ok("masterStopped", {"masterid": 10})
    await wire.ok("masterHeartbeat", {"masterid": 10})
    assert ["masters.10.active", "masters.10.stopped", "masters.10.active"] == await wire.keys(3)
    assert [(10, "m", True)] == [
        (m["id"], m["name"], m["active"]) for m in await wire.ok("getMasters")
    ]


async def test_s2_silent_master_expires_after_the_lease(
    settings: Settings, redis: Redis, amqp: AbstractConnection
) -> None:
    """§2 a master silent for the lease expires; "never sent a heartbeat never expires"."""
    async with serving(settings, amqp, master_lease=0.5) as wire:
        a, b, c, d = await stop_fixture(wire, 10)
        await wire.ok("workerConfigured", {"workerid": d, "masterid": 55, "builderids": [7]})
        await wire.ok("masterHeartbeat", {"masterid": 20})
        await wire.notes(2)
        last_seen = (await wire.ok("getMasters"))[0]["last_seen"]

        async def keep_alive() -> None:
            while True:  # master 20 heartbeats meanwhile, well within its lease
                await wire.ok("masterHeartbeat", {"masterid": 20})
                await asyncio.sleep(0.1)

        heartbeats = asyncio.create_task(keep_alive())
        try:
            notes = await wire.notes(4, timeout=5)
        finally:
            heartbeats.cancel()
        assert [
            f"workers.{a}.disconnected",
            f"workers.{b}.configured",
            f"workers.{c}.disconnected",
            "masters.10.expired",
        ] == [n.key for n in notes]
        assert all(10 == n.body["masterid"] for n in notes)
        masters = {m["id"]: m for m in await wire.ok("getMasters")}
        assert (False, True) == (masters[10]["active"], masters[20]["active"])
        assert last_seen == masters[10]["last_seen"]
        assert [d] == [w["id"] for w in await wire.ok("getWorkers", {"masterid": 55})]
        assert [] == await wire.ok("getWorkers", {"masterid": 10})
        assert notes[-1].body["master"] == masters[10]


async def test_s2_two_daemons_on_one_prefix_expire_and_publish_once(
    settings: Settings, redis: Redis, amqp: AbstractConnection
) -> None:
    """§2 "With several registryd processes running, each expiry happens exactly once"; §6 too.

    Absence is proven without a wait: once settled, both daemons are stopped (nothing can
    be published any more) and a marker flushes the subscriber's queue.
    """
    fast = settings.model_copy(update={"master_lease": 0.5})
    wire = await Wire.open(amqp, settings.prefix)
    first = await start_daemon(fast)
    second = await start_daemon(fast)
    try:
        await wire.attach()
        wid = await wire.ok("findWorkerId", {"name": "shared"})
        await wire.ok("masterHeartbeat", {"masterid": 8})
        await wire.ok("workerConnected", {"workerid": wid, "masterid": 8, "workerinfo": {}})
        notes = await wire.notes(6, timeout=15)
        await wire.settled()
        await second.stop()
        await first.stop()
        await wire.flush_notes()
        assert [
            ("registry.reset", 0),
            (f"workers.{wid}.new", 1),
            ("masters.8.active", 2),
            (f"workers.{wid}.connected", 3),
            (f"workers.{wid}.disconnected", 4),
            ("masters.8.expired", 5),
        ] == [(n.key, n.body["revision"]) for n in notes]
        assert wire.notes_inbox.empty()
    finally:
        await second.stop()
        await first.stop()
        await wire.close()
