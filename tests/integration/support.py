"""Small helpers shared by the store's integration tests."""

from __future__ import annotations

from redis.asyncio import Redis

from registryd.models import MasterChange, Worker, WorkerChange
from registryd.store import RedisStore, RelayStore

#: A change summarised as (event, workerid or None, masterid or None).
Summary = tuple[str, int | None, int | None]


async def worker(store: RedisStore, workerid: int) -> Worker:
    """The stored, unfiltered record of a worker that must exist."""
    found = await store.read_worker(workerid)
    assert found is not None, f"worker {workerid} is missing"
    return found


async def new_worker(store: RedisStore, name: str) -> tuple[int, Worker]:
    """Create a worker by name; its id and record."""
    workerid = await store.find_worker_id(name)
    return workerid, await worker(store, workerid)


async def key_names(redis: Redis, store: RedisStore) -> set[bytes]:
    """Every Redis key of the store's prefix, to spot orphan state."""
    return {key async for key in redis.scan_iter(match=store.keys.pattern(), count=1000)}


async def log_entries(
    redis: Redis, store: RedisStore, count: int | None = None
) -> list[tuple[int, str, bytes]]:
    """The change log as the relay reads it, oldest first: (revision, routing key, body).

    Read through a relay claim (and given up again), since worker entries are stored
    compact and only the store's reader turns them into routing keys and bodies.
    """
    relay = RelayStore(store)
    try:
        claim = await relay.claim(60_000, count or await redis.xlen(store.keys.changes) or 1)
    finally:
        await relay.release()
    return [(c.revision, c.routing_key, c.body) for c in claim.changes]


async def revision(store: RedisStore) -> int:
    """The store's current revision."""
    current, _ = await store.state()
    return current


def summary(change: WorkerChange | MasterChange) -> Summary:
    """What a change says happened, without its revision and body."""
    if isinstance(change, WorkerChange):
        return (change.event, change.workerid, change.masterid)
    return (change.event, None, change.masterid)


async def changes_since(store: RedisStore, since: int) -> list[WorkerChange | MasterChange]:
    """Every change record after ``since`` (paging through the log)."""
    out: list[WorkerChange | MasterChange] = []
    while True:
        page = await store.read_changes(since, 1000)
        out.extend(page.changes)
        if not page.changes:
            return out
        since = page.changes[-1].revision


async def summaries_since(store: RedisStore, since: int) -> list[Summary]:
    """The summaries of every change after ``since``, in revision order."""
    return [summary(change) for change in await changes_since(store, since)]
