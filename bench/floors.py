"""The floors: what the broker, Redis and the JSON parser cost with no registryd in the way.

Each function takes one repetition's sample; :mod:`bench.suite` interleaves them with
registryd's figures, so a floor and its figure see the same machine.

- echo RPC (:mod:`bench.echo`, server in its own process): sequential latency with a
  small body, calls/s with 64 in flight, and one call with a large reply;
- publish with confirms, and consume+ack from a quorum queue (prefetch and acks as
  registryd's consumer: ``multiple`` acks per batch of what is waiting);
- publish to consume latency at a steady rate;
- the second hop every event costs, through a bare relay (:mod:`bench.forwarder`):
  published with confirms to its queue, forwarded with confirms, consumed here;

Every consumer here and in :mod:`bench.registry_paths` (the floors' and the
notification subscriber) is :func:`consume`: deliveries taken from aiormq directly,
as registryd's own consumer takes them. aio-pika's ``IncomingMessage`` decodes every
property of every delivery; at thousands a second that made the bench's subscriber,
not the daemon, the slowest part of what a row measured.
- ``MGET`` of documents and ``json.loads`` of a reply (in :mod:`bench.suite`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aiormq.abc import DeliveredMessage

from bench.echo import EchoClient
from bench.stats import FEWEST, latencies

__all__ = [
    "Collector",
    "consume",
    "consume_ack_seconds",
    "echo_latencies",
    "echo_rate",
    "in_flight",
    "paced",
    "publish_confirmed",
    "publish_consume_latencies",
    "relayed_seconds",
]

#: Calls kept in flight by the throughput figures (registryd's ``rpc_concurrency``).
IN_FLIGHT = 64
#: Publishes awaiting their confirm at once, for the floor and for registryd alike.
WINDOW = 256


async def echo_latencies(
    client: EchoClient, size: int, calls: int, seconds: float
) -> tuple[float, float]:
    """p50 and p99 of sequential echo calls answered with ``size`` bytes."""
    body = b"%d" % size
    return await latencies(lambda _: client.call(body), calls, seconds)


async def in_flight(call: Callable[[int], Awaitable[object]], calls: int, seconds: float) -> float:
    """Calls per second made by :data:`IN_FLIGHT` concurrent loops (``calls`` or ``seconds``)."""
    counter = iter(range(calls))
    done = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def loop() -> None:
        nonlocal done
        for i in counter:
            await call(i)
            done += 1
            if time.perf_counter() > deadline and done >= FEWEST:
                return

    await asyncio.gather(*(loop() for _ in range(IN_FLIGHT)))
    return done / (time.perf_counter() - started)


async def echo_rate(client: EchoClient, size: int, calls: int, seconds: float) -> float:
    """Echo calls per second with :data:`IN_FLIGHT` in flight."""
    body = b"%d" % size
    return await in_flight(lambda _: client.call(body), calls, seconds)


async def publish_confirmed(
    exchange: AbstractExchange, routing_key: str | Callable[[int], str], bodies: Sequence[bytes]
) -> float:
    """Publish persistent ``bodies`` with confirms, :data:`WINDOW` at a time; seconds taken."""
    gate = asyncio.Semaphore(WINDOW)

    async def one(i: int, body: bytes) -> None:
        key = routing_key if isinstance(routing_key, str) else routing_key(i)
        try:
            await exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), key
            )
        finally:
            gate.release()

    started = time.perf_counter()
    tasks = []
    for i, body in enumerate(bodies):
        await gate.acquire()
        tasks.append(asyncio.ensure_future(one(i, body)))
    await asyncio.gather(*tasks)
    return time.perf_counter() - started


async def consume(
    channel: AbstractChannel,
    queue_name: str,
    on_message: Callable[[DeliveredMessage], object],
    *,
    no_ack: bool,
) -> str:
    """Consume ``queue_name`` on ``channel``'s aiormq channel; the consumer tag.

    ``on_message`` is called once per delivery, in order (aiormq runs each call as a
    task, started in delivery order; a plain function runs to completion in its turn).
    """
    underlay = await channel.get_underlay_channel()

    async def deliver(message: DeliveredMessage) -> None:
        on_message(message)

    consuming = await underlay.basic_consume(queue_name, deliver, no_ack=no_ack)
    if consuming.consumer_tag is None:
        raise RuntimeError(f"no consumer tag consuming {queue_name}")
    return consuming.consumer_tag


async def cancel(channel: AbstractChannel, tag: str) -> None:
    """Stop a consumer :func:`consume` started."""
    await (await channel.get_underlay_channel()).basic_cancel(tag)


async def consume_ack_seconds(
    connection: AbstractConnection, queue_name: str, count: int, prefetch: int, batch: int
) -> float:
    """Seconds a bare consumer takes to drain ``count`` waiting messages, acking per batch."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=prefetch)
    queue = await channel.get_queue(queue_name)
    declared = await queue.declare()
    if declared.message_count != count:
        raise RuntimeError(f"{queue_name} holds {declared.message_count}, not {count}")
    done = asyncio.get_running_loop().create_future()
    underlay = await channel.get_underlay_channel()
    seen = 0
    acks: list[asyncio.Task[None]] = []

    def on_message(message: DeliveredMessage) -> None:
        nonlocal seen
        seen += 1
        if (seen % batch == 0 or seen == count) and message.delivery_tag is not None:
            acks.append(
                asyncio.ensure_future(underlay.basic_ack(message.delivery_tag, multiple=True))
            )
        if seen == count and not done.done():
            done.set_result(None)

    started = time.perf_counter()
    tag = await consume(channel, queue_name, on_message, no_ack=False)
    await asyncio.wait_for(done, 120)
    await asyncio.gather(*acks)
    elapsed = time.perf_counter() - started
    await cancel(channel, tag)
    await channel.close()
    return elapsed


