"""PROTOCOL.md v1, sentence by sentence, checked black-box.

Every test talks to registryd the way an outside program does: bare aio-pika on
``<prefix>.events``, ``<prefix>.rpc`` (named reply queue or ``amq.rabbitmq.reply-to``),
``<prefix>.notifications`` and ``<prefix>.dead``, plus ``python -m registryd serve|check``
subprocesses where a process is needed. Nothing here uses the daemon's models; its key
pattern serves only to clean up and to simulate lost data, and the in-process daemon
fixture is a faster way to run ``serve``. Tests are grouped by section
(``test_s<N>_...``); each docstring quotes the sentence it pins.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from pamqp.commands import Basic
from redis.asyncio import Redis

from registryd.config import Settings
from registryd.store import Keys
from tests.harness import (
    AMQP_URL,
    REGISTRYD,
    PrivateRedis,
    cli_env,
    free_port,
    start_daemon,
    wait_for,
)

pytestmark = pytest.mark.integration

Json = dict[str, Any]
MAX_ID = 2**53 - 1
WORKER_KEYS = [
    "id",
    "name",
    "workerinfo",
    "paused",
    "pause_reason",
    "graceful",
    "connected_to",
    "configured_on",
]
MASTER_KEYS = ["id", "name", "active", "last_seen"]
WORKER_CHANGE_KEYS = ["revision", "event", "workerid", "masterid", "worker"]
MASTER_CHANGE_KEYS = ["revision", "event", "masterid", "master"]


# -- an outside program's view of one registry ----------------------------------------------


@dataclass
class Note:
    """One notification as delivered."""

    key: str
    body: Json
    message: AbstractIncomingMessage


@dataclass
class Wire:
    """Events, RPC, notifications and dead letters of one prefix, over bare aio-pika."""

    prefix: str
    channel: AbstractChannel
    notes_inbox: asyncio.Queue[AbstractIncomingMessage] = field(default_factory=asyncio.Queue)
    dead_inbox: asyncio.Queue[AbstractIncomingMessage] = field(default_factory=asyncio.Queue)
    pending: dict[str, asyncio.Future[AbstractIncomingMessage]] = field(default_factory=dict)
    replies: list[AbstractIncomingMessage] = field(default_factory=list)
    reply_queue: AbstractQueue | None = None
    reset: Note | None = None

    @property
    def events(self) -> str:
        """``<prefix>.events``."""
        return f"{self.prefix}.events"

    @property
    def rpc(self) -> str:
        """``<prefix>.rpc``."""
        return f"{self.prefix}.rpc"

    @property
    def notifications(self) -> str:
        """``<prefix>.notifications``."""
        return f"{self.prefix}.notifications"

    @property
    def dead(self) -> str:
        """``<prefix>.dead``."""
        return f"{self.prefix}.dead"

    @classmethod
    async def subscribe(
        cls, connection: AbstractConnection, prefix: str, *, bind: bool = True
    ) -> Wire:
        """Bind ``#`` on the notifications exchange (declared as section 3 says) first."""
        channel = await connection.channel()
        wire = cls(prefix, channel)
        if not bind:
            return wire
        exchange = await channel.declare_exchange(
            wire.notifications, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "#")
        await queue.consume(wire.notes_inbox.put, no_ack=True)
        return wire

    async def attach(self) -> None:
        """Once the daemon has declared its names: a reply queue and the dead queue."""
        self.reply_queue = await self.channel.declare_queue(exclusive=True)
        await self.reply_queue.consume(self._on_reply, no_ack=True)
        dead = await self.channel.declare_queue(self.dead, passive=True)
        await dead.consume(self.dead_inbox.put, no_ack=True)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        self.replies.append(message)
        future = self.pending.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message)

    # RPC ---------------------------------------------------------------------------------

    async def request(
        self, body: bytes, *, timeout: float = 10.0, **props: Any
    ) -> AbstractIncomingMessage:
        """Publish a raw request body; the reply message."""
        assert self.reply_queue is not None
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[AbstractIncomingMessage] = asyncio.get_running_loop().create_future()
        self.pending[correlation_id] = future
        props.setdefault("content_type", "application/json")
        props.setdefault("reply_to", self.reply_queue.name)
        message = aio_pika.Message(body, correlation_id=correlation_id, **props)
        await self.channel.default_exchange.publish(message, routing_key=self.rpc)
        return await asyncio.wait_for(future, timeout)

    async def send(self, body: bytes, **props: Any) -> Json:
        """The decoded reply to a raw body."""
        reply: Json = json.loads((await self.request(body, **props)).body)
        return reply

    async def call(self, method: str, params: Json | None = None, **props: Any) -> Json:
        """The decoded reply to one method call."""
        request: Json = {"method": method}
        if params is not None:
            request["params"] = params
        return await self.send(json.dumps(request).encode(), **props)

    async def ok(self, method: str, params: Json | None = None, **props: Any) -> Any:
        """The result of a call that must succeed."""
        reply = await self.call(method, params, **props)
        assert reply.get("ok") is True, reply
        return reply["result"]

    async def code(self, method: str, params: Json | None = None, **props: Any) -> str:
        """The error code of a call that must fail."""
        reply = await self.call(method, params, **props)
        assert reply.get("ok") is False, reply
        return str(reply["error"]["code"])

    async def revision(self) -> int:
        """ping's revision."""
        return int((await self.ok("ping"))["revision"])

    # Events ------------------------------------------------------------------------------

    async def event(
        self, event: Json | bytes, *, routing_key: str | None = None, **props: Any
    ) -> None:
        """Publish one event as a master does: JSON, persistent, routing key = its type."""
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        if routing_key is None:
            routing_key = str(event.get("type", "x")) if isinstance(event, dict) else "x"
        props.setdefault("content_type", "application/json")
        props.setdefault("delivery_mode", aio_pika.DeliveryMode.PERSISTENT)
        exchange = await self.channel.get_exchange(self.events, ensure=False)
        await exchange.publish(aio_pika.Message(body, **props), routing_key=routing_key)

    async def settle(self, timeout: float = 10.0) -> list[AbstractIncomingMessage]:
        """Barrier: a bad sentinel event after the others; the dead letters that came first.

        Events are handled in queue order (section 4), so once the sentinel is dead-lettered
        every earlier event has been applied or dead-lettered.
        """
        sentinel = json.dumps({"sentinel": uuid.uuid4().hex}).encode()
        await self.event(sentinel)
        before: list[AbstractIncomingMessage] = []
        while True:
            message = await asyncio.wait_for(self.dead_inbox.get(), timeout)
            if message.body == sentinel:
                return before
            before.append(message)

    # Notifications -----------------------------------------------------------------------

    async def notes(self, count: int, timeout: float = 10.0) -> list[Note]:
        """The next ``count`` notifications."""
        out = []
        for _ in range(count):
            message = await asyncio.wait_for(self.notes_inbox.get(), timeout)
            out.append(Note(message.routing_key or "", json.loads(message.body), message))
        return out

    async def keys(self, count: int) -> list[str]:
        """The routing keys of the next ``count`` notifications."""
        return [note.key for note in await self.notes(count)]

    async def quiet(self) -> bool:
        """True when nothing more is published (a bounded wait: proving an absence)."""
        await self.ok("ping")
        await asyncio.sleep(0.3)
        return self.notes_inbox.empty()


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, amqp: AbstractConnection, *, fresh: bool = True, **update: Any
) -> AsyncIterator[Wire]:
    """A daemon with ``settings`` (updated) and a subscriber bound first (reset taken if fresh)."""
    wire = await Wire.subscribe(amqp, settings.prefix)
    running = await start_daemon(settings.model_copy(update=update))
    try:
        await wire.attach()
        if fresh:
            wire.reset = (await wire.notes(1))[0]
        yield wire
    finally:
        await running.stop()
        await wire.channel.close()


@pytest.fixture
async def wire(settings: Settings, redis: Redis, amqp: AbstractConnection) -> AsyncIterator[Wire]:
    """A fresh registry served in this loop; its reset notification already taken."""
    async with serving(settings, amqp) as connected:
        yield connected


async def _worker(wire: Wire, workerid: int) -> Json:
    worker = await wire.ok("getWorker", {"workerid": workerid})
    assert isinstance(worker, dict)
    return worker


def _record(
    wid: int,
    name: str,
    *,
    info: Json | None = None,
    paused: bool = False,
    reason: str | None = None,
    graceful: bool = False,
    conn: list[int] | None = None,
    cfg: list[tuple[int, int]] | None = None,
) -> Json:
    """A worker record; ``cfg`` is (masterid, builderid) pairs."""
    return {
        "id": wid,
        "name": name,
        "workerinfo": info or {},
        "paused": paused,
        "pause_reason": reason,
        "graceful": graceful,
        "connected_to": conn or [],
        "configured_on": [{"builderid": b, "masterid": m} for m, b in cfg or []],
    }


def _assert_worker_shape(worker: Json) -> None:
    """Section 1's shape: field order, JSON types, sorted lists without duplicates."""
    assert WORKER_KEYS == list(worker)
    assert type(worker["id"]) is int
    assert worker["id"] >= 1
    assert type(worker["name"]) is str
    assert type(worker["workerinfo"]) is dict
    assert type(worker["paused"]) is bool
    assert worker["pause_reason"] is None or type(worker["pause_reason"]) is str
    assert type(worker["graceful"]) is bool
    conn = worker["connected_to"]
    assert all(type(m) is int for m in conn)
    assert sorted(set(conn)) == conn
    pairs = worker["configured_on"]
    assert all(["builderid", "masterid"] == list(p) for p in pairs)
    keys = [(p["masterid"], p["builderid"]) for p in pairs]
    assert sorted(set(keys)) == keys


def _iso_utc(text: str) -> datetime:
    """Parse an ISO-8601 UTC timestamp; fail unless it says UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.utcoffset() == timedelta(0), text
    return moment


# -- subprocesses and a Redis of the test's own (sections 4, 5, 6 and 8) -------------------


def _http(port: int, path: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET on 127.0.0.1; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as reply:
            return int(reply.status), str(reply.headers.get("Content-Type", "")), reply.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), str(exc.headers.get("Content-Type", "")), exc.read()
    except OSError:
        return 0, "", b""


@dataclass
class Served:
    """A ``registryd serve`` subprocess, its metrics port and its log files."""

    process: subprocess.Popen[bytes]
    port: int
    err: Path
    out: Path

    async def health(self) -> int:
        """The /healthz status (0: nothing listens)."""
        return (await asyncio.to_thread(_http, self.port, "/healthz"))[0]

    async def stop(
        self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20
    ) -> tuple[int | None, float]:
        """Send ``sig``; the exit code (None: still running after ``timeout``) and the time."""
        started = time.monotonic()
        self.process.send_signal(sig)
        try:
            code: int | None = await asyncio.to_thread(self.process.wait, timeout)
        except subprocess.TimeoutExpired:
            code = None
        return code, time.monotonic() - started

    async def stopped(self) -> None:
        """SIGTERM, and the exit code must be 0 (the log's tail says why when it is not)."""
        code, _ = await self.stop()
        assert 0 == code, self.log()[-2000:]

    def log(self) -> str:
        """Everything it wrote to stderr."""
        return self.err.read_text(encoding="utf-8", errors="replace")

    def records(self) -> list[Json]:
        """Its log lines, each of which must be one JSON object."""
        records = []
        for line in self.log().splitlines():
            record = json.loads(line)
            assert isinstance(record, dict), line
            records.append(record)
        return records


@contextlib.contextmanager
def served(
    tmp_path: Path,
    prefix: str,
    *args: str,
    environ: dict[str, str] | None = None,
    port: int | None = None,
    **env: str,
) -> Iterator[Served]:
    """``registryd [ARGS] serve`` with ``cli_env(prefix, **env)`` (or ``environ``) and a port."""
    if environ is None:
        env.setdefault("REGISTRYD_METRICS_PORT", str(port or free_port()))
        environ = cli_env(prefix, **env)
    port = port or int(environ.get("REGISTRYD_METRICS_PORT", "0"))
    tag = uuid.uuid4().hex[:8]
    err, out = tmp_path / f"serve-{tag}.err", tmp_path / f"serve-{tag}.out"
    with err.open("wb") as err_file, out.open("wb") as out_file:
        process = subprocess.Popen(
            [*REGISTRYD, *args, "serve"], env=environ, stdout=out_file, stderr=err_file
        )
    try:
        yield Served(process, port, err, out)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def _wait_health(served_: Served, status: int, timeout: float = 20) -> None:
    async def reached() -> bool:
        assert served_.process.poll() is None, served_.log()
        return await served_.health() == status

    await wait_for(reached, timeout)


def _listening_ports(pid: int) -> set[tuple[str, int]]:
    """(local address hex, port) of the TCP sockets process ``pid`` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = str(fd.readlink())
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text(encoding="ascii").splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                address, port = fields[1].split(":")
                found.add((address, int(port, 16)))
    return found


POISON = b"[" * 2000  # 2 KiB that is not JSON, deeper than a recursive parser's default limit


async def _announce_after_reset(wire: Wire, count: int) -> list[Note]:
    """Write ``count`` new workers (each retried while unavailable); the notifications after."""
    for i in range(count):

        async def answered(name: str = f"again{i}") -> bool:
            reply = await wire.call("findWorkerId", {"name": name})
            assert reply["ok"] or reply["error"]["retryable"], reply
            return bool(reply["ok"])

        await wait_for(answered, 20)
    return await wire.notes(1 + count)


async def _epoch_eventually(wire: Wire) -> str:
    """ping's epoch, asking again while the reply is unavailable (stale Redis connections)."""
    epochs: list[str] = []

    async def answered() -> bool:
        reply = await wire.call("ping")
        if reply["ok"]:
            epochs.append(reply["result"]["epoch"])
        return bool(reply["ok"])

    await wait_for(answered, 10)
    return epochs[0]


# == Section 1: the worker record ==========================================================


async def test_s1_new_worker_has_the_record_shape_and_defaults(wire: Wire) -> None:
    """§1 "exactly this shape"; a new worker: workerinfo {}, paused false, null, graceful false."""
    wid = await wire.ok("findWorkerId", {"name": "zero"})
    assert type(wid) is int
    worker = await _worker(wire, wid)
    _assert_worker_shape(worker)
    assert _record(wid, "zero") == worker


async def test_s1_protocol_example_record_in_every_read(wire: Wire) -> None:
    """§1 "Every read returns workers in exactly this shape": the example, through every read."""
    wid = await wire.ok("findWorkerId", {"name": "zero"})
    await wire.ok(
        "workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {"host": "h1"}}
    )
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [21, 20]})
    expected = _record(wid, "zero", info={"host": "h1"}, conn=[10], cfg=[(10, 20), (10, 21)])
    reads = [
        await wire.ok("getWorker", {"workerid": wid}),
        await wire.ok("getWorker", {"name": "zero", "masterid": 10}),
        *await wire.ok("getWorkers"),
        *await wire.ok("getWorkers", {"masterid": 10}),
        *await wire.ok("getWorkers", {"paused": False}),
    ]
    notes = await wire.notes(3)
    changes = (await wire.ok("getChanges", {"since": 0}))["changes"]
    reads += [notes[-1].body["worker"], changes[-1]["worker"]]
    for worker in reads:
        _assert_worker_shape(worker)
        assert expected == worker


