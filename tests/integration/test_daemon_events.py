"""Lifecycle events through RabbitMQ: applied in order, once, or dead-lettered with why."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aio_pika.abc import AbstractConnection, AbstractQueue

from registryd.amqp.topology import Names
from registryd.config import Settings
from tests.harness import RawRpc, RunningDaemon, publish_event, start_daemon, wait_for

pytestmark = pytest.mark.integration


async def _revision(rpc: RawRpc) -> int:
    return int((await rpc.result("ping"))["revision"])


async def _settled(rpc: RawRpc, queue_name: str, amqp: AbstractConnection) -> None:
    """Wait until the events queue is empty and everything in it was acked."""
    channel = await amqp.channel()

    async def empty() -> bool:
        queue = await channel.declare_queue(queue_name, passive=True)
        return queue.declaration_result.message_count == 0

    await wait_for(empty)
    await channel.close()


async def _dead_letters(amqp: AbstractConnection, names: Names, count: int) -> list[Any]:
    channel = await amqp.channel()
    queue: AbstractQueue = await channel.declare_queue(names.dead, passive=True)
    got: list[Any] = []

    async def fetch() -> bool:
        message = await queue.get(fail=False, no_ack=True)
        if message is not None:
            got.append(message)
        return len(got) >= count

    await wait_for(fetch)
    return got


async def test_every_event_type_is_applied(
    daemon: RunningDaemon, rpc: RawRpc, amqp: AbstractConnection, prefix: str
) -> None:
    """Each of the eight event types changes the registry like its RPC twin."""
    names = Names(prefix)
    channel = await amqp.channel()
    wid = await rpc.result("findWorkerId", {"name": "w1"})
    events = [
        {"type": "master.heartbeat", "masterid": 10, "name": "m:/b"},
        {"type": "worker.configured", "workerid": wid, "masterid": 10, "builderids": [2, 1]},
        {"type": "worker.connected", "workerid": wid, "masterid": 10, "workerinfo": {"host": "h"}},
        {"type": "worker.paused", "workerid": wid, "paused": True, "pause_reason": "maint"},
        {"type": "worker.graceful", "workerid": wid, "graceful": True},
        {"type": "worker.connected", "workerid": wid, "masterid": 11, "workerinfo": {"host": "h2"}},
        {"type": "worker.disconnected", "workerid": wid, "masterid": 11},
        {"type": "worker.configured", "workerid": wid, "masterid": 12, "builderids": [5]},
        {"type": "master.deconfigured", "masterid": 12},
    ]
    for event in events:
        await publish_event(channel, names, event)
    await _settled(rpc, names.events, amqp)
    worker = await rpc.result("getWorker", {"workerid": wid})
    assert {
        "id": wid,
        "name": "w1",
        "workerinfo": {"host": "h2"},
        "paused": True,
        "pause_reason": "maint",
        "graceful": True,
        "connected_to": [10],
        "configured_on": [{"builderid": 1, "masterid": 10}, {"builderid": 2, "masterid": 10}],
    } == worker
    await publish_event(channel, names, {"type": "master.stopped", "masterid": 10})
    await _settled(rpc, names.events, amqp)
    masters = await rpc.result("getMasters")
    assert [(10, "m:/b", False)] == [(m["id"], m["name"], m["active"]) for m in masters]
    worker = await rpc.result("getWorker", {"workerid": wid})
    assert ([], []) == (worker["connected_to"], worker["configured_on"])


async def test_events_apply_in_queue_order(
    daemon: RunningDaemon, rpc: RawRpc, amqp: AbstractConnection, prefix: str
) -> None:
    """Hundreds of events for one worker end in the state of the last one, in order."""
    names = Names(prefix)
    channel = await amqp.channel()
    wid = await rpc.result("findWorkerId", {"name": "ordered"})
    start = await _revision(rpc)
    for i in range(1, 301):
        await publish_event(
            channel,
            names,
            {"type": "worker.configured", "workerid": wid, "masterid": 10, "builderids": [i]},
        )
    await _settled(rpc, names.events, amqp)
    page = await rpc.result("getChanges", {"since": start, "limit": 1000})
    builders = [c["worker"]["configured_on"][0]["builderid"] for c in page["changes"]]
    assert list(range(1, 301)) == builders


async def test_replayed_message_id_is_applied_once(
    daemon: RunningDaemon, rpc: RawRpc, amqp: AbstractConnection, prefix: str
) -> None:
    """A second event with a seen message_id is acked and ignored: no change, no revision."""
    names = Names(prefix)
    channel = await amqp.channel()
    wid = await rpc.result("findWorkerId", {"name": "replayed"})
    paused = {"type": "worker.paused", "workerid": wid, "paused": True, "pause_reason": "a"}
    unpaused = {"type": "worker.paused", "workerid": wid, "paused": False}
    await publish_event(channel, names, paused, message_id="evt-1")
    await publish_event(channel, names, unpaused, message_id="evt-2")
    await publish_event(channel, names, paused, message_id="evt-1")  # replay of an old event
    await _settled(rpc, names.events, amqp)
    worker = await rpc.result("getWorker", {"workerid": wid})
    assert (False, None) == (worker["paused"], worker["pause_reason"])
    page = await rpc.result("getChanges", {"since": 0})
    assert ["new", "state_updated", "state_updated"] == [c["event"] for c in page["changes"]]


BAD_EVENTS: list[tuple[bytes, str]] = [
    (b"\xff\xfe not utf-8", "bad_request"),
    (b"{not json", "bad_request"),
    (b"[1, 2]", "bad_request"),
    (b'{"workerid": 1}', "bad_request"),
    (b'{"type": 7}', "bad_request"),
    (b'{"type": "worker.exploded", "workerid": 1}', "unknown_type"),
    (b'{"type": "worker.graceful", "workerid": true, "graceful": true}', "invalid_params"),
    (b'{"type": "worker.graceful", "workerid": 1, "graceful": 1}', "invalid_params"),
    (b'{"type": "worker.graceful", "workerid": 1, "graceful": true, "x": 1}', "invalid_params"),
    (
        b'{"type": "worker.configured", "workerid": 1, "masterid": "10", "builderids": []}',
        "invalid_params",
    ),
    (b'{"type": "master.heartbeat", "masterid": 10.0}', "invalid_params"),
    (b'{"type": "worker.graceful", "workerid": 999999, "graceful": true}', "not_found"),
    (
        b'{"type": "worker.connected", "workerid": 1, "masterid": 1, "workerinfo": {"x": NaN}}',
        "bad_request",
    ),
]


async def test_bad_events_are_dead_lettered_with_reason(
    daemon: RunningDaemon, rpc: RawRpc, amqp: AbstractConnection, prefix: str
) -> None:
    """Each bad event lands in the dead queue byte for byte, with its code, and changes nothing."""
    names = Names(prefix)
    channel = await amqp.channel()
    before = await _revision(rpc)
    for i, (body, _) in enumerate(BAD_EVENTS):
        await publish_event(
            channel, names, body, message_id=f"bad-{i}", headers={"origin": "test"}, app_id="tests"
        )
    dead = await _dead_letters(amqp, names, len(BAD_EVENTS))
    got = [
        (
            m.body,
            json.loads(m.headers["x-registry-error"])["code"],
            m.message_id,
            m.headers["origin"],
            m.app_id,
        )
        for m in dead
    ]
    expected = [
        (body, code, f"bad-{i}", "test", "tests") for i, (body, code) in enumerate(BAD_EVENTS)
    ]
    assert expected == got
    assert all(json.loads(m.headers["x-registry-error"])["message"] for m in dead)
    assert before == await _revision(rpc)


async def test_oversized_event_is_bad_request(
    daemon: RunningDaemon, amqp: AbstractConnection, prefix: str
) -> None:
    """An event over 1 MiB is dead-lettered as bad_request."""
    names = Names(prefix)
    channel = await amqp.channel()
    body = json.dumps(
        {"type": "worker.graceful", "workerid": 1, "graceful": True, "pad": "x" * (1 << 20)}
    ).encode()
    await publish_event(channel, names, body)
    (dead,) = await _dead_letters(amqp, names, 1)
    assert ("bad_request", len(body)) == (
        json.loads(dead.headers["x-registry-error"])["code"],
        len(dead.body),
    )


async def test_dead_lettered_message_id_is_not_remembered(
    daemon: RunningDaemon, rpc: RawRpc, amqp: AbstractConnection, prefix: str
) -> None:
    """An event refused for an unknown worker can be published again, fixed, with its id."""
    names = Names(prefix)
    channel = await amqp.channel()
    await publish_event(
        channel,
        names,
        {"type": "worker.graceful", "workerid": 1, "graceful": True},
        message_id="fixme",
    )
    await _dead_letters(amqp, names, 1)
    wid = await rpc.result("findWorkerId", {"name": "late"})
    assert 1 == wid
    await publish_event(
        channel,
        names,
        {"type": "worker.graceful", "workerid": 1, "graceful": True},
        message_id="fixme",
    )
    await _settled(rpc, names.events, amqp)
    assert (await rpc.result("getWorker", {"workerid": 1}))["graceful"] is True


async def test_forbidden_event_with_auth_map(
    settings: Settings, redis: object, amqp: AbstractConnection, prefix: str
) -> None:
    """With an auth map, an event for a master the AMQP user may not act for is forbidden."""
    names = Names(prefix)
    running = await start_daemon(settings.model_copy(update={"auth_masters": {"guest": [10]}}))
    try:
        channel = await amqp.channel()
        rpc = await RawRpc.open(amqp, names)
        await publish_event(
            channel, names, {"type": "master.heartbeat", "masterid": 11}, user_id="guest"
        )
        await publish_event(
            channel, names, {"type": "master.heartbeat", "masterid": 10}, user_id="guest"
        )
        await publish_event(channel, names, {"type": "master.heartbeat", "masterid": 10})
        dead = await _dead_letters(amqp, names, 2)
        assert ["forbidden", "forbidden"] == [
            json.loads(m.headers["x-registry-error"])["code"] for m in dead
        ]
        assert ["guest", None] == [m.headers.get("x-registry-user-id") for m in dead]
        masters = await rpc.result("getMasters")
        assert [10] == [m["id"] for m in masters]
    finally:
        await running.stop()


async def test_daemon_keeps_serving_after_bad_events(
    daemon: RunningDaemon, rpc: RawRpc, amqp: AbstractConnection, prefix: str
) -> None:
    """Good events after bad ones are still applied."""
    names = Names(prefix)
    channel = await amqp.channel()
    await publish_event(channel, names, b"garbage")
    wid = await rpc.result("findWorkerId", {"name": "after"})
    await publish_event(
        channel, names, {"type": "worker.graceful", "workerid": wid, "graceful": True}
    )
    await _settled(rpc, names.events, amqp)
    assert (await rpc.result("getWorker", {"workerid": wid}))["graceful"] is True
