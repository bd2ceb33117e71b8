"""An in-memory reference registry, written from PROTOCOL.md sections 1, 2 and 6.

It is the oracle of the model-based test (``tests/integration/test_store_model.py``):
plain Python, no Redis, no Lua, and nothing of ``registryd`` beyond the protocol's
words. Where the protocol is silent it follows README.md, "Decisions where PROTOCOL.md
is silent or ambiguous"; each such choice is marked ``README:`` below, and each choice
the README does not make either is marked ``CHOICE:``.

Writes return what ``RedisStore.apply`` returns: the number of change records they
appended, or :data:`DUPLICATE` for a replayed ``message_id``. Times are given explicitly
in milliseconds since the Unix epoch, so the model and the store share one fake clock.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = [
    "DUPLICATE",
    "Change",
    "RefMaster",
    "RefWorker",
    "ReferenceRegistry",
    "UnknownWorkerError",
    "iso_utc",
]

#: What a write returns when its ``message_id`` was already seen.
DUPLICATE: Final = -1
#: A JSON object as Python decodes it.
Json = dict[str, Any]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_utc(ms: int) -> str:
    """``ms`` since the epoch as ISO-8601 UTC with milliseconds, ending in ``Z``."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _differ(one: Json, other: Json) -> bool:
    """Whether two JSON objects read differently: ``1``, ``1.0`` and ``true`` are three values.

    Python's ``==`` says ``{"a": 1} == {"a": True}``; a client reading the record does not.
    """
    return json.dumps(one, sort_keys=True) != json.dumps(other, sort_keys=True)


class UnknownWorkerError(Exception):
    """A write named a worker id that does not exist (the protocol's ``not_found``)."""


@dataclass
class RefWorker:
    """One worker: the record of section 1 plus the remembered connection per master."""

    id: int
    name: str
    workerinfo: Json = field(default_factory=dict)
    paused: bool = False
    pause_reason: str | None = None
    graceful: bool = False
    connected_to: set[int] = field(default_factory=set)
    #: (masterid, builderid) pairs.
    configured_on: set[tuple[int, int]] = field(default_factory=set)
    #: The connection named by the last connect to each master (``None``: it named none).
    connections: dict[int, str | None] = field(default_factory=dict)

    def record(self) -> Json:
        """The worker record of section 1: lists sorted, pairs by master then builder."""
        return {
            "id": self.id,
            "name": self.name,
            "workerinfo": copy.deepcopy(self.workerinfo),
            "paused": self.paused,
            "pause_reason": self.pause_reason,
            "graceful": self.graceful,
            "connected_to": sorted(self.connected_to),
            "configured_on": [
                {"builderid": b, "masterid": m} for m, b in sorted(self.configured_on)
            ],
        }


@dataclass
class RefMaster:
    """One master as ``getMasters`` lists it, plus its lease end while active."""

    id: int
    name: str | None
    active: bool
    last_seen_ms: int
    lease_end_ms: int | None = None

    def record(self) -> Json:
        """The ``getMasters`` entry: ``{"id", "name", "active", "last_seen"}``."""
        return {
            "id": self.id,
            "name": self.name,
            "active": self.active,
            "last_seen": iso_utc(self.last_seen_ms),
        }


@dataclass(frozen=True)
class Change:
    """One change notification: its routing key and its JSON body."""

    routing_key: str
    body: Json

    @property
    def revision(self) -> int:
        """The revision the change took."""
        revision: int = self.body["revision"]
        return revision


