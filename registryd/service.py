"""One entry point per operation, shared by the event consumer and the RPC server.

This is where a parsed operation meets the store: reads are filtered here with the
pure rules of :mod:`registryd.registry`, writes go to the store as one atomic step each.
Reads have two faces: typed models for Python callers (:meth:`Registry.execute`) and
the reply's JSON for the wire (:meth:`Registry.execute_json`); a listing's documents
come from the store already filtered, cut down and joined, and go out as they came. The store is any
:class:`registryd.ports.Store`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

import structlog
from pydantic import BaseModel, TypeAdapter

from registryd import __version__
from registryd.errors import EpochMissing, RegistryError, TooLarge
from registryd.models import (
    WORKER_ADAPTER,
    FindWorkerId,
    GetChanges,
    GetMasters,
    GetWorker,
    GetWorkers,
    Operation,
    Ping,
    PingResult,
    Worker,
)
from registryd.models.wire import encode_result
from registryd.ports import Applied, Store
from registryd.registry import WorkerFilter
from registryd.registry.filters import WorkerRecord

__all__ = ["DEFAULT_MAX_REPLY", "Registry", "Result"]

log = structlog.get_logger(__name__)

#: What an operation returns: a model or worker, a list of them, an id, or nothing.
Result = BaseModel | Worker | Sequence[BaseModel | Worker] | int | None
#: The default reply limit (``REGISTRYD_RPC_MAX_REPLY``): below RabbitMQ's 16 MiB.
DEFAULT_MAX_REPLY: Final = 8 * 1024 * 1024

_WORKERS = TypeAdapter(list[Worker])
_OK_LIST: Final = b'{"ok":true,"result":['
_END_LIST: Final = b"]}"
_OK_ONE: Final = b'{"ok":true,"result":'
_OK_NONE: Final = b'{"ok":true,"result":null}'


def _where(op: GetWorkers) -> WorkerFilter:
    return WorkerFilter(op.masterid, op.builderid, op.paused, op.graceful)


class Registry:
    """The registry's operations over one store."""

    def __init__(
        self, store: Store, *, master_lease: float = 60.0, max_reply: int = DEFAULT_MAX_REPLY
    ) -> None:
        self.store = store
        self.master_lease = master_lease
        self.max_reply = max_reply
        self.epoch: str | None = None

    async def start(self) -> str:
        """Load the scripts and make sure of an epoch; warn when it is not the one seen before."""
        await self.store.load_scripts()
        epoch, made = await self.store.init_epoch()
        if made:
            event = "new epoch: registry reset" if self.epoch else "new epoch: registry created"
            (log.warning if self.epoch else log.info)(event, epoch=epoch, previous=self.epoch)
        elif self.epoch not in (None, epoch):
            log.warning("epoch changed under us", epoch=epoch, previous=self.epoch)
        self.epoch = epoch
        return epoch

    async def execute(self, op: Operation, message_id: str | None = None) -> Result:
        """Run one operation; an epoch lost with Redis's data is remade once, then retried."""
        try:
            return await self._dispatch(op, message_id)
        except EpochMissing:
            await self.start()
            return await self._dispatch(op, message_id)

    async def execute_json(self, op: Operation) -> bytes:
        """Run one operation; its ``{"ok": true, "result": ...}`` reply body.

        A body over the reply limit is :class:`~registryd.errors.TooLarge`.
        """
        match op:
            case GetWorkers():
                body = await self._listing_json(op)
            case GetWorker():
                body = await self._get_worker_json(op)
            case _:
                body = encode_result(await self.execute(op))
        if len(body) > self.max_reply:
            raise TooLarge(
                f"{op.method}: the reply is {len(body)} bytes, over the limit of "
                f"{self.max_reply} (REGISTRYD_RPC_MAX_REPLY); page it with limit and after"
            )
        return body

    async def apply_many(
        self, writes: Sequence[tuple[Operation, str | None]]
    ) -> list[Applied | RegistryError]:
        """Apply writes in order in one round trip; per write its outcome or error."""
        results = await self.store.apply_many(writes)
        lost = next((i for i, r in enumerate(results) if isinstance(r, EpochMissing)), None)
        if lost is None:
            return results
        await self.start()
        return results[:lost] + await self.store.apply_many(writes[lost:])

    async def _dispatch(self, op: Operation, message_id: str | None) -> Result:  # noqa: PLR0911 - one arm per read
        match op:
            case Ping():
                return await self.ping()
            case GetWorker():
                return await self.get_worker(op)
            case GetWorkers():
                return await self.get_workers(op)
            case GetMasters():
                return await self.store.read_masters()
            case GetChanges():
                return await self.store.read_changes(op.since, op.limit)
            case FindWorkerId():
                return await self.store.find_worker_id(op.name)
        await self.store.apply(op, message_id)
        return None

    async def ping(self) -> PingResult:
        """``ping``: version, current revision, epoch and the master lease."""
        revision, epoch = await self.store.state()
        if epoch is None:
            raise EpochMissing("the registry has no epoch")
        return PingResult(
            version=__version__, revision=revision, epoch=epoch, master_lease=self.master_lease
        )

    async def get_workers(self, op: GetWorkers) -> list[Worker]:
        """``getWorkers``: listed workers cut down by the filters, by ascending id."""
        listing = await self.store.read_listing(_where(op), op.after or 0, op.limit)
        docs = b"" if listing is None else listing.docs
        return _WORKERS.validate_json(b"[" + docs + b"]")

    async def _listing_json(self, op: GetWorkers) -> bytes:
        """The reply to a ``getWorkers``: the store lists, filters and joins in one step.

        The store stops as soon as the reply would be over the limit, so a refused
        listing costs no more than the limit's worth of documents.
        """
        budget = self.max_reply - len(_OK_LIST) - len(_END_LIST)
        listing = await self.store.read_listing(_where(op), op.after or 0, op.limit, budget)
        if listing is None:
            raise TooLarge(
                f"{op.method}: the reply is over the limit of {self.max_reply} bytes "
                "(REGISTRYD_RPC_MAX_REPLY); page it with limit and after"
            )
        return b"".join((_OK_LIST, listing.docs, _END_LIST))  # one copy of megabytes

    async def get_worker(self, op: GetWorker) -> Worker | None:
        """``getWorker``: by id and/or name (both must match), then the pair filters."""
        record = await self._get_worker_record(op)
        return None if record is None else WORKER_ADAPTER.validate_python(record)

    async def _get_worker_json(self, op: GetWorker) -> bytes:
        """By id alone (the common call) the stored document is the reply, as it is."""
        unfiltered = op.name is None and op.masterid is None and op.builderid is None
        if op.workerid is not None and unfiltered:
            doc = await self.store.read_worker_doc(op.workerid)
            return _OK_NONE if doc is None else _OK_ONE + doc + b"}"
        return encode_result(await self._get_worker_record(op))

    async def _get_worker_record(self, op: GetWorker) -> WorkerRecord | None:
        workerid = op.workerid
        if workerid is None:
            if op.name is None:
                return None
            workerid = await self.store.worker_id_of(op.name)
            if workerid is None:
                return None
        doc = await self.store.read_worker_doc(workerid)
        if doc is None:
            return None
        record: WorkerRecord = json.loads(doc)
        if op.name not in (None, record["name"]):
            return None
        return WorkerFilter(op.masterid, op.builderid).apply(record)
