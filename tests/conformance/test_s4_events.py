"""PROTOCOL.md section 4, lifecycle events: applied in order, once, or dead-lettered with why."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection
from pamqp.commands import Basic
from redis.asyncio import Redis

from registryd.config import Settings
from tests.conformance.support import POISON, error_code, record
from tests.harness import Json, Wire, served, serving, wait_for

pytestmark = pytest.mark.integration


async def test_s4_routing_key_is_not_checked(wire: Wire) -> None:
    """§4 "The body carries type; it decides ... The routing key ... is not checked"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    await wire.event(
        {"type": "worker.graceful", "workerid": wid, "graceful": True},
        routing_key="master.stopped",
    )
    await wire.event(
        {"type": "master.heartbeat", "masterid": 4, "name": "m"}, routing_key="no.such.key"
    )
    assert [] == await wire.dead_letters()
    assert (await wire.worker(wid))["graceful"] is True
    assert [4] == [m["id"] for m in await wire.ok("getMasters")]


async def test_s4_every_event_type_applies_like_its_rpc(wire: Wire) -> None:
    """§4 the event table: each type does what its RPC twin does."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    events: list[Json] = [
        {"type": "master.heartbeat", "masterid": 10, "name": "m"},
        {"type": "worker.configured", "workerid": wid, "masterid": 10, "builderids": [2, 1]},
        {"type": "worker.configured", "workerid": wid, "masterid": 12, "builderids": [5]},
        {"type": "worker.connected", "workerid": wid, "masterid": 10, "workerinfo": {"h": 1}},
        {"type": "worker.connected", "workerid": wid, "masterid": 11, "workerinfo": {"h": 2}},
        {"type": "worker.disconnected", "workerid": wid, "masterid": 11, "connection": "c"},
        {"type": "worker.paused", "workerid": wid, "paused": True, "pause_reason": "p"},
        {"type": "worker.graceful", "workerid": wid, "graceful": True},
        {"type": "master.deconfigured", "masterid": 12},
    ]
    for event in events:
        await wire.event(event)
    assert [] == await wire.dead_letters()
    assert record(
        wid,
        "w",
        info={"h": 2},
        paused=True,
        reason="p",
        graceful=True,
        conn=[10],
        cfg=[(10, 1), (10, 2)],
    ) == await wire.worker(wid)
    await wire.event({"type": "master.stopped", "masterid": 10})
    assert [] == await wire.dead_letters()
    assert record(
        wid, "w", info={"h": 2}, paused=True, reason="p", graceful=True
    ) == await wire.worker(wid)
    assert [(10, "m", False)] == [
        (m["id"], m["name"], m["active"]) for m in await wire.ok("getMasters")
    ]


async def test_s4_events_apply_in_queue_order(wire: Wire) -> None:
    """§4 "Events are applied in the order the queue delivers them": 300 of them, in order."""
    wid = await wire.ok("findWorkerId", {"name": "ordered"})
    start = await wire.revision()
    for i in range(1, 301):
        await wire.event(
            {"type": "worker.configured", "workerid": wid, "masterid": 10, "builderids": [i]}
        )
    await wire.settled()
    page = await wire.ok("getChanges", {"since": start, "limit": 1000})
    builders = [c["worker"]["configured_on"][0]["builderid"] for c in page["changes"]]
    assert list(range(1, 301)) == builders


async def test_s4_replayed_message_id_is_acked_and_ignored(wire: Wire) -> None:
    """§4 a "message_id seen in the last 10 minutes (at least) is acknowledged and ignored"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    pause: Json = {"type": "worker.paused", "workerid": wid, "paused": True, "pause_reason": "a"}
    await wire.event(pause, message_id="m-1")
    await wire.event({"type": "worker.paused", "workerid": wid, "paused": False}, message_id="m-2")
    await wire.notes(3)
    await wire.event(pause, message_id="m-1")  # a replay of an old event
    await wire.event({"type": "master.heartbeat", "masterid": 3}, message_id="m-2")
    assert [] == await wire.dead_letters()
    assert 3 == await wire.revision()
    worker = await wire.worker(wid)
    assert (False, None) == (worker["paused"], worker["pause_reason"])
    assert [] == await wire.ok("getMasters")
    changes = (await wire.ok("getChanges", {"since": 0}))["changes"]
    assert ["new", "state_updated", "state_updated"] == [c["event"] for c in changes]
    assert await wire.quiet()
    queue = await wire.channel.declare_queue(wire.events, passive=True)
    assert 0 == queue.declaration_result.message_count


