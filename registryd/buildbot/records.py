"""Buildbot's worker models and registryd's records, and the writes between them.

A :data:`Send` is one write to registryd for one worker, given the client and the
worker's registry id: the unit that :mod:`.remote` orders, records and sends again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from buildbot.db.workers import BuilderMasterModel, WorkerModel

from registryd.client import RegistryClient
from registryd.models import WORKER_ADAPTER, Worker

__all__ = [
    "Send",
    "blank",
    "configured",
    "connected",
    "disconnected",
    "restore_steps",
    "to_model",
    "to_record",
]

Send = Callable[[RegistryClient, int], Awaitable[None]]


def configured(masterid: int, builderids: list[int]) -> Send:
    """``workerConfigured`` of a worker on ``masterid``."""
    return lambda c, rid: c.worker_configured(rid, masterid, builderids)


def connected(masterid: int, workerinfo: dict[str, Any], token: str | None) -> Send:
    """``workerConnected`` of a worker to ``masterid`` for the session ``token``."""
    return lambda c, rid: c.worker_connected(rid, masterid, workerinfo, connection=token)


def disconnected(masterid: int, token: str | None) -> Send:
    """``workerDisconnected`` of a worker's session ``token`` on ``masterid``."""
    return lambda c, rid: c.worker_disconnected(rid, masterid, connection=token)


def blank(name: str, workerid: int = 0) -> Worker:
    """A new worker's record, as registryd makes it."""
    return Worker(
        id=workerid,
        name=name,
        workerinfo={},
        paused=False,
        pause_reason=None,
        graceful=False,
        connected_to=[],
        configured_on=[],
    )


def restore_steps(have: Worker, want: Worker, placeholder: int) -> Iterable[Send]:
    """The writes that turn the record ``have`` into ``want``."""
    want_pairs: dict[int, list[int]] = {}
    for pair in want.configured_on:
        want_pairs.setdefault(pair.masterid, []).append(pair.builderid)
    for masterid in sorted({p.masterid for p in have.configured_on} | set(want_pairs)):
        yield configured(masterid, want_pairs.get(masterid, []))
    for masterid in sorted(set(have.connected_to) - set(want.connected_to)):
        yield disconnected(masterid, None)
    for masterid in want.connected_to:
        yield connected(masterid, want.workerinfo, None)
    if not want.connected_to and want.workerinfo != have.workerinfo:
        yield connected(placeholder, want.workerinfo, None)
        yield disconnected(placeholder, None)
    if (want.paused, want.pause_reason) != (have.paused, have.pause_reason):
        yield lambda c, rid: c.set_worker_paused(rid, want.paused, want.pause_reason)
    if want.graceful != have.graceful:
        yield lambda c, rid: c.set_worker_graceful(rid, want.graceful)


def to_model(workerid: int, record: Worker) -> WorkerModel:
    """Buildbot's model of a registry record, under the Buildbot id."""
    return WorkerModel(
        id=workerid,
        name=record.name,
        workerinfo=dict(record.workerinfo),
        paused=record.paused,
        pause_reason=record.pause_reason,
        graceful=record.graceful,
        configured_on=[
            BuilderMasterModel(builderid=p.builderid, masterid=p.masterid)
            for p in record.configured_on
        ],
        connected_to=list(record.connected_to),
    )


def to_record(model: WorkerModel) -> Worker:
    """The registry record a Buildbot model describes (its id is not used)."""
    pairs = sorted((p.masterid, p.builderid) for p in model.configured_on)
    return WORKER_ADAPTER.validate_python(
        {
            "id": model.id,
            "name": model.name,
            "workerinfo": model.workerinfo,
            "paused": model.paused,
            "pause_reason": model.pause_reason,
            "graceful": model.graceful,
            "connected_to": sorted(set(model.connected_to)),
            "configured_on": [{"builderid": b, "masterid": m} for m, b in pairs],
        }
    )
