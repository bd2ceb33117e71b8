"""PROTOCOL.md section 2, the nine worker operations and what each one means."""

from __future__ import annotations

import asyncio

import pytest

from tests.conformance.support import filter_fixture, pairs_view, record
from tests.harness import Json, Wire

pytestmark = pytest.mark.integration


async def test_s2_concurrent_find_worker_id_gives_one_id(wire: Wire) -> None:
    """§2 findWorkerId: "Two concurrent calls with one new name get the same id"."""
    ids = await asyncio.gather(*(wire.ok("findWorkerId", {"name": "racy"}) for _ in range(30)))
    assert 1 == len(set(ids))
    assert [f"workers.{ids[0]}.new"] == await wire.keys(1)
    assert 1 == await wire.revision()
    assert await wire.quiet()


async def test_s2_get_worker_by_id_and_or_name(wire: Wire) -> None:
    """§2 getWorker "with neither workerid nor name returns null; with both, both must match"."""
    a = await wire.ok("findWorkerId", {"name": "a"})
    b = await wire.ok("findWorkerId", {"name": "b"})
    assert await wire.ok("getWorker", {}) is None
    assert await wire.ok("getWorker") is None
    assert await wire.ok("getWorker", {"masterid": 10}) is None
    assert "a" == (await wire.ok("getWorker", {"workerid": a}))["name"]
    assert b == (await wire.ok("getWorker", {"name": "b"}))["id"]
    assert a == (await wire.ok("getWorker", {"workerid": a, "name": "a"}))["id"]
    assert await wire.ok("getWorker", {"workerid": a, "name": "b"}) is None
    assert await wire.ok("getWorker", {"workerid": 999}) is None
    assert await wire.ok("getWorker", {"name": "nobody"}) is None
    assert 2 == len(await wire.ok("getWorkers"))


async def test_s2_get_workers_pair_filters_list_and_cut_down(wire: Wire) -> None:
    """§2 listed "only if at least one of its configured_on pairs matches every given filter"."""
    w1, w2, _, w4 = await filter_fixture(wire)
    assert [
        (w1, [10], [(10, 20), (10, 21)]),
        (w4, [], [(10, 22)]),
    ] == pairs_view(await wire.ok("getWorkers", {"masterid": 10}))
    assert [(w1, [10, 11], [(10, 20), (11, 20)])] == pairs_view(
        await wire.ok("getWorkers", {"builderid": 20})
    )
    assert [(w2, [], [(11, 21)])] == pairs_view(
        await wire.ok("getWorkers", {"masterid": 11, "builderid": 21})
    )
    assert [(w1, [10], [(10, 21)])] == pairs_view(
        await wire.ok("getWorkers", {"masterid": 10, "builderid": 21})
    )
    assert [] == await wire.ok("getWorkers", {"masterid": 11, "builderid": 22})
    assert [] == await wire.ok("getWorkers", {"masterid": 12})


async def test_s2_get_workers_state_filters_and_no_filter(wire: Wire) -> None:
    """§2 paused/graceful "keep the workers whose flag equals the given boolean"; none: all."""
    w1, w2, w3, w4 = await filter_fixture(wire)
    everyone = await wire.ok("getWorkers")
    assert [w1, w2, w3, w4] == [w["id"] for w in everyone]
    assert [w4] == [w["id"] for w in await wire.ok("getWorkers", {"paused": True})]
    assert [w1, w2, w3] == [w["id"] for w in await wire.ok("getWorkers", {"paused": False})]
    assert [w4] == [w["id"] for w in await wire.ok("getWorkers", {"graceful": True})]
    assert [w1, w2, w3] == [w["id"] for w in await wire.ok("getWorkers", {"graceful": False})]
    assert everyone[3] == (await wire.ok("getWorkers", {"paused": True, "graceful": True}))[0]
    assert [(w1, [10], [(10, 20), (10, 21)])] == pairs_view(
        await wire.ok("getWorkers", {"masterid": 10, "paused": False})
    )
    assert [] == await wire.ok("getWorkers", {"paused": True, "graceful": False})


