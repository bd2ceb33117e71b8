r"""The fault matrix's machinery: bursts, faults injected into them, and the model.

The comparison of what the daemon did is with :class:`tests.reference.ReferenceRegistry`.

A :class:`Burst` drives one registry (one prefix) the way masters do: events with
``message_id``\ s over ``workers`` workers and ``masters`` masters, published in one
ordered stream (so the queue's order is the publishing order), RPC writers through the
client library, and a subscriber bound before the daemon first ran. :class:`Fault`\ s run
at fractions of the burst; each returns once the daemon has recovered, and the time it
took is reported. :meth:`Burst.verify` then returns a :class:`Report`.

What "equal to the model" means, with RPC writers interleaving with events: the events
and each RPC writer touch disjoint fields (events own ``connected_to``, ``workerinfo``,
``configured_on`` and the masters; writer ``k`` owns ``paused``, ``pause_reason`` and
``graceful`` of its own workers), so each is a *stream* of commands whose effects
commute with the other streams'. The order between streams is only known from the
change log, so the model replays the log's own order: walking ``getChanges`` from 0,
each change names its stream (:meth:`Burst.stream_of`), the model applies that
stream's next commands (in queue order for events, call order for a writer) until it
produces a change, and the two bodies must be equal, full worker records included. A
lost change, a change applied twice, one applied to stale state or a record with
another stream's fields wrong all make the walk diverge. The final state (``getWorkers``,
``getMasters``) must equal the model with every command applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from registryd.client import RegistryClient
from registryd.errors import RegistryError
from registryd.protocol import RESET_ROUTING_KEY
from registryd.store import Keys, RedisStore
from tests.harness.served import Served, served
from tests.harness.services import cli_env, free_port, wait_for
from tests.harness.wire import Json, Wire
from tests.reference import ReferenceRegistry, RefWorker, UnknownWorkerError

__all__ = [
    "BAD_WORKER",
    "Burst",
    "Command",
    "Daemons",
    "Fault",
    "Report",
    "Segment",
    "close_broker_connections",
]

#: A model command: one write applied to the reference registry.
Command = Callable[[ReferenceRegistry], object]
#: A worker id no burst creates: events naming it are dead-lettered ``not_found``.
BAD_WORKER = 999_999_999
#: The stream of the commands that set a segment up (changes up to its setup revision).
SETUP = "setup"
#: The stream of the burst's events.
EVENTS = "events"
#: A fixed clock for the model: the masters' ``last_seen`` is left out of comparisons.
_NOW_MS = 1_700_000_000_000


@dataclass
class Fault:
    """A fault injected once ``at`` (0..1) of the burst's events are published.

    ``inject`` injects it and returns once the daemon has recovered (the time it takes
    is the report's recovery time). ``blocking`` holds the publishers and writers
    while it runs (a fault the masters react to, like a reset).
    """

    at: float
    name: str
    inject: Callable[[Burst], Awaitable[None]]
    blocking: bool = False


@dataclass
class Segment:
    """One epoch of the registry as the burst saw it: its commands, stream by stream."""

    streams: dict[str, list[Command]] = field(default_factory=dict)
    #: Changes up to this revision belong to the setup stream.
    setup_revision: int = 0
    #: Good events published in this segment: message id -> (body, command).
    events: dict[str, tuple[Json, Command]] = field(default_factory=dict)

    def add(self, stream: str, command: Command) -> None:
        """Append a command to a stream."""
        self.streams.setdefault(stream, []).append(command)


@dataclass
class Report:
    """What one case did, and what went wrong (``problems`` empty when nothing did)."""

    case: str
    sent: int = 0
    applied: int = 0
    dead_lettered: int = 0
    lost: int = 0
    duplicated: int = 0
    revisions_missing: int = 0
    recover_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The one line a case prints."""
        return (
            f"[faults] {self.case}: sent={self.sent} applied={self.applied} "
            f"dead_lettered={self.dead_lettered} lost={self.lost} "
            f"duplicated={self.duplicated} revisions_missing={self.revisions_missing} "
            f"recover_s={self.recover_seconds:.2f}"
        )

    def check(self) -> None:
        """Fail with every problem found."""
        assert not self.problems, "\n".join([self.line(), *self.problems[:20]])


def _normal(body: Json) -> Json:
    """A change body without what the model cannot know: its revision, masters' last_seen."""
    body = copy.deepcopy(body)
    body.pop("revision", None)
    if isinstance(body.get("master"), dict):
        body["master"].pop("last_seen", None)
    return body


def _bad_event() -> Json:
    return {"type": "worker.graceful", "workerid": BAD_WORKER, "graceful": True}


def _find(name: str) -> Command:
    return lambda model: model.find_worker_id(name)


def _connect(w: int, m: int, info: Json, conn: str | None) -> Command:
    return lambda model: model.worker_connected(w, m, info, conn)


def _configure(w: int, m: int, builders: list[int]) -> Command:
    return lambda model: model.worker_configured(w, m, builders)


def _expire(masterid: int) -> Command:
    """The model's expiry of one master (the daemon's clock decides when)."""

    def expire(model: ReferenceRegistry) -> object:
        model.masters[masterid].lease_end_ms = 0
        return model.expire_masters(1)

    return expire


def _apply(model: ReferenceRegistry, command: Command) -> None:
    with contextlib.suppress(UnknownWorkerError):  # a refused write changes nothing
        command(model)


class _Walk:
    """The model replaying a change log in the log's own order of streams."""

    def __init__(self, segment: Segment) -> None:
        self.model = ReferenceRegistry()
        self.pending = {name: deque(cmds) for name, cmds in segment.streams.items()}
        self.matched = 0
        self.extra = 0
        self.problems: list[str] = []

    def take(self, stream: str, actual: Json) -> None:
        """Match one actual change of ``stream``."""
        model, queue = self.model, self.pending.get(stream, deque())
        while self.matched >= len(model.changes) and queue:
            _apply(model, queue.popleft())
        if self.matched < len(model.changes):
            expected = model.changes[self.matched].body
            if _normal(expected) == _normal(actual):
                self.matched += 1
                return
            self._diverged(f"revision {actual.get('revision')}: expected {expected}")
        self.extra += 1
        self._diverged(f"revision {actual.get('revision')} ({stream}) not in the model: {actual}")

    def _diverged(self, text: str) -> None:
        if len(self.problems) < 5:
            self.problems.append(text)

    def finish(self) -> int:
        """Apply what is left; the number of model changes the log lacks."""
        for queue in self.pending.values():
            while queue:
                _apply(self.model, queue.popleft())
        return len(self.model.changes) - self.matched


class Burst:
    """Events, RPC writers and a subscriber on one prefix, with faults injected.

    ``client`` (the client library) sets up and writes; ``wire`` (a :class:`Wire`
    opened with ``notes=True`` before the daemon first ran, attached) publishes the
    events, subscribes and collects dead letters.
    """

    def __init__(
        self,
        client: RegistryClient,
        wire: Wire,
        *,
        events: int = 3000,
        workers: int = 100,
        masters: Iterable[int] = (1, 2, 3),
        writers: int = 4,
        rate: float = 1000.0,
        rpc_rate: float = 200.0,
        bad_ratio: float = 0.01,
        duplicate_ratio: float = 0.02,
        heartbeat_every: float | None = None,
        faults: Iterable[Fault] = (),
        seed: int | None = None,
    ) -> None:
        self.client = client
        self.wire = wire
        self.events = events
        self.worker_count = workers
        self.masters = tuple(masters)
        self.writer_count = writers
        self.rate = rate
        self.rpc_rate = rpc_rate
        self.bad_ratio = bad_ratio
        self.duplicate_ratio = duplicate_ratio
        self.heartbeat_every = heartbeat_every
        self.faults = sorted(faults, key=lambda f: f.at)
        self.rng = random.Random(seed)
        #: Worker ids by name order, as the setup made them.
        self.workerids: list[int] = []
        self.segments: list[Segment] = [Segment()]
        #: Extra streams a case adds: name -> whether a change belongs to it.
        self.extra_streams: dict[str, Callable[[Json], bool]] = {}
        self.sent = 0
        self.published = 0
        self.bad: set[str] = set()
        self.recoveries: list[tuple[str, float]] = []
        #: The RPC writes refused (every one the burst sends is valid): their errors.
        self.refused: list[RegistryError] = []
        self._writer_of: dict[int, int] = {}
        self._open = asyncio.Event()
        self._open.set()
        self._done = asyncio.Event()
        self._faults_done = asyncio.Event()
        self._busy = 0
        self._keepalive: asyncio.Task[None] | None = None
        self._injected = 0.0

    # Set-up --------------------------------------------------------------------------

    @property
    def segment(self) -> Segment:
        """The current epoch's segment."""
        return self.segments[-1]

    def master_name(self, masterid: int) -> str:
        """The name a burst master heartbeats with."""
        return f"master-{masterid}:/srv/{self.wire.prefix}"

    async def setup(self, *, silent_masters: Iterable[int] = (), connected: int = 10) -> None:
        """Make the workers and the masters active (through the client library).

        Each of ``silent_masters`` heartbeats once, connects the first ``connected``
        workers and then says nothing: it expires once the daemon's lease is over, as
        the stream ``expiry:<id>`` (its changes after the setup) of the model.
        """
        for index in range(self.worker_count):
            name = f"w{index:03d}"
            workerid = await self.client.find_worker_id(name)
            self.workerids.append(workerid)
            self._writer_of[workerid] = index % max(self.writer_count, 1)
            self.segment.add(SETUP, _find(name))
        for masterid in self.masters:
            await self.heartbeat_rpc(masterid)
        for masterid in silent_masters:
            await self._go_silent(masterid, self.workerids[:connected])
        self.segment.setup_revision = (await self.client.ping()).revision

    async def _go_silent(self, masterid: int, workerids: list[int]) -> None:
        await self.heartbeat_rpc(masterid)
        for w in workerids:
            info = {"host": f"h{w}", "silent": masterid}
            await self.client.worker_connected(w, masterid, info)
            self.segment.add(SETUP, _connect(w, masterid, info, None))
        stream = f"expiry:{masterid}"
        self.extra_streams[stream] = lambda change: change.get("masterid") == masterid
        self.segment.add(stream, _expire(masterid))

    async def reannounce(self) -> None:
        """A new epoch began: the masters announce again what the model says they own.

        What a master does on ``registry.reset`` (section 6), through the client library:
        heartbeat, ``findWorkerId`` (the ids come back the same, in the same order),
        ``workerConfigured``, ``workerConnected`` with the remembered connection, and
        the paused and graceful state it restored. Call it while the burst is held.
        """
        model = self.state_model()
        self.segments.append(Segment())
        for masterid in self.masters:
            await self.heartbeat_rpc(masterid)
        workers = [model.workers[w] for w in sorted(model.workers)]
        for worker in workers:
            workerid = await self.client.find_worker_id(worker.name)
            assert workerid == worker.id, f"{worker.name}: id {workerid}, was {worker.id}"
            self.segment.add(SETUP, _find(worker.name))
        for worker in workers:
            await self._restore(worker)
        self.segment.setup_revision = (await self.client.ping()).revision

    async def _restore(self, worker: RefWorker) -> None:
        w, client, add = worker.id, self.client, self.segment.add
        for m in self.masters:
            builders = sorted(b for master, b in worker.configured_on if master == m)
            if builders:
                await client.worker_configured(w, m, builders)
                add(SETUP, _configure(w, m, builders))
        for m in sorted(worker.connected_to):
            info, conn = copy.deepcopy(worker.workerinfo), worker.connections.get(m)
            await client.worker_connected(w, m, info, conn)
            add(SETUP, _connect(w, m, info, conn))
        if worker.paused:
            paused, reason = worker.paused, worker.pause_reason
            await client.set_worker_paused(w, paused=paused, pause_reason=reason)
            add(SETUP, lambda r: r.set_worker_paused(w, paused=paused, pause_reason=reason))
        if worker.graceful:
            await client.set_worker_graceful(w, graceful=True)
            add(SETUP, lambda r: r.set_worker_graceful(w, graceful=True))

    async def heartbeat_rpc(self, masterid: int, stream: str = SETUP) -> None:
        """A heartbeat through the client library, recorded in ``stream``."""
        name = self.master_name(masterid)
        await self.client.master_heartbeat(masterid, name)
        self.segment.add(stream, lambda m: m.master_heartbeat(masterid, name, _NOW_MS))

    # Streams ---------------------------------------------------------------------------

    def stream_of(self, change: Json) -> str:
        """The stream a change of the current segment belongs to."""
        if change["revision"] <= self.segment.setup_revision:
            return SETUP
        for name, belongs in self.extra_streams.items():
            if belongs(change):
                return name
        if change["event"] == "state_updated":
            return f"rpc:{self._writer_of.get(change['workerid'], -1)}"
        return EVENTS

    # The burst -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Publishers and writers stop while inside, once the writes in hand are answered."""
        self._open.clear()
        try:
            await wait_for(lambda: self._busy == 0, 60)
            yield
        finally:
            self._open.set()

    @contextlib.asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """A publisher's or writer's turn: it waits while held; :meth:`hold` waits for it."""
        await self._open.wait()
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1

    async def run(self) -> None:
        """Publish the events while the writers write and the faults run; then settle.

        With ``heartbeat_every``, the masters heartbeat (as events, in the ordered stream)
        until the last fault has run.
        """
        self._done.clear()
        self._faults_done.clear()
        writers = [
            asyncio.create_task(self._writer(k), name=f"rpc-writer-{k}")
            for k in range(self.writer_count)
        ]
        faults = asyncio.create_task(self._run_faults(), name="faults")
        try:
            await self._publish_all()
            await faults
        finally:
            self._done.set()
            if self.heartbeat_every is not None and self._keepalive is None:
                self._keepalive = asyncio.create_task(self._keep_alive(), name="keepalive")
            if not faults.done():
                faults.cancel()
            results = await asyncio.gather(*writers, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        await self.wire.settled(timeout=60)

    async def _run_faults(self) -> None:
        try:
            for fault in self.faults:
                await wait_for(self._reached(fault.at), 600)
                self._injected = time.monotonic()
                if fault.blocking:
                    async with self.hold():
                        await fault.inject(self)
                else:
                    await fault.inject(self)
                self.recoveries.append((fault.name, time.monotonic() - self._injected))
        finally:
            self._faults_done.set()

    async def _keep_alive(self) -> None:
        """After the burst, the masters go on heartbeating (RPC) until :meth:`verify` ends.

        Not recorded: a heartbeat that only refreshes the lease changes nothing. One that
        finds its master expired would change it, and the walk would say so.
        """
        assert self.heartbeat_every is not None
        while True:
            for masterid in self.masters:
                await self.client.master_heartbeat(masterid, self.master_name(masterid))
            await asyncio.sleep(self.heartbeat_every)  # the masters' heartbeat period

    async def publish_bad(self) -> None:
        """Publish one event that must be dead-lettered (``not_found``), out of the stream."""
        mid = uuid.uuid4().hex
        self.bad.add(mid)
        self.sent += 1
        await self.wire.event(_bad_event(), message_id=mid)

    def injected(self) -> None:
        """Called by a fault once it is in effect: recovery is timed from here.

        A fault that takes a while to inject (``rabbitmqctl`` takes seconds) calls it;
        otherwise recovery is timed from the fault's start.
        """
        self._injected = time.monotonic()

    def _reached(self, at: float) -> Callable[[], bool]:
        return lambda: self.published >= at * self.events

    async def _publish_all(self) -> None:
        chunk = 50
        started = time.monotonic()
        next_beat = started
        beating = self.heartbeat_every is not None
        while self.published < self.events or (beating and not self._faults_done.is_set()):
            async with self._turn():
                if self.heartbeat_every is not None and time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self.heartbeat_every
                    await self._publish([self._heartbeat(m) for m in self.masters])
                count = min(chunk, self.events - self.published)
                if count:
                    await self._publish([self._next_event() for _ in range(count)])
                    self.published += count
            ahead = self.published / self.rate - (time.monotonic() - started)
            if count == 0:
                ahead = min(next_beat - time.monotonic(), 0.05)
            if ahead > 0:
                await asyncio.sleep(ahead)  # the burst's rate, not a wait for a condition

    async def _publish(self, batch: list[tuple[str, Json]]) -> None:
        # Started in order on one channel, they reach the queue in that order.
        await asyncio.gather(
            *(
                asyncio.ensure_future(self.wire.event(body, message_id=message_id))
                for message_id, body in batch
            )
        )
        self.sent += len(batch)

    def _record(self, message_id: str, body: Json, command: Command) -> tuple[str, Json]:
        self.segment.add(EVENTS, command)
        self.segment.events[message_id] = (body, command)
        return message_id, body

    def _heartbeat(self, masterid: int) -> tuple[str, Json]:
        name = self.master_name(masterid)
        body = {"type": "master.heartbeat", "masterid": masterid, "name": name}
        mid = uuid.uuid4().hex
        return self._record(
            mid, body, lambda m: m.master_heartbeat(masterid, name, _NOW_MS, message_id=mid)
        )

    def _next_event(self) -> tuple[str, Json]:
        rng = self.rng
        mid = uuid.uuid4().hex
        if rng.random() < self.bad_ratio:
            self.bad.add(mid)
            return mid, _bad_event()
        ours = self.segment.events
        if ours and rng.random() < self.duplicate_ratio:
            old_mid = rng.choice(list(ours)[-500:])  # a master's retry comes soon after
            old_body, command = ours[old_mid]
            self.segment.add(EVENTS, command)  # a replay: the model ignores it too
            return old_mid, old_body
        body, command = self._random_write(rng, mid)
        return self._record(mid, body, command)

    def _random_write(self, rng: random.Random, mid: str) -> tuple[Json, Command]:
        w, m = rng.choice(self.workerids), rng.choice(self.masters)
        roll = rng.random()
        if roll < 0.45:
            info = {"host": f"h{w}", "gen": rng.randrange(3)}
            conn = f"c{m}.{rng.randrange(3)}"
            body = {"workerid": w, "masterid": m, "workerinfo": info, "connection": conn}
            return {"type": "worker.connected", **body}, lambda r: r.worker_connected(
                w, m, info, conn, message_id=mid
            )
        if roll < 0.75:
            dconn = rng.choice([None, f"c{m}.{rng.randrange(3)}"])
            body = {"workerid": w, "masterid": m}
            if dconn is not None:
                body["connection"] = dconn
            return {"type": "worker.disconnected", **body}, lambda r: r.worker_disconnected(
                w, m, dconn, message_id=mid
            )
        if roll < 0.995:
            builders = sorted(rng.sample(range(1, 6), rng.randrange(4)))
            body = {"workerid": w, "masterid": m, "builderids": builders}
            return {"type": "worker.configured", **body}, lambda r: r.worker_configured(
                w, m, builders, message_id=mid
            )
        body = {"type": "master.deconfigured", "masterid": m}
        return body, lambda r: r.deconfigure_all_workers_for_master(m, message_id=mid)

    async def _writer(self, k: int) -> None:
        """RPC writer ``k``: pause, unpause and graceful on its own workers, call by call."""
        mine = [w for w in self.workerids if self._writer_of[w] == k]
        rng = random.Random(self.rng.random())
        pace = self.writer_count / self.rpc_rate
        seq = 0
        while not self._done.is_set():
            async with self._turn():
                seq += 1
                call, command = self._random_state(rng, rng.choice(mine), f"r{k}.{seq}")
                if await self._definite(call):
                    self.segment.add(f"rpc:{k}", command)
            await asyncio.sleep(pace)  # the writers' rate

    def _random_state(
        self, rng: random.Random, w: int, reason: str
    ) -> tuple[Callable[[], Awaitable[None]], Command]:
        """One RPC write of paused/graceful state, and its model command."""
        client, roll = self.client, rng.random()
        if roll < 0.4:
            return (
                lambda: client.set_worker_paused(w, paused=True, pause_reason=reason),
                lambda r: r.set_worker_paused(w, paused=True, pause_reason=reason),
            )
        if roll < 0.7:
            return (
                lambda: client.set_worker_paused(w, paused=False),
                lambda r: r.set_worker_paused(w, paused=False),
            )
        flag = rng.random() < 0.5
        return (
            lambda: client.set_worker_graceful(w, flag),
            lambda r: r.set_worker_graceful(w, flag),
        )

    async def _definite(self, call: Callable[[], Awaitable[None]]) -> bool:
        """Call until the answer is definite: True when applied, False when refused.

        A retryable failure (``unavailable``, no reply in time) may or may not have been
        applied; the write sets state, so sending it again until it is answered makes
        its effect certain. A refusal is kept in :attr:`refused` (and reported).
        """
        while True:
            try:
                await call()
            except RegistryError as error:
                if not error.retryable:
                    self.refused.append(error)
                    return False
                await asyncio.sleep(0.05)  # a retry's backoff
            else:
                return True

    # After the burst -----------------------------------------------------------------

    def state_model(self) -> ReferenceRegistry:
        """Every command of every segment applied: streams commute, so any order will do."""
        model = ReferenceRegistry()
        for segment in self.segments:
            for commands in segment.streams.values():
                for command in commands:
                    _apply(model, command)
        return model

    async def changes(self) -> list[Json]:
        """``getChanges`` from 0, page by page."""
        changes: list[Json] = []
        while True:
            page = await self.client.call("getChanges", {"since": len(changes), "limit": 1000})
            bodies: list[Json] = page["changes"]
            changes += bodies
            if not bodies:
                return changes

    async def verify(self, case: str) -> Report:
        """Compare everything with the model; the report (its problems list what failed)."""
        report = Report(case, sent=self.sent)
        report.recover_seconds = max((s for _, s in self.recoveries), default=0.0)
        if self.refused:  # a fault is "not now" (unavailable), never a refusal
            first = self.refused[0]
            report.problems.append(
                f"{len(self.refused)} valid RPC writes refused: {first.code}: {first.message}"
            )
        try:
            model = await self._check_log(report)
            await self._check_state(report, model)
            await self._check_events(report)
            ping = await self.client.ping()
            self._check_subscriber(report, ping.revision, ping.epoch)
        finally:
            if self._keepalive is not None:
                self._keepalive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._keepalive
        return report

    async def _check_log(self, report: Report) -> ReferenceRegistry:
        """The walk of ``getChanges`` from 0; its model, with every command applied."""
        changes = await self.changes()
        revisions = [c["revision"] for c in changes]
        if revisions != list(range(1, len(changes) + 1)):
            report.problems.append(f"getChanges from 0 is not contiguous: {revisions[:20]}...")
        walk = _Walk(self.segment)
        for change in changes:
            walk.take(self.stream_of(change), change)
        missing = walk.finish()
        report.duplicated += walk.extra
        report.lost += missing
        report.problems += walk.problems
        if missing:
            report.problems.append(f"{missing} changes of the model are not in the log")
        return walk.model

    async def _check_state(self, report: Report, model: ReferenceRegistry) -> None:
        workers = await self.client.call("getWorkers")
        if workers != model.get_workers():
            diff = [(a, b) for a, b in zip(workers, model.get_workers(), strict=False) if a != b]
            report.problems.append(f"final workers differ from the model: {diff[:3]}")
        masters = [_normal({"master": m}) for m in await self.client.call("getMasters")]
        expected = [_normal({"master": m}) for m in model.get_masters()]
        if masters != expected:
            report.problems.append(f"final masters {masters} != model {expected}")

    async def _check_events(self, report: Report) -> None:
        dead = await self.wire.dead_letters(timeout=30)
        dead_ids = {m.message_id for m in dead}
        report.dead_lettered = len(dead_ids)
        earlier = {mid for s in self.segments[:-1] for mid in s.events}
        unexpected = dead_ids - self.bad - earlier
        if unexpected:
            report.problems.append(f"{len(unexpected)} good events dead-lettered: {dead[:1]}")
        if self.bad - dead_ids:
            report.problems.append(f"{len(self.bad - dead_ids)} bad events not dead-lettered")
        ours = list(self.segment.events)
        # The ids are distinct, so the count remembered is how many applied.
        report.applied = await RedisStore(self.wire.redis, Keys(self.wire.prefix)).remembered(ours)
        if report.applied != len(ours):
            report.lost += len(ours) - report.applied
            report.problems.append(f"{len(ours) - report.applied} events never applied")

    def _check_subscriber(self, report: Report, revision: int, epoch: str) -> None:
        seen: set[int] = set()
        last_reset = None
        while not self.wire.notes_inbox.empty():
            note = self.wire.notes_inbox.get_nowait()
            if note.key == RESET_ROUTING_KEY:
                seen, last_reset = set(), note.body.get("epoch")  # revisions start again
            else:
                seen.add(int(note.body["revision"]))
        if last_reset != epoch:
            report.problems.append(f"the last reset seen is of epoch {last_reset}, not {epoch}")
        missing = set(range(1, revision + 1)) - seen
        report.revisions_missing = len(missing)
        if missing:
            report.problems.append(f"the subscriber missed revisions {sorted(missing)[:20]}")


class Daemons:
    """``registryd serve`` processes on one prefix, killed at the end whatever happens."""

    def __init__(
        self, tmp_path: Path, prefix: str, stack: contextlib.ExitStack, **env: str
    ) -> None:
        self.tmp_path = tmp_path
        self.prefix = prefix
        self.stack = stack
        self.env = env
        #: The processes started, in order (killed ones included).
        self.started: list[Served] = []
        self._counts: dict[tuple[Path, str], tuple[int, int]] = {}

    async def start(self, timeout: float = 30) -> Served:
        """Start one and wait until its /healthz says it serves."""
        port = free_port()
        environ = cli_env(self.prefix, REGISTRYD_METRICS_PORT=str(port), **self.env)
        process = self.stack.enter_context(
            served(self.tmp_path, self.prefix, environ=environ, port=port)
        )
        self.started.append(process)
        await process.reaches(200, timeout)
        return process

    @staticmethod
    async def kill(process: Served) -> None:
        """SIGKILL it and reap it."""
        process.process.kill()
        await asyncio.to_thread(process.process.wait)

    def count(self, process: Served, text: str) -> int:
        """How many complete lines of its log hold ``text`` (read on from the last call)."""
        key = (process.err, text)
        offset, found = self._counts.get(key, (0, 0))
        with process.err.open("rb") as log:
            log.seek(offset)
            chunk = log.read()
        end = chunk.rfind(b"\n") + 1
        found += chunk[:end].count(text.encode())
        self._counts[key] = (offset + end, found)
        return found

    def sessions(self, process: Served) -> int:
        """How many sessions it has started serving (its "serving" log lines)."""
        return self.count(process, '"event": "serving"')

    def forced_closes(self, process: Served) -> int:
        """How many times the broker closed its connection (CONNECTION_FORCED)."""
        return self.count(process, "CONNECTION_FORCED")

    def alive(self) -> list[Served]:
        """The processes still running."""
        return [p for p in self.started if p.process.poll() is None]


async def _run(*command: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await process.communicate()
    text = out.decode(errors="replace")
    assert process.returncode == 0, f"{command}: {text}"
    return text


async def close_broker_connections(prefix: str, reason: str = "fault matrix") -> int:
    """``rabbitmqctl close_connection`` on every daemon connection of ``prefix``.

    A daemon names its connection ``registryd <prefix> <version>``; the number closed.
    """
    listing = await _run(
        "rabbitmqctl", "list_connections", "pid", "client_properties", "-q", "--no-table-headers"
    )
    needle = f'{{"connection_name","registryd {prefix} '
    pids = [line.split("\t", 1)[0] for line in listing.splitlines() if needle in line]
    for pid in pids:
        await _run("rabbitmqctl", "close_connection", pid, reason)
    return len(pids)
