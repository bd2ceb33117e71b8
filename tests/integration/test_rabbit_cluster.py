"""registryd on a three-node RabbitMQ cluster: a node stopped mid-burst loses nothing.

One cluster for the module (three private nodes, the second and third joined to the
first: ``rabbitmqctl -n N stop_app; reset; join_cluster FIRST; start_app``). Each test
has its own prefix on the shared Redis; the queues are declared through the first node
beforehand, so that their Raft leader is there (RabbitMQ places it on the declaring
node) while the daemon connects to the second. A stopped node is started again
(``start_app``) before the next test. Each failover prints one line of figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aio_pika
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from registryd.amqp.topology import declare
from registryd.client import RegistryClient
from registryd.config import Settings
from registryd.errors import RegistryError
from registryd.protocol import Names
from tests.harness import (
    REDIS_URL,
    PrivateRabbit,
    RunningDaemon,
    clean_prefix,
    daemon_settings,
    form_cluster,
    start_daemon,
    unique_prefix,
    wait_for,
)
from tests.integration.failover import Burst, Outcome, ReadyClock, outcome

pytestmark = [
    pytest.mark.integration,
    pytest.mark.rabbit_node,
    pytest.mark.ha,
    pytest.mark.asyncio(loop_scope="module"),
    # The first test also forms the cluster (three nodes started, two joined).
    pytest.mark.timeout(300),
]

WORKERS = 20
PER_WORKER = 60
#: Seconds the registry may take to show every event of a burst once it is over.
SETTLE_SECONDS = 60.0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster() -> AsyncIterator[list[PrivateRabbit]]:
    """Three clustered private nodes, stopped (by PID) at the end of the module."""
    nodes = [PrivateRabbit() for _ in range(3)]
    try:
        await form_cluster(nodes)
        yield nodes
    finally:
        await asyncio.gather(*(node.stop() for node in nodes))


@dataclass
class Registry:
    """A daemon on the cluster, and what the tests need around it."""

    prefix: str
    nodes: list[PrivateRabbit]
    daemon: RunningDaemon
    settings: Settings
    #: The nodes whose application a test stopped (started again after it).
    stopped: list[PrivateRabbit] = field(default_factory=list)

    async def stop(self, node: PrivateRabbit) -> None:
        """Stop the node's RabbitMQ application (``rabbitmqctl stop_app``)."""
        self.stopped.append(node)
        await node.ctl("stop_app")

    def urls(self, *order: int) -> str:
        """The nodes' URLs in that order, comma-separated (the setting's form)."""
        return ",".join(self.nodes[i].amqp_url() for i in order)

    async def client(self, *order: int) -> RegistryClient:
        """A client library connection trying the nodes in that order."""
        return await RegistryClient.connect(self.urls(*order), self.prefix, timeout=5)

    async def leader(self, queue: str) -> str:
        """The node holding the Raft leader of a quorum queue of this prefix."""
        rows = await self.nodes[2].quorum_status(f"{self.prefix}.{queue}")
        return next(str(row["Node Name"]) for row in rows if row["Raft State"] == "leader")


@pytest_asyncio.fixture(loop_scope="module")
async def registry(cluster: list[PrivateRabbit]) -> AsyncIterator[Registry]:
    """A daemon connected to node 1 first; the quorum queues' leaders on node 0."""
    prefix = unique_prefix()
    async with await aio_pika.connect(cluster[0].amqp_url()) as first:
        await declare(await first.channel(), Names(prefix), quorum_queues=True)
    settings = daemon_settings(prefix).model_copy(
        update={
            "amqp_url": ",".join(cluster[i].amqp_url() for i in (1, 2, 0)),
            "amqp_quorum_queues": True,
        }
    )
    stopped: list[PrivateRabbit] = []
    try:
        daemon = await start_daemon(settings)
        try:
            yield Registry(prefix, cluster, daemon, settings, stopped)
        finally:
            await daemon.stop()
    finally:
        # Started again before the next test: its member of each queue catches up.
        for node in stopped:
            await node.ctl("start_app")
        redis = Redis.from_url(REDIS_URL)
        async with await aio_pika.connect(cluster[0].amqp_url()) as connection:
            await clean_prefix(connection, redis, prefix)
        await redis.aclose()


