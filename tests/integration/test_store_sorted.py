"""Unfiltered listings through ``SORT_RO`` (registryd.store.sorted) agree with the script.

Two stores on one prefix: one lists through ``SORT_RO``, one (``sorted_listings=False``)
through ``read_workers.lua``; every page, budget and refusal must come out the same.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from redis.asyncio import Redis

from registryd.models import (
    Operation,
    SetWorkerGraceful,
    SetWorkerPaused,
    WorkerConfigured,
    WorkerConnected,
)
from registryd.ports import Listing
from registryd.registry import WorkerFilter
from registryd.store import Keys, RedisStore, StoreSettings
from registryd.store import sorted as sorted_module
from registryd.store.sorted import Command, Outcome, SortedListings, SpanFilter, _Counted
from tests.harness import PrivateRedis

pytestmark = pytest.mark.integration

ALL = WorkerFilter()
WORKERS = 40


async def _populated(store: RedisStore) -> list[int]:
    """``WORKERS`` workers, documents of different sizes; their ids.

    Some hold flag keys of their own in their ``workerinfo`` (false where the worker's
    flag is true, and the other way round) and in their pause reason.
    """
    ids = [await store.find_worker_id(f"w{i:02d}") for i in range(WORKERS)]
    writes: list[tuple[Operation, str | None]] = []
    for w in ids:
        info: dict[str, object] = {"n": "x" * w}
        if w % 5 == 0:
            info |= {"paused": w % 4 != 0, "graceful": w % 3 != 0}
        reason = 'r,"paused":false,"graceful":false' if w % 8 == 0 else "r"
        writes.append((WorkerConnected(workerid=w, masterid=1, workerinfo=info), None))
        writes.append((WorkerConfigured(workerid=w, masterid=1 + w % 3, builderids=[w]), None))
        if w % 4 == 0:
            writes.append((SetWorkerPaused(workerid=w, paused=True, pause_reason=reason), None))
        if w % 3 == 0:
            writes.append((SetWorkerGraceful(workerid=w, graceful=True), None))
    await store.apply_many(writes)
    return ids


@pytest.fixture
async def stores(redis: Redis, prefix: str) -> tuple[RedisStore, RedisStore]:
    """The sorting store and the scripting one, on one populated prefix."""
    keys = Keys(prefix)
    sorting = RedisStore(redis, keys)
    scripting = RedisStore(redis, keys, StoreSettings(sorted_listings=False))
    await sorting.init_epoch()
    await _populated(sorting)
    return sorting, scripting


PAGES = [(0, None), (0, 1), (0, 7), (5, 10), (13, None), (39, 5), (40, None), (500, 3)]


#: The filters a sort can list: none, and false flags (their sets are left out).
SORTABLE = [ALL, WorkerFilter(paused=False), WorkerFilter(graceful=False),
            WorkerFilter(paused=False, graceful=False)]  # fmt: skip


@pytest.mark.parametrize("where", SORTABLE, ids=str)
@pytest.mark.parametrize(("after", "limit"), PAGES)
async def test_pages_agree_with_the_script(
    stores: tuple[RedisStore, RedisStore], after: int, limit: int | None, where: WorkerFilter
) -> None:
    """Every page is the script's, byte for byte, with the same count."""
    sorting, scripting = stores
    got = await sorting.read_listing(where, after, limit)
    assert got == await scripting.read_listing(where, after, limit)
    assert got is not None
    listed = [w["id"] for w in json.loads(b"[" + got.docs + b"]")]
    assert _model(where, after)[:limit] == listed
    assert len(listed) == got.count


def _model(where: WorkerFilter, after: int) -> list[int]:
    """The ids ``where`` lists above ``after``, as :func:`_populated` made them."""
    return [
        w
        for w in range(after + 1, WORKERS + 1)
        if (where.paused is None or where.paused == (w % 4 == 0))
        and (where.graceful is None or where.graceful == (w % 3 == 0))
    ]


async def test_a_false_flag_sorts(redis: Redis, prefix: str, stores: object) -> None:
    """``paused=false`` is listed by the sort, the paused workers dropped."""
    keys = Keys(prefix)
    listings = SortedListings(redis, keys)
    got = await listings.read(0, 5, None, [keys.paused])
    assert isinstance(got, Listing)
    assert [1, 2, 3, 5, 6] == [w["id"] for w in json.loads(b"[" + got.docs + b"]")]


