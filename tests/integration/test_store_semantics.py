"""Every rule of PROTOCOL.md section 2, against the real Redis store."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from registryd.errors import NotFound
from registryd.models import (
    ConfiguredOn,
    DeconfigureAllWorkersForMaster,
    GetWorker,
    GetWorkers,
    Master,
    MasterHeartbeat,
    MasterStopped,
    Operation,
    SetWorkerGraceful,
    SetWorkerPaused,
    Worker,
    WorkerConfigured,
    WorkerConnected,
    WorkerDisconnected,
)
from registryd.models.types import MAX_ID
from registryd.service import Registry
from registryd.store import RedisStore
from tests.integration.support import key_names, new_worker, revision, worker

pytestmark = pytest.mark.integration

LEASE = 60_000
T0 = 1_700_000_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")


def _pairs(w: Worker) -> list[tuple[int, int]]:
    """configured_on as (masterid, builderid), in record order."""
    return [(p.masterid, p.builderid) for p in w.configured_on]


async def _apply_all(store: RedisStore, *ops: Operation) -> None:
    """Apply writes in order, one call each."""
    for op in ops:
        await store.apply(op)


async def _masters(store: RedisStore) -> dict[int, Master]:
    """getMasters by id."""
    return {m.id: m for m in await store.read_masters()}


# findWorkerId ---------------------------------------------------------------------------


async def test_find_worker_id_creates_with_defaults(store: RedisStore) -> None:
    """A new name gets a positive id and the new-worker defaults of section 1."""
    workerid, record = await new_worker(store, "zero")
    assert workerid >= 1
    assert (
        Worker(
            id=workerid,
            name="zero",
            workerinfo={},
            paused=False,
            pause_reason=None,
            graceful=False,
            connected_to=[],
            configured_on=[],
        )
        == record
    )


async def test_find_worker_id_is_idempotent(store: RedisStore) -> None:
    """A known name returns its id again and creates nothing more."""
    first = await store.find_worker_id("zero")
    rev = await revision(store)
    assert first == await store.find_worker_id("zero")
    assert [first] == [w.id for w in await store.read_workers()]
    assert rev == await revision(store)


async def test_find_worker_id_gives_distinct_increasing_ids(store: RedisStore) -> None:
    """Each new name gets its own id, never one already handed out."""
    ids = [await store.find_worker_id(f"w{i}") for i in range(20)]
    assert sorted(set(ids)) == ids


async def test_names_are_case_sensitive(registry: Registry) -> None:
    """Names "Zero" and "zero" are two workers; a lookup by name matches the exact case."""
    lower = await registry.store.find_worker_id("zero")
    upper = await registry.store.find_worker_id("Zero")
    assert lower != upper
    found = await registry.get_worker(GetWorker(name="ZERO"))
    assert found is None


@pytest.mark.parametrize("name", ["日本-ワーカー", "\U0010ffff", "é" * 50, "_-", "a" * 50])
async def test_names_round_trip_exactly(registry: Registry, name: str) -> None:
    """Any valid name is stored and found back exactly, by id and by name."""
    workerid = await registry.store.find_worker_id(name)
    by_name = await registry.get_worker(GetWorker(name=name))
    assert (workerid, name) == ((by_name.id, by_name.name) if by_name else None)
    assert workerid == await registry.store.find_worker_id(name)


# workerConnected / workerDisconnected -----------------------------------------------------


async def test_connect_adds_the_master_once(store: RedisStore) -> None:
    """A second connect to the same master does not duplicate it in connected_to."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        WorkerConnected(workerid=wid, masterid=10, workerinfo={"a": 1}),
        WorkerConnected(workerid=wid, masterid=10, workerinfo={"a": 1}),
    )
    assert [10] == (await worker(store, wid)).connected_to


