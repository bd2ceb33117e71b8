"""What PROTOCOL.md says a record, a notification and a master look like, as checks."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from tests.harness import Json, Note, Wire, wait_for

MAX_ID = 2**53 - 1
WORKER_KEYS = [
    "id",
    "name",
    "workerinfo",
    "paused",
    "pause_reason",
    "graceful",
    "connected_to",
    "configured_on",
]
MASTER_KEYS = ["id", "name", "active", "last_seen"]
WORKER_CHANGE_KEYS = ["revision", "event", "workerid", "masterid", "worker"]
MASTER_CHANGE_KEYS = ["revision", "event", "masterid", "master"]
#: 2 KiB that is not JSON, deeper than a recursive parser's default limit.
POISON = b"[" * 2000


def record(
    wid: int,
    name: str,
    *,
    info: Json | None = None,
    paused: bool = False,
    reason: str | None = None,
    graceful: bool = False,
    conn: list[int] | None = None,
    cfg: list[tuple[int, int]] | None = None,
) -> Json:
    """A worker record; ``cfg`` is (masterid, builderid) pairs."""
    return {
        "id": wid,
        "name": name,
        "workerinfo": info or {},
        "paused": paused,
        "pause_reason": reason,
        "graceful": graceful,
        "connected_to": conn or [],
        "configured_on": [{"builderid": b, "masterid": m} for m, b in cfg or []],
    }


def assert_worker_shape(worker: Json) -> None:
    """Section 1's shape: field order, JSON types, sorted lists without duplicates."""
    assert WORKER_KEYS == list(worker)
    assert type(worker["id"]) is int
    assert worker["id"] >= 1
    assert type(worker["name"]) is str
    assert type(worker["workerinfo"]) is dict
    assert type(worker["paused"]) is bool
    assert worker["pause_reason"] is None or type(worker["pause_reason"]) is str
    assert type(worker["graceful"]) is bool
    conn = worker["connected_to"]
    assert all(type(m) is int for m in conn)
    assert sorted(set(conn)) == conn
    pairs = worker["configured_on"]
    assert all(["builderid", "masterid"] == list(p) for p in pairs)
    keys = [(p["masterid"], p["builderid"]) for p in pairs]
    assert sorted(set(keys)) == keys


def assert_note_shape(note: Note) -> None:
    """Persistent JSON; the routing key names the subject and event; the body's field order."""
    assert aio_pika.DeliveryMode.PERSISTENT == note.message.delivery_mode
    assert "application/json" == note.message.content_type
    body = note.body
    if note.key.startswith("workers."):
        assert WORKER_CHANGE_KEYS == list(body)
        assert f"workers.{body['workerid']}.{body['event']}" == note.key
        assert body["worker"]["id"] == body["workerid"]
        assert_worker_shape(body["worker"])
    else:
        assert MASTER_CHANGE_KEYS == list(body)
        assert f"masters.{body['masterid']}.{body['event']}" == note.key
        assert MASTER_KEYS == list(body["master"])
        assert body["master"]["id"] == body["masterid"]


def iso_utc(text: str) -> datetime:
    """Parse an ISO-8601 UTC timestamp; fail unless it says UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.utcoffset() == timedelta(0), text
    return moment


def error_code(message: AbstractIncomingMessage) -> Any:
    """The ``code`` of a dead letter's ``x-registry-error`` header."""
    return json.loads(str((message.headers or {})["x-registry-error"]))["code"]


def pairs_view(workers: list[Json]) -> list[tuple[int, list[int], list[tuple[int, int]]]]:
    """(id, connected_to, configured_on as (masterid, builderid)) of each worker."""
    return [
        (
            w["id"],
            w["connected_to"],
            [(p["masterid"], p["builderid"]) for p in w["configured_on"]],
        )
        for w in workers
    ]


async def filter_fixture(wire: Wire) -> tuple[int, int, int, int]:
    """w1..w4: pairs, connections and flags that every pair filter can tell apart."""
    w1, w2, w3, w4 = [await wire.ok("findWorkerId", {"name": f"w{i}"}) for i in range(1, 5)]
    calls: list[tuple[str, Json]] = [
        ("workerConfigured", {"workerid": w1, "masterid": 10, "builderids": [20, 21]}),
        ("workerConfigured", {"workerid": w1, "masterid": 11, "builderids": [20]}),
        ("workerConfigured", {"workerid": w2, "masterid": 11, "builderids": [21]}),
        ("workerConfigured", {"workerid": w4, "masterid": 10, "builderids": [22]}),
        ("workerConnected", {"workerid": w1, "masterid": 10, "workerinfo": {}}),
        ("workerConnected", {"workerid": w1, "masterid": 11, "workerinfo": {}}),
        ("workerConnected", {"workerid": w2, "masterid": 10, "workerinfo": {}}),
        ("workerConnected", {"workerid": w3, "masterid": 10, "workerinfo": {}}),
        ("set_worker_paused", {"workerid": w4, "paused": True, "pause_reason": "r"}),
        ("set_worker_graceful", {"workerid": w4, "graceful": True}),
    ]
    for method, params in calls:
        await wire.ok(method, params)
    return w1, w2, w3, w4


async def stop_fixture(wire: Wire, masterid: int) -> tuple[int, int, int, int]:
    """a connected+configured on the master, b configured only, c connected only, d elsewhere."""
    a, b, c, d = [await wire.ok("findWorkerId", {"name": n}) for n in "abcd"]
    await wire.ok("masterHeartbeat", {"masterid": masterid, "name": "m"})
    calls: list[tuple[str, Json]] = [
        ("workerConfigured", {"workerid": a, "masterid": masterid, "builderids": [1, 2]}),
        ("workerConfigured", {"workerid": a, "masterid": 99, "builderids": [1]}),
        ("workerConnected", {"workerid": a, "masterid": masterid, "workerinfo": {"h": "a"}}),
        ("workerConnected", {"workerid": a, "masterid": 99, "workerinfo": {"h": "a"}}),
        ("workerConfigured", {"workerid": b, "masterid": masterid, "builderids": [3]}),
        ("workerConnected", {"workerid": c, "masterid": masterid, "workerinfo": {}}),
        ("workerConfigured", {"workerid": d, "masterid": 99, "builderids": [1]}),
        ("set_worker_paused", {"workerid": a, "paused": True, "pause_reason": "kept"}),
    ]
    for method, params in calls:
        await wire.ok(method, params)
    await wire.notes(4 + 1 + len(calls))
    return a, b, c, d


async def announce_after_reset(wire: Wire, count: int) -> list[Note]:
    """Write ``count`` new workers (each retried while unavailable); the notifications after."""
    for i in range(count):

        async def answered(name: str = f"again{i}") -> bool:
            reply = await wire.call("findWorkerId", {"name": name})
            assert reply["ok"] or reply["error"]["retryable"], reply
            return bool(reply["ok"])

        await wait_for(answered, 20)
    return await wire.notes(1 + count)


async def epoch_eventually(wire: Wire) -> str:
    """ping's epoch, asking again while the reply is unavailable (stale Redis connections)."""
    epochs: list[str] = []

    async def answered() -> bool:
        reply = await wire.call("ping")
        if reply["ok"]:
            epochs.append(reply["result"]["epoch"])
        return bool(reply["ok"])

    await wait_for(answered, 10)
    return epochs[0]