async def test_s4_message_ids_survive_a_restart_and_stay_under_the_prefix(
    settings: Settings, redis: Redis, amqp: AbstractConnection, other_prefix: str
) -> None:
    """§4 "message_ids are remembered in Redis under the prefix, so they survive a restart"."""
    event: Json = {"type": "master.heartbeat", "masterid": 3, "name": "first"}
    async with serving(settings, amqp) as wire:
        await wire.event(event, message_id="once")
        await wire.settled()
    async with serving(settings, amqp, fresh=False) as wire:
        await wire.event({**event, "name": "second"}, message_id="once")
        await wire.settled()
        assert [(3, "first")] == [(m["id"], m["name"]) for m in await wire.ok("getMasters")]
    async with serving(settings, amqp, prefix=other_prefix) as wire_b:
        await wire_b.event({**event, "name": "second"}, message_id="once")
        await wire_b.settled()
        assert [(3, "second")] == [(m["id"], m["name"]) for m in await wire_b.ok("getMasters")]


#: An event for a worker that does not exist: dead-lettered ``not_found``.
UNKNOWN_WORKER = b'{"type": "worker.graceful", "workerid": 999, "graceful": true}'


async def _publish_raw(wire: Wire, routing_key: str, properties: Basic.Properties) -> None:
    """Publish :data:`UNKNOWN_WORKER` with exactly these AMQP properties (no defaults added)."""
    raw = await wire.channel.get_underlay_channel()
    await raw.basic_publish(
        UNKNOWN_WORKER, exchange=wire.events, routing_key=routing_key, properties=properties
    )


async def test_s4_dead_letter_keeps_body_and_every_property(wire: Wire) -> None:
    """§4 dead-lettered "byte for byte with its original properties (message_id included)"."""
    headers: Json = {
        "text": "ü",
        "int": 42,
        "negative": -7,
        "big": 2**40,
        "flag": True,
        "float": 1.5,
        "none": None,
        "list": [1, "a", False],
        "table": {"k": "v", "n": 2},
    }
    stamp = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    await _publish_raw(
        wire,
        "any.key",
        Basic.Properties(
            content_type="text/x-odd",
            content_encoding="identity",
            headers=headers,
            delivery_mode=1,
            priority=7,
            correlation_id="corr-1",
            reply_to="somewhere",
            expiration="3600000",
            message_id="mid-1",
            timestamp=stamp,
            message_type="custom-type",
            app_id="conformance",
        ),
    )
    (dead,) = await wire.dead_letters()
    got = dict(dead.headers or {})
    error = json.loads(str(got.pop("x-registry-error")))
    assert ("not_found", headers) == (error["code"], got)
    assert UNKNOWN_WORKER == dead.body
    assert (
        "text/x-odd",
        "identity",
        1,
        7,
        "corr-1",
        "somewhere",
        3600.0,
        "mid-1",
        "custom-type",
        "conformance",
    ) == (
        dead.content_type,
        dead.content_encoding,
        dead.delivery_mode,
        dead.priority,
        dead.correlation_id,
        dead.reply_to,
        dead.expiration,
        dead.message_id,
        dead.type,
        dead.app_id,
    )
    assert dead.timestamp is not None
    assert stamp == dead.timestamp.replace(tzinfo=UTC)


async def test_s4_dead_letter_keeps_the_exact_expiration(wire: Wire) -> None:
    """§4 "with its original properties": an expiration of "2097151" ms is kept exactly."""
    await _publish_raw(
        wire,
        "worker.graceful",
        Basic.Properties(
            content_type="application/json",
            delivery_mode=2,
            expiration="2097151",
            message_id="exp-1",
        ),
    )
    (dead,) = await wire.dead_letters()
    assert float("2097151") / 1000 == dead.expiration  # aio-pika decodes the ms text to seconds


async def test_s4_dead_lettered_message_id_is_not_remembered(wire: Wire) -> None:
    """§4 "A dead-lettered event's message_id is not remembered, so ... published again"."""
    await wire.event({"type": "master.heartbeat", "masterid": "5"}, message_id="fix-me")
    assert ["invalid_params"] == [error_code(m) for m in await wire.dead_letters()]
    await wire.event({"type": "master.heartbeat", "masterid": 5}, message_id="fix-me")
    assert [] == await wire.dead_letters()
    assert [5] == [m["id"] for m in await wire.ok("getMasters")]


