"""A soak: ``registryd serve`` under mixed load at a fixed rate (issue 10, item 2).

``python -m tests.soak --minutes 10`` runs it by hand and prints its figures; CI runs a
short one (``tests/integration/test_soak.py``, mark ``soak``). It lives in ``tests/``
rather than ``bench/`` because it is a correctness check first (nothing lost against the
plain model of ``tests/reference.py``, every revision seen) built on ``tests.harness``;
its timings are reported, not asserted.

The load, all at fixed rates from one process: masters heartbeating every lease/3, the
workers of every master connecting, disconnecting, pausing and unpausing (events with
``message_id``, one publishing channel, so queue order is publish order and the model
applies them in that order), RPC reads, two fast subscribers and a slow one (small
prefetch, acks slowly, so its queue grows). The daemon is a subprocess: its RSS and open
file descriptors come from ``/proc/<pid>``, the relay's lag from its ``/metrics``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from redis.asyncio import Redis

from tests.harness import (
    AMQP_URL,
    REDIS_URL,
    Served,
    Wire,
    clean_prefix,
    http_get,
    served,
    unique_prefix,
    wait_for,
)
from tests.reference import ReferenceRegistry

__all__ = ["SoakConfig", "SoakReport", "soak"]

Json = dict[str, object]
#: Seconds a read waits for its reply (its ``expiration`` too).
READ_TIMEOUT = 10.0
#: The daemon's ``REGISTRYD_RPC_CONCURRENCY`` (its default).
RPC_CONCURRENCY = 64
#: Its Redis pool's size: a connection per request in flight plus the daemon's own loops.
#: The pool fills as concurrency peaks (and never shrinks), so it is bounded, not compared.
POOL_MAX = RPC_CONCURRENCY + 8


@dataclass(frozen=True)
class SoakConfig:
    """What the soak offers, per second, and for how long."""

    minutes: float = 10.0
    masters: int = 5
    workers: int = 2_000
    events_per_s: float = 20.0
    reads_per_s: float = 50.0
    #: Seconds of load before the first resource sample (allocators and caches settle).
    warmup_s: float = 20.0
    lease_s: float = 60.0
    #: The slow subscriber's prefetch and the pause before each of its acks.
    slow_prefetch: int = 5
    slow_ack_s: float = 0.2
    sample_s: float = 5.0
    seed: int = 10


@dataclass
class Sample:
    """One look at the daemon during the load."""

    at: float
    rss_kib: int
    #: Open descriptors other than the Redis pool's sockets.
    fds: int
    #: The Redis pool's connections: one per request in flight, at most POOL_MAX.
    redis: int
    applied: float
    lag_s: float
    unpublished: int
    slow_backlog: int
    #: The daemon's own p99 of RPC service time so far (a bucket bound of its histogram).
    served_p99_s: float


@dataclass
class SoakReport:
    """The soak's figures and what went wrong (``problems`` empty: it passed)."""

    config: SoakConfig
    samples: list[Sample] = field(default_factory=list)
    start: Sample | None = None
    end: Sample | None = None
    events_sent: int = 0
    reads: list[tuple[str, float]] = field(default_factory=list)
    #: Reads refused with a non-retryable error: a bug.
    read_errors: list[str] = field(default_factory=list)
    #: Reads without a reply within READ_TIMEOUT (expired unserved) or answered with a
    #: retryable error (``unavailable``: Redis answered late): the machine's speed, reported.
    reads_late: int = 0
    heartbeats_late: int = 0
    revision: int = 0
    seen: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    #: The daemon's warnings and errors (it logs at ``warning``), kept when it had problems.
    log: list[str] = field(default_factory=list)

    def growth(self, what: str) -> float:
        """Relative growth of ``rss_kib`` or ``fds`` from the start sample to the end."""
        assert self.start is not None
        assert self.end is not None
        before, after = getattr(self.start, what), getattr(self.end, what)
        return float(after - before) / float(before)

    def p99_ms(self, method: str | None = None) -> float:
        """The 99th percentile of the RPC reads' round trips (of one method), in ms."""
        ordered = sorted(t for m, t in self.reads if method in (None, m))
        return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0

    def _summary(self, start: Sample, end: Sample) -> list[str]:
        c = self.config
        loaded = end.at - self.samples[0].at
        methods = sorted({m for m, _ in self.reads})
        return [
            (
                f"soak: {c.minutes:g} min, {c.masters} masters, {c.workers} workers, "
                f"{c.events_per_s:g} events/s and {c.reads_per_s:g} reads/s offered"
            ),
            (
                f"events sent {self.events_sent}, reads {len(self.reads)} "
                f"({self.reads_late} late or unavailable, {len(self.read_errors)} refused), "
                f"{self.heartbeats_late} heartbeats late, final revision {self.revision}"
            ),
            (
                f"after {c.warmup_s:g} s of warm-up: RSS {start.rss_kib} -> {end.rss_kib} KiB "
                f"({100 * self.growth('rss_kib'):+.1f} %), open fds besides Redis "
                f"{start.fds} -> {end.fds} ({100 * self.growth('fds'):+.1f} %), Redis "
                f"connections {start.redis} -> {end.redis} (at most {POOL_MAX})"
            ),
            (
                f"relay lag max {max(s.lag_s for s in self.samples):.2f} s, unpublished "
                f"revisions max {max(s.unpublished for s in self.samples)}"
            ),
            f"RPC p99 {self.p99_ms():.1f} ms over {loaded:.0f} s (the daemon's own service "
            f"time: p99 at most {end.served_p99_s:g} s); by method (ms): "
            + ", ".join(f"{m} {self.p99_ms(m):.1f}" for m in methods),
            "revisions seen: " + ", ".join(f"{k} {v}" for k, v in self.seen.items()),
        ]

    def lines(self) -> list[str]:
        """The figures, one per line."""
        assert self.start is not None
        assert self.end is not None
        rows = self._summary(self.start, self.end)
        rows += ["  t(s)  applied/s  lag(s)  unpublished  slow backlog  RSS(KiB)  fds  redis"]
        previous: Sample | None = None
        for sample in self.samples:
            rate = 0.0
            if previous is not None and sample.at > previous.at:
                rate = (sample.applied - previous.applied) / (sample.at - previous.at)
            rows.append(
                f"{sample.at - self.samples[0].at:6.0f} {rate:10.0f} {sample.lag_s:7.2f} "
                f"{sample.unpublished:12d} {sample.slow_backlog:13d} {sample.rss_kib:9d} "
                f"{sample.fds:4d} {sample.redis:6d}"
            )
            previous = sample
        rows += [f"PROBLEM: {problem}" for problem in self.problems] or ["nothing lost"]
        if self.problems:
            rows += ["the daemon's log, last lines:", *self.log[-30:]]
        return rows