async def test_connect_replaces_workerinfo_entirely(store: RedisStore) -> None:
    """workerinfo is replaced by the last connect's, not merged, on any master."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        WorkerConnected(workerid=wid, masterid=10, workerinfo={"a": 1, "b": 2}),
        WorkerConnected(workerid=wid, masterid=11, workerinfo={"c": 3}),
    )
    record = await worker(store, wid)
    assert ({"c": 3}, [10, 11]) == (record.workerinfo, record.connected_to)


async def test_workerinfo_round_trips_exactly(store: RedisStore) -> None:
    """Nested values, nulls, floats and escapes in workerinfo come back unchanged."""
    info: dict[str, Any] = {
        "admin": None,
        "host": 'h"1\\\n',
        "access_uri": "ssh://é/∞",
        "version": "3.11",
        "n": [1, 1.5, -0.25, 1e300, True, {"deep": {}}],
    }
    wid, _ = await new_worker(store, "zero")
    await store.apply(WorkerConnected(workerid=wid, masterid=10, workerinfo=info))
    assert info == (await worker(store, wid)).workerinfo


async def test_connect_leaves_state_and_pairs_alone(store: RedisStore) -> None:
    """workerConnected does not touch paused, pause_reason, graceful or configured_on."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        SetWorkerPaused(workerid=wid, paused=True, pause_reason="r"),
        SetWorkerGraceful(workerid=wid, graceful=True),
        WorkerConfigured(workerid=wid, masterid=11, builderids=[20]),
    )
    before = await worker(store, wid)
    await store.apply(WorkerConnected(workerid=wid, masterid=10, workerinfo={"x": 1}))
    after = await worker(store, wid)
    assert replace(before, workerinfo={"x": 1}, connected_to=[10]) == after


async def test_connected_to_is_sorted_numerically(store: RedisStore) -> None:
    """connected_to is ascending by number (9 before 10 before 100), up to 2**53-1."""
    wid, _ = await new_worker(store, "zero")
    for masterid in (100, MAX_ID, 9, 20, MAX_ID - 1, 10):
        await store.apply(WorkerConnected(workerid=wid, masterid=masterid, workerinfo={}))
    assert [9, 10, 20, 100, MAX_ID - 1, MAX_ID] == (await worker(store, wid)).connected_to


async def test_disconnect_removes_one_master_and_keeps_workerinfo(store: RedisStore) -> None:
    """workerDisconnected removes only that master and leaves workerinfo as it was."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        WorkerConnected(workerid=wid, masterid=10, workerinfo={"h": 1}),
        WorkerConnected(workerid=wid, masterid=11, workerinfo={"h": 2}),
        WorkerDisconnected(workerid=wid, masterid=11),
    )
    record = await worker(store, wid)
    assert ([10], {"h": 2}) == (record.connected_to, record.workerinfo)


async def test_disconnect_leaves_state_and_pairs_alone(store: RedisStore) -> None:
    """workerDisconnected does not touch paused, graceful or configured_on."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        WorkerConfigured(workerid=wid, masterid=10, builderids=[20]),
        SetWorkerPaused(workerid=wid, paused=True, pause_reason="r"),
        SetWorkerGraceful(workerid=wid, graceful=True),
        WorkerConnected(workerid=wid, masterid=10, workerinfo={"h": 1}),
    )
    before = await worker(store, wid)
    await store.apply(WorkerDisconnected(workerid=wid, masterid=10))
    assert replace(before, connected_to=[]) == await worker(store, wid)


async def test_disconnect_when_not_connected_is_a_no_op(store: RedisStore) -> None:
    """Disconnecting a worker not connected to that master changes nothing and is no error."""
    wid, _ = await new_worker(store, "zero")
    await store.apply(WorkerConnected(workerid=wid, masterid=10, workerinfo={"h": 1}))
    before = await worker(store, wid)
    assert 0 == await store.apply(WorkerDisconnected(workerid=wid, masterid=11))
    assert before == await worker(store, wid)


@pytest.mark.parametrize(
    ("connected_with", "disconnect_with", "applies"),
    [
        (None, None, True),
        (None, "s1", True),
        ("s1", None, True),
        ("s1", "s1", True),
        ("s1", "s2", False),
    ],
)
async def test_disconnect_is_stale_only_when_both_name_different_connections(
    store: RedisStore, connected_with: str | None, disconnect_with: str | None, applies: bool
) -> None:
    """A disconnect is ignored only when it and the remembered connect name differing tokens."""
    wid, _ = await new_worker(store, "zero")
    await store.apply(
        WorkerConnected(workerid=wid, masterid=10, workerinfo={}, connection=connected_with)
    )
    await store.apply(WorkerDisconnected(workerid=wid, masterid=10, connection=disconnect_with))
    assert ([] if applies else [10]) == (await worker(store, wid)).connected_to