async def test_s1_ids_are_positive_distinct_and_ascending(wire: Wire) -> None:
    """§1 "id: positive integer, assigned by registryd, never reused"."""
    ids = [await wire.ok("findWorkerId", {"name": f"w{i}"}) for i in range(5)]
    assert all(type(i) is int and i >= 1 for i in ids)
    assert sorted(set(ids)) == ids


NAMES_OK = [
    "a",
    "Z",
    "_",
    "-",
    "a" * 50,
    "é" * 50,
    "\U0001f600" * 50,
    "\u00a0",
    "\u00a0x9",
    "日本語",
    "a-b_c9",
    "x\U0010ffff",
]


NAMES_BAD: list[object] = [
    "",
    "a" * 51,
    "é" * 51,
    "1a",
    "9",
    " a",
    "a b",
    "a\n",
    "\na",
    "a.b",
    "a/b",
    "a:b",
    "\u009f",
    "a\u009f",
    "a\t",
    "a\u0000",
    5,
    None,
    ["a"],
]


async def test_s1_names_follow_the_identifier_rule(wire: Wire) -> None:
    """§1 name: a 50-code-point identifier "matched in full, so a trailing newline is rejected"."""
    for name in NAMES_OK:
        wid = await wire.ok("findWorkerId", {"name": name})
        assert name == (await _worker(wire, wid))["name"]
        assert name == (await wire.ok("getWorker", {"name": name}))["name"]
    for bad in NAMES_BAD:
        assert "invalid_params" == await wire.code("findWorkerId", {"name": bad}), bad
    assert len(NAMES_OK) == len(await wire.ok("getWorkers"))


async def test_s1_names_are_case_sensitive(wire: Wire) -> None:
    """§1 "Names are case-sensitive"."""
    lower = await wire.ok("findWorkerId", {"name": "zero"})
    upper = await wire.ok("findWorkerId", {"name": "Zero"})
    assert lower != upper
    assert "Zero" == (await wire.ok("getWorker", {"name": "Zero"}))["name"]


async def test_s1_workerinfo_is_any_json_object(wire: Wire) -> None:
    """§1 "workerinfo: any JSON object" (§9: values may be null), returned as given."""
    info: Json = {
        "admin": None,
        "host": "h1",
        "access_uri": None,
        "version": "3.9.2",
        "list": [1, 2.5, True, None, {"ü": "日本"}],
        "big": 2**70,
        "neg": -7,
        "float": 1e100,
        "nested": {"a": {"b": {"c": []}}},
        "": "empty key",
    }
    wid = await wire.ok("findWorkerId", {"name": "info"})
    await wire.ok("workerConnected", {"workerid": wid, "masterid": 1, "workerinfo": info})
    notes = await wire.notes(2)
    changes = (await wire.ok("getChanges", {"since": 0}))["changes"]
    assert info == (await _worker(wire, wid))["workerinfo"]
    assert info == (await wire.ok("getWorkers", {"graceful": False}))[0]["workerinfo"]
    assert info == notes[1].body["worker"]["workerinfo"]
    assert info == changes[1]["worker"]["workerinfo"]


async def test_s1_workerinfo_may_nest(wire: Wire) -> None:
    """§1 "workerinfo: any JSON object": one nested 40 levels deep is stored as given."""
    info: Json = {"leaf": True}
    for level in range(39):
        info = {f"l{level}": info}
    wid = await wire.ok("findWorkerId", {"name": "deep"})
    reply = await wire.call("workerConnected", {"workerid": wid, "masterid": 1, "workerinfo": info})
    assert {"ok": True, "result": None} == reply
    assert info == (await _worker(wire, wid))["workerinfo"]


async def test_s1_connected_to_ascending_without_duplicates(wire: Wire) -> None:
    """§1 "connected_to: master ids, ascending, no duplicates" (numerically)."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    for masterid in [100, 9, 10, 10, MAX_ID, 1]:
        await wire.ok("workerConnected", {"workerid": wid, "masterid": masterid, "workerinfo": {}})
    assert [1, 9, 10, 100, MAX_ID] == (await _worker(wire, wid))["connected_to"]


async def test_s1_configured_on_sorted_by_master_then_builder(wire: Wire) -> None:
    """§1 configured_on "sorted by masterid then builderid, no duplicates"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    for masterid, builders in [(100, [3]), (9, [20, 3, 3, 100]), (10, [9]), (MAX_ID, [MAX_ID, 2])]:
        await wire.ok(
            "workerConfigured", {"workerid": wid, "masterid": masterid, "builderids": builders}
        )
    pairs = [(p["masterid"], p["builderid"]) for p in (await _worker(wire, wid))["configured_on"]]
    assert [
        (9, 3),
        (9, 20),
        (9, 100),
        (10, 9),
        (100, 3),
        (MAX_ID, 2),
        (MAX_ID, MAX_ID),
    ] == pairs


async def test_s1_lists_are_sorted_by_ascending_id(wire: Wire) -> None:
    """§1 "Lists of workers are sorted by ascending id", with or without filters."""
    ids = [await wire.ok("findWorkerId", {"name": f"w{12 - i}"}) for i in range(12)]
    for wid in reversed(ids):
        await wire.ok("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [1]})
    for params in [None, {"masterid": 10}, {"builderid": 1}, {"paused": False}]:
        assert ids == [w["id"] for w in await wire.ok("getWorkers", params)]


async def test_s1_master_and_builder_ids_need_no_announcement(wire: Wire) -> None:
    """§1 master/builder ids: registryd "does not require them to be announced first"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 77, "builderids": [5]})
    await wire.ok("workerConnected", {"workerid": wid, "masterid": 77, "workerinfo": {}})
    assert [wid] == [w["id"] for w in await wire.ok("getWorkers", {"masterid": 77})]
    assert [] == await wire.ok("getMasters")


# == Section 2: operations and their meaning ===============================================


async def test_s2_concurrent_find_worker_id_gives_one_id(wire: Wire) -> None:
    """§2 findWorkerId: "Two concurrent calls with one new name get the same id"."""
    ids = await asyncio.gather(*(wire.ok("findWorkerId", {"name": "racy"}) for _ in range(30)))
    assert 1 == len(set(ids))
    assert [f"workers.{ids[0]}.new"] == await wire.keys(1)
    assert 1 == await wire.revision()
    assert await wire.quiet()


async def test_s2_get_worker_by_id_and_or_name(wire: Wire) -> None:
    """§2 getWorker "with neither workerid nor name returns null; with both, both must match"."""
    a = await wire.ok("findWorkerId", {"name": "a"})
    b = await wire.ok("findWorkerId", {"name": "b"})
    assert await wire.ok("getWorker", {}) is None
    assert await wire.ok("getWorker") is None
    assert await wire.ok("getWorker", {"masterid": 10}) is None
    assert "a" == (await wire.ok("getWorker", {"workerid": a}))["name"]
    assert b == (await wire.ok("getWorker", {"name": "b"}))["id"]
    assert a == (await wire.ok("getWorker", {"workerid": a, "name": "a"}))["id"]
    assert await wire.ok("getWorker", {"workerid": a, "name": "b"}) is None
    assert await wire.ok("getWorker", {"workerid": 999}) is None
    assert await wire.ok("getWorker", {"name": "nobody"}) is None
    assert 2 == len(await wire.ok("getWorkers"))


async def _filter_fixture(wire: Wire) -> tuple[int, int, int, int]:
    """w1..w4: pairs, connections and flags that every pair filter can tell apart."""
    w1, w2, w3, w4 = [await wire.ok("findWorkerId", {"name": f"w{i}"}) for i in range(1, 5)]
    calls: list[tuple[str, Json]] = [
        ("workerConfigured", {"workerid": w1, "masterid": 10, "builderids": [20, 21]}),
        ("workerConfigured", {"workerid": w1, "masterid": 11, "builderids": [20]}),
        ("workerConfigured", {"workerid": w2, "masterid": 11, "builderids": [21]}),
        ("workerConfigured", {"workerid": w4, "masterid": 10, "builderids": [22]}),
        ("workerConnected", {"workerid": w1, "masterid": 10, "workerinfo": {}}),
        ("workerConnected", {"workerid": w1, "masterid": 11, "workerinfo": {}}),
        ("workerConnected", {"workerid": w2, "masterid": 10, "workerinfo": {}}),
        ("workerConnected", {"workerid": w3, "masterid": 10, "workerinfo": {}}),
        ("set_worker_paused", {"workerid": w4, "paused": True, "pause_reason": "r"}),
        ("set_worker_graceful", {"workerid": w4, "graceful": True}),
    ]
    for method, params in calls:
        await wire.ok(method, params)
    return w1, w2, w3, w4


def _view(workers: list[Json]) -> list[tuple[int, list[int], list[tuple[int, int]]]]:
    return [
        (
            w["id"],
            w["connected_to"],
            [(p["masterid"], p["builderid"]) for p in w["configured_on"]],
        )
        for w in workers
    ]


async def test_s2_get_workers_pair_filters_list_and_cut_down(wire: Wire) -> None:
    """§2 listed "only if at least one of its configured_on pairs matches every given filter"."""
    w1, w2, _, w4 = await _filter_fixture(wire)
    assert [
        (w1, [10], [(10, 20), (10, 21)]),
        (w4, [], [(10, 22)]),
    ] == _view(await wire.ok("getWorkers", {"masterid": 10}))
    assert [(w1, [10, 11], [(10, 20), (11, 20)])] == _view(
        await wire.ok("getWorkers", {"builderid": 20})
    )
    assert [(w2, [], [(11, 21)])] == _view(
        await wire.ok("getWorkers", {"masterid": 11, "builderid": 21})
    )
    assert [(w1, [10], [(10, 21)])] == _view(
        await wire.ok("getWorkers", {"masterid": 10, "builderid": 21})
    )
    assert [] == await wire.ok("getWorkers", {"masterid": 11, "builderid": 22})
    assert [] == await wire.ok("getWorkers", {"masterid": 12})


async def test_s2_get_workers_state_filters_and_no_filter(wire: Wire) -> None:
    """§2 paused/graceful "keep the workers whose flag equals the given boolean"; none: all."""
    w1, w2, w3, w4 = await _filter_fixture(wire)
    everyone = await wire.ok("getWorkers")
    assert [w1, w2, w3, w4] == [w["id"] for w in everyone]
    assert [w4] == [w["id"] for w in await wire.ok("getWorkers", {"paused": True})]
    assert [w1, w2, w3] == [w["id"] for w in await wire.ok("getWorkers", {"paused": False})]
    assert [w4] == [w["id"] for w in await wire.ok("getWorkers", {"graceful": True})]
    assert [w1, w2, w3] == [w["id"] for w in await wire.ok("getWorkers", {"graceful": False})]
    assert everyone[3] == (await wire.ok("getWorkers", {"paused": True, "graceful": True}))[0]
    assert [(w1, [10], [(10, 20), (10, 21)])] == _view(
        await wire.ok("getWorkers", {"masterid": 10, "paused": False})
    )
    assert [] == await wire.ok("getWorkers", {"paused": True, "graceful": False})


async def test_s2_get_worker_pair_filters(wire: Wire) -> None:
    """§2 getWorker: "masterid/builderid act as in getWorkers: no matching pair, null"."""
    w1, w2, w3, _ = await _filter_fixture(wire)
    assert [(w1, [11], [(11, 20)])] == _view(
        [await wire.ok("getWorker", {"workerid": w1, "masterid": 11})]
    )
    assert [(w1, [10, 11], [(10, 21)])] == _view(
        [await wire.ok("getWorker", {"name": "w1", "builderid": 21})]
    )
    assert await wire.ok("getWorker", {"workerid": w3, "masterid": 10}) is None
    assert await wire.ok("getWorker", {"workerid": w2, "masterid": 10}) is None
    assert await wire.ok("getWorker", {"workerid": w1, "masterid": 11, "builderid": 21}) is None


async def test_s2_worker_connected_semantics(wire: Wire) -> None:
    """§2 workerConnected adds the master once, "replaces workerinfo entirely", leaves the rest."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [1]})
    await wire.ok("set_worker_paused", {"workerid": wid, "paused": True, "pause_reason": "r"})
    await wire.ok("set_worker_graceful", {"workerid": wid, "graceful": True})
    await wire.ok(
        "workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {"a": 1, "b": 2}}
    )
    await wire.ok("workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {"c": 3}})
    expected = _record(
        wid, "w", info={"c": 3}, paused=True, reason="r", graceful=True, conn=[10], cfg=[(10, 1)]
    )
    assert expected == await _worker(wire, wid)


async def test_s2_worker_disconnected_semantics(wire: Wire) -> None:
    """§2 workerDisconnected "removes that one master and keeps workerinfo"; else a no-op."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    for masterid in (10, 11):
        await wire.ok(
            "workerConnected", {"workerid": wid, "masterid": masterid, "workerinfo": {"h": 1}}
        )
    await wire.ok("workerDisconnected", {"workerid": wid, "masterid": 10})
    assert _record(wid, "w", info={"h": 1}, conn=[11]) == await _worker(wire, wid)
    before = await wire.revision()
    assert {"ok": True, "result": None} == await wire.call(
        "workerDisconnected", {"workerid": wid, "masterid": 12}
    )
    assert before == await wire.revision()


async def test_s2_connection_tokens_make_only_stale_disconnects_no_ops(wire: Wire) -> None:
    """§2 a disconnect is stale "only when both ... name a connection and the two differ"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})

    async def connect(masterid: int, connection: str | None) -> None:
        params: Json = {"workerid": wid, "masterid": masterid, "workerinfo": {}}
        if connection is not None:
            params["connection"] = connection
        await wire.ok("workerConnected", params)

    async def disconnect(masterid: int, connection: str | None) -> list[int]:
        params: Json = {"workerid": wid, "masterid": masterid}
        if connection is not None:
            params["connection"] = connection
        await wire.ok("workerDisconnected", params)
        return list((await _worker(wire, wid))["connected_to"])

    await connect(10, "s-1")
    assert [10] == await disconnect(10, "s-0")  # stale: a late disconnect of an old session
    assert [] == await disconnect(10, "s-1")
    await connect(10, "s-2")
    assert [] == await disconnect(10, None)
    await connect(10, None)
    assert [] == await disconnect(10, "s-9")
    await connect(10, "a")
    await connect(11, "b")
    assert [10, 11] == await disconnect(11, "a")  # remembered per (worker, master)
    assert [10] == await disconnect(11, "b")