# The daemon, seen from outside -------------------------------------------------------------


def _metrics(port: int) -> dict[str, float]:
    """The daemon's /metrics, unlabelled series and ``events_total`` by outcome."""
    _, _, body = http_get(port, "/metrics")
    found: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        found[name] = float(value)
    return found


def _served_p99(found: dict[str, float]) -> float:
    """The daemon's own p99 of RPC service time: the histogram bucket that holds it (s)."""
    buckets: dict[float, float] = {}
    for name, value in found.items():
        if name.startswith("registryd_rpc_seconds_bucket{"):
            bound = name.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(bound)] = buckets.get(float(bound), 0.0) + value
    total = buckets.get(math.inf, 0.0)
    return next((le for le, n in sorted(buckets.items()) if n >= 0.99 * total), math.inf)


def _proc(pid: int, metrics_port: int) -> tuple[int, int, int]:
    """(VmRSS in KiB, open descriptors, TCP connections to Redis) of process ``pid``.

    The descriptors leave out the Redis pool's sockets (counted apart) and the HTTP
    connections of the soak's own probes of /metrics and /healthz.
    """
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    sockets = set()
    fds = list(Path(f"/proc/{pid}/fd").iterdir())
    for fd in fds:
        with contextlib.suppress(OSError):
            target = str(fd.readlink())
            if target.startswith("socket:["):
                sockets.add(target[8:-1])
    redis, probes = f":{urlsplit(REDIS_URL).port or 6379:04X}", f":{metrics_port:04X}"
    to_redis = to_probes = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text(encoding="ascii").splitlines()[1:]:
            fields = line.split()
            if fields[9] in sockets:
                to_redis += fields[2].endswith(redis)
                to_probes += fields[1].endswith(probes) and fields[3] != "0A"  # not the listener
    return rss, len(fds) - to_redis - to_probes, to_redis


