"""registryd on a three-node RabbitMQ cluster: a node stopped mid-burst loses nothing.

One cluster for the module: three private nodes, the second and third joined to the
first (``rabbitmqctl -n N stop_app; reset; join_cluster FIRST; start_app``). Each test
has its own prefix on the shared Redis. The queues are declared through node 0 before
the daemon starts, so that their Raft leaders are there (RabbitMQ puts a new quorum
queue's leader on the declaring node), while the daemon (``registryd serve``) connects
to node 1 first.

Each failover is a burst of the fault matrix (:class:`tests.harness.faults.Burst`:
ordered events with duplicates and bad ones, RPC writers through the client library, a
subscriber, the model) with one node's application stopped (``rabbitmqctl stop_app``)
mid-burst and started again after the test. The subscriber's wire is on a node that
stays up; the client library (setup, RPC writers, verification) is the one that may
have to fail over. Each prints the matrix's line, its ``recover_s`` being the longest
time the daemon was not ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from registryd.amqp.topology import declare
from registryd.client import RegistryClient
from registryd.protocol import Names
from tests.harness import (
    REDIS_URL,
    PrivateRabbit,
    Served,
    Wire,
    clean_prefix,
    form_cluster,
    unique_prefix,
    wait_for,
)
from tests.harness.callers import RpcCaller
from tests.harness.faults import Burst, Daemons, Fault, Report

pytestmark = [
    pytest.mark.integration,
    pytest.mark.rabbit_node,
    pytest.mark.ha,
    pytest.mark.asyncio(loop_scope="module"),
    # The first test also forms the cluster (three nodes started, two joined).
    pytest.mark.timeout(300),
]

#: The burst: 1,000 events at up to 500/s, the node stopped once 15 % of them are out (the
#: stop itself takes seconds: it lands in the middle).
EVENTS, RATE, AT = 1000, 500.0, 0.15


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
    """A daemon on the cluster, its subscriber's wire, and the nodes a test stopped."""

    prefix: str
    nodes: list[PrivateRabbit]
    daemon: Served
    wire: Wire
    stopped: list[PrivateRabbit] = field(default_factory=list)

    def urls(self, *order: int) -> str:
        """The nodes' URLs in that order, comma-separated (the setting's form)."""
        return ",".join(self.nodes[i].amqp_url() for i in order)

    async def client(self, *order: int) -> RegistryClient:
        """A client library connection trying the nodes in that order."""
        return await RegistryClient.connect(self.urls(*order), self.prefix, timeout=5)

    async def stop(self, node: PrivateRabbit) -> None:
        """Stop the node's RabbitMQ application (``rabbitmqctl stop_app``)."""
        self.stopped.append(node)
        await node.ctl("stop_app")

    async def leader(self, queue: str, ask: PrivateRabbit) -> str:
        """The node holding the Raft leader of a quorum queue of this prefix."""
        rows = await ask.quorum_status(f"{self.prefix}.{queue}")
        return next(str(row["Node Name"]) for row in rows if row["Raft State"] == "leader")


Open = Callable[[int], contextlib.AbstractAsyncContextManager[Registry]]


@pytest.fixture
def registry(cluster: list[PrivateRabbit], tmp_path: Path) -> Open:
    """Opens a registry whose wire is on node ``wire_on`` (one the test leaves up)."""

    @contextlib.asynccontextmanager
    async def open_registry(wire_on: int) -> AsyncIterator[Registry]:
        prefix = unique_prefix()
        stopped: list[PrivateRabbit] = []
        amqp = await aio_pika.connect(cluster[wire_on].amqp_url())
        try:
            async with await aio_pika.connect(cluster[0].amqp_url()) as first:
                await declare(await first.channel(), Names(prefix), quorum_queues=True)
            wire = await Wire.open(amqp, prefix)  # subscribed before the daemon's reset
            with contextlib.ExitStack() as stack:
                daemons = Daemons(
                    tmp_path,
                    prefix,
                    stack,
                    REGISTRYD_AMQP_URL=",".join(cluster[i].amqp_url() for i in (1, 2, 0)),
                    REGISTRYD_AMQP_QUORUM_QUEUES="true",
                )
                daemon = await daemons.start()
                try:
                    await wire.attach()
                    yield Registry(prefix, cluster, daemon, wire, stopped)
                finally:
                    await wire.close()
                    await daemon.stopped()
        finally:
            for node in stopped:  # its member of each queue catches up
                await node.ctl("start_app")
            redis = Redis.from_url(REDIS_URL)
            await clean_prefix(amqp, redis, prefix)
            await redis.aclose()
            await amqp.close()

    return open_registry


