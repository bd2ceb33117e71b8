"""PROTOCOL.md section 5, RPC: replies, concurrency, and requests that get no reply."""

from __future__ import annotations

import asyncio
import json

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from redis.asyncio import Redis
from structlog.testing import capture_logs

from registryd.config import Settings
from tests.conformance.support import MAX_ID, epoch_eventually
from tests.harness import Json, PrivateRedis, Wire, serving, start_daemon, wait_for

pytestmark = pytest.mark.integration


async def test_s5_reply_goes_to_reply_to_with_the_correlation_id(wire: Wire) -> None:
    """§5 "Reply: to reply_to through the default exchange, same correlation_id"; envelopes."""
    assert wire.reply_queue is not None
    ok = await wire.request(b'{"method": "getWorkers", "params": {}}')
    bad = await wire.request(b'{"method": "getWorkers", "params": {"masterid": 0}}')
    for reply in (ok, bad):
        assert ("", wire.reply_queue.name) == (reply.exchange, reply.routing_key)
    ok_body, bad_body = json.loads(ok.body), json.loads(bad.body)
    assert {"ok": True, "result": []} == ok_body
    assert ["ok", "result"] == list(ok_body)
    assert ["ok", "error"] == list(bad_body)
    assert ["code", "message", "retryable"] == list(bad_body["error"])
    assert (False, "invalid_params", False) == (
        bad_body["ok"],
        bad_body["error"]["code"],
        bad_body["error"]["retryable"],
    )
    assert isinstance(bad_body["error"]["message"], str)
    assert bad_body["error"]["message"]
    assert sorted(r.correlation_id or "" for r in wire.replies) == sorted(
        r.correlation_id or "" for r in (ok, bad)
    )


async def test_s5_direct_reply_to_with_many_requests_in_flight(
    wire: Wire, amqp: AbstractConnection
) -> None:
    """§5 reply_to "amq.rabbitmq.reply-to"; "Many requests are served concurrently", each its own.

    Each reply must answer its own request: the id it carries names that request's worker.
    """
    channel = await amqp.channel()
    replies: dict[str, list[Json]] = {}
    done = asyncio.Event()
    count = 200

    async def on_reply(message: AbstractIncomingMessage) -> None:
        replies.setdefault(message.correlation_id or "", []).append(json.loads(message.body))
        if len(replies) == count:
            done.set()

    reply_to = await channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
    await reply_to.consume(on_reply, no_ack=True)
    await asyncio.gather(
        *(
            channel.default_exchange.publish(
                aio_pika.Message(
                    json.dumps({"method": "findWorkerId", "params": {"name": f"w{i}"}}).encode(),
                    content_type="application/json",
                    reply_to="amq.rabbitmq.reply-to",
                    correlation_id=f"c-{i}",
                ),
                routing_key=wire.rpc,
            )
            for i in range(count)
        )
    )
    await asyncio.wait_for(done.wait(), 15)
    assert {f"c-{i}" for i in range(count)} == set(replies)
    assert all(1 == len(r) and r[0]["ok"] for r in replies.values())
    ids = {r[0]["result"] for r in replies.values()}
    assert count == len(ids)
    named = await asyncio.gather(
        *(wire.worker(replies[f"c-{i}"][0]["result"]) for i in range(count))
    )
    assert [f"w{i}" for i in range(count)] == [w["name"] for w in named]
    await channel.close()