async def test_s2_get_worker_pair_filters(wire: Wire) -> None:
    """§2 getWorker: "masterid/builderid act as in getWorkers: no matching pair, null"."""
    w1, w2, w3, _ = await filter_fixture(wire)
    assert [(w1, [11], [(11, 20)])] == pairs_view(
        [await wire.ok("getWorker", {"workerid": w1, "masterid": 11})]
    )
    assert [(w1, [10, 11], [(10, 21)])] == pairs_view(
        [await wire.ok("getWorker", {"name": "w1", "builderid": 21})]
    )
    assert await wire.ok("getWorker", {"workerid": w3, "masterid": 10}) is None
    assert await wire.ok("getWorker", {"workerid": w2, "masterid": 10}) is None
    assert await wire.ok("getWorker", {"workerid": w1, "masterid": 11, "builderid": 21}) is None


async def test_s2_worker_connected_semantics(wire: Wire) -> None:
    """§2 workerConnected adds the master once, "replaces workerinfo entirely", leaves the rest."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [1]})
    await wire.ok("set_worker_paused", {"workerid": wid, "paused": True, "pause_reason": "r"})
    await wire.ok("set_worker_graceful", {"workerid": wid, "graceful": True})
    await wire.ok(
        "workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {"a": 1, "b": 2}}
    )
    await wire.ok("workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {"c": 3}})
    expected = record(
        wid, "w", info={"c": 3}, paused=True, reason="r", graceful=True, conn=[10], cfg=[(10, 1)]
    )
    assert expected == await wire.worker(wid)


async def test_s2_worker_disconnected_semantics(wire: Wire) -> None:
    """§2 workerDisconnected "removes that one master and keeps workerinfo"; else a no-op."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    for masterid in (10, 11):
        await wire.ok(
            "workerConnected", {"workerid": wid, "masterid": masterid, "workerinfo": {"h": 1}}
        )
    await wire.ok("workerDisconnected", {"workerid": wid, "masterid": 10})
    assert record(wid, "w", info={"h": 1}, conn=[11]) == await wire.worker(wid)
    before = await wire.revision()
    assert {"ok": True, "result": None} == await wire.call(
        "workerDisconnected", {"workerid": wid, "masterid": 12}
    )
    assert before == await wire.revision()


async def test_s2_connection_tokens_make_only_stale_disconnects_no_ops(wire: Wire) -> None:
    """§2 a disconnect is stale "only when both ... name a connection and the two differ"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})

    async def connect(masterid: int, connection: str | None) -> None:
        params: Json = {"workerid": wid, "masterid": masterid, "workerinfo": {}}
        if connection is not None:
            params["connection"] = connection
        await wire.ok("workerConnected", params)

    async def disconnect(masterid: int, connection: str | None) -> list[int]:
        params: Json = {"workerid": wid, "masterid": masterid}
        if connection is not None:
            params["connection"] = connection
        await wire.ok("workerDisconnected", params)
        return list((await wire.worker(wid))["connected_to"])

    await connect(10, "s-1")
    assert [10] == await disconnect(10, "s-0")  # stale: a late disconnect of an old session
    assert [] == await disconnect(10, "s-1")
    await connect(10, "s-2")
    assert [] == await disconnect(10, None)
    await connect(10, None)
    assert [] == await disconnect(10, "s-9")
    await connect(10, "a")
    await connect(11, "b")
    assert [10, 11] == await disconnect(11, "a")  # remembered per (worker, master)
    assert [10] == await disconnect(11, "b")


async def test_s2_connect_changing_only_the_connection_notifies_nothing(wire: Wire) -> None:
    """§2 "A connect that changes only the remembered connection ... notifies nothing"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    params: Json = {"workerid": wid, "masterid": 10, "workerinfo": {}, "connection": "s-1"}
    await wire.ok("workerConnected", params)
    await wire.notes(2)
    before = await wire.revision()
    await wire.ok("workerConnected", {**params, "connection": "s-2"})
    assert before == await wire.revision()
    assert await wire.quiet()
    await wire.ok("workerDisconnected", {"workerid": wid, "masterid": 10, "connection": "s-1"})
    assert [10] == (await wire.worker(wid))["connected_to"]  # s-2 is now the remembered one
    await wire.ok("workerDisconnected", {"workerid": wid, "masterid": 10, "connection": "s-2"})
    assert [] == (await wire.worker(wid))["connected_to"]


