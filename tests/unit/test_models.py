"""Strict parameter models: what PROTOCOL.md sections 1, 2, 4 and 6 accept and refuse."""

from __future__ import annotations

import math
from typing import Any

import pytest

from registryd.errors import InvalidParams
from registryd.models import (
    EVENTS,
    OPERATIONS,
    DeconfigureAllWorkersForMaster,
    FindWorkerId,
    GetChanges,
    GetMasters,
    GetWorker,
    GetWorkers,
    MasterHeartbeat,
    MasterStopped,
    Operation,
    Ping,
    SetWorkerGraceful,
    SetWorkerPaused,
    WorkerConfigured,
    WorkerConnected,
    WorkerDisconnected,
    parse_params,
)
from registryd.models.types import MAX_ID

#: A valid params object for every operation; tests change one field at a time.
VALID: dict[type[Operation], dict[str, Any]] = {
    Ping: {},
    FindWorkerId: {"name": "zero"},
    GetWorker: {"workerid": 30, "name": "zero", "masterid": 10, "builderid": 20},
    GetWorkers: {"masterid": 10, "builderid": 20, "paused": False, "graceful": True},
    WorkerConnected: {
        "workerid": 30,
        "masterid": 10,
        "workerinfo": {"host": "h1"},
        "connection": "c1",
    },
    WorkerDisconnected: {"workerid": 30, "masterid": 10, "connection": "c1"},
    WorkerConfigured: {"workerid": 30, "masterid": 10, "builderids": [20, 21]},
    DeconfigureAllWorkersForMaster: {"masterid": 10},
    SetWorkerPaused: {"workerid": 30, "paused": True, "pause_reason": "disk full"},
    SetWorkerGraceful: {"workerid": 30, "graceful": True},
    MasterHeartbeat: {"masterid": 10, "name": "host:/basedir"},
    MasterStopped: {"masterid": 10},
    GetMasters: {},
    GetChanges: {"since": 0, "limit": 100},
}

#: Every (operation, field) that holds an id.
ID_FIELDS: list[tuple[type[Operation], str]] = [
    (model, field)
    for model, params in VALID.items()
    for field in params
    if field in {"workerid", "masterid", "builderid"}
]

#: Every (operation, field) that holds a boolean.
FLAG_FIELDS: list[tuple[type[Operation], str]] = [
    (SetWorkerPaused, "paused"),
    (SetWorkerGraceful, "graceful"),
    (GetWorkers, "paused"),
    (GetWorkers, "graceful"),
]

NAME_ACCEPTED = [
    "a",
    "Z",
    "_",
    "-",
    "zero",
    "worker-01",
    "a_b-c9",
    "-1",
    "_0",
    "a" * 50,
    "\u00a0",
    "é",
    "日本-ワーカー",
    "\U0010ffff",
    "x\U0001f600" * 25,
]

NAME_REFUSED = [
    "",
    "a" * 51,
    "é" * 51,
    "1abc",
    "9",
    "0-worker",
    "a b",
    " a",
    "a ",
    "a\n",
    "\n",
    "a\t",
    "a.b",
    "a/b",
    "a:b",
    "a@b",
    "a\x00",
    "\u009f",
    "a\u009f",
    "\ud800",
    "a\udfff",
    "\udbff\udfff",
]

ID_REFUSED = [True, False, 10.0, "10", 0, -1, MAX_ID + 1, [10], {"id": 10}]
FLAG_REFUSED = [1, 0, "yes", "true", "false", 1.0]


def _required(model: type[Operation], field: str) -> bool:
    """Whether ``field`` of ``model`` must be given."""
    return model.model_fields[field].is_required()


def _with(model: type[Operation], **changes: Any) -> dict[str, Any]:
    """The valid params of ``model`` with some fields replaced."""
    return {**VALID[model], **changes}


def _without(model: type[Operation], field: str) -> dict[str, Any]:
    """The valid params of ``model`` with one field left out."""
    return {k: v for k, v in VALID[model].items() if k != field}


def _refusal(model: type[Operation], params: dict[str, Any]) -> str:
    """The message of the InvalidParams that parsing ``params`` must raise."""
    with pytest.raises(InvalidParams) as caught:
        parse_params(model, params)
    return caught.value.message


@pytest.mark.parametrize("model", list(VALID))
def test_valid_params_parse(model: type[Operation]) -> None:
    """Each operation's example params parse and keep their values."""
    assert VALID[model] == parse_params(model, VALID[model]).model_dump(exclude_unset=True)