class ReadyClock:
    """Asks the daemon's /healthz every 20 ms: the longest time it was not ready (200)."""

    def __init__(self, daemon: Served) -> None:
        self.daemon = daemon
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ReadyClock:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        since: float | None = None
        while True:
            ready = await self.daemon.health() == 200
            now = time.monotonic()
            if ready:
                since = None
            else:
                since = now if since is None else since
                self.longest = max(self.longest, now - since)
            await asyncio.sleep(0.02)


async def _failover(
    registry: Registry, client: RegistryClient, node: PrivateRabbit, case: str, seed: int
) -> Report:
    """A burst with ``node`` stopped mid-way; the report, once the daemon is ready again."""

    async def stop(_burst: Burst) -> None:
        await registry.stop(node)
        await registry.daemon.reaches(200, 60)

    burst = Burst(
        client, registry.wire, events=EVENTS, rate=RATE, faults=[Fault(AT, case, stop)], seed=seed
    )
    await burst.setup()
    async with ReadyClock(registry.daemon) as clock:
        await burst.run()
    report = await burst.verify(case)
    report.recover_seconds = clock.longest
    print(report.line())  # noqa: T201 - the failover's figures
    return report


async def _members(r: Registry) -> None:
    """Declared on a formed three-node cluster, each quorum queue has three members."""
    queues = [f"{r.prefix}.{queue}" for queue in ("events", "rpc", "dead")]
    statuses = await asyncio.gather(*(r.nodes[2].quorum_status(q) for q in queues))
    for queue, rows in zip(queues, statuses, strict=True):
        members = ", ".join(f"{row['Node Name']} {row['Raft State']}" for row in rows)
        print(f"rabbitmq-queues quorum_status {queue}: {members}")  # noqa: T201 - shown
        assert sorted(row["Node Name"] for row in rows) == sorted(n.node for n in r.nodes)
        assert [r.nodes[0].node] == [
            row["Node Name"] for row in rows if row["Raft State"] == "leader"
        ]


async def test_the_node_of_the_daemon_and_the_client_stopped_mid_burst(registry: Open) -> None:
    """Node 1 (no leader) stops: the daemon and the client library go on through node 2.

    The client (setup, RPC writers, verification) and an RPC caller are on node 1 first,
    as the daemon is: their calls in flight fail, and retried they go through another
    node, as the daemon's next session does.
    """
    async with registry(2) as r, await r.client(1, 2) as client, await r.client(1, 0) as caller:
        await _members(r)
        async with RpcCaller(caller) as calls:
            case = "cluster: the daemon's and the client's node stopped"
            report = await _failover(r, client, r.nodes[1], case, 11)
            answered = calls.answered
            await wait_for(lambda: calls.answered > answered, 10)
    print(calls.line(case))  # noqa: T201 - the failover's figures
    report.check()


async def test_the_quorum_queues_leader_stopped_mid_burst(registry: Open) -> None:
    """Node 0 (every leader, neither the daemon's nor a client's node) stops."""
    async with registry(2) as r, await r.client(2, 1) as client:
        report = await _failover(r, client, r.nodes[0], "cluster: queues' leader stopped", 12)
        assert await r.leader("events", r.nodes[2]) != r.nodes[0].node
    report.check()