async def _sample(daemon: Served, slow: aio_pika.abc.AbstractQueue, t0: float) -> Sample:
    found = await asyncio.to_thread(_metrics, daemon.port)
    rss, fds, to_redis = _proc(daemon.process.pid, daemon.port)
    declared = await slow.channel.declare_queue(slow.name, passive=True)
    committed = found.get("registryd_committed_revision", 0.0)
    relayed = found.get("registryd_relay_revision", 0.0)
    return Sample(
        at=time.monotonic() - t0,
        rss_kib=rss,
        fds=fds,
        redis=to_redis,
        applied=found.get('registryd_events_total{outcome="applied"}', 0.0),
        lag_s=found.get("registryd_relay_lag_seconds", 0.0),
        unpublished=max(0, int(committed - relayed)),
        slow_backlog=int(declared.declaration_result.message_count or 0),
        served_p99_s=_served_p99(found),
    )


# Subscribers -------------------------------------------------------------------------------


@dataclass
class Subscriber:
    """A queue bound ``#`` to the notifications; the revisions it saw."""

    name: str
    seen: set[int] = field(default_factory=set)
    queue: aio_pika.abc.AbstractQueue | None = None


async def _subscribe(
    connection: AbstractConnection, prefix: str, name: str, prefetch: int, ack_delay: float
) -> Subscriber:
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=prefetch)
    exchange = await channel.declare_exchange(
        f"{prefix}.notifications", aio_pika.ExchangeType.TOPIC, durable=True
    )
    subscriber = Subscriber(name)
    subscriber.queue = queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key="#")

    one_at_a_time = asyncio.Lock()

    async def on_note(message: AbstractIncomingMessage) -> None:
        body = json.loads(message.body)
        if isinstance(body, dict) and isinstance(body.get("revision"), int):
            subscriber.seen.add(body["revision"])
        if ack_delay:  # the slow one: a consumer with real work to do, one message at a time
            async with one_at_a_time:
                await asyncio.sleep(ack_delay)
        await message.ack()

    await queue.consume(on_note)
    return subscriber


# The load ------------------------------------------------------------------------------------


async def _every(rate: float, until: float, act: Callable[[], Awaitable[None]]) -> None:
    """Run ``act`` ``rate`` times a second (catching up when late) until ``until``."""
    interval, due = 1.0 / rate, time.monotonic()
    while time.monotonic() < until:
        await act()
        due += interval
        await asyncio.sleep(max(0.0, due - time.monotonic()))


