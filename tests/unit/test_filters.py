"""The read filters of getWorkers/getWorker (PROTOCOL.md section 2), on hand-built records."""

from __future__ import annotations

import copy

import pytest

from registryd.models import WORKER_ADAPTER, ConfiguredOn, Worker
from registryd.registry.filters import WorkerFilter, WorkerRecord, select_workers


def _worker(
    wid: int,
    *,
    connected: tuple[int, ...] = (),
    pairs: tuple[tuple[int, int], ...] = (),
    paused: bool = False,
    graceful: bool = False,
) -> WorkerRecord:
    """A worker record; ``pairs`` are (masterid, builderid) in the record's sorted order."""
    record = Worker(
        id=wid,
        name=f"w{wid}",
        workerinfo={"host": f"h{wid}"},
        paused=paused,
        pause_reason="why" if paused else None,
        graceful=graceful,
        connected_to=list(connected),
        configured_on=[ConfiguredOn(builderid=b, masterid=m) for m, b in pairs],
    )
    dumped: WorkerRecord = WORKER_ADAPTER.dump_python(record)
    return dumped


def _view(workers: list[WorkerRecord]) -> list[tuple[int, list[int], list[tuple[int, int]]]]:
    """(id, connected_to, [(masterid, builderid)]) of each listed worker, in list order."""
    return [
        (w["id"], w["connected_to"], [(p["masterid"], p["builderid"]) for p in w["configured_on"]])
        for w in workers
    ]


#: Buildbot-like population: masters 10 and 11, builders 20..22, listed out of id order.
POPULATION = [
    _worker(3, connected=(10, 11), pairs=((10, 22), (11, 22))),
    _worker(1, connected=(10,), pairs=((10, 20), (10, 21), (11, 20))),
    _worker(4, connected=(10,)),
    _worker(2, connected=(11,), pairs=((11, 20), (11, 22)), paused=True),
    _worker(5, pairs=((11, 21),), graceful=True),
    _worker(6, paused=True, graceful=True),
]


def test_no_filter_lists_every_worker_by_id() -> None:
    """With no filter every worker is listed, unchanged, by ascending id."""
    assert sorted(POPULATION, key=lambda w: w["id"]) == select_workers(POPULATION, WorkerFilter())


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (
            WorkerFilter(masterid=10),
            [(1, [10], [(10, 20), (10, 21)]), (3, [10], [(10, 22)])],
        ),
        (
            WorkerFilter(masterid=11),
            [
                (1, [], [(11, 20)]),
                (2, [11], [(11, 20), (11, 22)]),
                (3, [11], [(11, 22)]),
                (5, [], [(11, 21)]),
            ],
        ),
        (
            WorkerFilter(builderid=20),
            [(1, [10], [(10, 20), (11, 20)]), (2, [11], [(11, 20)])],
        ),
        (
            WorkerFilter(builderid=22),
            [(2, [11], [(11, 22)]), (3, [10, 11], [(10, 22), (11, 22)])],
        ),
        (WorkerFilter(masterid=10, builderid=20), [(1, [10], [(10, 20)])]),
        (WorkerFilter(masterid=11, builderid=21), [(5, [], [(11, 21)])]),
        (WorkerFilter(masterid=10, builderid=22), [(3, [10], [(10, 22)])]),
        (WorkerFilter(masterid=12), []),
        (WorkerFilter(builderid=23), []),
    ],
)
def test_pair_filters_list_and_cut_down(
    where: WorkerFilter, expected: list[tuple[int, list[int], list[tuple[int, int]]]]
) -> None:
    """Pair filters list workers with a matching pair, pairs cut down, connections by master."""
    assert expected == _view(select_workers(POPULATION, where))


def test_both_pair_filters_must_match_the_same_pair() -> None:
    """Pairs (10,20) and (11,21) do not make a match for masterid 10 with builderid 21."""
    worker = _worker(7, connected=(10, 11), pairs=((10, 20), (11, 21)))
    assert [] == select_workers([worker], WorkerFilter(masterid=10, builderid=21))


