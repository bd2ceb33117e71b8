"""The store through Sentinel and Cluster clients: writes, reads, the relay, WAIT, failures.

Each test builds its own private topology (tests.harness.redis_ha) and stops it by PID.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import ConnectionError as RedisConnectionError

from registryd.config import Settings
from registryd.diagnose import refusal
from registryd.errors import Unavailable
from registryd.models import (
    FindWorkerId,
    MasterHeartbeat,
    WorkerChange,
    WorkerConfigured,
    WorkerConnected,
)
from registryd.ports import DUPLICATE
from registryd.redis_client import close_redis, connect_redis
from registryd.store import Keys, RedisClient, RedisStore, RelayStore, StoreSettings
from tests.harness import (
    PrivateRedis,
    PrivateRedisCluster,
    PrivateSentinelSet,
    connections_named,
    redis_client,
    unique_prefix,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.ha]


async def _store(url: str, wait_replicas: int = 0) -> tuple[RedisClient, RedisStore]:
    client = redis_client(url)
    settings = StoreSettings(wait_replicas=wait_replicas, wait_timeout_ms=2000)
    store = RedisStore(client, Keys(unique_prefix()), settings)
    await store.load_scripts()
    await store.init_epoch()
    return client, store


async def _some_writes(store: RedisStore, first: int, count: int) -> list[int]:
    """``count`` workers made, connected and configured; their ids."""
    ids = [await store.find_worker_id(f"w{first + i}") for i in range(count)]
    ops = [(WorkerConnected(workerid=w, masterid=1, workerinfo={"n": w}), f"c{w}") for w in ids] + [
        (WorkerConfigured(workerid=w, masterid=1, builderids=[w]), f"b{w}") for w in ids
    ]
    assert all(r == 1 for r in await store.apply_many(ops))
    return ids


async def _replica_refuses_as_unavailable(sentinel_set: PrivateSentinelSet, keys: Keys) -> None:
    """A write that reaches a replica (a demoted master) is unavailable, never refused.

    READONLY must not become a dead letter: the batch is retried until a master takes it.
    """
    replica = redis_client(sentinel_set.replicas[0].url)
    try:
        store = RedisStore(replica, keys)
        write = WorkerConfigured(workerid=1, masterid=2, builderids=[7])  # a change
        with pytest.raises(Unavailable, match="ReadOnlyError"):
            await store.apply_many([(write, "m1"), (write, "m2")])
        with pytest.raises(Unavailable, match="ReadOnlyError"):
            await store.apply(write)
    finally:
        await replica.aclose()


async def test_sentinel_store_waits_for_the_replica_and_follows_a_failover(
    sentinel_set: PrivateSentinelSet,
) -> None:
    """Writes with WAIT 1 reach the replica; after the master is killed they go to the new one.

    The writes acknowledged before the kill are all on the promoted replica, and the
    revision goes on from there without a gap. Writes sent to the replica itself fail as
    unavailable (READONLY), never as refused.
    """
    client, store = await _store(sentinel_set.url, wait_replicas=1)
    try:
        ids = await _some_writes(store, 0, 20)
        await _replica_refuses_as_unavailable(sentinel_set, store.keys)
        revision, epoch = await store.state()
        old = await sentinel_set.kill_master()
        with pytest.raises(Unavailable):
            await store.find_worker_id("while-down")
        await sentinel_set.failed_over(old)

        refusals: list[str] = []

        async def writes() -> bool:
            try:
                await store.apply(MasterHeartbeat(masterid=1, name="m1"))
            except Unavailable as exc:
                refusals.append(exc.message)
                return False
            return True

        # The new master has no replica left: with WAIT 1 no write is ever taken as done.
        async def refused_for_replicas() -> bool:
            assert not await writes(), "a write with WAIT 1 succeeded without a replica"
            return "reached 0 of 1 replicas" in refusals[-1]

        await wait_for(refused_for_replicas, 20)
        store.settings = StoreSettings(wait_replicas=0)
        await wait_for(writes, 20)
        assert (revision + 1, epoch) == await store.state()  # the heartbeat's one change
        workers = await store.read_workers()
        assert ids == [w.id for w in workers]
        assert all(w.connected_to == [1] and w.configured_on for w in workers)
    finally:
        await client.aclose()


async def test_cluster_store_runs_scripts_relay_and_reads(cluster: PrivateRedisCluster) -> None:
    """Every script runs on the slot's node: writes, replays, reads, the relay's claim and wait."""
    client, store = await _store(cluster.url, wait_replicas=1)
    try:
        ids = await _some_writes(store, 0, 10)
        replayed = await store.apply_many([(FindWorkerId(name="w0"), None)])
        assert [ids[0]] == replayed
        assert [DUPLICATE] == await store.apply_many(
            [(WorkerConnected(workerid=ids[0], masterid=1, workerinfo={"n": 0}), f"c{ids[0]}")]
        )
        relay = RelayStore(store)
        claim = await relay.claim(10_000, 1000)
        revision, _ = await store.state()
        assert claim.held
        assert revision == claim.changes[-1].revision
        await relay.wait(revision, block_ms=10)
        assert ids == [w.id for w in await store.read_workers()]
    finally:
        await client.aclose()


async def test_cluster_store_follows_a_slot_migration(cluster: PrivateRedisCluster) -> None:
    """The prefix's slot moves to another master: MOVED is followed, the scripts found there."""
    client, store = await _store(cluster.url)
    try:
        ids = await _some_writes(store, 0, 30)
        slot = await cluster.keyslot(store.keys.epoch)
        source = await cluster.owner(slot)
        target = next(m for m in await cluster.masters() if m is not source)
        assert await cluster.migrate_slot(slot, target) > 0
        more = await _some_writes(store, 30, 10)
        assert [*ids, *more] == [w.id for w in await store.read_workers()]
        assert target is await cluster.owner(slot)
    finally:
        await client.aclose()