async def test_s5_every_operation_is_a_method(wire: Wire) -> None:
    """§5 "Every operation in section 2 is a method, plus ping ... and getChanges"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    calls: list[tuple[str, Json]] = [
        ("findWorkerId", {"name": "w"}),
        ("getWorker", {"workerid": wid}),
        ("getWorkers", {}),
        ("workerConnected", {"workerid": wid, "masterid": 1, "workerinfo": {}}),
        ("workerDisconnected", {"workerid": wid, "masterid": 1}),
        ("workerConfigured", {"workerid": wid, "masterid": 1, "builderids": [1]}),
        ("deconfigureAllWorkersForMaster", {"masterid": 1}),
        ("set_worker_paused", {"workerid": wid, "paused": True}),
        ("set_worker_graceful", {"workerid": wid, "graceful": True}),
        ("masterHeartbeat", {"masterid": 1}),
        ("masterStopped", {"masterid": 1}),
        ("getMasters", {}),
        ("ping", {}),
        ("getChanges", {"since": 0}),
    ]
    for method, params in calls:
        assert (await wire.call(method, params))["ok"] is True, method
    results = [await wire.call(m, p) for m, p in calls[3:11]]
    assert all({"ok": True, "result": None} == r for r in results)


async def test_s5_each_method_answers_with_its_operations_result(wire: Wire) -> None:
    """§5 each method answers {"ok": true} with the result of its section-2 operation."""
    wid = await wire.ok("findWorkerId", {"name": "zero"})
    assert wid == await wire.ok("findWorkerId", {"name": "zero"})
    writes: list[tuple[str, Json]] = [
        ("masterHeartbeat", {"masterid": 10, "name": "m"}),
        ("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [20, 21]}),
        (
            "workerConnected",
            {"workerid": wid, "masterid": 10, "workerinfo": {"a": 1}, "connection": "c1"},
        ),
        ("set_worker_paused", {"workerid": wid, "paused": True, "pause_reason": "why"}),
        ("set_worker_graceful", {"workerid": wid, "graceful": True}),
    ]
    for method, params in writes:
        assert {"ok": True, "result": None} == await wire.call(method, params), method
    worker = await wire.ok("getWorker", {"name": "zero", "masterid": 10, "builderid": 21})
    assert [{"builderid": 21, "masterid": 10}] == worker["configured_on"]
    assert [wid] == [
        w["id"] for w in await wire.ok("getWorkers", {"paused": True, "graceful": True})
    ]
    assert [] == await wire.ok("getWorkers", {"paused": False})
    masters = await wire.ok("getMasters")
    assert [(10, "m", True)] == [(m["id"], m["name"], m["active"]) for m in masters]
    for method, params in [
        ("workerDisconnected", {"workerid": wid, "masterid": 10, "connection": "c1"}),
        ("deconfigureAllWorkersForMaster", {"masterid": 10}),
        ("masterStopped", {"masterid": 10}),
    ]:
        assert {"ok": True, "result": None} == await wire.call(method, params), method
    changes = await wire.ok("getChanges", {"since": 0, "limit": 3})
    assert [1, 2, 3] == [c["revision"] for c in changes["changes"]]
    assert changes["revision"] >= 9
    assert await wire.ok("getWorker", {}) is None


async def test_s5_ids_at_the_bounds_are_accepted(wire: Wire) -> None:
    """§4/§5 "Ids are >= 1": 1 and 2**53-1 are ids (README: ids up to 2**53-1)."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    for masterid in (1, MAX_ID):
        await wire.ok(
            "workerConfigured", {"workerid": wid, "masterid": masterid, "builderids": [1]}
        )
    assert [wid] == [w["id"] for w in await wire.ok("getWorkers", {"masterid": MAX_ID})]


async def test_s5_exactly_one_reply_per_request(wire: Wire) -> None:
    """§5 "Every request with a reply_to ... gets exactly one reply, errors included".

    Each reply must be its own request's: an error of the code that request calls for,
    and for findWorkerId the id of the very worker it named. No second reply may follow:
    the daemon is stopped (it finishes in-flight work first), then the reply queue flushed.
    """
    refused = [
        (b"garbage", "bad_request"),
        (b'{"method": "nope"}', "unknown_method"),
        (b'{"method": "getWorkers", "params": {"masterid": "1"}}', "invalid_params"),
        (
            b'{"method": "set_worker_paused", "params": {"workerid": 999, "paused": true}}',
            "not_found",
        ),
    ]
    names = [f"w{i}" for i in range(10)]
    finds = [json.dumps({"method": "findWorkerId", "params": {"name": n}}).encode() for n in names]
    pings = [b'{"method": "ping"}'] * 10
    bodies = [*pings, *(body for body, _ in refused * 10), *finds]
    replies = await asyncio.gather(*(wire.send(body) for body in bodies))
    ping_replies, rest = replies[:10], replies[10:]
    error_replies, find_replies = rest[:-10], rest[-10:]
    assert all(reply["ok"] and "epoch" in reply["result"] for reply in ping_replies)
    assert [code for _, code in refused * 10] == [r["error"]["code"] for r in error_replies]
    workers = [await wire.worker(reply["result"]) for reply in find_replies]
    assert names == [w["name"] for w in workers]
    assert wire.daemon is not None
    await wire.daemon.stop()
    await wire.flush_replies()
    assert len(bodies) + len(workers) == len(wire.replies)