async def test_s2_connect_changing_only_the_connection_notifies_nothing(wire: Wire) -> None:
    """§2 "A connect that changes only the remembered connection ... notifies nothing"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    params: Json = {"workerid": wid, "masterid": 10, "workerinfo": {}, "connection": "s-1"}
    await wire.ok("workerConnected", params)
    await wire.notes(2)
    before = await wire.revision()
    await wire.ok("workerConnected", {**params, "connection": "s-2"})
    assert before == await wire.revision()
    assert await wire.quiet()
    await wire.ok("workerDisconnected", {"workerid": wid, "masterid": 10, "connection": "s-1"})
    assert [10] == (await _worker(wire, wid))["connected_to"]  # s-2 is now the remembered one
    await wire.ok("workerDisconnected", {"workerid": wid, "masterid": 10, "connection": "s-2"})
    assert [] == (await _worker(wire, wid))["connected_to"]


async def test_s2_connection_is_1_to_200_characters(wire: Wire) -> None:
    """§2 "connection (optional, opaque string of 1 to 200 characters)"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    base: Json = {"workerid": wid, "masterid": 10, "workerinfo": {}}
    await wire.ok("workerConnected", {**base, "connection": "x" * 200})
    await wire.ok("workerConnected", {**base, "connection": "é"})
    for bad in ["", "x" * 201, 5, ["s"]]:
        assert "invalid_params" == await wire.code("workerConnected", {**base, "connection": bad})
        assert "invalid_params" == await wire.code(
            "workerDisconnected", {"workerid": wid, "masterid": 10, "connection": bad}
        )


async def test_s2_worker_configured_replaces_this_masters_pairs_only(wire: Wire) -> None:
    """§2 workerConfigured "replaces this worker's builders on this master only"; [] and dups."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    other = await wire.ok("findWorkerId", {"name": "other"})
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [1, 2]})
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 11, "builderids": [5]})
    await wire.ok("workerConfigured", {"workerid": other, "masterid": 10, "builderids": [1]})
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [3, 3, 2]})
    assert _record(wid, "w", cfg=[(10, 2), (10, 3), (11, 5)]) == await _worker(wire, wid)
    assert _record(other, "other", cfg=[(10, 1)]) == await _worker(wire, other)
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": []})
    assert _record(wid, "w", cfg=[(11, 5)]) == await _worker(wire, wid)
    assert [other] == [w["id"] for w in await wire.ok("getWorkers", {"masterid": 10})]


async def test_s2_deconfigure_all_workers_for_master(wire: Wire) -> None:
    """§2 deconfigure: "removes every pair of that master from every worker", keeps connections."""
    a = await wire.ok("findWorkerId", {"name": "a"})
    b = await wire.ok("findWorkerId", {"name": "b"})
    await wire.ok("workerConfigured", {"workerid": a, "masterid": 10, "builderids": [1, 2]})
    await wire.ok("workerConfigured", {"workerid": a, "masterid": 11, "builderids": [1]})
    await wire.ok("workerConfigured", {"workerid": b, "masterid": 10, "builderids": [3]})
    await wire.ok("workerConnected", {"workerid": b, "masterid": 10, "workerinfo": {}})
    await wire.ok("deconfigureAllWorkersForMaster", {"masterid": 10})
    assert _record(a, "a", cfg=[(11, 1)]) == await _worker(wire, a)
    assert _record(b, "b", conn=[10]) == await _worker(wire, b)
    assert [] == await wire.ok("getWorkers", {"masterid": 10})


async def test_s2_pause_and_graceful_are_stored_as_given(wire: Wire) -> None:
    """§2 pause: "stores paused and pause_reason exactly as given"; graceful "is independent"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})

    async def state(method: str, params: Json) -> tuple[bool, str | None, bool]:
        await wire.ok(method, {"workerid": wid, **params})
        worker = await _worker(wire, wid)
        return worker["paused"], worker["pause_reason"], worker["graceful"]

    assert (True, "maint ü", False) == await state(
        "set_worker_paused", {"paused": True, "pause_reason": "maint ü"}
    )
    assert (True, None, False) == await state("set_worker_paused", {"paused": True})
    assert (True, "", False) == await state(
        "set_worker_paused", {"paused": True, "pause_reason": ""}
    )
    assert (False, None, False) == await state("set_worker_paused", {"paused": False})
    assert (False, "why", False) == await state(
        "set_worker_paused", {"paused": False, "pause_reason": "why"}
    )
    assert (False, "why", True) == await state("set_worker_graceful", {"graceful": True})
    assert (True, None, True) == await state(
        "set_worker_paused", {"paused": True, "pause_reason": None}
    )
    assert (True, None, False) == await state("set_worker_graceful", {"graceful": False})


WRITES_ON_UNKNOWN_WORKER: list[tuple[str, Json]] = [
    ("workerConnected", {"workerid": 999, "masterid": 1, "workerinfo": {}}),
    ("workerDisconnected", {"workerid": 999, "masterid": 1}),
    ("workerConfigured", {"workerid": 999, "masterid": 1, "builderids": [1]}),
    ("workerConfigured", {"workerid": 999, "masterid": 1, "builderids": []}),
    ("set_worker_paused", {"workerid": 999, "paused": True}),
    ("set_worker_graceful", {"workerid": 999, "graceful": True}),
]


async def test_s2_writes_on_unknown_workers_are_not_found(wire: Wire) -> None:
    """§2 "Unknown worker ids on a write are an error (not_found), never orphan state"."""
    await wire.ok("findWorkerId", {"name": "known"})
    for method, params in WRITES_ON_UNKNOWN_WORKER:
        reply = await wire.call(method, params)
        assert ("not_found", False) == (reply["error"]["code"], reply["error"]["retryable"])
    assert 1 == await wire.revision()
    assert await wire.ok("getWorker", {"workerid": 999}) is None
    assert 1 == len(await wire.ok("getWorkers"))
    assert [] == await wire.ok("getWorkers", {"masterid": 1})
    assert [] == await wire.ok("getMasters")


async def test_s2_get_masters_shape_names_and_order(wire: Wire) -> None:
    """§2 getMasters {"id","name","active","last_seen"} by id; name null, renames, <= 200."""
    started = datetime.now(UTC)
    for masterid in (100, 9):
        await wire.ok("masterHeartbeat", {"masterid": masterid})
    await wire.ok("masterHeartbeat", {"masterid": 10, "name": "ci-1:/srv/master"})
    masters = await wire.ok("getMasters")
    assert [(9, None, True), (10, "ci-1:/srv/master", True), (100, None, True)] == [
        (m["id"], m["name"], m["active"]) for m in masters
    ]
    for master in masters:
        assert MASTER_KEYS == list(master)
        seen = _iso_utc(master["last_seen"])
        assert started - timedelta(seconds=5) <= seen <= datetime.now(UTC) + timedelta(seconds=5)
    await wire.ok("masterHeartbeat", {"masterid": 10, "name": "n" * 200})
    await wire.ok("masterHeartbeat", {"masterid": 9, "name": "renamed"})
    await wire.ok("masterHeartbeat", {"masterid": 9})
    names = {m["id"]: m["name"] for m in await wire.ok("getMasters")}
    assert ("renamed", "n" * 200) == (names[9], names[10])
    for bad in ["n" * 201, 5, True]:
        assert "invalid_params" == await wire.code("masterHeartbeat", {"masterid": 9, "name": bad})


