"""The relay: publishes the change log to the notifications exchange, in revision order.

A change is committed to the log in the same atomic step as the state change, so the
relay only has to follow the log: publish a batch of entries with publisher confirms
(one write, the confirms awaited together: :mod:`registryd.amqp.batch`), then move the
cursor in Redis (with the next claim, in the same script: one round trip a batch). A
crash between the two publishes again after the restart (at least once). One process at
a time holds the relay role, through a lock in Redis.
"""

from __future__ import annotations

import asyncio
import json

import structlog

from registryd.amqp.batch import BatchPublisher
from registryd.errors import Unavailable
from registryd.metrics import Health, Metrics
from registryd.ports import LoggedChange, Published, RelayClaim, RelayLog
from registryd.protocol import RESET_ROUTING_KEY
from registryd.retry import forever

__all__ = ["Relay"]

log = structlog.get_logger(__name__)

_LOCK_MS = 10_000


class Relay:
    """Follows the change log and publishes it, at least once, in order."""

    def __init__(
        self,
        log_store: RelayLog,
        publisher: BatchPublisher,
        metrics: Metrics,
        health: Health,
        *,
        batch: int = 500,
    ) -> None:
        self.log_store = log_store
        self.publisher = publisher
        self.metrics = metrics
        self.health = health
        self.batch = batch
        #: Confirmed by the broker, recorded in the log with the next claim (or on exit).
        self._published: Published | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        """Relay until ``stopping`` is set; a Redis failure is retried, a broker one raises.

        The loop checks ``stopping`` rather than trusting cancellation alone: redis-py can
        lose a ``CancelledError`` that lands inside a command (redis-py #2028).
        """
        try:
            while not stopping.is_set():
                async for attempt in forever(
                    "relay paused: redis failed",
                    Unavailable,
                    stop=stopping,
                    on_failure=self._redis_failed,
                ):
                    with attempt:
                        if not stopping.is_set():
                            await self._step()
        finally:
            await asyncio.shield(self._release())

    def _redis_failed(self, _error: BaseException) -> None:
        self.health.fail("redis")

    async def _release(self) -> None:
        try:
            if self._published is not None:  # confirmed, not yet recorded: record it now
                published, self._published = self._published, None
                await self.log_store.advance(published.epoch, published.revision, published.reset)
            await self.log_store.release()
        except Exception as exc:  # noqa: BLE001 - shutting down: log it and carry on
            log.warning("relay role not released; it lapses by itself", error=str(exc))

    async def _step(self) -> None:
        # The last batch's record rides on this claim: one Redis round trip per batch.
        claim = await self.log_store.claim(_LOCK_MS, self.batch, self._published)
        self._published = None
        if not claim.held:
            self.metrics.not_relaying()
            await asyncio.sleep(1.0)
            return
        self.metrics.relayed(claim.cursor)
        if claim.pending_reset:  # before any change of its epoch
            await self._publish_reset(claim)
            return
        changes = claim.changes
        if not changes:
            await self.log_store.wait(claim.cursor, block_ms=1000)
            return
        if changes[0].revision > claim.cursor + 1:
            log.error(
                "relay fell behind the retained change log; notifications lost",
                first_missing=claim.cursor + 1,
                next_retained=changes[0].revision,
            )
        await self._publish(changes)
        self._published = Published(claim.epoch, revision=changes[-1].revision)

    async def _publish(self, changes: list[LoggedChange]) -> None:
        # One write in revision order, then every confirm: a nack or a lost channel
        # raises before the cursor moves, so the batch is published again.
        await self.publisher.publish([(change.routing_key, change.body) for change in changes])
        self.metrics.notifications.inc(len(changes))

    async def _publish_reset(self, claim: RelayClaim) -> None:
        body = json.dumps({"event": "reset", "epoch": claim.pending_reset, "revision": 0})
        await self.publisher.publish([(RESET_ROUTING_KEY, body.encode())])
        self._published = Published(claim.epoch, reset=claim.pending_reset)
        log.info("reset notification published", epoch=claim.pending_reset)
