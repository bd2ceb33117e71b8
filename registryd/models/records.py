"""What reads return: the worker record, the master record, change notifications.

:class:`Worker` and :class:`ConfiguredOn` are pydantic dataclasses, not models: a typed
listing of thousands of workers parses into them in about half the time (issue 9).
Parse and dump a worker with :data:`WORKER_ADAPTER`.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic.dataclasses import dataclass

from registryd.protocol import MasterEvent, WorkerEvent

__all__ = [
    "WORKER_ADAPTER",
    "ChangesPage",
    "ConfiguredOn",
    "Master",
    "MasterChange",
    "PingResult",
    "Reset",
    "Worker",
    "WorkerChange",
]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class ConfiguredOn:
    """One (builder, master) pair a worker is configured on."""

    builderid: int
    masterid: int


@dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class Worker:
    """The worker record of PROTOCOL.md section 1, in its field order."""

    id: int
    name: str
    workerinfo: dict[str, Any]
    paused: bool
    pause_reason: str | None
    graceful: bool
    connected_to: list[int]
    configured_on: list[ConfiguredOn]


#: The one adapter of :class:`Worker`: ``validate_python``/``validate_json`` to parse,
#: ``dump_python``/``dump_json`` for the record's JSON, as the wire has it.
WORKER_ADAPTER: Final = TypeAdapter(Worker)


class Master(_Record):
    """A master as ``getMasters`` lists it; ``last_seen`` is ISO-8601 UTC."""

    id: int
    name: str | None
    active: bool
    last_seen: str | None


class WorkerChange(_Record):
    """A notification about one worker: routing key ``workers.<id>.<event>``."""

    revision: int
    event: WorkerEvent
    workerid: int
    masterid: int | None
    worker: Worker


class MasterChange(_Record):
    """A notification about one master: routing key ``masters.<id>.<event>``."""

    revision: int
    event: MasterEvent
    masterid: int
    master: Master


class Reset(_Record):
    """The ``registry.reset`` notification: a new epoch, revisions restart."""

    event: Literal["reset"]
    epoch: str
    revision: Literal[0]


class ChangesPage(_Record):
    """The result of ``getChanges``."""

    revision: int
    changes: list[WorkerChange | MasterChange]


class PingResult(_Record):
    """The result of ``ping``; a master heartbeats every ``master_lease`` / 3 seconds."""

    version: str
    revision: int
    epoch: str
    master_lease: float
