"""Generated input thrown at a live daemon (PROTOCOL.md sections 4 and 5; issue 10, item 3).

The strategies of ``tests/strategies.py`` build events and requests that are valid,
near-valid (one thing broken), broken at the envelope, garbage, deep, huge or full of
awkward Unicode, and know what each must become. Every event is either applied or
dead-lettered with exactly that code; every request is answered ``ok`` or with exactly
that code. What the valid ones did is checked against the plain reference model
(``tests/reference.py``): the registry's state, revision and (for reads) results. After
every example the daemon must still be serving, never have crashed or dropped its
session, and must have left nothing in the events queue.

Examples come from the Hypothesis profile (``tests/conftest.py``): ``ci`` by default,
``--hypothesis-profile=long`` (or ``REGISTRYD_HYPOTHESIS_PROFILE=long``) for a long run.
One daemon serves all the examples of a test, so state accumulates across them, as it
would in production.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from registryd.config import Settings
from registryd.store import Keys, RedisStore
from tests.harness import Json, Wire, serving, wait_for
from tests.reference import ReferenceRegistry
from tests.strategies import MAX_ID, Case, event_cases, rpc_cases

#: Passing takes about a minute here; a failure may shrink for several more.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

#: Longer than any run, so no master expires under the test (expiry is not what is fuzzed).
LEASE = 86_400.0
#: The workers every test starts with; their names are awkward but valid identifiers.
NAMES = ("linux-1", "ωmega2", "_\xa0\ufeff", "\U0010ffff\uffff9", "Linux-1", "-" * 50)
#: A worker id never given out.
UNKNOWN_WORKER = MAX_ID
#: The daemon's reading of an id-free time: the model's clock is not compared.
NOW_MS = 0
#: Example settings that the profile does not decide: one daemon serves every example.
PER_TEST = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@dataclass
class Target:
    """A live daemon on a fresh prefix, the wire to it, and the model it must agree with."""

    wire: Wire
    model: ReferenceRegistry
    workers: list[int]
    states: list[str] = field(default_factory=list)
    applied: int = 0
    refused: int = 0


@pytest.fixture
async def target(
    settings: Settings, redis: Redis, amqp: AbstractConnection
) -> AsyncIterator[Target]:
    """A daemon with the workers of :data:`NAMES`, the model holding the same ones."""
    async with serving(settings, amqp, master_lease=LEASE) as wire:
        model = ReferenceRegistry(lease_ms=int(LEASE * 1000))
        workers = []
        for name in NAMES:
            workerid = await wire.ok("findWorkerId", {"name": name})
            assert model.find_worker_id(name) == workerid, "ids are given out from 1, in order"
            workers.append(workerid)
        assert wire.daemon is not None
        found = Target(wire, model, workers)
        wire.daemon.daemon.health.watch(found.states.append)
        yield found
        await _still_serving(found)
        print(f"\napplied/ok {found.applied}, refused {found.refused}")  # noqa: T201


# The model -------------------------------------------------------------------------------

_MODEL_WRITES = {
    "workerConnected": "worker_connected",
    "workerDisconnected": "worker_disconnected",
    "workerConfigured": "worker_configured",
    "set_worker_paused": "set_worker_paused",
    "set_worker_graceful": "set_worker_graceful",
    "deconfigureAllWorkersForMaster": "deconfigure_all_workers_for_master",
}


def _model_write(
    model: ReferenceRegistry, method: str, params: Json, message_id: str | None
) -> Any:
    """Apply one valid write to the model; its result as the RPC would answer it."""
    given = {k: v for k, v in params.items() if v is not None}
    if method in _MODEL_WRITES:
        getattr(model, _MODEL_WRITES[method])(**given, message_id=message_id)
        return None
    if method == "masterHeartbeat":
        model.master_heartbeat(given["masterid"], given.get("name"), NOW_MS, message_id)
        return None
    if method == "masterStopped":
        model.master_stopped(given["masterid"], NOW_MS, message_id)
        return None
    assert method == "findWorkerId", method
    return model.find_worker_id(given["name"])


def _model_read(model: ReferenceRegistry, method: str, params: Json) -> Any:
    """What a valid read must answer, by the model."""
    given = {k: v for k, v in params.items() if v is not None}
    if method == "ping":
        return {"revision": model.revision}
    if method == "getMasters":
        return _masters(model.get_masters())
    if method == "getWorker":
        return model.get_worker(**given)
    if method == "getChanges":
        return _changes(model.get_changes(given["since"], given.get("limit", 100)))
    assert method == "getWorkers", method
    limit, after = given.pop("limit", None), given.pop("after", 0)
    listed = [w for w in model.get_workers(**given) if w["id"] > after]
    return listed if limit is None else listed[:limit]


def _masters(masters: list[Json]) -> list[Json]:
    """Masters without ``last_seen``: the daemon's clock is Redis's, the model's is fake."""
    return [{k: v for k, v in master.items() if k != "last_seen"} for master in masters]


