"""Change records and revisions (PROTOCOL.md section 6), message ids and getChanges paging."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from registryd.errors import NotFound, ResyncRequired
from registryd.models import (
    ChangesPage,
    DeconfigureAllWorkersForMaster,
    GetChanges,
    Master,
    MasterChange,
    MasterHeartbeat,
    MasterStopped,
    Operation,
    SetWorkerGraceful,
    SetWorkerPaused,
    WorkerChange,
    WorkerConfigured,
    WorkerConnected,
    WorkerDisconnected,
)
from registryd.ports import DUPLICATE, Published
from registryd.service import Registry
from registryd.store import RedisStore, StoreSettings
from registryd.store.redis import RelayStore
from tests.integration.support import (
    changes_since,
    log_entries,
    new_worker,
    revision,
    summaries_since,
    worker,
)

pytestmark = pytest.mark.integration

LEASE = 60_000
T0 = 1_700_000_000_000
RETAIN = 10


@pytest.fixture
def store_settings() -> StoreSettings:
    """A short retained history so that trimming is reachable.

    getChanges serves the last RETAIN changes; a test that reads further back asks for
    the default settings.
    """
    return StoreSettings(retain_changes=RETAIN)


async def _apply_logged(store: RedisStore, op: Operation) -> list[WorkerChange | MasterChange]:
    """Apply one write; the change records it appended."""
    since = await revision(store)
    await store.apply(op)
    return await changes_since(store, since)


def _single_worker_change(changes: list[WorkerChange | MasterChange]) -> WorkerChange:
    """The one change a write logged, which must be about a worker."""
    assert 1 == len(changes), changes
    change = changes[0]
    assert isinstance(change, WorkerChange)
    return change


def _single_master_change(changes: list[WorkerChange | MasterChange]) -> MasterChange:
    """The one change a write logged, which must be about a master."""
    assert 1 == len(changes), changes
    change = changes[0]
    assert isinstance(change, MasterChange)
    return change


async def _master(store: RedisStore, masterid: int) -> Master:
    """The getMasters entry of one master."""
    return next(m for m in await store.read_masters() if m.id == masterid)


# One change per write, named after the command ---------------------------------------------


async def test_new_worker_logs_new_with_null_master(store: RedisStore) -> None:
    """findWorkerId of a new name logs 'new', masterid null, body the new record."""
    wid = await store.find_worker_id("zero")
    change = _single_worker_change(await changes_since(store, 0))
    assert ("new", wid, None, 1) == (
        change.event,
        change.workerid,
        change.masterid,
        change.revision,
    )
    assert await worker(store, wid) == change.worker


async def test_known_name_logs_nothing(store: RedisStore) -> None:
    """findWorkerId of a known name takes no revision."""
    await store.find_worker_id("zero")
    rev = await revision(store)
    await store.find_worker_id("zero")
    assert [] == await changes_since(store, rev)


@pytest.mark.parametrize(
    ("setup", "op", "expected"),
    [
        ([], WorkerConnected(workerid=1, masterid=10, workerinfo={"h": 1}), ("connected", 10)),
        (
            [WorkerConnected(workerid=1, masterid=10, workerinfo={"h": 1})],
            WorkerConnected(workerid=1, masterid=10, workerinfo={"h": 2}),
            ("connected", 10),
        ),
        (
            [WorkerConnected(workerid=1, masterid=10, workerinfo={"h": 1})],
            WorkerConnected(workerid=1, masterid=11, workerinfo={"h": 1}),
            ("connected", 11),
        ),
        (
            [WorkerConnected(workerid=1, masterid=10, workerinfo={"h": 1})],
            WorkerDisconnected(workerid=1, masterid=10),
            ("disconnected", 10),
        ),
        ([], WorkerConfigured(workerid=1, masterid=10, builderids=[20]), ("configured", 10)),
        (
            [WorkerConfigured(workerid=1, masterid=10, builderids=[20])],
            WorkerConfigured(workerid=1, masterid=10, builderids=[]),
            ("configured", 10),
        ),
        (
            [WorkerConfigured(workerid=1, masterid=10, builderids=[20])],
            DeconfigureAllWorkersForMaster(masterid=10),
            ("configured", 10),
        ),
        ([], SetWorkerPaused(workerid=1, paused=True), ("state_updated", None)),
        (
            [SetWorkerPaused(workerid=1, paused=True, pause_reason="a")],
            SetWorkerPaused(workerid=1, paused=True, pause_reason="b"),
            ("state_updated", None),
        ),
        (
            [SetWorkerPaused(workerid=1, paused=True, pause_reason="a")],
            SetWorkerPaused(workerid=1, paused=False),
            ("state_updated", None),
        ),
        ([], SetWorkerGraceful(workerid=1, graceful=True), ("state_updated", None)),
    ],
    ids=lambda v: v.method if isinstance(v, Operation) else None,
)
async def test_worker_write_logs_one_named_change(
    store: RedisStore,
    setup: list[Operation],
    op: Operation,
    expected: tuple[str, int | None],
) -> None:
    """A write that changes a worker logs one change: its event, masterid, record after."""
    wid, _ = await new_worker(store, "zero")
    assert 1 == wid  # the ops above name worker 1
    for step in setup:
        await store.apply(step)
    change = _single_worker_change(await _apply_logged(store, op))
    assert (*expected, wid) == (change.event, change.masterid, change.workerid)
    assert await worker(store, wid) == change.worker


async def test_deconfigure_logs_one_configured_per_worker(store: RedisStore) -> None:
    """deconfigureAllWorkersForMaster logs 'configured' for each worker with pairs there only."""
    a, _ = await new_worker(store, "a")
    b, _ = await new_worker(store, "b")
    c, _ = await new_worker(store, "c")
    d, _ = await new_worker(store, "d")
    for op in (
        WorkerConfigured(workerid=a, masterid=10, builderids=[20, 21]),
        WorkerConfigured(workerid=b, masterid=10, builderids=[22]),
        WorkerConfigured(workerid=b, masterid=11, builderids=[22]),
        WorkerConnected(workerid=c, masterid=10, workerinfo={}),
        WorkerConfigured(workerid=d, masterid=11, builderids=[20]),
    ):
        await store.apply(op)
    rev = await revision(store)
    assert 2 == await store.apply(DeconfigureAllWorkersForMaster(masterid=10))
    assert [("configured", a, 10), ("configured", b, 10)] == sorted(
        await summaries_since(store, rev), key=str
    )


# Bodies ------------------------------------------------------------------------------------


async def test_each_body_is_the_full_record_after_its_write(store: RedisStore) -> None:
    """Every worker change carries the unfiltered record as it is right after that write."""
    a, _ = await new_worker(store, "a")
    b, _ = await new_worker(store, "b")
    ops: list[Operation] = [
        MasterHeartbeat(masterid=10),
        WorkerConfigured(workerid=a, masterid=10, builderids=[21, 20]),
        WorkerConfigured(workerid=a, masterid=11, builderids=[20]),
        WorkerConnected(workerid=a, masterid=11, workerinfo={"h": 1}, connection="s"),
        WorkerConnected(workerid=a, masterid=10, workerinfo={"h": 2}),
        WorkerConfigured(workerid=b, masterid=10, builderids=[22]),
        SetWorkerPaused(workerid=a, paused=True, pause_reason="r"),
        SetWorkerGraceful(workerid=b, graceful=True),
        WorkerDisconnected(workerid=a, masterid=11, connection="s"),
        DeconfigureAllWorkersForMaster(masterid=11),
        MasterStopped(masterid=10),
    ]
    seen = 0
    for op in ops:
        changes = await _apply_logged(store, op)
        workers = [c for c in changes if isinstance(c, WorkerChange)]
        assert len(workers) == len({c.workerid for c in workers}), op
        for change in workers:
            assert await worker(store, change.workerid) == change.worker, op
        seen += len(changes)
    assert 2 + seen == await revision(store)


# Masters -----------------------------------------------------------------------------------


async def test_first_heartbeat_logs_active(store: RedisStore) -> None:
    """A first heartbeat logs 'active' with the master as getMasters lists it."""
    change = _single_master_change(
        await _apply_logged(store, MasterHeartbeat(masterid=10, name="m10"))
    )
    assert ("active", 10) == (change.event, change.masterid)
    assert await _master(store, 10) == change.master
    assert (True, "m10") == (change.master.active, change.master.name)


async def test_heartbeat_refresh_logs_nothing(store: RedisStore) -> None:
    """A heartbeat that only refreshes the lease logs nothing and takes no revision."""
    await store.apply(MasterHeartbeat(masterid=10, name="m10"), now_ms=T0)
    rev = await revision(store)
    assert 0 == await store.apply(MasterHeartbeat(masterid=10, name="m10"), now_ms=T0 + 1)
    assert 0 == await store.apply(MasterHeartbeat(masterid=10), now_ms=T0 + 2)
    assert rev == await revision(store)


async def test_rename_logs_active_with_new_name(store: RedisStore) -> None:
    """A heartbeat that renames an active master logs 'active' carrying the new name."""
    await store.apply(MasterHeartbeat(masterid=10, name="old"))
    change = _single_master_change(
        await _apply_logged(store, MasterHeartbeat(masterid=10, name="new"))
    )
    assert ("active", "new") == (change.event, change.master.name)


async def test_heartbeat_after_stop_logs_active(store: RedisStore) -> None:
    """A heartbeat from a stopped master logs 'active' again."""
    await store.apply(MasterHeartbeat(masterid=10))
    await store.apply(MasterStopped(masterid=10))
    change = _single_master_change(await _apply_logged(store, MasterHeartbeat(masterid=10)))
    assert ("active", True) == (change.event, change.master.active)


async def _populate(store: RedisStore) -> dict[str, int]:
    """Workers around master 10 (both, connected only, pairs only) and one on 11 only."""
    ids = {name: (await new_worker(store, name))[0] for name in ("both", "conn", "pairs", "other")}
    for op in (
        MasterHeartbeat(masterid=10, name="m10"),
        WorkerConfigured(workerid=ids["both"], masterid=10, builderids=[20]),
        WorkerConnected(workerid=ids["both"], masterid=10, workerinfo={}),
        WorkerConnected(workerid=ids["conn"], masterid=10, workerinfo={}),
        WorkerConnected(workerid=ids["conn"], masterid=11, workerinfo={}),
        WorkerConfigured(workerid=ids["pairs"], masterid=10, builderids=[20, 21]),
        WorkerConfigured(workerid=ids["other"], masterid=11, builderids=[20]),
        WorkerConnected(workerid=ids["other"], masterid=11, workerinfo={}),
    ):
        await store.apply(op)
    return ids


def _expected_drop(ids: dict[str, int], event: str) -> Counter[tuple[str, int | None, int]]:
    """One disconnected per connected worker, one configured per pairs-only one, the master."""
    return Counter(
        [
            ("disconnected", ids["both"], 10),
            ("disconnected", ids["conn"], 10),
            ("configured", ids["pairs"], 10),
            (event, None, 10),
        ]
    )


async def test_master_stopped_logs_worker_changes_and_stopped(store: RedisStore) -> None:
    """masterStopped logs one change per affected worker plus 'stopped' for the master."""
    ids = await _populate(store)
    rev = await revision(store)
    assert 4 == await store.apply(MasterStopped(masterid=10))
    changes = await changes_since(store, rev)
    assert _expected_drop(ids, "stopped") == Counter(
        (c.event, c.workerid if isinstance(c, WorkerChange) else None, c.masterid) for c in changes
    )
    master = next(c for c in changes if isinstance(c, MasterChange))
    assert (False, "m10") == (master.master.active, master.master.name)
    assert await _master(store, 10) == master.master


async def test_master_expiry_logs_worker_changes_and_expired(store: RedisStore) -> None:
    """Expiry logs one change per affected worker plus 'expired' for the master."""
    ids = await _populate(store)
    await store.apply(MasterHeartbeat(masterid=10), now_ms=T0)
    rev = await revision(store)
    assert [10] == await store.expire_masters(now_ms=T0 + LEASE + 1)
    changes = await changes_since(store, rev)
    assert _expected_drop(ids, "expired") == Counter(
        (c.event, c.workerid if isinstance(c, WorkerChange) else None, c.masterid) for c in changes
    )
    for change in changes:
        if isinstance(change, WorkerChange):
            assert await worker(store, change.workerid) == change.worker
        else:
            assert await _master(store, 10) == change.master


async def test_stop_of_unseen_master_logs_only_stopped(store: RedisStore) -> None:
    """masterStopped of a master nobody announced logs just 'stopped' (it becomes listed)."""
    change = _single_master_change(await _apply_logged(store, MasterStopped(masterid=12)))
    assert ("stopped", 12, False) == (change.event, change.masterid, change.master.active)


# Writes that change nothing ---------------------------------------------------------------

NoOpCase = Callable[[int], tuple[list[Operation], Operation]]

NO_OPS: dict[str, NoOpCase] = {
    "duplicate connect": lambda w: (
        [WorkerConnected(workerid=w, masterid=10, workerinfo={"a": 1, "b": [1]})],
        WorkerConnected(workerid=w, masterid=10, workerinfo={"b": [1], "a": 1}),
    ),
    "connect changing only the token": lambda w: (
        [WorkerConnected(workerid=w, masterid=10, workerinfo={}, connection="s1")],
        WorkerConnected(workerid=w, masterid=10, workerinfo={}, connection="s2"),
    ),
    "disconnect never connected": lambda w: ([], WorkerDisconnected(workerid=w, masterid=10)),
    "disconnect from another master": lambda w: (
        [WorkerConnected(workerid=w, masterid=10, workerinfo={})],
        WorkerDisconnected(workerid=w, masterid=11),
    ),
    "disconnect twice": lambda w: (
        [
            WorkerConnected(workerid=w, masterid=10, workerinfo={}),
            WorkerDisconnected(workerid=w, masterid=10),
        ],
        WorkerDisconnected(workerid=w, masterid=10),
    ),
    "stale disconnect": lambda w: (
        [WorkerConnected(workerid=w, masterid=10, workerinfo={}, connection="s1")],
        WorkerDisconnected(workerid=w, masterid=10, connection="s2"),
    ),
    "same configure": lambda w: (
        [WorkerConfigured(workerid=w, masterid=10, builderids=[20, 21])],
        WorkerConfigured(workerid=w, masterid=10, builderids=[21, 20, 21]),
    ),
    "empty configure with no pairs": lambda w: (
        [WorkerConfigured(workerid=w, masterid=11, builderids=[20])],
        WorkerConfigured(workerid=w, masterid=10, builderids=[]),
    ),
    "deconfigure master without pairs": lambda w: (
        [
            WorkerConnected(workerid=w, masterid=10, workerinfo={}),
            WorkerConfigured(workerid=w, masterid=11, builderids=[20]),
        ],
        DeconfigureAllWorkersForMaster(masterid=10),
    ),
    "same pause": lambda w: (
        [SetWorkerPaused(workerid=w, paused=True, pause_reason="r")],
        SetWorkerPaused(workerid=w, paused=True, pause_reason="r"),
    ),
    "unpause when not paused": lambda w: ([], SetWorkerPaused(workerid=w, paused=False)),
    "same graceful": lambda w: (
        [SetWorkerGraceful(workerid=w, graceful=True)],
        SetWorkerGraceful(workerid=w, graceful=True),
    ),
    "graceful false on a new worker": lambda w: (
        [],
        SetWorkerGraceful(workerid=w, graceful=False),
    ),
    "heartbeat that refreshes the lease": lambda w: (
        [MasterHeartbeat(masterid=10, name="m")],
        MasterHeartbeat(masterid=10, name="m"),
    ),
    "stop of a stopped master": lambda w: (
        [
            MasterHeartbeat(masterid=10),
            WorkerConnected(workerid=w, masterid=10, workerinfo={}),
            MasterStopped(masterid=10),
        ],
        MasterStopped(masterid=10),
    ),
}


@pytest.mark.parametrize("case", list(NO_OPS))
async def test_write_that_changes_nothing_logs_nothing(store: RedisStore, case: str) -> None:
    """A write that changes no record returns 0, appends nothing and takes no revision."""
    wid, _ = await new_worker(store, "zero")
    setup, noop = NO_OPS[case](wid)
    for op in setup:
        await store.apply(op)
    before, rev = await worker(store, wid), await revision(store)
    assert 0 == await store.apply(noop)
    assert (rev, [], before) == (
        await revision(store),
        await changes_since(store, rev),
        await worker(store, wid),
    )


# Revisions ---------------------------------------------------------------------------------


async def test_revisions_increase_by_one_without_gaps(store: RedisStore) -> None:
    """Across many mixed writes, change revisions run 1, 2, 3, ... with no gap or repeat."""
    revisions: list[int] = []
    for i in range(25):
        wid = await store.find_worker_id(f"w{i}")
        for op in (
            MasterHeartbeat(masterid=100 + i % 3, name=f"m{i}"),
            WorkerConfigured(workerid=wid, masterid=10 + i % 2, builderids=[20, 20 + i]),
            WorkerConnected(workerid=wid, masterid=10, workerinfo={"i": i}),
            SetWorkerPaused(workerid=wid, paused=i % 2 == 0),
            WorkerDisconnected(workerid=wid, masterid=10),
        ):
            await store.apply(op)
        if i % 5 == 4:
            await store.apply(MasterStopped(masterid=100 + i % 3))
        revisions.extend(c.revision for c in await changes_since(store, len(revisions)))
    assert list(range(1, len(revisions) + 1)) == revisions
    assert len(revisions) == await revision(store)
    assert len(revisions) > 100


async def test_changes_page_reports_the_current_revision(registry: Registry) -> None:
    """getChanges returns the current revision alongside the page, whatever the limit."""
    for i in range(5):
        await registry.store.find_worker_id(f"w{i}")
    page = await registry.execute(GetChanges(since=0, limit=2))
    assert isinstance(page, ChangesPage)
    assert (5, [1, 2]) == (page.revision, [c.revision for c in page.changes])


async def test_routing_keys_match_the_bodies(redis: Redis, store: RedisStore) -> None:
    """Each logged change's routing key is workers.<id>.<event> or masters.<id>.<event>."""
    ids = await _populate(store)
    await store.apply(SetWorkerPaused(workerid=ids["conn"], paused=True))
    await store.apply(MasterStopped(masterid=10))
    entries = await log_entries(redis, store)
    bodies = [json.loads(body) for _, _, body in entries]
    assert [
        (
            b["revision"],
            f"workers.{b['workerid']}.{b['event']}"
            if "workerid" in b
            else f"masters.{b['masterid']}.{b['event']}",
        )
        for b in bodies
    ] == [(rev, key) for rev, key, _ in entries]
    events = {
        "new",
        "connected",
        "configured",
        "state_updated",
        "disconnected",
        "active",
        "stopped",
    }
    assert events == {b["event"] for b in bodies}


