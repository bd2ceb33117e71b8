"""RPC through RabbitMQ: every method, every error code, one reply per request."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from registryd import __version__
from registryd.amqp.topology import Names, declare
from registryd.client import RegistryClient
from registryd.config import Settings
from registryd.errors import Forbidden
from tests.harness import RawRpc, RunningDaemon, start_daemon, wait_for

pytestmark = pytest.mark.integration


async def test_ping_reports_version_revision_epoch(daemon: RunningDaemon, rpc: RawRpc) -> None:
    """ping returns the version, the current revision and the epoch."""
    result = await rpc.result("ping")
    assert (__version__, 0) == (result["version"], result["revision"])
    assert isinstance(result["epoch"], str)
    assert result["epoch"]


async def test_every_method_round_trip(daemon: RunningDaemon, rpc: RawRpc) -> None:
    """Each protocol method answers {"ok": true} with the result of its operation."""
    wid = await rpc.result("findWorkerId", {"name": "zero"})
    assert wid == await rpc.result("findWorkerId", {"name": "zero"})
    calls: list[tuple[str, dict[str, Any]]] = [
        ("masterHeartbeat", {"masterid": 10, "name": "m"}),
        ("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [20, 21]}),
        (
            "workerConnected",
            {"workerid": wid, "masterid": 10, "workerinfo": {"a": 1}, "connection": "c1"},
        ),
        ("set_worker_paused", {"workerid": wid, "paused": True, "pause_reason": "why"}),
        ("set_worker_graceful", {"workerid": wid, "graceful": True}),
    ]
    for method, params in calls:
        assert {"ok": True, "result": None} == await rpc.call(method, params)
    worker = await rpc.result("getWorker", {"name": "zero", "masterid": 10, "builderid": 21})
    assert [{"builderid": 21, "masterid": 10}] == worker["configured_on"]
    assert [wid] == [
        w["id"] for w in await rpc.result("getWorkers", {"paused": True, "graceful": True})
    ]
    assert [] == await rpc.result("getWorkers", {"paused": False})
    masters = await rpc.result("getMasters")
    assert [(10, "m", True)] == [(m["id"], m["name"], m["active"]) for m in masters]
    assert masters[0]["last_seen"].endswith("Z")
    for method, params in [
        ("workerDisconnected", {"workerid": wid, "masterid": 10, "connection": "c1"}),
        ("deconfigureAllWorkersForMaster", {"masterid": 10}),
        ("masterStopped", {"masterid": 10}),
    ]:
        assert {"ok": True, "result": None} == await rpc.call(method, params)
    changes = await rpc.result("getChanges", {"since": 0, "limit": 3})
    assert [1, 2, 3] == [c["revision"] for c in changes["changes"]]
    assert changes["revision"] >= 9
    assert await rpc.result("getWorker", {}) is None


ERRORS: list[tuple[bytes, str]] = [
    (b"not json", "bad_request"),
    (b"[]", "bad_request"),
    (b'{"params": {}}', "bad_request"),
    (b'{"method": 5}', "bad_request"),
    (b'{"method": "ping", "params": []}', "bad_request"),
    (b'{"method": "getWorkers", "params": null}', "bad_request"),
    (b'{"method": "dropTables"}', "unknown_method"),
    (b'{"method": "getWorker", "params": {"paused": true}}', "invalid_params"),
    (b'{"method": "getWorkers", "params": {"masterid": "10"}}', "invalid_params"),
    (b'{"method": "getWorkers", "params": {"paused": 1}}', "invalid_params"),
    (b'{"method": "findWorkerId", "params": {"name": "bad name"}}', "invalid_params"),
    (b'{"method": "findWorkerId", "params": {"name": "x\\n"}}', "invalid_params"),
    (b'{"method": "getChanges", "params": {"since": -1}}', "invalid_params"),
    (b'{"method": "getChanges", "params": {"since": 0, "limit": 1001}}', "invalid_params"),
    (
        b'{"method": "set_worker_graceful", "params": {"workerid": 424242, "graceful": true}}',
        "not_found",
    ),
]


@pytest.mark.parametrize(("body", "code"), ERRORS)
async def test_error_codes(daemon: RunningDaemon, rpc: RawRpc, body: bytes, code: str) -> None:
    """A bad request gets {"ok": false} with the protocol's code, a message, retryable false."""
    reply = await rpc.send(body)
    assert (False, code, False) == (
        reply["ok"],
        reply["error"]["code"],
        reply["error"]["retryable"],
    )
    assert reply["error"]["message"]


