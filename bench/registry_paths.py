"""registryd's side of every row: one repetition's sample of each path, from outside.

The daemon is a ``registryd serve`` process; everything here runs in the benchmark
client's process: the client library (:class:`registryd.client.RegistryClient`) for
RPC, bare aio-pika for events, aiormq for the subscriber (an exclusive queue bound to
the notifications exchange, consumed as the floors consume: :func:`bench.floors.consume`),
and the daemon's own :class:`registryd.service.Registry` over
the same Redis for the reply bodies (what the daemon computes for a reply, without
RabbitMQ).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from aiormq.abc import DeliveredMessage

from bench import fleet
from bench.floors import Collector, consume, paced, publish_confirmed
from bench.population import apply_all, relay_caught_up
from registryd.client import RegistryClient
from registryd.models import (
    DeconfigureAllWorkersForMaster,
    Operation,
    SetWorkerPaused,
    WorkerConfigured,
    WorkerConnected,
)
from registryd.protocol import Names
from registryd.store import RedisStore

__all__ = [
    "Expiry",
    "Subscriber",
    "commit_latencies",
    "event_latencies",
    "expiry_seconds",
    "ingest_seconds",
    "reason_number",
]

#: What receives each notification's body.
Sink = Callable[[bytes], None]


class Subscriber:
    """An exclusive queue on the notifications exchange; bodies go to :attr:`sink`."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue, names: Names) -> None:
        self.channel = channel
        self.queue = queue
        self.names = names
        self.sink: Sink | None = None
        self._barrier: tuple[bytes, asyncio.Event] | None = None

    @classmethod
    async def open(cls, channel: AbstractChannel, names: Names) -> Subscriber:
        """Declare the queue (unbound: the populate's notifications do not reach it)."""
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        subscriber = cls(channel, queue, names)
        await consume(channel, queue.name, subscriber._on_message, no_ack=True)
        return subscriber

    def _on_message(self, message: DeliveredMessage) -> None:
        if self._barrier is not None and message.body == self._barrier[0]:
            self._barrier[1].set()
        elif self.sink is not None:
            self.sink(message.body)

    async def bind(self) -> None:
        """Receive every worker and master notification."""
        for key in ("workers.#", "masters.#"):
            await self.queue.bind(self.names.notifications, key)

    async def unbind(self) -> None:
        """Stop receiving notifications."""
        for key in ("workers.#", "masters.#"):
            await self.queue.unbind(self.names.notifications, key)

    async def settle(self, store: RedisStore) -> None:
        """Until everything committed so far has been published and delivered here.

        Once the relay's cursor is at the revision, every notification is in the queue;
        a marker published after them arrives after them, so the queue is drained.
        """
        self.sink = None
        await relay_caught_up(store.redis, store.keys)
        token = b"barrier-" + uuid.uuid4().hex.encode()
        self._barrier = (token, asyncio.Event())
        exchange = await self.channel.get_exchange(self.names.notifications, ensure=False)
        await exchange.publish(aio_pika.Message(token), routing_key="workers.barrier.x")
        await asyncio.wait_for(self._barrier[1].wait(), 60)
        self._barrier = None


def reason_number(tag: str, *, of_worker: bool = True) -> Callable[[bytes], int | None]:
    """Reads ``n`` from a notification whose worker's pause reason is ``<tag>-<n>``.

    ``of_worker=False``: from the pause event itself (the bare relay forwards events).
    """
    prefix = tag + "-"

    def number(body: bytes) -> int | None:
        data = json.loads(body)
        reason = (data.get("worker", {}) if of_worker else data).get("pause_reason")
        if isinstance(reason, str) and reason.startswith(prefix):
            return int(reason.removeprefix(prefix))
        return None

    return number


def pause_event(workerid: int, reason: str) -> bytes:
    """A ``worker.paused`` event that changes the worker (a new reason each time)."""
    event = {"type": "worker.paused", "workerid": workerid, "paused": True, "pause_reason": reason}
    return json.dumps(event).encode()


async def ingest_seconds(
    subscriber: Subscriber, events: AbstractExchange, paused: list[int], count: int
) -> float:
    """Seconds from the first event published (confirmed) to its last notification received."""
    tag = uuid.uuid4().hex[:8]
    bodies = [pause_event(paused[i % len(paused)], f"{tag}-{i}") for i in range(count)]
    collector = Collector(count, reason_number(tag))
    subscriber.sink = collector
    started = time.perf_counter()
    await publish_confirmed(events, "worker.paused", bodies)
    await collector.wait(120)
    subscriber.sink = None
    return max(collector.received.values()) - started