@pytest.mark.parametrize("name", NAME_ACCEPTED)
def test_worker_name_accepted(name: str) -> None:
    """A name matching the identifier rule in full is accepted unchanged."""
    assert name == parse_params(FindWorkerId, {"name": name}).name


@pytest.mark.parametrize("name", NAME_REFUSED)
def test_worker_name_refused(name: str) -> None:
    """A name that breaks the identifier rule anywhere is invalid_params naming `name`."""
    assert _refusal(FindWorkerId, {"name": name}).startswith("name: must be ")


@pytest.mark.parametrize("name", [b"zero", 7, None, ["zero"]])
def test_worker_name_must_be_a_string(name: object) -> None:
    """A name that is not a JSON string is refused."""
    assert _refusal(FindWorkerId, {"name": name}).startswith("name: must be ")


def test_worker_names_are_case_sensitive() -> None:
    """Names keep their case: "Zero" and "zero" are different names."""
    upper = parse_params(FindWorkerId, {"name": "Zero"})
    lower = parse_params(FindWorkerId, {"name": "zero"})
    assert ("Zero", "zero") == (upper.name, lower.name)
    assert upper != lower


@pytest.mark.parametrize("name", ["a" * 51, "1abc", "a\n"])
def test_get_worker_name_follows_the_same_rule(name: str) -> None:
    """getWorker's `name` filter is checked by the same identifier rule."""
    assert _refusal(GetWorker, {"name": name}).startswith("name: must be ")


@pytest.mark.parametrize(("model", "field"), ID_FIELDS)
@pytest.mark.parametrize("value", ID_REFUSED)
def test_ids_are_strict_positive_integers(
    model: type[Operation], field: str, value: object
) -> None:
    """An id that is not a JSON integer in 1..2**53-1 is invalid_params naming the field."""
    assert _refusal(model, _with(model, **{field: value})).startswith(f"{field}: must be ")


@pytest.mark.parametrize(("model", "field"), [(m, f) for m, f in ID_FIELDS if _required(m, f)])
def test_required_id_is_not_null(model: type[Operation], field: str) -> None:
    """A required id given as null is invalid_params naming the field."""
    assert _refusal(model, _with(model, **{field: None})).startswith(f"{field}: must be ")


@pytest.mark.parametrize(("model", "field"), ID_FIELDS)
@pytest.mark.parametrize("value", [1, MAX_ID])
def test_ids_at_the_bounds_are_accepted(model: type[Operation], field: str, value: int) -> None:
    """The smallest and largest ids are accepted exactly."""
    assert value == getattr(parse_params(model, _with(model, **{field: value})), field)


@pytest.mark.parametrize(("model", "field"), FLAG_FIELDS)
@pytest.mark.parametrize("value", FLAG_REFUSED)
def test_booleans_are_strict(model: type[Operation], field: str, value: object) -> None:
    """A boolean that is not a JSON true/false is invalid_params naming the field."""
    assert _refusal(model, _with(model, **{field: value})).startswith(f"{field}: must be ")


@pytest.mark.parametrize(("model", "field"), [(m, f) for m, f in FLAG_FIELDS if _required(m, f)])
def test_required_boolean_is_not_null(model: type[Operation], field: str) -> None:
    """A required boolean given as null is invalid_params naming the field."""
    assert _refusal(model, _with(model, **{field: None})).startswith(f"{field}: must be ")


@pytest.mark.parametrize(("model", "field"), FLAG_FIELDS)
@pytest.mark.parametrize("value", [True, False])
def test_booleans_accepted(model: type[Operation], field: str, value: bool) -> None:
    """JSON true and false are accepted as given."""
    assert value is getattr(parse_params(model, _with(model, **{field: value})), field)


@pytest.mark.parametrize("model", list(VALID))
def test_extra_fields_are_refused(model: type[Operation]) -> None:
    """An unknown field is invalid_params naming that field."""
    assert "extra: is not allowed here" == _refusal(model, _with(model, extra=1))


