"""Buildbot 4.3's own ``WorkersConnectorComponent`` on SQLite: the reference beside registryd.

Runs in a process of its own (Twisted's reactor, no network): the suite starts
``python -m bench.buildbot_sql`` and reads one JSON object from its last stdout line.
For each size, the database is filled straight through SQL with the fleet of
:mod:`bench.fleet` (same workers, masters, builders and pairs as registryd gets), then
the component is timed on the same reads and writes as registryd: every listing of
:data:`bench.fleet.LISTINGS`, ``getWorker`` by id, and the durable writes
``workerConnected`` (its own committed transactions, on an SQLite file in WAL mode as
``buildbot create-master`` makes it).

    .venv/bin/python -m bench.buildbot_sql --sizes 1000,10000 [--reps 5] [--calls 500]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from buildbot.config.master import DBConfig
from buildbot.master import BuildMaster
from twisted.internet import defer
from twisted.python.failure import Failure

from bench import fleet
from bench.stats import Stat, calibrate, latencies, sample

__all__ = ["Effort", "main", "measure_size"]

_R = TypeVar("_R")
_CHUNK = 5_000


async def make_master(basedir: Path) -> Any:  # noqa: ANN401 - Buildbot's master is untyped
    """A BuildMaster (not started) with an upgraded SQLite database in ``basedir``."""
    master = BuildMaster(str(basedir))
    master.db.configured_db_config = DBConfig(f"sqlite:///{basedir}/state.sqlite")
    await master.db.setup(check_version=False, verbose=False)
    await master.db.model.upgrade()
    return master


class Fleet:
    """The fleet's masters and builders in Buildbot's tables, and its workers as they grow."""

    def __init__(self, master: Any) -> None:  # noqa: ANN401 - Buildbot's master
        self.db = master.db
        self.count = 0
        #: registryd's master id to Buildbot's.
        self.masters: dict[int, int] = {}

    async def start(self) -> None:
        """Masters, builders, and each builder on its master."""
        for masterid in fleet.MASTERS:
            self.masters[masterid] = await self.db.masters.findMasterId(f"master-{masterid}")
        for builder in fleet.BUILDERS:
            builderid = await self.db.builders.findBuilderId(f"builder-{builder}")
            assert builderid == builder, "a fresh database numbers builders from 1"
            masterid = self.masters[fleet.MASTERS[builder % len(fleet.MASTERS)]]
            await self.db.builders.addBuilderMaster(builderid=builderid, masterid=masterid)

    async def grow(self, count: int) -> None:
        """Add workers up to ``count``, in chunks of bulk inserts."""
        pairs = await self.db.pool.do(self._builder_masters)
        for start in range(self.count + 1, count + 1, _CHUNK):
            ids = range(start, min(count, start + _CHUNK - 1) + 1)
            await self.db.pool.do_with_transaction(self._insert, ids, pairs)
        self.count = count

    def _builder_masters(self, conn: Any) -> dict[tuple[int, int], int]:  # noqa: ANN401
        tbl = self.db.model.builder_masters
        rows = conn.execute(tbl.select()).fetchall()
        return {(row.builderid, row.masterid): row.id for row in rows}

    def _insert(self, conn: Any, ids: range, pairs: dict[tuple[int, int], int]) -> None:  # noqa: ANN401
        model = self.db.model
        conn.execute(
            model.workers.insert(),
            [
                {
                    "id": w,
                    "name": fleet.name_of(w),
                    "info": fleet.info_of(w),
                    "paused": int(fleet.is_paused(w)),
                    "pause_reason": "maintenance" if fleet.is_paused(w) else None,
                    "graceful": 0,
                }
                for w in ids
            ],
        )
        master = {w: self.masters[fleet.master_of(w)] for w in ids}
        conn.execute(
            model.configured_workers.insert(),
            [
                {"workerid": w, "buildermasterid": pairs[b, master[w]]}
                for w in ids
                for b in fleet.builders_of(w)
            ],
        )
        conn.execute(
            model.connected_workers.insert(), [{"workerid": w, "masterid": master[w]} for w in ids]
        )


def _buildbot_params(params: dict[str, Any], masters: dict[int, int]) -> dict[str, Any]:
    """A listing's params with registryd's master id turned into Buildbot's."""
    if "masterid" in params:
        return {**params, "masterid": masters[params["masterid"]]}
    return params


