"""How the RabbitMQ names of :class:`registryd.protocol.Names` are declared (section 3).

On a cluster, a quorum queue's members are chosen when it is declared: up to
``quorum_cluster_size`` (3 unless the broker's configuration says otherwise) of the
cluster's nodes at that moment, running ones first. No ``x-quorum-initial-group-size``
is sent: RabbitMQ checks that argument on every declare, so adding it would make the
queues of existing deployments refuse the daemon. A node that joins later gets no
member until an operator adds one (``rabbitmq-queues grow``).

The events queue is always a quorum queue. The RPC and dead-letter queues are classic
queues (on one node) unless ``quorum_queues`` is set: on a cluster they must be
replicated too, or losing their node stops RPC and drops dead letters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange, AbstractQueue
from aiormq.exceptions import ChannelPreconditionFailed

from registryd.errors import ConfigError
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


async def declare(
    channel: AbstractChannel,
    names: Names,
    delivery_limit: int = 20,
    *,
    quorum_queues: bool = False,
) -> Topology:
    """Declare everything (idempotently: same arguments every time) and bind it.

    ``quorum_queues``: the RPC and dead-letter queues are quorum queues too. A queue that
    exists with the other type is a :class:`ConfigError` naming the queue to delete.
    """
    topic = aio_pika.ExchangeType.TOPIC
    dead_exchange = await channel.declare_exchange(
        names.dead, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead_queue = await _declare_queue(channel, names.dead, quorum_queues)
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
    rpc_queue = await _declare_queue(channel, names.rpc, quorum_queues)
    notifications = await channel.declare_exchange(names.notifications, topic, durable=True)
    return Topology(
        names, events_exchange, events_queue, rpc_queue, notifications, dead_exchange, dead_queue
    )


async def _declare_queue(channel: AbstractChannel, name: str, quorum: bool) -> AbstractQueue:
    arguments: dict[str, Any] = {"x-queue-type": "quorum"} if quorum else {}
    try:
        return await channel.declare_queue(name, durable=True, arguments=arguments)
    except ChannelPreconditionFailed as exc:
        wanted, other = ("quorum", "classic") if quorum else ("classic", "quorum")
        raise ConfigError(
            f"queue {name} exists as a {other} queue but amqp.quorum_queues asks for a "
            f"{wanted} one ({exc}); set REGISTRYD_AMQP_QUORUM_QUEUES to match it, or stop "
            f"every daemon of the prefix and delete the queue (rabbitmqctl delete_queue {name})"
        ) from None


async def delete_topology(connection: AbstractConnection, names: Names) -> None:
    """Delete every queue and exchange of a prefix (tests and benchmarks clean up)."""
    channel = await connection.channel()
    for queue in (names.events, names.rpc, names.dead):
        await channel.queue_delete(queue)
    for exchange in (names.events, names.notifications, names.dead):
        await channel.exchange_delete(exchange)
    await channel.close()