@pytest.mark.parametrize("field", ["paused", "graceful"])
def test_get_worker_takes_no_state_filters(field: str) -> None:
    """getWorker has no paused/graceful params: they are unknown fields there."""
    assert f"{field}: is not allowed here" == _refusal(GetWorker, {"workerid": 1, field: True})


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (FindWorkerId, "name"),
        (WorkerConnected, "workerid"),
        (WorkerConnected, "masterid"),
        (WorkerConnected, "workerinfo"),
        (WorkerDisconnected, "workerid"),
        (WorkerDisconnected, "masterid"),
        (WorkerConfigured, "workerid"),
        (WorkerConfigured, "masterid"),
        (WorkerConfigured, "builderids"),
        (DeconfigureAllWorkersForMaster, "masterid"),
        (SetWorkerPaused, "workerid"),
        (SetWorkerPaused, "paused"),
        (SetWorkerGraceful, "workerid"),
        (SetWorkerGraceful, "graceful"),
        (MasterHeartbeat, "masterid"),
        (MasterStopped, "masterid"),
        (GetChanges, "since"),
    ],
)
def test_missing_required_field_is_named(model: type[Operation], field: str) -> None:
    """A missing required field is invalid_params `<field>: is required`."""
    assert f"{field}: is required" == _refusal(model, _without(model, field))


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (WorkerConnected, "connection"),
        (WorkerDisconnected, "connection"),
        (SetWorkerPaused, "pause_reason"),
        (MasterHeartbeat, "name"),
        (GetWorker, "workerid"),
        (GetWorker, "name"),
        (GetWorker, "masterid"),
        (GetWorker, "builderid"),
        (GetWorkers, "masterid"),
        (GetWorkers, "builderid"),
        (GetWorkers, "paused"),
        (GetWorkers, "graceful"),
    ],
)
def test_optional_field_defaults_to_none(model: type[Operation], field: str) -> None:
    """An optional field left out is None (not given)."""
    assert getattr(parse_params(model, _without(model, field)), field) is None


def test_several_bad_fields_are_all_named() -> None:
    """Every bad field is named in the one message, in field order."""
    message = _refusal(WorkerConnected, {"workerid": "1", "masterid": 0, "workerinfo": {}})
    assert ["workerid", "masterid"] == [part.split(":")[0] for part in message.split("; ")]


@pytest.mark.parametrize("connection", ["c", "x" * 200, "é" * 200, "amqp://h:1/#3 ∞"])
def test_connection_accepted(connection: str) -> None:
    """A connection token of 1 to 200 characters is accepted as given."""
    op = parse_params(WorkerDisconnected, _with(WorkerDisconnected, connection=connection))
    assert connection == op.connection


@pytest.mark.parametrize("connection", ["", "x" * 201, 5, True, ["c"], "a\ud800"])
def test_connection_refused(connection: object) -> None:
    """A connection that is not a string of 1 to 200 characters is refused on both ops."""
    for model in (WorkerConnected, WorkerDisconnected):
        message = _refusal(model, _with(model, connection=connection))
        assert message.startswith("connection: must be ")


@pytest.mark.parametrize("name", ["", "m", "host:/basedir", "x" * 200, "é" * 200])
def test_master_name_accepted(name: str) -> None:
    """A master name of up to 200 characters of free text is accepted as given."""
    assert name == parse_params(MasterHeartbeat, {"masterid": 10, "name": name}).name


@pytest.mark.parametrize("name", ["x" * 201, 10, True, "m\udc00"])
def test_master_name_refused(name: object) -> None:
    """A master name over 200 characters or not a string is invalid_params naming `name`."""
    assert _refusal(MasterHeartbeat, {"masterid": 10, "name": name}).startswith("name: must be ")


@pytest.mark.parametrize(
    "reason", ["", "disk full", 'quote " and \\ backslash', "line\nbreak", "é" * 500]
)
def test_pause_reason_is_any_text(reason: str) -> None:
    """pause_reason is stored as given: any valid string."""
    op = parse_params(SetWorkerPaused, _with(SetWorkerPaused, pause_reason=reason))
    assert reason == op.pause_reason


@pytest.mark.parametrize("reason", [5, True, ["r"], "r\ud800"])
def test_pause_reason_refused(reason: object) -> None:
    """A pause_reason that is not a valid string is invalid_params naming it."""
    message = _refusal(SetWorkerPaused, _with(SetWorkerPaused, pause_reason=reason))
    assert message.startswith("pause_reason: must be ")