@dataclass
class Fleet:
    """The masters, their workers and the model every event also goes to, in order."""

    wire: Wire
    #: RPC on a connection of its own: a busy event publisher's flow control (a quorum
    #: queue pushes back on its publishers' connection) must not delay the reads.
    rpc: Wire
    model: ReferenceRegistry
    rng: random.Random
    masters: list[int]
    workers: dict[int, int] = field(default_factory=dict)  # worker id -> its master
    sent: int = 0
    heartbeats_late: int = 0

    async def publish(self, kind: str, method: str, **fields: object) -> None:
        """One event to the daemon and the model, with a fresh ``message_id``."""
        self.sent += 1
        message_id = f"soak-{self.sent}"
        await self.wire.event({"type": kind, **fields}, message_id=message_id)
        if kind == "master.heartbeat":
            fields["now_ms"] = 0  # the model's clock is not compared: its lease is far ahead
        getattr(self.model, method)(**fields, message_id=message_id)

    async def announce(self) -> None:
        """Every master's first heartbeat, as an event like the rest of the set-up."""
        for masterid in self.masters:
            await self.publish(
                "master.heartbeat", "master_heartbeat", masterid=masterid, name=f"soak-{masterid}"
            )

    async def heartbeat(self) -> None:
        """Every master heartbeats by RPC, as the client library does.

        Not as an event: an event waits behind the whole events queue, and a daemon that
        fell a lease behind would expire live masters. A heartbeat that only extends the
        lease changes nothing the model holds, so the model skips it.
        """
        for masterid in self.masters:
            params = {"masterid": masterid, "name": f"soak-{masterid}"}
            try:
                reply = await self.rpc.call("masterHeartbeat", params, expiration=READ_TIMEOUT)
            except TimeoutError:
                reply = {}
            self.heartbeats_late += reply.get("ok") is not True  # the next one is lease/3 away

    async def churn(self) -> None:
        """One worker connects, disconnects, pauses or unpauses on its master."""
        workerid = self.rng.choice(list(self.workers))
        masterid = self.workers[workerid]
        action = self.rng.random()
        session = f"s-{self.rng.randrange(3)}"
        if action < 0.4:
            info = {"host": f"h{self.rng.randrange(50)}", "version": "4.3.0"}
            await self.publish(
                "worker.connected",
                "worker_connected",
                workerid=workerid,
                masterid=masterid,
                workerinfo=info,
                connection=session,
            )
        elif action < 0.75:
            await self.publish(
                "worker.disconnected",
                "worker_disconnected",
                workerid=workerid,
                masterid=masterid,
                connection=session,
            )
        else:
            paused = self.rng.random() < 0.5
            await self.publish(
                "worker.paused",
                "set_worker_paused",
                workerid=workerid,
                paused=paused,
                pause_reason="soak" if paused else None,
            )


async def _read(wire: Wire, rng: random.Random, fleet: Fleet, report: SoakReport) -> None:
    """One RPC read of a kind picked at random; its round trip goes into the report."""
    ids = list(fleet.workers)
    method, params = rng.choice(
        [
            ("ping", None),
            ("getWorker", {"workerid": rng.choice(ids)}),
            ("getWorkers", {"masterid": rng.choice(fleet.masters), "limit": 20}),
            ("getWorkers", {"after": rng.choice(ids), "limit": 20}),
            ("getChanges", {"since": max(0, fleet.model.revision - 20), "limit": 20}),
            ("getMasters", None),
        ]
    )
    started = time.monotonic()
    try:
        # As the client library does: a request nobody waits for any more expires unserved.
        reply = await wire.call(method, params, expiration=READ_TIMEOUT)
    except TimeoutError:
        report.reads_late += 1
        report.reads.append((method, READ_TIMEOUT))  # at least; p99 must not leave it out
        return
    report.reads.append((method, time.monotonic() - started))
    if reply.get("ok") is True:
        return
    error = reply.get("error")
    if isinstance(error, dict) and error.get("retryable") is True:
        report.reads_late += 1
    else:
        report.read_errors.append(f"{method}: {reply}")


async def _in_background(tasks: list[asyncio.Task[None]], read: Callable[[], None]) -> None:
    """Fire-and-forget reads: each runs on its own so a slow one does not hold the rate."""
    read()
    done = [task for task in tasks if task.done()]
    for task in done:
        tasks.remove(task)
        task.result()