class Collector:
    """Receive times of numbered messages, keyed by what ``number`` reads from each body."""

    def __init__(self, expected: int, number: Callable[[bytes], int | None]) -> None:
        self.expected = expected
        self.number = number
        self.received: dict[int, float] = {}
        #: Deliveries that are not ours, and second deliveries of a number.
        self.others = 0
        self.repeats = 0
        self._done = asyncio.Event()

    def __call__(self, body: bytes) -> None:
        """Record one delivery's body (the consumer's callback)."""
        n = self.number(body)
        if n is None:
            self.others += 1
            return
        if n in self.received:
            self.repeats += 1
            return
        self.received[n] = time.perf_counter()
        if len(self.received) >= self.expected:
            self._done.set()

    async def wait(self, within: float) -> None:
        """Until every expected number arrived; TimeoutError names how many did."""
        try:
            await asyncio.wait_for(self._done.wait(), within)
        except TimeoutError:
            raise TimeoutError(
                f"{len(self.received)} of {self.expected} arrived within {within} s"
            ) from None


async def paced(rate: float, count: int, send: Callable[[int], Awaitable[object]]) -> list[float]:
    """Start ``send(i)`` at ``rate`` per second (steady, not in bursts); start times."""
    started = time.perf_counter()
    sent: list[float] = []
    tasks = []
    for i in range(count):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent.append(time.perf_counter())
        tasks.append(asyncio.ensure_future(send(i)))
    await asyncio.gather(*tasks)
    return sent


async def publish_consume_latencies(
    channel: AbstractChannel, queue_name: str, rate: float, count: int
) -> list[float]:
    """Seconds from publish to delivery of ``count`` persistent messages sent at ``rate``/s."""
    queue = await channel.declare_queue(queue_name, exclusive=True, auto_delete=True)
    collector = Collector(count, int)
    tag = await consume(channel, queue.name, lambda m: collector(m.body), no_ack=True)
    exchange = channel.default_exchange

    async def send(i: int) -> None:
        message = aio_pika.Message(b"%d" % i, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await exchange.publish(message, queue_name)

    sent = await paced(rate, count, send)
    await collector.wait(30)
    await cancel(channel, tag)
    return [collector.received[i] - sent[i] for i in range(count)]


async def relayed_seconds(
    channel: AbstractChannel,
    queue_name: str,
    exchange_name: str,
    bodies: Sequence[bytes],
    number: Callable[[bytes], int | None],
) -> float:
    """Seconds from the first of ``bodies`` published to ``queue_name`` to the last relayed.

    The bare relay (:mod:`bench.forwarder`) forwards ``queue_name`` to ``exchange_name``;
    an exclusive queue bound there receives here, as the notification subscriber does.
    """
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(exchange_name, "#")
    collector = Collector(len(bodies), number)
    tag = await consume(channel, queue.name, lambda m: collector(m.body), no_ack=True)
    started = time.perf_counter()
    await publish_confirmed(channel.default_exchange, queue_name, bodies)
    await collector.wait(120)
    elapsed = max(collector.received.values()) - started
    await cancel(channel, tag)
    await queue.delete()
    return elapsed
