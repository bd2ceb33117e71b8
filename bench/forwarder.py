"""The ingest path's second floor: a bare relay (its own process), with no Redis and no registry.

The protocol makes every applied event cost two broker hops: the event in (published with
confirms, consumed, acked after commit) and its notification out (published with
confirms, consumed by a subscriber). The issue's ingest floor measures the first hop
only. This process does the second hop the way registryd does it, minus the work in
between: consume a quorum queue with registryd's prefetch, take what is waiting in
batches of up to 256, publish each body to a topic exchange through registryd's own
batch publisher (frames in one write, confirms awaited together), then ack the batch
with one ``multiple`` ack. What it sustains bounds end-to-end ingest on this broker.

    .venv/bin/python -m bench.forwarder --url amqp://... --queue Q --exchange X
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import aiormq
import uvloop
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from registryd.amqp.batch import BatchPublisher
from registryd.protocol import JSON

__all__ = ["forward"]

#: registryd's defaults: ``events_batch`` 256, a prefetch of twice that.
BATCH = 256
PREFETCH = 2 * BATCH
#: The routing key of every forwarded message (the subscriber binds ``#``).
ROUTING_KEY = "workers.1.state_updated"


async def forward(url: str, queue: str, exchange: str) -> None:
    """Forward ``queue`` to ``exchange`` until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    connection = await aiormq.connect(url)
    inbound = await connection.channel()
    await inbound.basic_qos(prefetch_count=PREFETCH)
    outbound = await connection.channel(publisher_confirms=True)
    if not isinstance(outbound, aiormq.Channel):
        raise TypeError(f"not an aiormq.Channel: {outbound!r}")
    # As registryd's relay publishes notifications: persistent JSON.
    properties = Basic.Properties(content_type=JSON, delivery_mode=2)
    publisher = BatchPublisher(outbound, exchange, properties)
    inbox: asyncio.Queue[DeliveredMessage] = asyncio.Queue()

    async def deliver(message: DeliveredMessage) -> None:
        inbox.put_nowait(message)

    await inbound.basic_consume(queue, deliver)
    print("ready", flush=True)
    relaying = asyncio.create_task(_relay(inbox, publisher))
    await stop.wait()
    relaying.cancel()
    await connection.close()


async def _relay(inbox: asyncio.Queue[DeliveredMessage], publisher: BatchPublisher) -> None:
    while True:
        batch = [await inbox.get()]
        while len(batch) < BATCH and not inbox.empty():
            batch.append(inbox.get_nowait())
        await publisher.publish([(ROUTING_KEY, m.body) for m in batch])
        last = batch[-1]
        if last.delivery_tag is not None:
            await last.channel.basic_ack(last.delivery_tag, multiple=True)


def main() -> None:
    """Run the forwarder."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--exchange", required=True)
    args = parser.parse_args()
    uvloop.run(forward(args.url, args.queue, args.exchange))  # as `registryd serve` runs


if __name__ == "__main__":
    main()