async def test_late_disconnect_of_old_session_keeps_fresh_connect(store: RedisStore) -> None:
    """Buildbot #4678: reconnect as s2, then s1's late disconnect leaves the worker connected."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        WorkerConnected(workerid=wid, masterid=10, workerinfo={"v": 1}, connection="s1"),
        WorkerConnected(workerid=wid, masterid=10, workerinfo={"v": 1}, connection="s2"),
        WorkerDisconnected(workerid=wid, masterid=10, connection="s1"),
    )
    assert [10] == (await worker(store, wid)).connected_to
    await store.apply(WorkerDisconnected(workerid=wid, masterid=10, connection="s2"))
    assert [] == (await worker(store, wid)).connected_to


async def test_remembered_connection_is_per_master(store: RedisStore) -> None:
    """Each (worker, master) remembers its own connection token."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        WorkerConnected(workerid=wid, masterid=10, workerinfo={}, connection="a"),
        WorkerConnected(workerid=wid, masterid=11, workerinfo={}, connection="b"),
        WorkerDisconnected(workerid=wid, masterid=10, connection="b"),
        WorkerDisconnected(workerid=wid, masterid=11, connection="b"),
    )
    assert [10] == (await worker(store, wid)).connected_to


async def test_connect_without_token_forgets_the_remembered_one(store: RedisStore) -> None:
    """The remembered token is the last connect's: one naming none lets any disconnect apply."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        WorkerConnected(workerid=wid, masterid=10, workerinfo={}, connection="s1"),
        WorkerConnected(workerid=wid, masterid=10, workerinfo={}),
        WorkerDisconnected(workerid=wid, masterid=10, connection="s2"),
    )
    assert [] == (await worker(store, wid)).connected_to


async def test_reconnect_after_disconnect_starts_a_new_session(store: RedisStore) -> None:
    """After a disconnect applied, a new connect's token is the one a disconnect must match."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        WorkerConnected(workerid=wid, masterid=10, workerinfo={}, connection="s1"),
        WorkerDisconnected(workerid=wid, masterid=10, connection="s1"),
        WorkerConnected(workerid=wid, masterid=10, workerinfo={}, connection="s2"),
        WorkerDisconnected(workerid=wid, masterid=10, connection="s1"),
    )
    assert [10] == (await worker(store, wid)).connected_to


async def test_connect_changing_only_the_token_changes_no_record(store: RedisStore) -> None:
    """A connect with the same info and a new token logs nothing and leaves the record as is."""
    wid, _ = await new_worker(store, "zero")
    await store.apply(
        WorkerConnected(workerid=wid, masterid=10, workerinfo={"h": 1}, connection="s1")
    )
    before, rev = await worker(store, wid), await revision(store)
    changed = await store.apply(
        WorkerConnected(workerid=wid, masterid=10, workerinfo={"h": 1}, connection="s2")
    )
    assert (0, rev, before) == (changed, await revision(store), await worker(store, wid))


# workerConfigured / deconfigureAllWorkersForMaster ---------------------------------------


async def test_configure_replaces_only_this_masters_pairs(store: RedisStore) -> None:
    """workerConfigured replaces the worker's pairs on that master; other masters' stay."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        WorkerConfigured(workerid=wid, masterid=10, builderids=[20, 21]),
        WorkerConfigured(workerid=wid, masterid=11, builderids=[20]),
        WorkerConfigured(workerid=wid, masterid=10, builderids=[22]),
    )
    assert [(10, 22), (11, 20)] == _pairs(await worker(store, wid))


async def test_configure_leaves_other_workers_alone(store: RedisStore) -> None:
    """Configuring one worker on a master does not change another worker's pairs there."""
    zero, _ = await new_worker(store, "zero")
    one, _ = await new_worker(store, "one")
    await _apply_all(
        store,
        WorkerConfigured(workerid=one, masterid=10, builderids=[20, 21]),
        WorkerConfigured(workerid=zero, masterid=10, builderids=[22]),
        WorkerConfigured(workerid=zero, masterid=10, builderids=[]),
    )
    assert [(10, 20), (10, 21)] == _pairs(await worker(store, one))


