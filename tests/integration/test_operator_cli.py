"""The operator commands as real processes against a daemon running in the test's loop.

The daemon fixture serves in this event loop, so every command runs through
``asyncio.create_subprocess_exec`` and is awaited, never waited on in a blocking call.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection
from redis.asyncio import Redis

from registryd.config import Settings
from registryd.protocol import Names, rejected_at
from tests.harness import REGISTRYD, RunningDaemon, Wire, cli_env, serving, wait_for

pytestmark = pytest.mark.integration

SUMMARY = re.compile(
    r"^demo done: \d+ events published, \d+ RPC calls, (\d+) notifications seen, "
    r"last revision (\d+)$"
)


@dataclass(frozen=True)
class Run:
    """A finished command: exit code and output."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """Stdout as the one JSON document it must be."""
        return json.loads(self.out)


async def registryd(
    prefix: str, *args: str, timeout: float = 30, answer: bytes = b"", **env: str
) -> Run:
    """Run ``registryd ARGS`` for the prefix and wait for it without blocking the loop.

    ``answer`` is its standard input (empty: a question gets no answer).
    """
    process = await asyncio.create_subprocess_exec(
        *REGISTRYD,
        *args,
        env=cli_env(prefix, **env),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(answer), timeout)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


async def _dead_count(channel: AbstractChannel, names: Names) -> int:
    queue = await channel.declare_queue(names.dead, passive=True)
    return int(queue.declaration_result.message_count or 0)


async def _dead_letters_reach(channel: AbstractChannel, names: Names, count: int) -> None:
    async def reached() -> bool:
        return await _dead_count(channel, names) == count

    await wait_for(reached)


async def _two_workers(rpc: Wire) -> tuple[int, int]:
    """w1 configured on master 10 (builders 20, 21) and connected; w2 paused, on master 11."""
    w1 = await rpc.ok("findWorkerId", {"name": "w1"})
    w2 = await rpc.ok("findWorkerId", {"name": "w2"})
    await rpc.ok("workerConfigured", {"workerid": w1, "masterid": 10, "builderids": [21, 20]})
    await rpc.ok("workerConfigured", {"workerid": w2, "masterid": 11, "builderids": [30]})
    await rpc.ok("workerConnected", {"workerid": w1, "masterid": 10, "workerinfo": {"h": 1}})
    await rpc.ok("set_worker_paused", {"workerid": w2, "paused": True, "pause_reason": "maint"})
    return w1, w2


async def test_workers_prints_a_table_or_the_rpc_json(
    daemon: RunningDaemon, rpc: Wire, prefix: str
) -> None:
    """workers: a table with compact pairs; --json is getWorkers' list exactly, filters too."""
    w1, w2 = await _two_workers(rpc)
    table, everything, on_10, paused = await asyncio.gather(
        registryd(prefix, "workers"),
        registryd(prefix, "workers", "--json"),
        registryd(prefix, "workers", "--master", "10", "--builder", "20", "--json"),
        registryd(prefix, "workers", "--paused", "--json"),
    )
    assert [0, 0, 0, 0] == [r.code for r in (table, everything, on_10, paused)]
    assert (1, 2) == (w1, w2)
    assert [
        "ID  NAME  PAUSED       GRACEFUL  CONNECTED_TO  CONFIGURED_ON",
        "1   w1    no           no        10            10:20,10:21",
        "2   w2    yes (maint)  no        -             11:30",
    ] == table.out.splitlines()
    assert await rpc.ok("getWorkers") == everything.json()
    assert await rpc.ok("getWorkers", {"masterid": 10, "builderid": 20}) == on_10.json()
    assert [w2] == [w["id"] for w in paused.json()]


async def test_workers_pages_a_listing_over_the_reply_limit(
    settings: Settings, redis: Redis, amqp: AbstractConnection
) -> None:
    """workers, table and --json, lists every worker where one getWorkers is too_large."""
    async with serving(settings, amqp, rpc_max_reply=64 * 1024) as wire:
        ids = [await wire.ok("findWorkerId", {"name": f"w{i}"}) for i in range(40)]
        for workerid in ids:  # about 80 KiB of workers
            info = {"blob": "z" * 2000}
            await wire.ok(
                "workerConnected", {"workerid": workerid, "masterid": 1, "workerinfo": info}
            )
        assert "too_large" == await wire.code("getWorkers")
        table, listed = await asyncio.gather(
            registryd(wire.prefix, "workers"), registryd(wire.prefix, "workers", "--json")
        )
    assert (0, 0) == (table.code, listed.code)
    assert ids == [w["id"] for w in listed.json()]
    assert len(ids) + 1 == len(table.out.splitlines())


