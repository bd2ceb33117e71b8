"""PROTOCOL.md section 3, the RabbitMQ names of a prefix, as RabbitMQ itself lists them."""

from __future__ import annotations

import asyncio
import json
import subprocess

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection
from redis.asyncio import Redis

from registryd.config import Settings
from tests.harness import Json, Wire, serving, start_daemon

pytestmark = pytest.mark.integration


def _rabbitmqctl(*args: str) -> list[Json]:
    out = subprocess.run(
        ["rabbitmqctl", *args, "--formatter", "json", "-q"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    rows: list[Json] = json.loads(out)
    return rows


async def test_s3_names_kinds_and_arguments(wire: Wire) -> None:
    """§3 the names table: kinds, durability, quorum, single active consumer, bound with "#"."""
    queues, exchanges, bindings = await asyncio.gather(
        asyncio.to_thread(_rabbitmqctl, "list_queues", "name", "durable", "type", "arguments"),
        asyncio.to_thread(_rabbitmqctl, "list_exchanges", "name", "type", "durable"),
        asyncio.to_thread(
            _rabbitmqctl,
            "list_bindings",
            "source_name",
            "destination_name",
            "destination_kind",
            "routing_key",
        ),
    )
    q = {row["name"]: row for row in queues if row["name"].startswith(f"{wire.prefix}.")}
    x = {row["name"]: row for row in exchanges if row["name"].startswith(f"{wire.prefix}.")}
    assert {wire.events, wire.rpc, wire.dead} == set(q)
    assert {
        wire.events: ("topic", True),
        wire.notifications: ("topic", True),
        wire.dead: ("fanout", True),
    } == {name: (row["type"], row["durable"]) for name, row in x.items()}
    assert all(row["durable"] for row in q.values())
    assert "quorum" == q[wire.events]["type"]
    raw_args = q[wire.events]["arguments"]
    args = raw_args if isinstance(raw_args, dict) else {a[0]: a[-1] for a in raw_args}
    assert (True, wire.dead) == (args["x-single-active-consumer"], args["x-dead-letter-exchange"])
    assert args["x-delivery-limit"] >= 1
    ours = {
        (b["source_name"], b["destination_name"], b["routing_key"])
        for b in bindings
        if b["destination_name"] in (wire.events, wire.dead) and b["source_name"]
    }
    assert (wire.events, wire.events, "#") in ours
    assert wire.dead in {b[0] for b in ours if b[1] == wire.dead}  # fanout: any key routes


async def test_s3_clients_may_publish_once_the_daemon_has_run(
    settings: Settings, redis: Redis, amqp: AbstractConnection
) -> None:
    """§3 declared at start "so that a client may publish as soon as the daemon has run once"."""
    running = await start_daemon(settings)
    await running.stop()
    channel = await amqp.channel()
    exchange = await channel.get_exchange(f"{settings.prefix}.events", ensure=False)
    await exchange.publish(
        aio_pika.Message(b'{"type": "master.heartbeat", "masterid": 3}', delivery_mode=2),
        routing_key="master.heartbeat",
        mandatory=True,
    )
    await channel.close()
    async with serving(settings, amqp, fresh=False) as again:
        await again.settled()
        assert [3] == [m["id"] for m in await again.ok("getMasters")]
