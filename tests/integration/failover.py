"""A burst of ordered events through ``registryd.client``, and what the registry made of it.

Used by the cluster and replica tests: each worker gets its own stream of
``worker.paused`` events whose ``pause_reason`` counts 1, 2, 3...; a stream publishes
its next event only once the broker confirmed the previous one (retrying the same
``message_id`` after a failure, as a master must), so the order of each stream is
defined. The change log (``getChanges``) then tells, per event, whether it was applied,
applied twice, or lost, whether each stream kept its order, and whether a revision is
missing. :class:`ReadyClock` measures how long a daemon was not ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from registryd.client import RegistryClient
from registryd.errors import RegistryError
from registryd.models import MasterChange, WorkerChange
from tests.harness import wait_for

#: Seconds a failed publish waits before it is sent again (same message_id).
RETRY_SECONDS = 0.1


@dataclass
class Burst:
    """``per_worker`` ordered events for each of ``workerids``, published concurrently."""

    client: RegistryClient
    workerids: Sequence[int]
    per_worker: int
    tag: str
    sent: int = 0
    retries: int = 0
    #: Set once ``at`` events are confirmed (the moment to break something).
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    at: int = 0

    @property
    def total(self) -> int:
        """Events in the whole burst."""
        return len(self.workerids) * self.per_worker

    async def run(self) -> None:
        """Publish every stream to its end (retrying failures forever)."""
        async with asyncio.TaskGroup() as group:
            for workerid in self.workerids:
                group.create_task(self._stream(workerid))

    async def _stream(self, workerid: int) -> None:
        for seq in range(1, self.per_worker + 1):
            await self._publish(workerid, seq)
            self.sent += 1
            if self.sent >= self.at:
                self.reached.set()

    async def _publish(self, workerid: int, seq: int) -> None:
        fields = {"workerid": workerid, "paused": True, "pause_reason": str(seq)}
        message_id = f"{self.tag}-{workerid}-{seq}"
        while True:
            try:
                await self.client.publish_event("worker.paused", fields, message_id=message_id)
            except RegistryError:
                self.retries += 1
                await asyncio.sleep(RETRY_SECONDS)
            else:
                return


@dataclass(frozen=True)
class Outcome:
    """What the change log says about a burst."""

    sent: int
    applied: int
    lost: int
    duplicated: int
    out_of_order: int
    revisions_missing: int

    def line(self, what: str, ready_seconds: float) -> str:
        """The report line of a failover test."""
        return (
            f"{what}: events sent {self.sent}, applied {self.applied}, lost {self.lost}, "
            f"duplicated {self.duplicated}, out of order {self.out_of_order}, "
            f"revisions missing {self.revisions_missing}, "
            f"seconds until ready again {ready_seconds:.2f}"
        )


async def changes_since(client: RegistryClient, since: int) -> list[WorkerChange | MasterChange]:
    """Every change after revision ``since``, read in pages of 1,000."""
    changes: list[WorkerChange | MasterChange] = []
    while True:
        page = await client.get_changes(since, limit=1000)
        if not page.changes:
            return changes
        changes += page.changes
        since = page.changes[-1].revision


async def outcome(client: RegistryClient, burst: Burst, since: int, timeout: float) -> Outcome:
    """Wait (up to ``timeout``) for every event to show, then compare with the burst."""

    async def all_shown() -> bool:
        return (await client.ping()).revision >= since + burst.total

    with contextlib.suppress(TimeoutError):  # a loss shows in the figures, not as a hang
        await wait_for(all_shown, timeout)
    return compare(burst, since, await changes_since(client, since))


def compare(burst: Burst, since: int, changes: Sequence[WorkerChange | MasterChange]) -> Outcome:
    """The figures of a burst from the changes that followed revision ``since``."""
    seen: Counter[tuple[int, int]] = Counter()
    last: dict[int, int] = {}
    out_of_order = 0
    for change in changes:
        if not isinstance(change, WorkerChange) or change.workerid not in burst.workerids:
            continue
        if change.event != "state_updated" or change.worker.pause_reason is None:
            continue
        seq = int(change.worker.pause_reason)
        seen[change.workerid, seq] += 1
        if seq <= last.get(change.workerid, 0):
            out_of_order += 1
        last[change.workerid] = seq
    revisions = {change.revision for change in changes}
    expected = set(range(since + 1, max(revisions, default=since) + 1))
    return Outcome(
        sent=burst.total,
        applied=len(seen),
        lost=burst.total - len(seen),
        duplicated=sum(count - 1 for count in seen.values()),
        out_of_order=out_of_order,
        revisions_missing=len(expected - revisions),
    )


class ReadyClock:
    """Watches a readiness test every 10 ms: the longest time it was false."""

    def __init__(self, ready: Callable[[], bool]) -> None:
        self._ready = ready
        self.longest = 0.0
        self.went_unready = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReadyClock:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        since: float | None = None
        while True:
            now = time.monotonic()
            if self._ready():
                since = None
            else:
                self.went_unready = True
                since = now if since is None else since
                self.longest = max(self.longest, now - since)
            await asyncio.sleep(0.01)
