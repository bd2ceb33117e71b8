"""The fleet in Redis: written through the daemon's own store, and what it costs there.

Workers are written with :meth:`registryd.store.RedisStore.apply_many` (the consumer's
code path: one pipelined round trip per batch, each write its own script), in the shape
of :mod:`bench.fleet`. The floor of a listing needs the same documents as plain
strings for one ``MGET``: :func:`copy_documents` puts a copy of each worker's document
at ``{prefix}:floor:<id>``, under the run's prefix so the clean-up removes them too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from redis.asyncio import Redis

from bench import fleet
from registryd.errors import RegistryError
from registryd.models import (
    FindWorkerId,
    Operation,
    SetWorkerPaused,
    WorkerConfigured,
    WorkerConnected,
)
from registryd.store import Keys, RedisClient, RedisStore

__all__ = [
    "apply_all",
    "copy_documents",
    "floor_key",
    "grow",
    "prefix_memory",
    "relay_caught_up",
]

_CHUNK = 1_000
_FLOOR = "floor:"


async def apply_all(store: RedisStore, writes: Sequence[Operation]) -> None:
    """Apply ``writes`` in order, in batches; raise on the first that failed."""
    for start in range(0, len(writes), _CHUNK):
        batch = [(op, None) for op in writes[start : start + _CHUNK]]
        for result in await store.apply_many(batch):
            if isinstance(result, RegistryError):
                raise result


def fleet_writes(ids: range) -> list[Operation]:
    """What makes workers ``ids`` what :mod:`bench.fleet` says they are."""
    writes: list[Operation] = []
    for w in ids:
        master = fleet.master_of(w)
        writes.append(
            WorkerConfigured(workerid=w, masterid=master, builderids=fleet.builders_of(w))
        )
        writes.append(WorkerConnected(workerid=w, masterid=master, workerinfo=fleet.info_of(w)))
        if fleet.is_paused(w):
            writes.append(SetWorkerPaused(workerid=w, paused=True, pause_reason="maintenance"))
    return writes


async def grow(store: RedisStore, have: int, count: int) -> None:
    """Create workers ``have + 1`` to ``count`` (their ids must come out as those numbers)."""
    for start in range(have + 1, count + 1, _CHUNK):
        ids = range(start, min(count, start + _CHUNK - 1) + 1)
        names = [fleet.name_of(w) for w in ids]
        await apply_all(store, [FindWorkerId(name=n) for n in names])
        got = await store.redis.hmget(store.keys.names, names)
        if [int(g or 0) for g in got] != list(ids):
            raise RuntimeError("worker ids are not 1, 2, ...: the prefix was not fresh")
        await apply_all(store, fleet_writes(ids))


def floor_key(keys: Keys, workerid: int) -> str:
    """Where the floor's copy of a worker's document is."""
    return f"{keys.base}:{_FLOOR}{workerid}"


async def copy_documents(store: RedisStore) -> int:
    """Copy every worker's current document to its floor key; how many."""
    docs = await store.read_worker_docs()
    for start in range(0, len(docs), 5_000):
        chunk = docs[start : start + 5_000]
        await store.redis.mset(
            {floor_key(store.keys, start + i + 1): doc for i, doc in enumerate(chunk)}
        )
    return len(docs)


def _category(keys: Keys, key: str) -> str:
    rest = key.removeprefix(keys.base + ":")
    for start, name in (
        ("w:", "worker hashes"),
        ("changes", "change log"),
        ("wh:", "log holders"),
        ("names", "names"),
        ("workers", "id index"),
        ("msg:", "message ids"),
        ("mcfg:", "master sets"),
        ("mconn:", "master sets"),
        (_FLOOR, "floor copies"),
    ):
        if rest.startswith(start):
            return name
    return "other"


async def prefix_memory(redis: Redis, keys: Keys) -> dict[str, int]:
    """Bytes per kind of key under the prefix (``MEMORY USAGE`` of each, exact).

    Counted key by key rather than from ``used_memory``: the Redis is shared, so its
    total moves with everything else that runs on the machine.
    """
    found = [k.decode() async for k in redis.scan_iter(match=keys.pattern(), count=5000)]
    usage: dict[str, int] = {}
    for start in range(0, len(found), 1000):
        chunk = found[start : start + 1000]
        pipe = redis.pipeline(transaction=False)
        for key in chunk:
            pipe.memory_usage(key, samples=0)
        for key, size in zip(chunk, await pipe.execute(), strict=True):
            category = _category(keys, key)
            usage[category] = usage.get(category, 0) + int(size or 0)
    return usage


async def relay_caught_up(redis: RedisClient, keys: Keys, within: float = 300) -> float:
    """Wait until the relay has published every committed change; seconds waited."""
    started = time.monotonic()
    while True:
        rev, cursor = await redis.mget([keys.revision, keys.relay_cursor])
        if int(cursor or 0) >= int(rev or 0):
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise TimeoutError(f"the relay is at {cursor!r} of {rev!r} after {within} s")
        await asyncio.sleep(0.05)
