"""Redis failovers under load: a burst of events, RPC writes, a subscriber (harness.faults).

Each case prints one line (events sent, applied, lost, duplicated, revisions missing,
seconds until ready again) and fails on any difference from the model.
"""

from __future__ import annotations

import pytest
from aio_pika.abc import AbstractConnection

from registryd.client import RegistryClient
from registryd.config import Settings
from registryd.store import Keys
from tests.harness import (
    AMQP_URL,
    PrivateRedisCluster,
    PrivateSentinelSet,
    Wire,
    serving,
    wait_for,
)
from tests.harness.faults import Burst, Fault

pytestmark = [pytest.mark.integration, pytest.mark.ha, pytest.mark.timeout(180)]


async def _burst(settings: Settings, amqp: AbstractConnection, case: str, fault: Fault) -> None:
    """3,000 events, RPC writers and a subscriber on ``settings``, ``fault`` at 40 %.

    The lease is long: the burst heartbeats once, and no master may expire within it.
    """
    settings = settings.model_copy(update={"master_lease": 3600.0})
    async with serving(settings, amqp, fresh=False) as wire:  # the burst checks the reset
        client = await RegistryClient.connect(AMQP_URL, settings.prefix)
        try:
            burst = Burst(client, wire, events=3000, faults=[fault], seed=11)
            await burst.setup()
            await burst.run()
            report = await burst.verify(case)
        finally:
            await client.close()
    print(report.line())  # noqa: T201 - the case's one report line (make ha -s shows it)
    report.check()


async def _ready_again(wire: Wire) -> None:
    """Until the daemon serves with Redis answering again."""
    assert wire.daemon is not None
    health = wire.daemon.daemon.health
    await wait_for(lambda: health.ready, 60)


async def test_sentinel_master_killed_mid_burst(
    settings: Settings, amqp: AbstractConnection, sentinel_set: PrivateSentinelSet
) -> None:
    """The master dies (SIGKILL) mid-burst; the replica takes over; WAIT 1 kept every ack.

    The dead master comes back empty as a replica of the new one (else WAIT 1 has no
    replica to count); the daemon then serves again, and nothing acknowledged is lost.
    """

    async def kill_master(burst: Burst) -> None:
        old = await sentinel_set.kill_master()
        new = await sentinel_set.failed_over(old)
        await sentinel_set.rejoin(old, new)
        await _ready_again(burst.wire)

    ha = settings.model_copy(update={"redis_url": sentinel_set.url, "redis_wait_replicas": 1})
    await _burst(ha, amqp, "redis sentinel: master killed", Fault(0.4, "kill master", kill_master))


async def test_cluster_master_fails_over_mid_burst(
    settings: Settings, amqp: AbstractConnection
) -> None:
    """A cluster master hands over to its replica mid-burst; the daemon follows MOVED.

    Three masters with a replica each, WAIT 1; CLUSTER FAILOVER on the replica of the
    prefix's slot's master.

    A slot migration under writes is not among the cases: the scripts reach per-entity
    keys by prefix, which Redis Cluster cannot route while a slot is half moved (README,
    "Running for high availability"); test_redis_ha_store moves the slot between writes.
    """
    cluster = PrivateRedisCluster(masters=3, replicas=1)
    try:
        await cluster.start()
        slot = await cluster.keyslot(Keys(settings.prefix).epoch)

        async def fail_over(burst: Burst) -> None:
            await cluster.fail_over(slot)
            await _ready_again(burst.wire)

        ha = settings.model_copy(update={"redis_url": cluster.url, "redis_wait_replicas": 1})
        fault = Fault(0.4, "cluster failover", fail_over)
        await _burst(ha, amqp, "redis cluster: master fails over", fault)
    finally:
        cluster.stop()
