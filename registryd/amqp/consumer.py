"""The event consumer: lifecycle events in, applied in queue order, acked after commit.

Messages are taken in batches of whatever is waiting (up to ``events_batch``): the whole
batch goes to Redis in one script run, which applies each event in turn as its own
script would (a refused one does not stop the rest).
Only then are the batch's bad events dead-lettered and the batch acknowledged, with one
``multiple`` ack. A Redis failure holds the batch (nothing acked) and retries it.

Deliveries are taken from aiormq directly: aio-pika's ``IncomingMessage`` decodes every
property of every message, a cost that showed at thousands of events a second; only a
refused event, which is copied to the dead exchange, is wrapped in one.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Mapping, Sequence
from datetime import datetime

import aio_pika
import structlog
from aio_pika.abc import AbstractIncomingMessage
from aiormq.abc import DeliveredMessage

from registryd.amqp.topology import Topology
from registryd.broker import copy_message
from registryd.errors import Internal, RegistryError, Unavailable
from registryd.metrics import Health, Metrics
from registryd.models import Operation, parse_params
from registryd.models.wire import event_model
from registryd.ports import DUPLICATE, Applied
from registryd.protocol import ERROR_HEADER, USER_HEADER, rejected_message
from registryd.registry import authorize
from registryd.retry import forever
from registryd.service import Registry

__all__ = ["EventConsumer", "dead_letter", "dead_letter_message"]

log = structlog.get_logger(__name__)

#: A delivery, its event type (for metrics) and its operation, or why it is refused.
Prepared = tuple[DeliveredMessage, str, Operation | RegistryError]
#: The ``type`` label of a refused event whose body names no known type.
UNKNOWN_TYPE = "unknown"


def dead_letter_message(
    message: AbstractIncomingMessage, error: RegistryError, now: datetime | None = None
) -> aio_pika.Message:
    """The message as it came, plus the error header (``user_id`` moved to a header).

    The protocol adds exactly one header, ``{"code", "message"}``, and keeps every
    property (``timestamp`` included), so the time of rejection ends the message
    (:func:`registryd.protocol.rejected_message`). The original routing key is kept by
    publishing the copy with it (the dead exchange is a fanout, which ignores the key for
    routing but delivers it).
    """
    headers = dict(message.headers or {})
    verdict = {"code": error.code, "message": rejected_message(error.message, now)}
    headers[ERROR_HEADER] = json.dumps(verdict)
    if message.user_id:
        headers[USER_HEADER] = message.user_id
    return copy_message(message, headers)


async def dead_letter(
    topology: Topology, message: AbstractIncomingMessage, error: RegistryError
) -> None:
    """Publish the event to the dead exchange (confirmed) and log why."""
    copy = dead_letter_message(message, error)
    await topology.dead_exchange.publish(copy, routing_key=message.routing_key or "")
    log.warning(
        "event dead-lettered",
        code=error.code,
        reason=error.message,
        message_id=message.message_id,
        routing_key=message.routing_key,
    )


class EventConsumer:
    """Consumes the events queue (single active consumer) and applies each event once."""

    def __init__(
        self,
        registry: Registry,
        topology: Topology,
        metrics: Metrics,
        health: Health,
        *,
        batch: int = 256,
        auth_masters: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        self.registry = registry
        self.topology = topology
        self.metrics = metrics
        self.health = health
        self.batch = batch
        self.auth_masters = auth_masters
        # None is the sentinel :meth:`stop` sends after the last delivery.
        self._inbox: asyncio.Queue[DeliveredMessage | None] = asyncio.Queue()
        self._tag: str | None = None
        self._task: asyncio.Task[None] | None = None
        # Labelled once: a label lookup per event is a visible cost at thousands a second.
        self._applied = metrics.events.labels("applied")
        self._duplicate = metrics.events.labels("duplicate")

    async def start(self) -> None:
        """Start consuming; deliveries arrive in queue order through the inbox."""
        self._task = asyncio.create_task(self._run(), name="event-consumer")
        queue = self.topology.events_queue
        channel = await queue.channel.get_underlay_channel()
        consuming = await channel.basic_consume(queue.name, self._deliver)
        self._tag = consuming.consumer_tag

    async def _deliver(self, message: DeliveredMessage) -> None:
        self._inbox.put_nowait(message)

    async def stop(self) -> None:
        """Stop taking deliveries, then apply and ack what was already delivered."""
        if self._tag is not None:
            channel = await self.topology.events_queue.channel.get_underlay_channel()
            await channel.basic_cancel(self._tag)
            self._tag = None
        if self._task is not None and not self._task.done():
            await self._inbox.put(None)
            await self._task

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The consuming task: it ends after :meth:`stop`, or by failing."""
        return self._task

    async def _run(self) -> None:
        while (first := await self._inbox.get()) is not None:
            batch = [first]
            stop_after = False
            while len(batch) < self.batch and not self._inbox.empty():
                message = self._inbox.get_nowait()
                if message is None:
                    stop_after = True
                    break
                batch.append(message)
            await self._process(batch)
            if stop_after:
                return

    def _prepare(self, message: DeliveredMessage) -> Prepared:
        """Parse and authorize; the type is the protocol's one the body names, if any."""
        try:
            model, fields = event_model(message.body)
        except RegistryError as error:
            return message, UNKNOWN_TYPE, error
        kind = model.event_type or UNKNOWN_TYPE
        try:
            op = parse_params(model, fields)
            authorize(op, message.header.properties.user_id, self.auth_masters)
        except RegistryError as error:
            return message, kind, error
        return message, kind, op

    async def _process(self, batch: list[DeliveredMessage]) -> None:
        prepared = [self._prepare(m) for m in batch]
        writes = [
            (op, m.header.properties.message_id)
            for m, _, op in prepared
            if isinstance(op, Operation)
        ]
        results = iter(await self._apply(writes))
        applied: collections.Counter[str] = collections.Counter()
        for message, kind, parsed in prepared:
            outcome = next(results) if isinstance(parsed, Operation) else parsed
            if isinstance(outcome, RegistryError):
                incoming = aio_pika.IncomingMessage(message, no_ack=False)
                await dead_letter(self.topology, incoming, outcome)
                self._count_refused(kind, outcome.code)
            elif outcome is DUPLICATE:
                self._duplicate.inc()
            else:
                applied[kind] += 1
        self._applied.inc(applied.total())
        for kind, count in applied.items():
            self.metrics.events_applied.labels(kind).inc(count)
        self.metrics.event_batches.observe(len(batch))
        last = batch[-1]
        if last.delivery_tag is None:  # only an empty basic.get has none
            raise Internal("a delivery without a delivery tag")
        # Queued for the connection's writer without waiting for the socket write (an
        # ack has no reply): the next batch is read and applied meanwhile. Its frame
        # still follows this commit, and a lost connection redelivers the batch.
        await last.channel.basic_ack(last.delivery_tag, multiple=True, wait=False)

    def _count_refused(self, kind: str, code: str) -> None:
        self.metrics.events.labels("dead_lettered").inc()
        self.metrics.events_refused.labels(kind, code).inc()
        self.metrics.dead_letters.labels(code).inc()

    async def _apply(
        self, writes: list[tuple[Operation, str | None]]
    ) -> list[Applied | RegistryError]:
        """Apply in one round trip, retrying (with backoff up to 5 s) while Redis fails."""
        if not writes:
            return []
        retrying = forever(
            "redis failed; holding the batch", Unavailable, on_failure=self._redis_failed
        )
        async for attempt in retrying:
            with attempt:
                results = await self.registry.apply_many(writes)
        self.health.recover("redis")
        return results

    def _redis_failed(self, _error: BaseException) -> None:
        self.health.fail("redis")
        self.metrics.backend_errors.labels("redis").inc()
