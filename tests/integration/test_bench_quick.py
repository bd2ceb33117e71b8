"""``python -m bench.suite --quick`` (CI's benchmark run) runs to the end and leaves nothing.

The suite runs once for the module (about two minutes on a quiet machine); the tests
read its exit code, its JSON rows, its printed table and what is left under its prefix.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from redis.asyncio import Redis

from bench.services import BenchNames
from registryd.protocol import Names
from registryd.store import Keys
from tests.harness import AMQP_URL, REDIS_URL

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
SIZES = (1_000, 10_000)
LISTINGS = (
    "getWorkers()",
    "getWorkers(masterid=10)",
    "getWorkers(builderid=4)",
    "getWorkers(paused=false)",
    "getWorkers(paused=true)",
)
EVERY_SIZE = (
    *(f"{listing} {what}" for listing in LISTINGS for what in ("reply body", "whole call, raw")),
    *(f"{listing} whole call, typed" for listing in LISTINGS),
    "floor part: MGET of the docs",
    "floor part: echo of the reply's size",
    "floor part: json.loads of the reply",
    "floor part: the client's decode_json of the reply (from_json, collector held off)",
    "getWorkers() whole call, raw, beside the client's own decoder",
    "largest reply of a full paged listing",
    "getWorker p50, sequential",
    "getWorker p99, sequential",
    "getWorker calls/s, 64 in flight",
    "workerConnected RPC p50, sequential",
    "workerConnected RPC p99, sequential",
    "end-to-end ingest, events/s",
    "end-to-end ingest ÷ the bare relay, events/s",
    "floor part: bare relay (event → forwarded with confirms → subscriber), events/s",
    "CPU per 1,000 events, ingest floor (every process)",
    "CPU per 1,000 events, bare relay (every process)",
    "CPU per 1,000 events, end-to-end ingest (every process)",
    "floor part: publish with confirms, msg/s",
    "floor part: consume+ack from a quorum queue, msg/s",
    "notification latency p50, commit → subscriber",
    "notification latency p99, commit → subscriber",
    "notification latency p50, event publish → subscriber",
    "notification latency p99, event publish → subscriber",
    "daemon peak RSS (VmHWM)",
    "Redis bytes per worker",
    "Redis bytes per worker, the change log left out",
    *(f"{listing}: registryd typed call ÷ Buildbot" for listing in LISTINGS),
    "getWorker p50: registryd RPC ÷ Buildbot",
    "getWorker p99: registryd RPC ÷ Buildbot",
    "workerConnected p50: registryd RPC ÷ Buildbot (durable)",
)
#: Rows of the sizes after the first (compared with it) and of 10,000 (expiry).
LATER_SIZES = (
    "scale: getWorker p50",
    "scale: getWorker calls/s, 64 in flight",
    "scale: workerConnected RPC p50",
    "scale: end-to-end ingest, events/s",
    "scale: getWorkers() raw, per listed worker",
    "lease end → last notification",
)


@dataclass(frozen=True)
class Run:
    """What one quick run gave."""

    returncode: int
    stdout: str
    stderr: str
    rows: list[dict[str, Any]]

    @property
    def prefix(self) -> str:
        """The prefix the run used (from its header)."""
        found = re.search(r"prefix `(bench-[0-9a-f]+)`", self.stdout)
        assert found is not None, self.stdout[:2000]
        return found.group(1)


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One ``--quick`` run of the suite against the test services."""
    rows = tmp_path_factory.mktemp("bench") / "rows.json"
    command = [sys.executable, "-m", "bench.suite", "--quick", "--json", str(rows)]
    command += ["--amqp-url", AMQP_URL, "--redis-url", REDIS_URL]
    done = subprocess.run(
        command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=840
    )
    found = json.loads(rows.read_text())["rows"] if rows.exists() else []
    return Run(done.returncode, done.stdout, done.stderr, found)


def test_quick_mode_exits_0_without_errors(quick: Run) -> None:
    """Every measurement ran: exit code 0 and no ERROR row (missed targets are fine)."""
    assert 0 == quick.returncode, quick.stderr[-3000:]
    assert [] == [(r["size"], r["measure"], r["error"]) for r in quick.rows if r["error"]]


def test_quick_mode_has_every_row(quick: Run) -> None:
    """Each size has every row, with a figure, and the printed table shows each of them."""
    wanted = [(n, m) for n in SIZES for m in EVERY_SIZE]
    wanted += [(SIZES[1], m) for m in LATER_SIZES]
    by_key = {(r["size"], r["measure"]): r for r in quick.rows}
    assert [] == [key for key in wanted if key not in by_key]
    assert [] == [key for key in wanted if not by_key[key]["figure"]]
    table = quick.stdout.splitlines()
    assert [] == [(n, m) for n, m in wanted if not any(f"| {n:,} | {m}" in line for line in table)]


async def test_quick_mode_leaves_nothing_behind(quick: Run) -> None:
    """No Redis key, queue or exchange of the run's prefix is left."""
    redis = Redis.from_url(REDIS_URL)
    try:
        left = [k async for k in redis.scan_iter(match=Keys(quick.prefix).pattern(), count=1000)]
    finally:
        await redis.aclose()
    assert [] == left
    names, floors = Names(quick.prefix), BenchNames(quick.prefix)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        for queue in (names.events, names.rpc, *floors.queues()):
            channel = await connection.channel()
            with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
                await channel.declare_queue(queue, passive=True)
        for exchange in (names.events, names.notifications, floors.relay_out):
            channel = await connection.channel()
            with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
                await channel.declare_exchange(exchange, passive=True)
