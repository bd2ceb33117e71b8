"""The RPC floor: a bare aio-pika echo server (its own process) and its direct reply-to client.

The server does what registryd's RPC server does with a request, minus the work:
consume from a durable queue with a prefetch of 64 (each delivery its own task, as
aio-pika runs consumers), publish a reply through the default exchange to ``reply_to``
with the request's ``correlation_id``, then ack. A request whose body is a decimal
number ``n`` is answered with ``n`` bytes (so the floor of a large reply costs a small
request and a large reply, like ``getWorkers``); any other body is echoed.

    .venv/bin/python -m bench.echo --url amqp://... --queue bench-x.echo
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import uuid

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from registryd.protocol import DIRECT_REPLY_TO, JSON

__all__ = ["EchoClient", "serve"]

PREFETCH = 64


async def serve(url: str, queue_name: str) -> None:
    """Answer requests on ``queue_name`` until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=False)
    await channel.set_qos(prefetch_count=PREFETCH)
    queue = await channel.declare_queue(queue_name, durable=True)
    payloads: dict[int, bytes] = {}

    async def on_request(message: AbstractIncomingMessage) -> None:
        body = message.body
        if body.isdigit():
            body = payloads.setdefault(int(body), b"x" * int(body))
        reply = aio_pika.Message(body, content_type=JSON, correlation_id=message.correlation_id)
        await channel.default_exchange.publish(
            reply, routing_key=message.reply_to or "", mandatory=False
        )
        await message.ack()

    await queue.consume(on_request)
    print("ready", flush=True)
    await stop.wait()
    await connection.close()


class EchoClient:
    """A bare direct reply-to client: publish, wait for the reply with that correlation id."""

    def __init__(self, channel: AbstractChannel, queue_name: str) -> None:
        self.channel = channel
        self.queue_name = queue_name
        self._pending: dict[str, asyncio.Future[bytes]] = {}

    @classmethod
    async def open(cls, connection: AbstractConnection, queue_name: str) -> EchoClient:
        """A client on a channel of its own, consuming direct reply-to (no-ack) first."""
        channel = await connection.channel(publisher_confirms=False)
        client = cls(channel, queue_name)
        replies = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)
        await replies.consume(client._on_reply, no_ack=True)
        return client

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._pending.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message.body)

    async def call(self, body: bytes) -> bytes:
        """One round trip: ``body`` out, the reply's body back."""
        correlation_id = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        message = aio_pika.Message(
            body, content_type=JSON, correlation_id=correlation_id, reply_to=DIRECT_REPLY_TO
        )
        await self.channel.default_exchange.publish(message, self.queue_name, mandatory=False)
        return await asyncio.wait_for(future, 30)

    async def close(self) -> None:
        """Close the channel."""
        await self.channel.close()


def main() -> None:
    """Run the echo server."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--queue", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.url, args.queue))


if __name__ == "__main__":
    main()
