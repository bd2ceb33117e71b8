"""Master liveness in registryd: the start-up barrier, heartbeats, and recovery.

- **Barrier.** Before this master's first write, ``masterStopped`` of its own id, then
  ``masterHeartbeat``: a master that crashed and restarts with the same id starts from
  no stale ``connected_to`` (stock Buildbot keeps them).
- **Heartbeats** every ``master_lease`` / 3 seconds (the lease comes from ``ping``),
  with the master's name, on the bridge's loop: a busy reactor does not delay them.
  A crashed master stops sending them and registryd disconnects its workers.
- **Recovery.** Each beat also pings. A new epoch (registryd's Redis came back empty)
  drops the cached registry ids and sends every intent again; a gap between two good
  beats close to the lease (the lease may have run out) sends every builder list and
  session again; otherwise what failed (while registryd was unreachable) is sent again.
  The first call that reaches registryd after an outage beats at once.
- **Stop.** ``masterStopped`` on a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Final

from registryd.models import PingResult

from .link import Link, RegistryUnreachable
from .remote import RemoteWorkers

__all__ = ["Liveness"]

#: A gap between good beats this close to the lease may have let the lease run out.
_GAP_FRACTION: Final = 0.8
#: Seconds between beats while registryd is unreachable, to notice its return soon.
_DOWN_INTERVAL: Final = 1.0


class Liveness:
    """The barrier, the heartbeat task and recovery of one master, on the bridge's loop."""

    def __init__(self, link: Link, remote: RemoteWorkers, log: Callable[[str], None]) -> None:
        self.link = link
        self.remote = remote
        self.log = log
        self.masterid: int | None = None
        self.name = ""
        self.lease = 60.0
        self.epoch: str | None = None
        self._last_beat = 0.0
        self._barrier = asyncio.Lock()
        self._beating = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        link.on_recovered = self.recovered
        link.on_down = self._wake.set

    @property
    def interval(self) -> float:
        """Seconds to the next heartbeat."""
        return min(self.lease / 3, _DOWN_INTERVAL) if self.link.down else self.lease / 3

    async def ensure(self, masterid: int, name: str) -> None:
        """Run the barrier once for ``masterid``, then keep heartbeats going."""
        if self.masterid == masterid:
            return
        async with self._barrier:
            if self.masterid == masterid:
                return
            await self.link.run(lambda c: c.master_stopped(masterid))
            self._learn(await self.link.run(lambda c: c.ping()))
            await self.link.run(lambda c: c.master_heartbeat(masterid, name=name))
            self._last_beat = time.monotonic()
            self.masterid, self.name, self.remote.own = masterid, name, masterid
            self.log(f"master {masterid} announced to registryd (lease {self.lease:g} s)")
            if self._task is None:
                self._task = asyncio.create_task(self._beat_forever())

    async def stop(self) -> None:
        """Stop the heartbeats; ``masterStopped`` when this master was announced."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        masterid = self.masterid
        if masterid is not None:
            await self.link.run(lambda c: c.master_stopped(masterid))
            self.log(f"master {masterid} marked stopped in registryd")

    async def recovered(self) -> None:
        """An outage ended: beat now, which sends again what failed meanwhile."""
        await self.beat()

    async def beat(self) -> None:
        """One heartbeat (with a ping), then whatever recovery the answers call for."""
        masterid = self.masterid
        if masterid is None:
            return
        async with self._beating:
            try:
                ping = await self.link.run(lambda c: c.ping())
                await self.link.run(lambda c: c.master_heartbeat(masterid, name=self.name))
            except RegistryUnreachable:
                return  # the link logged the outage; the next beat comes sooner
            now = time.monotonic()
            gap, self._last_beat = now - self._last_beat, now
            await self._recover(reset=self._learn(ping), lapsed=gap >= self.lease * _GAP_FRACTION)

    async def _recover(self, *, reset: bool, lapsed: bool) -> None:
        if reset:
            self.remote.forget_ids()
            self.log("registryd has a new epoch (its state was reset): announcing every worker")
        elif lapsed:
            self.log("heartbeats lapsed for about a lease: announcing this master's workers")
        elif not self.remote.pending:
            return
        failed = await self.remote.resend(everything=reset or lapsed, flags=reset)
        if failed:
            self.log(f"{failed} workers could not be announced again; retrying at the next beat")

    def _learn(self, ping: PingResult) -> bool:
        """Take the lease and epoch from ``ping``; whether the epoch changed."""
        self.lease = ping.master_lease
        changed = self.epoch is not None and ping.epoch != self.epoch
        self.epoch = ping.epoch
        return changed

    async def _beat_forever(self) -> None:
        while True:
            # An outage wakes the loop: from then on it beats every second until back.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.beat()
            except Exception as exc:  # noqa: BLE001 - a bug must not end the heartbeats
                self.log(f"heartbeat failed: {exc!r}")
