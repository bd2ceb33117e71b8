"""Change notifications as an ordered, de-duplicated stream (PROTOCOL.md section 6).

Use it through :meth:`registryd.client.RegistryClient.subscribe`::

    async with client.subscribe() as changes:
        workers = {w.id: w for w in await client.get_workers()}
        async for item in changes:
            if isinstance(item, Resync):
                workers = {w.id: w for w in await client.get_workers()}
            elif isinstance(item, WorkerChange):
                workers[item.workerid] = item.worker
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Final, Literal, Protocol, Self

import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import ChannelNotFoundEntity
from pydantic import TypeAdapter, ValidationError

from registryd.broker import BROKER_ERRORS
from registryd.errors import ResyncRequired, Unavailable
from registryd.models import ChangesPage, MasterChange, PingResult, Reset, WorkerChange
from registryd.protocol import Names, master_routing_key, worker_routing_key

__all__ = [
    "Resync",
    "ResyncReason",
    "Subscription",
    "SubscriptionItem",
    "routing_key_of",
    "topic_matches",
]

log = structlog.get_logger(__name__)

#: Why a :class:`Resync` was yielded.
ResyncReason = Literal["resync_required", "reset", "epoch_changed", "history_ended"]
#: The largest ``getChanges`` page the protocol allows.
PAGE: Final = 1000
#: Notifications RabbitMQ hands over before the application took the earlier ones.
PREFETCH: Final = 256
_NOTIFICATION: Final = TypeAdapter(WorkerChange | MasterChange | Reset)


@dataclass(frozen=True, slots=True)
class Resync:
    """Drop what you hold and reload it (``getWorkers``, ``getMasters``).

    The stream goes on with the changes after ``revision`` (``ping``'s, taken before your
    reload, so nothing falls between). ``epoch`` is the registry's epoch from then on.
    ``reason``: ``resync_required`` (the history no longer reaches back to the last
    revision), ``reset`` (a reset notification of a new epoch), ``epoch_changed`` (the
    ``since``/``epoch`` given to resume from belong to an epoch that is gone, or
    ``since`` is ahead of the registry), ``history_ended`` (the history stops short of a
    notified revision: a reset was missed).
    """

    revision: int
    epoch: str
    reason: ResyncReason


#: What a :class:`Subscription` yields.
SubscriptionItem = WorkerChange | MasterChange | Resync


class _End(Enum):
    """Why the inbox ends: the channel was lost, or :meth:`Subscription.close` was called."""

    LOST = "lost"
    CLOSED = "closed"


def topic_matches(pattern: str, routing_key: str) -> bool:
    """Whether an AMQP topic binding ``pattern`` (``*`` one word, ``#`` any) takes the key."""
    return _match(pattern.split("."), routing_key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    if pattern[0] == "#":
        return _match(pattern[1:], words) or (bool(words) and _match(pattern, words[1:]))
    if not words or pattern[0] not in ("*", words[0]):
        return False
    return _match(pattern[1:], words[1:])


def routing_key_of(change: WorkerChange | MasterChange) -> str:
    """The routing key registryd publishes a change with."""
    if isinstance(change, WorkerChange):
        return worker_routing_key(change.workerid, change.event)
    return master_routing_key(change.masterid, change.event)


class Caller(Protocol):
    """What a subscription needs of a client (:class:`registryd.client.RegistryClient`).

    Its names, its connection, ``ping`` and ``getChanges``.
    """

    @property
    def names(self) -> Names:
        """The RabbitMQ names of the registry."""

    @property
    def connection(self) -> AbstractConnection:
        """The connection the subscription opens its channel on."""

    async def ping(self) -> PingResult:
        """``ping``."""

    async def get_changes(self, since: int, limit: int = 100) -> ChangesPage:
        """``getChanges``."""


class Subscription:
    """The notifications of one registry, in revision order, each revision once.

    It binds an exclusive, auto-deleted, server-named queue to ``<prefix>.notifications``
    with each routing key and always with ``registry.reset``, then:

    - drops a notification whose revision it has already passed (delivery is at least
      once), and remembers the last revision (:attr:`revision`);
    - with ``since``, first yields the changes after it (``getChanges``, pages of up to
      1000); without, starts at the registry's revision when it was opened (``ping``
      right after binding), so load your state after entering the ``async with``;
    - yields a :class:`Resync` on ``resync_required``, on a reset notification of a new
      epoch, or when ``epoch`` (given with ``since``) is no longer the registry's.

    Gaps are detected and filled only when ``routing_keys`` contains ``#`` (the
    default): then every revision reaches the queue, so a jump from ``n`` to ``n + k``
    means ``k - 1`` were lost, and ``getChanges`` yields them first, in order. With
    narrower bindings the revisions in between are other keys' business: the stream only
    de-duplicates (and ``since`` catches up with the changes the bindings would take).

    The channel dies with the connection; iteration then raises
    :class:`~registryd.errors.Unavailable`: subscribe again with ``since=revision``.
    A ``getChanges`` or ``ping`` that fails raises from the iteration too, with nothing
    lost: iterating again retries it.
    """

    def __init__(
        self,
        client: Caller,
        *,
        routing_keys: Sequence[str] = ("#",),
        since: int | None = None,
        epoch: str | None = None,
    ) -> None:
        if isinstance(routing_keys, str):
            raise TypeError("routing_keys is a sequence of binding keys, not one string")
        if since is not None and since < 0:
            raise ValueError(f"since must be a revision >= 0, not {since}")
        if not routing_keys:
            raise ValueError("routing_keys must name at least one binding key")
        self.routing_keys = tuple(routing_keys)
        #: Whether every revision is bound, so that a jump is a gap to fill.
        self.gap_detection = "#" in self.routing_keys
        self._client = client
        self._since = since
        self._epoch = epoch
        self._last = 0
        self._target = 0  # catch up with getChanges until _last reaches this
        self._ready: deque[SubscriptionItem] = deque()
        self._inbox: asyncio.Queue[AbstractIncomingMessage | _End] = asyncio.Queue()
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._started = False
        self._closed = False

    @property
    def revision(self) -> int:
        """The last revision passed: subscribe again with ``since=`` this to resume."""
        return self._last

    @property
    def epoch(self) -> str | None:
        """The registry's epoch as last learned (``None`` before :meth:`start`)."""
        return self._epoch

    @property
    def queue_name(self) -> str | None:
        """The server-named queue's name, once started."""
        return None if self._queue is None else self._queue.name

    async def start(self) -> None:
        """Bind and consume, then learn the revision and epoch; ``async with`` calls it."""
        if self._started:
            return
        self._started = True
        try:
            await self._bind()
            await self._begin()
        except BaseException:
            await self.close()
            raise

    async def _bind(self) -> None:
        """Declare the queue and bind it before anything is read, so nothing falls between."""
        names = self._client.names
        try:
            self._channel = await self._client.connection.channel()
            self._channel.close_callbacks.add(self._on_lost)
            await self._channel.set_qos(prefetch_count=PREFETCH)
            self._queue = await self._channel.declare_queue(exclusive=True, auto_delete=True)
            for key in dict.fromkeys((*self.routing_keys, names.reset_key)):
                await self._queue.bind(names.notifications, key)
            await self._queue.consume(self._inbox.put)
        except ChannelNotFoundEntity:
            raise Unavailable(
                f"exchange {names.notifications} does not exist; has registryd run with "
                f"prefix {names.prefix!r}?"
            ) from None
        except BROKER_ERRORS as exc:
            raise Unavailable(f"cannot subscribe to {names.notifications}: {exc!r}") from exc

    async def _begin(self) -> None:
        """Set the starting revision: now, or ``since`` with the history to catch up."""
        ping = await self._client.ping()
        if self._since is None:
            self._last = self._target = ping.revision
        elif self._epoch not in (None, ping.epoch):
            self._resynced(ping.revision, ping.epoch, "epoch_changed")
        elif self._since > ping.revision:
            # Ahead of the registry: that revision belongs to an epoch that is gone.
            self._resynced(ping.revision, ping.epoch, "epoch_changed")
        else:
            self._last, self._target = self._since, ping.revision
        self._epoch = ping.epoch

    async def close(self) -> None:
        """Stop consuming (iteration ends); the queue goes with its channel."""
        self._started = self._closed = True  # a closed subscription never starts again
        self._inbox.put_nowait(_End.CLOSED)  # wakes an iteration waiting for a message
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            channel.close_callbacks.discard(self._on_lost)
            await channel.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SubscriptionItem:
        """The next change (or :class:`Resync`), in revision order; waits for one."""
        await self.start()
        while not self._ready:
            if self._closed:
                raise StopAsyncIteration
            if self._last < self._target:
                await self._catch_up()
            else:
                await self._receive()
        return self._ready.popleft()

    async def _catch_up(self) -> None:
        """One ``getChanges`` page towards the target."""
        try:
            page = await self._client.get_changes(self._last, limit=PAGE)
        except ResyncRequired:
            await self._resync("resync_required")
            return
        fresh = [change for change in page.changes if change.revision > self._last]
        if not fresh:
            # The history stops short of a revision that was notified: a reset we missed.
            await self._resync("history_ended")
            return
        for change in fresh:
            self._last = change.revision
            if self.gap_detection or self._wanted(change):
                self._ready.append(change)

    async def _receive(self) -> None:
        """Take one notification: yield it, drop it, or start a catch-up or resync."""
        message = await self._inbox.get()
        if self._closed:
            raise StopAsyncIteration
        if isinstance(message, _End):
            self._inbox.put_nowait(message)  # every later call ends the same way
            raise Unavailable(f"the subscription to {self._client.names.notifications} was lost")
        try:
            await message.ack()
        except BROKER_ERRORS as exc:
            raise Unavailable(f"the subscription's channel failed: {exc!r}") from exc
        try:
            item = _NOTIFICATION.validate_json(message.body)
        except ValidationError as exc:
            log.warning("notification dropped: not a protocol notification", error=str(exc))
            return
        if isinstance(item, Reset):
            if item.epoch != self._epoch:  # a repeat of the reset we started after is no news
                await self._resync("reset")
        elif item.revision <= self._last:
            pass  # seen before: delivery is at least once
        elif self.gap_detection and item.revision > self._last + 1:
            self._target = item.revision  # getChanges brings this one too, after the gap
        else:
            self._last = item.revision
            self._ready.append(item)

    async def _resync(self, reason: ResyncReason) -> None:
        ping = await self._client.ping()
        self._resynced(ping.revision, ping.epoch, reason)

    def _resynced(self, revision: int, epoch: str, reason: ResyncReason) -> None:
        """Forget what was queued: the application reloads everything as of ``revision``."""
        log.info("subscriber must resync", reason=reason, revision=revision, epoch=epoch)
        self._ready.clear()
        self._ready.append(Resync(revision, epoch, reason))
        self._last = self._target = revision
        self._epoch = epoch

    def _wanted(self, change: WorkerChange | MasterChange) -> bool:
        key = routing_key_of(change)
        return any(topic_matches(pattern, key) for pattern in self.routing_keys)

    def _on_lost(self, _channel: object, _exc: BaseException | None) -> None:
        self._inbox.put_nowait(_End.LOST)