async def test_worker_by_id_or_name(daemon: RunningDaemon, rpc: Wire, prefix: str) -> None:
    """worker: by ID as getWorker's JSON, by --name as a field list."""
    w1, _ = await _two_workers(rpc)
    by_id, by_name = await asyncio.gather(
        registryd(prefix, "worker", str(w1), "--json"), registryd(prefix, "worker", "--name", "w2")
    )
    assert (0, 0) == (by_id.code, by_name.code)
    assert await rpc.ok("getWorker", {"workerid": w1}) == by_id.json()
    assert "pause_reason:  maint" in by_name.out.splitlines()


async def test_worker_not_found_exits_1(daemon: RunningDaemon, prefix: str) -> None:
    """worker: an unknown id or name is exit code 1 and one clear line; --json prints null."""
    by_id, by_name = await asyncio.gather(
        registryd(prefix, "worker", "99"), registryd(prefix, "worker", "--name", "ghost", "--json")
    )
    assert (1, 1) == (by_id.code, by_name.code)
    assert ("", "null\n") == (by_id.out, by_name.out)
    assert "registryd: no worker with id 99\n" == by_id.err
    assert "registryd: no worker with name 'ghost'\n" == by_name.err


async def test_masters_prints_a_table_or_the_rpc_json(
    daemon: RunningDaemon, rpc: Wire, prefix: str
) -> None:
    """masters: id, name, active, last_seen; --json is getMasters' list exactly."""
    await rpc.ok("masterHeartbeat", {"masterid": 10, "name": "ci-1:/srv"})
    await rpc.ok("masterHeartbeat", {"masterid": 11})
    await rpc.ok("masterStopped", {"masterid": 11})
    table, listing = await asyncio.gather(
        registryd(prefix, "masters"), registryd(prefix, "masters", "--json")
    )
    masters = await rpc.ok("getMasters")
    assert masters == listing.json()
    assert [
        "ID  NAME       ACTIVE  LAST_SEEN",
        f"10  ci-1:/srv  yes     {masters[0]['last_seen']}",
        f"11  -          no      {masters[1]['last_seen']}",
    ] == table.out.splitlines()


async def test_dead_letters_are_listed_and_left_in_the_queue(
    daemon: RunningDaemon, rpc: Wire, prefix: str
) -> None:
    """dead-letters: each rejected event with its error and headers; the queue keeps them."""
    names = Names(prefix)
    channel = rpc.channel
    event = {"type": "worker.paused", "workerid": 99, "paused": True}
    await rpc.event(event, message_id="bad-1", headers={"trace": "t-1"})
    await rpc.event(b"not json", message_id="bad-2")
    await _dead_letters_reach(channel, names, 2)
    # One after the other: a listing holds the messages it shows until it ends.
    listing = await registryd(prefix, "dead-letters", "--json")
    text = await registryd(prefix, "dead-letters")
    assert (0, 0) == (listing.code, text.code)
    first, second = listing.json()
    assert ("bad-1", event, "not_found") == (
        first["message_id"],
        json.loads(first["body"]),
        first["error"]["code"],
    )
    assert "t-1" == first["headers"]["trace"]
    assert ("worker.paused", "x") == (first["routing_key"], second["routing_key"])
    assert ("bad-2", "bad_request") == (second["message_id"], second["error"]["code"])
    assert re.match(
        r"1\. message_id=bad-1 routing_key=worker\.paused "
        r"rejected_at=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z error=not_found: ",
        text.out,
    ), text.out
    assert f"listed 2 of 2 dead letters in {names.dead} (left there)" == text.out.splitlines()[-1]
    assert 2 == await _dead_count(channel, names)


async def test_replay_applies_a_fixed_event(daemon: RunningDaemon, rpc: Wire, prefix: str) -> None:
    """dead-letters --replay: once the worker exists, the replayed event applies; queue empty."""
    names = Names(prefix)
    channel = rpc.channel
    event = {"type": "worker.paused", "workerid": 1, "paused": True, "pause_reason": "late"}
    await rpc.event(event, message_id="early-1")
    await _dead_letters_reach(channel, names, 1)
    assert 1 == await rpc.ok("findWorkerId", {"name": "late"})
    replay = await registryd(prefix, "dead-letters", "--replay", "--yes")
    assert 0 == replay.code
    summary = f"replayed 1 of 1 dead letters from {names.dead} to {names.events}"
    assert summary == replay.out.splitlines()[-1]
    await rpc.settled()
    worker = await rpc.worker(1)
    assert (True, "late") == (worker["paused"], worker["pause_reason"])
    assert 0 == await _dead_count(channel, names)