async def test_s2_connection_of_1_and_200_characters_is_accepted(wire: Wire) -> None:
    """§2 "connection (optional, opaque string of 1 to 200 characters)": both ends."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    base: Json = {"workerid": wid, "masterid": 10, "workerinfo": {}}
    await wire.ok("workerConnected", {**base, "connection": "x" * 200})
    await wire.ok("workerConnected", {**base, "connection": "é"})
    assert [10] == (await wire.worker(wid))["connected_to"]


async def test_s2_worker_configured_replaces_this_masters_pairs_only(wire: Wire) -> None:
    """§2 workerConfigured "replaces this worker's builders on this master only"; [] and dups."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    other = await wire.ok("findWorkerId", {"name": "other"})
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [1, 2]})
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 11, "builderids": [5]})
    await wire.ok("workerConfigured", {"workerid": other, "masterid": 10, "builderids": [1]})
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [3, 3, 2]})
    assert record(wid, "w", cfg=[(10, 2), (10, 3), (11, 5)]) == await wire.worker(wid)
    assert record(other, "other", cfg=[(10, 1)]) == await wire.worker(other)
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": []})
    assert record(wid, "w", cfg=[(11, 5)]) == await wire.worker(wid)
    assert [other] == [w["id"] for w in await wire.ok("getWorkers", {"masterid": 10})]


async def test_s2_deconfigure_all_workers_for_master(wire: Wire) -> None:
    """§2 deconfigure: "removes every pair of that master from every worker", keeps connections."""
    a = await wire.ok("findWorkerId", {"name": "a"})
    b = await wire.ok("findWorkerId", {"name": "b"})
    await wire.ok("workerConfigured", {"workerid": a, "masterid": 10, "builderids": [1, 2]})
    await wire.ok("workerConfigured", {"workerid": a, "masterid": 11, "builderids": [1]})
    await wire.ok("workerConfigured", {"workerid": b, "masterid": 10, "builderids": [3]})
    await wire.ok("workerConnected", {"workerid": b, "masterid": 10, "workerinfo": {}})
    await wire.ok("deconfigureAllWorkersForMaster", {"masterid": 10})
    assert record(a, "a", cfg=[(11, 1)]) == await wire.worker(a)
    assert record(b, "b", conn=[10]) == await wire.worker(b)
    assert [] == await wire.ok("getWorkers", {"masterid": 10})


async def test_s2_pause_and_graceful_are_stored_as_given(wire: Wire) -> None:
    """§2 pause: "stores paused and pause_reason exactly as given"; graceful "is independent"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})

    async def state(method: str, params: Json) -> tuple[bool, str | None, bool]:
        await wire.ok(method, {"workerid": wid, **params})
        worker = await wire.worker(wid)
        return worker["paused"], worker["pause_reason"], worker["graceful"]

    assert (True, "maint ü", False) == await state(
        "set_worker_paused", {"paused": True, "pause_reason": "maint ü"}
    )
    assert (True, None, False) == await state("set_worker_paused", {"paused": True})
    assert (True, "", False) == await state(
        "set_worker_paused", {"paused": True, "pause_reason": ""}
    )
    assert (False, None, False) == await state("set_worker_paused", {"paused": False})
    assert (False, "why", False) == await state(
        "set_worker_paused", {"paused": False, "pause_reason": "why"}
    )
    assert (False, "why", True) == await state("set_worker_graceful", {"graceful": True})
    assert (True, None, True) == await state(
        "set_worker_paused", {"paused": True, "pause_reason": None}
    )
    assert (True, None, False) == await state("set_worker_graceful", {"graceful": False})
