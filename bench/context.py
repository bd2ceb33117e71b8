"""What a run is made of: its plan (sizes, repetitions) and the connections it holds.

:func:`opened` starts the echo server and ``registryd serve`` (each in its own
process), connects the benchmark client, and on the way out, however it leaves,
stops both and removes every key, queue and exchange of the run's prefix.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from redis.asyncio import BlockingConnectionPool, Redis

from bench.echo import EchoClient
from bench.profile import Profiler
from bench.registry_paths import Subscriber
from bench.services import (
    BenchNames,
    Child,
    clean_up,
    start_daemon,
    start_echo,
    start_forwarder,
)
from bench.stats import Stat
from registryd.client import RegistryClient
from registryd.protocol import Names
from registryd.service import Registry
from registryd.store import Keys, RedisStore, StoreSettings

__all__ = ["QUICK", "Context", "Plan", "opened"]


@dataclass(frozen=True)
class Plan:
    """Sizes and how much of each measurement one run takes."""

    sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    reps: int = 5
    #: The sections to run (:data:`bench.suite.SECTIONS`); all when empty.
    sections: tuple[str, ...] = ()
    #: Seconds one sample of a short call should take (it is then a median of several).
    budget: float = 0.1
    sequential_calls: int = 500
    in_flight_calls: int = 3_000
    #: At most this long per latency or rate sample, whatever the number of calls.
    sample_seconds: float = 2.0
    ingest_events: int = 5_000
    #: Repetitions of ingest and of notification latency (each takes seconds).
    event_reps: int = 3
    latency_rate: float = 1_000.0
    latency_seconds: float = 4.0
    expiry_reps: int = 3
    buildbot: bool = True

    def listing_reps(self, workers: int) -> int:
        """Repetitions of the listings: at most 3 from 100,000 workers (seconds each)."""
        return self.reps if workers < 100_000 else min(self.reps, 3)


QUICK = Plan(
    sizes=(1_000, 10_000),
    reps=3,
    budget=0.02,
    sequential_calls=200,
    in_flight_calls=1_000,
    sample_seconds=0.5,
    ingest_events=1_500,
    latency_seconds=1.0,
    event_reps=2,
    expiry_reps=1,
)


@dataclass
class Context:
    """The run's prefix, processes and connections."""

    plan: Plan
    amqp_url: str
    redis_url: str
    prefix: str
    logdir: Path
    redis: Redis
    connection: AbstractConnection
    channel: AbstractChannel
    daemon: Child
    echo_server: Child
    echo: EchoClient
    #: The bare relay of the ingest path's second floor (:mod:`bench.forwarder`).
    forwarder: Child
    client: RegistryClient
    subscriber: Subscriber
    events: AbstractExchange
    store: RedisStore
    registry: Registry
    idle_rss: int
    workers: int = 0
    #: Figures of the first size, for the rows that compare sizes.
    first: dict[str, Stat] = field(default_factory=dict)
    #: py-spy on the daemon and this process, when asked for (``--profile``).
    profiler: Profiler | None = None
    #: Figures by size that other sections compare with (the Buildbot rows).
    figures: dict[int, dict[str, Stat]] = field(default_factory=dict)

    @property
    def keys(self) -> Keys:
        """The prefix's Redis keys."""
        return self.store.keys

    @property
    def names(self) -> Names:
        """The prefix's RabbitMQ names."""
        return Names(self.prefix)

    @property
    def bench_names(self) -> BenchNames:
        """The floors' queue names."""
        return BenchNames(self.prefix)


def progress(message: str) -> None:
    """A progress line on stderr (stdout is the table)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def opened(plan: Plan, amqp_url: str, redis_url: str) -> AsyncIterator[Context]:
    """Everything a run needs, removed again at the end even when the run fails."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="registryd-bench-") as tmp:
        logdir = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(clean_up, amqp_url, redis_url, prefix)
            yield await _enter(
                stack,
                plan=plan,
                amqp_url=amqp_url,
                redis_url=redis_url,
                prefix=prefix,
                logdir=logdir,
            )


async def _enter(
    stack: contextlib.AsyncExitStack,
    *,
    plan: Plan,
    amqp_url: str,
    redis_url: str,
    prefix: str,
    logdir: Path,
) -> Context:
    # Blocking, like the daemon's: paced writes must wait for a connection, not fail.
    redis = Redis.from_pool(BlockingConnectionPool.from_url(redis_url, max_connections=64))
    stack.push_async_callback(redis.aclose)
    names = BenchNames(prefix)
    progress(f"prefix {prefix}: starting registryd serve, the echo server and the bare relay")
    daemon = await start_daemon(amqp_url, redis_url, prefix, logdir)
    stack.push_async_callback(daemon.stop)
    echo_server = await start_echo(amqp_url, names.echo, logdir)
    stack.push_async_callback(echo_server.stop)
    idle_rss = daemon.memory()["VmRSS"]
    connection = await aio_pika.connect(amqp_url)
    stack.push_async_callback(connection.close)
    channel = await connection.channel(publisher_confirms=True)
    for quorum in (names.quorum, names.relay_in):
        await channel.declare_queue(quorum, durable=True, arguments={"x-queue-type": "quorum"})
    await channel.declare_exchange(names.relay_out, aio_pika.ExchangeType.TOPIC)
    forwarder = await start_forwarder(amqp_url, names, logdir)
    stack.push_async_callback(forwarder.stop)
    client = await RegistryClient.connect(amqp_url, prefix, timeout=60)
    stack.push_async_callback(client.close)
    store = RedisStore(redis, Keys(prefix), StoreSettings(master_lease_ms=4_000))
    registry = Registry(store, max_reply=2**40)  # reply bodies above the daemon's limit too
    await registry.start()
    return Context(
        plan=plan,
        amqp_url=amqp_url,
        redis_url=redis_url,
        prefix=prefix,
        logdir=logdir,
        redis=redis,
        connection=connection,
        channel=channel,
        daemon=daemon,
        echo_server=echo_server,
        echo=await EchoClient.open(connection, names.echo),
        forwarder=forwarder,
        client=client,
        subscriber=await Subscriber.open(await connection.channel(), Names(prefix)),
        events=await channel.get_exchange(Names(prefix).events, ensure=False),
        store=store,
        registry=registry,
        idle_rss=idle_rss,
    )
