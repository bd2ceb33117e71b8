"""The client library against the real RabbitMQ, with a scripted RPC responder for registryd."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from registryd import client as client_module
from registryd.amqp.topology import Topology, declare
from registryd.client import RegistryClient, Resync, Subscription
from registryd.config import Settings
from registryd.errors import (
    Forbidden,
    Internal,
    InvalidParams,
    RegistryError,
    ResyncRequired,
    RpcTimeout,
    TooLarge,
    Unavailable,
    UnknownMethod,
    error_for_code,
)
from registryd.models import (
    WORKER_ADAPTER,
    ChangesPage,
    GetWorkers,
    Master,
    MasterChange,
    PingResult,
    SetWorkerPaused,
    WorkerChange,
    WorkerConfigured,
)
from registryd.models.wire import encode_error
from registryd.protocol import DIRECT_REPLY_TO, Names
from tests.harness import AMQP_URL, AMQP_USER, start_daemon, wait_for

pytestmark = pytest.mark.integration

WORKER: dict[str, Any] = {
    "id": 30,
    "name": "zero",
    "workerinfo": {"host": "h1"},
    "paused": False,
    "pause_reason": None,
    "graceful": False,
    "connected_to": [10],
    "configured_on": [{"builderid": 20, "masterid": 10}],
}
MASTER: dict[str, Any] = {
    "id": 10,
    "name": "ci:/srv",
    "active": True,
    "last_seen": "2024-05-01T12:00:00Z",
}
PING: dict[str, Any] = {"version": "1.0", "revision": 0, "epoch": "e1", "master_lease": 60.0}
#: Long enough never to fire on a healthy run, short enough to fail a hung test fast.
WAIT = 5.0

Handler = Callable[[dict[str, Any]], object]


def worker_change(revision: int, workerid: int = 30, event: str = "connected") -> dict[str, Any]:
    """A worker notification body as registryd's relay publishes it."""
    return {
        "revision": revision,
        "event": event,
        "workerid": workerid,
        "masterid": 10,
        "worker": {**WORKER, "id": workerid},
    }


def master_change(revision: int) -> dict[str, Any]:
    """A master notification body."""
    return {"revision": revision, "event": "active", "masterid": 10, "master": MASTER}


def routing_key(body: dict[str, Any]) -> str:
    """The routing key registryd publishes a notification body with."""
    if body.get("event") == "reset":
        return "registry.reset"
    if "worker" in body:
        return f"workers.{body['workerid']}.{body['event']}"
    return f"masters.{body['masterid']}.{body['event']}"


def history(*changes: dict[str, Any], page: int = 1000) -> Handler:
    """A ``getChanges`` handler over a fixed history, returning at most ``page`` a call."""

    def get_changes(params: dict[str, Any]) -> dict[str, Any]:
        after = [c for c in changes if c["revision"] > params["since"]]
        size = min(page, params.get("limit", 100))
        return {"revision": max(c["revision"] for c in changes), "changes": after[:size]}

    return get_changes


def pings(*revisions: tuple[int, str]) -> Handler:
    """A ``ping`` handler answering these (revision, epoch) in turn, the last one forever."""
    answers: Iterator[tuple[int, str]] = iter(revisions)
    last = revisions[-1]

    def ping(_params: dict[str, Any]) -> dict[str, Any]:
        revision, epoch = next(answers, last)
        return {"version": "1.0", "revision": revision, "epoch": epoch, "master_lease": 60.0}

    return ping