def _ids(listing: Listing | Outcome | None) -> list[int]:
    """The ids of a listing's documents."""
    assert isinstance(listing, Listing), listing
    return [w["id"] for w in json.loads(b"[" + listing.docs + b"]")]


def _writing_after_counts(
    monkeypatch: pytest.MonkeyPatch, listings: SortedListings, store: RedisStore, times: int
) -> list[bool]:
    """Pause or unpause worker 2 just after each of the first ``times`` counts.

    The list says, for each count, whether it read the sets' ids.
    """
    real, counts = listings._counts, list[bool]()

    async def then_written(after: int, sets: Sequence[str], *, members: bool) -> _Counted:
        counted = await real(after, sets, members=members)
        counts.append(members)
        if len(counts) <= times:
            flip = SetWorkerPaused(workerid=2, paused=len(counts) % 2 == 1, pause_reason=None)
            await store.apply_many([(flip, None)])
        return counted

    monkeypatch.setattr(listings, "_counts", then_written)
    return counts


@pytest.mark.parametrize("limit", [5, None])
async def test_a_pause_between_count_and_sort_counts_again(
    redis: Redis,
    prefix: str,
    stores: tuple[RedisStore, RedisStore],
    monkeypatch: pytest.MonkeyPatch,
    limit: int | None,
) -> None:
    """A listing whose sets changed after they were read is read again, right."""
    keys = Keys(prefix)
    listings = SortedListings(redis, keys)
    counts = _writing_after_counts(monkeypatch, listings, stores[0], times=1)
    unpaused = [w for w in _model(WorkerFilter(paused=False), 0) if w != 2]
    assert unpaused[:limit] == _ids(await listings.read(0, limit, None, [keys.paused]))
    assert [True, True] == counts


