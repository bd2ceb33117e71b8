"""The operator commands' formatting and argument checks, without any service."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from registryd.cli import EXIT_CODES, main
from registryd.client import Resync
from registryd.errors import InvalidParams, NotFound, RegistryError, RpcTimeout, Unavailable
from registryd.models import (
    WORKER_ADAPTER,
    ConfiguredOn,
    Master,
    MasterChange,
    Worker,
    WorkerChange,
)
from registryd.operator import (
    Exit,
    Refused,
    change_json,
    change_line,
    compact_pairs,
    dead_letter_record,
    dead_letter_text,
    exit_code,
    foreign_data,
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
from registryd.protocol import rejected_at, rejected_message

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
    return WORKER_ADAPTER.validate_python({**RECORD, **changes})


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
            {"code": "not_found", "message": "no worker", "rejected_at": None},
        ),
        (
            b'{"code": "forbidden", "message": "m [rejected at 2026-12-01T21:42:34.162Z]"}',
            {
                "code": "forbidden",
                "message": "m [rejected at 2026-12-01T21:42:34.162Z]",
                "rejected_at": "2026-12-01T21:42:34.162Z",
            },
        ),
        ("oops", {"code": None, "message": "oops", "rejected_at": None}),
        (
            '{"message": "no code"}',
            {"code": None, "message": '{"message": "no code"}', "rejected_at": None},
        ),
    ],
)
def test_error_header_is_parsed(header: object, expected: dict[str, Any] | None) -> None:
    """x-registry-error gives code, message and rejection time; anything else its text."""
    assert expected == parse_error_header(header)


def test_dead_letter_record_shape() -> None:
    """A dead letter shows ids, the parsed error, JSON-able headers and the body both ways."""
    error = '{"code": "bad_request", "message": "not JSON"}'
    record = dead_letter_record(b"\xff", {"x-registry-error": error, "b": b"v"}, "m-1", "")
    assert {
        "message_id": "m-1",
        "routing_key": None,
        "rejected_at": None,
        "error": {"code": "bad_request", "message": "not JSON", "rejected_at": None},
        "headers": {"x-registry-error": error, "b": "v"},
        "body": None,
        "body_base64": "/w==",
    } == record
    text = dead_letter_text(1, record).splitlines()
    assert "1. message_id=m-1 routing_key=- rejected_at=- error=bad_request: not JSON" == text[0]
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
        ["demo", "--masters", "10"],
        ["check", "--config", "/nonexistent/registryd.toml"],
        ["workers", "--prefix", "a b"],
    ],
)
def test_bad_arguments_are_usage_errors(args: list[str]) -> None:
    """Arguments that cannot work are refused (exit 2) before anything is contacted."""
    result = CliRunner().invoke(main, args)
    assert 2 == result.exit_code


def test_dead_letter_record_keeps_routing_key_and_rejection_time() -> None:
    """The routing key is the dead letter's own; the time of rejection is in its error."""
    error = '{"code": "not_found", "message": "m [rejected at 2026-12-01T21:42:34.162Z]"}'
    headers = {"x-registry-error": error}
    record = dead_letter_record(b"{}", headers, "m-1", "worker.paused")
    assert ("worker.paused", "2026-12-01T21:42:34.162Z") == (
        record["routing_key"],
        record["rejected_at"],
    )
    first = dead_letter_text(1, record).splitlines()[0]
    assert first.startswith(
        "1. message_id=m-1 routing_key=worker.paused rejected_at=2026-12-01T21:42:34.162Z "
    )
    assert 2 == len(dead_letter_text(1, record).splitlines())  # the error is not repeated


def test_broker_dead_letters_show_the_time_of_x_death() -> None:
    """A dead letter of RabbitMQ's own (delivery limit) has its time from x-death."""
    death = {"time": datetime(2026, 12, 1, 21, 42, 34, tzinfo=UTC), "reason": "delivery_limit"}
    record = dead_letter_record(b"{}", {"x-death": [death]}, "m-1", "worker.paused")
    assert ("worker.paused", "2026-12-01T21:42:34.000Z") == (
        record["routing_key"],
        record["rejected_at"],
    )