# message_id ------------------------------------------------------------------------------


async def test_duplicate_message_id_is_ignored(store: RedisStore) -> None:
    """A second write with a seen message_id returns DUPLICATE and appends nothing."""
    wid, _ = await new_worker(store, "zero")
    op = WorkerConfigured(workerid=wid, masterid=10, builderids=[20])
    assert 1 == await store.apply(op, message_id="m1")
    rev = await revision(store)
    assert DUPLICATE == await store.apply(op, message_id="m1")
    assert [] == await changes_since(store, rev)


async def test_message_id_is_ignored_whatever_the_op(store: RedisStore) -> None:
    """A seen message_id makes any later write with it a duplicate, even a different op."""
    wid, _ = await new_worker(store, "zero")
    await store.apply(SetWorkerGraceful(workerid=wid, graceful=True), message_id="m1")
    assert DUPLICATE == await store.apply(
        SetWorkerPaused(workerid=wid, paused=True), message_id="m1"
    )
    assert not (await worker(store, wid)).paused


async def test_distinct_message_ids_both_apply(store: RedisStore) -> None:
    """Different message_ids are independent writes."""
    wid, _ = await new_worker(store, "zero")
    assert [1, 1] == [
        await store.apply(SetWorkerGraceful(workerid=wid, graceful=True), message_id="m1"),
        await store.apply(SetWorkerGraceful(workerid=wid, graceful=False), message_id="m2"),
    ]