async def commit_latencies(
    subscriber: Subscriber, store: RedisStore, paused: list[int], rate: float, count: int
) -> list[float]:
    """Seconds from each commit (a write through the store) to its notification here."""
    tag = uuid.uuid4().hex[:8]
    collector = Collector(count, reason_number(tag))
    subscriber.sink = collector
    committed: dict[int, float] = {}

    async def write(i: int) -> None:
        op = SetWorkerPaused(
            workerid=paused[i % len(paused)], paused=True, pause_reason=f"{tag}-{i}"
        )
        started = time.perf_counter()
        await store.apply(op)
        committed[i] = (started + time.perf_counter()) / 2  # the commit is inside the call

    await paced(rate, count, write)
    await collector.wait(60)
    subscriber.sink = None
    return [collector.received[i] - committed[i] for i in range(count)]


async def event_latencies(
    subscriber: Subscriber, events: AbstractExchange, paused: list[int], rate: float, count: int
) -> list[float]:
    """Seconds from each event's publish to its notification here."""
    tag = uuid.uuid4().hex[:8]
    collector = Collector(count, reason_number(tag))
    subscriber.sink = collector

    async def send(i: int) -> None:
        body = pause_event(paused[i % len(paused)], f"{tag}-{i}")
        message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await events.publish(message, "worker.paused")

    sent = await paced(rate, count, send)
    await collector.wait(60)
    subscriber.sink = None
    return [collector.received[i] - sent[i] for i in range(count)]


def _expiry_number(body: bytes) -> int | None:
    """A worker notification of the expiring master: the worker's id; its expiry: 0."""
    note = json.loads(body)
    if note.get("masterid") != fleet.EXPIRY_MASTER:
        return None
    if "master" in note:  # its own: "active" after the heartbeat, then "expired"
        return 0 if note.get("event") == "expired" else None
    return int(note["workerid"])


@dataclass
class Expiry:
    """One repetition of the expiry measurement: the relay's floor, then the expiry."""

    relay: float = 0.0
    expiry: float = 0.0
    notified: int = 0
    repeats: int = 0
    order_ok: bool = True
    #: How far the wall clock moved against the monotonic one during the wait (s).
    clock_step: float = 0.0


async def _configure_expiring(subscriber: Subscriber, store: RedisStore, connect: bool) -> None:
    """Workers 1..5,000 get a pair (and a connection) on the expiring master."""
    master, builder = fleet.EXPIRY_MASTER, fleet.EXPIRY_BUILDER
    writes: list[Operation] = []
    for w in range(1, fleet.EXPIRY_WORKERS + 1):
        writes.append(WorkerConfigured(workerid=w, masterid=master, builderids=[builder]))
        if connect:
            writes.append(WorkerConnected(workerid=w, masterid=master, workerinfo=fleet.info_of(w)))
    await apply_all(store, writes)
    await subscriber.settle(store)


async def _relay_floor(subscriber: Subscriber, store: RedisStore) -> float:
    """Seconds from one atomic step that changes 5,000 workers to their last notification."""
    collector = Collector(fleet.EXPIRY_WORKERS, _expiry_number)
    subscriber.sink = collector
    started = time.perf_counter()
    await store.apply(DeconfigureAllWorkersForMaster(masterid=fleet.EXPIRY_MASTER))
    await collector.wait(60)
    subscriber.sink = None
    return max(collector.received.values()) - started


async def expiry_seconds(
    subscriber: Subscriber, store: RedisStore, client: RegistryClient, lease: float
) -> Expiry:
    """The relay's floor, then seconds from the master's lease end to its last notification."""
    result = Expiry()
    await _configure_expiring(subscriber, store, connect=False)
    result.relay = await _relay_floor(subscriber, store)
    await _configure_expiring(subscriber, store, connect=True)
    collector = Collector(fleet.EXPIRY_WORKERS + 1, _expiry_number)
    subscriber.sink = collector
    await client.master_heartbeat(fleet.EXPIRY_MASTER, name="bench-expiring")
    lease_end_ms = await store.redis.zscore(store.keys.leases, str(fleet.EXPIRY_MASTER))
    if lease_end_ms is None:
        raise RuntimeError("the heartbeat left no lease")
    wall_minus_perf = time.time() - time.perf_counter()
    await collector.wait(lease + 60)
    subscriber.sink = None
    # Redis decides the expiry by the wall clock, the arrival is timed by the monotonic
    # one: a clock step between the two (NTP, a paused VM) moves the expiry by as much.
    result.clock_step = time.time() - time.perf_counter() - wall_minus_perf
    last = collector.received[0]
    result.expiry = last + wall_minus_perf - lease_end_ms / 1000
    result.notified = len(collector.received)
    result.repeats = collector.repeats
    result.order_ok = last >= max(collector.received.values())
    return result
