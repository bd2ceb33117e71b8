"""The registryd-backed ``master.db.workers``: Buildbot 4.3's workers connector API.

Every method has the signature and return type of
``buildbot.db.workers.WorkersConnectorComponent`` and returns a Deferred. Ids are
Buildbot's (the SQL ``workers`` rows, see :mod:`.shadow`); state is registryd's. What
Buildbot's SQL component does silently, this does too: a write naming a worker id
without a row changes nothing, a read of one finds nothing, and builder ids without a
``builder_masters`` row on the master are dropped from ``workerConfigured``.

When registryd is unreachable every call fails within ``call_timeout`` seconds with
:class:`~registryd.buildbot.link.RegistryUnreachable`; the writes are sent again once it
is back (see :mod:`.liveness`).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Coroutine, Iterable
from functools import partial
from typing import Any, TypeVar

from buildbot.db import base
from buildbot.db.workers import WorkerModel, WorkersConnectorComponent
from buildbot.util import identifiers
from twisted.internet import defer

from registryd.models import Worker

from .bridge import Bridge
from .link import RegistryUnreachable
from .liveness import Liveness
from .records import to_model, to_record
from .remote import RemoteWorkers
from .shadow import Shadow

__all__ = ["RegistryWorkersComponent", "Sessions"]

_T = TypeVar("_T")
#: A coroutine for the bridge's loop, made only once it is sure to run there.
Later = Callable[[], Coroutine[Any, Any, _T]]


class Sessions:
    """Connection tokens of worker sessions, handed out in call order.

    Buildbot's data layer passes no connection to ``workerConnected`` and
    ``workerDisconnected``. Within one master a worker's attach and detach alternate
    (``Worker.attached`` refuses a second connection), so the token of the last connect
    names the session that a disconnect ends; registryd then ignores a disconnect that
    arrives after the next session's connect (Buildbot issue #4678).
    """

    def __init__(self) -> None:
        self._run = uuid.uuid4().hex[:12]
        self._counter = itertools.count(1)
        self._open: dict[tuple[int, int], str] = {}

    def open(self, workerid: int, masterid: int) -> str:
        """A fresh token for a new session of ``workerid`` on ``masterid``."""
        token = self._open[workerid, masterid] = f"{self._run}:{next(self._counter)}"
        return token

    def close(self, workerid: int, masterid: int) -> str | None:
        """The token of the session that ends (``None`` if none was opened here)."""
        return self._open.pop((workerid, masterid), None)


class RegistryWorkersComponent(base.DBConnectorComponent):  # type: ignore[misc] # untyped base
    """``master.db.workers`` answered by registryd (install it with :func:`install`)."""

    def __init__(
        self,
        db: Any,  # noqa: ANN401 - Buildbot's DBConnector (untyped)
        *,
        sql: WorkersConnectorComponent,
        bridge: Bridge,
        remote: RemoteWorkers,
        liveness: Liveness,
        call_timeout: float,
    ) -> None:
        super().__init__(db)
        self.shadow = Shadow(sql)
        self.bridge = bridge
        self.remote = remote
        self.liveness = liveness
        self.call_timeout = call_timeout
        self.sessions = Sessions()

    # -- Buildbot's API ----------------------------------------------------------------

    def findWorkerId(self, name: str) -> defer.Deferred[int]:  # noqa: N802 - Buildbot's API name
        """The id of the worker ``name``, created (in SQL and in registryd) when new."""
        assert identifiers.isIdentifier(50, name), name  # as Buildbot's: callers check
        return defer.Deferred.fromCoroutine(self._find(name))

    def deconfigureAllWorkersForMaster(self, masterid: int) -> defer.Deferred[None]:  # noqa: N802 - Buildbot's API name
        """Remove every (builder, master) pair of ``masterid`` from every worker."""
        return self._deferred(self._remote(lambda: self.remote.deconfigure(masterid)))

    def workerConfigured(  # noqa: N802 - Buildbot's API name
        self, workerid: int, masterid: int, builderids: list[int]
    ) -> defer.Deferred[None]:
        """The worker's builders on ``masterid``, replaced."""
        return self._deferred(self._configured(workerid, masterid, builderids))

    def getWorker(  # noqa: N802 - Buildbot's API name
        self,
        workerid: int | None = None,
        name: str | None = None,
        masterid: int | None = None,
        builderid: int | None = None,
    ) -> defer.Deferred[WorkerModel | None]:
        """One worker by id and/or name (both must match), filtered, or ``None``."""
        return self._deferred(self._get_worker(workerid, name, masterid, builderid))

    def getWorkers(  # noqa: N802 - Buildbot's API name
        self,
        _workerid: int | None = None,
        _name: str | None = None,
        masterid: int | None = None,
        builderid: int | None = None,
        paused: bool | None = None,
        graceful: bool | None = None,
    ) -> defer.Deferred[list[WorkerModel]]:
        """The workers matching every given filter, by ascending id."""
        return self._deferred(
            self._get_workers(
                _workerid, _name, masterid, builderid, paused=paused, graceful=graceful
            )
        )

    def workerConnected(  # noqa: N802 - Buildbot's API name
        self, workerid: int, masterid: int, workerinfo: dict[str, Any]
    ) -> defer.Deferred[None]:
        """The worker attached to ``masterid``: a new session, ``workerinfo`` replaced."""
        token = self.sessions.open(workerid, masterid)
        return self._write(
            workerid, lambda n: self.remote.connected(n, masterid, workerinfo, token)
        )

    def workerDisconnected(self, workerid: int, masterid: int) -> defer.Deferred[None]:  # noqa: N802 - Buildbot's API name
        """The worker's session on ``masterid`` ended."""
        token = self.sessions.close(workerid, masterid)
        return self._write(workerid, lambda n: self.remote.disconnected(n, masterid, token))

    def set_worker_paused(
        self, workerid: int, paused: bool, pause_reason: str | None = None
    ) -> defer.Deferred[None]:
        """The paused flag and its reason, stored as given."""
        return self._write(workerid, lambda n: self.remote.paused(n, paused, pause_reason))

    def set_worker_graceful(self, workerid: int, graceful: bool) -> defer.Deferred[None]:
        """The graceful-shutdown flag."""
        return self._write(workerid, lambda n: self.remote.graceful(n, graceful))

    # -- beyond Buildbot's API ---------------------------------------------------------

    def import_from_sql(self, workerids: Iterable[int]) -> defer.Deferred[None]:
        """Make registryd's records of these workers what Buildbot's SQL rows say.

        For rows written straight into SQL (Buildbot's test data; a migration): names,
        info, flags, connections and builder pairs. Info of a worker connected nowhere
        travels through a connect and disconnect on this master's id.
        """
        return self._deferred(self._import(workerids))

    def stop(self) -> defer.Deferred[None]:
        """Stop heartbeats, mark the master stopped in registryd, close the link."""
        return self.bridge.call(self._stop(), self.call_timeout)

    # -- internals ---------------------------------------------------------------------

    @staticmethod
    def _deferred(coro: Coroutine[Any, Any, _T]) -> defer.Deferred[_T]:
        return defer.Deferred.fromCoroutine(coro)

    def _write(
        self, workerid: int, op: Callable[[str], Coroutine[Any, Any, None]]
    ) -> defer.Deferred[None]:
        async def write() -> None:
            name = await self.shadow.name_of(workerid)
            if name is not None:  # SQL semantics: a write to an unknown id changes nothing
                await self._remote(lambda: op(name))

        return self._deferred(write())

    async def _remote(self, later: Later[_T], seconds: float | None = None) -> _T:
        """``later()`` on the bridge's loop, after the start-up barrier, bounded in time."""
        # registryd takes master names of up to 200 characters ("host:/basedir" may be longer).
        masterid, name = self.db.master.masterid, str(self.db.master.name)[:200]
        bound = seconds or self.call_timeout
        try:
            return await self.bridge.call(self._after_barrier(masterid, name, later), bound)
        except TimeoutError:
            raise RegistryUnreachable(
                f"registryd gave no answer within {bound} s ({self.remote.link.where})"
            ) from None

    async def _after_barrier(self, masterid: int | None, name: str, later: Later[_T]) -> _T:
        if masterid is not None:
            await self.liveness.ensure(masterid, name)
        return await later()

    async def _find(self, name: str) -> int:
        # registryd's look-up runs while the SQL row is found or inserted (its commit
        # hides the round trip); the first call waits for the start-up barrier first.
        if self.liveness.masterid is not None:
            self.bridge.loop.call_soon_threadsafe(self.remote.find_ahead, name)
        else:
            await self._remote(lambda: self._find_ahead(name))
        return await self.shadow.find(name)

    async def _find_ahead(self, name: str) -> None:
        self.remote.find_ahead(name)

    async def _configured(self, workerid: int, masterid: int, builderids: list[int]) -> None:
        name = await self.shadow.name_of(workerid)
        if name is None:
            return
        usable = await self.shadow.usable_builderids(masterid, builderids)
        if masterid == self.liveness.masterid and self.remote.has_room:
            # This master's own pairs are kept in its intents: hand them over without
            # waiting (Buildbot configures its workers one by one at start-up), up to a
            # bound; a later read of the worker waits for it. While registryd is down
            # this fails at once.
            self.remote.link.check()
            self.bridge.loop.call_soon_threadsafe(
                self.remote.configured_ahead, name, masterid, usable
            )
            return
        await self._remote(lambda: self.remote.configured(name, masterid, usable))

    async def _get_worker(
        self,
        workerid: int | None,
        name: str | None,
        masterid: int | None,
        builderid: int | None,
    ) -> WorkerModel | None:
        if workerid is None and name is None:
            return None
        found = await self._get_workers(workerid, name, masterid, builderid)
        return found[0] if found else None

    async def _get_workers(
        self,
        workerid: int | None,
        name: str | None,
        masterid: int | None,
        builderid: int | None,
        *,
        paused: bool | None = None,
        graceful: bool | None = None,
    ) -> list[WorkerModel]:
        if workerid is None and name is None:
            records = await self._remote(
                lambda: self.remote.get_workers(masterid, builderid, paused, graceful)
            )
            return await self._models(records)
        if workerid is not None:
            known = await self.shadow.name_of(workerid)
            if known is None or name not in (None, known):
                return []
            name = known
        assert name is not None
        if not identifiers.isIdentifier(50, name):
            return []  # no such row could exist; registryd would refuse the name
        found = name
        record = await self._remote(lambda: self.remote.get_worker(found, masterid, builderid))
        if record is None or paused not in (None, record.paused):
            return []
        if graceful not in (None, record.graceful):
            return []
        return await self._models([record])

    async def _models(self, records: list[Worker]) -> list[WorkerModel]:
        ids = await self.shadow.ids_of(r.name for r in records)
        return sorted((to_model(ids[r.name], r) for r in records), key=lambda m: m.id)

    async def _import(self, workerids: Iterable[int]) -> None:
        wanted = [to_record(model) for model in await self.shadow.sql_state(workerids)]
        placeholder = self.db.master.masterid or 1
        # One connector call's time per hundred workers: an import can be large.
        seconds = self.call_timeout * (1 + len(wanted) // 100)
        await self._remote(partial(self.remote.restore, wanted, placeholder), seconds)

    async def _stop(self) -> None:
        try:
            # Writes handed over without waiting must land before masterStopped.
            await self.remote.settle()
            await self.liveness.stop()
        finally:
            await self.remote.link.close()
