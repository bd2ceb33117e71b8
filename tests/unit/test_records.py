"""The worker record as a pydantic dataclass: the same JSON out, the same inputs refused."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from registryd.models import WORKER_ADAPTER, ConfiguredOn, Worker, WorkerChange
from registryd.models.wire import encode_result

RECORD: dict[str, Any] = {
    "id": 7,
    "name": "zéro-☃",
    "workerinfo": {"admin": "é", "n": [1, 2.5, None, {"x": True}]},
    "paused": True,
    "pause_reason": "ré",
    "graceful": False,
    "connected_to": [1, 3],
    "configured_on": [{"builderid": 20, "masterid": 10}, {"builderid": 21, "masterid": 10}],
}
#: The record as ``_lib.lua`` ``render_worker`` stores it: compact, UTF-8, field order.
DOC = json.dumps(RECORD, separators=(",", ":"), ensure_ascii=False).encode()


class _ConfiguredOnModel(BaseModel):
    """What :class:`ConfiguredOn` was before it became a dataclass: the strictness to keep."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    builderid: int
    masterid: int


class _WorkerModel(BaseModel):
    """What :class:`Worker` was before it became a dataclass: the strictness to keep."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: int
    name: str
    workerinfo: dict[str, Any]
    paused: bool
    pause_reason: str | None
    graceful: bool
    connected_to: list[int]
    configured_on: list[_ConfiguredOnModel]


def _pair(**changes: object) -> list[dict[str, object]]:
    return [{"builderid": 20, "masterid": 10, **changes}]


#: Inputs the record refuses: an unknown field anywhere, a missing one, a wrong type.
REFUSED: list[dict[str, Any]] = [
    {**RECORD, "extra": 1},
    {**RECORD, "configured_on": _pair(extra=1)},
    {k: v for k, v in RECORD.items() if k != "graceful"},
    {**RECORD, "configured_on": [{"builderid": 20}]},
    {**RECORD, "id": "seven"},
    {**RECORD, "id": 7.5},
    {**RECORD, "id": None},
    {**RECORD, "name": 7},
    {**RECORD, "workerinfo": []},
    {**RECORD, "paused": "maybe"},
    {**RECORD, "paused": None},
    {**RECORD, "pause_reason": 1},
    {**RECORD, "connected_to": "1"},
    {**RECORD, "connected_to": [1, "x"]},
    {**RECORD, "configured_on": {"builderid": 20, "masterid": 10}},
    {**RECORD, "configured_on": _pair(builderid="twenty")},
    {**RECORD, "configured_on": _pair(masterid=None)},
]
#: Inputs pydantic's lax mode coerces: they must stay accepted, and coerced alike.
COERCED: list[dict[str, Any]] = [
    {**RECORD, "id": "7"},
    {**RECORD, "id": 7.0},
    {**RECORD, "paused": "true"},
    {**RECORD, "graceful": 0},
    {**RECORD, "connected_to": (1, 3)},
    {**RECORD, "configured_on": _pair(builderid="20")},
]


def test_a_worker_dumps_to_the_stored_document_byte_for_byte() -> None:
    """Parsed from the stored document and dumped again: the same bytes."""
    worker = WORKER_ADAPTER.validate_json(DOC)
    assert DOC == WORKER_ADAPTER.dump_json(worker)
    assert worker == WORKER_ADAPTER.validate_python(RECORD)


def test_a_worker_dumps_as_the_model_did() -> None:
    """The plain dump (field order too) and the JSON are what the BaseModel gave."""
    worker = WORKER_ADAPTER.validate_python(RECORD)
    before = _WorkerModel.model_validate(RECORD)
    assert list(RECORD) == list(WORKER_ADAPTER.dump_python(worker))
    assert before.model_dump() == WORKER_ADAPTER.dump_python(worker)
    assert before.model_dump_json().encode() == WORKER_ADAPTER.dump_json(worker)


def test_the_wire_reply_of_a_worker_is_unchanged() -> None:
    """``encode_result`` of a worker, a list of them and a change: json.dumps of the record."""
    worker = WORKER_ADAPTER.validate_python(RECORD)
    change = WorkerChange(revision=5, event="connected", workerid=7, masterid=1, worker=worker)
    expected_change = {
        "revision": 5,
        "event": "connected",
        "workerid": 7,
        "masterid": 1,
        "worker": RECORD,
    }
    for result, plain in ((worker, RECORD), ([worker], [RECORD]), (change, expected_change)):
        assert encode_result(result) == _reply(plain)
    assert (
        change.model_dump_json().encode()
        == json.dumps(expected_change, separators=(",", ":"), ensure_ascii=False).encode()
    )


def _reply(result: object) -> bytes:
    return json.dumps({"ok": True, "result": result}, ensure_ascii=False).encode()


@pytest.mark.parametrize("data", REFUSED)
def test_unknown_missing_and_ill_typed_fields_are_refused(data: dict[str, Any]) -> None:
    """From Python and from JSON, as the BaseModel refused them."""
    with pytest.raises(ValidationError):
        _WorkerModel.model_validate(data)
    with pytest.raises(ValidationError):
        WORKER_ADAPTER.validate_python(data)
    with pytest.raises(ValidationError):
        WORKER_ADAPTER.validate_json(json.dumps(data))


@pytest.mark.parametrize("data", COERCED)
def test_lax_inputs_are_coerced_as_before(data: dict[str, Any]) -> None:
    """What the BaseModel coerced is coerced to the same record."""
    expected = _WorkerModel.model_validate(data).model_dump()
    assert expected == WORKER_ADAPTER.dump_python(WORKER_ADAPTER.validate_python(data))


def test_the_constructor_validates_too() -> None:
    """Built by keywords, an unknown or ill-typed field is refused as by the adapter."""
    fields = {**RECORD, "configured_on": [ConfiguredOn(builderid=20, masterid=10)]}
    assert 7 == Worker(**fields).id
    with pytest.raises(ValidationError):
        Worker(**fields, extra=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Worker(**{**fields, "paused": "maybe"})
    with pytest.raises(ValidationError):
        ConfiguredOn(builderid=20, masterid=10, extra=1)  # type: ignore[call-arg]


def test_a_worker_in_a_change_is_checked_the_same() -> None:
    """A change notification's ``worker`` refuses an unknown field like a bare record."""
    change = {"revision": 5, "event": "connected", "workerid": 7, "masterid": 1}
    assert WorkerChange.model_validate({**change, "worker": RECORD}).worker.name == "zéro-☃"
    with pytest.raises(ValidationError):
        WorkerChange.model_validate({**change, "worker": {**RECORD, "extra": 1}})


def test_a_worker_is_frozen() -> None:
    """No field can be set; a changed copy is ``dataclasses.replace``."""
    worker = WORKER_ADAPTER.validate_python(RECORD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        worker.paused = False  # type: ignore[misc]
    assert not dataclasses.replace(worker, paused=False).paused
