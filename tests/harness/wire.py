"""An outside program's view of one registry: bare aio-pika on the names of PROTOCOL.md.

Deliberately independent of ``registryd.client``: this is what a program written against
PROTOCOL.md does. The RabbitMQ names are spelled here from section 3 rather than taken
from registryd, so a daemon that got one wrong fails the tests. The one look behind the
wire is :meth:`Wire.settled`, which reads three Redis keys to know when the daemon is idle.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue

from registryd.store import Keys, RedisClient, RedisStore
from tests.harness.services import AMQP_USER, POLL, REDIS_URL, redis_client, wait_for

if TYPE_CHECKING:
    from tests.harness.daemon import RunningDaemon

__all__ = ["PROBE_MASTER", "Json", "Note", "Wire"]

Json = dict[str, Any]
#: A master id no test uses: deconfiguring it changes nothing, so it is the barrier's probe.
PROBE_MASTER = 2_000_000_001
#: Routing keys and correlation ids of the wire's own markers start with this.
_MARK = "test-mark."


@dataclass(frozen=True)
class Note:
    """One notification as delivered."""

    key: str
    body: Json
    message: AbstractIncomingMessage


class Wire:
    """Events, RPC, notifications and dead letters of one prefix, over bare aio-pika."""

    def __init__(self, prefix: str, channel: AbstractChannel, redis: RedisClient) -> None:
        self.prefix = prefix
        self.channel = channel
        self.redis = redis
        self.notes_inbox: asyncio.Queue[Note] = asyncio.Queue()
        self.dead_inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        #: Every reply received, in arrival order (markers left out).
        self.replies: list[AbstractIncomingMessage] = []
        self.reply_queue: AbstractQueue | None = None
        #: The reset notification a fresh registry started with, once taken.
        self.reset: Note | None = None
        #: The in-process daemon serving the prefix, when :func:`serving` started one.
        self.daemon: RunningDaemon | None = None
        self._pending: dict[str, asyncio.Future[AbstractIncomingMessage]] = {}
        self._marks: dict[str, asyncio.Future[None]] = {}
        self._subscribed = False

    # Names (section 3) -------------------------------------------------------------------

    @property
    def events(self) -> str:
        """``<prefix>.events``."""
        return f"{self.prefix}.events"

    @property
    def rpc(self) -> str:
        """``<prefix>.rpc``."""
        return f"{self.prefix}.rpc"

    @property
    def notifications(self) -> str:
        """``<prefix>.notifications``."""
        return f"{self.prefix}.notifications"

    @property
    def dead(self) -> str:
        """``<prefix>.dead``."""
        return f"{self.prefix}.dead"

    # Set-up ------------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        connection: AbstractConnection,
        prefix: str,
        *,
        notes: bool = True,
        redis_url: str = REDIS_URL,
    ) -> Wire:
        """A channel; with ``notes``, a queue bound ``#`` to the notifications exchange.

        The exchange is declared as section 3 says, so a subscriber may bind before the
        daemon first runs and see everything from the reset on.
        """
        wire = cls(prefix, await connection.channel(), redis_client(redis_url))
        if notes:
            exchange = await wire.channel.declare_exchange(
                wire.notifications, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await wire.channel.declare_queue(exclusive=True)
            await queue.bind(exchange, "#")
            await queue.consume(wire._on_note, no_ack=True)
            wire._subscribed = True
        return wire

    async def attach(self, *, dead: bool = True) -> None:
        """Once the daemon has declared its names: a reply queue and (``dead``) the dead queue.

        Leave ``dead`` off where something else (an operator command) reads the dead queue.
        """
        self.reply_queue = await self.channel.declare_queue(exclusive=True)
        await self.reply_queue.consume(self._on_reply, no_ack=True)
        if dead:
            queue = await self.channel.declare_queue(self.dead, passive=True)
            await queue.consume(self.dead_inbox.put, no_ack=True)

    async def await_rpc_queue(self, connection: AbstractConnection, timeout: float = 20) -> None:
        """Wait until a daemon starting elsewhere has declared ``<prefix>.rpc``."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    await self.channel.declare_queue(self.rpc, passive=True)
                except aio_pika.exceptions.ChannelClosed:
                    self.channel = await connection.channel()  # a failed passive declare closes it
                    await asyncio.sleep(POLL)
                else:
                    return

    async def close(self) -> None:
        """Close the channel and the Redis client."""
        await self.channel.close()
        await self.redis.aclose()

    async def _on_note(self, message: AbstractIncomingMessage) -> None:
        key = message.routing_key or ""
        if key in self._marks:
            self._marks.pop(key).set_result(None)
        else:
            self.notes_inbox.put_nowait(Note(key, json.loads(message.body), message))

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        correlation_id = message.correlation_id or ""
        if correlation_id in self._marks:
            self._marks.pop(correlation_id).set_result(None)
            return
        self.replies.append(message)
        future = self._pending.pop(correlation_id, None)
        if future is not None and not future.done():
            future.set_result(message)

    # RPC (section 5) ---------------------------------------------------------------------

    async def submit(self, body: bytes, **props: Any) -> asyncio.Future[AbstractIncomingMessage]:
        """Publish a raw request body (replies to the wire's queue); the future of its reply.

        When this returns, RabbitMQ has confirmed the request: it is in the queue.
        """
        assert self.reply_queue is not None, "attach() first"
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[AbstractIncomingMessage] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        props.setdefault("content_type", "application/json")
        props.setdefault("reply_to", self.reply_queue.name)
        message = aio_pika.Message(body, correlation_id=correlation_id, **props)
        await self.channel.default_exchange.publish(message, routing_key=self.rpc)
        return future

    async def request(
        self, body: bytes, *, timeout: float = 10.0, **props: Any
    ) -> AbstractIncomingMessage:
        """Publish a raw request body; the reply message."""
        return await asyncio.wait_for(await self.submit(body, **props), timeout)

    async def send(self, body: bytes, **props: Any) -> Json:
        """The decoded reply to a raw body."""
        reply: Json = json.loads((await self.request(body, **props)).body)
        return reply

    async def call(self, method: str, params: Json | None = None, **props: Any) -> Json:
        """The decoded reply to one method call (``params`` left out when None)."""
        request: Json = {"method": method}
        if params is not None:
            request["params"] = params
        return await self.send(json.dumps(request).encode(), **props)

    async def ok(self, method: str, params: Json | None = None, **props: Any) -> Any:
        """The result of a call that must succeed."""
        reply = await self.call(method, params, **props)
        assert reply.get("ok") is True, reply
        return reply["result"]

    async def error(self, method: str, params: Json | None = None, **props: Any) -> Json:
        """The error object of a call that must fail."""
        reply = await self.call(method, params, **props)
        assert reply.get("ok") is False, reply
        error: Json = reply["error"]
        return error

    async def code(self, method: str, params: Json | None = None, **props: Any) -> str:
        """The error code of a call that must fail."""
        return str((await self.error(method, params, **props))["code"])

    async def revision(self) -> int:
        """ping's revision."""
        return int((await self.ok("ping"))["revision"])

    async def worker(self, workerid: int) -> Json:
        """getWorker's record of a worker that must exist."""
        worker = await self.ok("getWorker", {"workerid": workerid})
        assert isinstance(worker, dict), f"worker {workerid} is missing"
        return worker

    async def flush_replies(self, timeout: float = 10.0) -> None:
        """Barrier: every reply already sent to the reply queue has been received.

        A marker of our own goes to the reply queue and comes back after whatever the
        queue held before it. Stop the daemon first to prove that no reply comes later.
        """
        assert self.reply_queue is not None, "attach() first"
        mark = self._mark()
        # Taken before publishing: the marker may come back before the confirm does.
        returned = self._marks[mark]
        message = aio_pika.Message(b"{}", correlation_id=mark)
        await self.channel.default_exchange.publish(message, routing_key=self.reply_queue.name)
        await asyncio.wait_for(returned, timeout)

    # Events (section 4) ------------------------------------------------------------------

    async def event(
        self, event: Json | bytes, *, routing_key: str | None = None, **props: Any
    ) -> None:
        """Publish one event as a master does: JSON, persistent, routing key = its type."""
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        if routing_key is None:
            routing_key = str(event.get("type", "x")) if isinstance(event, dict) else "x"
        props.setdefault("content_type", "application/json")
        props.setdefault("delivery_mode", aio_pika.DeliveryMode.PERSISTENT)
        exchange = await self.channel.get_exchange(self.events, ensure=False)
        await exchange.publish(aio_pika.Message(body, **props), routing_key=routing_key)

    async def dead_letters(self, timeout: float = 10.0) -> list[AbstractIncomingMessage]:
        """Barrier and collection: the dead letters of every event published so far.

        A sentinel that is not JSON goes after the others. Events are handled in queue
        order and a batch's dead letters go out in order once the batch is applied, so
        when the sentinel comes back dead-lettered every earlier event has been applied
        or dead-lettered. Needs the dead queue consumed (``attach(dead=True)``).
        """
        sentinel = json.dumps({"sentinel": uuid.uuid4().hex}).encode()
        await self.event(sentinel)
        before: list[AbstractIncomingMessage] = []
        async with asyncio.timeout(timeout):
            while (message := await self.dead_inbox.get()).body != sentinel:
                before.append(message)
        return before

    async def settled(self, timeout: float = 10.0) -> None:
        """Barrier: every event published so far is applied, every committed change published.

        A probe event that changes nothing (deconfiguring :data:`PROBE_MASTER`) goes
        through the events queue with a fresh ``message_id``. Events are applied in queue
        order by the single active consumer, and a ``message_id`` is remembered in the
        same atomic script as its change, so once the probe's marker exists in Redis every
        earlier event is applied. Then the relay's cursor must reach the revision, with no
        reset pending: everything committed is published (and confirmed). Last, when the
        wire subscribes, a marker of our own published to the notifications exchange comes
        back after every notification queued before it.

        The probe is published as the AMQP login user: with authorization on, map that
        user to :data:`PROBE_MASTER`, or the probe is refused and this times out.
        """
        keys = Keys(self.prefix)
        message_id = f"{_MARK}{uuid.uuid4().hex}"
        probe = {"type": "master.deconfigured", "masterid": PROBE_MASTER}
        await self.event(probe, message_id=message_id, user_id=AMQP_USER)

        async def applied() -> bool:
            return bool(await RedisStore(self.redis, keys).remembered([message_id]))

        async def relayed() -> bool:
            revision, cursor, reset = await self.redis.mget(
                keys.revision, keys.relay_cursor, keys.reset
            )
            return reset is None and int(revision or 0) == int(cursor or 0)

        try:
            await wait_for(applied, timeout)
            await wait_for(relayed, timeout)
        except TimeoutError:
            raise AssertionError(
                f"not settled within {timeout} s (probe applied: {await applied()}); with "
                f"authorization on, map {AMQP_USER!r} to {PROBE_MASTER}"
            ) from None
        if self._subscribed:
            await self.flush_notes(timeout)

    async def flush_notes(self, timeout: float = 10.0) -> None:
        """Barrier: every notification already queued for this subscriber has been received.

        A marker of our own goes to the notifications exchange and comes back after
        whatever the queue held before it.
        """
        assert self._subscribed, "open(notes=True) first"
        mark = self._mark()
        # Taken before publishing: the marker may come back before the confirm does.
        returned = self._marks[mark]
        exchange = await self.channel.get_exchange(self.notifications, ensure=False)
        await exchange.publish(aio_pika.Message(b"{}"), routing_key=mark)
        await asyncio.wait_for(returned, timeout)

    def _mark(self) -> str:
        mark = f"{_MARK}{uuid.uuid4().hex}"
        self._marks[mark] = asyncio.get_running_loop().create_future()
        return mark

    # Notifications (section 6) -----------------------------------------------------------

    async def notes(self, count: int, timeout: float = 10.0) -> list[Note]:
        """The next ``count`` notifications."""
        async with asyncio.timeout(timeout):
            return [await self.notes_inbox.get() for _ in range(count)]

    async def keys(self, count: int) -> list[str]:
        """The routing keys of the next ``count`` notifications."""
        return [note.key for note in await self.notes(count)]

    async def quiet(self) -> bool:
        """True when nothing is published beyond what was taken: :meth:`settled`, then look.

        No wait is needed: once settled, every committed change has been published and
        received, and a change not committed yet cannot be the result of a call already
        answered.
        """
        await self.settled()
        return self.notes_inbox.empty()
