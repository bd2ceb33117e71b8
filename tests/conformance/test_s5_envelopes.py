"""PROTOCOL.md section 5, requests that are refused: one case each, none changes anything.

The cases share one registry (see ``conftest.py``) holding worker ``w`` only; ``W`` in a
case's params stands for its id.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conformance.conftest import SHARED
from tests.harness import Json, Wire

pytestmark = [pytest.mark.integration, SHARED]

#: Stands for the shared worker's id in a case's params.
W = "<w>"

RPC_BAD_REQUESTS = [
    pytest.param(b"", id="empty"),
    pytest.param(b"not json", id="not-json"),
    pytest.param(b"\xff\xfe", id="not-utf8"),
    pytest.param(b"null", id="null"),
    pytest.param(b"42", id="number"),
    pytest.param(b'"getWorkers"', id="string"),
    pytest.param(b"true", id="boolean"),
    pytest.param(b"[]", id="empty-array"),
    pytest.param(b'["getWorkers"]', id="array"),
    pytest.param(b"{}", id="no-method"),
    pytest.param(b'{"params": {}}', id="params-only"),
    pytest.param(b'{"method": null}', id="method-null"),
    pytest.param(b'{"method": 5}', id="method-number"),
    pytest.param(b'{"method": ["ping"]}', id="method-list"),
    pytest.param(b'{"method": {"name": "ping"}}', id="method-object"),
    pytest.param(b'{"method": true}', id="method-boolean"),
    pytest.param(b'{"method": "ping", "params": []}', id="params-list"),
    pytest.param(b'{"method": "ping", "params": "x"}', id="params-text"),
    pytest.param(b'{"method": "ping", "params": 1}', id="params-number"),
    pytest.param(b'{"method": "ping", "params": true}', id="params-boolean"),
    pytest.param(b'{"method": "getWorkers", "params": null}', id="params-null"),
    pytest.param(b'{"method": "ping", "params": NaN}', id="params-nan"),
    pytest.param(b"[" * 2000, id="2-KiB-of-brackets"),
]


async def _refused(wire: Wire, body: bytes) -> tuple[str, bool]:
    """The code and retryable flag of a refused request; it must change nothing."""
    before = await wire.revision()
    reply = await wire.send(body)
    assert reply["ok"] is False, reply
    assert reply["error"]["message"]
    assert before == await wire.revision()
    return reply["error"]["code"], reply["error"]["retryable"]


@pytest.mark.parametrize("body", RPC_BAD_REQUESTS)
async def test_s5_bad_request_envelope(shared: Wire, body: bytes) -> None:
    """§5 not an object, missing/non-string method, non-object params: bad_request."""
    assert ("bad_request", False) == await _refused(shared, body)


@pytest.mark.parametrize(
    "body",
    [
        *[
            pytest.param(json.dumps({"method": m, "params": {}}).encode(), id=m or "empty")
            for m in ["dropTables", "", "getworkers", "GetWorkers", "worker.connected", "__init__"]
        ],
        pytest.param(b'{"method": "dropTables"}', id="no-params"),
        pytest.param(json.dumps({"method": "m" * 200_000}).encode(), id="200000-characters"),
        pytest.param(json.dumps({"method": "get\udfff"}).encode(), id="lone-surrogate"),
    ],
)
async def test_s5_unknown_method(shared: Wire, body: bytes) -> None:
    """§5 error code unknown_method (retryable false) for names that are not methods."""
    assert ("unknown_method", False) == await _refused(shared, body)


def _strict_cases() -> list[Any]:
    """Params that are invalid_params: ill-typed, out of range, unknown or missing."""
    ids: list[tuple[object, str]] = [
        (True, "true"),
        (False, "false"),
        (10.0, "float"),
        ("10", "text"),
        (0, "zero"),
        (-1, "negative"),
        (None, "null"),
        (2**53, "2**53"),
        ([1], "list"),
        ({"id": 1}, "object"),
    ]
    flags: list[tuple[object, str]] = [
        (1, "one"),
        (0, "zero"),
        ("yes", "yes"),
        ("true", "true-text"),
        (None, "null"),
        ([True], "list"),
    ]
    cases: list[tuple[str, Json, str]] = []
    for bad, name in ids:
        cases += [
            ("getWorkers", {"masterid": bad}, f"masterid-{name}")
            if bad is not None
            else ("workerDisconnected", {}, "no-params"),
            ("getWorker", {"builderid": bad}, f"builderid-{name}")
            if bad is not None
            else ("getWorker", {"x": 1}, "unknown-param"),
            ("workerConfigured", {"workerid": W, "masterid": bad, "builderids": []}, name),
            ("workerConfigured", {"workerid": W, "masterid": 1, "builderids": [bad]}, f"b-{name}"),
            ("set_worker_graceful", {"workerid": bad, "graceful": True}, f"workerid-{name}"),
            ("masterHeartbeat", {"masterid": bad}, name),
        ]
    for bad, name in flags:
        cases += [
            ("getWorkers", {"paused": bad}, f"paused-{name}")
            if bad is not None
            else ("getWorkers", {"x": None}, "unknown-param"),
            ("set_worker_paused", {"workerid": W, "paused": bad}, name),
            ("set_worker_graceful", {"workerid": W, "graceful": bad}, name),
        ]
    cases += [
        ("getWorker", {"paused": True}, "paused"),
        ("getWorker", {"graceful": False}, "graceful"),
        ("getWorker", {"workerid": W, "paused": False}, "workerid-paused"),
        ("getWorkers", {"name": "w"}, "name"),
        ("getWorkers", {"workerid": W}, "workerid"),
        ("ping", {"x": 1}, "unknown-param"),
        ("getMasters", {"masterid": 1}, "masterid"),
        ("findWorkerId", {"name": "w", "extra": True}, "extra"),
        ("workerConnected", {"workerid": W, "masterid": 1}, "no-workerinfo"),
        ("workerConnected", {"workerid": W, "masterid": 1, "workerinfo": []}, "workerinfo-list"),
        ("workerConnected", {"workerid": W, "masterid": 1, "workerinfo": "{}"}, "workerinfo-text"),
        ("workerConfigured", {"workerid": W, "masterid": 1, "builderids": 5}, "builderids-number"),
        ("workerConfigured", {"workerid": W, "masterid": 1}, "no-builderids"),
        ("set_worker_paused", {"workerid": W, "paused": True, "pause_reason": 5}, "reason-number"),
        ("deconfigureAllWorkersForMaster", {}, "no-masterid"),
        ("masterStopped", {"masterid": 1, "name": "x"}, "name"),
        # A client's awkward names (the generated input's overlong and unencodable keys):
        # still one reply each, whose message quotes the name cut short.
        ("ping", {"\ud800": 1}, "unknown-param-lone-surrogate"),
        ("getWorkers", {"k" * 200_000: 1}, "unknown-param-200000-characters"),
    ]
    return [pytest.param(m, p, id=f"{m}-{name}") for m, p, name in cases]


@pytest.mark.parametrize(("method", "params"), _strict_cases())
async def test_s5_params_are_strict(
    shared: Wire, shared_worker: int, method: str, params: Json
) -> None:
    """§5 "an unknown or ill-typed param is invalid_params (so getWorker takes no paused ...)"."""
    params = {k: shared_worker if v == W else v for k, v in params.items()}
    body = json.dumps({"method": method, "params": params}).encode()
    assert ("invalid_params", False) == await _refused(shared, body)


@pytest.mark.parametrize("method", ["ping", "getWorkers", "getMasters", "getWorker"])
async def test_s5_params_may_be_omitted_when_empty(shared: Wire, method: str) -> None:
    """§5 "params may be omitted when empty"."""
    assert (await shared.send(json.dumps({"method": method}).encode()))["ok"] is True


@pytest.mark.parametrize("method", ["findWorkerId", "getChanges"])
async def test_s5_params_of_a_method_that_needs_some_may_not_be_omitted(
    shared: Wire, method: str
) -> None:
    """§5 params may be omitted only "when empty": a method with a required param refuses."""
    assert ("invalid_params", False) == await _refused(
        shared, json.dumps({"method": method}).encode()
    )