async def test_written_between_every_count_and_sort_goes_to_the_script(
    redis: Redis,
    prefix: str,
    stores: tuple[RedisStore, RedisStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twice a write between a page's count and its sort: the script lists it."""
    keys = Keys(prefix)
    listings = SortedListings(redis, keys)
    counts = _writing_after_counts(monkeypatch, listings, stores[0], times=2)
    assert Outcome.USE_SCRIPT == await listings.read(0, 5, None, [keys.paused])
    assert [True, True] == counts


def _commands(monkeypatch: pytest.MonkeyPatch) -> list[list[Command]]:
    """From now on, the list grows by the commands of each round trip of a listing."""
    sent: list[list[Command]] = []
    real = SortedListings._transaction

    async def transaction(self: SortedListings, commands: Sequence[Command]) -> list[Any]:
        sent.append(list(commands))
        return await real(self, commands)

    monkeypatch.setattr(SortedListings, "_transaction", transaction)
    return sent


def _sent(sent: list[list[Command]], name: str) -> list[Command]:
    """The commands called ``name`` among those ``sent``."""
    return [command for commands in sent for command in commands if command[0] == name]


@pytest.mark.parametrize("limit", [5, None])
async def test_listings_not_written_to_meanwhile_cut_what_the_last_one_read(
    stores: tuple[RedisStore, RedisStore], monkeypatch: pytest.MonkeyPatch, limit: int | None
) -> None:
    """Pages or whole listings: the paused ids read once while nothing is written, then again."""
    sorting, scripting = stores
    where = WorkerFilter(paused=False)
    sent = _commands(monkeypatch)
    for after in (0, 6, 6):
        got = await sorting.read_listing(where, after, limit)
        assert got == await scripting.read_listing(where, after, limit)
    assert 1 == len(_sent(sent, "SMEMBERS"))
    await sorting.apply_many([(SetWorkerPaused(workerid=9, paused=True), None)])
    listed = await sorting.read_listing(where, 6, limit)
    assert listed == await scripting.read_listing(where, 6, limit)
    assert [7, 10, 11, 13, 14] == _ids(listed)[:5]
    assert 2 == len(_sent(sent, "SMEMBERS"))


async def test_ids_not_dense_list_a_false_flag_through_the_script(
    redis: Redis, prefix: str, stores: tuple[RedisStore, RedisStore]
) -> None:
    """A registry whose ids are not 1 to the next one: no cut by position, the script lists."""
    sorting, scripting = stores
    keys = Keys(prefix)
    await redis.zrem(keys.workers, "7")  # no registryd removes one; a foreign hand did
    listings = SortedListings(redis, keys)
    assert Outcome.USE_SCRIPT == await listings.read(0, None, None, [keys.paused])
    assert isinstance(await listings.read(0, None, None), Listing)  # no cut: still sorted
    where = WorkerFilter(paused=False)
    assert await scripting.read_listing(where) == await sorting.read_listing(where)


async def test_the_budget_refuses_alike(stores: tuple[RedisStore, RedisStore]) -> None:
    """Over the budget by one byte is ``None`` both ways; at the budget, the listing."""
    sorting, scripting = stores
    whole = await scripting.read_listing(ALL)
    assert whole is not None
    size = len(whole.docs)
    for store in stores:
        assert await store.read_listing(ALL, budget=size - 1) is None
        assert whole == await store.read_listing(ALL, budget=size)
    assert await sorting.read_listing(ALL, 0, 3, budget=10) is None


async def test_sorting_reads_in_c(redis: Redis, prefix: str, stores: object) -> None:
    """The sorting path answers itself (it does not hand every listing to the script)."""
    listings = SortedListings(redis, Keys(prefix))
    got = await listings.read(10, 5, None)
    assert isinstance(got, Listing)
    assert [11, 12, 13, 14, 15] == [w["id"] for w in json.loads(b"[" + got.docs + b"]")]
    assert listings.pattern is not None


async def test_a_refused_sort_turns_the_path_off() -> None:
    """A user without ``SORT_RO`` (an ACL) lists through the script, and says so once."""
    server = PrivateRedis()
    await server.start()
    admin = Redis.from_url(server.url)
    try:
        await admin.acl_setuser(
            "nosort", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-sort_ro"]
        )
        user = Redis.from_url(server.url.replace("redis://", "redis://nosort:pw@"))
        store = RedisStore(user, Keys("acl"))
        await store.init_epoch()
        ids = [await store.find_worker_id(f"w{i}") for i in range(3)]
        listings = SortedListings(user, store.keys)
        assert Outcome.USE_SCRIPT == await listings.read(0, None, None)
        assert listings.pattern is None
        masters = SortedListings(user, store.keys)  # the sort refused inside its MULTI
        assert Outcome.USE_SCRIPT == await masters.read_by("masterid", 1, 0, None, None)
        assert masters.pattern is None
        listing = await store.read_listing(ALL)
        assert listing is not None
        assert len(ids) == listing.count
        await user.aclose()
    finally:
        await admin.aclose()
        server.kill()


def _count_pipelines(monkeypatch: pytest.MonkeyPatch) -> list[list[Command]]:
    """From now on, the list grows by one per round trip of a listing (commands sent).

    The round trips: the one that counts, and its ``MULTI``s.
    """
    return _commands(monkeypatch)


@pytest.fixture
def chunks(monkeypatch: pytest.MonkeyPatch) -> list[list[Command]]:
    """``SORTED_MAX`` at 10; the list grows by one per ``MULTI`` a listing runs."""
    monkeypatch.setattr(sorted_module, "SORTED_MAX", 10)
    return _count_pipelines(monkeypatch)


def _write_after_first_sort(
    monkeypatch: pytest.MonkeyPatch, store: RedisStore, op: Operation
) -> list[bool]:
    """Apply ``op`` once, just after the first ``MULTI`` that sorts; the list says it was."""
    real, written = SortedListings._transaction, list[bool]()

    async def transaction(self: SortedListings, commands: Sequence[Command]) -> list[Any]:
        sorts = any(command[0] == "SORT_RO" for command in commands)
        answers = await real(self, commands)
        if sorts and not written:
            written.append(True)
            await store.apply_many([(op, None)])
        return answers

    monkeypatch.setattr(SortedListings, "_transaction", transaction)
    return written


@pytest.mark.parametrize("where", SORTABLE, ids=str)
@pytest.mark.parametrize("after", [0, 13, 39])
async def test_longer_unpaged_listings_are_read_in_chunks(
    stores: tuple[RedisStore, RedisStore],
    chunks: list[list[Command]],
    where: WorkerFilter,
    after: int,
) -> None:
    """Over ``SORTED_MAX`` unpaged, the sort reads 10 at a time: the script's listing."""
    sorting, scripting = stores
    expected = await scripting.read_listing(where, after)
    chunks.clear()
    got = await sorting.read_listing(where, after)
    assert expected == got
    assert -(-(WORKERS - after) // 10) == len(chunks) - 1  # and the counts' round trip
    paged = await sorting.read_listing(where, after, 10)  # a page stays one sort
    assert paged == await scripting.read_listing(where, after, 10)


async def test_a_write_between_chunks_gives_the_listing_to_the_script(
    redis: Redis,
    prefix: str,
    stores: tuple[RedisStore, RedisStore],
    chunks: list[list[Command]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A document written after the first chunk was read: not one snapshot, the script lists."""
    sorting, _ = stores
    listings = SortedListings(redis, Keys(prefix))
    written = _write_after_first_sort(
        monkeypatch, sorting, SetWorkerPaused(workerid=35, paused=True)
    )
    assert Outcome.USE_SCRIPT == await listings.read(0, None, None)
    assert written
    assert isinstance(await listings.read(0, None, None), Listing)  # nothing written since


async def test_chunks_stop_at_the_budget(
    stores: tuple[RedisStore, RedisStore], chunks: list[list[Command]]
) -> None:
    """Over the budget after the second chunk: no more chunks are read, ``None`` alike."""
    sorting, scripting = stores
    whole = await scripting.read_listing(ALL)
    first_two = await scripting.read_listing(ALL, 0, 20)
    assert whole is not None
    assert first_two is not None
    chunks.clear()
    assert await sorting.read_listing(ALL, budget=len(first_two.docs) - 1) is None
    assert 3 == len(chunks)  # the counts and two chunks of four
    assert whole == await sorting.read_listing(ALL, budget=len(whole.docs))
    assert await sorting.read_listing(ALL, budget=len(whole.docs) - 1) is None


async def test_a_change_between_count_and_sort_goes_to_the_script(
    redis: Redis, prefix: str, stores: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counts that no longer hold inside the transaction hand the listing to the script."""
    listings = SortedListings(redis, Keys(prefix))

    async def stale(after: int, sets: object, *, members: bool) -> _Counted:  # a reset, a new one
        return _Counted(after + 1, WORKERS - after - 1, dense=True, stamp=[], members=None)

    monkeypatch.setattr(listings, "_counts", stale)
    assert Outcome.USE_SCRIPT == await listings.read(3, None, None)


async def test_a_prefix_with_a_star_lists_through_the_script(redis: Redis, prefix: str) -> None:
    """``*`` is SORT's placeholder: such a prefix never sorts, and lists all the same."""
    store = RedisStore(redis, Keys(prefix + "*x"))
    await store.init_epoch()
    try:
        ids = [await store.find_worker_id(f"w{i}") for i in range(3)]
        assert Outcome.USE_SCRIPT == await SortedListings(redis, store.keys).read(0, None, None)
        listing = await store.read_listing(ALL)
        assert listing is not None
        assert len(ids) == listing.count
    finally:
        keys = [k async for k in redis.scan_iter(match=store.keys.pattern(), count=1000)]
        if keys:
            await redis.delete(*keys)


async def _multi_master(store: RedisStore) -> None:
    """Workers configured and connected on several masters each.

    Some have a ``workerinfo`` that names masters too: the cut must not be fooled by it.
    """
    writes: list[tuple[Operation, str | None]] = []
    for i in range(30):
        w = await store.find_worker_id(f"mm{i:02d}")
        masters = [m for m in (1, 2, 3, 4) if (i >> (m - 1)) & 1] or [1]
        info: dict[str, object] = {"n": i}
        if i % 3 == 0:
            info = {"masterid": masters[0], "deep": [{"masterid": 2}], "s": '"masterid":2}'}
        for m in masters:
            builders = [10 * m + i % 3, 10 * m + 5]
            writes.append((WorkerConfigured(workerid=w, masterid=m, builderids=builders), None))
            if (i + m) % 2 == 0:
                op = WorkerConnected(workerid=w, masterid=m, workerinfo=info)
                writes.append((op, None))
    await store.apply_many(writes)


MASTER_PAGES = [(0, None), (0, 1), (0, 4), (0, 100), (3, 4), (12, None), (29, 2), (500, None)]


ID_FILTERS: list[tuple[SpanFilter, int]] = [("masterid", m) for m in (1, 2, 3, 4, 5)] + [
    ("builderid", b) for b in (11, 12, 15, 25, 41, 45, 99)
]


@pytest.mark.parametrize(("after", "limit"), MASTER_PAGES)
@pytest.mark.parametrize("id_filter", ID_FILTERS, ids=str)
async def test_id_filtered_listings_agree_with_the_script(
    redis: Redis, prefix: str, id_filter: tuple[SpanFilter, int], after: int, limit: int | None
) -> None:
    """``masterid`` and ``builderid`` listings sorted and cut in Python are the script's."""
    field, value = id_filter
    keys = Keys(prefix)
    sorting = RedisStore(redis, keys)
    scripting = RedisStore(redis, keys, StoreSettings(sorted_listings=False))
    await sorting.init_epoch()
    await _multi_master(sorting)
    where = WorkerFilter(masterid=value) if field == "masterid" else WorkerFilter(builderid=value)
    got = await sorting.read_listing(where, after, limit)
    assert got == await scripting.read_listing(where, after, limit)
    assert got is not None
    # The sort answered itself, and over the budget by one byte alike.
    assert got == await SortedListings(redis, keys).read_by(field, value, after, limit, None)
    if got.count:
        for store in (sorting, scripting):
            assert await store.read_listing(where, after, limit, len(got.docs) - 1) is None


async def test_a_master_listing_cut_matches_what_the_worker_is_on(
    redis: Redis, prefix: str
) -> None:
    """Cut documents name only the master listed, in ``configured_on`` and ``connected_to``."""
    keys = Keys(prefix)
    store = RedisStore(redis, keys)
    await store.init_epoch()
    await _multi_master(store)
    listing = await SortedListings(redis, keys).read_by("masterid", 2, 0, None, None)
    assert isinstance(listing, Listing)
    workers = json.loads(b"[" + listing.docs + b"]")
    assert 14 == len(workers) == listing.count  # i (0..29) with the bit of master 2 set
    for worker in workers:
        assert {2} == {pair["masterid"] for pair in worker["configured_on"]}
        assert worker["connected_to"] in ([], [2])


async def _across_spans(store: RedisStore) -> list[int]:
    """1,100 workers (ids over three span sets); every third on master 7, the last one too."""
    ids = [await store.find_worker_id(f"span{i:04d}") for i in range(1_100)]
    on_seven = [w for w in ids if w % 3 == 0 or w == ids[-1]]
    await store.apply_many(
        [
            (WorkerConfigured(workerid=w, masterid=7, builderids=[70 + w % 2]), None)
            for w in on_seven
        ]
    )
    return on_seven


SPAN_PAGES = [(0, None), (0, 3), (0, 200), (500, None), (510, 5), (511, 2), (1023, None),
              (1_099, None), (1_100, None), (2_000, None)]  # fmt: skip


async def test_a_master_across_span_sets_agrees_with_the_script(
    redis: Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A master's (and a builder's) workers in several span sets list by id, page by page.

    One span set a ``MULTI``: every page and the budget cross ``MULTI``s too.
    """
    monkeypatch.setattr(sorted_module, "SPANS_A_READ", 1)
    keys = Keys(prefix)
    store = RedisStore(redis, keys)
    scripting = RedisStore(redis, keys, StoreSettings(sorted_listings=False))
    await store.init_epoch()
    on_seven = await _across_spans(store)
    listings = SortedListings(redis, keys)
    where = WorkerFilter(masterid=7)
    for after, limit in SPAN_PAGES:
        page = await listings.read_by("masterid", 7, after, limit, None)
        assert page == await scripting.read_listing(where, after, limit), (after, limit)
    for builderid in (70, 71):
        on_builder = WorkerFilter(builderid=builderid)
        for after, limit in SPAN_PAGES:
            page = await listings.read_by("builderid", builderid, after, limit, None)
            assert page == await scripting.read_listing(on_builder, after, limit), (after, limit)
    whole = await listings.read_by("masterid", 7, 0, None, None)
    assert isinstance(whole, Listing)
    assert [w["id"] for w in json.loads(b"[" + whole.docs + b"]")] == on_seven
    assert whole == await listings.read_by("masterid", 7, 0, None, len(whole.docs))
    assert Outcome.OVER_BUDGET == await listings.read_by(
        "masterid", 7, 0, None, len(whole.docs) - 1
    )


async def test_a_master_listing_stops_at_the_budget(
    redis: Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over the budget in its first span set, the listing reads no further span set."""
    monkeypatch.setattr(sorted_module, "SPANS_A_READ", 1)
    keys = Keys(prefix)
    store = RedisStore(redis, keys)
    await store.init_epoch()
    await _across_spans(store)
    ran = _count_pipelines(monkeypatch)
    assert Outcome.OVER_BUDGET == await SortedListings(redis, keys).read_by(
        "masterid", 7, 0, None, 100
    )
    assert 1 == len(ran)


async def test_a_write_between_a_masters_span_reads_goes_to_the_script(
    redis: Redis, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listing's span reads are one snapshot: a write between two of them hands it over."""
    monkeypatch.setattr(sorted_module, "SPANS_A_READ", 1)
    keys = Keys(prefix)
    store = RedisStore(redis, keys)
    await store.init_epoch()
    on_seven = await _across_spans(store)
    listings = SortedListings(redis, keys)
    written = _write_after_first_sort(
        monkeypatch, store, SetWorkerGraceful(workerid=on_seven[-1], graceful=True)
    )
    assert Outcome.USE_SCRIPT == await listings.read_by("masterid", 7, 0, None, None)
    assert written
    assert isinstance(await listings.read_by("masterid", 7, 0, None, None), Listing)


@pytest.mark.parametrize("masterid", [1, 2, 3])
async def test_one_master_workers_agree_with_the_script(
    stores: tuple[RedisStore, RedisStore], masterid: int
) -> None:
    """Workers on one master each (master 1's lose nothing to the cut, taken whole at once)."""
    sorting, scripting = stores
    where = WorkerFilter(masterid=masterid)
    got = await sorting.read_listing(where)
    assert got == await scripting.read_listing(where)
    assert got is not None
    assert WORKERS // 3 <= got.count


@pytest.mark.parametrize("where", SORTABLE[1:], ids=str)
@pytest.mark.parametrize(("after", "limit"), [p for p in PAGES if p[1] is not None])
async def test_a_page_reads_just_the_documents_it_needs(
    stores: tuple[RedisStore, RedisStore],
    after: int,
    limit: int,
    where: WorkerFilter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page with ids cut out sorts up to its last listed worker: no more, in one sort."""
    sorting, scripting = stores
    sent = _commands(monkeypatch)
    got = await sorting.read_listing(where, after, limit)
    assert got == await scripting.read_listing(where, after, limit)
    listed = _ids(got)
    sorts = [command[-1] for command in _sent(sent, "SORT_RO")]
    if len(listed) == limit:  # read up to the page's last id (ids are their offset + 1)
        assert [listed[-1] - after] == sorts
    else:  # a short page: to the last worker, or no sort at all past it
        assert sorts in ([WORKERS - after], [])


@pytest.mark.parametrize("where", SORTABLE, ids=str)
@pytest.mark.parametrize("limit", [None, 10])
async def test_a_missing_document_is_left_out_as_the_script_does(
    redis: Redis,
    prefix: str,
    stores: tuple[RedisStore, RedisStore],
    where: WorkerFilter,
    limit: int | None,
) -> None:
    """A worker id whose document a foreign hand deleted: not listed, by either path."""
    sorting, scripting = stores
    await redis.delete(f"{Keys(prefix).worker_prefix}7")
    got = await sorting.read_listing(where, 0, limit)
    assert got == await scripting.read_listing(where, 0, limit)
    assert 7 not in _ids(got)


async def test_sets_written_to_between_listings_are_read_with_the_counts(
    redis: Redis,
    prefix: str,
    stores: tuple[RedisStore, RedisStore],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Written to between listings: one count each (with the ids) after the first miss.

    Quiet again, a listing that finds the sets as the last one left them takes its
    offsets, and the next one counts without the ids.
    """
    sorting, scripting = stores
    keys = Keys(prefix)
    listings = SortedListings(redis, keys)
    real, counts = listings._counts, list[bool]()

    async def spied(after: int, sets: Sequence[str], *, members: bool) -> _Counted:
        counts.append(members)
        return await real(after, sets, members=members)

    monkeypatch.setattr(listings, "_counts", spied)
    where = WorkerFilter(paused=False)
    per_listing, paused = [], False  # worker 2 is not paused at first
    for write in (False, True, True, True, False, False):
        if write:  # worker 2 paused, then not, then paused again
            paused = not paused
            await sorting.apply_many([(SetWorkerPaused(workerid=2, paused=paused), None)])
        counts.clear()
        got = await listings.read(0, 5, None, [keys.paused])
        assert _ids(await scripting.read_listing(where, 0, 5)) == _ids(got)
        per_listing.append(list(counts))
    assert [[True], [False, True], [True], [True], [True], [False]] == per_listing