async def _failover(
    registry: Registry, publisher: RegistryClient, stop: PrivateRabbit, what: str
) -> Outcome:
    """A burst through ``publisher``; ``stop``'s application stopped a third of the way."""
    async with await registry.client(2, 0) as reader:
        await _workers(reader)
        since = (await reader.ping()).revision
        burst = Burst(publisher, range(1, WORKERS + 1), PER_WORKER, registry.prefix)
        burst.at = burst.total // 3
        health = registry.daemon.daemon.health
        async with ReadyClock(lambda: health.ready) as clock:
            running = asyncio.create_task(burst.run())
            await burst.reached.wait()
            await registry.stop(stop)
            await running
            await wait_for(lambda: health.ready, 30)
            result = await outcome(reader, burst, since, SETTLE_SECONDS)
    print(result.line(what, clock.longest))  # noqa: T201 - the failover's figures
    return result


async def _workers(client: RegistryClient) -> None:
    """Workers 1..WORKERS exist (findWorkerId creates them in order on a new prefix)."""
    for index in range(1, WORKERS + 1):
        assert index == await client.find_worker_id(f"w-{index}")


def _nothing_lost(result: Outcome) -> None:
    assert (result.lost, result.duplicated, result.out_of_order, result.revisions_missing) == (
        0,
        0,
        0,
        0,
    ), result


async def test_every_queue_has_a_member_on_every_node(registry: Registry) -> None:
    """Declared on a formed three-node cluster, each quorum queue has three members."""
    queues = [f"{registry.prefix}.{queue}" for queue in ("events", "rpc", "dead")]
    statuses = await asyncio.gather(*(registry.nodes[0].quorum_status(q) for q in queues))
    for queue, rows in zip(queues, statuses, strict=True):
        members = ", ".join(f"{row['Node Name']} {row['Raft State']}" for row in rows)
        print(f"rabbitmq-queues quorum_status {queue}: {members}")  # noqa: T201 - shown
        assert sorted(row["Node Name"] for row in rows) == sorted(n.node for n in registry.nodes)
    assert await registry.leader("events") == registry.nodes[0].node


async def test_the_node_of_the_daemons_connection_stopped_mid_burst(registry: Registry) -> None:
    """Node 1 (the daemon's, not a leader) stops: the daemon moves to node 2; nothing lost."""
    async with await registry.client(2, 0) as publisher:
        result = await _failover(registry, publisher, registry.nodes[1], "daemon's node stopped")
    _nothing_lost(result)


async def test_the_quorum_queues_leader_stopped_mid_burst(registry: Registry) -> None:
    """Node 0 (every leader, neither the daemon's nor the publisher's node) stops."""
    async with await registry.client(2, 1) as publisher:
        result = await _failover(registry, publisher, registry.nodes[0], "queues' leader stopped")
    _nothing_lost(result)
    assert await registry.leader("events") != registry.nodes[0].node


async def test_the_client_library_fails_over_to_another_node(registry: Registry) -> None:
    """Node 2 (the client's only) stops: its calls fail, then it connects to node 0."""
    async with await registry.client(2, 0) as client:
        caller = RpcCaller(client)
        async with caller:
            result = await _failover(registry, client, registry.nodes[2], "client's node stopped")
            answered = caller.answered
            await wait_for(lambda: caller.answered > answered, 10)
    _nothing_lost(result)
    print(  # noqa: T201 - the failover's figures
        f"client's node stopped: getWorker calls answered {caller.answered}, failed "
        f"{caller.failed}, longest without an answer {caller.longest_gap:.2f} s"
    )


class RpcCaller:
    """Calls ``getWorker`` in a loop, retrying failures: counts and the longest silence."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self.answered = self.failed = 0
        self.longest_gap = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RpcCaller:
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        last = time.monotonic()
        while True:
            try:
                await self.client.get_worker(1)
            except RegistryError:
                self.failed += 1
                await asyncio.sleep(0.1)
                continue
            now = time.monotonic()
            self.answered += 1
            self.longest_gap = max(self.longest_gap, now - last)
            last = now
