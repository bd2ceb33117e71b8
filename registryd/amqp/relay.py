"""The relay: publishes the change log to the notifications exchange, in revision order.

A change is committed to the log in the same atomic step as the state change, so the
relay only has to follow the log: publish a batch of entries with publisher confirms
(one write, the confirms awaited together: :mod:`registryd.amqp.batch`), then move the
cursor in Redis (with the next claim, in the same script: one round trip a batch). A
crash between the two publishes again after the restart (at least once). One process at
a time holds the relay role, through a lock in Redis.

Behind a backlog two batches are in flight at most: after a full batch, batch N+1 is
read (after batch N's last revision) and its frames written while batch N's confirms
are still coming back, on the same channel, so the broker receives them in revision
order. A batch that is not full (the relay has caught up) is confirmed before the next
claim: under a steady stream the changes committed meanwhile then go out together,
instead of a claim and a publish for every change or two (at 3,500 events/s: CPU per
event down a sixth, notification latency p99 down a third, in alternating bench runs).
The cursor only ever moves to a batch whose confirms, and all earlier ones', came back:
a nack or a lost channel raises before any later batch is recorded, and everything
after the cursor is published again.
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
        #: Sent, its confirms not awaited yet: what it will record, and the confirms.
        self._in_flight: tuple[Published, list[asyncio.Future[object]]] | None = None
        self._release_task: asyncio.Task[None] | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        """Relay until ``stopping`` is set; a Redis failure is retried, a broker one raises.

        The loop checks ``stopping`` rather than trusting cancellation alone: redis-py can
        lose a ``CancelledError`` that lands inside a command (redis-py #2028). Cancelling
        it does not cut short the release that ends it (:attr:`releasing`).
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
            self._release_task = asyncio.ensure_future(self._release())
            await asyncio.shield(self._release_task)

    @property
    def releasing(self) -> asyncio.Task[None] | None:
        """The release :meth:`run` started as it ended (it may outlive a cancelled run).

        It still uses the broker and Redis: await it before closing them.
        """
        return self._release_task

    def _redis_failed(self, _error: BaseException) -> None:
        self.health.fail("redis")

    async def _release(self) -> None:
        try:
            await self._confirm_in_flight()  # sent before the stop: recorded once confirmed
        except Exception as exc:  # noqa: BLE001 - shutting down: it is published again
            log.warning("last batch unconfirmed; published again by the next relay", error=str(exc))
        try:
            if self._published is not None:  # confirmed, not yet recorded: record it now
                published, self._published = self._published, None
                await self.log_store.advance(published.epoch, published.revision, published.reset)
            await self.log_store.release()
        except Exception as exc:  # noqa: BLE001 - shutting down: log it and carry on
            log.warning("relay role not released; it lapses by itself", error=str(exc))

    async def _step(self) -> None:
        # The last confirmed batch's record rides on this claim (one Redis round trip per
        # batch); what follows is read after the batch still in flight.
        in_flight = self._in_flight[0] if self._in_flight is not None else None
        claim = await self.log_store.claim(_LOCK_MS, self.batch, self._published, in_flight)
        self._published = None
        nothing_behind = not claim.held or claim.pending_reset or not claim.changes
        if nothing_behind and self._in_flight is not None:
            # The batch in flight is confirmed first (recorded by the next claim), so a
            # reset goes out after it, in order, and no confirm waits for new changes.
            await self._confirm_in_flight()
            return
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
        after = in_flight.revision if in_flight and in_flight.epoch == claim.epoch else None
        expected = max(claim.cursor, after or 0) + 1
        if changes[0].revision > expected:
            log.error(
                "relay fell behind the retained change log; notifications lost",
                first_missing=expected,
                next_retained=changes[0].revision,
            )
        await self._publish(claim.epoch, changes)

    async def _publish(self, epoch: str, changes: list[LoggedChange]) -> None:
        # This batch's frames go out behind the previous batch's, then the previous
        # batch's confirms are awaited: a nack or a lost channel raises before the cursor
        # moves past it, so it and this batch are published again.
        sent = await self.publisher.send([(c.routing_key, c.body) for c in changes])
        previous = self._in_flight
        self._in_flight = None
        if previous is not None:
            try:
                await self.publisher.confirmed(previous[1])
            except BaseException:
                _forget(sent)  # published again from the cursor, with the previous batch
                raise
            self._published = previous[0]
            self.metrics.notifications.inc(len(previous[1]))
        self._in_flight = (Published(epoch, revision=changes[-1].revision), sent)
        if len(changes) < self.batch:  # caught up: let the next changes gather meanwhile
            await self._confirm_in_flight()

    async def _confirm_in_flight(self) -> None:
        if self._in_flight is None:
            return
        published, sent = self._in_flight
        self._in_flight = None
        await self.publisher.confirmed(sent)
        self._published = published
        self.metrics.notifications.inc(len(sent))

    async def _publish_reset(self, claim: RelayClaim) -> None:
        body = json.dumps({"event": "reset", "epoch": claim.pending_reset, "revision": 0})
        await self.publisher.publish([(RESET_ROUTING_KEY, body.encode())])
        self._published = Published(claim.epoch, reset=claim.pending_reset)
        log.info("reset notification published", epoch=claim.pending_reset)


def _forget(confirmations: list[asyncio.Future[object]]) -> None:
    """Mark a dropped batch's confirms as seen: their failure is its predecessor's."""
    for confirmation in confirmations:
        confirmation.add_done_callback(_retrieve)


def _retrieve(confirmation: asyncio.Future[object]) -> None:
    if not confirmation.cancelled():
        confirmation.exception()
