"""PROTOCOL.md section 6, getChanges params that are refused: one case each.

The cases share one registry (see ``conftest.py``).
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import SHARED
from tests.harness import Json, Wire

pytestmark = [pytest.mark.integration, SHARED]


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({}, id="no-since"),
        pytest.param({"since": -1}, id="since-negative"),
        pytest.param({"since": 1.0}, id="since-float"),
        pytest.param({"since": "1"}, id="since-text"),
        pytest.param({"since": True}, id="since-boolean"),
        pytest.param({"since": None}, id="since-null"),
        pytest.param({"since": 0, "limit": 0}, id="limit-zero"),
        pytest.param({"since": 0, "limit": 1001}, id="limit-1001"),
        pytest.param({"since": 0, "limit": 1.5}, id="limit-float"),
        pytest.param({"since": 0, "limit": "10"}, id="limit-text"),
        pytest.param({"since": 0, "limit": True}, id="limit-boolean"),
        pytest.param({"since": 0, "extra": 1}, id="extra"),
    ],
)
async def test_s6_get_changes_params_are_strict(shared: Wire, params: Json) -> None:
    """§6 "N is an integer >= 0"; limit "1..1000"; anything else is invalid_params."""
    error = await shared.error("getChanges", params)
    assert ("invalid_params", False) == (error["code"], error["retryable"])
    assert error["message"]
