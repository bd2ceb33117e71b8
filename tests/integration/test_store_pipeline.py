"""Batched writes (the event consumer's path) when Redis has lost its script cache."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from registryd.models import SetWorkerGraceful, SetWorkerPaused
from registryd.store import RedisStore

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