class Responder:
    """A scripted stand-in for registryd's RPC server: one handler per method.

    It replies like the daemon (default exchange, ``reply_to``, same ``correlation_id``,
    the protocol's envelopes); a handler raising a :class:`RegistryError` is an error
    reply, a method without a handler is ``unknown_method``, a muted one gets no reply.
    """

    def __init__(self, channel: AbstractChannel, names: Names) -> None:
        self.channel = channel
        self.names = names
        self.handlers: dict[str, Handler] = {"ping": lambda _: PING}
        self.muted: set[str] = set()
        self.requests: list[AbstractIncomingMessage] = []
        self.held: list[AbstractIncomingMessage] = []
        self.hold_until = 0
        self.arrived = asyncio.Event()

    async def start(self) -> None:
        """Consume the RPC queue."""
        queue = await self.channel.get_queue(self.names.rpc)
        await queue.consume(self._serve, no_ack=True)

    def params(self, method: str) -> list[dict[str, Any]]:
        """The params of every request for ``method`` so far, in order."""
        bodies = [json.loads(m.body) for m in self.requests]
        return [b.get("params", {}) for b in bodies if b["method"] == method]

    async def _serve(self, message: AbstractIncomingMessage) -> None:
        self.requests.append(message)
        self.arrived.set()
        if self.hold_until:
            self.held.append(message)
            if len(self.held) == self.hold_until:
                for held in reversed(self.held):  # the opposite of the order they came in
                    await self._reply(held)
            return
        await self._reply(message)

    async def _reply(self, message: AbstractIncomingMessage) -> None:
        request = json.loads(message.body)
        method = request["method"]
        if method in self.muted:
            return
        handler = self.handlers.get(method)
        try:
            if handler is None:
                raise UnknownMethod(f"unknown method {method!r}")
            result = handler(request.get("params", {}))
            # Compact, as registryd writes it (the client's paging reads ids off it).
            body = json.dumps({"ok": True, "result": result}, separators=(",", ":")).encode()
        except RegistryError as exc:
            body = encode_error(exc)
        reply = aio_pika.Message(
            body, content_type="application/json", correlation_id=message.correlation_id
        )
        assert message.reply_to is not None
        # Not mandatory: RabbitMQ 3.10 returns a mandatory publish to a direct reply-to
        # address (basic.return) even though it delivers it.
        await self.channel.default_exchange.publish(
            reply, routing_key=message.reply_to, mandatory=False
        )


@pytest.fixture
def declared(amqp: AbstractConnection, prefix: str) -> Callable[[], Awaitable[Topology]]:
    """Declare the prefix's topology on demand, as registryd does.

    Every queue and exchange of the prefix goes afterwards with the ``amqp`` fixture.
    """

    async def declare_topology() -> Topology:
        return await declare(await amqp.channel(), Names(prefix))

    return declare_topology


@pytest.fixture
async def topology(declared: Callable[[], Awaitable[Topology]]) -> Topology:
    """The prefix's topology, declared as registryd declares it."""
    return await declared()


@pytest.fixture
async def responder(amqp: AbstractConnection, topology: Topology) -> AsyncIterator[Responder]:
    """A scripted RPC server on the test's prefix, stopped before the queue goes."""
    responder = Responder(await amqp.channel(), topology.names)
    await responder.start()
    yield responder
    await responder.channel.close()


@pytest.fixture
async def client(prefix: str) -> AsyncIterator[RegistryClient]:
    """A client on the test's prefix."""
    client = await RegistryClient.connect(AMQP_URL, prefix, timeout=WAIT)
    yield client
    await client.close()


async def notify(amqp: AbstractConnection, names: Names, *bodies: dict[str, Any]) -> None:
    """Publish notification bodies as registryd's relay does, in order."""
    channel = await amqp.channel()
    exchange = await channel.get_exchange(names.notifications)
    for body in bodies:
        message = aio_pika.Message(json.dumps(body).encode(), content_type="application/json")
        await exchange.publish(message, routing_key(body))
    await channel.close()


async def take(subscription: Subscription, count: int) -> list[object]:
    """The next ``count`` items of a subscription, each within the wait limit."""
    return [await asyncio.wait_for(anext(subscription), WAIT) for _ in range(count)]


async def next_event(amqp: AbstractConnection, names: Names) -> AbstractIncomingMessage:
    """The next message in the events queue."""
    queue = await (await amqp.channel()).get_queue(names.events)
    async with queue.iterator() as messages:
        message = await asyncio.wait_for(anext(messages), WAIT)
        await message.ack()
        return message


def revisions(items: list[object]) -> list[int | str]:
    """Each item's revision, or ``resync@<revision>/<epoch>`` for a Resync."""
    out: list[int | str] = []
    for item in items:
        if isinstance(item, Resync):
            out.append(f"resync@{item.revision}/{item.epoch}")
        else:
            assert isinstance(item, WorkerChange | MasterChange)
            out.append(item.revision)
    return out


# -- RPC ------------------------------------------------------------------------------

