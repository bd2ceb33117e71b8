"""PROTOCOL.md section 1, the worker record: its shape, defaults and orderings."""

from __future__ import annotations

import pytest

from tests.conformance.support import MAX_ID, assert_worker_shape, record
from tests.harness import Json, Wire

pytestmark = pytest.mark.integration


async def test_s1_new_worker_has_the_record_shape_and_defaults(wire: Wire) -> None:
    """§1 "exactly this shape"; a new worker: workerinfo {}, paused false, null, graceful false."""
    wid = await wire.ok("findWorkerId", {"name": "zero"})
    assert type(wid) is int
    worker = await wire.worker(wid)
    assert_worker_shape(worker)
    assert record(wid, "zero") == worker


async def test_s1_protocol_example_record_in_every_read(wire: Wire) -> None:
    """§1 "Every read returns workers in exactly this shape": the example, through every read."""
    wid = await wire.ok("findWorkerId", {"name": "zero"})
    await wire.ok(
        "workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {"host": "h1"}}
    )
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [21, 20]})
    expected = record(wid, "zero", info={"host": "h1"}, conn=[10], cfg=[(10, 20), (10, 21)])
    reads = [
        await wire.ok("getWorker", {"workerid": wid}),
        await wire.ok("getWorker", {"name": "zero", "masterid": 10}),
        *await wire.ok("getWorkers"),
        *await wire.ok("getWorkers", {"masterid": 10}),
        *await wire.ok("getWorkers", {"paused": False}),
    ]
    notes = await wire.notes(3)
    changes = (await wire.ok("getChanges", {"since": 0}))["changes"]
    reads += [notes[-1].body["worker"], changes[-1]["worker"]]
    for worker in reads:
        assert_worker_shape(worker)
        assert expected == worker


async def test_s1_ids_are_positive_distinct_and_ascending(wire: Wire) -> None:
    """§1 "id: positive integer, assigned by registryd, never reused"."""
    ids = [await wire.ok("findWorkerId", {"name": f"w{i}"}) for i in range(5)]
    assert all(type(i) is int and i >= 1 for i in ids)
    assert sorted(set(ids)) == ids


async def test_s1_names_are_case_sensitive(wire: Wire) -> None:
    """§1 "Names are case-sensitive"."""
    lower = await wire.ok("findWorkerId", {"name": "zero"})
    upper = await wire.ok("findWorkerId", {"name": "Zero"})
    assert lower != upper
    assert "Zero" == (await wire.ok("getWorker", {"name": "Zero"}))["name"]


async def test_s1_workerinfo_is_any_json_object(wire: Wire) -> None:
    """§1 "workerinfo: any JSON object" (§9: values may be null), returned as given."""
    info: Json = {
        "admin": None,
        "host": "h1",
        "access_uri": None,
        "version": "3.9.2",
        "list": [1, 2.5, True, None, {"ü": "日本"}],
        "big": 2**70,
        "neg": -7,
        "float": 1e100,
        "nested": {"a": {"b": {"c": []}}},
        "": "empty key",
    }
    wid = await wire.ok("findWorkerId", {"name": "info"})
    await wire.ok("workerConnected", {"workerid": wid, "masterid": 1, "workerinfo": info})
    notes = await wire.notes(2)
    changes = (await wire.ok("getChanges", {"since": 0}))["changes"]
    assert info == (await wire.worker(wid))["workerinfo"]
    assert info == (await wire.ok("getWorkers", {"graceful": False}))[0]["workerinfo"]
    assert info == notes[1].body["worker"]["workerinfo"]
    assert info == changes[1]["worker"]["workerinfo"]


async def test_s1_workerinfo_may_nest(wire: Wire) -> None:
    """§1 "workerinfo: any JSON object": one nested 40 levels deep is stored as given."""
    info: Json = {"leaf": True}
    for level in range(39):
        info = {f"l{level}": info}
    wid = await wire.ok("findWorkerId", {"name": "deep"})
    reply = await wire.call("workerConnected", {"workerid": wid, "masterid": 1, "workerinfo": info})
    assert {"ok": True, "result": None} == reply
    assert info == (await wire.worker(wid))["workerinfo"]


async def test_s1_connected_to_ascending_without_duplicates(wire: Wire) -> None:
    """§1 "connected_to: master ids, ascending, no duplicates" (numerically)."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    for masterid in [100, 9, 10, 10, MAX_ID, 1]:
        await wire.ok("workerConnected", {"workerid": wid, "masterid": masterid, "workerinfo": {}})
    assert [1, 9, 10, 100, MAX_ID] == (await wire.worker(wid))["connected_to"]


async def test_s1_configured_on_sorted_by_master_then_builder(wire: Wire) -> None:
    """§1 configured_on "sorted by masterid then builderid, no duplicates"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    for masterid, builders in [(100, [3]), (9, [20, 3, 3, 100]), (10, [9]), (MAX_ID, [MAX_ID, 2])]:
        await wire.ok(
            "workerConfigured", {"workerid": wid, "masterid": masterid, "builderids": builders}
        )
    pairs = [(p["masterid"], p["builderid"]) for p in (await wire.worker(wid))["configured_on"]]
    assert [
        (9, 3),
        (9, 20),
        (9, 100),
        (10, 9),
        (100, 3),
        (MAX_ID, 2),
        (MAX_ID, MAX_ID),
    ] == pairs


async def test_s1_lists_are_sorted_by_ascending_id(wire: Wire) -> None:
    """§1 "Lists of workers are sorted by ascending id", with or without filters."""
    ids = [await wire.ok("findWorkerId", {"name": f"w{12 - i}"}) for i in range(12)]
    for wid in reversed(ids):
        await wire.ok("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [1]})
    for params in [None, {"masterid": 10}, {"builderid": 1}, {"paused": False}]:
        assert ids == [w["id"] for w in await wire.ok("getWorkers", params)], params


async def test_s1_master_and_builder_ids_need_no_announcement(wire: Wire) -> None:
    """§1 master/builder ids: registryd "does not require them to be announced first"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 77, "builderids": [5]})
    await wire.ok("workerConnected", {"workerid": wid, "masterid": 77, "workerinfo": {}})
    assert [wid] == [w["id"] for w in await wire.ok("getWorkers", {"masterid": 77})]
    assert [] == await wire.ok("getMasters")