async def test_s2_masters_seen_only_in_worker_ops_are_not_listed(wire: Wire) -> None:
    """§2 getMasters "lists the masters that have sent a heartbeat or been stopped"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    await wire.ok("workerConnected", {"workerid": wid, "masterid": 5, "workerinfo": {}})
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 6, "builderids": [1]})
    await wire.ok("deconfigureAllWorkersForMaster", {"masterid": 7})
    assert [] == await wire.ok("getMasters")
    await wire.ok("masterStopped", {"masterid": 8})
    assert [(8, False)] == [(m["id"], m["active"]) for m in await wire.ok("getMasters")]


async def _stop_fixture(wire: Wire, masterid: int) -> tuple[int, int, int, int]:
    """a connected+configured on the master, b configured only, c connected only, d elsewhere."""
    a, b, c, d = [await wire.ok("findWorkerId", {"name": n}) for n in "abcd"]
    await wire.ok("masterHeartbeat", {"masterid": masterid, "name": "m"})
    calls: list[tuple[str, Json]] = [
        ("workerConfigured", {"workerid": a, "masterid": masterid, "builderids": [1, 2]}),
        ("workerConfigured", {"workerid": a, "masterid": 99, "builderids": [1]}),
        ("workerConnected", {"workerid": a, "masterid": masterid, "workerinfo": {"h": "a"}}),
        ("workerConnected", {"workerid": a, "masterid": 99, "workerinfo": {"h": "a"}}),
        ("workerConfigured", {"workerid": b, "masterid": masterid, "builderids": [3]}),
        ("workerConnected", {"workerid": c, "masterid": masterid, "workerinfo": {}}),
        ("workerConfigured", {"workerid": d, "masterid": 99, "builderids": [1]}),
        ("set_worker_paused", {"workerid": a, "paused": True, "pause_reason": "kept"}),
    ]
    for method, params in calls:
        await wire.ok(method, params)
    await wire.notes(4 + 1 + len(calls))
    return a, b, c, d


async def test_s2_master_stopped_drops_the_master_everywhere_and_notifies(wire: Wire) -> None:
    """§2/§6 masterStopped drops the master everywhere; disconnected/configured, then stopped."""
    a, b, c, d = await _stop_fixture(wire, 10)
    before = [await _worker(wire, w) for w in (a, b, c, d)]
    await wire.ok("masterStopped", {"masterid": 10})
    notes = await wire.notes(4)
    assert [
        (f"workers.{a}.disconnected", 10),
        (f"workers.{b}.configured", 10),
        (f"workers.{c}.disconnected", 10),
        ("masters.10.stopped", 10),
    ] == [(n.key, n.body["masterid"]) for n in notes]
    after = [await _worker(wire, w) for w in (a, b, c, d)]
    assert (
        _record(a, "a", info={"h": "a"}, paused=True, reason="kept", conn=[99], cfg=[(99, 1)])
        == after[0]
    )
    assert (_record(b, "b"), _record(c, "c"), before[3]) == (after[1], after[2], after[3])
    assert [n.body["worker"] for n in notes[:3]] == after[:3]
    assert [(10, "m", False)] == [
        (m["id"], m["name"], m["active"]) for m in await wire.ok("getMasters")
    ]
    assert await wire.quiet()


async def test_s2_heartbeat_reactivates_an_inactive_master(wire: Wire) -> None:
    """§2 "A heartbeat from an inactive master makes it active again" (masters.<id>.active)."""
    await wire.ok("masterHeartbeat", {"masterid": 10, "name": "m"})
    await wire.ok("masterStopped", {"masterid": 10})
    await wire.ok("masterHeartbeat", {"masterid": 10})
    assert ["masters.10.active", "masters.10.stopped", "masters.10.active"] == await wire.keys(3)
    assert [(10, "m", True)] == [
        (m["id"], m["name"], m["active"]) for m in await wire.ok("getMasters")
    ]


async def test_s2_silent_master_expires_after_the_lease(
    settings: Settings, redis: Redis, amqp: AbstractConnection
) -> None:
    """§2 a master silent for the lease expires; "never sent a heartbeat never expires"."""
    async with serving(settings, amqp, master_lease=0.5) as wire:
        a, b, c, d = await _stop_fixture(wire, 10)
        await wire.ok("workerConfigured", {"workerid": d, "masterid": 55, "builderids": [7]})
        await wire.ok("masterHeartbeat", {"masterid": 20})
        await wire.notes(2)
        last_seen = (await wire.ok("getMasters"))[0]["last_seen"]

        async def keep_alive() -> None:  # master 20 keeps its lease alive meanwhile
            while True:
                await wire.ok("masterHeartbeat", {"masterid": 20})
                await asyncio.sleep(0.1)

        heartbeats = asyncio.create_task(keep_alive())
        try:
            notes = await wire.notes(4, timeout=5)
        finally:
            heartbeats.cancel()
        assert [
            f"workers.{a}.disconnected",
            f"workers.{b}.configured",
            f"workers.{c}.disconnected",
            "masters.10.expired",
        ] == [n.key for n in notes]
        assert all(10 == n.body["masterid"] for n in notes)
        masters = {m["id"]: m for m in await wire.ok("getMasters")}
        assert (False, True) == (masters[10]["active"], masters[20]["active"])
        assert last_seen == masters[10]["last_seen"]
        assert [d] == [w["id"] for w in await wire.ok("getWorkers", {"masterid": 55})]
        assert [] == await wire.ok("getWorkers", {"masterid": 10})
        assert notes[-1].body["master"] == masters[10]


# == Section 3: RabbitMQ names =============================================================


def _rabbitmqctl(*args: str) -> list[Json]:
    out = subprocess.run(
        ["rabbitmqctl", *args, "--formatter", "json", "-q"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    rows: list[Json] = json.loads(out)
    return rows


async def test_s3_names_kinds_and_arguments(wire: Wire) -> None:
    """§3 the names table: kinds, durability, quorum, single active consumer, bound with "#"."""
    queues, exchanges, bindings = await asyncio.gather(
        asyncio.to_thread(_rabbitmqctl, "list_queues", "name", "durable", "type", "arguments"),
        asyncio.to_thread(_rabbitmqctl, "list_exchanges", "name", "type", "durable"),
        asyncio.to_thread(
            _rabbitmqctl,
            "list_bindings",
            "source_name",
            "destination_name",
            "destination_kind",
            "routing_key",
        ),
    )
    q = {row["name"]: row for row in queues if row["name"].startswith(f"{wire.prefix}.")}
    x = {row["name"]: row for row in exchanges if row["name"].startswith(f"{wire.prefix}.")}
    assert {wire.events, wire.rpc, wire.dead} == set(q)
    assert {
        wire.events: ("topic", True),
        wire.notifications: ("topic", True),
        wire.dead: ("fanout", True),
    } == {name: (row["type"], row["durable"]) for name, row in x.items()}
    assert all(row["durable"] for row in q.values())
    assert "quorum" == q[wire.events]["type"]
    raw_args = q[wire.events]["arguments"]
    args = raw_args if isinstance(raw_args, dict) else {a[0]: a[-1] for a in raw_args}
    assert (True, wire.dead) == (args["x-single-active-consumer"], args["x-dead-letter-exchange"])
    assert args["x-delivery-limit"] >= 1
    ours = {
        (b["source_name"], b["destination_name"], b["routing_key"])
        for b in bindings
        if b["destination_name"] in (wire.events, wire.dead) and b["source_name"]
    }
    assert (wire.events, wire.events, "#") in ours
    assert wire.dead in {b[0] for b in ours if b[1] == wire.dead}  # fanout: any key routes


async def test_s3_clients_may_publish_once_the_daemon_has_run(
    settings: Settings, redis: Redis, amqp: AbstractConnection
) -> None:
    """§3 declared at start "so that a client may publish as soon as the daemon has run once"."""
    running = await start_daemon(settings)
    await running.stop()
    wire = await Wire.subscribe(amqp, settings.prefix)
    exchange = await wire.channel.get_exchange(wire.events, ensure=False)
    await exchange.publish(
        aio_pika.Message(b'{"type": "master.heartbeat", "masterid": 3}', delivery_mode=2),
        routing_key="master.heartbeat",
        mandatory=True,
    )
    async with serving(settings, amqp, fresh=False) as again:
        await again.settle()
        assert [3] == [m["id"] for m in await again.ok("getMasters")]
    await wire.channel.close()


# == Section 4: lifecycle events ===========================================================


async def test_s4_routing_key_is_not_checked(wire: Wire) -> None:
    """§4 "The body carries type; it decides ... The routing key ... is not checked"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    await wire.event(
        {"type": "worker.graceful", "workerid": wid, "graceful": True},
        routing_key="master.stopped",
    )
    await wire.event(
        {"type": "master.heartbeat", "masterid": 4, "name": "m"}, routing_key="no.such.key"
    )
    assert [] == await wire.settle()
    assert (await _worker(wire, wid))["graceful"] is True
    assert [4] == [m["id"] for m in await wire.ok("getMasters")]


async def test_s4_every_event_type_applies_like_its_rpc(wire: Wire) -> None:
    """§4 the event table: each type does what its RPC twin does."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    events: list[Json] = [
        {"type": "master.heartbeat", "masterid": 10, "name": "m"},
        {"type": "worker.configured", "workerid": wid, "masterid": 10, "builderids": [2, 1]},
        {"type": "worker.configured", "workerid": wid, "masterid": 12, "builderids": [5]},
        {"type": "worker.connected", "workerid": wid, "masterid": 10, "workerinfo": {"h": 1}},
        {"type": "worker.connected", "workerid": wid, "masterid": 11, "workerinfo": {"h": 2}},
        {"type": "worker.disconnected", "workerid": wid, "masterid": 11, "connection": "c"},
        {"type": "worker.paused", "workerid": wid, "paused": True, "pause_reason": "p"},
        {"type": "worker.graceful", "workerid": wid, "graceful": True},
        {"type": "master.deconfigured", "masterid": 12},
    ]
    for event in events:
        await wire.event(event)
    assert [] == await wire.settle()
    assert _record(
        wid,
        "w",
        info={"h": 2},
        paused=True,
        reason="p",
        graceful=True,
        conn=[10],
        cfg=[(10, 1), (10, 2)],
    ) == await _worker(wire, wid)
    await wire.event({"type": "master.stopped", "masterid": 10})
    assert [] == await wire.settle()
    assert _record(
        wid, "w", info={"h": 2}, paused=True, reason="p", graceful=True
    ) == await _worker(wire, wid)
    assert [(10, False)] == [(m["id"], m["active"]) for m in await wire.ok("getMasters")]


async def test_s4_replayed_message_id_is_acked_and_ignored(wire: Wire) -> None:
    """§4 a "message_id seen in the last 10 minutes (at least) is acknowledged and ignored"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    pause: Json = {"type": "worker.paused", "workerid": wid, "paused": True}
    await wire.event(pause, message_id="m-1")
    await wire.event({"type": "worker.paused", "workerid": wid, "paused": False}, message_id="m-2")
    await wire.notes(3)
    await wire.event(pause, message_id="m-1")
    await wire.event({"type": "master.heartbeat", "masterid": 3}, message_id="m-2")
    assert [] == await wire.settle()
    assert 3 == await wire.revision()
    assert (await _worker(wire, wid))["paused"] is False
    assert [] == await wire.ok("getMasters")
    assert await wire.quiet()
    assert (
        0
        == (
            await wire.channel.declare_queue(wire.events, passive=True)
        ).declaration_result.message_count
    )


async def test_s4_message_ids_survive_a_restart_and_stay_under_the_prefix(
    settings: Settings, redis: Redis, amqp: AbstractConnection
) -> None:
    """§4 "message_ids are remembered in Redis under the prefix, so they survive a restart"."""
    event: Json = {"type": "master.heartbeat", "masterid": 3, "name": "first"}
    async with serving(settings, amqp) as wire:
        await wire.event(event, message_id="once")
        await wire.settle()
    other = f"{settings.prefix}-b"
    try:
        async with serving(settings, amqp, fresh=False) as wire:
            await wire.event({**event, "name": "second"}, message_id="once")
            await wire.settle()
            assert [(3, "first")] == [(m["id"], m["name"]) for m in await wire.ok("getMasters")]
        async with serving(settings.model_copy(update={"prefix": other}), amqp) as wire_b:
            await wire_b.event({**event, "name": "second"}, message_id="once")
            await wire_b.settle()
            assert [(3, "second")] == [(m["id"], m["name"]) for m in await wire_b.ok("getMasters")]
    finally:
        channel = await amqp.channel()
        for queue in (f"{other}.events", f"{other}.rpc", f"{other}.dead"):
            await channel.queue_delete(queue)
        for exchange in (f"{other}.events", f"{other}.notifications", f"{other}.dead"):
            await channel.exchange_delete(exchange)
        await channel.close()
        keys = [k async for k in redis.scan_iter(match=Keys(other).pattern())]
        if keys:
            await redis.delete(*keys)