READS: list[tuple[str, Callable[[RegistryClient], Awaitable[object]], object, object]] = [
    ("ping", lambda c: c.ping(), PING, PingResult.model_validate(PING)),
    ("findWorkerId", lambda c: c.find_worker_id("zero"), 30, 30),
    (
        "getWorker",
        lambda c: c.get_worker(workerid=30),
        WORKER,
        WORKER_ADAPTER.validate_python(WORKER),
    ),
    ("getWorker", lambda c: c.get_worker(name="nobody"), None, None),
    ("getWorkers", lambda c: c.get_workers(), [WORKER], [WORKER_ADAPTER.validate_python(WORKER)]),
    ("getMasters", lambda c: c.get_masters(), [MASTER], [Master.model_validate(MASTER)]),
    (
        "getChanges",
        lambda c: c.get_changes(0),
        {"revision": 1, "changes": [worker_change(1)]},
        ChangesPage.model_validate({"revision": 1, "changes": [worker_change(1)]}),
    ),
]


@pytest.mark.parametrize(("method", "read", "result", "expected"), READS)
async def test_read_results_are_parsed_into_models(
    client: RegistryClient,
    responder: Responder,
    *,
    method: str,
    read: Callable[[RegistryClient], Awaitable[object]],
    result: object,
    expected: object,
) -> None:
    """Each read returns its result as the protocol's model (or None, or an int)."""
    responder.handlers[method] = lambda _: result
    assert expected == await read(client)


WRITES: list[tuple[str, Callable[[RegistryClient], Awaitable[None]], dict[str, Any]]] = [
    (
        "workerConnected",
        lambda c: c.worker_connected(30, 10, {"host": "h1"}, connection="s-1"),
        {"workerid": 30, "masterid": 10, "workerinfo": {"host": "h1"}, "connection": "s-1"},
    ),
    (
        "workerConnected",
        lambda c: c.worker_connected(30, 10, {}),
        {"workerid": 30, "masterid": 10, "workerinfo": {}},
    ),
    (
        "workerDisconnected",
        lambda c: c.worker_disconnected(30, 10),
        {"workerid": 30, "masterid": 10},
    ),
    (
        "workerConfigured",
        lambda c: c.worker_configured(30, 10, (20, 21)),
        {"workerid": 30, "masterid": 10, "builderids": [20, 21]},
    ),
    (
        "deconfigureAllWorkersForMaster",
        lambda c: c.deconfigure_all_workers_for_master(10),
        {"masterid": 10},
    ),
    (
        "set_worker_paused",
        lambda c: c.set_worker_paused(30, paused=True, pause_reason="disk full"),
        {"workerid": 30, "paused": True, "pause_reason": "disk full"},
    ),
    (
        "set_worker_paused",
        lambda c: c.set_worker_paused(30, paused=False),
        {"workerid": 30, "paused": False, "pause_reason": None},
    ),
    (
        "set_worker_graceful",
        lambda c: c.set_worker_graceful(30, graceful=True),
        {"workerid": 30, "graceful": True},
    ),
    ("masterHeartbeat", lambda c: c.master_heartbeat(10), {"masterid": 10}),
    (
        "masterHeartbeat",
        lambda c: c.master_heartbeat(10, name="ci:/srv"),
        {"masterid": 10, "name": "ci:/srv"},
    ),
    ("masterStopped", lambda c: c.master_stopped(10), {"masterid": 10}),
]


@pytest.mark.parametrize(("method", "write", "params"), WRITES)
async def test_writes_send_given_params_only(
    client: RegistryClient,
    responder: Responder,
    *,
    method: str,
    write: Callable[[RegistryClient], Awaitable[None]],
    params: dict[str, Any],
) -> None:
    """Each write sends its method with the given params, None ones left out (but a reason)."""
    responder.handlers[method] = lambda _: None
    await write(client)
    assert [params] == responder.params(method)


async def test_request_carries_the_rpc_properties(
    client: RegistryClient, responder: Responder
) -> None:
    """A request goes to <prefix>.rpc as JSON with direct reply-to, a uuid4 hex id, no params."""
    await client.ping()
    [request] = responder.requests
    assert {"method": "ping"} == json.loads(request.body)
    assert "application/json" == request.content_type
    assert responder.names.rpc == request.routing_key
    assert request.reply_to is not None
    assert request.reply_to.startswith(DIRECT_REPLY_TO)
    assert request.correlation_id is not None
    assert 32 == len(request.correlation_id)
    assert WAIT == request.expiration


#: One class per protocol error code.
ERRORS: list[type[RegistryError]] = RegistryError.__subclasses__()