async def test_forbidden_rpc_with_auth_map(
    settings: Settings, redis: object, amqp: AbstractConnection, prefix: str
) -> None:
    """With an auth map, writes need a mapped user_id; reads stay open."""
    running = await start_daemon(settings.model_copy(update={"auth_masters": {"guest": [10]}}))
    try:
        rpc = await RawRpc.open(amqp, Names(prefix))
        body = json.dumps({"method": "masterHeartbeat", "params": {"masterid": 11}}).encode()
        denied = await rpc.send(body, user_id="guest")
        anonymous = await rpc.send(b'{"method": "findWorkerId", "params": {"name": "w"}}')
        allowed = await rpc.send(
            b'{"method": "findWorkerId", "params": {"name": "w"}}', user_id="guest"
        )
        read = await rpc.call("getWorkers")
        assert ["forbidden", "forbidden", True, True] == [
            denied["error"]["code"],
            anonymous["error"]["code"],
            allowed["ok"],
            read["ok"],
        ]
    finally:
        await running.stop()


async def test_many_concurrent_requests_each_get_their_reply(
    daemon: RunningDaemon, rpc: RawRpc
) -> None:
    """300 requests in flight at once: each gets exactly its own reply."""
    names = [f"w{i}" for i in range(300)]
    ids = await asyncio.gather(*(rpc.result("findWorkerId", {"name": n}) for n in names))
    workers = await asyncio.gather(*(rpc.result("getWorker", {"workerid": i}) for i in ids))
    assert names == [w["name"] for w in workers]
    assert [] == rpc.stray


async def test_direct_reply_to(
    daemon: RunningDaemon, amqp: AbstractConnection, prefix: str
) -> None:
    """A client consuming amq.rabbitmq.reply-to gets its reply there."""
    channel = await amqp.channel()
    replies: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    queue = await channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
    await queue.consume(replies.put, no_ack=True)
    await channel.default_exchange.publish(
        aio_pika.Message(
            b'{"method": "ping"}', reply_to="amq.rabbitmq.reply-to", correlation_id="c-1"
        ),
        routing_key=Names(prefix).rpc,
    )
    reply = await asyncio.wait_for(replies.get(), 10)
    assert ("c-1", True) == (reply.correlation_id, json.loads(reply.body)["ok"])


async def test_request_without_reply_to_is_dropped(
    daemon: RunningDaemon, rpc: RawRpc, prefix: str
) -> None:
    """A request with no reply_to is not executed, and the daemon keeps serving."""
    body = b'{"method": "findWorkerId", "params": {"name": "ghost"}}'
    await rpc.channel.default_exchange.publish(
        aio_pika.Message(body), routing_key=Names(prefix).rpc
    )
    assert [] == await rpc.result("getWorkers")
    assert [] == rpc.stray


async def test_expired_request_gets_no_reply(
    settings: Settings, redis: object, amqp: AbstractConnection, prefix: str
) -> None:
    """A request whose expiration ran out in the queue is discarded: no reply, no effect."""
    names = Names(prefix)
    channel = await amqp.channel()
    await declare(channel, names)
    rpc = await RawRpc.open(amqp, names)
    stale = aio_pika.Message(
        b'{"method": "findWorkerId", "params": {"name": "stale"}}',
        reply_to=rpc.reply_queue.name,
        correlation_id=uuid.uuid4().hex,
        expiration=0.05,
    )
    await channel.default_exchange.publish(stale, routing_key=names.rpc)
    await asyncio.sleep(0.2)  # the request must expire while nobody consumes the queue
    running = await start_daemon(settings)
    try:
        assert [] == await rpc.result("getWorkers")
        assert [] == rpc.stray
    finally:
        await running.stop()


async def test_client_library_passes_authorization(
    settings: Settings, redis: object, amqp: AbstractConnection, prefix: str
) -> None:
    """The client sends its login as user_id, so a mapped master's writes pass, others don't."""
    running = await start_daemon(settings.model_copy(update={"auth_masters": {"guest": [10]}}))
    try:
        async with await RegistryClient.connect(settings.amqp_url, prefix) as client:
            await client.master_heartbeat(10, name="mine")
            wid = await client.find_worker_id("w")
            await client.publish_event(
                "worker.connected", {"workerid": wid, "masterid": 10, "workerinfo": {}}
            )
            with pytest.raises(Forbidden):
                await client.master_heartbeat(11)

            async def connected() -> bool:
                worker = await client.get_worker(workerid=wid)
                return worker is not None and [10] == worker.connected_to

            await wait_for(connected)
            assert [10] == [m.id for m in await client.get_masters()]
    finally:
        await running.stop()