async def test_s5_request_without_reply_to_is_logged_and_dropped(wire: Wire) -> None:
    """§5 "a request without reply_to is logged and dropped" (not executed); serving goes on."""
    with capture_logs() as logs:
        await wire.channel.default_exchange.publish(
            aio_pika.Message(
                b'{"method": "findWorkerId", "params": {"name": "ghost"}}',
                content_type="application/json",
                correlation_id="no-reply",
            ),
            routing_key=wire.rpc,
        )

        def logged() -> bool:
            return any(entry.get("correlation_id") == "no-reply" for entry in logs)

        await wait_for(logged)
    [entry] = [e for e in logs if e.get("correlation_id") == "no-reply"]
    assert "warning" == entry["log_level"]
    assert [] == await wire.ok("getWorkers")
    assert 0 == await wire.revision()
    queue = await wire.channel.declare_queue(wire.rpc, passive=True)
    assert 0 == queue.declaration_result.message_count


async def test_s5_expired_request_is_discarded(
    settings: Settings, redis: Redis, amqp: AbstractConnection
) -> None:
    """§5 "a request whose expiration ran out in the queue is discarded ... and gets none".

    No late reply either: the daemon that would have answered is stopped (in-flight work
    finished), then the requester's reply queue is flushed.
    """
    running = await start_daemon(settings)
    await running.stop()  # the names exist; nobody consumes the rpc queue now
    wire = await Wire.open(amqp, settings.prefix, notes=False)
    await wire.attach()
    stale = await wire.submit(
        b'{"method": "findWorkerId", "params": {"name": "stale"}}', expiration=0.05
    )

    async def expired() -> bool:  # RabbitMQ drops it from the queue once it runs out
        queue = await wire.channel.declare_queue(wire.rpc, passive=True)
        return queue.declaration_result.message_count == 0

    await wait_for(expired)
    async with serving(settings, amqp, fresh=False) as live:
        assert [] == await live.ok("getWorkers")
        assert live.daemon is not None
        await live.daemon.stop()
    await wire.flush_replies()
    assert [] == wire.replies
    assert not stale.done()
    stale.cancel()
    await wire.close()


async def test_s5_reads_do_not_wait_behind_the_event_stream(
    settings: Settings, redis: Redis, amqp: AbstractConnection
) -> None:
    """§5 "reads never wait behind the event stream": getMasters answers over a backlog.

    The proof is the backlog still waiting once the read has answered.
    """
    running = await start_daemon(settings)
    await running.stop()
    channel = await amqp.channel(publisher_confirms=False)
    exchange = await channel.get_exchange(f"{settings.prefix}.events", ensure=False)
    for i in range(5000):
        event = {"type": "master.heartbeat", "masterid": i % 50 + 1}
        await exchange.publish(
            aio_pika.Message(json.dumps(event).encode(), delivery_mode=2),
            routing_key="master.heartbeat",
        )
    async with serving(settings, amqp, fresh=False) as wire:
        await wire.ok("getMasters")
        backlog = (await channel.declare_queue(wire.events, passive=True)).declaration_result
        assert backlog.message_count is not None
        assert backlog.message_count > 0
    await channel.close()


async def test_s5_requests_after_redis_came_back_are_answered(
    settings: Settings, amqp: AbstractConnection, private_redis: PrivateRedis
) -> None:
    """§5 unavailable is for "a backend is down": once Redis is back, requests are served."""
    await private_redis.start()
    async with serving(settings, amqp, redis_url=private_redis.url) as wire:
        await asyncio.gather(*(wire.ok("getWorkers") for _ in range(60)))
        private_redis.kill()
        await private_redis.start()
        await epoch_eventually(wire)
        replies = await asyncio.gather(*(wire.call("getWorkers") for _ in range(60)))
        assert [] == [r["error"] for r in replies if not r["ok"]]
