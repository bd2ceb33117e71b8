"""A registry an older registryd wrote (key layouts 1 to 3) is migrated at start, exactly.

The test writes a registry with this version, rewrites its keys the way layout 1 held
them (each worker a hash of its fields, its document and its remembered connections; no
index sets, no layout key), starts the store again and checks every key is back exactly
as this version wrote it, and that the registry keeps working.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from registryd.models import (
    GetWorkers,
    MasterHeartbeat,
    Operation,
    SetWorkerGraceful,
    SetWorkerPaused,
    WorkerConfigured,
    WorkerConnected,
)
from registryd.models.types import canonical_json
from registryd.service import Registry
from registryd.store import RedisStore
from registryd.store.keys import LAYOUT_VERSION

pytestmark = pytest.mark.integration

#: workerinfo whose keys look like the record's own: the documents must still parse.
TRICKY_INFO = {"paused": True, "connected_to": [1], "x": ',"paused":true,"configured_on":['}


async def _fill(store: RedisStore) -> list[int]:
    """Workers in every state layout 1 could hold; their ids."""
    ids = [await store.find_worker_id(name) for name in ("a", "bé", "c", "d")]
    a, b, c, _ = ids
    ops: list[Operation] = [
        MasterHeartbeat(masterid=10, name="m"),
        WorkerConfigured(workerid=a, masterid=10, builderids=[1, 2]),
        WorkerConfigured(workerid=a, masterid=11, builderids=[2]),
        WorkerConnected(workerid=a, masterid=10, workerinfo=TRICKY_INFO, connection="s-1"),
        WorkerConnected(workerid=a, masterid=11, workerinfo={"h": 1}),
        WorkerConfigured(workerid=b, masterid=11, builderids=[3]),
        WorkerConnected(workerid=b, masterid=12, workerinfo={}, connection="s-2"),
        SetWorkerPaused(workerid=b, paused=True, pause_reason='why "not"'),
        SetWorkerGraceful(workerid=c, graceful=True),
    ]
    for op in ops:
        await store.apply(op)
    return ids


async def _snapshot(redis: Redis, store: RedisStore) -> dict[bytes, Any]:
    """Every key of the prefix with its type and whole value."""
    out: dict[bytes, Any] = {}
    async for key in redis.scan_iter(match=store.keys.pattern(), count=1000):
        kind: Any = await redis.type(key)
        value: Any
        if kind == b"string":
            value = await redis.get(key)
        elif kind == b"hash":
            value = await redis.hgetall(key)
        elif kind == b"set":
            value = await redis.smembers(key)
        elif kind == b"zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        else:
            value = await redis.xrange(key)
        out[key] = (kind, value)
    return out


async def _unsplit(redis: Redis, prefix: str) -> None:
    """Merge the sets ``<prefix><id>:<span>`` into one set ``<prefix><id>`` each."""
    pattern = (prefix + "*").replace("{", "\\{").replace("}", "\\}")
    for key in [k async for k in redis.scan_iter(match=pattern)]:
        whole = key.rsplit(b":", 1)[0]
        members: Any = await redis.smembers(key)
        await redis.delete(key)
        await redis.sadd(whole, *members)


async def _to_layout_3(redis: Redis, store: RedisStore) -> None:
    """Rewrite the registry's keys as layout 3 held them: the master's configured sets whole."""
    await _unsplit(redis, store.keys.configured_prefix)
    await redis.set(store.keys.layout, "3")


async def _to_layout_2(redis: Redis, store: RedisStore) -> None:
    """Rewrite the registry's keys as layout 2 held them: builder and connected sets whole too."""
    await _to_layout_3(redis, store)
    await _unsplit(redis, store.keys.builder_prefix)
    await _unsplit(redis, store.keys.connected_prefix)
    await redis.set(store.keys.layout, "2")