async def test_configure_with_empty_list_removes_this_masters_pairs(store: RedisStore) -> None:
    """An empty builderids removes every pair of that master and no other."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        WorkerConfigured(workerid=wid, masterid=10, builderids=[20, 21]),
        WorkerConfigured(workerid=wid, masterid=11, builderids=[20]),
        WorkerConfigured(workerid=wid, masterid=10, builderids=[]),
    )
    assert [(11, 20)] == _pairs(await worker(store, wid))


async def test_empty_configure_drops_the_worker_from_master_listing(registry: Registry) -> None:
    """After configuring with [], getWorkers(masterid) no longer lists the worker."""
    wid = await registry.store.find_worker_id("zero")
    await registry.execute(WorkerConfigured(workerid=wid, masterid=10, builderids=[20]))
    await registry.execute(WorkerConfigured(workerid=wid, masterid=10, builderids=[]))
    assert [] == await registry.get_workers(GetWorkers(masterid=10))


async def test_configure_collapses_duplicates(store: RedisStore) -> None:
    """Duplicate builder ids in one configure give one pair each."""
    wid, _ = await new_worker(store, "zero")
    await store.apply(WorkerConfigured(workerid=wid, masterid=10, builderids=[21, 20, 21, 20]))
    assert [(10, 20), (10, 21)] == _pairs(await worker(store, wid))


async def test_configured_on_sorted_by_master_then_builder(store: RedisStore) -> None:
    """Pairs are sorted numerically by masterid, then builderid, up to 2**53-1."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        WorkerConfigured(workerid=wid, masterid=100, builderids=[1]),
        WorkerConfigured(workerid=wid, masterid=10, builderids=[100, 9, MAX_ID, 20]),
        WorkerConfigured(workerid=wid, masterid=9, builderids=[5, MAX_ID - 1]),
        WorkerConfigured(workerid=wid, masterid=MAX_ID, builderids=[2, 1]),
    )
    assert [
        (9, 5),
        (9, MAX_ID - 1),
        (10, 9),
        (10, 20),
        (10, 100),
        (10, MAX_ID),
        (100, 1),
        (MAX_ID, 1),
        (MAX_ID, 2),
    ] == _pairs(await worker(store, wid))


async def test_configure_leaves_connections_and_state_alone(store: RedisStore) -> None:
    """workerConfigured changes only configured_on."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        WorkerConnected(workerid=wid, masterid=10, workerinfo={"h": 1}),
        SetWorkerPaused(workerid=wid, paused=True, pause_reason="r"),
    )
    before = await worker(store, wid)
    await store.apply(WorkerConfigured(workerid=wid, masterid=10, builderids=[20]))
    expected = replace(before, configured_on=[ConfiguredOn(builderid=20, masterid=10)])
    assert expected == await worker(store, wid)


async def test_deconfigure_master_removes_its_pairs_everywhere(store: RedisStore) -> None:
    """deconfigureAllWorkersForMaster drops that master's pairs from every worker, only those."""
    zero, _ = await new_worker(store, "zero")
    one, _ = await new_worker(store, "one")
    await _apply_all(
        store,
        WorkerConfigured(workerid=zero, masterid=10, builderids=[20, 21]),
        WorkerConfigured(workerid=zero, masterid=11, builderids=[20]),
        WorkerConfigured(workerid=one, masterid=10, builderids=[22]),
        DeconfigureAllWorkersForMaster(masterid=10),
    )
    assert ([(11, 20)], []) == (
        _pairs(await worker(store, zero)),
        _pairs(await worker(store, one)),
    )


