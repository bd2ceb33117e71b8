"""The Lua side of the store is generated from, and agrees with, the Python side."""

from __future__ import annotations

import re

import pytest

from registryd.errors import Internal
from registryd.models import OPERATIONS, GetWorker, Operation, SetWorkerPaused, WorkerConfigured
from registryd.models.ops import MasterHeartbeat, WorkerConnected
from registryd.store.keys import SCRIPT_KEYS, Keys
from registryd.store.lua import (
    SOURCES,
    batch_args,
    lua_template,
    prelude,
    script_for,
    write_args,
    write_script,
)

WRITES = sorted((op for op in OPERATIONS.values() if op.is_write()), key=lambda op: op.method)


@pytest.mark.parametrize("op", WRITES, ids=lambda op: op.method)
def test_every_write_has_its_script(op: type[Operation]) -> None:
    """A write's script is named after its method and ships with the package."""
    assert script_for(op) in SOURCES


def test_every_script_is_a_write_or_a_named_read() -> None:
    """No script lies unused: each is a write's, or one the store calls by name."""
    reads = {
        "init_epoch", "migrate", "expire_masters", "next_lease_end", "read_workers", "read_masters",
        "read_changes", "read_remembered",
        "relay_claim", "relay_advance", "relay_release", "apply_batch",
    }  # fmt: skip
    assert set(SOURCES) == reads | {script_for(op) for op in WRITES}


def test_prelude_names_every_key_from_the_base() -> None:
    """``local K_X = BASE .. '<suffix>'`` for every entry of SCRIPT_KEYS; one KEY, the base."""
    declared = re.findall(r"^local (\w+) = BASE \.\. '([^']*)'$", prelude(), re.MULTILINE)
    keys = Keys("p")
    assert [(name, getattr(keys, attr).removeprefix(keys.base)) for name, attr in SCRIPT_KEYS] == (
        declared
    )
    assert [keys.base] == keys.script_keys()


def test_every_key_name_the_scripts_use_is_declared() -> None:
    """A K_/P_ name a script uses but the prelude does not declare would be a nil key."""
    declared = {name for name, _ in SCRIPT_KEYS}
    for name, source in SOURCES.items():
        used = set(re.findall(r"\b([KP]_[A-Z_]+)\b", source))
        assert used <= declared, name


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("workers.{id}.{event}", "'workers.' .. id .. '.' .. event"),
        ("{id}", "id"),
        ("it's.{id}", "'it\\'s.' .. id"),
    ],
)
def test_lua_template_concatenates_literals_and_variables(template: str, expected: str) -> None:
    """A format template becomes the Lua expression that builds the same text."""
    assert expected == lua_template(template, {"id": "id", "event": "event"})


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        (
            WorkerConnected(workerid=3, masterid=10, workerinfo={"b": 1, "a": "é"}),
            ["3", "10", '{"a":"é","b":1}', "null"],
        ),
        (
            WorkerConnected(workerid=3, masterid=10, workerinfo={}, connection="s-1"),
            ["3", "10", "{}", '"s-1"'],
        ),
        (SetWorkerPaused(workerid=4, paused=True), ["4", "1", "null"]),
        (SetWorkerPaused(workerid=4, paused=False, pause_reason="x"), ["4", "0", '"x"']),
        (WorkerConfigured(workerid=5, masterid=1, builderids=[3, 2, 3]), ["5", "1", "3,2,3"]),
        (WorkerConfigured(workerid=5, masterid=1, builderids=[]), ["5", "1", ""]),
        (MasterHeartbeat(masterid=9, name=""), ["9", '""']),
        (MasterHeartbeat(masterid=9), ["9", "null"]),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Operation) else "",
)
def test_write_args_encode_the_fields_in_model_order(op: Operation, expected: list[str]) -> None:
    """Ids as decimals, flags 1/0, text and null as JSON, objects canonical, lists joined."""
    assert expected == write_args(op)


def test_a_read_is_not_a_write_alone_or_in_a_batch() -> None:
    """A read handed to a write path is refused before anything is sent, batched or not."""
    read = GetWorker(workerid=1)
    with pytest.raises(Internal, match="getWorker is not a write"):
        write_script(read)
    with pytest.raises(Internal, match="getWorker is not a write"):
        batch_args([(SetWorkerPaused(workerid=1, paused=True), None), (read, None)])