async def _to_layout_1(redis: Redis, store: RedisStore, ids: list[int]) -> None:
    """Rewrite the registry's keys as registryd wrote them before the layout key."""
    keys = store.keys
    await _unsplit(redis, keys.connected_prefix)
    await _unsplit(redis, keys.configured_prefix)
    for workerid in ids:
        doc: Any = await redis.get(keys.worker(workerid))
        sessions: Any = await redis.hgetall(keys.sessions(workerid))
        record = json.loads(doc)
        pairs = [f"{p['masterid']}:{p['builderid']}" for p in record["configured_on"]]
        fields: dict[Any, Any] = {
            "name": json.dumps(record["name"], ensure_ascii=False),
            "info": canonical_json(record["workerinfo"]),
            "paused": "1" if record["paused"] else "0",
            "reason": json.dumps(record["pause_reason"], ensure_ascii=False),
            "graceful": "1" if record["graceful"] else "0",
            "conn": ",".join(str(m) for m in record["connected_to"]),
            "cfg": ",".join(pairs),
            "doc": doc,
            **{b"c:" + mid: connection for mid, connection in sessions.items()},
        }
        await redis.delete(keys.worker(workerid), keys.sessions(workerid))
        await redis.hset(keys.worker(workerid), mapping=fields)
    indexes = [k async for k in redis.scan_iter(match=keys.pattern().replace(":*", ":bld:*"))]
    await redis.delete(keys.layout, keys.paused, keys.graceful, *indexes)


async def test_a_layout_1_registry_is_migrated_to_what_this_version_writes(
    redis: Redis, store: RedisStore
) -> None:
    """Every key after the migration equals what this version wrote; twice changes nothing."""
    ids = await _fill(store)
    written = await _snapshot(redis, store)
    assert str(LAYOUT_VERSION).encode() == await redis.get(store.keys.layout)
    await _to_layout_1(redis, store, ids)
    assert b"hash" == await redis.type(store.keys.worker(ids[0]))
    await store.init_epoch()
    assert written == await _snapshot(redis, store)
    await store.init_epoch()
    assert written == await _snapshot(redis, store)


@pytest.mark.parametrize("layout", [2, 3])
async def test_a_layout_2_or_3_registry_is_migrated_to_what_this_version_writes(
    redis: Redis, store: RedisStore, layout: int
) -> None:
    """Whole index sets are split by worker id, as written.

    Layout 2 held the builder, connected and configured sets whole; layout 3 the
    configured ones.
    """
    ids = await _fill(store)
    ids.append(await store.find_worker_id("far"))
    await redis.set(store.keys.next_worker_id, "1500")  # ids in three spans of 512
    far = await store.find_worker_id("farther")
    await store.apply(WorkerConfigured(workerid=far, masterid=10, builderids=[1]))
    await store.apply(WorkerConnected(workerid=far, masterid=10, workerinfo={}))
    written = await _snapshot(redis, store)
    assert f"{store.keys.builder_prefix}1:2".encode() in written
    assert f"{store.keys.configured_prefix}10:2".encode() in written
    await (_to_layout_2 if layout == 2 else _to_layout_3)(redis, store)
    unsplit = await _snapshot(redis, store)
    assert f"{store.keys.configured_prefix}10".encode() in unsplit
    assert (f"{store.keys.builder_prefix}1".encode() in unsplit) == (layout == 2)
    with capture_logs() as logs:
        await store.init_epoch()
        await store.init_epoch()
    assert written == await _snapshot(redis, store)
    migrated = [e for e in logs if e["event"].startswith("registry keys migrated")]
    assert [(LAYOUT_VERSION, len(ids) + 1)] == [(e["layout"], e["workers"]) for e in migrated]


async def test_a_migrated_registry_keeps_working(redis: Redis, store: RedisStore) -> None:
    """Writes and filtered listings work on the migrated keys as on fresh ones."""
    ids = await _fill(store)
    await _to_layout_1(redis, store, ids)
    registry = Registry(store)
    await registry.start()
    await store.apply(WorkerConnected(workerid=ids[1], masterid=12, workerinfo={"v": 2}))
    await store.apply(SetWorkerPaused(workerid=ids[0], paused=True))
    listed = await registry.get_workers(GetWorkers(builderid=2, paused=True))
    assert [(ids[0], [10, 11])] == [(w.id, w.connected_to) for w in listed]
    reconnected = await store.read_worker(ids[1])
    assert reconnected is not None
    assert ({"v": 2}, [12], True) == (
        reconnected.workerinfo,
        reconnected.connected_to,
        reconnected.paused,
    )