def test_connected_alone_is_not_listed_by_master() -> None:
    """A worker connected to a master but with no pair there is not listed under it."""
    worker = _worker(4, connected=(10,))
    assert [] == select_workers([worker], WorkerFilter(masterid=10))


def test_builder_filter_never_cuts_connections() -> None:
    """connected_to is cut down by masterid only, never by builderid."""
    worker = _worker(8, connected=(10, 11, 12), pairs=((12, 20),))
    assert [(8, [10, 11, 12], [(12, 20)])] == _view(
        select_workers([worker], WorkerFilter(builderid=20))
    )


def test_cut_down_keeps_the_other_fields() -> None:
    """Cutting down changes only configured_on and connected_to."""
    worker = _worker(2, connected=(11,), pairs=((11, 20), (11, 22)), paused=True)
    listed = WorkerFilter(masterid=11, builderid=22).apply(worker)
    assert {**worker, "configured_on": [{"builderid": 22, "masterid": 11}]} == listed


def test_filtering_leaves_the_input_records_alone() -> None:
    """The records given to select_workers are not modified by a cut-down."""
    worker = _worker(1, connected=(10,), pairs=((10, 20), (11, 20)))
    before = copy.deepcopy(worker)
    select_workers([worker], WorkerFilter(masterid=11, builderid=20))
    assert before == worker


@pytest.mark.parametrize(
    ("where", "expected_ids"),
    [
        (WorkerFilter(paused=True), [2, 6]),
        (WorkerFilter(paused=False), [1, 3, 4, 5]),
        (WorkerFilter(graceful=True), [5, 6]),
        (WorkerFilter(graceful=False), [1, 2, 3, 4]),
        (WorkerFilter(paused=True, graceful=True), [6]),
        (WorkerFilter(paused=False, graceful=False), [1, 3, 4]),
        (WorkerFilter(masterid=11, paused=True), [2]),
        (WorkerFilter(masterid=11, paused=False), [1, 3, 5]),
        (WorkerFilter(builderid=21, graceful=True), [5]),
        (WorkerFilter(masterid=10, graceful=True), []),
    ],
)
def test_state_filters_keep_equal_flags(where: WorkerFilter, expected_ids: list[int]) -> None:
    """paused/graceful keep the workers whose flag equals the given boolean."""
    assert expected_ids == [w["id"] for w in select_workers(POPULATION, where)]


def test_state_filters_do_not_cut_down() -> None:
    """Without a pair filter, paused/graceful list whole, unmodified records."""
    listed = select_workers(POPULATION, WorkerFilter(paused=True))
    assert [w for w in sorted(POPULATION, key=lambda w: w["id"]) if w["paused"]] == listed


def test_ordering_is_by_numeric_id() -> None:
    """Listing order is ascending numeric id, whatever the input order (9 before 10)."""
    workers = [_worker(wid, pairs=((10, 20),)) for wid in (100, 9, 10, 2**53 - 1, 1)]
    assert [1, 9, 10, 100, 2**53 - 1] == [
        w["id"] for w in select_workers(workers, WorkerFilter(masterid=10))
    ]


@pytest.mark.parametrize(
    ("where", "by_pair"),
    [
        (WorkerFilter(), False),
        (WorkerFilter(paused=True, graceful=False), False),
        (WorkerFilter(masterid=10), True),
        (WorkerFilter(builderid=20), True),
        (WorkerFilter(masterid=10, builderid=20), True),
    ],
)
def test_by_pair_means_a_pair_filter_was_given(where: WorkerFilter, by_pair: bool) -> None:
    """by_pair is true exactly when masterid or builderid is given."""
    assert by_pair == where.by_pair


def test_apply_returns_none_for_an_unlisted_worker() -> None:
    """WorkerFilter.apply gives None when the worker is not listed."""
    assert WorkerFilter(paused=True).apply(_worker(1)) is None