async def test_drop_deletes_the_dead_letters(daemon: RunningDaemon, rpc: Wire, prefix: str) -> None:
    """dead-letters --drop: the listed messages are gone from the dead queue."""
    names = Names(prefix)
    channel = rpc.channel
    for n in range(3):
        await rpc.event({"type": "nope"}, message_id=f"drop-{n}")
    await _dead_letters_reach(channel, names, 3)
    dropped = await registryd(prefix, "dead-letters", "--drop", "--limit", "2", "--json", "-y")
    assert 0 == dropped.code
    assert ["drop-0", "drop-1"] == [m["message_id"] for m in dropped.json()]
    assert f"dropped 2 of 3 dead letters from {names.dead}\n" == dropped.err
    assert 1 == await _dead_count(channel, names)


async def _start_watch(prefix: str, *args: str) -> asyncio.subprocess.Process:
    """``registryd watch ARGS``, returned once it says it is subscribed."""
    process = await asyncio.create_subprocess_exec(
        *REGISTRYD,
        "watch",
        *args,
        env=cli_env(prefix),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    status = await asyncio.wait_for(process.stderr.readline(), 20)
    assert status.startswith(f"watching {prefix}.notifications".encode()), status
    return process


async def _lines(process: asyncio.subprocess.Process, count: int) -> list[str]:
    assert process.stdout is not None
    return [(await asyncio.wait_for(process.stdout.readline(), 10)).decode() for _ in range(count)]


async def _stop(process: asyncio.subprocess.Process, signum: int) -> int:
    process.send_signal(signum)
    return await asyncio.wait_for(process.wait(), 10)


async def test_watch_prints_changes_until_sigint(
    daemon: RunningDaemon, rpc: Wire, prefix: str
) -> None:
    """watch: a timed line per notification as changes happen; SIGINT ends it with exit 0."""
    process = await _start_watch(prefix)
    try:
        wid = await rpc.ok("findWorkerId", {"name": "seen"})
        await rpc.ok("masterHeartbeat", {"masterid": 7, "name": "m7"})
        first, second = await _lines(process, 2)
        assert 0 == await _stop(process, signal.SIGINT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    when = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
    assert re.match(when + f"1 workers.{wid}.new worker={wid} name=seen master=- ", first)
    assert re.fullmatch(when + "2 masters.7.active master=7 name=m7 active=yes\n", second)


async def test_watch_json_catches_up_since_a_revision(
    daemon: RunningDaemon, rpc: Wire, prefix: str
) -> None:
    """watch --json --since: earlier changes first, as JSON lines; SIGTERM ends it with 0."""
    wid = await rpc.ok("findWorkerId", {"name": "before"})
    await rpc.ok("set_worker_graceful", {"workerid": wid, "graceful": True})
    process = await _start_watch(prefix, "--json", "--since", "1")
    try:
        await rpc.ok("masterHeartbeat", {"masterid": 3})
        lines = [json.loads(line) for line in await _lines(process, 2)]
        assert 0 == await _stop(process, signal.SIGTERM)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert [(2, f"workers.{wid}.state_updated"), (3, "masters.3.active")] == [
        (line["revision"], line["routing_key"]) for line in lines
    ]
    assert lines[0]["worker"]["graceful"] is True
    assert all(line["received_at"].endswith("Z") for line in lines)


async def test_demo_runs_a_day_twice(daemon: RunningDaemon, rpc: Wire, prefix: str) -> None:
    """demo: ends with the tables and a summary, its own state cleaned up; a rerun too."""
    first = await registryd(prefix, "demo")
    second = await registryd(prefix, "demo")
    assert (0, 0) == (first.code, second.code), first.err + second.err
    summaries = [SUMMARY.match(run.out.splitlines()[-1]) for run in (first, second)]
    assert [m is not None and int(m[1]) > 0 for m in summaries] == [True, True], summaries
    last = summaries[1]
    assert last is not None
    assert int(last[2]) == (await rpc.ok("ping"))["revision"]
    workers = await rpc.ok("getWorkers")
    assert [f"demo-worker-{n}" for n in (1, 2, 3, 4)] == [w["name"] for w in workers]
    idle = {"paused": False, "graceful": False, "connected_to": [], "configured_on": []}
    assert [idle] * 4 == [{k: w[k] for k in idle} for w in workers]
    masters = await rpc.ok("getMasters")
    assert [(9001, False), (9002, False)] == [(m["id"], m["active"]) for m in masters]
    assert "-- workers" in first.out.splitlines()


async def test_commands_without_a_daemon_fail_in_one_line(prefix: str) -> None:
    """No daemon on the prefix: every command exits 3 with one line on stderr, no secrets."""
    commands = [
        ["workers"],
        ["worker", "1"],
        ["masters", "--json"],
        ["watch"],
        ["demo"],
    ]
    runs = await asyncio.gather(*(registryd(prefix, *args) for args in commands))
    for args, run in zip(commands, runs, strict=True):
        assert (3, "") == (run.code, run.out), args
        assert 1 == len(run.err.splitlines()), (args, run.err)
        assert run.err.startswith(f"registryd: the daemon on prefix '{prefix}' is unavailable: ")
        assert "guest:guest" not in run.err


async def test_dead_letters_keep_the_routing_key_and_the_time(
    daemon: RunningDaemon, rpc: Wire, prefix: str
) -> None:
    """A dead letter keeps the routing key it was published with; its error says when.

    The protocol adds one header only, ``{"code", "message"}``: the time ends the message.
    """
    before = datetime.now(UTC)
    await rpc.event({"type": "nope"}, routing_key="custom.key", message_id="rk-1")
    await _dead_letters_reach(rpc.channel, Names(prefix), 1)
    message = await (await rpc.channel.declare_queue(Names(prefix).dead, passive=True)).get()
    await message.nack(requeue=True)
    headers = message.headers or {}
    error = json.loads(str(headers["x-registry-error"]))
    at = rejected_at(error["message"])
    assert at is not None, error
    assert "custom.key" == message.routing_key
    assert before - timedelta(seconds=1) <= datetime.fromisoformat(at) <= datetime.now(UTC)
    assert at.endswith("Z")
    assert ({"x-registry-error"}, ["code", "message"]) == (set(headers), sorted(error))


async def _three_dead_letters(rpc: Wire, prefix: str) -> None:
    for n in range(3):
        await rpc.event({"type": "nope"}, message_id=f"dl-{n}")
    await _dead_letters_reach(rpc.channel, Names(prefix), 3)


async def test_drop_by_message_id_leaves_the_others(
    daemon: RunningDaemon, rpc: Wire, prefix: str
) -> None:
    """dead-letters --drop --message-id: only that one goes; the others stay, in order."""
    await _three_dead_letters(rpc, prefix)
    dropped = await registryd(prefix, "dead-letters", "--drop", "--message-id", "dl-1", "--yes")
    left = await registryd(prefix, "dead-letters", "--json")
    assert (0, 0) == (dropped.code, left.code), dropped.err
    assert dropped.out.startswith("1. message_id=dl-1 ")
    assert ["dl-0", "dl-2"] == [m["message_id"] for m in left.json()]


async def test_an_unknown_message_id_is_not_found_and_changes_nothing(
    daemon: RunningDaemon, rpc: Wire, prefix: str
) -> None:
    """--message-id naming no dead letter: exit 1, and nothing is dropped."""
    await _three_dead_letters(rpc, prefix)
    run = await registryd(
        prefix, "dead-letters", "--drop", "--yes", "--message-id", "dl-0", "--message-id", "ghost"
    )
    assert 1 == run.code
    assert "no dead letter with message_id ghost" in run.err
    assert 3 == await _dead_count(rpc.channel, Names(prefix))


@pytest.mark.parametrize(("answer", "outcome"), [(b"", (4, 3)), (b"n\n", (4, 3)), (b"y\n", (0, 0))])
async def test_drop_asks_first(
    daemon: RunningDaemon, rpc: Wire, prefix: str, answer: bytes, outcome: tuple[int, int]
) -> None:
    """dead-letters --drop asks on stderr: only 'y' drops; no answer or 'n' is exit 4."""
    code, left = outcome
    await _three_dead_letters(rpc, prefix)
    run = await registryd(prefix, "dead-letters", "--drop", answer=answer)
    assert code == run.code, run.err
    assert f"Drop (delete for good) 3 dead letters of {prefix}.dead? [y/N]" in run.err
    assert left == await _dead_count(rpc.channel, Names(prefix))


async def test_prefix_option_picks_the_registry(
    daemon: RunningDaemon, rpc: Wire, prefix: str
) -> None:
    """--prefix, before or after the subcommand, wins over REGISTRYD_PREFIX."""
    await rpc.ok("findWorkerId", {"name": "here"})
    before, after = await asyncio.gather(
        registryd("elsewhere", "--prefix", prefix, "workers", "--json"),
        registryd("elsewhere", "workers", "--json", "--prefix", prefix),
    )
    assert (0, 0) == (before.code, after.code), before.err + after.err
    assert [["here"], ["here"]] == [[w["name"] for w in run.json()] for run in (before, after)]