async def test_deconfigure_master_keeps_connections(store: RedisStore) -> None:
    """deconfigureAllWorkersForMaster does not touch connected_to or workerinfo."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        WorkerConfigured(workerid=wid, masterid=10, builderids=[20]),
        WorkerConnected(workerid=wid, masterid=10, workerinfo={"h": 1}),
        DeconfigureAllWorkersForMaster(masterid=10),
    )
    record = await worker(store, wid)
    assert ([10], {"h": 1}, []) == (record.connected_to, record.workerinfo, _pairs(record))


async def test_deconfigure_then_configure_again(registry: Registry) -> None:
    """A master reconfigured after a deconfigure lists its workers again."""
    wid = await registry.store.find_worker_id("zero")
    for op in (
        WorkerConfigured(workerid=wid, masterid=10, builderids=[20]),
        DeconfigureAllWorkersForMaster(masterid=10),
        WorkerConfigured(workerid=wid, masterid=10, builderids=[21]),
    ):
        await registry.execute(op)
    listed = await registry.get_workers(GetWorkers(masterid=10))
    assert [[(10, 21)]] == [_pairs(w) for w in listed]


# set_worker_paused / set_worker_graceful ------------------------------------------------


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        ([(True, "disk full")], (True, "disk full")),
        ([(True, None)], (True, None)),
        ([(True, "disk full"), (True, None)], (True, None)),
        ([(True, "disk full"), (False, None)], (False, None)),
        ([(True, "disk full"), (False, "kept as given")], (False, "kept as given")),
        ([(False, "odd but stored")], (False, "odd but stored")),
        ([(True, "")], (True, "")),
        ([(True, 'q"\\\n∞')], (True, 'q"\\\n∞')),
    ],
)
async def test_paused_and_reason_stored_exactly_as_given(
    store: RedisStore,
    calls: list[tuple[bool, str | None]],
    expected: tuple[bool, str | None],
) -> None:
    """set_worker_paused stores paused and pause_reason as the last call gave them."""
    wid, _ = await new_worker(store, "zero")
    for paused, reason in calls:
        await store.apply(SetWorkerPaused(workerid=wid, paused=paused, pause_reason=reason))
    record = await worker(store, wid)
    assert expected == (record.paused, record.pause_reason)


async def test_graceful_is_independent_of_paused(store: RedisStore) -> None:
    """set_worker_graceful leaves paused/pause_reason alone, and pausing leaves graceful."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        SetWorkerPaused(workerid=wid, paused=True, pause_reason="r"),
        SetWorkerGraceful(workerid=wid, graceful=True),
    )
    record = await worker(store, wid)
    assert (True, "r", True) == (record.paused, record.pause_reason, record.graceful)
    await store.apply(SetWorkerPaused(workerid=wid, paused=False))
    record = await worker(store, wid)
    assert (False, None, True) == (record.paused, record.pause_reason, record.graceful)
    await store.apply(SetWorkerGraceful(workerid=wid, graceful=False))
    assert not (await worker(store, wid)).graceful


async def test_state_writes_leave_connections_and_pairs_alone(store: RedisStore) -> None:
    """Pause and graceful writes change only the state fields."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        WorkerConnected(workerid=wid, masterid=10, workerinfo={"h": 1}),
        WorkerConfigured(workerid=wid, masterid=10, builderids=[20]),
    )
    before = await worker(store, wid)
    await _apply_all(
        store,
        SetWorkerPaused(workerid=wid, paused=True, pause_reason="r"),
        SetWorkerGraceful(workerid=wid, graceful=True),
    )
    expected = replace(before, paused=True, pause_reason="r", graceful=True)
    assert expected == await worker(store, wid)


# Unknown workers --------------------------------------------------------------------------

UNKNOWN = 999_999

WRITES_ON_UNKNOWN: list[Operation] = [
    WorkerConnected(workerid=UNKNOWN, masterid=10, workerinfo={"h": 1}, connection="s1"),
    WorkerConnected(workerid=UNKNOWN, masterid=10, workerinfo={}),
    WorkerDisconnected(workerid=UNKNOWN, masterid=10),
    WorkerDisconnected(workerid=UNKNOWN, masterid=10, connection="s1"),
    WorkerConfigured(workerid=UNKNOWN, masterid=10, builderids=[20]),
    WorkerConfigured(workerid=UNKNOWN, masterid=10, builderids=[]),
    SetWorkerPaused(workerid=UNKNOWN, paused=True, pause_reason="r"),
    SetWorkerPaused(workerid=UNKNOWN, paused=False),
    SetWorkerGraceful(workerid=UNKNOWN, graceful=True),
    SetWorkerGraceful(workerid=UNKNOWN, graceful=False),
]


@pytest.mark.parametrize("op", WRITES_ON_UNKNOWN, ids=lambda op: op.method)
async def test_write_on_unknown_worker_is_not_found_and_stores_nothing(
    redis: Redis, store: RedisStore, op: Operation
) -> None:
    """A write naming an unknown worker id raises not_found and leaves no key behind."""
    await new_worker(store, "zero")
    before, rev = await key_names(redis, store), await revision(store)
    with pytest.raises(NotFound, match=str(UNKNOWN)):
        await store.apply(op, message_id="m-unknown")
    assert (before, rev) == (await key_names(redis, store), await revision(store))


@pytest.mark.parametrize("op", WRITES_ON_UNKNOWN[:1], ids=lambda op: op.method)
async def test_not_found_through_the_service(registry: Registry, op: Operation) -> None:
    """The service reports an unknown worker on a write as not_found too."""
    with pytest.raises(NotFound):
        await registry.execute(op)
    assert [] == await registry.get_workers(GetWorkers())


# Masters ---------------------------------------------------------------------------------


async def test_master_name_is_null_until_given(store: RedisStore) -> None:
    """A heartbeat without a name lists the master with name null, active."""
    await store.apply(MasterHeartbeat(masterid=10))
    master = (await _masters(store))[10]
    assert (None, True) == (master.name, master.active)


async def test_heartbeat_names_and_renames(store: RedisStore) -> None:
    """A heartbeat's name names the master; another name renames it; no name keeps it."""
    await store.apply(MasterHeartbeat(masterid=10, name="h:/a"))
    assert "h:/a" == (await _masters(store))[10].name
    await store.apply(MasterHeartbeat(masterid=10, name="h:/b"))
    assert "h:/b" == (await _masters(store))[10].name
    await store.apply(MasterHeartbeat(masterid=10))
    assert "h:/b" == (await _masters(store))[10].name