async def _listing(workers: Any, params: dict[str, Any], reps: int, budget: float) -> Stat:  # noqa: ANN401
    async def call() -> object:
        return await workers.getWorkers(**params)

    inner = await calibrate(call, budget)
    return Stat([await sample(call, inner) for _ in range(reps)])


@dataclass(frozen=True)
class Effort:
    """How much of each measurement: repetitions, calls and seconds per sample."""

    reps: int = 5
    calls: int = 500
    seconds: float = 2.0
    budget: float = 0.1


async def measure_size(bb: Fleet, count: int, effort: Effort) -> dict[str, list[float]]:
    """Every figure at ``count`` workers: listings, ``getWorker``, a durable write."""
    await bb.grow(count)
    workers = bb.db.workers
    out: dict[str, list[float]] = {}
    for listing in fleet.LISTINGS:
        params = _buildbot_params(listing.params, bb.masters)
        stat = await _listing(workers, params, effort.reps, effort.budget)
        out[f"listing:{listing.label}"] = stat.samples
    rng = random.Random(count)
    ids = [rng.randint(1, count) for _ in range(effort.calls)]

    def connect(i: int) -> Awaitable[object]:
        w = ids[i]
        info = {**fleet.info_of(w), "version": f"4.3.{i}"}  # a change each time, as registryd's
        result: Awaitable[object] = workers.workerConnected(w, bb.masters[fleet.master_of(w)], info)
        return result

    def get(i: int) -> Awaitable[object]:
        result: Awaitable[object] = workers.getWorker(workerid=ids[i])
        return result

    for key, call in (("getWorker", get), ("workerConnected", connect)):
        for _ in range(effort.reps):
            p50, p99 = await latencies(call, effort.calls, effort.seconds)
            out.setdefault(f"{key}.p50", []).append(p50)
            out.setdefault(f"{key}.p99", []).append(p99)
    return out


async def _run(sizes: list[int], effort: Effort) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-buildbot-sql-") as tmp:
        master = await make_master(Path(tmp))
        try:
            bb = Fleet(master)
            await bb.start()
            results: dict[str, Any] = {}
            for count in sizes:
                started = time.perf_counter()
                results[str(count)] = await measure_size(bb, count, effort)
                took = time.perf_counter() - started
                print(f"buildbot sqlite, {count} workers: {took:.1f} s", file=sys.stderr)
            return results
        finally:
            await master.db._shutdown()
            await master.db.pool.stop()


def run_reactor(work: Callable[[], Coroutine[Any, Any, _R]]) -> _R:
    """Run Twisted's default reactor until ``work()`` is done; its result (or its error)."""
    from twisted.internet import reactor  # noqa: PLC0415 - installs the default reactor

    outcome: list[object] = []

    def finished(result: object) -> None:
        outcome.append(result)
        reactor.stop()  # type: ignore[attr-defined]

    def start() -> None:
        defer.ensureDeferred(work()).addBoth(finished)

    reactor.callWhenRunning(start)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]  # type: ignore[return-value]


def main() -> None:
    """Measure each size; print the figures as one JSON line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated worker counts")
    parser.add_argument("--reps", type=int, default=Effort.reps)
    parser.add_argument("--calls", type=int, default=Effort.calls, help="most sequential calls")
    parser.add_argument("--seconds", type=float, default=Effort.seconds, help="most per sample")
    parser.add_argument("--budget", type=float, default=Effort.budget, help="s per listing sample")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    effort = Effort(args.reps, args.calls, args.seconds, args.budget)
    results = run_reactor(lambda: _run(sizes, effort))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
