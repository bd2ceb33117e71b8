"""Concurrent callers on separate Redis connections: one id per name, one expiry per lease."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from registryd.models import (
    MasterChange,
    MasterHeartbeat,
    Operation,
    WorkerChange,
    WorkerConfigured,
    WorkerConnected,
)
from registryd.store import Keys, RedisStore, StoreSettings
from tests.harness import REDIS_URL
from tests.integration.support import changes_since, revision

pytestmark = pytest.mark.integration

LEASE = 60_000
T0 = 1_700_000_000_000
WORKERS = 1_000

#: Makes one more store on its own Redis connection, under the test's prefix.
StoreFactory = Callable[[], Awaitable[RedisStore]]


@pytest.fixture
async def other_stores(
    store: RedisStore, prefix: str, store_settings: StoreSettings
) -> AsyncIterator[StoreFactory]:
    """A factory of extra stores, each with its own single-connection client, closed after."""
    clients: list[Redis] = []

    async def make() -> RedisStore:
        client = Redis.from_url(REDIS_URL, single_connection_client=True)
        clients.append(client)
        return RedisStore(client, Keys(prefix), store_settings)

    yield make
    for client in reversed(clients):
        await client.aclose()


async def test_concurrent_find_worker_id_gives_one_id(
    store: RedisStore, other_stores: StoreFactory
) -> None:
    """50 concurrent findWorkerId calls with one new name, on 50 connections, get one id."""
    stores = [await other_stores() for _ in range(50)]
    ids = await asyncio.gather(*(s.find_worker_id("fresh") for s in stores))
    assert 1 == len(set(ids))
    assert [ids[0]] == [w.id for w in await store.read_workers()]
    assert [("new", ids[0])] == [
        (c.event, c.workerid) for c in await changes_since(store, 0) if isinstance(c, WorkerChange)
    ]


async def test_concurrent_new_names_get_distinct_ids(
    store: RedisStore, other_stores: StoreFactory
) -> None:
    """Concurrent findWorkerId calls with different new names get different ids."""
    stores = [await other_stores() for _ in range(20)]
    ids = await asyncio.gather(*(s.find_worker_id(f"w{i}") for i, s in enumerate(stores)))
    assert 20 == len(set(ids))
    assert sorted(ids) == [w.id for w in await store.read_workers()]


async def _master_with_workers(store: RedisStore) -> Counter[str]:
    """Master 10 with 1,000 workers: connected and configured, configured only, connected only.

    Each worker is also on master 11, which must survive. Returns the worker changes an
    expiry of master 10 must log, by event.
    """
    ids = [await store.find_worker_id(f"w{i}") for i in range(WORKERS)]
    ops: list[tuple[Operation, str | None]] = []
    for i, wid in enumerate(ids):
        if i % 3 != 2:
            ops.append((WorkerConfigured(workerid=wid, masterid=10, builderids=[20, 21]), None))
        if i % 3 != 1:
            ops.append((WorkerConnected(workerid=wid, masterid=10, workerinfo={"i": i}), None))
        ops.append((WorkerConfigured(workerid=wid, masterid=11, builderids=[20]), None))
    results = await store.apply_many(ops)
    assert [1] * len(ops) == results
    await store.apply(MasterHeartbeat(masterid=10), now_ms=T0)
    connected = sum(1 for i in range(WORKERS) if i % 3 != 1)
    return Counter({"disconnected": connected, "configured": WORKERS - connected})


async def test_expiry_of_a_big_master_happens_once(
    store: RedisStore, other_stores: StoreFactory
) -> None:
    """Two concurrent expiry passes: exactly one expires the master, with all its changes."""
    expected = await _master_with_workers(store)
    rev = await revision(store)
    first, second = await other_stores(), await other_stores()
    results = await asyncio.gather(
        first.expire_masters(now_ms=T0 + LEASE + 1),
        second.expire_masters(now_ms=T0 + LEASE + 1),
    )
    assert [[], [10]] == sorted(results)
    changes = await changes_since(store, rev)
    masters = [(c.event, c.masterid) for c in changes if isinstance(c, MasterChange)]
    workers = [c for c in changes if isinstance(c, WorkerChange)]
    assert [("expired", 10)] == masters
    assert expected == Counter(c.event for c in workers)
    assert WORKERS == len({c.workerid for c in workers})
    assert list(range(rev + 1, rev + WORKERS + 2)) == [c.revision for c in changes]
    assert [] == await store.expire_masters(now_ms=T0 + 10 * LEASE)


async def test_expiry_leaves_no_trace_of_the_master(store: RedisStore) -> None:
    """After expiry no worker names master 10 anywhere, and master 11 is untouched."""
    await _master_with_workers(store)
    assert [10] == await store.expire_masters(now_ms=T0 + LEASE + 1)
    workers = await store.read_workers()
    assert WORKERS == len(workers)
    assert [] == [
        w.id
        for w in workers
        if 10 in w.connected_to or any(p.masterid == 10 for p in w.configured_on)
    ]
    assert {((20, 11),)} == {
        tuple((p.builderid, p.masterid) for p in w.configured_on) for w in workers
    }
    assert [] == await store.read_workers(masterid=10)


async def test_readers_see_expiry_all_or_nothing(
    store: RedisStore, other_stores: StoreFactory
) -> None:
    """Reads racing an expiry see every worker with master 10 or none: one atomic step."""
    await _master_with_workers(store)
    expirer, reader = await other_stores(), await other_stores()

    async def count_configured() -> list[int]:
        seen = []
        for _ in range(20):
            workers = await reader.read_workers()
            seen.append(sum(1 for w in workers if any(p.masterid == 10 for p in w.configured_on)))
            await asyncio.sleep(0)
        return seen

    expired, seen = await asyncio.gather(
        expirer.expire_masters(now_ms=T0 + LEASE + 1), count_configured()
    )
    configured_on_10 = sum(1 for i in range(WORKERS) if i % 3 != 2)
    assert [10] == expired
    assert set(seen) <= {0, configured_on_10}, Counter(seen)
