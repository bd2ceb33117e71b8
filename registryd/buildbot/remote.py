"""The registry's side of the component: worker operations by name, on the bridge's loop.

Buildbot names workers by the ids of its SQL ``workers`` table; registryd by its own ids.
Names are the same on both sides, so everything here takes names and keeps the
registry's ids in a cache (dropped after a registry reset, and for one name when
registryd says ``not_found``).

Writes of one worker are applied one at a time, in the order they were called (an
``asyncio.Lock`` per name, taken as the first step of each operation: FIFO). Each write
first records what this master wants (its :class:`Intent`: builders and session on this
master, pause and graceful flags), so that what failed while registryd was unreachable,
or was lost when the master's lease ran out, can be sent again (:meth:`resend`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from registryd.client import RegistryClient
from registryd.errors import NotFound, RegistryError
from registryd.models import Worker

from . import records
from .link import Link
from .records import Send

__all__ = ["Intent", "RemoteWorkers", "Session"]

#: Workers re-sent at once after an outage: enough to hide round trips, few enough
#: not to swamp registryd's RPC concurrency.
_RESEND_CONCURRENCY: Final = 16
#: Workers imported at once: registryd serves 64 requests at a time by default.
_IMPORT_CONCURRENCY: Final = 48
#: Writes handed over without waiting, at most, at any time.
_AHEAD_LIMIT: Final = 32
#: Seconds a record read ahead may serve the next read (a moment-old snapshot).
_FRESH_SECONDS: Final = 5.0


@dataclass(frozen=True, slots=True)
class Session:
    """A worker's live session on this master."""

    workerinfo: dict[str, Any]
    token: str


@dataclass(slots=True)
class Intent:
    """What this master last asked of registryd for one worker."""

    builderids: list[int] | None = None
    session: Session | None = None
    last_token: str | None = None
    paused: tuple[bool, str | None] | None = None
    graceful: bool | None = None
    #: Fields whose last send failed or is under way (``configured``, ``session``,
    #: ``paused``, ``graceful``).
    unsent: set[str] = field(default_factory=set)