# The run -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _services(tmp: Path, config: SoakConfig) -> AsyncIterator[tuple[Served, Wire, str]]:
    prefix = unique_prefix()
    connection = await aio_pika.connect(AMQP_URL)
    redis = Redis.from_url(REDIS_URL)
    try:
        lease = str(config.lease_s)
        with served(
            tmp, prefix, REGISTRYD_MASTER_LEASE=lease, REGISTRYD_LOG_LEVEL="warning"
        ) as daemon:
            await daemon.reaches(200)
            wire = await Wire.open(connection, prefix, notes=False)
            try:
                await wire.attach(dead=False)
                yield daemon, wire, prefix
            finally:
                await wire.close()
                await daemon.stopped()
    finally:
        await clean_prefix(connection, redis, prefix)
        await redis.aclose()
        await connection.close()


async def _set_up(fleet: Fleet, config: SoakConfig) -> None:
    """Every worker found (16 at a time) and configured on its master, then settled.

    The model is told of the workers in the order of the ids the daemon gave them, which
    is the order it created them in, so both logs of ``new`` changes agree.
    """
    limit = asyncio.Semaphore(16)

    async def find(name: str) -> tuple[int, str]:
        async with limit:
            return int(await fleet.rpc.ok("findWorkerId", {"name": name})), name

    names = [f"soak-worker-{index}" for index in range(config.workers)]
    for index, (workerid, name) in enumerate(sorted(await asyncio.gather(*map(find, names)))):
        if fleet.model.find_worker_id(name) != workerid:
            raise AssertionError(f"{name}: id {workerid}, the model gave another")
        masterid = fleet.masters[index % len(fleet.masters)]
        fleet.workers[workerid] = masterid
        await fleet.publish(
            "worker.configured",
            "worker_configured",
            workerid=workerid,
            masterid=masterid,
            builderids=[1 + index % 7, 8],
        )
    await fleet.wire.settled(timeout=120)


async def _load(
    fleet: Fleet, config: SoakConfig, report: SoakReport, sample: Callable[[], Awaitable[Sample]]
) -> None:
    """The fixed-rate load, sampling the daemon every ``sample_s`` seconds."""
    start = time.monotonic()
    until = start + config.minutes * 60
    reads: list[asyncio.Task[None]] = []
    rng = random.Random(config.seed + 1)

    def read() -> None:
        reads.append(asyncio.create_task(_read(fleet.rpc, rng, fleet, report)))

    async def look() -> None:
        report.samples.append(await sample())
        if report.start is None and time.monotonic() - start >= config.warmup_s:
            report.start = report.samples[-1]

    async with asyncio.TaskGroup() as group:
        group.create_task(_every(config.events_per_s, until, fleet.churn))
        group.create_task(_every(config.reads_per_s, until, lambda: _in_background(reads, read)))
        group.create_task(_every(1.0 / config.sample_s, until, look))
    await asyncio.gather(*reads)
    report.end = await sample()


def _check(report: SoakReport, fleet: Fleet, workers: list[Json], masters: list[Json]) -> None:
    model = fleet.model
    if model.get_workers() != workers:
        report.problems.append("the workers differ from the model's")
    strip = [{k: v for k, v in m.items() if k != "last_seen"} for m in masters]
    if [{k: v for k, v in m.items() if k != "last_seen"} for m in model.get_masters()] != strip:
        report.problems.append(f"the masters differ from the model's: {strip}")
    for what in ("rss_kib", "fds"):
        if report.growth(what) >= 0.10:
            report.problems.append(
                f"{what} grew by {100 * report.growth(what):.1f} % after warm-up"
            )
    if report.read_errors:
        report.problems.append(f"{len(report.read_errors)} reads refused: {report.read_errors[:3]}")
    if set(report.states) - {"ok"}:
        report.problems.append(f"the daemon left serving: {sorted(set(report.states))}")


