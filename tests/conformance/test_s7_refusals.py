"""PROTOCOL.md section 7, authorization's refusals, one case each, and reads left open.

The cases share one registry with the map ``{<AMQP user>: [10]}`` (see ``conftest.py``)
holding worker ``w`` only; ``W`` in a case stands for its id.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.conformance.conftest import SHARED, shared_registry
from tests.conformance.support import error_code
from tests.harness import AMQP_USER, Json, Wire

pytestmark = [pytest.mark.integration, SHARED]

W = "<w>"
ME = {"user_id": AMQP_USER}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def guarded() -> AsyncIterator[Wire]:
    """One registry with an authorization map for the module's cases."""
    async for wire in shared_registry(auth_masters={AMQP_USER: [10]}):
        yield wire


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def guarded_worker(guarded: Wire) -> int:
    """Worker ``w`` of the guarded registry, made by the mapped user."""
    workerid: int = await guarded.ok("findWorkerId", {"name": "w"}, **ME)
    return workerid


def _with_worker(params: Json, workerid: int) -> Json:
    return {k: workerid if v == W else v for k, v in params.items()}


REFUSED_RPC = [
    pytest.param("findWorkerId", {"name": "x"}, {}, id="find-anonymous"),
    pytest.param("set_worker_paused", {"workerid": W, "paused": False}, {}, id="paused-anonymous"),
    pytest.param(
        "set_worker_graceful", {"workerid": W, "graceful": False}, {}, id="graceful-anonymous"
    ),
    pytest.param("masterHeartbeat", {"masterid": 11}, ME, id="heartbeat-other-master"),
    pytest.param("masterHeartbeat", {"masterid": 10}, {}, id="heartbeat-anonymous"),
    pytest.param(
        "workerConnected",
        {"workerid": W, "masterid": 11, "workerinfo": {}},
        ME,
        id="connected-other-master",
    ),
    pytest.param(
        "workerDisconnected", {"workerid": W, "masterid": 11}, ME, id="disconnected-other-master"
    ),
    pytest.param(
        "workerConfigured",
        {"workerid": W, "masterid": 11, "builderids": []},
        ME,
        id="configured-other-master",
    ),
    pytest.param(
        "deconfigureAllWorkersForMaster", {"masterid": 11}, ME, id="deconfigure-other-master"
    ),
    pytest.param("masterStopped", {"masterid": 11}, ME, id="stopped-other-master"),
]


@pytest.mark.parametrize(("method", "params", "props"), REFUSED_RPC)
async def test_s7_write_rpc_of_an_unmapped_user_is_forbidden(
    guarded: Wire, guarded_worker: int, method: str, params: Json, props: dict[str, str]
) -> None:
    """§7 a write needs a user_id mapped to its master (any master if worker-only): forbidden."""
    before = await guarded.revision()
    error = await guarded.error(method, _with_worker(params, guarded_worker), **props)
    assert ("forbidden", False) == (error["code"], error["retryable"])
    assert error["message"]
    assert before == await guarded.revision()


@pytest.mark.parametrize(
    ("method", "params"),
    [
        pytest.param("getWorkers", None, id="getWorkers"),
        pytest.param("getMasters", None, id="getMasters"),
        pytest.param("ping", None, id="ping"),
        pytest.param("getWorker", {"workerid": W}, id="getWorker"),
        pytest.param("getChanges", {"since": 0}, id="getChanges"),
    ],
)
async def test_s7_reads_are_open_to_any_user(
    guarded: Wire, guarded_worker: int, method: str, params: Json | None
) -> None:
    """§7 "Reads are open to any user that RabbitMQ lets publish to registry.rpc"."""
    params = None if params is None else _with_worker(params, guarded_worker)
    assert (await guarded.call(method, params))["ok"] is True


REFUSED_EVENTS = [
    pytest.param({"type": "master.heartbeat", "masterid": 11}, AMQP_USER, id="heartbeat-other"),
    pytest.param({"type": "master.heartbeat", "masterid": 10}, None, id="heartbeat-anonymous"),
    pytest.param(
        {"type": "worker.graceful", "workerid": W, "graceful": True}, None, id="graceful-anonymous"
    ),
    pytest.param(
        {"type": "worker.paused", "workerid": W, "paused": True}, None, id="paused-anonymous"
    ),
    pytest.param(
        {"type": "worker.connected", "workerid": W, "masterid": 11, "workerinfo": {}},
        AMQP_USER,
        id="connected-other",
    ),
    pytest.param({"type": "master.deconfigured", "masterid": 11}, AMQP_USER, id="deconfigure"),
    pytest.param({"type": "master.stopped", "masterid": 11}, AMQP_USER, id="stopped-other"),
]


@pytest.mark.parametrize(("event", "user"), REFUSED_EVENTS)
async def test_s7_refused_event_is_dead_lettered_forbidden(
    guarded: Wire, guarded_worker: int, event: Json, user: str | None
) -> None:
    """§7 "Refused events are dead-lettered with code forbidden", the user_id in a header."""
    event = _with_worker(event, guarded_worker)
    before = await guarded.revision()
    await guarded.event(event, **({"user_id": user} if user else {}))
    (dead,) = await guarded.dead_letters()
    assert (json.dumps(event).encode(), "forbidden") == (dead.body, error_code(dead))
    assert user == (dead.headers or {}).get("x-registry-user-id")
    assert before == await guarded.revision()