def _bad_events(wid: int) -> list[tuple[bytes, str]]:
    """Events that cannot be applied, with the code each must be dead-lettered with."""
    w = str(wid).encode()
    return [
        (b"", "bad_request"),
        (b"\xff\xfe{}", "bad_request"),
        (b"{not json", "bad_request"),
        (b"null", "bad_request"),
        (b"42", "bad_request"),
        (b"true", "bad_request"),
        (b'"worker.graceful"', "bad_request"),
        (b'[{"type": "master.heartbeat", "masterid": 1}]', "bad_request"),
        (b'{"workerid": ' + w + b', "graceful": true}', "bad_request"),
        (b'{"type": null, "masterid": 1}', "bad_request"),
        (b'{"type": 7}', "bad_request"),
        (b'{"type": ["master.heartbeat"], "masterid": 1}', "bad_request"),
        (b'{"type": "master.heartbeat", "masterid": NaN}', "bad_request"),
        (b'{"type": "master.heartbeat", "masterid": Infinity}', "bad_request"),
        (b'{"type": "worker.exploded", "workerid": ' + w + b"}", "unknown_type"),
        (b'{"type": "", "masterid": 1}', "unknown_type"),
        (b'{"type": "Master.Heartbeat", "masterid": 1}', "unknown_type"),
        (b'{"type": "masterHeartbeat", "masterid": 1}', "unknown_type"),
        (b'{"type": "findWorkerId", "name": "x"}', "unknown_type"),
        (b'{"type": "ping"}', "unknown_type"),
        (b'{"type": "worker.connected", "workerid": ' + w + b', "masterid": 1}', "invalid_params"),
        *[
            (
                b'{"type": "worker.connected", "workerid": '
                + w
                + b', "masterid": 1, "workerinfo": '
                + info
                + b"}",
                "invalid_params",
            )
            for info in (b"[]", b"null", b'"x"', b"1")
        ],
        *[
            (
                b'{"type": "master.heartbeat", "masterid": ' + ident + b"}",
                "invalid_params",
            )
            for ident in (b'"10"', b"10.0", b"true", b"0", b"-1", b"null", b"9007199254740992")
        ],
        *[
            (
                b'{"type": "worker.graceful", "workerid": ' + w + b', "graceful": ' + flag + b"}",
                "invalid_params",
            )
            for flag in (b"1", b"0", b'"yes"', b'"true"', b"null")
        ],
        (b'{"type": "worker.graceful", "workerid": ' + w + b"}", "invalid_params"),
        (
            b'{"type": "worker.graceful", "workerid": ' + w + b', "graceful": true, "x": 1}',
            "invalid_params",
        ),
        *[
            (
                b'{"type": "worker.configured", "workerid": '
                + w
                + b', "masterid": 1, "builderids": '
                + ids
                + b"}",
                "invalid_params",
            )
            for ids in (b'"1"', b"[true]", b"[1.0]", b'["1"]', b"{}", b"[0]", b"null")
        ],
        (b'{"type": "worker.configured", "workerid": ' + w + b', "masterid": 1}', "invalid_params"),
        (b'{"type": "worker.paused", "workerid": ' + w + b"}", "invalid_params"),
        (
            b'{"type": "worker.paused", "workerid": ' + w + b', "paused": true, "pause_reason": 5}',
            "invalid_params",
        ),
        (
            b'{"type": "worker.disconnected", "workerid": '
            + w
            + b', "masterid": 1, "connection": ""}',
            "invalid_params",
        ),
        (b'{"type": "master.deconfigured"}', "invalid_params"),
        (b'{"type": "master.stopped", "masterid": [10]}', "invalid_params"),
        (b'{"type": "master.stopped", "masterid": 10, "name": "m"}', "invalid_params"),
        (b'{"type": "master.heartbeat", "masterid": 1, "name": 5}', "invalid_params"),
        (
            b'{"type": "master.heartbeat", "masterid": 1, "name": "' + b"n" * 201 + b'"}',
            "invalid_params",
        ),
        (
            b'{"type": "worker.connected", "workerid": 999, "masterid": 1, "workerinfo": {}}',
            "not_found",
        ),
        (b'{"type": "worker.disconnected", "workerid": 999, "masterid": 1}', "not_found"),
        (
            b'{"type": "worker.configured", "workerid": 999, "masterid": 1, "builderids": []}',
            "not_found",
        ),
        (b'{"type": "worker.paused", "workerid": 999, "paused": false}', "not_found"),
        (b'{"type": "worker.graceful", "workerid": 999, "graceful": true}', "not_found"),
    ]


async def test_s4_bad_events_are_dead_lettered_once_with_their_code(wire: Wire) -> None:
    """§4 dead-lettered once, x-registry-error {"code","message"}; "never requeued in a loop"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    bad = _bad_events(wid)
    for i, (body, _) in enumerate(bad):
        await wire.event(body, message_id=f"bad-{i}", headers={"origin": "conformance"})
    dead = await wire.settle()
    got = []
    for message in dead:
        headers = dict(message.headers or {})
        error = json.loads(str(headers.pop("x-registry-error")))
        assert ["code", "message"] == sorted(error)
        assert isinstance(error["message"], str)
        assert error["message"]
        assert "x-death" not in headers
        got.append((message.body, error["code"], message.message_id, headers))
    expected = [
        (body, code, f"bad-{i}", {"origin": "conformance"}) for i, (body, code) in enumerate(bad)
    ]
    assert expected == got
    assert 1 == await wire.revision()
    queue = await wire.channel.declare_queue(wire.events, passive=True)
    assert 0 == queue.declaration_result.message_count


async def test_s4_dead_letter_keeps_body_and_every_property(wire: Wire) -> None:
    """§4 dead-lettered "byte for byte with its original properties (message_id included)"."""
    headers: Json = {
        "text": "ü",
        "int": 42,
        "negative": -7,
        "big": 2**40,
        "flag": True,
        "float": 1.5,
        "none": None,
        "list": [1, "a", False],
        "table": {"k": "v", "n": 2},
    }
    stamp = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    body = b'{"type": "worker.graceful", "workerid": 999, "graceful": true}'
    raw = await wire.channel.get_underlay_channel()
    await raw.basic_publish(
        body,
        exchange=wire.events,
        routing_key="any.key",
        properties=Basic.Properties(
            content_type="text/x-odd",
            content_encoding="identity",
            headers=headers,
            delivery_mode=1,
            priority=7,
            correlation_id="corr-1",
            reply_to="somewhere",
            expiration="3600000",
            message_id="mid-1",
            timestamp=stamp,
            message_type="custom-type",
            app_id="conformance",
        ),
    )
    (dead,) = await wire.settle()
    got = dict(dead.headers or {})
    error = json.loads(str(got.pop("x-registry-error")))
    assert ("not_found", headers) == (error["code"], got)
    assert body == dead.body
    assert (
        "text/x-odd",
        "identity",
        1,
        7,
        "corr-1",
        "somewhere",
        3600.0,
        "mid-1",
        "custom-type",
        "conformance",
    ) == (
        dead.content_type,
        dead.content_encoding,
        dead.delivery_mode,
        dead.priority,
        dead.correlation_id,
        dead.reply_to,
        dead.expiration,
        dead.message_id,
        dead.type,
        dead.app_id,
    )
    assert dead.timestamp is not None
    assert stamp == dead.timestamp.replace(tzinfo=UTC)


async def test_s4_dead_letter_keeps_the_exact_expiration(wire: Wire) -> None:
    """§4 "with its original properties": an expiration of "2097151" ms is kept exactly."""
    body = b'{"type": "worker.graceful", "workerid": 999, "graceful": true}'
    raw = await wire.channel.get_underlay_channel()
    await raw.basic_publish(
        body,
        exchange=wire.events,
        routing_key="worker.graceful",
        properties=Basic.Properties(
            content_type="application/json",
            delivery_mode=2,
            expiration="2097151",
            message_id="exp-1",
        ),
    )
    (dead,) = await wire.settle()
    assert float("2097151") / 1000 == dead.expiration  # aio-pika decodes the ms text to seconds


async def test_s4_dead_lettered_message_id_is_not_remembered(wire: Wire) -> None:
    """§4 "A dead-lettered event's message_id is not remembered, so ... published again"."""
    await wire.event({"type": "master.heartbeat", "masterid": "5"}, message_id="fix-me")
    assert 1 == len(await wire.settle())
    await wire.event({"type": "master.heartbeat", "masterid": 5}, message_id="fix-me")
    assert [] == await wire.settle()
    assert [5] == [m["id"] for m in await wire.ok("getMasters")]


async def test_s4_one_mib_is_the_limit(wire: Wire) -> None:
    """§4 bad_request "over 1 MiB": exactly 1 MiB applies, one byte more is dead-lettered."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    head = (
        b'{"type": "worker.connected", "workerid": %d, "masterid": 1, "workerinfo": {"pad": "' % wid
    )
    tail = b'"}}'
    exact = head + b"x" * (1024 * 1024 - len(head) - len(tail)) + tail
    over = head + b"y" * (1024 * 1024 + 1 - len(head) - len(tail)) + tail
    assert (1024 * 1024, 1024 * 1024 + 1) == (len(exact), len(over))
    await wire.event(exact)
    await wire.event(over)
    dead = await wire.settle()
    assert [(over, "bad_request")] == [
        (m.body, json.loads(str((m.headers or {})["x-registry-error"]))["code"]) for m in dead
    ]
    assert len(exact) - len(head) - len(tail) == len(
        (await _worker(wire, wid))["workerinfo"]["pad"]
    )