@pytest.mark.parametrize("error", ERRORS, ids=[e.code for e in ERRORS])
async def test_error_reply_raises_its_typed_error(
    client: RegistryClient, responder: Responder, error: type[RegistryError]
) -> None:
    """An error reply raises the class of its code, with the server's message."""

    def fail(_params: dict[str, Any]) -> None:
        raise error_for_code(error.code, f"{error.code} happened")

    responder.handlers["getWorkers"] = fail
    with pytest.raises(error) as caught:
        await client.get_workers()
    assert error is type(caught.value)
    assert f"{error.code} happened" == caught.value.message


async def test_unknown_error_code_raises_internal(
    client: RegistryClient, responder: Responder
) -> None:
    """An error code the client does not know becomes Internal, message kept."""

    def fail(_params: dict[str, Any]) -> None:
        raise error_for_code("out_of_cheese", "redo from start")

    responder.handlers["ping"] = fail
    with pytest.raises(Internal, match="redo from start"):
        await client.ping()


async def test_unanswered_call_raises_rpc_timeout_promptly(
    client: RegistryClient, responder: Responder
) -> None:
    """Nobody answering raises RpcTimeout at the timeout; the request expires with it."""
    responder.muted.add("ping")
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(1.5):  # promptly: a hung call fails here, not in 10 s
        with pytest.raises(RpcTimeout, match="no reply"):
            await client.call("ping", timeout=0.3)
    assert loop.time() - started >= 0.3  # not before its timeout (a lower bound cannot flake)
    [request] = responder.requests
    assert 0.3 == request.expiration
    assert {} == client._pending


async def test_call_without_rpc_queue_is_unavailable_at_once(prefix: str) -> None:
    """With no <prefix>.rpc queue (registryd never ran) a call fails fast, not by timeout."""
    async with await RegistryClient.connect(AMQP_URL, prefix, timeout=WAIT) as client:
        async with asyncio.timeout(1.0):  # at once: well before the call's own timeout
            with pytest.raises(Unavailable, match="has registryd run") as caught:
                await client.ping()
        assert not isinstance(caught.value, RpcTimeout)


async def test_call_finds_the_rpc_queue_once_registryd_declared_it(
    prefix: str, amqp: AbstractConnection, declared: Callable[[], Awaitable[Topology]]
) -> None:
    """A call that found no queue is no verdict: once the queue exists the next is answered.

    Requests go without publisher confirms, so the client looks for the queue itself
    before its first request on a channel; a miss must not stick.
    """
    async with await RegistryClient.connect(AMQP_URL, prefix, timeout=WAIT) as client:
        with pytest.raises(Unavailable, match="has registryd run"):
            await client.ping()
        topology = await declared()
        responder = Responder(await amqp.channel(), topology.names)
        await responder.start()
        try:
            assert PING["version"] == (await client.ping()).version
            assert PING["version"] == (await client.ping()).version
        finally:
            await responder.channel.close()
        assert 2 == len(responder.requests)


