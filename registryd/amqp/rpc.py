"""The RPC server: requests from ``<prefix>.rpc``, one reply each to ``reply_to``.

Every request taken from the queue that has a ``reply_to`` gets exactly one reply,
errors included, within ``rpc_timeout`` (a slow or lost Redis is ``unavailable``).
Requests run concurrently, up to the channel's prefetch, on their own channel and Redis
connections, so reads never wait behind the event stream.

This is the daemon's hot path, so it speaks aiormq (the AMQP layer under aio-pika)
directly: a delivery is read as it came off the wire (no aio-pika message is built for
it), and the reply's frames and the request's ack are encoded here
(:mod:`registryd.amqp.batch`) and handed to the connection's writer as one buffer: one
socket write per request, and an ack never goes out before its reply. That write is
waited for: a request is done (and a graceful stop may close the connection) only once
its ack is written. Should the connection be lost before, RabbitMQ delivers the request
again, as it does whenever a request is not acked.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import aiormq
import structlog
from aiormq import spec
from aiormq.abc import ChannelFrame

from registryd.amqp.batch import encode_ack, encode_publish, header_frame
from registryd.broker import BROKER_ERRORS
from registryd.errors import Internal, RegistryError, Unavailable
from registryd.metrics import Metrics
from registryd.models.wire import encode_error, parse_request
from registryd.protocol import JSON
from registryd.registry import authorize
from registryd.service import Registry

if TYPE_CHECKING:
    from aiormq.abc import DeliveredMessage
    from prometheus_client.metrics import Counter, Histogram

__all__ = ["RpcServer"]

log = structlog.get_logger(__name__)

#: The method name of a request that named none the protocol knows (for metrics).
_UNPARSED = "?"
_INTERNAL = encode_error(Internal("unexpected failure; see the daemon's log"))


def _delivery_tag(message: DeliveredMessage) -> int:
    delivery = message.delivery
    if not isinstance(delivery, spec.Basic.Deliver) or delivery.delivery_tag is None:
        raise Internal(f"not a consumed delivery: {delivery!r}")  # cannot happen: a bug
    return int(delivery.delivery_tag)


class RpcServer:
    """Serves every operation of the protocol over RabbitMQ."""

    def __init__(
        self,
        registry: Registry,
        channel: aiormq.Channel,
        queue: str,
        metrics: Metrics,
        *,
        timeout: float = 4.5,
        auth_masters: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        self.registry = registry
        self.channel = channel
        self.queue = queue
        self.metrics = metrics
        self.timeout = timeout
        self.auth_masters = auth_masters
        self._tag: str | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = False
        # The metrics' label children, looked up once each (methods and codes are few).
        self._counted: dict[tuple[str, str], Counter] = {}
        self._timed: dict[str, Histogram] = {}

    async def start(self) -> None:
        """Start consuming requests."""
        ok = await self.channel.basic_consume(self.queue, self._on_request)
        self._tag = ok.consumer_tag

    async def stop(self) -> None:
        """Stop taking requests, then let the ones in hand finish and reply.

        The requests in hand are waited for even when the cancel fails (the channel is
        gone), so that none of them still uses Redis once the daemon closes its client;
        a delivery whose task starts after that is not served: it stays unacked and
        returns to the queue when the channel closes.
        """
        try:
            if self._tag is not None:
                tag, self._tag = self._tag, None
                await self.channel.basic_cancel(tag)
        finally:
            while self._in_flight:  # those that started meanwhile too
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            self._stopping = True

    @property
    def in_flight(self) -> list[asyncio.Task[None]]:
        """The tasks of the requests still in hand."""
        return list(self._in_flight)

    def abort(self) -> None:
        """Cancel the requests still in hand (unacked, they return to the queue)."""
        self._stopping = True
        for task in self._in_flight:
            task.cancel()

    async def _on_request(self, message: DeliveredMessage) -> None:
        if self._stopping:
            return
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._serve(message)
        except BROKER_ERRORS as exc:  # the channel is gone: the request returns to the queue
            log.warning("rpc request not acked: the channel closed", error=str(exc))
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _serve(self, message: DeliveredMessage) -> None:
        properties = message.header.properties
        delivery_tag = _delivery_tag(message)
        reply_to = properties.reply_to
        if not reply_to:
            log.warning(
                "rpc request without reply_to dropped", correlation_id=properties.correlation_id
            )
            await self.channel.basic_ack(delivery_tag)
            return
        started = time.perf_counter()
        method, body, code = await self._answer(message.body, properties.user_id)
        self._count(method, code, time.perf_counter() - started)
        try:
            reply = self._reply_frames(body, reply_to, properties.correlation_id, delivery_tag)
        except Exception:
            log.exception("rpc reply could not be published", reply_to=reply_to)
            await self.channel.basic_reject(delivery_tag, requeue=False)
            return
        await self._write(reply)

    def _reply_frames(
        self, body: bytes, reply_to: str, correlation_id: str | None, delivery_tag: int
    ) -> bytes:
        """The reply's frames, ``body`` to ``reply_to`` through the default exchange, then the ack.

        Not mandatory: RabbitMQ returns mandatory publishes to direct reply-to addresses
        even when it delivers them, and a vanished requester is no error.
        """
        number = self.channel.number
        properties = spec.Basic.Properties(
            content_type=JSON, correlation_id=correlation_id, delivery_mode=1
        )
        header = header_frame(number, properties)
        return encode_publish(
            number,
            "",
            reply_to,
            body,
            header=header,
            max_content=self.channel.max_content_size,
            then=encode_ack(number, delivery_tag),
        )

    async def _write(self, payload: bytes) -> None:
        """Queue ``payload`` for the connection's writer; return once it is written."""
        channel = self.channel
        if channel.is_closed:  # RabbitMQ would take a frame on it for a protocol error
            raise aiormq.exceptions.ChannelInvalidStateError("the rpc channel is closed")
        written = channel.create_future()  # failed by aiormq if the channel closes first
        await channel.write_queue.put(
            ChannelFrame(payload=payload, should_close=False, drain_future=written)
        )
        await written

    def _count(self, method: str, code: str, seconds: float) -> None:
        counted = self._counted.get((method, code))
        if counted is None:
            counted = self._counted[method, code] = self.metrics.rpc.labels(method, code)
        counted.inc()
        timed = self._timed.get(method)
        if timed is None:
            timed = self._timed[method] = self.metrics.rpc_seconds.labels(method)
        timed.observe(seconds)

    async def _answer(self, request: bytes, user_id: str | None) -> tuple[str, bytes, str]:
        """The method name (for metrics), the reply body and its result code."""
        method = _UNPARSED
        try:
            op = parse_request(request)
            method = op.method
            authorize(op, user_id, self.auth_masters)
            async with asyncio.timeout(self.timeout):
                body = await self.registry.execute_json(op)
        except RegistryError as error:
            return method, encode_error(error), error.code
        except TimeoutError:
            late = Unavailable(f"no answer from the store within {self.timeout} s")
            return method, encode_error(late), late.code
        except Exception:
            log.exception("rpc request failed", method=method)
            return method, _INTERNAL, "internal"
        return method, body, "ok"