def _changes(reply: Json) -> Json:
    """getChanges' reply with the masters' ``last_seen`` left out."""
    changes = []
    for change in reply["changes"]:
        master = change.get("master")
        changes.append(change if master is None else {**change, "master": _masters([master])[0]})
    return {"revision": reply["revision"], "changes": changes}


def _comparable(method: str, result: Any) -> Any:
    if method == "ping":
        return {"revision": result["revision"]}
    if method == "getMasters":
        return _masters(result)
    if method == "getChanges":
        return _changes(result)
    return result


# Invariants ------------------------------------------------------------------------------


async def _still_serving(target: Target) -> None:
    """The daemon serves, never crashed, never restarted its session, left no event queued."""
    daemon = target.wire.daemon
    assert daemon is not None
    assert not daemon.task.done(), daemon.task
    health = daemon.daemon.health
    assert health.crashed is None, health.crashed
    # Never a new session (a loop of redeliveries shows as "retrying rabbitmq"); a stall
    # of the shared Redis is the machine's, and the daemon rides it out.
    assert set(target.states) <= {"serving", "retrying redis"}, target.states
    await wait_for(lambda: health.ready, 30)
    queue = await target.wire.channel.declare_queue(target.wire.events, passive=True)
    assert queue.declaration_result.message_count == 0
    assert isinstance(await target.wire.ok("ping"), dict)


async def _state_agrees(target: Target) -> None:
    """Every worker, every master and the revision equal the model's."""
    wire, model = target.wire, target.model
    assert model.get_workers() == await wire.ok("getWorkers")
    assert _masters(model.get_masters()) == _masters(await wire.ok("getMasters"))
    assert model.revision == await wire.revision()


def _verdict(message: AbstractIncomingMessage) -> str:
    """The code in a dead letter's ``x-registry-error`` (RabbitMQ's own have none)."""
    header = (message.headers or {}).get("x-registry-error")
    assert isinstance(header, str), f"dead-lettered without a verdict: {message.headers}"
    verdict = json.loads(header)
    assert set(verdict) == {"code", "message"}, verdict
    return str(verdict["code"])


# Events ----------------------------------------------------------------------------------


@st.composite
def _event_batches(draw: st.DrawFn, workers: list[int]) -> list[Case]:
    return draw(st.lists(event_cases(tuple(workers), UNKNOWN_WORKER), min_size=1, max_size=6))


@PER_TEST
@given(data=st.data())
async def test_every_generated_event_is_applied_or_dead_lettered_with_its_code(
    target: Target, data: st.DataObject
) -> None:
    """Each event is applied (the model agrees) or dead-lettered once with its code."""
    wire = target.wire
    cases = data.draw(_event_batches(target.workers))
    sent: dict[str, Case] = {}
    for case in cases:
        message_id = uuid.uuid4().hex
        sent[message_id] = case
        event(case.label.split(":")[-1].strip())
        await wire.event(case.body, routing_key="fuzz", message_id=message_id)
    dead = {m.message_id: _verdict(m) for m in await wire.dead_letters(timeout=30)}
    store = RedisStore(wire.redis, Keys(wire.prefix))
    for message_id, case in sent.items():
        assert case.expect == dead.get(message_id), (case.label, case.body[:300])
        remembered = bool(await store.remembered([message_id]))
        assert (case.expect is None) == remembered, (case.label, case.body[:300])
        if case.op is not None:
            _model_write(target.model, *case.op, message_id)
    target.applied += sum(case.expect is None for case in cases)
    target.refused += sum(case.expect is not None for case in cases)
    await _state_agrees(target)
    await _still_serving(target)


# RPC -------------------------------------------------------------------------------------


@PER_TEST
@given(data=st.data())
async def test_every_generated_request_is_answered_ok_or_with_its_code(
    target: Target, data: st.DataObject
) -> None:
    """Each request gets one reply: ok with the model's result, or its error code."""
    wire, model = target.wire, target.model
    for _ in range(data.draw(st.integers(1, 5))):
        case = data.draw(rpc_cases(tuple(target.workers), UNKNOWN_WORKER))
        event(case.label.split(":")[-1].strip())
        reply = await wire.send(case.body, timeout=30)
        if case.expect is not None:
            assert reply["ok"] is False, (case.label, case.body[:300], reply)
            assert case.expect == reply["error"]["code"], (case.label, case.body[:300], reply)
            assert reply["error"]["retryable"] is False
            target.refused += 1
            continue
        assert reply["ok"] is True, (case.label, case.body[:300], reply)
        assert case.op is not None
        method, params = case.op
        if method in {"ping", "getMasters", "getWorker", "getWorkers", "getChanges"}:
            expected = _model_read(model, method, params)
            assert expected == _comparable(method, reply["result"]), (case.label, case.body[:300])
        else:
            assert _model_write(model, method, params, None) == reply["result"], case.label
            if method == "findWorkerId" and reply["result"] not in target.workers:
                target.workers.append(reply["result"])
        target.applied += 1
    await _state_agrees(target)
    await _still_serving(target)
