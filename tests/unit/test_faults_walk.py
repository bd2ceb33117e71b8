"""The fault matrix's model walk fails for real: lost, doubled or stale changes show."""

from __future__ import annotations

import copy

import pytest

from tests.harness.faults import EVENTS, SETUP, Segment, _Walk
from tests.harness.wire import Json
from tests.reference import ReferenceRegistry


def _segment() -> Segment:
    segment = Segment()
    segment.add(SETUP, lambda r: r.find_worker_id("a"))
    segment.add(EVENTS, lambda r: r.worker_connected(1, 10, {"h": 1}, message_id="m1"))
    segment.add(EVENTS, lambda r: r.worker_connected(1, 10, {"h": 1}, message_id="m1"))
    segment.add(EVENTS, lambda r: r.worker_disconnected(1, 10, message_id="m2"))
    segment.add("rpc:0", lambda r: r.set_worker_paused(1, paused=True, pause_reason="x"))
    segment.setup_revision = 1
    return segment


def _log() -> list[Json]:
    """The daemon's log when the RPC write fell between the two events."""
    r = ReferenceRegistry()
    r.find_worker_id("a")
    r.worker_connected(1, 10, {"h": 1})
    r.set_worker_paused(1, paused=True, pause_reason="x")
    r.worker_disconnected(1, 10)
    return [c.body for c in r.changes]


def _stream(change: Json) -> str:
    if change["revision"] <= 1:
        return SETUP
    return "rpc:0" if change["event"] == "state_updated" else EVENTS


def _walk(log: list[Json]) -> tuple[_Walk, int]:
    """The walk and how many of the model's changes the log lacks."""
    walk = _Walk(_segment())
    for change in log:
        walk.take(_stream(change), change)
    return walk, walk.finish()


def test_the_log_in_its_own_order_matches() -> None:
    """Interleaved streams replayed in the log's order: no problem, the final state too."""
    walk, missing = _walk(_log())
    assert (0, 0, []) == (walk.extra, missing, walk.problems)
    assert walk.model.get_worker(1) == {
        "id": 1,
        "name": "a",
        "workerinfo": {"h": 1},
        "paused": True,
        "pause_reason": "x",
        "graceful": False,
        "connected_to": [],
        "configured_on": [],
    }


def test_a_lost_change_shows() -> None:
    """A change missing from the log is missing from the walk (and what follows differs)."""
    log = _log()
    del log[2]
    assert _walk(log)[1] >= 1


def test_a_change_applied_twice_shows() -> None:
    """A change the log has twice is one the model does not have."""
    log = _log()
    log.insert(2, copy.deepcopy(log[1]))
    assert _walk(log)[0].extra >= 1


@pytest.mark.parametrize("field", ["paused", "workerinfo"])
def test_a_stale_record_shows(field: str) -> None:
    """A record whose other stream's field is wrong (applied on stale state) diverges."""
    log = _log()
    log[3]["worker"][field] = {"stale": True} if field == "workerinfo" else False
    walk, _ = _walk(log)
    assert 1 == walk.extra
    assert walk.problems
