"""The RPC server: requests from ``<prefix>.rpc``, one reply each to ``reply_to``.

Every request taken from the queue that has a ``reply_to`` gets exactly one reply,
errors included, within ``rpc_timeout`` (a slow or lost Redis is ``unavailable``).
Requests run concurrently, up to the channel's prefetch, on their own channel and Redis
connections, so reads never wait behind the event stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

import aio_pika
import structlog
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractQueue

from registryd.errors import Internal, RegistryError, Unavailable
from registryd.metrics import Metrics
from registryd.models.wire import encode_error, parse_request
from registryd.protocol import JSON
from registryd.registry import authorize
from registryd.service import Registry

__all__ = ["RpcServer"]

log = structlog.get_logger(__name__)


class RpcServer:
    """Serves every operation of the protocol over RabbitMQ."""

    def __init__(
        self,
        registry: Registry,
        queue: AbstractQueue,
        replies: AbstractExchange,
        metrics: Metrics,
        *,
        timeout: float = 4.5,
        auth_masters: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        self.registry = registry
        self.queue = queue
        self.replies = replies
        self.metrics = metrics
        self.timeout = timeout
        self.auth_masters = auth_masters
        self._tag: str | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start consuming requests."""
        self._tag = await self.queue.consume(self._on_request)

    async def stop(self) -> None:
        """Stop taking requests, then let the ones in hand finish and reply."""
        if self._tag is not None:
            await self.queue.cancel(self._tag)
            self._tag = None
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def _on_request(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._serve(message)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _serve(self, message: AbstractIncomingMessage) -> None:
        if not message.reply_to:
            log.warning(
                "rpc request without reply_to dropped", correlation_id=message.correlation_id
            )
            await message.ack()
            return
        started = time.perf_counter()
        method, body, code = await self._answer(message)
        self.metrics.rpc.labels(method, code).inc()
        self.metrics.rpc_seconds.labels(method).observe(time.perf_counter() - started)
        reply = aio_pika.Message(body, content_type=JSON, correlation_id=message.correlation_id)
        try:
            # Not mandatory: RabbitMQ returns mandatory publishes to direct reply-to
            # addresses even when it delivers them, and a vanished requester is no error.
            await self.replies.publish(reply, routing_key=message.reply_to, mandatory=False)
        except Exception:
            log.exception("rpc reply could not be published", reply_to=message.reply_to)
            await message.reject(requeue=False)
            return
        await message.ack()

    async def _answer(self, message: AbstractIncomingMessage) -> tuple[str, bytes, str]:
        """The method name (for metrics), the reply body and its result code."""
        method = "?"
        try:
            op = parse_request(message.body)
            method = op.method
            authorize(op, message.user_id, self.auth_masters)
            async with asyncio.timeout(self.timeout):
                body = await self.registry.execute_json(op)
        except RegistryError as error:
            return method, encode_error(error), error.code
        except TimeoutError:
            late = Unavailable(f"no answer from the store within {self.timeout} s")
            return method, encode_error(late), late.code
        except Exception:
            log.exception("rpc request failed", method=method)
            return (
                method,
                encode_error(Internal("unexpected failure; see the daemon's log")),
                "internal",
            )
        return method, body, "ok"
