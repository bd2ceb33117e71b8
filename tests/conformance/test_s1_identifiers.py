"""PROTOCOL.md section 1, worker names: the identifier rule, one case per name.

The cases share one registry (see ``conftest.py``): an accepted name adds exactly one
worker, a refused one changes nothing.
"""

from __future__ import annotations

import pytest

from tests.conformance.conftest import SHARED
from tests.harness import Wire

pytestmark = [pytest.mark.integration, SHARED]

NAMES_OK = [
    pytest.param("a", id="one-letter"),
    pytest.param("Z", id="upper-letter"),
    pytest.param("_", id="underscore"),
    pytest.param("-", id="dash"),
    pytest.param("a" * 50, id="50-ascii"),
    pytest.param("é" * 50, id="50-latin"),
    pytest.param("\U0001f600" * 50, id="50-astral"),
    pytest.param("\u00a0", id="nbsp"),
    pytest.param("\u00a0x9", id="nbsp-then-digit"),
    pytest.param("日本語", id="cjk"),
    pytest.param("a-b_c9", id="mixed"),
    pytest.param("x\U0010ffff", id="last-code-point"),
]

NAMES_BAD = [
    pytest.param("", id="empty"),
    pytest.param("a" * 51, id="51-ascii"),
    pytest.param("é" * 51, id="51-latin"),
    pytest.param("1a", id="digit-first"),
    pytest.param("9", id="digit-only"),
    pytest.param(" a", id="space-first"),
    pytest.param("a b", id="inner-space"),
    pytest.param("a\n", id="trailing-newline"),
    pytest.param("\na", id="leading-newline"),
    pytest.param("a.b", id="dot"),
    pytest.param("a/b", id="slash"),
    pytest.param("a:b", id="colon"),
    pytest.param("\u009f", id="c1-control"),
    pytest.param("a\u009f", id="c1-control-inside"),
    pytest.param("a\t", id="tab"),
    pytest.param("a\u0000", id="nul"),
    pytest.param(5, id="integer"),
    pytest.param(None, id="null"),
    pytest.param(["a"], id="list"),
]


@pytest.mark.parametrize("name", NAMES_OK)
async def test_s1_identifier_is_a_name(shared: Wire, name: str) -> None:
    """§1 name: a 50-code-point identifier; this one makes one new worker, read back as given."""
    before = await shared.ok("getWorkers")
    wid = await shared.ok("findWorkerId", {"name": name})
    assert name == (await shared.worker(wid))["name"]
    assert name == (await shared.ok("getWorker", {"name": name}))["name"]
    assert [*(w["id"] for w in before), wid] == [w["id"] for w in await shared.ok("getWorkers")]


@pytest.mark.parametrize("name", NAMES_BAD)
async def test_s1_non_identifier_is_refused(shared: Wire, name: object) -> None:
    """§1 name "matched in full, so a trailing newline is rejected": invalid_params, no worker."""
    before = await shared.revision()
    error = await shared.error("findWorkerId", {"name": name})
    assert ("invalid_params", False) == (error["code"], error["retryable"])
    assert error["message"]
    assert before == await shared.revision()