async def test_master_name_round_trips_exactly(store: RedisStore) -> None:
    """Free-text master names with quotes, escapes and non-ASCII come back unchanged."""
    name = 'host:/base "dir"\\∞\n' + "x" * 180
    await store.apply(MasterHeartbeat(masterid=10, name=name))
    assert name == (await _masters(store))[10].name


@pytest.mark.parametrize(
    "now_ms",
    [0, 999, T0 + 123, 951_782_400_000, 4_102_444_799_999, 1_709_164_800_000 - 1],
)
async def test_last_seen_is_iso_utc_of_the_heartbeat(store: RedisStore, now_ms: int) -> None:
    """last_seen is the heartbeat's time as ISO-8601 UTC ending in Z (leap days included)."""
    await store.apply(MasterHeartbeat(masterid=10), now_ms=now_ms)
    last_seen = (await _masters(store))[10].last_seen
    assert last_seen is not None
    assert ISO_UTC.fullmatch(last_seen), last_seen
    expected = EPOCH + timedelta(milliseconds=now_ms)
    assert expected == datetime.fromisoformat(last_seen)


async def test_last_seen_follows_the_latest_heartbeat(store: RedisStore) -> None:
    """A heartbeat that only refreshes the lease still moves last_seen forward."""
    await store.apply(MasterHeartbeat(masterid=10), now_ms=T0)
    await store.apply(MasterHeartbeat(masterid=10), now_ms=T0 + 20_000)
    last_seen = (await _masters(store))[10].last_seen
    assert "2023-11-14T22:13:40.000Z" == last_seen


async def test_get_masters_is_sorted_by_id(store: RedisStore) -> None:
    """getMasters lists masters by ascending numeric id."""
    for masterid in (100, 9, MAX_ID, 10):
        await store.apply(MasterHeartbeat(masterid=masterid))
    assert [9, 10, 100, MAX_ID] == [m.id for m in await store.read_masters()]