async def test_master_ops_honour_message_id(store: RedisStore) -> None:
    """Heartbeats and stops with a seen message_id are ignored too."""
    await store.apply(MasterHeartbeat(masterid=10), message_id="hb")
    await store.apply(MasterStopped(masterid=10), message_id="stop")
    assert DUPLICATE == await store.apply(MasterHeartbeat(masterid=10), message_id="hb")
    assert not (await _master(store, 10)).active


async def test_failed_write_does_not_remember_its_message_id(store: RedisStore) -> None:
    """A write that failed with not_found leaves its message_id free for the fixed event."""
    with pytest.raises(NotFound):
        await store.apply(SetWorkerGraceful(workerid=1, graceful=True), message_id="m1")
    wid, _ = await new_worker(store, "zero")
    assert 1 == wid
    assert 1 == await store.apply(SetWorkerGraceful(workerid=1, graceful=True), message_id="m1")


async def test_no_op_write_remembers_its_message_id(store: RedisStore) -> None:
    """A write applied as a no-op still counts as seen: its replay is a duplicate."""
    wid, _ = await new_worker(store, "zero")
    assert 0 == await store.apply(WorkerDisconnected(workerid=wid, masterid=10), message_id="m")
    assert DUPLICATE == await store.apply(
        WorkerDisconnected(workerid=wid, masterid=10), message_id="m"
    )


