"""PROTOCOL.md section 2, writes that are refused: one case each, none leaves state behind.

The cases share one registry (see ``conftest.py``) holding worker ``w`` only.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import SHARED
from tests.harness import Json, Wire

pytestmark = [pytest.mark.integration, SHARED]

WRITES_ON_UNKNOWN_WORKER = [
    pytest.param(
        "workerConnected", {"workerid": 999, "masterid": 1, "workerinfo": {}}, id="connected"
    ),
    pytest.param("workerDisconnected", {"workerid": 999, "masterid": 1}, id="disconnected"),
    pytest.param(
        "workerConfigured", {"workerid": 999, "masterid": 1, "builderids": [1]}, id="configured"
    ),
    pytest.param(
        "workerConfigured", {"workerid": 999, "masterid": 1, "builderids": []}, id="configured-[]"
    ),
    pytest.param("set_worker_paused", {"workerid": 999, "paused": True}, id="paused"),
    pytest.param("set_worker_graceful", {"workerid": 999, "graceful": True}, id="graceful"),
    pytest.param(
        "set_worker_graceful", {"workerid": 424242, "graceful": True}, id="graceful-424242"
    ),
]


@pytest.mark.parametrize(("method", "params"), WRITES_ON_UNKNOWN_WORKER)
async def test_s2_write_on_an_unknown_worker_is_not_found(
    shared: Wire, shared_worker: int, method: str, params: Json
) -> None:
    """§2 "Unknown worker ids on a write are an error (not_found), never orphan state"."""
    before = await shared.revision()
    error = await shared.error(method, params)
    assert ("not_found", False) == (error["code"], error["retryable"])
    assert error["message"]
    assert before == await shared.revision()
    assert await shared.ok("getWorker", {"workerid": params["workerid"]}) is None
    assert [shared_worker] == [w["id"] for w in await shared.ok("getWorkers")]
    assert [] == await shared.ok("getWorkers", {"masterid": 1})
    assert [] == await shared.ok("getMasters")


@pytest.mark.parametrize(
    "connection",
    [
        pytest.param("", id="empty"),
        pytest.param("x" * 201, id="201-characters"),
        pytest.param(5, id="integer"),
        pytest.param(["s"], id="list"),
    ],
)
@pytest.mark.parametrize("method", ["workerConnected", "workerDisconnected"])
async def test_s2_connection_outside_1_to_200_characters_is_invalid(
    shared: Wire, shared_worker: int, method: str, connection: object
) -> None:
    """§2 "connection (optional, opaque string of 1 to 200 characters)": others refused."""
    params: Json = {"workerid": shared_worker, "masterid": 10, "connection": connection}
    if method == "workerConnected":
        params["workerinfo"] = {}
    before = await shared.revision()
    assert "invalid_params" == await shared.code(method, params)
    assert before == await shared.revision()


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("n" * 201, id="201-characters"),
        pytest.param(5, id="integer"),
        pytest.param(True, id="boolean"),
    ],
)
async def test_s2_master_name_over_200_characters_or_not_text_is_invalid(
    shared: Wire, name: object
) -> None:
    """§2 a master's ``name`` "is free text of up to 200 characters"; others refused."""
    assert "invalid_params" == await shared.code("masterHeartbeat", {"masterid": 9, "name": name})
    assert [] == await shared.ok("getMasters")
