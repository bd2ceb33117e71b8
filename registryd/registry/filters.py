"""The read filters of ``getWorkers`` and ``getWorker`` (PROTOCOL.md section 2).

They work on worker records as plain JSON objects (the wire shape of section 1).
``getWorker`` applies them here; ``getWorkers`` listings apply the same rules inside
Redis (``registryd/store/scripts/read_workers.lua``), over index sets, so that a filter
reads only what it lists; :func:`select_workers` is the rule they follow there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["WorkerFilter", "WorkerRecord", "select_workers"]

#: A worker record as decoded from its JSON document.
WorkerRecord = dict[str, Any]


@dataclass(frozen=True, slots=True)
class WorkerFilter:
    """The filters a read may give; ``None`` means "not given"."""

    masterid: int | None = None
    builderid: int | None = None
    paused: bool | None = None
    graceful: bool | None = None

    @property
    def by_pair(self) -> bool:
        """Whether a worker must have a matching ``configured_on`` pair to be listed."""
        return self.masterid is not None or self.builderid is not None

    def apply(self, worker: WorkerRecord) -> WorkerRecord | None:
        """The record as listed under these filters, or ``None`` when it is not listed."""
        if self.paused is not None and worker["paused"] != self.paused:
            return None
        if self.graceful is not None and worker["graceful"] != self.graceful:
            return None
        if not self.by_pair:
            return worker
        pairs = [
            pair
            for pair in worker["configured_on"]
            if self.masterid in (None, pair["masterid"])
            and self.builderid in (None, pair["builderid"])
        ]
        if not pairs:
            return None
        connected = worker["connected_to"]
        if self.masterid is not None:
            connected = [m for m in connected if m == self.masterid]
        return {**worker, "configured_on": pairs, "connected_to": connected}


def select_workers(workers: Iterable[WorkerRecord], where: WorkerFilter) -> list[WorkerRecord]:
    """The listed records, cut down by the filters, in ascending id order."""
    listed = (where.apply(worker) for worker in workers)
    return sorted((w for w in listed if w is not None), key=lambda w: int(w["id"]))