async def test_s4_deeply_nested_body_is_bad_request_not_a_crash(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§4 2 KiB of "[" (not JSON) is dead-lettered bad_request; "the daemon keeps running"."""
    with served(tmp_path, prefix) as serve:
        await _wait_health(serve, 200)
        wire = await Wire.subscribe(amqp, prefix, bind=False)
        await wire.attach()
        wid = await wire.ok("findWorkerId", {"name": "w"})
        await wire.event({"type": "worker.graceful", "workerid": wid, "graceful": True})
        await wire.event(POISON, message_id="poison")
        await wire.event({"type": "worker.paused", "workerid": wid, "paused": True})
        try:
            dead = await wire.settle(timeout=5)
        except TimeoutError:
            pytest.fail(f"no dead letter within 5 s; the daemon logged:\n{serve.log()[-1500:]}")
        assert [(POISON, "bad_request", False)] == [
            (
                m.body,
                json.loads(str((m.headers or {}).get("x-registry-error", "{}"))).get("code"),
                "x-death" in (m.headers or {}),
            )
            for m in dead
        ]
        worker = await _worker(wire, wid)
        assert (True, True) == (worker["graceful"], worker["paused"])
        await wire.channel.close()


async def test_s4_a_killed_daemon_loses_no_event_and_applies_none_twice(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§4 "A crash at any point loses no event; redelivery re-applies nothing twice" (SIGKILL)."""
    count = 1000
    wire = await Wire.subscribe(amqp, prefix, bind=False)
    with served(tmp_path, prefix) as first:
        await _wait_health(first, 200)
        await wire.attach()
        wid = await wire.ok("findWorkerId", {"name": "w"})
        for start in range(0, count, 100):  # alternating: applying one twice would be a change
            await asyncio.gather(
                *(
                    wire.event({"type": "worker.paused", "workerid": wid, "paused": i % 2 == 0})
                    for i in range(start, start + 100)
                )
            )
            if start == count // 2:

                async def begun() -> bool:
                    return await wire.revision() > count // 4

                await wait_for(begun)
                first.process.kill()  # SIGKILL mid-stream: no clean-up of any kind
        first.process.wait()
    with served(tmp_path, prefix) as second:
        await _wait_health(second, 200)
        assert [] == await wire.settle(timeout=30)
        assert 1 + count == await wire.revision()
        assert (await _worker(wire, wid))["paused"] is False
        await second.stopped()
    await wire.channel.close()


async def test_s4_s5_refused_messages_are_logged(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§4 a dead-lettered event is "logged"; §5 a request without reply_to "is logged"."""
    with served(tmp_path, prefix) as serve:
        await _wait_health(serve, 200)
        wire = await Wire.subscribe(amqp, prefix, bind=False)
        await wire.attach()
        await wire.event(b'{"type": "nonsense"}', message_id="logged-event-1")
        await wire.settle()
        await wire.channel.default_exchange.publish(
            aio_pika.Message(b'{"method": "ping"}', correlation_id="logged-request-1"),
            routing_key=wire.rpc,
        )
        await wire.ok("ping")
        await serve.stopped()
        log = serve.log()
        assert "logged-event-1" in log
        assert "logged-request-1" in log
        await wire.channel.close()


# == Section 5: RPC ========================================================================


async def test_s5_reply_goes_to_reply_to_with_the_correlation_id(wire: Wire) -> None:
    """§5 "Reply: to reply_to through the default exchange, same correlation_id"; envelopes."""
    assert wire.reply_queue is not None
    ok = await wire.request(b'{"method": "getWorkers", "params": {}}')
    bad = await wire.request(b'{"method": "getWorkers", "params": {"masterid": 0}}')
    for reply in (ok, bad):
        assert ("", wire.reply_queue.name) == (reply.exchange, reply.routing_key)
    ok_body, bad_body = json.loads(ok.body), json.loads(bad.body)
    assert {"ok": True, "result": []} == ok_body
    assert ["ok", "result"] == list(ok_body)
    assert ["ok", "error"] == list(bad_body)
    assert ["code", "message", "retryable"] == list(bad_body["error"])
    assert (False, "invalid_params", False) == (
        bad_body["ok"],
        bad_body["error"]["code"],
        bad_body["error"]["retryable"],
    )
    assert isinstance(bad_body["error"]["message"], str)
    assert bad_body["error"]["message"]
    assert sorted(r.correlation_id or "" for r in wire.replies) == sorted(
        r.correlation_id or "" for r in (ok, bad)
    )


async def test_s5_direct_reply_to_with_many_requests_in_flight(
    wire: Wire, amqp: AbstractConnection
) -> None:
    """§5 reply_to "amq.rabbitmq.reply-to"; "Many requests are served concurrently"."""
    channel = await amqp.channel()
    replies: dict[str, list[Json]] = {}
    done = asyncio.Event()
    count = 200

    async def on_reply(message: AbstractIncomingMessage) -> None:
        replies.setdefault(message.correlation_id or "", []).append(json.loads(message.body))
        if len(replies) == count:
            done.set()

    reply_to = await channel.get_queue("amq.rabbitmq.reply-to", ensure=False)
    await reply_to.consume(on_reply, no_ack=True)
    await asyncio.gather(
        *(
            channel.default_exchange.publish(
                aio_pika.Message(
                    json.dumps({"method": "findWorkerId", "params": {"name": f"w{i}"}}).encode(),
                    content_type="application/json",
                    reply_to="amq.rabbitmq.reply-to",
                    correlation_id=f"c-{i}",
                ),
                routing_key=wire.rpc,
            )
            for i in range(count)
        )
    )
    await asyncio.wait_for(done.wait(), 15)
    assert {f"c-{i}" for i in range(count)} == set(replies)
    assert all(1 == len(r) and r[0]["ok"] for r in replies.values())
    ids = {r[0]["result"] for r in replies.values()}
    assert count == len(ids)
    await channel.close()


async def test_s5_params_may_be_omitted_when_empty(wire: Wire) -> None:
    """§5 "params may be omitted when empty"."""
    for method in ("ping", "getWorkers", "getMasters", "getWorker"):
        assert (await wire.send(json.dumps({"method": method}).encode()))["ok"] is True
    assert "invalid_params" == await wire.code("findWorkerId")
    assert "invalid_params" == await wire.code("getChanges")


async def test_s5_every_operation_is_a_method(wire: Wire) -> None:
    """§5 "Every operation in section 2 is a method, plus ping ... and getChanges"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    calls: list[tuple[str, Json]] = [
        ("findWorkerId", {"name": "w"}),
        ("getWorker", {"workerid": wid}),
        ("getWorkers", {}),
        ("workerConnected", {"workerid": wid, "masterid": 1, "workerinfo": {}}),
        ("workerDisconnected", {"workerid": wid, "masterid": 1}),
        ("workerConfigured", {"workerid": wid, "masterid": 1, "builderids": [1]}),
        ("deconfigureAllWorkersForMaster", {"masterid": 1}),
        ("set_worker_paused", {"workerid": wid, "paused": True}),
        ("set_worker_graceful", {"workerid": wid, "graceful": True}),
        ("masterHeartbeat", {"masterid": 1}),
        ("masterStopped", {"masterid": 1}),
        ("getMasters", {}),
        ("ping", {}),
        ("getChanges", {"since": 0}),
    ]
    for method, params in calls:
        assert (await wire.call(method, params))["ok"] is True, method
    results = [await wire.call(m, p) for m, p in calls[3:11]]
    assert all({"ok": True, "result": None} == r for r in results)


RPC_BAD_REQUESTS: list[bytes] = [
    b"",
    b"not json",
    b"\xff\xfe",
    b"null",
    b"42",
    b'"getWorkers"',
    b"true",
    b'["getWorkers"]',
    b"{}",
    b'{"params": {}}',
    b'{"method": null}',
    b'{"method": 5}',
    b'{"method": ["ping"]}',
    b'{"method": {"name": "ping"}}',
    b'{"method": true}',
    b'{"method": "ping", "params": []}',
    b'{"method": "ping", "params": "x"}',
    b'{"method": "ping", "params": 1}',
    b'{"method": "ping", "params": true}',
    b'{"method": "getWorkers", "params": null}',
    b'{"method": "ping", "params": NaN}',
]


async def test_s5_bad_request_envelopes(wire: Wire) -> None:
    """§5 not an object, missing/non-string method, non-object params: bad_request."""
    for body in RPC_BAD_REQUESTS:
        reply = await wire.send(body)
        assert ("bad_request", False) == (
            reply["error"]["code"],
            reply["error"]["retryable"],
        ), body


async def test_s5_deeply_nested_request_is_bad_request(wire: Wire) -> None:
    """§5 a body that is not JSON (2 KiB of "[") is bad_request, retryable false."""
    reply = await wire.send(b"[" * 2000)
    assert ("bad_request", False) == (reply["error"]["code"], reply["error"]["retryable"])


async def test_s5_unknown_methods(wire: Wire) -> None:
    """§5 error code unknown_method (retryable false) for names that are not methods."""
    for method in ["dropTables", "", "getworkers", "GetWorkers", "worker.connected", "__init__"]:
        reply = await wire.call(method, {})
        assert ("unknown_method", False) == (
            reply["error"]["code"],
            reply["error"]["retryable"],
        ), method


def _strict_cases(wid: int) -> list[tuple[str, Json]]:
    """Params that are invalid_params: ill-typed, out of range, unknown or missing."""
    ids: list[object] = [True, False, 10.0, "10", 0, -1, None, 2**53, [1], {"id": 1}]
    flags: list[object] = [1, 0, "yes", "true", None, [True]]
    cases: list[tuple[str, Json]] = []
    for bad in ids:
        cases += [
            ("getWorkers", {"masterid": bad}) if bad is not None else ("workerDisconnected", {}),
            ("getWorker", {"builderid": bad}) if bad is not None else ("getWorker", {"x": 1}),
            ("workerConfigured", {"workerid": wid, "masterid": bad, "builderids": []}),
            ("workerConfigured", {"workerid": wid, "masterid": 1, "builderids": [bad]}),
            ("set_worker_graceful", {"workerid": bad, "graceful": True}),
            ("masterHeartbeat", {"masterid": bad}),
        ]
    for bad in flags:
        cases += [
            ("getWorkers", {"paused": bad}) if bad is not None else ("getWorkers", {"x": None}),
            ("set_worker_paused", {"workerid": wid, "paused": bad}),
            ("set_worker_graceful", {"workerid": wid, "graceful": bad}),
        ]
    return [
        *cases,
        ("getWorker", {"paused": True}),
        ("getWorker", {"graceful": False}),
        ("getWorker", {"workerid": wid, "paused": False}),
        ("getWorkers", {"name": "w"}),
        ("getWorkers", {"workerid": wid}),
        ("ping", {"x": 1}),
        ("getMasters", {"masterid": 1}),
        ("findWorkerId", {"name": "w", "extra": True}),
        ("workerConnected", {"workerid": wid, "masterid": 1}),
        ("workerConnected", {"workerid": wid, "masterid": 1, "workerinfo": []}),
        ("workerConnected", {"workerid": wid, "masterid": 1, "workerinfo": "{}"}),
        ("workerConfigured", {"workerid": wid, "masterid": 1, "builderids": 5}),
        ("workerConfigured", {"workerid": wid, "masterid": 1}),
        ("set_worker_paused", {"workerid": wid, "paused": True, "pause_reason": 5}),
        ("deconfigureAllWorkersForMaster", {}),
        ("masterStopped", {"masterid": 1, "name": "x"}),
    ]


async def test_s5_params_are_strict(wire: Wire) -> None:
    """§5 "an unknown or ill-typed param is invalid_params (so getWorker takes no paused ...)"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    for method, params in _strict_cases(wid):
        reply = await wire.call(method, params)
        assert ("invalid_params", False) == (
            reply.get("error", {}).get("code"),
            reply.get("error", {}).get("retryable"),
        ), (method, params)
    assert 1 == await wire.revision()


async def test_s5_ids_at_the_bounds_are_accepted(wire: Wire) -> None:
    """§4/§5 "Ids are >= 1": 1 and 2**53-1 are ids (README: ids up to 2**53-1)."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    for masterid in (1, MAX_ID):
        await wire.ok(
            "workerConfigured", {"workerid": wid, "masterid": masterid, "builderids": [1]}
        )
    assert [wid] == [w["id"] for w in await wire.ok("getWorkers", {"masterid": MAX_ID})]


async def test_s5_exactly_one_reply_per_request(wire: Wire) -> None:
    """§5 "Every request with a reply_to ... gets exactly one reply, errors included"."""
    bodies = [
        b'{"method": "ping"}',
        b"garbage",
        b'{"method": "nope"}',
        b'{"method": "getWorkers", "params": {"masterid": "1"}}',
        b'{"method": "set_worker_paused", "params": {"workerid": 5, "paused": true}}',
        b'{"method": "findWorkerId", "params": {"name": "w"}}',
    ] * 10
    replies = await asyncio.gather(*(wire.request(body) for body in bodies))
    assert len(bodies) == len({r.correlation_id for r in replies})
    await asyncio.sleep(0.3)  # proving an absence: no second reply to any request
    assert len(bodies) == len(wire.replies)


async def test_s5_request_without_reply_to_is_dropped(wire: Wire) -> None:
    """§5 "a request without reply_to is logged and dropped" (not executed)."""
    await wire.channel.default_exchange.publish(
        aio_pika.Message(
            b'{"method": "findWorkerId", "params": {"name": "ghost"}}',
            content_type="application/json",
            correlation_id="no-reply",
        ),
        routing_key=wire.rpc,
    )
    assert [] == await wire.ok("getWorkers")
    assert 0 == await wire.revision()
    queue = await wire.channel.declare_queue(wire.rpc, passive=True)
    assert 0 == queue.declaration_result.message_count


async def test_s5_expired_request_is_discarded(
    settings: Settings, redis: Redis, amqp: AbstractConnection
) -> None:
    """§5 "a request whose expiration ran out in the queue is discarded ... and gets none"."""
    running = await start_daemon(settings)
    await running.stop()  # the names exist; nobody consumes the rpc queue now
    wire = await Wire.subscribe(amqp, settings.prefix, bind=False)
    await wire.attach()
    stale = asyncio.ensure_future(
        wire.request(b'{"method": "findWorkerId", "params": {"name": "stale"}}', expiration=0.05)
    )
    await asyncio.sleep(0.3)  # bounded: it must expire while nobody consumes
    async with serving(settings, amqp, fresh=False) as live:
        assert [] == await live.ok("getWorkers")
        await asyncio.sleep(0.3)  # proving an absence: no late reply either
        assert not stale.done()
        stale.cancel()
    await wire.channel.close()


async def test_s5_reads_do_not_wait_behind_the_event_stream(
    settings: Settings, redis: Redis, amqp: AbstractConnection
) -> None:
    """§5 "reads never wait behind the event stream": getMasters answers at once over a backlog."""
    running = await start_daemon(settings)
    await running.stop()
    channel = await amqp.channel(publisher_confirms=False)
    exchange = await channel.get_exchange(f"{settings.prefix}.events", ensure=False)
    for i in range(5000):
        event = {"type": "master.heartbeat", "masterid": i % 50 + 1}
        await exchange.publish(
            aio_pika.Message(json.dumps(event).encode(), delivery_mode=2),
            routing_key="master.heartbeat",
        )
    async with serving(settings, amqp, fresh=False) as wire:
        started = time.monotonic()
        await wire.ok("getMasters")
        took = time.monotonic() - started
        backlog = (await channel.declare_queue(wire.events, passive=True)).declaration_result
        assert took < 0.5
        assert backlog.message_count is not None
        assert backlog.message_count > 0
    await channel.close()


async def test_s5_requests_after_redis_came_back_are_answered(
    settings: Settings, amqp: AbstractConnection, private_redis: PrivateRedis
) -> None:
    """§5 unavailable is for "a backend is down": once Redis is back, requests are served."""
    await private_redis.start()
    async with serving(settings, amqp, redis_url=private_redis.url) as wire:
        await asyncio.gather(*(wire.ok("getWorkers") for _ in range(60)))
        private_redis.kill()
        await private_redis.start()
        await _epoch_eventually(wire)
        replies = await asyncio.gather(*(wire.call("getWorkers") for _ in range(60)))
        assert [] == [r["error"] for r in replies if not r["ok"]]


# == Section 6: change notifications =======================================================


def _assert_note_shape(note: Note) -> None:
    """Persistent JSON; the routing key names the subject and event; the body's field order."""
    assert aio_pika.DeliveryMode.PERSISTENT == note.message.delivery_mode
    assert "application/json" == note.message.content_type
    body = note.body
    if note.key.startswith("workers."):
        assert WORKER_CHANGE_KEYS == list(body)
        assert f"workers.{body['workerid']}.{body['event']}" == note.key
        assert body["worker"]["id"] == body["workerid"]
        _assert_worker_shape(body["worker"])
    else:
        assert MASTER_CHANGE_KEYS == list(body)
        assert f"masters.{body['masterid']}.{body['event']}" == note.key
        assert MASTER_KEYS == list(body["master"])
        assert body["master"]["id"] == body["masterid"]


async def test_s6_notifications_are_persistent_json_with_contiguous_revisions(wire: Wire) -> None:
    """§6 "routing key workers.<id>.<event> a persistent JSON message"; revisions without gaps."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    calls: list[tuple[str, Json]] = [
        ("masterHeartbeat", {"masterid": 10, "name": "m"}),
        ("workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {"h": 1}}),
        ("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [1]}),
        ("set_worker_paused", {"workerid": wid, "paused": True}),
        ("workerDisconnected", {"workerid": wid, "masterid": 10}),
        ("masterStopped", {"masterid": 10}),
    ]
    for method, params in calls:
        await wire.ok(method, params)
    notes = await wire.notes(8)
    for note in notes:
        _assert_note_shape(note)
    assert list(range(1, 9)) == [n.body["revision"] for n in notes]
    assert 8 == await wire.revision()


async def test_s6_each_command_names_its_notification(wire: Wire) -> None:
    """§6 each notification is "named after the command"; "masterid is always present"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    calls: list[tuple[str, Json]] = [
        ("workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {}}),
        ("workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {"new": "info"}}),
        ("workerConnected", {"workerid": wid, "masterid": 11, "workerinfo": {"new": "info"}}),
        ("workerDisconnected", {"workerid": wid, "masterid": 11}),
        ("workerConfigured", {"workerid": wid, "masterid": 12, "builderids": [1]}),
        ("workerConfigured", {"workerid": wid, "masterid": 12, "builderids": []}),
        ("workerConfigured", {"workerid": wid, "masterid": 13, "builderids": [2]}),
        ("deconfigureAllWorkersForMaster", {"masterid": 13}),
        ("set_worker_paused", {"workerid": wid, "paused": True}),
        ("set_worker_paused", {"workerid": wid, "paused": True, "pause_reason": "only reason"}),
        ("set_worker_graceful", {"workerid": wid, "graceful": True}),
        ("masterHeartbeat", {"masterid": 14}),
    ]
    for method, params in calls:
        await wire.ok(method, params)
    notes = await wire.notes(1 + len(calls))
    w = f"workers.{wid}."
    assert [
        (w + "new", None),
        (w + "connected", 10),
        (w + "connected", 10),
        (w + "connected", 11),
        (w + "disconnected", 11),
        (w + "configured", 12),
        (w + "configured", 12),
        (w + "configured", 13),
        (w + "configured", 13),
        (w + "state_updated", None),
        (w + "state_updated", None),
        (w + "state_updated", None),
        ("masters.14.active", 14),
    ] == [(n.key, n.body["masterid"]) for n in notes]
    assert all("masterid" in n.body for n in notes)


async def test_s6_notified_worker_is_the_full_unfiltered_record(wire: Wire) -> None:
    """§6 "worker": "the full, unfiltered worker record after the change"."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    for masterid in (10, 11):
        await wire.ok("workerConnected", {"workerid": wid, "masterid": masterid, "workerinfo": {}})
        await wire.ok(
            "workerConfigured", {"workerid": wid, "masterid": masterid, "builderids": [masterid]}
        )
    await wire.ok("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [1, 2]})
    last = (await wire.notes(6))[-1]
    assert await _worker(wire, wid) == last.body["worker"]
    assert [10, 11] == last.body["worker"]["connected_to"]


async def test_s6_commands_that_change_nothing_publish_nothing(wire: Wire) -> None:
    """§6 "A command that changes nothing ... publishes nothing" (and takes no revision)."""
    wid = await wire.ok("findWorkerId", {"name": "w"})
    setup: list[tuple[str, Json]] = [
        ("workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {"a": 1, "b": [2]}}),
        ("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [1, 2]}),
        ("set_worker_paused", {"workerid": wid, "paused": True, "pause_reason": "r"}),
        ("set_worker_graceful", {"workerid": wid, "graceful": True}),
        ("masterHeartbeat", {"masterid": 10, "name": "m"}),
    ]
    for method, params in setup:
        await wire.ok(method, params)
    await wire.event(
        {"type": "worker.graceful", "workerid": wid, "graceful": False}, message_id="r1"
    )
    await wire.settle()
    await wire.notes(7)
    before = await wire.revision()
    no_ops: list[tuple[str, Json]] = [
        ("workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {"b": [2], "a": 1}}),
        ("workerDisconnected", {"workerid": wid, "masterid": 11}),
        ("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [2, 1, 1]}),
        ("workerConfigured", {"workerid": wid, "masterid": 12, "builderids": []}),
        ("deconfigureAllWorkersForMaster", {"masterid": 30}),
        ("set_worker_paused", {"workerid": wid, "paused": True, "pause_reason": "r"}),
        ("set_worker_graceful", {"workerid": wid, "graceful": False}),
        ("findWorkerId", {"name": "w"}),
        ("masterHeartbeat", {"masterid": 10}),
        ("masterHeartbeat", {"masterid": 10, "name": "m"}),
    ]
    for method, params in no_ops:
        await wire.ok(method, params)
    await wire.event(
        {"type": "worker.graceful", "workerid": wid, "graceful": True}, message_id="r1"
    )
    assert [] == await wire.settle()
    assert before == await wire.revision()
    assert await wire.quiet()


async def test_s6_master_notifications_carry_the_get_masters_record(wire: Wire) -> None:
    """§6 masters.<id>.active/stopped carry "master as in getMasters"."""
    await wire.ok("masterHeartbeat", {"masterid": 10, "name": "m"})
    (active,) = await wire.notes(1)
    listed_active = (await wire.ok("getMasters"))[0]
    await wire.ok("masterStopped", {"masterid": 10})
    (stopped,) = await wire.notes(1)
    listed_stopped = (await wire.ok("getMasters"))[0]
    for note in (active, stopped):
        _assert_note_shape(note)
    assert ("masters.10.active", listed_active) == (active.key, active.body["master"])
    assert ("masters.10.stopped", listed_stopped) == (stopped.key, stopped.body["master"])
    assert (True, False) == (listed_active["active"], listed_stopped["active"])


async def test_s6_get_changes_pages_the_notification_bodies(wire: Wire) -> None:
    """§6 getChanges: bodies "with revision > N in order, at most limit" (default 100)."""
    await asyncio.gather(*(wire.ok("findWorkerId", {"name": f"w{i}"}) for i in range(150)))
    await wire.ok("masterHeartbeat", {"masterid": 10})
    notes = await wire.notes(151)
    bodies = [n.body for n in notes]

    async def page(**params: int) -> Json:
        result: Json = await wire.ok("getChanges", params)
        assert ["revision", "changes"] == list(result)
        assert 151 == result["revision"]
        return result

    assert bodies[:100] == (await page(since=0))["changes"]
    assert bodies[100:] == (await page(since=100))["changes"]
    assert bodies == (await page(since=0, limit=1000))["changes"]
    assert bodies[:1] == (await page(since=0, limit=1))["changes"]
    assert bodies[150:] == (await page(since=150, limit=1))["changes"]
    assert bodies[42:52] == (await page(since=42, limit=10))["changes"]
    for since in (151, 152, 10**6, 2**63):
        assert [] == (await page(since=since))["changes"]


async def test_s6_get_changes_params_are_strict(wire: Wire) -> None:
    """§6 "N is an integer >= 0"; limit "1..1000"."""
    bad: list[Json] = [
        {},
        {"since": -1},
        {"since": 1.0},
        {"since": "1"},
        {"since": True},
        {"since": None},
        {"since": 0, "limit": 0},
        {"since": 0, "limit": 1001},
        {"since": 0, "limit": 1.5},
        {"since": 0, "limit": "10"},
        {"since": 0, "limit": True},
        {"since": 0, "extra": 1},
    ]
    for params in bad:
        assert "invalid_params" == await wire.code("getChanges", params), params
    assert {"revision": 0, "changes": []} == await wire.ok("getChanges", {"since": 0})


async def test_s6_first_start_publishes_reset_and_ping_reports_the_epoch(wire: Wire) -> None:
    """§6 first start: registry.reset {"event","epoch","revision": 0}; ping's epoch."""
    assert wire.reset is not None
    ping = await wire.ok("ping")
    assert ["version", "revision", "epoch"] == list(ping)
    assert isinstance(ping["version"], str)
    assert ping["version"]
    assert isinstance(ping["epoch"], str)
    assert ping["epoch"]
    assert 0 == ping["revision"]
    assert "registry.reset" == wire.reset.key
    assert {"event": "reset", "epoch": ping["epoch"], "revision": 0} == wire.reset.body
    assert ["event", "epoch", "revision"] == list(wire.reset.body)
    assert aio_pika.DeliveryMode.PERSISTENT == wire.reset.message.delivery_mode
    await wire.ok("findWorkerId", {"name": "first"})
    assert 1 == (await wire.notes(1))[0].body["revision"]


async def test_s6_old_history_requires_resync(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§6 "N is older than the retained history (at least the last 100,000 changes)": resync."""
    with served(tmp_path, prefix) as serve:  # a process of its own: 100,000 changes go fast
        await _wait_health(serve, 200)
        wire = await Wire.subscribe(amqp, prefix, bind=False)  # 100,000 notifications: no
        await wire.attach()
        workers = 1000
        ids: list[int] = []
        for start in range(0, workers, 250):
            ids += await asyncio.gather(
                *(wire.ok("findWorkerId", {"name": f"w{i}"}) for i in range(start, start + 250))
            )
        channel = await amqp.channel(publisher_confirms=False)
        raw = await channel.get_underlay_channel()
        rounds = 50  # each: every worker configured on master 7, then master 7 deconfigured
        for builder in range(1, rounds + 1):
            for wid in ids:
                body = b'{"type":"worker.configured","workerid":%d,"masterid":7,"builderids":[%d]}'
                await raw.basic_publish(
                    body % (wid, builder), exchange=wire.events, routing_key="x"
                )
            deconfigure = b'{"type": "master.deconfigured", "masterid": 7}'
            await raw.basic_publish(deconfigure, exchange=wire.events, routing_key="x")
        current = workers + rounds * 2 * workers

        async def reached() -> bool:
            return await wire.revision() >= current

        await wait_for(reached, 60)
        reply = await wire.call("getChanges", {"since": 0})
        assert ("resync_required", False) == (
            reply.get("error", {}).get("code"),
            reply.get("error", {}).get("retryable"),
        )
        since = current - 100_000
        recent = await wire.ok("getChanges", {"since": since, "limit": 1})
        assert [since + 1] == [c["revision"] for c in recent["changes"]]
        await channel.close()
        await wire.channel.close()
        await serve.stopped()


async def test_s6_redis_back_empty_makes_a_new_epoch_announced_first(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection, private_redis: PrivateRedis
) -> None:
    """§6 Redis back empty: a new epoch, registry.reset first, revisions from 1, a warning."""
    await private_redis.start()
    wire = await Wire.subscribe(amqp, prefix)
    with served(tmp_path, prefix, REGISTRYD_REDIS_URL=private_redis.url) as serve:
        await _wait_health(serve, 200)
        await wire.attach()
        (first,) = await wire.notes(1)
        for i in range(3):
            await wire.ok("findWorkerId", {"name": f"old{i}"})
        await wire.notes(3)
        private_redis.kill()
        await private_redis.start()
        notes = await _announce_after_reset(wire, 5)
        epoch = await _epoch_eventually(wire)
        assert epoch != first.body["epoch"]
        assert [("registry.reset", 0)] + [(n.key, i) for i, n in enumerate(notes[1:], 1)] == [
            (n.key, n.body["revision"]) for n in notes
        ]
        assert {"event": "reset", "epoch": epoch, "revision": 0} == notes[0].body
        await serve.stopped()
        warnings = [r for r in serve.records() if r.get("level") == "warning"]
        assert any(epoch in json.dumps(r) for r in warnings), serve.log()
    await wire.channel.close()


async def test_s6_reset_precedes_the_new_epochs_changes_after_data_loss(
    redis: Redis, wire: Wire
) -> None:
    """§6 after data loss, no change of the new epoch is published before registry.reset."""
    for i in range(3):
        await wire.ok("findWorkerId", {"name": f"old{i}"})
    await wire.notes(3)
    keys = [key async for key in redis.scan_iter(match=Keys(wire.prefix).pattern())]
    await redis.delete(*keys)
    notes = await _announce_after_reset(wire, 5)
    assert ["registry.reset"] + [f"workers.{i}.new" for i in range(1, 6)] == [
        n.key for n in notes[:6]
    ]
    assert list(range(6)) == [n.body["revision"] for n in notes[:6]]


# == Section 7: authorization ==============================================================


async def test_s7_authorization_map_by_amqp_user_id(
    settings: Settings, redis: Redis, amqp: AbstractConnection
) -> None:
    """§7 writes need a user_id mapped to their master (any master if worker-only); reads open."""
    async with serving(settings, amqp, auth_masters={"guest": [10]}) as wire:
        me = {"user_id": "guest"}
        wid = await wire.ok("findWorkerId", {"name": "w"}, **me)
        allowed: list[tuple[str, Json]] = [
            ("masterHeartbeat", {"masterid": 10}),
            ("workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {}}),
            ("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [1]}),
            ("set_worker_paused", {"workerid": wid, "paused": True}),
            ("set_worker_graceful", {"workerid": wid, "graceful": True}),
            ("workerDisconnected", {"workerid": wid, "masterid": 10}),
            ("deconfigureAllWorkersForMaster", {"masterid": 10}),
            ("masterStopped", {"masterid": 10}),
        ]
        for method, params in allowed:
            await wire.ok(method, params, **me)
        refused: list[tuple[str, Json, dict[str, str]]] = [
            ("findWorkerId", {"name": "x"}, {}),
            ("set_worker_paused", {"workerid": wid, "paused": False}, {}),
            ("set_worker_graceful", {"workerid": wid, "graceful": False}, {}),
            ("masterHeartbeat", {"masterid": 11}, me),
            ("masterHeartbeat", {"masterid": 10}, {}),
            ("workerConnected", {"workerid": wid, "masterid": 11, "workerinfo": {}}, me),
            ("workerDisconnected", {"workerid": wid, "masterid": 11}, me),
            ("workerConfigured", {"workerid": wid, "masterid": 11, "builderids": []}, me),
            ("deconfigureAllWorkersForMaster", {"masterid": 11}, me),
            ("masterStopped", {"masterid": 11}, me),
        ]
        before = await wire.revision()
        for method, params, props in refused:
            reply = await wire.call(method, params, **props)
            assert ("forbidden", False) == (
                reply["error"]["code"],
                reply["error"]["retryable"],
            ), method
        for method in ("getWorkers", "getMasters", "ping"):
            assert (await wire.call(method))["ok"] is True
        assert (await wire.call("getWorker", {"workerid": wid}))["ok"] is True
        assert (await wire.call("getChanges", {"since": 0}))["ok"] is True
        assert before == await wire.revision()


async def test_s7_refused_events_are_dead_lettered_forbidden(
    settings: Settings, redis: Redis, amqp: AbstractConnection
) -> None:
    """§7 "Refused events are dead-lettered with code forbidden"; accepted ones apply."""
    async with serving(settings, amqp, auth_masters={"guest": [10]}) as wire:
        wid = await wire.ok("findWorkerId", {"name": "w"}, user_id="guest")
        refused: list[tuple[Json, str | None]] = [
            ({"type": "master.heartbeat", "masterid": 11}, "guest"),
            ({"type": "master.heartbeat", "masterid": 10}, None),
            ({"type": "worker.graceful", "workerid": wid, "graceful": True}, None),
            ({"type": "worker.paused", "workerid": wid, "paused": True}, None),
            (
                {"type": "worker.connected", "workerid": wid, "masterid": 11, "workerinfo": {}},
                "guest",
            ),
            ({"type": "master.deconfigured", "masterid": 11}, "guest"),
            ({"type": "master.stopped", "masterid": 11}, "guest"),
        ]
        for event, user in refused:
            await wire.event(event, **({"user_id": user} if user else {}))
        await wire.event({"type": "master.heartbeat", "masterid": 10}, user_id="guest")
        await wire.event(
            {"type": "worker.graceful", "workerid": wid, "graceful": True}, user_id="guest"
        )
        dead = await wire.settle()
        assert [json.dumps(e).encode() for e, _ in refused] == [m.body for m in dead]
        assert all(
            "forbidden" == json.loads(str((m.headers or {})["x-registry-error"]))["code"]
            for m in dead
        )
        assert [10] == [m["id"] for m in await wire.ok("getMasters")]
        assert (await _worker(wire, wid))["graceful"] is True


# == Section 8: running it =================================================================


async def test_s8_sigint_stops_serve_with_exit_0(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§8 serve runs "until SIGTERM/SIGINT ... and exits 0 within the grace period" (SIGINT)."""
    with served(tmp_path, prefix, REGISTRYD_GRACE="3") as serve:
        await _wait_health(serve, 200)
        code, took = await serve.stop(signal.SIGINT)
        assert (0, True) == (code, took < 3), serve.log()[-2000:]


async def test_s8_backends_down_at_start_are_retried_and_logged_without_secrets(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection, private_redis: PrivateRedis
) -> None:
    """§8 a backend down at start: "keeps retrying ... each attempt logged", no secrets logged."""
    wrong = AMQP_URL.replace("guest:guest", "guest:s3cr3t-amqp")
    dead_redis = f"redis://:s3cr3t-redis@127.0.0.1:{private_redis.port}/0"
    other = f"{prefix}-x"
    with (
        served(tmp_path, other, REGISTRYD_AMQP_URL=wrong) as no_broker,
        served(tmp_path, prefix, REGISTRYD_REDIS_URL=dead_redis) as no_redis,
    ):
        wire = await Wire.subscribe(amqp, prefix, bind=False)

        async def rpc_up() -> bool:
            assert no_redis.process.poll() is None, no_redis.log()
            with contextlib.suppress(Exception):
                await wire.channel.declare_queue(wire.rpc, passive=True)
                return True
            wire.channel = await amqp.channel()
            return False

        await wait_for(rpc_up, 20)
        await wire.attach()
        started = time.monotonic()
        reply = await wire.call("ping")
        assert ("unavailable", True) == (reply["error"]["code"], reply["error"]["retryable"])
        assert time.monotonic() - started < 5
        await wire.event({"type": "master.heartbeat", "masterid": 5, "name": "kept"})

        def retried(serve: Served) -> bool:
            return sum("retry" in json.dumps(r) for r in serve.records()) >= 2

        await wait_for(lambda: retried(no_broker) and retried(no_redis), 15)
        assert 503 == await no_broker.health()
        assert 503 == await no_redis.health()
        await private_redis.start()  # now Redis answers, with the password unused
        await _wait_health(no_redis, 200)

        async def kept() -> bool:
            reply = await wire.call("getMasters")
            return bool(reply["ok"]) and [5] == [m["id"] for m in reply["result"]]

        await wait_for(kept, 10)
        await no_broker.stopped()
        await no_redis.stopped()
        for serve in (no_broker, no_redis):
            serve.records()  # every line is JSON
            text = serve.log() + serve.out.read_text(encoding="utf-8")
            assert "s3cr3t" not in text
        await wire.channel.close()


async def test_s8_sigterm_waits_at_most_the_grace_for_in_flight_work(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection, private_redis: PrivateRedis
) -> None:
    """§8 "SIGTERM waits at most REGISTRYD_GRACE seconds"; the held event is not lost."""
    await private_redis.start()
    with served(
        tmp_path, prefix, REGISTRYD_REDIS_URL=private_redis.url, REGISTRYD_GRACE="1"
    ) as serve:
        await _wait_health(serve, 200)
        wire = await Wire.subscribe(amqp, prefix, bind=False)
        private_redis.kill()
        await wire.event({"type": "master.heartbeat", "masterid": 5})
        await _wait_health(serve, 503)
        code, took = await serve.stop()
        assert (0, True) == (code, took < 1 + 2.5), (took, serve.log()[-2000:])
        queue = await wire.channel.declare_queue(wire.events, passive=True)
        assert 1 == queue.declaration_result.message_count
        await wire.channel.close()


async def test_s8_check_names_each_failed_service_in_one_line(prefix: str) -> None:
    """§8 check "exits 0 when RabbitMQ and Redis answer, 1 otherwise", one line naming each."""
    dead = free_port()
    cases = {
        "ok": {},
        "rabbitmq": {"REGISTRYD_AMQP_URL": f"amqp://guest:s3cr3t@127.0.0.1:{dead}/"},
        "both": {
            "REGISTRYD_AMQP_URL": f"amqp://guest:s3cr3t@127.0.0.1:{dead}/",
            "REGISTRYD_REDIS_URL": f"redis://:s3cr3t@127.0.0.1:{dead}/0",
        },
    }
    runs = await asyncio.gather(
        *(
            asyncio.to_thread(
                subprocess.run,
                [*REGISTRYD, "check"],
                env=cli_env(prefix, **env),
                capture_output=True,
                timeout=30,
                check=False,
            )
            for env in cases.values()
        )
    )
    result = dict(zip(cases, runs, strict=True))
    assert [0, 1, 1] == [r.returncode for r in runs]
    assert all(1 == len(r.stdout.decode().splitlines()) for r in runs)
    rabbit_only = result["rabbitmq"].stdout.decode().lower()
    both = result["both"].stdout.decode().lower()
    assert ("rabbitmq" in rabbit_only, "redis" in rabbit_only) == (True, False)
    assert ("rabbitmq" in both, "redis" in both) == (True, True)
    assert all(b"s3cr3t" not in r.stdout + r.stderr for r in runs)


async def test_s8_toml_file_with_the_environment_winning(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§8 TOML keys (prefix, amqp.url, ..., metrics.port) and env: "the environment winning"."""
    port = free_port()
    dead = free_port()
    config = tmp_path / "registryd.toml"
    config.write_text(
        f'prefix = "{prefix}"\n'
        f'[amqp]\nurl = "amqp://guest:guest@127.0.0.1:{dead}/"\n'
        f'[redis]\nurl = "redis://127.0.0.1:{dead}/0"\n'
        "[masters]\nlease = 0.5\n"
        '[log]\nformat = "console"\n'
        f"[metrics]\nport = {port}\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in cli_env(prefix).items() if k != "REGISTRYD_PREFIX"}  # json wins
    with served(tmp_path, prefix, "--config", str(config), environ=env, port=port) as serve:
        await _wait_health(serve, 200)  # metrics.port from the file; both URLs from the env
        wire = await Wire.subscribe(amqp, prefix)
        await wire.attach()
        await wire.ok("masterHeartbeat", {"masterid": 3})  # on the file's prefix

        async def expired() -> bool:
            return [False] == [m["active"] for m in await wire.ok("getMasters")]

        await wait_for(expired, 5)  # masters.lease = 0.5 from the file
        await wire.channel.close()
        await serve.stopped()
        assert serve.records()  # REGISTRYD_LOG_FORMAT=json won over the file's console


async def test_s8_metrics_and_healthz_over_http_on_127_0_0_1(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§8 HTTP "on 127.0.0.1 by default ... Prometheus text at /metrics and /healthz"."""
    with served(tmp_path, prefix) as serve:
        await _wait_health(serve, 200)
        assert {("0100007F", serve.port)} == _listening_ports(serve.process.pid)
        status, content_type, body = await asyncio.to_thread(_http, serve.port, "/metrics")
        assert (200, True) == (status, content_type.startswith("text/plain"))
        text = body.decode()
        assert "# TYPE " in text
        assert "registryd_" in text
        await serve.stopped()


async def test_s8_metrics_port_0_turns_http_off(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§8 "REGISTRYD_METRICS_PORT (default 9822; 0 turns it off)"."""
    with served(tmp_path, prefix, REGISTRYD_METRICS_PORT="0") as serve:
        wire = await Wire.subscribe(amqp, prefix, bind=False)

        async def serving_rpc() -> bool:
            assert serve.process.poll() is None, serve.log()
            try:
                await wire.channel.declare_queue(wire.rpc, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                wire.channel = await amqp.channel()
                return False
            return True

        await wait_for(serving_rpc, 20)
        await wire.attach()
        assert 0 == (await wire.ok("ping"))["revision"]
        assert set() == _listening_ports(serve.process.pid)
        await serve.stopped()
        await wire.channel.close()


async def test_s8_sigterm_exits_0_within_grace_even_after_a_poison_event(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """§8 SIGTERM "exits 0 within the grace period", even after a poison event."""
    with served(tmp_path, prefix, REGISTRYD_GRACE="2") as serve:
        await _wait_health(serve, 200)
        wire = await Wire.subscribe(amqp, prefix, bind=False)
        await wire.event(POISON)

        async def taken() -> bool:
            queue = await wire.channel.declare_queue(wire.events, passive=True)
            return queue.declaration_result.message_count == 0

        await wait_for(taken)
        code, took = await serve.stop(timeout=30)
        assert (0, True) == (code, took < 2 + 2.5), (code, took, serve.log()[-1500:])
        await wire.channel.close()