async def test_masters_seen_only_in_worker_ops_are_not_listed(store: RedisStore) -> None:
    """Master ids used only by worker writes do not appear in getMasters."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        WorkerConnected(workerid=wid, masterid=10, workerinfo={}),
        WorkerConfigured(workerid=wid, masterid=11, builderids=[20]),
        DeconfigureAllWorkersForMaster(masterid=12),
        WorkerDisconnected(workerid=wid, masterid=13),
    )
    assert [] == await store.read_masters()


async def test_stopped_master_is_listed_inactive(store: RedisStore) -> None:
    """A master that was only ever stopped is listed, inactive, with name null."""
    await store.apply(MasterStopped(masterid=12))
    master = (await _masters(store))[12]
    assert (12, None, False) == (master.id, master.name, master.active)


async def _populate_master(store: RedisStore) -> tuple[int, int, int, int]:
    """Workers around master 10: both, pairs only, connection only, and one on 11 only."""
    both, _ = await new_worker(store, "both")
    pairs, _ = await new_worker(store, "pairs")
    conn, _ = await new_worker(store, "conn")
    other, _ = await new_worker(store, "other")
    await _apply_all(
        store,
        MasterHeartbeat(masterid=10, name="m10"),
        WorkerConfigured(workerid=both, masterid=10, builderids=[20, 21]),
        WorkerConfigured(workerid=both, masterid=11, builderids=[20]),
        WorkerConnected(workerid=both, masterid=10, workerinfo={"h": 1}, connection="s"),
        WorkerConnected(workerid=both, masterid=11, workerinfo={"h": 1}),
        WorkerConfigured(workerid=pairs, masterid=10, builderids=[22]),
        WorkerConnected(workerid=conn, masterid=10, workerinfo={"h": 3}),
        WorkerConfigured(workerid=other, masterid=11, builderids=[20]),
        WorkerConnected(workerid=other, masterid=11, workerinfo={"h": 4}),
    )
    return both, pairs, conn, other


async def _assert_master_dropped(
    store: RedisStore, ids: tuple[int, int, int, int], other_before: Worker
) -> None:
    """Master 10 is gone from every worker; master 11's state and other workers are intact."""
    both, pairs, conn, other = ids
    records = [await worker(store, wid) for wid in (both, pairs, conn)]
    assert [([11], [(11, 20)]), ([], []), ([], [])] == [
        (w.connected_to, _pairs(w)) for w in records
    ]
    assert {"h": 1} == records[0].workerinfo
    assert other_before == await worker(store, other)


async def test_master_stopped_drops_it_from_every_worker(store: RedisStore) -> None:
    """masterStopped removes the master's connections and pairs everywhere, marks it inactive."""
    ids = await _populate_master(store)
    other_before = await worker(store, ids[3])
    await store.apply(MasterStopped(masterid=10))
    await _assert_master_dropped(store, ids, other_before)
    master = (await _masters(store))[10]
    assert ("m10", False) == (master.name, master.active)


async def test_master_stopped_keeps_the_state_flags(store: RedisStore) -> None:
    """masterStopped does not touch paused, pause_reason or graceful."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        MasterHeartbeat(masterid=10),
        SetWorkerPaused(workerid=wid, paused=True, pause_reason="r"),
        SetWorkerGraceful(workerid=wid, graceful=True),
        WorkerConnected(workerid=wid, masterid=10, workerinfo={}),
        MasterStopped(masterid=10),
    )
    record = await worker(store, wid)
    assert (True, "r", True, []) == (
        record.paused,
        record.pause_reason,
        record.graceful,
        record.connected_to,
    )


async def test_master_stopped_forgets_connection_tokens(store: RedisStore) -> None:
    """After a stop, a reconnect without a token is undone by any later disconnect."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        MasterHeartbeat(masterid=10),
        WorkerConnected(workerid=wid, masterid=10, workerinfo={}, connection="s1"),
        MasterStopped(masterid=10),
        MasterHeartbeat(masterid=10),
        WorkerConnected(workerid=wid, masterid=10, workerinfo={}),
        WorkerDisconnected(workerid=wid, masterid=10, connection="s2"),
    )
    assert [] == (await worker(store, wid)).connected_to


async def test_stopped_master_no_longer_lists_workers(
    store: RedisStore, registry: Registry
) -> None:
    """After masterStopped, getWorkers(masterid) is empty."""
    ids = await _populate_master(store)
    assert ids[:2] == tuple(w.id for w in await registry.get_workers(GetWorkers(masterid=10)))
    await registry.execute(MasterStopped(masterid=10))
    assert [] == await registry.get_workers(GetWorkers(masterid=10))


async def test_heartbeat_reactivates_a_stopped_master(store: RedisStore) -> None:
    """A heartbeat from an inactive master makes it active again, keeping its name."""
    await _apply_all(store, MasterHeartbeat(masterid=10, name="m10"), MasterStopped(masterid=10))
    await store.apply(MasterHeartbeat(masterid=10))
    master = (await _masters(store))[10]
    assert ("m10", True) == (master.name, master.active)