class RemoteWorkers:
    """Worker operations against registryd by name, with the master's intents kept."""

    def __init__(self, link: Link) -> None:
        self.link = link
        #: This master's id once the start-up barrier ran (intents are kept for it only).
        self.own: int | None = None
        self.intents: dict[str, Intent] = {}
        self._ids: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._ahead: set[asyncio.Task[None]] = set()
        #: Records read ahead by :meth:`find_ahead`, each for the next plain read.
        self._fresh: dict[str, tuple[Worker, float]] = {}

    # -- reads -------------------------------------------------------------------------

    async def get_workers(
        self,
        masterid: int | None = None,
        builderid: int | None = None,
        paused: bool | None = None,
        graceful: bool | None = None,
    ) -> list[Worker]:
        """``getWorkers`` with these filters (after the writes still under way)."""
        await self.settle()
        return await self.link.run(
            lambda c: c.get_workers(
                masterid=masterid, builderid=builderid, paused=paused, graceful=graceful
            )
        )

    async def get_worker(
        self, name: str, masterid: int | None = None, builderid: int | None = None
    ) -> Worker | None:
        """``getWorker`` by name with these filters (after that worker's earlier writes)."""
        async with self._lock(name):
            fresh = self._fresh.pop(name, None)
            if fresh is not None and (masterid, builderid) == (None, None):
                record, read_at = fresh
                if time.monotonic() - read_at < _FRESH_SECONDS:
                    return record
            return await self._read(name, masterid, builderid)

    async def _read(
        self, name: str, masterid: int | None = None, builderid: int | None = None
    ) -> Worker | None:
        return await self.link.run(
            lambda c: c.get_worker(name=name, masterid=masterid, builderid=builderid)
        )

    # -- writes ------------------------------------------------------------------------

    async def find(self, name: str) -> int:
        """The registry's id of ``name``, created there when new (cached)."""
        known = self._ids.get(name)
        if known is None:
            known = self._ids[name] = await self.link.run(lambda c: c.find_worker_id(name))
        return known

    def find_ahead(self, name: str) -> None:
        """Look ``name`` up (creating it) and read its record, without waiting for it.

        ``findWorkerId`` answers with the SQL id; the registry's id is only needed by the
        worker's next operation, and its record by the read Buildbot makes next
        (``Worker.startService`` reads paused and info): both come from one round trip
        (a look-up and a read in parallel), and start-up does not wait for it. A failure
        is left to the next operation (which looks the id up again).
        """

        async def find() -> None:
            async with self._lock(name):
                with contextlib.suppress(RegistryError):
                    await self._find_and_read(name)

        self._ahead_task(find())

    def configured_ahead(self, name: str, masterid: int, builderids: list[int]) -> None:
        """:meth:`configured` without waiting for it (this master's own pairs only).

        It is done before any later operation on ``name`` and any later listing; a
        failure is logged, stays in the intent and is sent again once registryd answers.
        """

        async def configure() -> None:
            try:
                await self.configured(name, masterid, builderids)
            except RegistryError as exc:
                self.link.log(f"workerConfigured of {name!r} is sent again later: {exc}")

        self._ahead_task(configure())

    @property
    def has_room(self) -> bool:
        """Whether another write may be handed over without waiting (read from any thread).

        Bounded so that a burst (a thousand workers configured at start-up) cannot queue
        more requests at registryd than it answers within a call's timeout.
        """
        return len(self._ahead) < _AHEAD_LIMIT

    async def settle(self) -> None:
        """Wait until what :meth:`find_ahead` and :meth:`configured_ahead` started is done."""
        while self._ahead:
            await asyncio.gather(*self._ahead, return_exceptions=True)

    def _ahead_task(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._ahead.add(task)
        task.add_done_callback(self._ahead.discard)

    async def _find_and_read(self, name: str) -> None:
        cached = self._ids.get(name)
        if cached is None:
            record, found = await asyncio.gather(
                self._read(name), self.link.run(lambda c: c.find_worker_id(name))
            )
            workerid = self._ids[name] = found
        else:
            record, workerid = await self._read(name), cached
        self._fresh[name] = (record or records.blank(name, workerid), time.monotonic())

    async def configured(self, name: str, masterid: int, builderids: list[int]) -> None:
        """``workerConfigured``."""

        def record(intent: Intent) -> None:
            intent.builderids = list(builderids)

        await self._write(
            name, masterid, "configured", record, records.configured(masterid, builderids)
        )

    async def connected(
        self, name: str, masterid: int, workerinfo: dict[str, Any], token: str
    ) -> None:
        """``workerConnected`` for the session ``token``."""

        def record(intent: Intent) -> None:
            intent.session, intent.last_token = Session(workerinfo, token), token

        await self._write(
            name, masterid, "session", record, records.connected(masterid, workerinfo, token)
        )

    async def disconnected(self, name: str, masterid: int, token: str | None) -> None:
        """``workerDisconnected`` of the session ``token`` (``None``: whatever session)."""

        def record(intent: Intent) -> None:
            intent.session, intent.last_token = None, token

        await self._write(name, masterid, "session", record, records.disconnected(masterid, token))

    async def paused(self, name: str, paused: bool, reason: str | None) -> None:
        """``set_worker_paused``."""

        def record(intent: Intent) -> None:
            intent.paused = (paused, reason)

        async def send(c: RegistryClient, rid: int) -> None:
            await c.set_worker_paused(rid, paused, reason)

        await self._write(name, self.own, "paused", record, send)

    async def graceful(self, name: str, graceful: bool) -> None:
        """``set_worker_graceful``."""

        def record(intent: Intent) -> None:
            intent.graceful = graceful

        async def send(c: RegistryClient, rid: int) -> None:
            await c.set_worker_graceful(rid, graceful)

        await self._write(name, self.own, "graceful", record, send)

    async def deconfigure(self, masterid: int) -> None:
        """``deconfigureAllWorkersForMaster``; this master's intents lose their builders.

        Writes handed over earlier land first, so none of them re-adds a pair after it.
        """
        await self.settle()
        self._fresh.clear()
        if masterid == self.own:
            for intent in self.intents.values():
                intent.builderids = []
                intent.unsent.add("configured")
        await self.link.run(lambda c: c.deconfigure_all_workers_for_master(masterid))
        if masterid == self.own:
            for intent in self.intents.values():
                intent.unsent.discard("configured")

    async def restore(self, wanted: list[Worker], placeholder: int) -> None:
        """Make registryd's records of these workers equal ``wanted`` (by name).

        For SQL rows that Buildbot's own component wrote, while nothing else writes
        those workers (their records are read once, in one listing). registryd sets
        ``workerinfo`` only on a connect; a worker connected nowhere gets its info
        through a connect and disconnect on ``placeholder``.
        """
        have = {worker.name: worker for worker in await self.get_workers()}
        limit = asyncio.Semaphore(_IMPORT_CONCURRENCY)

        async def one(want: Worker) -> None:
            async with limit, self._lock(want.name):
                now = have.get(want.name) or records.blank(want.name)
                for step in records.restore_steps(now, want, placeholder):
                    await self._send(want.name, step)

        await asyncio.gather(*(one(want) for want in wanted))

    # -- re-sending --------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """Whether some intent failed to reach registryd and waits to be sent again."""
        return any(intent.unsent for intent in self.intents.values())

    def forget_ids(self) -> None:
        """Drop every cached registry id (the registry was reset: ids start again)."""
        self._ids.clear()

    async def resend(self, *, everything: bool, flags: bool) -> int:
        """Send this master's intents again; return how many workers still failed.

        ``everything``: every builder list and session on this master (its lease may
        have run out), else only what failed; ``flags``: the pause and graceful flags
        too (the registry was reset), else only the ones that failed.
        """
        limit = asyncio.Semaphore(_RESEND_CONCURRENCY)

        async def one(name: str) -> None:
            async with limit, self._lock(name):
                for step in self._resend_steps(self.intents[name], everything, flags):
                    await self._send(name, step)

        results = await asyncio.gather(
            *(one(n) for n in list(self.intents)), return_exceptions=True
        )
        return sum(1 for r in results if isinstance(r, BaseException))

    def _resend_steps(self, intent: Intent, everything: bool, flags: bool) -> Iterable[Send]:
        own = self.own
        if own is None:
            return
        # Marked first: a step that fails leaves them for the next beat.
        if everything and intent.builderids is not None:
            intent.unsent.add("configured")
        if everything and intent.session is not None:
            intent.unsent.add("session")
        if flags:
            intent.unsent.update(("paused", "graceful"))
        if intent.builderids is not None and "configured" in intent.unsent:
            yield records.configured(own, intent.builderids)
        if intent.session is not None and "session" in intent.unsent:
            yield records.connected(own, intent.session.workerinfo, intent.session.token)
        elif intent.session is None and "session" in intent.unsent:
            yield records.disconnected(own, intent.last_token)
        if intent.paused is not None and "paused" in intent.unsent:
            paused, reason = intent.paused
            yield lambda c, rid: c.set_worker_paused(rid, paused, reason)
        if intent.graceful is not None and "graceful" in intent.unsent:
            graceful = intent.graceful
            yield lambda c, rid: c.set_worker_graceful(rid, graceful)
        intent.unsent.clear()

    # -- plumbing ----------------------------------------------------------------------

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    async def _write(
        self,
        name: str,
        masterid: int | None,
        what: str,
        record: Callable[[Intent], None],
        send: Send,
    ) -> None:
        """Record the intent (this master's writes only), then send it, in call order."""
        async with self._lock(name):
            intent = self.intents.setdefault(name, Intent()) if masterid == self.own else None
            if intent is not None:
                record(intent)
                intent.unsent.add(what)
            await self._send(name, send)
            if intent is not None:
                intent.unsent.discard(what)

    async def _send(self, name: str, send: Send) -> None:
        """``send`` with the registry's id; a stale cached id is looked up once more."""
        self._fresh.pop(name, None)
        rid = await self.find(name)
        try:
            await self.link.run(lambda c: send(c, rid))
        except NotFound:
            self._ids.pop(name, None)
            fresh = await self.find(name)
            await self.link.run(lambda c: send(c, fresh))