async def test_a_connection_found_closed_on_opening_a_channel_is_lost_and_replaced(
    client: RegistryClient, responder: Responder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiormq's RuntimeError for a connection closed under it is ``unavailable``, then redone.

    The broker node can go before the connection's close callback ran; opening a
    channel then raises a plain RuntimeError. It must reach the caller as
    ``unavailable``, and the next call must connect again.
    """
    first = client.connection

    async def closed(**_: object) -> AbstractChannel:
        raise RuntimeError("<Connection: ...> closed")

    # The first call opens a channel to look for the RPC queue.
    monkeypatch.setattr(first, "channel", closed)
    with pytest.raises(Unavailable, match="connection lost"):
        await client.ping()
    assert PING["version"] == (await client.ping()).version
    assert client.connection is not first


async def test_concurrent_calls_each_get_their_own_reply(
    client: RegistryClient, responder: Responder
) -> None:
    """Replies coming back in reverse order still reach the call that asked."""
    count = 100
    responder.hold_until = count
    responder.handlers["findWorkerId"] = lambda params: int(params["name"][1:]) + 1000
    ids = await asyncio.gather(*(client.find_worker_id(f"w{i}") for i in range(count)))
    assert [i + 1000 for i in range(count)] == ids


def _paging(workers: list[dict[str, Any]], too_large_over: int = 0) -> Handler:
    """A ``getWorkers`` handler paging ``workers`` by ``limit``/``after``, as registryd does."""

    def list_page(params: dict[str, Any]) -> list[dict[str, Any]]:
        limit = params["limit"]
        if too_large_over and limit > too_large_over:
            raise TooLarge("page over the reply limit")
        return [w for w in workers if w["id"] > params.get("after", 0)][:limit]

    return list_page


def _worker(wid: int, info: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**WORKER, "id": wid, "name": f"w{wid}", "workerinfo": info or {}}


async def test_paging_asks_for_the_next_page_while_decoding_this_one(
    client: RegistryClient, responder: Responder
) -> None:
    """Each page is asked for once: the early request for the next one is the one used."""
    workers = [_worker(w) for w in range(3, 60, 2)]  # 29 workers, ids not dense
    responder.handlers["getWorkers"] = _paging(workers)
    listed = await client.get_workers(page_size=10)
    assert [w["id"] for w in workers] == [w.id for w in listed]
    afters = [p.get("after", 0) for p in responder.params("getWorkers")]
    assert [0, 21, 41] == afters  # no page twice, none left over
    assert [w["id"] for w in workers] == [
        w["id"] for w in await client.get_workers_json(page_size=10)
    ]


async def test_paging_sends_the_next_request_before_decoding_this_page(
    client: RegistryClient, responder: Responder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoding holds the loop: the next page's request is written before it starts."""
    responder.handlers["getWorkers"] = _paging([_worker(w) for w in range(1, 31)])
    order: list[tuple[str, int | None]] = []
    real_publish, real_result = aio_pika.Exchange.publish, client_module._result

    async def publish(self: aio_pika.Exchange, message: Any, *args: Any, **kwargs: Any) -> Any:
        request = json.loads(message.body)  # the responder's replies come this way too
        if isinstance(request, dict) and request.get("method") == "getWorkers":
            order.append(("sent", request["params"].get("after", 0)))
        return await real_publish(self, message, *args, **kwargs)

    def result(method: str, body: bytes) -> Any:
        page = real_result(method, body)
        if method == "getWorkers":
            order.append(("decoded", page[0]["id"] if page else None))
        return page

    monkeypatch.setattr(aio_pika.Exchange, "publish", publish)
    monkeypatch.setattr(client_module, "_result", result)
    assert 30 == len(await client.get_workers_json(page_size=10))
    assert [
        ("sent", 0),
        ("sent", 10),
        ("decoded", 1),
        ("sent", 20),
        ("decoded", 11),
        ("sent", 30),
        ("decoded", 21),
        ("decoded", None),
    ] == order


async def test_paging_drops_a_wrong_guess_of_the_next_page(
    client: RegistryClient, responder: Responder
) -> None:
    """A ``workerinfo`` with an ``{"id":`` of its own misleads the guess: asked again, right."""
    workers = [_worker(w) for w in range(1, 26)]
    workers[9] = _worker(10, {"nested": {"id": 999}})  # the last of the first page of 10
    responder.handlers["getWorkers"] = _paging(workers)
    listed = await client.get_workers(page_size=10)
    assert list(range(1, 26)) == [w.id for w in listed]
    # The early request for after=999 is dropped, sent or not; every right page once.
    afters = [p.get("after", 0) for p in responder.params("getWorkers")]
    assert [0, 10, 20] == [a for a in afters if a != 999]
    assert {} == client._pending


async def test_paging_halves_a_page_the_daemon_finds_too_large(
    client: RegistryClient, responder: Responder
) -> None:
    """``too_large`` for a page of 10 asks again for 5, and pages on at 5."""
    workers = [_worker(w) for w in range(1, 13)]
    responder.handlers["getWorkers"] = _paging(workers, too_large_over=5)
    listed = await client.get_workers(page_size=10)
    assert list(range(1, 13)) == [w.id for w in listed]
    assert [10, 5, 5, 5] == [p["limit"] for p in responder.params("getWorkers")]


async def test_bad_params_fail_before_anything_is_sent(
    client: RegistryClient, responder: Responder
) -> None:
    """Params the protocol rejects raise InvalidParams locally; no request goes out."""
    with pytest.raises(InvalidParams, match="masterid"):
        await client.get_workers(masterid=0)
    await client.ping()  # requests arrive in order: had one been sent, it came first
    assert ["ping"] == [json.loads(m.body)["method"] for m in responder.requests]


async def test_close_fails_waiting_calls(client: RegistryClient, responder: Responder) -> None:
    """Closing the client makes a call that still waits raise Unavailable, not hang."""
    responder.muted.add("ping")
    call = asyncio.create_task(client.ping())
    await asyncio.wait_for(responder.arrived.wait(), WAIT)  # the call now waits for a reply
    await client.close()
    with pytest.raises(Unavailable, match="closed"):
        await asyncio.wait_for(call, WAIT)


# -- events ---------------------------------------------------------------------------


async def test_event_is_published_persistent_with_confirm(
    client: RegistryClient, amqp: AbstractConnection, topology: Topology
) -> None:
    """publish_event puts {"type", **fields} in the events queue: key, id, JSON, persistent."""
    fields = {"workerid": 30, "masterid": 10, "workerinfo": {"host": "h1"}}
    await client.publish_event("worker.connected", fields, message_id="m-1")
    message = await next_event(amqp, topology.names)
    assert {"type": "worker.connected", **fields} == json.loads(message.body)
    assert "worker.connected" == message.routing_key
    assert topology.names.events == message.exchange
    assert "m-1" == message.message_id
    assert "application/json" == message.content_type
    assert aio_pika.DeliveryMode.PERSISTENT == message.delivery_mode


async def test_publish_sends_an_operation_as_its_event(
    client: RegistryClient, amqp: AbstractConnection, topology: Topology
) -> None:
    """publish(op) uses the op's event type and its fields, None ones left out."""
    await client.publish(WorkerConfigured(workerid=30, masterid=10, builderids=[20]))
    message = await next_event(amqp, topology.names)
    assert "worker.configured" == message.routing_key
    expected = {"type": "worker.configured", "workerid": 30, "masterid": 10, "builderids": [20]}
    assert expected == json.loads(message.body)


async def test_publish_keeps_a_null_pause_reason(
    client: RegistryClient, amqp: AbstractConnection, topology: Topology
) -> None:
    """A worker.paused event says pause_reason null explicitly: stored as given."""
    await client.publish(SetWorkerPaused(workerid=30, paused=False))
    message = await next_event(amqp, topology.names)
    expected = {"type": "worker.paused", "workerid": 30, "paused": False, "pause_reason": None}
    assert expected == json.loads(message.body)


async def test_publish_refuses_an_operation_without_event(client: RegistryClient) -> None:
    """Reads have no lifecycle event: publish raises ValueError."""
    with pytest.raises(ValueError, match="getWorkers has no lifecycle event"):
        await client.publish(GetWorkers())


async def test_event_without_topology_is_unavailable_then_works(
    client: RegistryClient,
    amqp: AbstractConnection,
    declared: Callable[[], Awaitable[Topology]],
) -> None:
    """A missing events exchange is Unavailable; once it exists the same client publishes."""
    with pytest.raises(Unavailable, match="does not exist"):
        await client.publish_event("master.stopped", {"masterid": 10})
    topology = await declared()
    await client.publish_event("master.stopped", {"masterid": 10}, message_id="m-2")
    assert "m-2" == (await next_event(amqp, topology.names)).message_id


# -- subscriptions --------------------------------------------------------------------


async def test_subscription_drops_a_repeated_revision(
    client: RegistryClient, responder: Responder, amqp: AbstractConnection
) -> None:
    """A notification seen before (at-least-once delivery) is not yielded again."""
    async with client.subscribe() as changes:
        await notify(amqp, responder.names, worker_change(1), worker_change(1), worker_change(2))
        assert [1, 2] == revisions(await take(changes, 2))
        assert 2 == changes.revision


async def test_subscription_fills_a_gap_from_get_changes(
    client: RegistryClient, responder: Responder, amqp: AbstractConnection
) -> None:
    """A jump past last+1 is filled, in order, by paging getChanges from the last revision."""
    past = [worker_change(1), master_change(2), worker_change(3, event="configured")]
    responder.handlers["getChanges"] = history(*past, worker_change(4), page=2)
    async with client.subscribe() as changes:
        await notify(amqp, responder.names, worker_change(1), worker_change(4), worker_change(5))
        items = await take(changes, 5)
    assert [1, 2, 3, 4, 5] == revisions(items)
    assert MasterChange.model_validate(master_change(2)) == items[1]
    assert [{"since": 1, "limit": 1000}, {"since": 3, "limit": 1000}] == responder.params(
        "getChanges"
    )


async def test_subscription_catches_up_from_since(
    client: RegistryClient, responder: Responder, amqp: AbstractConnection
) -> None:
    """With since, the changes after it come first, then the live ones, without repeats."""
    responder.handlers["ping"] = pings((3, "e1"))
    responder.handlers["getChanges"] = history(worker_change(1), worker_change(2), worker_change(3))
    async with client.subscribe(since=1) as changes:
        await notify(amqp, responder.names, worker_change(3), worker_change(4))
        assert [2, 3, 4] == revisions(await take(changes, 3))


async def test_subscription_resyncs_on_resync_required(
    client: RegistryClient, responder: Responder, amqp: AbstractConnection
) -> None:
    """getChanges' resync_required yields a Resync at ping's revision, then goes on from it."""

    def too_old(_params: dict[str, Any]) -> None:
        raise ResyncRequired("changes after revision 5 are no longer retained")

    responder.handlers["ping"] = pings((10, "e1"), (12, "e1"))
    responder.handlers["getChanges"] = too_old
    async with client.subscribe(since=5) as changes:
        await notify(amqp, responder.names, worker_change(12), worker_change(13))
        assert ["resync@12/e1", 13] == revisions(await take(changes, 2))


async def test_subscription_resyncs_on_a_reset_notification(
    client: RegistryClient, responder: Responder, amqp: AbstractConnection
) -> None:
    """A reset (bound even for narrow keys) yields a Resync in the new epoch; a repeat does not."""
    responder.handlers["ping"] = pings((7, "e1"), (2, "e2"))
    reset = {"event": "reset", "epoch": "e2", "revision": 0}
    async with client.subscribe(routing_keys=("workers.#",)) as changes:
        await notify(amqp, responder.names, worker_change(8), reset, reset, worker_change(3))
        assert [8, "resync@2/e2", 3] == revisions(await take(changes, 3))
        assert "e2" == changes.epoch


async def test_narrow_subscription_only_drops_repeats(
    client: RegistryClient, responder: Responder, amqp: AbstractConnection
) -> None:
    """With narrow bindings a revision jump is not a gap: no getChanges, only de-duplication."""
    connected = worker_change(4)
    async with client.subscribe(routing_keys=("workers.*.connected",)) as changes:
        await notify(
            amqp,
            responder.names,
            worker_change(1),
            master_change(2),
            worker_change(3, event="configured"),
            connected,
            connected,
            worker_change(5),
        )
        assert [1, 4, 5] == revisions(await take(changes, 3))
    assert [] == responder.params("getChanges")


async def test_subscription_ends_when_closed(client: RegistryClient, responder: Responder) -> None:
    """Closing a subscription ends an iteration waiting on it, instead of hanging."""
    subscription = client.subscribe()
    await subscription.start()
    waiting = asyncio.create_task(anext(subscription))
    await subscription.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, WAIT)


