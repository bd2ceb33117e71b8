"""Batched writes (the event consumer's path) when Redis has lost its script cache."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from registryd.models import SetWorkerGraceful, SetWorkerPaused, WorkerChange
from registryd.store import Keys, RedisStore
from tests.harness import PrivateRedis

pytestmark = pytest.mark.integration


async def test_apply_many_after_script_cache_loss(store: RedisStore, redis: Redis) -> None:
    """After SCRIPT FLUSH (as after a restart), a batch is applied once, in order, in full."""
    wid = await store.find_worker_id("flushed")
    await redis.script_flush()
    results = await store.apply_many(
        [
            (SetWorkerPaused(workerid=wid, paused=True, pause_reason="a"), "m-1"),
            (SetWorkerGraceful(workerid=wid, graceful=True), None),
            (SetWorkerPaused(workerid=wid, paused=False), "m-2"),
        ]
    )
    page = await store.read_changes(0, 100)
    assert [1, 1, 1] == results
    assert ["new", "state_updated", "state_updated", "state_updated"] == [
        c.event for c in page.changes
    ]
    worker = await store.read_worker(wid)
    assert worker is not None
    assert (False, None, True) == (worker.paused, worker.pause_reason, worker.graceful)


#: Batches of this many scripts, each round with the cache flushed: a batch several
#: times Redis's 16 KiB read buffer, so that Redis serves the loader between its reads.
SIZE, ROUNDS = 1000, 10


async def test_a_batch_meeting_a_cache_loaded_meanwhile_stays_in_order(
    private_redis: PrivateRedis, prefix: str
) -> None:
    """Scripts loaded by another connection while a batch runs never reorder the batch.

    After a restart or a failover the cache is empty; every path that meets NOSCRIPT
    loads it. Were a batch not one script run (one script per event), the first ones
    would fail NOSCRIPT, the later ones run once the other connection's load landed in
    between, and the retry would put the first ones after them. A private Redis: its
    cache is flushed each round.
    """
    await private_redis.start()
    redis, other = Redis.from_url(private_redis.url), Redis.from_url(private_redis.url)
    try:
        store = RedisStore(redis, Keys(prefix))
        loader = RedisStore(other, Keys(prefix))
        await store.init_epoch()
        wid = await store.find_worker_id("raced")
        await other.ping()  # connected: its load goes out at once
        since = (await store.state())[0]
        for round_ in range(ROUNDS):
            await redis.script_flush()
            batch = [
                (SetWorkerPaused(workerid=wid, paused=True, pause_reason=f"{round_}-{i}"), None)
                for i in range(SIZE)
            ]
            await asyncio.gather(store.apply_many(batch), loader.load_scripts())
            page = await store.read_changes(since, SIZE)
            since = page.changes[-1].revision
            reasons = [c.worker.pause_reason for c in page.changes if isinstance(c, WorkerChange)]
            assert [f"{round_}-{i}" for i in range(SIZE)] == reasons, f"round {round_}"
    finally:
        await redis.aclose()
        await other.aclose()