async def test_message_ids_are_remembered_ten_minutes(redis: Redis, store: RedisStore) -> None:
    """A message_id is remembered in Redis under the prefix for (at least) 10 minutes.

    Its hash lives to the end of the next 10-minute generation: 10 to 20 minutes.
    """
    await store.apply(MasterHeartbeat(masterid=10), message_id="m1")
    assert 1 == await store.remembered(["m1", "m2"])
    pattern = f"{store.keys.message_prefix}*".replace("{", "\\{").replace("}", "\\}")
    [key] = [k async for k in redis.scan_iter(match=pattern)]
    assert 600_000 < await redis.pttl(key) <= 1_200_000


async def test_message_ids_of_the_last_generation_are_remembered(
    redis: Redis, store: RedisStore
) -> None:
    """An id in the last 10-minute generation's hash is a duplicate; one before is not."""
    seconds, micros = await redis.time()
    generation = (seconds * 1000 + micros // 1000) // 600_000
    for back, message_id in ((1, "last"), (2, "before")):
        shard = hashlib.sha1(message_id.encode()).hexdigest()[:2]
        key = f"{store.keys.message_prefix}{generation - back}:{shard}"
        await redis.hset(key, message_id, "1")
    assert (DUPLICATE, 1) == (
        await store.apply(MasterHeartbeat(masterid=10), message_id="last"),
        await store.apply(MasterHeartbeat(masterid=10), message_id="before"),
    )


async def test_apply_many_keeps_order_and_reports_each(store: RedisStore) -> None:
    """apply_many applies in order and returns each write's count, DUPLICATE or error."""
    wid, _ = await new_worker(store, "zero")
    rev = await revision(store)
    results = await store.apply_many(
        [
            (WorkerConnected(workerid=wid, masterid=10, workerinfo={"h": 1}), None),
            (WorkerConnected(workerid=999, masterid=10, workerinfo={}), "bad"),
            (WorkerConfigured(workerid=wid, masterid=10, builderids=[20]), "m1"),
            (WorkerConfigured(workerid=wid, masterid=10, builderids=[21]), "m1"),
            (WorkerDisconnected(workerid=wid, masterid=10), None),
            (WorkerDisconnected(workerid=wid, masterid=10), None),
            (WorkerConfigured(workerid=999, masterid=10, builderids=[]), "bad"),
        ]
    )
    assert [1, NotFound, 1, DUPLICATE, 1, 0, NotFound] == [
        type(r) if isinstance(r, Exception) else r for r in results
    ]
    assert [
        ("connected", wid, 10),
        ("configured", wid, 10),
        ("disconnected", wid, 10),
    ] == await summaries_since(store, rev)


# getChanges ------------------------------------------------------------------------------


@pytest.mark.parametrize("store_settings", [StoreSettings()])
async def test_get_changes_pages_in_order(registry: Registry) -> None:
    """getChanges returns revisions after `since`, at most `limit`, in order."""
    for i in range(25):
        await registry.store.find_worker_id(f"w{i}")
    pages = []
    since = 0
    while True:
        page = await registry.execute(GetChanges(since=since, limit=10))
        assert isinstance(page, ChangesPage)
        if not page.changes:
            break
        pages.append([c.revision for c in page.changes])
        since = page.changes[-1].revision
    assert [list(range(1, 11)), list(range(11, 21)), list(range(21, 26))] == pages


@pytest.mark.parametrize("store_settings", [StoreSettings()])
async def test_get_changes_default_limit_is_100(registry: Registry) -> None:
    """Without a limit, getChanges returns the first 100 changes after `since`."""
    wid = await registry.store.find_worker_id("zero")
    await registry.store.apply_many(
        [(SetWorkerGraceful(workerid=wid, graceful=i % 2 == 0), None) for i in range(150)]
    )
    page = await registry.execute(GetChanges(since=0))
    assert isinstance(page, ChangesPage)
    assert (151, list(range(1, 101))) == (page.revision, [c.revision for c in page.changes])


@pytest.mark.parametrize("ahead", [0, 1, 10**9])
async def test_get_changes_at_or_above_current_is_empty(registry: Registry, ahead: int) -> None:
    """`since` at or above the current revision gives an empty list and the revision."""
    for i in range(3):
        await registry.store.find_worker_id(f"w{i}")
    page = await registry.execute(GetChanges(since=3 + ahead))
    assert ChangesPage(revision=3, changes=[]) == page


async def test_get_changes_on_an_empty_registry(registry: Registry) -> None:
    """A registry with no change yet answers getChanges(0) with revision 0 and no change."""
    assert ChangesPage(revision=0, changes=[]) == await registry.execute(GetChanges(since=0))


async def test_trimmed_history_requires_resync(
    redis: Redis, store: RedisStore, registry: Registry
) -> None:
    """getChanges older than the retained history is resync_required; newer still pages.

    The history is the last RETAIN changes exactly, whatever more the log keeps.
    """
    for i in range(300):
        await store.find_worker_id(f"w{i}")
    [(first, _, _)] = await log_entries(redis, store, count=1)
    oldest = 300 - RETAIN + 1
    assert 1 < first <= oldest
    with pytest.raises(ResyncRequired, match=rf"oldest kept: {oldest}\)"):
        await registry.execute(GetChanges(since=0))
    with pytest.raises(ResyncRequired):
        await registry.execute(GetChanges(since=oldest - 2))
    page = await registry.execute(GetChanges(since=oldest - 1, limit=1))
    assert isinstance(page, ChangesPage)
    assert [oldest] == [c.revision for c in page.changes]
    assert ChangesPage(revision=300, changes=[]) == await registry.execute(GetChanges(since=300))


async def test_last_retained_changes_stay_readable(store: RedisStore) -> None:
    """At least the last `retain_changes` changes are always readable."""
    for i in range(250):
        await store.find_worker_id(f"w{i}")
    page = await store.read_changes(250 - RETAIN, 1000)
    assert list(range(251 - RETAIN, 251)) == [c.revision for c in page.changes]


async def test_relay_claim_reads_after_the_batch_in_flight(store: RedisStore) -> None:
    """A batch sent but not confirmed is not recorded; the next claim reads past it."""
    for name in ("r1", "r2", "r3"):
        await new_worker(store, name)
    top = await revision(store)
    relay = RelayStore(store)
    first = await relay.claim(LEASE, top - 1)  # all but the last
    sent = [c.revision for c in first.changes]
    assert sent == list(range(1, top))
    in_flight = Published(first.epoch, revision=sent[-1])
    ahead = await relay.claim(LEASE, 10, in_flight=in_flight)
    assert (ahead.cursor, [c.revision for c in ahead.changes]) == (first.cursor, [top])
    other_epoch = await relay.claim(LEASE, 10, in_flight=Published("old", revision=sent[-1]))
    assert [c.revision for c in other_epoch.changes] == [*sent, top]
    recorded = await relay.claim(LEASE, 10, published=in_flight)
    assert (recorded.cursor, [c.revision for c in recorded.changes]) == (sent[-1], [top])