@pytest.mark.parametrize(
    "info",
    [
        {},
        {"host": "h1"},
        {"admin": None, "host": None, "access_uri": None, "version": "3.11"},
        {"n": 1, "f": 1.5, "big": 1e300, "neg": -0.25, "t": True, "l": [1, "x", None]},
        {"nested": {"deeper": {"k": ["é", {"z": 0}]}}},
    ],
)
def test_workerinfo_accepts_any_json_object(info: dict[str, Any]) -> None:
    """workerinfo is any JSON object, kept as given."""
    op = parse_params(WorkerConnected, _with(WorkerConnected, workerinfo=info))
    assert info == op.workerinfo


@pytest.mark.parametrize(
    "info",
    [
        [],
        ["host", "h1"],
        "host=h1",
        None,
        1,
        {"n": math.nan},
        {"n": math.inf},
        {"deep": {"n": -math.inf}},
        {"list": [1, math.nan]},
        {"s": "bad\ud800"},
    ],
)
def test_workerinfo_refused(info: object) -> None:
    """workerinfo that is not an object of finite numbers and valid text is refused."""
    message = _refusal(WorkerConnected, _with(WorkerConnected, workerinfo=info))
    assert message.startswith("workerinfo: must be ")


@pytest.mark.parametrize(
    ("builderids", "expected"),
    [([], []), ([20], [20]), ([21, 20, 21], [21, 20, 21]), ([MAX_ID], [MAX_ID])],
)
def test_builderids_accepted(builderids: list[int], expected: list[int]) -> None:
    """builderids is a list of ids, possibly empty; duplicates are accepted here."""
    op = parse_params(WorkerConfigured, _with(WorkerConfigured, builderids=builderids))
    assert expected == op.builderids


@pytest.mark.parametrize(
    ("builderids", "where"),
    [
        (20, "builderids"),
        ("20", "builderids"),
        ({"20": 1}, "builderids"),
        (None, "builderids"),
        ([20, True], "builderids.1"),
        (["20"], "builderids.0"),
        ([20.0], "builderids.0"),
        ([0], "builderids.0"),
    ],
)
def test_builderids_refused(builderids: object, where: str) -> None:
    """A builderids that is not a list of ids names the field or the bad element."""
    message = _refusal(WorkerConfigured, _with(WorkerConfigured, builderids=builderids))
    assert message.startswith(f"{where}: must be ")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"since": 0}, (0, 100)),
        ({"since": 5, "limit": 1}, (5, 1)),
        ({"since": 10**12, "limit": 1000}, (10**12, 1000)),
    ],
)
def test_get_changes_accepted(params: dict[str, Any], expected: tuple[int, int]) -> None:
    """getChanges takes since >= 0 and limit 1..1000, limit defaulting to 100."""
    op = parse_params(GetChanges, params)
    assert expected == (op.since, op.limit)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": -1}, "since"),
        ({"since": True}, "since"),
        ({"since": 1.0}, "since"),
        ({"since": "1"}, "since"),
        ({"since": None}, "since"),
        ({"since": 0, "limit": 0}, "limit"),
        ({"since": 0, "limit": 1001}, "limit"),
        ({"since": 0, "limit": True}, "limit"),
        ({"since": 0, "limit": 10.0}, "limit"),
        ({"since": 0, "limit": "10"}, "limit"),
    ],
)
def test_get_changes_refused(params: dict[str, Any], field: str) -> None:
    """getChanges refuses a negative or non-integer since and a limit outside 1..1000."""
    assert _refusal(GetChanges, params).startswith(f"{field}: ")


def test_events_are_the_protocol_table() -> None:
    """Each lifecycle event type of section 4 maps to the operation it stands for."""
    assert {
        "worker.connected": "workerConnected",
        "worker.disconnected": "workerDisconnected",
        "worker.configured": "workerConfigured",
        "worker.paused": "set_worker_paused",
        "worker.graceful": "set_worker_graceful",
        "master.deconfigured": "deconfigureAllWorkersForMaster",
        "master.heartbeat": "masterHeartbeat",
        "master.stopped": "masterStopped",
    } == {event: model.method for event, model in EVENTS.items()}


def test_methods_are_the_protocol_list() -> None:
    """Every RPC method of sections 2, 5 and 6 has a params model, and no other."""
    assert {
        "ping",
        "findWorkerId",
        "getWorker",
        "getWorkers",
        "workerConnected",
        "workerDisconnected",
        "workerConfigured",
        "deconfigureAllWorkersForMaster",
        "set_worker_paused",
        "set_worker_graceful",
        "masterHeartbeat",
        "masterStopped",
        "getMasters",
        "getChanges",
    } == set(OPERATIONS)
