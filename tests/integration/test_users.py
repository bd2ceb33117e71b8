"""Real RabbitMQ users with exactly the permissions docs/protocol.md section 10 grants.

A private RabbitMQ node (the shared broker is never reconfigured) and a private Redis,
so the default prefix ``registry`` the documented regexes name can be used as it is.
The users and their grants are the ``rabbitmqctl set_permissions`` commands of section
10, read from the document itself: if reality differed from the docs, this fails.
Authorization (section 9) maps ``master-a`` to master 10 and ``master-b`` to 11.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from aiormq.exceptions import ChannelAccessRefused

from registryd.amqp.topology import delete_topology
from registryd.client import RegistryClient
from registryd.config import Settings
from registryd.errors import Forbidden
from registryd.protocol import DEFAULT_PREFIX, Names
from tests.harness import PrivateRabbit, PrivateRedis, RunningDaemon, start_daemon, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.rabbit_node]

DOCS = Path(__file__).parents[2] / "docs" / "protocol.md"
#: The users of section 10's commands, and the second master this test adds.
DAEMON, MASTER, SUBSCRIBER, OTHER_MASTER = "registryd", "master-a", "watcher", "master-b"
MASTERS = {MASTER: [10], OTHER_MASTER: [11]}
NAMES = Names(DEFAULT_PREFIX)


def documented_permissions() -> dict[str, tuple[str, str, str]]:
    """user: (configure, write, read) of each ``rabbitmqctl set_permissions`` in section 10."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("## 10. RabbitMQ permissions") : text.index("## 11.")]
    grants = {}
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL):
        words = shlex.split(block.replace("\\\n", " "))
        if words[:2] == ["rabbitmqctl", "set_permissions"]:
            assert words[2:4] == ["-p", "/"], block
            user, configure, write, read = words[4:]
            grants[user] = (configure, write, read)
    assert set(grants) == {DAEMON, MASTER, SUBSCRIBER}, grants
    return grants


@pytest.fixture(scope="module")
def node(private_rabbit: PrivateRabbit) -> PrivateRabbit:
    """The session's private node (its plain listener)."""
    return private_rabbit


def password(user: str) -> str:
    """Each user's password (a test's own node: no secret to keep)."""
    return f"{user}-pw"


@pytest.fixture(scope="module")
def users(node: PrivateRabbit) -> Iterator[dict[str, str]]:
    """user: AMQP URL; added with the documented permissions, deleted afterwards."""
    grants = documented_permissions()
    grants[OTHER_MASTER] = grants[MASTER]

    async def add(user: str) -> None:
        await node.ctl("add_user", user, password(user))
        await node.ctl("set_permissions", "-p", "/", user, *grants[user])

    asyncio.run(_each(add, grants))
    try:
        yield {user: node.amqp_url(user, password(user)) for user in grants}
    finally:

        async def delete(user: str) -> None:
            await node.ctl("delete_user", user)

        asyncio.run(_each(delete, grants))


async def _each(action: Callable[[str], Awaitable[None]], users: Iterable[str]) -> None:
    await asyncio.gather(*(action(user) for user in users))


@pytest.fixture
async def daemon(node: PrivateRabbit, users: dict[str, str]) -> AsyncIterator[RunningDaemon]:
    """The daemon logged in as ``registryd`` on a private Redis, authorization on."""
    redis = PrivateRedis()
    await redis.start()
    settings = Settings(
        amqp_url=users[DAEMON],
        redis_url=redis.url,
        auth_masters=MASTERS,
        metrics_port=0,
        grace=5.0,
    )
    try:
        running = await start_daemon(settings)
        try:
            yield running
        finally:
            await running.stop()
    finally:
        redis.kill()
        await _delete_topology(node)


async def _delete_topology(node: PrivateRabbit) -> None:
    connection = await aio_pika.connect(node.amqp_url())  # guest: the node's administrator
    async with connection:
        await delete_topology(connection, NAMES)


async def _subscribe(connection: AbstractConnection) -> asyncio.Queue[AbstractIncomingMessage]:
    """A subscriber's own server-named queue, bound ``#`` to the notifications."""
    channel = await connection.channel()
    exchange = await channel.get_exchange(NAMES.notifications)  # passive: no permission
    queue = await channel.declare_queue(exclusive=True)
    assert queue.name.startswith("amq.gen-")
    await queue.bind(exchange, "#")
    inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    await queue.consume(inbox.put, no_ack=True)
    return inbox


async def _dead_letters(node: PrivateRabbit, count: int) -> list[AbstractIncomingMessage]:
    """The first ``count`` dead letters, read by the administrator (no master may)."""
    connection = await aio_pika.connect(node.amqp_url())
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(NAMES.dead)
        letters: list[AbstractIncomingMessage] = []

        async def got_them() -> bool:
            message = await queue.get(no_ack=True, fail=False)
            if message is not None:
                letters.append(message)
            return len(letters) >= count

        await wait_for(got_them, 20)
        return letters


async def test_a_master_publishes_events_and_calls_rpc_and_may_not_forge_another(
    node: PrivateRabbit, users: dict[str, str], daemon: RunningDaemon
) -> None:
    """Each party with only its documented permissions does its part, and no more.

    master-a publishes an event and calls RPCs (reads and writes); its writes for
    master 11 are ``forbidden`` (an RPC error, a dead letter). The daemon declared,
    consumed, answered, relayed (the watcher sees the master) and dead-lettered.
    """
    subscriber = await aio_pika.connect(users[SUBSCRIBER])
    async with subscriber, await RegistryClient.connect(users[MASTER], timeout=10) as master:
        notes = await _subscribe(subscriber)
        assert (await master.ping()).epoch
        await master.publish_event("master.heartbeat", {"masterid": 10, "name": "ci-a"})
        workerid = await master.find_worker_id("linux-1")
        await master.worker_configured(workerid, 10, [1])
        with pytest.raises(Forbidden):
            await master.worker_configured(workerid, 11, [1])
        with pytest.raises(Forbidden):
            await master.master_heartbeat(11)
        forged = str(uuid.uuid4())
        await master.publish_event("master.heartbeat", {"masterid": 11}, message_id=forged)

        async def master_listed() -> bool:
            return [m.id for m in await master.get_masters()] == [10]

        await wait_for(master_listed)
        (letter,) = await _dead_letters(node, 1)
        assert letter.message_id == forged
        assert json.loads(str(letter.headers["x-registry-error"]))["code"] == "forbidden"
        assert letter.headers["x-registry-user-id"] == MASTER
        await wait_for(lambda: _seen(notes, "masters.10.active"))


def _seen(inbox: asyncio.Queue[AbstractIncomingMessage], routing_key: str) -> bool:
    """Whether a message with ``routing_key`` came (taking what came so far)."""
    while not inbox.empty():
        if inbox.get_nowait().routing_key == routing_key:
            return True
    return False


async def test_a_subscriber_cannot_publish_events(
    users: dict[str, str], daemon: RunningDaemon
) -> None:
    """The broker itself refuses the watcher's publish to the events exchange."""
    connection = await aio_pika.connect(users[SUBSCRIBER])
    async with connection:
        channel = await connection.channel()  # publisher confirms: the refusal is seen
        exchange = await channel.get_exchange(NAMES.events)
        body = json.dumps({"type": "master.heartbeat", "masterid": 10}).encode()
        with pytest.raises(ChannelAccessRefused, match="ACCESS_REFUSED"):
            await exchange.publish(
                aio_pika.Message(body, user_id=SUBSCRIBER), routing_key="master.heartbeat"
            )