# Lease expiry ------------------------------------------------------------------------------


async def test_master_expires_after_the_lease(store: RedisStore) -> None:
    """A master silent for longer than the lease expires, as by masterStopped."""
    ids = await _populate_master(store)
    other_before = await worker(store, ids[3])
    await store.apply(MasterHeartbeat(masterid=10), now_ms=T0)
    assert [] == await store.expire_masters(now_ms=T0 + LEASE - 1)
    assert [10] == await store.expire_masters(now_ms=T0 + LEASE + 1)
    await _assert_master_dropped(store, ids, other_before)
    assert not (await _masters(store))[10].active


async def test_heartbeat_extends_the_lease(store: RedisStore) -> None:
    """Each heartbeat pushes the lease end to its own time plus the lease."""
    await store.apply(MasterHeartbeat(masterid=10), now_ms=T0)
    await store.apply(MasterHeartbeat(masterid=10), now_ms=T0 + 50_000)
    assert [] == await store.expire_masters(now_ms=T0 + LEASE + 1)
    assert [10] == await store.expire_masters(now_ms=T0 + 50_000 + LEASE + 1)


async def test_master_without_heartbeat_never_expires(store: RedisStore) -> None:
    """Masters known only from worker ops or a stop never expire."""
    wid, _ = await new_worker(store, "zero")
    await _apply_all(
        store,
        WorkerConnected(workerid=wid, masterid=10, workerinfo={}),
        WorkerConfigured(workerid=wid, masterid=10, builderids=[20]),
        MasterStopped(masterid=11),
    )
    assert [] == await store.expire_masters(now_ms=2**52)
    record = await worker(store, wid)
    assert ([10], [(10, 20)]) == (record.connected_to, _pairs(record))


async def test_stopped_master_does_not_expire_later(store: RedisStore) -> None:
    """A master stopped cleanly has no lease left to expire."""
    await _apply_all(store, MasterHeartbeat(masterid=10), MasterStopped(masterid=10))
    assert [] == await store.expire_masters(now_ms=2**52)


async def test_expired_master_comes_back_with_a_heartbeat(store: RedisStore) -> None:
    """A heartbeat after expiry reactivates the master with a fresh lease."""
    await store.apply(MasterHeartbeat(masterid=10, name="m10"), now_ms=T0)
    assert [10] == await store.expire_masters(now_ms=T0 + LEASE + 1)
    await store.apply(MasterHeartbeat(masterid=10), now_ms=T0 + 2 * LEASE)
    master = (await _masters(store))[10]
    assert ("m10", True) == (master.name, master.active)
    assert [] == await store.expire_masters(now_ms=T0 + 2 * LEASE + 1)
    assert [10] == await store.expire_masters(now_ms=T0 + 3 * LEASE + 1)


async def test_only_masters_past_their_lease_expire(store: RedisStore) -> None:
    """One expiry pass takes the masters whose lease ended and leaves the others."""
    await store.apply(MasterHeartbeat(masterid=10), now_ms=T0)
    await store.apply(MasterHeartbeat(masterid=11), now_ms=T0 + 30_000)
    await store.apply(MasterHeartbeat(masterid=12), now_ms=T0 + 1_000)
    assert [10, 12] == sorted(await store.expire_masters(now_ms=T0 + LEASE + 2_000))
    assert {10: False, 11: True, 12: False} == {m.id: m.active for m in await store.read_masters()}


async def test_next_lease_end_is_the_earliest_lease_by_redis_clock(store: RedisStore) -> None:
    """No lease: None; after heartbeats, the earliest lease's end, in seconds from now."""
    assert await store.next_lease_end() is None
    await store.apply(MasterHeartbeat(masterid=10))
    await store.apply(MasterHeartbeat(masterid=11))
    lease = store.settings.master_lease_ms / 1000
    assert 0 < await store.next_lease_end() <= lease  # type: ignore[operator]
    await store.apply(MasterStopped(masterid=10))
    await store.apply(MasterStopped(masterid=11))
    assert await store.next_lease_end() is None