async def test_subscription_raises_unavailable_when_its_connection_goes(
    client: RegistryClient, responder: Responder
) -> None:
    """A subscription whose connection closes raises Unavailable instead of hanging."""
    async with client.subscribe() as changes:
        waiting = asyncio.create_task(anext(changes))
        await client.close()
        with pytest.raises(Unavailable, match="lost"):
            await asyncio.wait_for(waiting, WAIT)


async def test_subscription_resyncs_when_its_epoch_is_gone(
    client: RegistryClient, responder: Responder
) -> None:
    """Resuming with since and an epoch the registry no longer has starts with a Resync."""
    responder.handlers["ping"] = pings((5, "e2"))
    async with client.subscribe(since=3, epoch="e1") as changes:
        [resync] = await take(changes, 1)
    assert Resync(5, "e2", "epoch_changed") == resync
    assert [] == responder.params("getChanges")


async def test_connect_to_a_closed_port_is_unavailable() -> None:
    """No broker at the URL raises Unavailable naming it, without its password."""
    with pytest.raises(Unavailable, match=r"127\.0\.0\.1:1\b") as caught:
        await RegistryClient.connect("amqp://guest:s3cret@127.0.0.1:1/", timeout=WAIT)
    assert "s3cret" not in caught.value.message


async def test_client_library_passes_authorization(
    settings: Settings, redis: object, amqp: AbstractConnection, prefix: str
) -> None:
    """The client sends its login as user_id, so a mapped master's writes pass, others don't."""
    running = await start_daemon(settings.model_copy(update={"auth_masters": {AMQP_USER: [10]}}))
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