class ReferenceRegistry:
    """The whole registry in plain Python: workers, masters, change log, message ids."""

    def __init__(self, lease_ms: int = 60_000) -> None:
        self.lease_ms = lease_ms
        self.workers: dict[int, RefWorker] = {}
        self.names: dict[str, int] = {}
        self.masters: dict[int, RefMaster] = {}
        self.changes: list[Change] = []
        self.seen_messages: set[str] = set()
        self._last_id = 0

    # Change log -----------------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The current revision: one per change, from 1, without gaps."""
        return len(self.changes)

    def _log_worker(self, worker: RefWorker, event: str, masterid: int | None) -> None:
        body = {
            "revision": self.revision + 1,
            "event": event,
            "workerid": worker.id,
            "masterid": masterid,
            "worker": worker.record(),
        }
        self.changes.append(Change(f"workers.{worker.id}.{event}", body))

    def _log_master(self, master: RefMaster, event: str) -> None:
        body = {
            "revision": self.revision + 1,
            "event": event,
            "masterid": master.id,
            "master": master.record(),
        }
        self.changes.append(Change(f"masters.{master.id}.{event}", body))

    def _write(self, message_id: str | None, apply: Callable[[], None]) -> int:
        """Run one write: a seen ``message_id`` is ignored; a failed write is forgotten."""
        if message_id is not None and message_id in self.seen_messages:
            return DUPLICATE
        before = self.revision
        apply()  # raises UnknownWorkerError before changing anything
        if message_id is not None:
            self.seen_messages.add(message_id)  # README: a no-op write still remembers it
        return self.revision - before

    def _worker(self, workerid: int) -> RefWorker:
        worker = self.workers.get(workerid)
        if worker is None:
            raise UnknownWorkerError(f"no worker with id {workerid}")
        return worker

    # Worker writes (section 2) ----------------------------------------------------------

    def find_worker_id(self, name: str) -> int:
        """``findWorkerId``: the id of ``name``; a new name makes a worker and logs ``new``."""
        if name in self.names:
            return self.names[name]
        self._last_id += 1
        worker = RefWorker(self._last_id, name)
        self.workers[worker.id] = worker
        self.names[name] = worker.id
        self._log_worker(worker, "new", None)
        return worker.id

    def worker_connected(
        self,
        workerid: int,
        masterid: int,
        workerinfo: Json,
        connection: str | None = None,
        message_id: str | None = None,
    ) -> int:
        """``workerConnected``: add the master, replace workerinfo, remember the connection."""

        def apply() -> None:
            worker = self._worker(workerid)
            changed = masterid not in worker.connected_to or _differ(worker.workerinfo, workerinfo)
            worker.connected_to.add(masterid)
            worker.workerinfo = copy.deepcopy(workerinfo)
            # README: a connect without a connection forgets the remembered one.
            worker.connections[masterid] = connection
            if changed:
                self._log_worker(worker, "connected", masterid)

        return self._write(message_id, apply)

    def worker_disconnected(
        self,
        workerid: int,
        masterid: int,
        connection: str | None = None,
        message_id: str | None = None,
    ) -> int:
        """``workerDisconnected``: remove the master unless the disconnect is stale."""

        def apply() -> None:
            worker = self._worker(workerid)
            if masterid not in worker.connected_to:
                return
            remembered = worker.connections.get(masterid)
            if connection is not None and remembered is not None and connection != remembered:
                return  # stale: an old session's late disconnect (Buildbot #4678)
            worker.connected_to.discard(masterid)
            worker.connections.pop(masterid, None)
            self._log_worker(worker, "disconnected", masterid)

        return self._write(message_id, apply)

    def worker_configured(
        self,
        workerid: int,
        masterid: int,
        builderids: list[int],
        message_id: str | None = None,
    ) -> int:
        """``workerConfigured``: replace this worker's pairs on this master only."""

        def apply() -> None:
            worker = self._worker(workerid)
            others = {(m, b) for m, b in worker.configured_on if m != masterid}
            pairs = others | {(masterid, b) for b in builderids}
            if pairs != worker.configured_on:
                worker.configured_on = pairs
                self._log_worker(worker, "configured", masterid)

        return self._write(message_id, apply)

    def deconfigure_all_workers_for_master(
        self, masterid: int, message_id: str | None = None
    ) -> int:
        """``deconfigureAllWorkersForMaster``: drop that master's pairs from every worker."""

        def apply() -> None:
            for worker in self._by_id():  # CHOICE: ascending worker id, as in a stop
                pairs = {(m, b) for m, b in worker.configured_on if m != masterid}
                if pairs != worker.configured_on:
                    worker.configured_on = pairs
                    self._log_worker(worker, "configured", masterid)

        return self._write(message_id, apply)

    def set_worker_paused(
        self,
        workerid: int,
        paused: bool,
        pause_reason: str | None = None,
        message_id: str | None = None,
    ) -> int:
        """``set_worker_paused``: store ``paused`` and ``pause_reason`` exactly as given."""

        def apply() -> None:
            worker = self._worker(workerid)
            if (worker.paused, worker.pause_reason) != (paused, pause_reason):
                worker.paused, worker.pause_reason = paused, pause_reason
                self._log_worker(worker, "state_updated", None)

        return self._write(message_id, apply)

    def set_worker_graceful(
        self, workerid: int, graceful: bool, message_id: str | None = None
    ) -> int:
        """``set_worker_graceful``: store the flag, independent of ``paused``."""

        def apply() -> None:
            worker = self._worker(workerid)
            if worker.graceful != graceful:
                worker.graceful = graceful
                self._log_worker(worker, "state_updated", None)

        return self._write(message_id, apply)

    # Masters (section 2, "Masters: liveness") ---------------------------------------------

    def master_heartbeat(
        self, masterid: int, name: str | None, now_ms: int, message_id: str | None = None
    ) -> int:
        """``masterHeartbeat``: active until now + lease; ``active`` when that is news."""

        def apply() -> None:
            master = self.masters.get(masterid)
            # README: a rename publishes `active`; a heartbeat without a name keeps the name.
            news = master is None or not master.active or name not in (None, master.name)
            if master is None:
                master = RefMaster(masterid, name, active=True, last_seen_ms=now_ms)
                self.masters[masterid] = master
            master.active = True
            master.name = master.name if name is None else name
            master.last_seen_ms = now_ms
            master.lease_end_ms = now_ms + self.lease_ms
            if news:  # a heartbeat that only refreshes the lease publishes nothing
                self._log_master(master, "active")

        return self._write(message_id, apply)

    def master_stopped(self, masterid: int, now_ms: int, message_id: str | None = None) -> int:
        """``masterStopped``: drop the master from every worker, list it inactive."""

        def apply() -> None:
            dropped = self._drop_master(masterid)
            master = self.masters.get(masterid)
            if master is None:  # README: a stop of an unseen master lists it, inactive
                master = RefMaster(masterid, None, active=False, last_seen_ms=now_ms)
                self.masters[masterid] = master
                self._log_master(master, "stopped")
                return
            # README: a second stop that changes no worker publishes nothing.
            if not master.active and not dropped:
                return
            # CHOICE: a stop that changes anything is when the master was last seen; a
            # stop that changes nothing changes last_seen neither.
            master.active, master.lease_end_ms, master.last_seen_ms = False, None, now_ms
            self._log_master(master, "stopped")

        return self._write(message_id, apply)

    def expire_masters(self, now_ms: int) -> list[int]:
        """Expire every active master whose lease ended strictly before ``now_ms``."""
        due = sorted(  # CHOICE: in order of lease end, then id
            (m.lease_end_ms, m.id)
            for m in self.masters.values()
            if m.active and m.lease_end_ms is not None and m.lease_end_ms < now_ms
        )
        for _, masterid in due:
            master = self.masters[masterid]
            self._drop_master(masterid)
            # README: last_seen stays at the last heartbeat.
            master.active, master.lease_end_ms = False, None
            self._log_master(master, "expired")
        return [masterid for _, masterid in due]

    def _drop_master(self, masterid: int) -> int:
        """Remove a master from every worker, logging each worker in ascending id (README)."""
        dropped = 0
        for worker in self._by_id():
            connected = masterid in worker.connected_to
            pairs = {(m, b) for m, b in worker.configured_on if m != masterid}
            if not connected and pairs == worker.configured_on:
                continue
            worker.connected_to.discard(masterid)
            worker.connections.pop(masterid, None)
            worker.configured_on = pairs
            self._log_worker(worker, "disconnected" if connected else "configured", masterid)
            dropped += 1
        return dropped

    # Reads -------------------------------------------------------------------------------

    def _by_id(self) -> list[RefWorker]:
        return [self.workers[i] for i in sorted(self.workers)]

    @staticmethod
    def _listed(
        worker: RefWorker,
        masterid: int | None,
        builderid: int | None,
        paused: bool | None = None,
        graceful: bool | None = None,
    ) -> Json | None:
        """The record as a read with these filters lists it, or ``None``."""
        if paused is not None and worker.paused != paused:
            return None
        if graceful is not None and worker.graceful != graceful:
            return None
        record = worker.record()
        if masterid is None and builderid is None:
            return record
        pairs = [
            pair
            for pair in record["configured_on"]
            if masterid in (None, pair["masterid"]) and builderid in (None, pair["builderid"])
        ]
        if not pairs:
            return None  # being connected alone does not list a worker
        record["configured_on"] = pairs
        if masterid is not None:
            record["connected_to"] = [m for m in record["connected_to"] if m == masterid]
        return record

    def get_workers(
        self,
        masterid: int | None = None,
        builderid: int | None = None,
        paused: bool | None = None,
        graceful: bool | None = None,
    ) -> list[Json]:
        """``getWorkers``: the listed workers, cut down by the filters, by ascending id."""
        listed = (self._listed(w, masterid, builderid, paused, graceful) for w in self._by_id())
        return [record for record in listed if record is not None]

    def get_worker(
        self,
        workerid: int | None = None,
        name: str | None = None,
        masterid: int | None = None,
        builderid: int | None = None,
    ) -> Json | None:
        """``getWorker``: by id and/or name (both must match), then the pair filters."""
        if workerid is None and name is None:
            return None
        if workerid is None:
            workerid = self.names.get(name) if name is not None else None
        worker = None if workerid is None else self.workers.get(workerid)
        if worker is None or name not in (None, worker.name):
            return None
        return self._listed(worker, masterid, builderid)

    def get_masters(self) -> list[Json]:
        """``getMasters``: every master that sent a heartbeat or was stopped, by id."""
        return [self.masters[i].record() for i in sorted(self.masters)]

    def get_changes(self, since: int, limit: int = 100) -> Json:
        """``getChanges``: the bodies after revision ``since``, at most ``limit``."""
        bodies = [copy.deepcopy(c.body) for c in self.changes[since : since + limit]]
        return {"revision": self.revision, "changes": bodies}