async def soak(config: SoakConfig, tmp: Path) -> SoakReport:
    """Run the soak against a fresh ``registryd serve``; its report."""
    report = SoakReport(config)
    async with _services(tmp, config) as (daemon, wire, prefix):
        amqp = await aio_pika.connect(AMQP_URL)
        readers = await aio_pika.connect(AMQP_URL)
        rpc = await Wire.open(readers, prefix, notes=False)
        await rpc.attach(dead=False)
        try:
            fast = [await _subscribe(amqp, prefix, f"fast-{i}", 200, 0.0) for i in (1, 2)]
            slow = await _subscribe(amqp, prefix, "slow", config.slow_prefetch, config.slow_ack_s)
            model = ReferenceRegistry(lease_ms=10 * 86_400_000)
            masters = [10 * (i + 1) for i in range(config.masters)]
            fleet = Fleet(wire, rpc, model, random.Random(config.seed), masters)
            t0 = time.monotonic()
            await fleet.announce()
            beating = asyncio.create_task(_every(3.0 / config.lease_s, math.inf, fleet.heartbeat))
            try:
                await _set_up(fleet, config)
                backlog = slow.queue
                assert backlog is not None
                health = asyncio.create_task(_watch_health(daemon, report))
                try:
                    await _load(fleet, config, report, lambda: _sample(daemon, backlog, t0))
                finally:
                    health.cancel()
                report.events_sent = fleet.sent
                report.heartbeats_late = fleet.heartbeats_late
                await wire.settled(timeout=120)
            finally:
                beating.cancel()
            report.revision = await wire.revision()
            await _all_seen(fast, report.revision)
            report.seen = {s.name: len(s.seen) for s in (*fast, slow)}
            for subscriber in fast:
                if subscriber.seen != set(range(1, report.revision + 1)):
                    missing = set(range(1, report.revision + 1)) - subscriber.seen
                    report.problems.append(f"{subscriber.name} missed {len(missing)} revisions")
            if model.revision != report.revision:
                report.problems.append(f"revision {report.revision}, the model's {model.revision}")
            _check(report, fleet, await wire.ok("getWorkers"), await wire.ok("getMasters"))
            dead = await wire.channel.declare_queue(wire.dead, passive=True)
            if dead.declaration_result.message_count:
                report.problems.append("events were dead-lettered")
            report.log = daemon.log().splitlines()
        finally:
            await rpc.close()
            await readers.close()
            await amqp.close()
    return report


async def _all_seen(fast: list[Subscriber], revision: int) -> None:
    """Wait until the fast subscribers hold every revision (or give up after a minute)."""
    with contextlib.suppress(TimeoutError):
        await wait_for(lambda: all(len(s.seen) >= revision for s in fast), 60)


async def _watch_health(daemon: Served, report: SoakReport) -> None:
    """Record /healthz every second: a daemon that left serving shows up in the report."""
    while True:
        status = await daemon.health()
        report.states.append("ok" if status == 200 else f"status {status}")
        await asyncio.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.soak``: run it, print the figures, exit 1 on a problem."""
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes of load")
    parser.add_argument("--events", type=float, default=20.0, help="worker events per second")
    parser.add_argument("--reads", type=float, default=50.0, help="RPC reads per second")
    parser.add_argument("--workers", type=int, default=2_000)
    parser.add_argument(
        "--warmup", type=float, default=30.0, help="seconds before the start sample"
    )
    args = parser.parse_args(argv)
    config = SoakConfig(
        minutes=args.minutes,
        events_per_s=args.events,
        reads_per_s=args.reads,
        workers=args.workers,
        warmup_s=args.warmup,
    )
    with tempfile.TemporaryDirectory(prefix="registryd-soak-") as tmp:
        report = asyncio.run(soak(config, Path(tmp)))
    print("\n".join(report.lines()))  # noqa: T201 - the soak's output is its figures
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
