"""The operator commands' formatting and argument checks, without any service."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from registryd.cli import main
from registryd.client import Resync
from registryd.models import ConfiguredOn, Master, MasterChange, Worker, WorkerChange
from registryd.operator import (
    change_json,
    change_line,
    compact_pairs,
    dead_letter_record,
    dead_letter_text,
    format_table,
    masters_table,
    parse_error_header,
    printable,
    replay_headers,
    replay_routing_key,
    to_json,
    worker_details,
    workers_table,
)

#: The worker record of PROTOCOL.md section 1.
RECORD: dict[str, Any] = {
    "id": 30,
    "name": "zero",
    "workerinfo": {"host": "h1"},
    "paused": False,
    "pause_reason": None,
    "graceful": False,
    "connected_to": [10],
    "configured_on": [{"builderid": 20, "masterid": 10}, {"builderid": 21, "masterid": 10}],
}


def worker(**changes: Any) -> Worker:
    """The example record with some fields changed."""
    return Worker.model_validate({**RECORD, **changes})


def master(**changes: Any) -> Master:
    """An active, named master with some fields changed."""
    fields = {"id": 10, "name": "ci-1:/srv", "active": True, "last_seen": "2024-05-01T10:00:00Z"}
    return Master.model_validate({**fields, **changes})


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([], "-"),
        ([(10, 20)], "10:20"),
        ([(10, 20), (10, 21), (11, 20)], "10:20,10:21,11:20"),
    ],
)
def test_compact_pairs_are_master_colon_builder(
    pairs: list[tuple[int, int]], expected: str
) -> None:
    """configured_on prints as master:builder pairs in record order, '-' when empty."""
    assert expected == compact_pairs(ConfiguredOn(masterid=m, builderid=b) for m, b in pairs)


def test_table_columns_are_aligned_without_trailing_blanks() -> None:
    """Columns are as wide as their widest cell, two spaces apart; lines are right-stripped."""
    expected = "A    LONG\nxyz  1\n1"
    assert expected == format_table(("A", "LONG"), [("xyz", "1"), ("1", "")])


def test_workers_table_shows_the_protocol_example() -> None:
    """The worker table has one row per worker with flags as yes/no and compact lists."""
    expected = (
        "ID  NAME  PAUSED  GRACEFUL  CONNECTED_TO  CONFIGURED_ON\n"
        "30  zero  no      no        10            10:20,10:21\n"
        "31  one   yes     yes       -             -"
    )
    other = worker(id=31, name="one", paused=True, graceful=True, connected_to=[], configured_on=[])
    assert expected == workers_table([worker(), other])


def test_workers_table_shows_a_short_pause_reason() -> None:
    """A pause reason appears in the PAUSED column, cut after 30 characters."""
    table = workers_table([worker(paused=True, pause_reason="x" * 40)])
    assert f"yes ({'x' * 30}...)" in table.splitlines()[1]


def test_empty_tables_say_none() -> None:
    """An empty listing prints the header and '(none)'."""
    assert "(none)" == workers_table([]).splitlines()[1]
    assert "(none)" == masters_table([]).splitlines()[1]


def test_masters_table_shows_missing_names_as_dash() -> None:
    """Masters list id, name (or '-'), active and last_seen."""
    expected = (
        "ID  NAME       ACTIVE  LAST_SEEN\n"
        "10  ci-1:/srv  yes     2024-05-01T10:00:00Z\n"
        "11  -          no      2024-05-01T10:00:00Z"
    )
    assert expected == masters_table([master(), master(id=11, name=None, active=False)])


def test_worker_details_show_every_field() -> None:
    """The single-worker view has one line per field, workerinfo as JSON."""
    lines = worker_details(worker(paused=True, pause_reason="maint")).splitlines()
    assert [
        "id:            30",
        "name:          zero",
        "paused:        yes",
        "pause_reason:  maint",
        "graceful:      no",
        "connected_to:  10",
        "configured_on: 10:20,10:21",
        'workerinfo:    {"host": "h1"}',
    ] == lines


def test_control_characters_are_escaped() -> None:
    """Free text (master names, reasons) cannot drive the terminal: controls are escaped."""
    assert "ci\\x1b[31m\\n" == printable("ci\x1b[31m\n")
    assert "ünï-code" == printable("ünï-code")
    assert "ci\\x1b[2J" in masters_table([master(name="ci\x1b[2J")])


def test_json_output_is_the_value_on_one_line() -> None:
    """--json prints exactly the value, as one line of JSON."""
    text = to_json([RECORD])
    assert [RECORD] == json.loads(text)
    assert 1 == len(text.splitlines())


def _worker_change() -> WorkerChange:
    return WorkerChange(revision=7, event="connected", workerid=30, masterid=10, worker=worker())


def test_change_lines_name_revision_key_and_subject() -> None:
    """watch prints revision, routing key, then the worker's or master's state."""
    stopped = MasterChange(revision=8, event="stopped", masterid=10, master=master(active=False))
    assert (
        "7 workers.30.connected worker=30 name=zero master=10 connected_to=10 "
        "configured_on=10:20,10:21 paused=no graceful=no"
    ) == change_line(_worker_change())
    assert "8 masters.10.stopped master=10 name=ci-1:/srv active=no" == change_line(stopped)
    assert change_line(Resync(9, "e1", "reset")).startswith("resync at revision 9 (reset)")


def test_change_json_is_the_body_plus_routing_key() -> None:
    """watch --json prints the notification body with its routing key; a resync as an event."""
    line = json.loads(change_json(_worker_change()))
    assert "workers.30.connected" == line.pop("routing_key")
    assert {"revision": 7, "event": "connected", "workerid": 30, "masterid": 10} == {
        k: line[k] for k in ("revision", "event", "workerid", "masterid")
    }
    assert RECORD == line["worker"]
    resync = {"event": "resync", "reason": "reset", "revision": 9, "epoch": "e1"}
    assert resync == json.loads(change_json(Resync(9, "e1", "reset")))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        (
            '{"code": "not_found", "message": "no worker"}',
            {"code": "not_found", "message": "no worker"},
        ),
        (b'{"code": "forbidden", "message": "m"}', {"code": "forbidden", "message": "m"}),
        ("oops", {"code": None, "message": "oops"}),
        ('{"message": "no code"}', {"code": None, "message": '{"message": "no code"}'}),
    ],
)
def test_error_header_is_parsed(header: object, expected: dict[str, Any] | None) -> None:
    """x-registry-error gives code and message; anything else keeps its text."""
    assert expected == parse_error_header(header)


def test_dead_letter_record_shape() -> None:
    """A dead letter shows ids, the parsed error, JSON-able headers and the body both ways."""
    error = '{"code": "bad_request", "message": "not JSON"}'
    record = dead_letter_record(b"\xff", {"x-registry-error": error, "b": b"v"}, "m-1", "")
    assert {
        "message_id": "m-1",
        "routing_key": None,
        "error": {"code": "bad_request", "message": "not JSON"},
        "headers": {"x-registry-error": error, "b": "v"},
        "body": None,
        "body_base64": "/w==",
    } == record
    text = dead_letter_text(1, record).splitlines()
    assert "1. message_id=m-1 routing_key=- error=bad_request: not JSON" == text[0]
    assert "   body (base64, not UTF-8): /w==" == text[1]
    assert '   headers: {"b": "v"}' == text[2]


def test_replay_drops_the_verdict_headers_only() -> None:
    """A replay keeps the master's headers and drops registryd's and the broker's verdicts."""
    headers: dict[str, Any] = {
        "x-registry-error": "{}",
        "x-registry-user-id": "master-a",
        "x-death": [],
        "x-first-death-reason": "delivery_limit",
        "x-last-death-queue": "q",
        "trace": "t-1",
    }
    assert {"trace": "t-1"} == replay_headers(headers)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"type": "worker.paused", "workerid": 1}', "worker.paused"),
        (b'{"workerid": 1}', "fallback"),
        (b'{"type": 3}', "fallback"),
        (b"[1]", "fallback"),
        (b"\xff", "fallback"),
    ],
)
def test_replay_routing_key_is_the_body_type(body: bytes, expected: str) -> None:
    """A replayed event is routed by its body's type, else by the fallback key."""
    assert expected == replay_routing_key(body, "fallback")


@pytest.mark.parametrize(
    "args",
    [
        ["worker"],
        ["worker", "3", "--name", "w"],
        ["worker", "0"],
        ["dead-letters", "--replay", "--drop"],
        ["dead-letters", "--limit", "0"],
        ["workers", "--master", "0"],
        ["demo", "--masters", "0"],
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str]) -> None:
    """Arguments that cannot work are refused (exit 2) before anything is contacted."""
    result = CliRunner().invoke(main, args)
    assert 2 == result.exit_code