async def test_s4_event_for_an_unknown_worker_applies_once_it_exists(wire: Wire) -> None:
    """§4 a dead-lettered event "can be published again once fixed": here the world is fixed."""
    graceful: Json = {"type": "worker.graceful", "workerid": 1, "graceful": True}
    await wire.event(graceful, message_id="fixme")
    assert ["not_found"] == [error_code(m) for m in await wire.dead_letters()]
    assert 1 == await wire.ok("findWorkerId", {"name": "late"})
    await wire.event(graceful, message_id="fixme")
    assert [] == await wire.dead_letters()
    assert (await wire.worker(1))["graceful"] is True


async def test_s4_one_mib_is_the_limit(wire: Wire) -> None:
    """§4 bad_request "over 1 MiB": exactly 1 MiB applies, one byte more is dead-lettered."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    head = (
        b'{"type": "worker.connected", "workerid": %d, "masterid": 1, "workerinfo": {"pad": "' % wid
    )
    tail = b'"}}'
    exact = head + b"x" * (1024 * 1024 - len(head) - len(tail)) + tail
    over = head + b"y" * (1024 * 1024 + 1 - len(head) - len(tail)) + tail
    assert (1024 * 1024, 1024 * 1024 + 1) == (len(exact), len(over))
    await wire.event(exact)
    await wire.event(over)
    dead = await wire.dead_letters()
    assert [(over, "bad_request")] == [(m.body, error_code(m)) for m in dead]
    assert len(exact) - len(head) - len(tail) == len((await wire.worker(wid))["workerinfo"]["pad"])


async def test_s4_deeply_nested_body_is_bad_request_not_a_crash(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§4 2 KiB of "[" (not JSON) is dead-lettered bad_request; "the daemon keeps running"."""
    with served(tmp_path, prefix) as serve:
        await serve.reaches(200)
        wire = await Wire.open(amqp, prefix, notes=False)
        await wire.attach()
        wid = await wire.ok("findWorkerId", {"name": "w"})
        await wire.event({"type": "worker.graceful", "workerid": wid, "graceful": True})
        await wire.event(POISON, message_id="poison")
        await wire.event({"type": "worker.paused", "workerid": wid, "paused": True})
        try:
            dead = await wire.dead_letters(timeout=5)
        except TimeoutError:
            pytest.fail(f"no dead letter within 5 s; the daemon logged:\n{serve.log()[-1500:]}")
        assert [(POISON, "bad_request", False)] == [
            (
                m.body,
                json.loads(str((m.headers or {}).get("x-registry-error", "{}"))).get("code"),
                "x-death" in (m.headers or {}),
            )
            for m in dead
        ]
        worker = await wire.worker(wid)
        assert (True, True) == (worker["graceful"], worker["paused"])
        await wire.close()


async def test_s4_a_killed_daemon_loses_no_event_and_applies_none_twice(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§4 "A crash at any point loses no event; redelivery re-applies nothing twice" (SIGKILL)."""
    count = 1000
    wire = await Wire.open(amqp, prefix, notes=False)
    with served(tmp_path, prefix) as first:
        await first.reaches(200)
        await wire.attach()
        wid = await wire.ok("findWorkerId", {"name": "w"})
        for start in range(0, count, 100):  # alternating: applying one twice would be a change
            await asyncio.gather(
                *(
                    wire.event({"type": "worker.paused", "workerid": wid, "paused": i % 2 == 0})
                    for i in range(start, start + 100)
                )
            )
            if start == count // 2:

                async def begun() -> bool:
                    return await wire.revision() > count // 4

                await wait_for(begun)
                first.process.kill()  # SIGKILL mid-stream: no clean-up of any kind
        first.process.wait()
    with served(tmp_path, prefix) as second:
        await second.reaches(200)
        assert [] == await wire.dead_letters(timeout=30)
        assert 1 + count == await wire.revision()
        assert (await wire.worker(wid))["paused"] is False
        await second.stopped()
    await wire.close()


async def test_s4_s5_refused_messages_are_logged(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§4 a dead-lettered event is "logged"; §5 a request without reply_to "is logged"."""
    with served(tmp_path, prefix) as serve:
        await serve.reaches(200)
        wire = await Wire.open(amqp, prefix, notes=False)
        await wire.attach()
        await wire.event(b'{"type": "nonsense"}', message_id="logged-event-1")
        await wire.dead_letters()
        await wire.channel.default_exchange.publish(
            aio_pika.Message(b'{"method": "ping"}', correlation_id="logged-request-1"),
            routing_key=wire.rpc,
        )
        await wire.ok("ping")
        await serve.stopped()
        log = serve.log()
        assert "logged-event-1" in log
        assert "logged-request-1" in log
        await wire.close()
