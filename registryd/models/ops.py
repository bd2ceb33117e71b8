"""The parameters of every operation (PROTOCOL.md sections 2, 5 and 6).

Each class is both an RPC method's ``params`` and, where it has an ``event_type``, the
fields of a lifecycle event. All are strict: an unknown field, a ``true`` where an id
belongs, or a ``"10"`` is ``invalid_params``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from registryd.models.types import (
    MAX_ID,
    Connection,
    Flag,
    Id,
    JsonObject,
    MasterName,
    Name,
    OptionalText,
)

__all__ = [
    "EVENTS",
    "MAX_PAGE",
    "OPERATIONS",
    "DeconfigureAllWorkersForMaster",
    "FindWorkerId",
    "GetChanges",
    "GetMasters",
    "GetWorker",
    "GetWorkers",
    "MasterHeartbeat",
    "MasterStopped",
    "Operation",
    "Ping",
    "SetWorkerGraceful",
    "SetWorkerPaused",
    "WorkerConfigured",
    "WorkerConnected",
    "WorkerDisconnected",
]

#: The largest ``getWorkers`` page (``limit``).
MAX_PAGE = 10_000
#: ``getChanges``'s page when no ``limit`` is given.
CHANGES_PAGE = 100

#: Who may send a write when authorization is on: the master it names, or any master.
AuthScope = Literal["read", "masterid", "any_master"]


class Operation(BaseModel):
    """Base of every operation's parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: ClassVar[str]
    event_type: ClassVar[str | None] = None
    auth: ClassVar[AuthScope] = "read"

    @classmethod
    def is_write(cls) -> bool:
        """Whether the operation changes the registry (every write is authorized)."""
        return cls.auth != "read"


class Ping(Operation):
    """``ping``: version, revision and epoch."""

    method = "ping"


class FindWorkerId(Operation):
    """``findWorkerId``: the id of a name, created when new."""

    method = "findWorkerId"
    auth = "any_master"
    name: Name


class GetWorker(Operation):
    """``getWorker``: one worker by id and/or name, optionally filtered."""

    method = "getWorker"
    workerid: Id | None = None
    name: Name | None = None
    masterid: Id | None = None
    builderid: Id | None = None


class GetWorkers(Operation):
    """``getWorkers``: every worker matching all the given filters, or one page of them.

    ``limit`` lists at most that many; ``after`` lists only ids above it (v1.1 paging).
    """

    method = "getWorkers"
    masterid: Id | None = None
    builderid: Id | None = None
    paused: Flag | None = None
    graceful: Flag | None = None
    limit: int | None = Field(default=None, strict=True, ge=1, le=MAX_PAGE)
    after: int | None = Field(default=None, strict=True, ge=0, le=MAX_ID)


class WorkerConnected(Operation):
    """``workerConnected`` / event ``worker.connected``."""

    method = "workerConnected"
    event_type = "worker.connected"
    auth = "masterid"
    workerid: Id
    masterid: Id
    workerinfo: JsonObject
    connection: Connection | None = None


class WorkerDisconnected(Operation):
    """``workerDisconnected`` / event ``worker.disconnected``."""

    method = "workerDisconnected"
    event_type = "worker.disconnected"
    auth = "masterid"
    workerid: Id
    masterid: Id
    connection: Connection | None = None


class WorkerConfigured(Operation):
    """``workerConfigured`` / event ``worker.configured``; duplicate ids collapse."""

    method = "workerConfigured"
    event_type = "worker.configured"
    auth = "masterid"
    workerid: Id
    masterid: Id
    builderids: list[Id] = Field(max_length=100_000)

    @field_validator("builderids", mode="before")
    @classmethod
    def _must_be_list(cls, value: object) -> object:
        if type(value) is not list:
            raise PydanticCustomError("list", "must be a JSON array of builder ids")
        return value


class DeconfigureAllWorkersForMaster(Operation):
    """``deconfigureAllWorkersForMaster`` / event ``master.deconfigured``."""

    method = "deconfigureAllWorkersForMaster"
    event_type = "master.deconfigured"
    auth = "masterid"
    masterid: Id


class SetWorkerPaused(Operation):
    """``set_worker_paused`` / event ``worker.paused``; the reason is stored as given."""

    method = "set_worker_paused"
    event_type = "worker.paused"
    auth = "any_master"
    workerid: Id
    paused: Flag
    pause_reason: OptionalText | None = None


class SetWorkerGraceful(Operation):
    """``set_worker_graceful`` / event ``worker.graceful``."""

    method = "set_worker_graceful"
    event_type = "worker.graceful"
    auth = "any_master"
    workerid: Id
    graceful: Flag


class MasterHeartbeat(Operation):
    """``masterHeartbeat`` / event ``master.heartbeat``."""

    method = "masterHeartbeat"
    event_type = "master.heartbeat"
    auth = "masterid"
    masterid: Id
    name: MasterName | None = None


class MasterStopped(Operation):
    """``masterStopped`` / event ``master.stopped``."""

    method = "masterStopped"
    event_type = "master.stopped"
    auth = "masterid"
    masterid: Id


class GetMasters(Operation):
    """``getMasters``: every master that sent a heartbeat or was stopped."""

    method = "getMasters"


class GetChanges(Operation):
    """``getChanges``: the change records after revision ``since``."""

    method = "getChanges"
    since: int = Field(strict=True, ge=0)
    limit: int = Field(default=CHANGES_PAGE, strict=True, ge=1, le=1000)

    @field_validator("limit", mode="before")
    @classmethod
    def _null_is_not_given(cls, value: object) -> object:
        """An explicit ``null`` means "not given", as for every optional param."""
        return CHANGES_PAGE if value is None else value


_ALL: tuple[type[Operation], ...] = (
    Ping,
    FindWorkerId,
    GetWorker,
    GetWorkers,
    WorkerConnected,
    WorkerDisconnected,
    WorkerConfigured,
    DeconfigureAllWorkersForMaster,
    SetWorkerPaused,
    SetWorkerGraceful,
    MasterHeartbeat,
    MasterStopped,
    GetMasters,
    GetChanges,
)

#: RPC method name to its parameters' model.
OPERATIONS: dict[str, type[Operation]] = {op.method: op for op in _ALL}
#: Event ``type`` to its fields' model.
EVENTS: dict[str, type[Operation]] = {op.event_type: op for op in _ALL if op.event_type}
