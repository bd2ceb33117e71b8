"""How the RabbitMQ names of :class:`registryd.protocol.Names` are declared (section 3)."""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractQueue

from registryd.protocol import Names

__all__ = ["Topology", "declare", "delete_topology"]


@dataclass(frozen=True, slots=True)
class Topology:
    """The declared objects, bound to the channel that declared them."""

    names: Names
    events_exchange: AbstractExchange
    events_queue: AbstractQueue
    rpc_queue: AbstractQueue
    notifications: AbstractExchange
    dead_exchange: AbstractExchange
    dead_queue: AbstractQueue


async def declare(channel: AbstractChannel, names: Names, delivery_limit: int = 20) -> Topology:
    """Declare everything (idempotently: same arguments every time) and bind it."""
    topic = aio_pika.ExchangeType.TOPIC
    dead_exchange = await channel.declare_exchange(
        names.dead, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead_queue = await channel.declare_queue(names.dead, durable=True)
    await dead_queue.bind(dead_exchange)
    events_exchange = await channel.declare_exchange(names.events, topic, durable=True)
    events_queue = await channel.declare_queue(
        names.events,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-single-active-consumer": True,
            # A message that keeps crashing its consumer goes to the dead queue, not round again.
            "x-delivery-limit": delivery_limit,
            "x-dead-letter-exchange": names.dead,
        },
    )
    await events_queue.bind(events_exchange, routing_key="#")
    rpc_queue = await channel.declare_queue(names.rpc, durable=True)
    notifications = await channel.declare_exchange(names.notifications, topic, durable=True)
    return Topology(
        names, events_exchange, events_queue, rpc_queue, notifications, dead_exchange, dead_queue
    )


async def delete_topology(connection: AbstractConnection, names: Names) -> None:
    """Delete every queue and exchange of a prefix (tests and benchmarks clean up)."""
    channel = await connection.channel()
    for queue in (names.events, names.rpc, names.dead):
        await channel.queue_delete(queue)
    for exchange in (names.events, names.notifications, names.dead):
        await channel.exchange_delete(exchange)
    await channel.close()
