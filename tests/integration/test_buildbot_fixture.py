"""Buildbot's own fixture for the workers connector, through every filter combination."""

from __future__ import annotations

import itertools

import pytest

from registryd.models import (
    WORKER_ADAPTER,
    GetWorker,
    GetWorkers,
    WorkerConfigured,
    WorkerConnected,
)
from registryd.service import Registry

pytestmark = pytest.mark.integration


async def _fixture(registry: Registry) -> tuple[int, int]:
    """Build the fixture; return the ids of "zero" and "one".

    Masters 10, 11; builders 20-22; "zero" on (20,10),(21,10),(20,11), connected to 10;
    "one" on (20,11),(22,11), connected to 11.
    """
    zero = await registry.store.find_worker_id("zero")
    one = await registry.store.find_worker_id("one")
    for op in (
        WorkerConfigured(workerid=zero, masterid=10, builderids=[20, 21]),
        WorkerConfigured(workerid=zero, masterid=11, builderids=[20]),
        WorkerConfigured(workerid=one, masterid=11, builderids=[20, 22]),
        WorkerConnected(workerid=zero, masterid=10, workerinfo={"a": "b"}),
        WorkerConnected(workerid=one, masterid=11, workerinfo={"a": "c"}),
    ):
        await registry.execute(op)
    return zero, one


def _expected(
    workers: dict[int, dict[str, object]], masterid: int | None, builderid: int | None
) -> list[dict[str, object]]:
    """The protocol's filter rule written out plainly, as the oracle."""
    out = []
    for wid in sorted(workers):
        w = workers[wid]
        pairs = [
            p
            for p in w["configured_on"]  # type: ignore[attr-defined]
            if masterid in (None, p["masterid"]) and builderid in (None, p["builderid"])
        ]
        if (masterid or builderid) and not pairs:
            continue
        conn = w["connected_to"]
        if masterid is not None:
            conn = [m for m in conn if m == masterid]  # type: ignore[attr-defined]
        out.append(
            {
                **w,
                "configured_on": pairs if (masterid or builderid) else w["configured_on"],
                "connected_to": conn,
            }
        )
    return out


@pytest.mark.parametrize(
    ("masterid", "builderid"),
    list(itertools.product([None, 10, 11, 12], [None, 20, 21, 22, 23])),
)
async def test_get_workers_pair_filters(
    registry: Registry, masterid: int | None, builderid: int | None
) -> None:
    """getWorkers lists a worker only with a pair matching every filter, cut down."""
    await _fixture(registry)
    full = {w.id: WORKER_ADAPTER.dump_python(w) for w in await registry.get_workers(GetWorkers())}
    got = await registry.get_workers(GetWorkers(masterid=masterid, builderid=builderid))
    assert _expected(full, masterid, builderid) == [WORKER_ADAPTER.dump_python(w) for w in got]


async def test_fixture_records_are_exact(registry: Registry) -> None:
    """The unfiltered records match Buildbot's expected dictionaries."""
    zero, one = await _fixture(registry)
    got = [WORKER_ADAPTER.dump_python(w) for w in await registry.get_workers(GetWorkers())]
    assert [
        {
            "id": zero,
            "name": "zero",
            "workerinfo": {"a": "b"},
            "paused": False,
            "pause_reason": None,
            "graceful": False,
            "connected_to": [10],
            "configured_on": [
                {"builderid": 20, "masterid": 10},
                {"builderid": 21, "masterid": 10},
                {"builderid": 20, "masterid": 11},
            ],
        },
        {
            "id": one,
            "name": "one",
            "workerinfo": {"a": "c"},
            "paused": False,
            "pause_reason": None,
            "graceful": False,
            "connected_to": [11],
            "configured_on": [
                {"builderid": 20, "masterid": 11},
                {"builderid": 22, "masterid": 11},
            ],
        },
    ] == got


async def test_get_worker_by_name_with_filters(registry: Registry) -> None:
    """getWorker applies the pair filters like getWorkers: no matching pair, null."""
    zero, _ = await _fixture(registry)
    hit = await registry.get_worker(GetWorker(name="zero", masterid=11))
    assert hit is not None
    assert ([11], []) == ([p.masterid for p in hit.configured_on], hit.connected_to)
    assert await registry.get_worker(GetWorker(name="zero", builderid=22)) is None
    assert await registry.get_worker(GetWorker(workerid=zero, name="one")) is None
    assert await registry.get_worker(GetWorker()) is None