async def test_cluster_batch_meeting_a_moved_slot_is_retried_whole_in_order(
    cluster: PrivateRedisCluster,
) -> None:
    """A batch sent to a demoted master fails whole; its retry applies it in order.

    The store's slot table is stale after the failover: redis-py would re-send each
    MOVED script alone and carry on past one that failed, so a retried batch could
    apply events out of queue order (the failure CI once saw in the failover burst).
    """
    client, store = await _store(cluster.url)
    try:
        ids = await _some_writes(store, 0, 5)
        before, _ = await store.state()
        await cluster.fail_over(await cluster.keyslot(store.keys.epoch))
        ops = [
            (WorkerConfigured(workerid=w, masterid=2, builderids=[100 + w]), f"x{w}") for w in ids
        ]
        with pytest.raises(Unavailable, match="MovedError"):
            await store.apply_many(ops)
        assert (before, [1] * 5) == ((await store.state())[0], await store.apply_many(ops))
        page = await store.read_changes(before, 100)
        assert ids == [
            c.workerid for c in page.changes if isinstance(c, WorkerChange) and c.revision > before
        ]
    finally:
        await client.aclose()


async def _open_under(servers: list[PrivateRedis], name: str) -> int:
    """Connections named ``name`` on the data nodes, as each node counts them."""
    total = 0
    for server in servers:
        admin = Redis.from_url(server.url)
        try:
            total += await connections_named(admin, name)
        finally:
            await admin.aclose()
    return total


async def _closed_client_opens_nothing(url: str, servers: list[PrivateRedis]) -> None:
    """A command after the close fails as a lost connection and reconnects nowhere."""
    client = redis_client(url)
    name = "registryd-test:test"  # tests.harness.redis_client's client name
    await client.set(f"{unique_prefix()}:k", "1")
    assert await _open_under(servers, name) >= 1
    await close_redis(client)
    with pytest.raises(RedisConnectionError, match="closed"):
        await client.get(f"{unique_prefix()}:k")
    assert await _open_under(servers, name) == 0


async def test_sentinels_with_a_password_of_their_own() -> None:
    """Sentinels asking for a password: without it a refusal said as such; with it, writes."""
    servers = PrivateSentinelSet(sentinel_password="s3ntinel")
    try:
        await servers.start()
        without = redis_client(servers.url)
        try:
            with pytest.raises(Unavailable) as raised:
                await RedisStore(without, Keys(unique_prefix())).load_scripts()
            found = refusal(raised.value, redis_url=servers.url)
            assert found is not None
            assert "refused the login" in found.message
        finally:
            await close_redis(without)
        settings = Settings(
            redis_url=servers.url, prefix="test", redis_sentinel_password=SecretStr("s3ntinel")
        )
        client = connect_redis(settings, name="registryd-test")
        try:
            store = RedisStore(client, Keys(unique_prefix()))
            await store.load_scripts()
            await store.init_epoch()
            assert [1] == [await store.find_worker_id("w")]
        finally:
            await close_redis(client)
    finally:
        servers.stop()


async def test_a_closed_sentinel_client_opens_nothing(sentinel_set: PrivateSentinelSet) -> None:
    """The master's pool lends nothing once closed, and asks the sentinels nothing."""
    await _closed_client_opens_nothing(sentinel_set.url, sentinel_set.servers)


async def test_a_cluster_pipeline_redis_py_retries_is_unavailable(
    cluster: PrivateRedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection lost under a cluster pipeline: ``unavailable``, then it works again.

    redis-py retries the pipeline without the ``target_nodes`` its commands were given
    (it pops them on the first try), so the script loading's ``MULTI`` cannot be routed
    and it raises ``RedisClusterException``: seen once in a failover, where a write RPC
    answered ``internal`` instead of ``unavailable``.
    """
    client, store = await _store(cluster.url)
    real, lost = ClusterNode.execute_pipeline, list[bool]()

    async def lose_first(self: ClusterNode, commands: list[Any]) -> bool:
        if not lost:
            lost.append(True)
            raise RedisConnectionError("connection lost under the pipeline")
        return await real(self, commands)

    try:
        monkeypatch.setattr(ClusterNode, "execute_pipeline", lose_first)
        with pytest.raises(Unavailable, match="redis"):
            await store.load_scripts()
        assert lost
        await store.load_scripts()
        assert [1] == [len(await store.read_workers()) + 1]
    finally:
        await close_redis(client)


async def test_a_closed_cluster_client_opens_nothing(cluster: PrivateRedisCluster) -> None:
    """redis-py's cluster client would find the nodes again after its close.

    (Its ``aclose()`` is also its reset after a lost node: only ``close_redis`` is final.)
    """
    await _closed_client_opens_nothing(cluster.url, cluster.nodes)
