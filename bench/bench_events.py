"""Event throughput of the daemon, against a floor measured in the same run.

Floor: a bare aio-pika consumer that only acks, draining the same number of persistent
messages from a quorum queue with the same prefetch. Measured: a daemon (in this
process) draining lifecycle events from its events queue and applying them to Redis,
each acked after its commit. Both queues are filled before consuming starts, so the
figures are drain rates. Prints msg/s and the ratio to the floor. Cleans up after itself.

    .venv/bin/python bench/bench_events.py [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import aio_pika
from redis.asyncio import Redis

from registryd.amqp.topology import declare, delete_topology
from registryd.config import Settings
from registryd.daemon import Daemon
from registryd.logs import configure_logging
from registryd.protocol import Names
from registryd.store import Keys

AMQP = "amqp://guest:guest@127.0.0.1:5672/"


async def _fill(
    channel: aio_pika.abc.AbstractChannel, exchange: str, routing: str, bodies: list[bytes]
) -> None:
    target = await channel.get_exchange(exchange) if exchange else channel.default_exchange
    for start in range(0, len(bodies), 500):
        await asyncio.gather(
            *(
                target.publish(
                    aio_pika.Message(b, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=routing,
                )
                for b in bodies[start : start + 500]
            )
        )


async def floor(connection: aio_pika.abc.AbstractConnection, count: int, prefetch: int) -> float:
    """Messages per second a consumer that only acks drains from a quorum queue."""
    channel = await connection.channel()
    name = f"bench-floor-{uuid.uuid4().hex[:8]}"
    await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    try:
        await _fill(channel, "", name, [b'{"type": "x"}'] * count)
        consumer = await connection.channel()
        await consumer.set_qos(prefetch_count=prefetch)
        done = asyncio.Event()
        seen = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            await message.ack()
            seen += 1
            if seen == count:
                done.set()

        started = time.perf_counter()
        queue = await consumer.get_queue(name)
        tag = await queue.consume(on_message)
        await done.wait()
        rate = count / (time.perf_counter() - started)
        await queue.cancel(tag)
        return rate
    finally:
        await channel.queue_delete(name)


def _events(daemon: Daemon, outcome: str) -> float:
    value = daemon.metrics.registry.get_sample_value("registryd_events_total", {"outcome": outcome})
    return value or 0.0


def _taken(daemon: Daemon) -> float:
    return sum(_events(daemon, o) for o in ("applied", "duplicate", "dead_lettered"))


async def daemon_rate(
    connection: aio_pika.abc.AbstractConnection, count: int
) -> tuple[float, Settings]:
    """Events per second the daemon applies and acks."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    settings = Settings(prefix=prefix, metrics_port=0, log_level="warning")
    names = Names(prefix)
    channel = await connection.channel()
    await declare(channel, names)
    workers = 200
    events = [json.dumps({"type": "master.heartbeat", "masterid": 1, "name": "bench"}).encode()]
    redis = Redis()
    # Workers must exist before their events: make them through the store's script.
    from registryd.service import Registry  # noqa: PLC0415 - only the bench needs it here
    from registryd.store import RedisStore  # noqa: PLC0415

    registry = Registry(RedisStore(redis, Keys(prefix)))
    await registry.start()
    for i in range(workers):
        await registry.store.find_worker_id(f"w{i}")
    for i in range(count - 1):
        wid = 1 + i % workers
        kind = i // workers % 3
        if kind == 0:
            event = {
                "type": "worker.connected",
                "workerid": wid,
                "masterid": 1,
                "workerinfo": {"n": i},
            }
        elif kind == 1:
            event = {
                "type": "worker.configured",
                "workerid": wid,
                "masterid": 1,
                "builderids": [1 + i % 7],
            }
        else:
            event = {"type": "worker.paused", "workerid": wid, "paused": i % 2 == 0}
        events.append(json.dumps(event).encode())
    await _fill(channel, names.events, "worker.x", events)
    print(f"  {count} events queued; starting the daemon", flush=True)
    daemon = Daemon(settings)
    started = time.perf_counter()
    task = asyncio.create_task(daemon.serve())
    while True:
        queue = await channel.declare_queue(names.events, passive=True)
        if queue.declaration_result.message_count == 0 and _taken(daemon) >= count:
            break
        await asyncio.sleep(0.05)
    rate = count / (time.perf_counter() - started)
    dead = _events(daemon, "dead_lettered")
    assert dead == 0, f"{dead} bench events were dead-lettered: the bench is wrong"
    daemon.request_stop()
    await task
    await delete_topology(connection, names)
    async for key in redis.scan_iter(match=Keys(prefix).pattern(), count=5000):
        await redis.delete(key)
    await redis.aclose()
    return rate, settings


async def main(count: int) -> None:
    """Measure the floor, then the daemon, and print both with their ratio."""
    configure_logging("console", "warning")
    connection = await aio_pika.connect(AMQP)
    try:
        settings = Settings()
        base = await floor(connection, count, settings.events_batch * 2)
        print(f"floor: bare consume+ack           {base:9.0f} msg/s ({count} messages)")
        rate, _ = await daemon_rate(connection, count)
        print(
            f"daemon: apply+commit+ack           {rate:9.0f} msg/s   "
            f"ratio to floor {rate / base:5.2f}"
        )
    finally:
        await connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().events))