def test_watch_lines_start_with_the_time_received() -> None:
    """watch puts the time it received a notification (UTC, ms) before the line, or in JSON."""
    at = datetime(2026, 12, 1, 21, 42, 34, 162_000, tzinfo=UTC)
    line = change_line(_worker_change(), at)
    assert line == f"2026-12-01T21:42:34.162Z {change_line(_worker_change())}"
    assert (
        "2026-12-01T21:42:34.162Z" == json.loads(change_json(_worker_change(), at))["received_at"]
    )
    assert (
        "2026-12-01T21:42:34.162Z"
        == json.loads(change_json(Resync(9, "e", "reset"), at))["received_at"]
    )


def test_options_are_accepted_after_the_subcommand(tmp_path: Path) -> None:
    """--config and --prefix work after the subcommand too: here a bad file is read, exit 2."""
    config = tmp_path / "registryd.toml"
    config.write_text('[masters]\nlease = "abc"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["check", "--config", str(config)])
    assert 2 == result.exit_code
    assert f'masters.lease = "abc" in {config}: must be a number' in result.output


def test_prefix_option_is_named_in_its_error() -> None:
    """A bad --prefix is refused with the option's name and value, before any contact."""
    result = CliRunner().invoke(main, ["--prefix", "a b", "masters"])
    assert 2 == result.exit_code
    assert "--prefix 'a b': must be 1 to 100 of the characters" in result.output


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotFound("x"), Exit.NOT_FOUND),
        (Unavailable("x"), Exit.UNAVAILABLE),
        (RpcTimeout("x"), Exit.UNAVAILABLE),
        (InvalidParams("x"), Exit.REFUSED),
        (Refused("x"), Exit.REFUSED),
    ],
)
def test_exit_codes_tell_not_found_from_unavailable(
    error: RegistryError | Refused, code: Exit
) -> None:
    """Not found is 1, unavailable 3, any other refusal 4 (usage errors are click's 2)."""
    assert code == exit_code(error)


def test_exit_codes_are_documented() -> None:
    """The table of every exit code is in `registryd --help` and, verbatim, in docs/cli.md."""
    shown = [line.strip() for line in CliRunner().invoke(main, ["--help"]).output.splitlines()]
    docs = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    table = [line.strip() for line in EXIT_CODES.splitlines()]
    assert EXIT_CODES in docs
    assert table == shown[shown.index("Exit codes:") :][: len(table)]
    assert sorted(code.value for code in Exit) == sorted(
        int(line.split()[0]) for line in table if line[:1].isdigit()
    )


def _demo_master(masterid: int) -> Master:
    return master(id=masterid, name=f"demo-master-{masterid}")


@pytest.mark.parametrize(
    ("workers", "masters", "expected"),
    [
        ([], [], None),
        (
            [worker(name="demo-worker-1", connected_to=[], configured_on=[])],
            [_demo_master(9001)],
            None,
        ),
        ([worker(name="demo-worker-1", connected_to=[9001], configured_on=[])], [], None),
        ([worker(name="linux-1")], [], "1 workers ('linux-1')"),
        ([worker(name="demo-worker-1")], [], "1 workers ('demo-worker-1')"),  # on master 10
        ([], [_demo_master(9001), master(id=1)], "1 masters (1)"),
    ],
)
def test_the_demo_tells_its_own_data_from_others(
    workers: list[Worker], masters: list[Master], expected: str | None
) -> None:
    """Only demo-worker-N on masters 9001.. and those masters are the demo's; the rest is not."""
    assert expected == foreign_data(workers, masters)


def test_the_rejection_time_ends_the_message_and_is_read_back() -> None:
    """rejected_message puts the time at the end of the message; rejected_at reads it."""
    at = datetime(2026, 12, 1, 21, 42, 34, 162_000, tzinfo=UTC)
    message = rejected_message("no worker with id 9", at)
    assert "no worker with id 9 [rejected at 2026-12-01T21:42:34.162Z]" == message
    assert "2026-12-01T21:42:34.162Z" == rejected_at(message)
    assert rejected_at("no worker with id 9") is None
