"""``demo``: masters driving a running daemon through a realistic day (PROTOCOL.md section 9).

See :mod:`registryd.operator.demo_scope` for what the demo may touch.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from registryd.client import RegistryClient, Resync, SubscriptionItem
from registryd.errors import RegistryError, Unavailable
from registryd.models import (
    Master,
    MasterHeartbeat,
    MasterStopped,
    Operation,
    SetWorkerGraceful,
    SetWorkerPaused,
    Worker,
    WorkerChange,
    WorkerConfigured,
    WorkerConnected,
    WorkerDisconnected,
)
from registryd.operator.commands import _follow
from registryd.operator.common import Echo, Refused
from registryd.operator.demo_scope import demo_master_id, demo_worker_name, foreign_data
from registryd.operator.format import change_line, masters_table, printable, to_json, workers_table
from registryd.subscription import Subscription

#: Seconds the daemon has to apply the demo's events (it takes a fraction of one).
_APPLIED_WITHIN = 10


@dataclass(frozen=True)
class _DemoMaster:
    id: int
    name: str
    events: bool  # publishes lifecycle events; the others call RPC

    @property
    def builders(self) -> list[int]:
        return [self.id * 10 + 1, self.id * 10 + 2]


@dataclass
class _Seen:
    """What the demo's subscription saw; waiters are woken on every item."""

    echo: Echo
    count: int = 0
    items: list[SubscriptionItem] = field(default_factory=list)
    error: RegistryError | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, item: SubscriptionItem) -> None:
        self.count += not isinstance(item, Resync)
        self.items.append(item)
        self.echo(f"  < {change_line(item)}")
        self.changed.set()

    async def follow(self, changes: Subscription) -> None:
        """Take every item; a lost subscription fails the waiters instead of hanging them."""
        try:
            await _follow(changes, self)
        except RegistryError as exc:
            self.error = exc
            self.changed.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition`` holds (re-checked on every item)."""
        while not condition():
            if self.error is not None:
                raise self.error
            self.changed.clear()
            await self.changed.wait()


def _describe(op: Operation) -> str:
    params = op.model_dump(mode="json", exclude_none=True)
    return " ".join(
        f"{k}={printable(to_json(v) if isinstance(v, dict) else str(v))}" for k, v in params.items()
    )


class _Demo:
    """Masters driving the registry through a day (PROTOCOL.md section 9), idempotently."""

    def __init__(self, client: RegistryClient, echo: Echo, masters: int, workers: int) -> None:
        self.client = client
        self.echo = echo
        self.run = uuid.uuid4().hex[:8]  # message_ids and connections are this run's
        self.masters = [
            _DemoMaster(
                demo_master_id(i), f"demo-master-{demo_master_id(i)}:/srv/buildbot", i % 2 == 0
            )
            for i in range(masters)
        ]
        self.names = [demo_worker_name(j) for j in range(workers)]
        self.ids: list[int] = []
        self.events_sent = 0
        self.rpc_calls = 0

    def home(self, index: int) -> _DemoMaster:
        return self.masters[index % len(self.masters)]

    async def send(self, master: _DemoMaster, op: Operation, message_id: str | None = None) -> str:
        """As the master does it: an event (with a message_id) or an RPC call."""
        if not master.events:
            await self._rpc(op)
            return ""
        self.events_sent += 1
        message_id = message_id or f"demo-{self.run}-{self.events_sent}"
        await self.client.publish(op, message_id=message_id)
        self.echo(f"  > event {op.event_type} {_describe(op)} message_id={message_id}")
        return message_id

    async def start(self) -> None:
        self.echo("-- 1. masters start: a heartbeat with their name")
        for master in self.masters:
            await self.send(master, MasterHeartbeat(masterid=master.id, name=master.name))

    async def configure(self) -> None:
        self.echo("-- 2. configured workers: findWorkerId (RPC), then workerConfigured")
        for index, name in enumerate(self.names):
            self.rpc_calls += 1
            self.ids.append(await self.client.find_worker_id(name))
            self.echo(f"  > rpc findWorkerId name={name} -> {self.ids[-1]}")
            await self._configure(index, self.home(index).builders)
        if len(self.masters) > 1:  # the first worker also serves the next master
            other = self.masters[1]
            await self.send(other, _configured(self.ids[0], other.id, other.builders[:1]))

    async def _configure(self, index: int, builders: list[int]) -> None:
        master = self.home(index)
        await self.send(master, _configured(self.ids[index], master.id, builders))

    async def attach(self) -> None:
        self.echo("-- 3. workers attach: connected with workerinfo, restored state")
        for index, name in enumerate(self.names):
            master, workerid = self.home(index), self.ids[index]
            info = {
                "admin": "CI team <ci@example.org>",
                "host": f"{name}.build.example.org",
                "access_uri": f"ssh://{name}.build.example.org" if index % 2 == 0 else None,
                "version": "4.2.1",
            }
            session = f"{self.run}-{workerid}"
            await self.send(
                master,
                WorkerConnected(
                    workerid=workerid, masterid=master.id, workerinfo=info, connection=session
                ),
            )
            await self.send(master, SetWorkerPaused(workerid=workerid, paused=False))
            await self.send(master, SetWorkerGraceful(workerid=workerid, graceful=False))

    async def operate(self) -> None:
        self.echo("-- 4. operators pause (with a reason), unpause, ask for a graceful stop")
        first = self.home(0)
        pause = SetWorkerPaused(workerid=self.ids[0], paused=True, pause_reason="disk full")
        message_id = await self.send(first, pause)
        await self.send(first, SetWorkerPaused(workerid=self.ids[0], paused=False))
        if message_id:
            self.echo("  (a retry of the pause event with its message_id: ignored, still unpaused)")
            await self.send(first, pause, message_id=message_id)
        if len(self.ids) > 1:
            await self.send(self.home(1), SetWorkerGraceful(workerid=self.ids[1], graceful=True))
        if len(self.ids) > 2:  # noqa: PLR2004 - the third worker, when there is one
            reason = "kernel upgrade at 18:00"
            await self.send(
                self.home(2),
                SetWorkerPaused(workerid=self.ids[2], paused=True, pause_reason=reason),
            )

    async def detach(self) -> None:
        self.echo("-- 5. a worker detaches: a late disconnect of an old session is ignored")
        index = len(self.ids) - 1
        master, workerid = self.home(index), self.ids[index]
        for session in (f"{self.run}-old", f"{self.run}-{workerid}"):
            await self.send(
                master,
                WorkerDisconnected(workerid=workerid, masterid=master.id, connection=session),
            )

    async def reconfigure(self) -> None:
        self.echo("-- 6. reconfiguration: a builder dropped, a worker removed from a master")
        index = min(1, len(self.ids) - 1)
        await self._configure(index, self.home(index).builders[1:])
        if len(self.masters) > 1:
            other = self.masters[1]
            await self.send(other, _configured(self.ids[0], other.id, []))

    async def stop(self, seen: _Seen) -> None:
        """The first master shuts down cleanly, and the demo waits until that is applied.

        Its stop is the demo's last event: the events queue is applied in order, so once
        the stop is notified every earlier event is applied too.
        """
        master = self.masters[0]
        self.echo(f"-- 7. master {master.id} shuts down cleanly: masterStopped")
        since = len(seen.items)
        await self.send(master, MasterStopped(masterid=master.id))
        await self._until(
            seen, lambda: any(_stopped(item, master.id) for item in seen.items[since:])
        )
        await self.caught_up(seen)

    def show(self, workers: list[Worker], masters: list[Master]) -> None:
        """The registry at the end of the day, as ``registryd workers`` and ``masters``."""
        self.echo("-- workers")
        self.echo(workers_table(workers))
        self.echo("-- masters")
        self.echo(masters_table(masters))

    async def clean_up(self, seen: _Seen) -> None:
        """Leave no state behind: workers unpaused and idle, every demo master stopped.

        The protocol has no way to delete a worker or a master: the records stay, as
        the demo's own leftovers (``make demo`` deletes its whole prefix afterwards).
        """
        self.echo("-- 8. clean-up: workers unpaused, not graceful; the demo's masters stop")
        for workerid in self.ids:
            await self._rpc(SetWorkerPaused(workerid=workerid, paused=False))
            await self._rpc(SetWorkerGraceful(workerid=workerid, graceful=False))
        for master in self.masters:
            await self._rpc(MasterStopped(masterid=master.id))
        await self.caught_up(seen)

    async def _rpc(self, op: Operation) -> None:
        self.rpc_calls += 1
        await self.client.execute(op)
        self.echo(f"  > rpc {op.method} {_describe(op)}")

    async def caught_up(self, seen: _Seen) -> None:
        """Wait until the subscription has seen every change made so far."""
        revision = (await self.client.ping()).revision
        await self._until(seen, lambda: _revision(seen) >= revision)

    async def _until(self, seen: _Seen, condition: Callable[[], bool]) -> None:
        try:
            async with asyncio.timeout(_APPLIED_WITHIN):
                await seen.until(condition)
        except TimeoutError:
            raise Unavailable(
                f"the daemon did not apply the demo's events within {_APPLIED_WITHIN} s; "
                f"is it consuming {self.client.names.events}?"
            ) from None


def _configured(workerid: int, masterid: int, builders: list[int]) -> WorkerConfigured:
    return WorkerConfigured(workerid=workerid, masterid=masterid, builderids=builders)


def _stopped(item: SubscriptionItem, masterid: int) -> bool:
    return (
        not isinstance(item, Resync | WorkerChange)
        and item.event == "stopped"
        and item.masterid == masterid
    )


def _revision(seen: _Seen) -> int:
    return max((item.revision for item in seen.items), default=0)


async def _check_scope(client: RegistryClient, *, force: bool, echo: Echo) -> None:
    """Refuse a registry that holds anything but the demo's own leftovers (unless forced)."""
    foreign = foreign_data(await client.get_workers(), await client.get_masters())
    if foreign is None:
        echo("-- 0. the registry holds nothing but demo data: going ahead")
        return
    where = f"prefix {client.names.prefix!r}"
    if not force:
        raise Refused(
            f"{where} holds a registry in use: {foreign}; the demo would add its own "
            "masters and workers to it. Run it on a prefix of its own (`make demo` does: "
            "prefix registry-demo), or pass --force"
        )
    echo(f"-- 0. {where} holds {foreign}; --force: the demo leaves them alone")


async def demo(
    client: RegistryClient, masters: int, workers: int, *, force: bool = False, echo: Echo
) -> None:
    """``demo``: a day of ``masters`` masters and ``workers`` workers, the tables, clean-up.

    It acts as masters 9001 and up with workers ``demo-worker-<n>`` only, and refuses
    (:class:`Refused`) a registry holding anything else unless ``force``.
    """
    day = _Demo(client, echo, masters, workers)
    echo(
        f"demo on prefix {client.names.prefix!r}: masters {day.masters[0].id}.."
        f"{day.masters[-1].id}, workers {day.names[0]}..{day.names[-1]}"
    )
    await _check_scope(client, force=force, echo=echo)
    seen = _Seen(echo)
    async with client.subscribe() as changes:
        follower = asyncio.ensure_future(seen.follow(changes))
        try:
            for step in (day.start, day.configure, day.attach, day.operate, day.detach):
                await step()
            await day.reconfigure()
            await day.stop(seen)
            day.show(await client.get_workers(), await client.get_masters())
            await day.clean_up(seen)
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        last = changes.revision
    echo(
        f"demo done: {day.events_sent} events published, {day.rpc_calls} RPC calls, "
        f"{seen.count} notifications seen, last revision {last}"
    )
