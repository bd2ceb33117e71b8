"""A Buildbot master's worker-connector calls: registryd vs Buildbot's own SQL components.

For N workers (1,000; ``--quick``: 100), in one run, against each backend:

- ``sqlite``: Buildbot 4.3's ``WorkersConnectorComponent`` on an SQLite file (WAL), as
  ``buildbot create-master`` makes it;
- ``postgresql``: the same component on a fresh database of the local PostgreSQL;
- ``registryd/sqlite`` and ``registryd/pg``: ``registryd.buildbot.install()`` on a master
  whose own tables (its shadow rows) are on SQLite or PostgreSQL, talking to a
  ``registryd serve`` process of its own on a fresh prefix.

Phases, each call awaited before the next as a master makes them: ``start-up``
(per worker ``findWorkerId`` and ``getWorker``, as ``Worker.startService`` does, then
``workerConfigured`` per worker: ``WorkerManager`` starts and reconfigures its workers
one at a time; it ends with the master's listing showing all its workers, so writes
still on their way to registryd are counted), then ``connect``, ``pause``, ``disconnect``
(one call per worker) and ``list`` (20 ``getWorkers``, unfiltered and by master).
Prints a table of seconds and the ratio of each registryd master to the same master on
its own SQL tables, and checks the issue's bound: start-up no slower than on its own
SQL tables by more than 2x (exit code 1 if not).
Everything it makes (processes, database, prefix) is removed afterwards.

    .venv/bin/python -m bench.bench_buildbot [--quick] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Final, TypeVar

import psycopg2
from buildbot.config.master import DBConfig
from buildbot.master import BuildMaster
from twisted.internet import defer
from twisted.python.failure import Failure

from bench.services import Child, clean_up, start_daemon
from registryd.buildbot import install

AMQP: Final = os.environ.get("REGISTRYD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
REDIS: Final = os.environ.get("REGISTRYD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_DSN: Final = os.environ.get("REGISTRYD_TEST_PG", "host=127.0.0.1 port=5432 user=postgres")
PG_URL: Final = os.environ.get(
    "REGISTRYD_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432"
)
PHASES: Final = ("start-up", "connect", "pause", "disconnect", "list")
LISTINGS: Final = 10
BOUND: Final = 2.0
_R = TypeVar("_R")


async def run_phases(workers: Any, masterid: int, count: int) -> dict[str, float]:  # noqa: ANN401
    """Seconds each phase takes through ``workers`` (a workers connector component)."""
    names = [f"bench-{n:05d}" for n in range(count)]
    started = time.perf_counter()
    ids = []
    for name in names:  # Worker.startService: findWorkerId, then its record (paused, info)
        ids.append(await workers.findWorkerId(name))
        assert (await workers.getWorker(workerid=ids[-1])).name == name
    for workerid in ids:  # then Worker.reconfigServiceWithSibling
        await workers.workerConfigured(workerid, masterid, [1])
    # Up: the master's listing shows every worker on its builder (registryd has it all).
    assert len(await workers.getWorkers(masterid=masterid)) == count
    times = {"start-up": time.perf_counter() - started}
    info = {"admin": None, "host": "bench", "access_uri": None, "version": "4.3.0"}
    times["connect"] = await _each(ids, lambda w: workers.workerConnected(w, masterid, info))
    times["pause"] = await _each(
        ids, lambda w: workers.set_worker_paused(w, paused=True, pause_reason="bench")
    )
    times["disconnect"] = await _each(ids, lambda w: workers.workerDisconnected(w, masterid))
    started = time.perf_counter()
    for _ in range(LISTINGS):
        assert len(await workers.getWorkers()) == count
        assert len(await workers.getWorkers(masterid=masterid)) == count
    times["list"] = time.perf_counter() - started
    return times


async def _each(ids: list[int], call: Callable[[int], Awaitable[object]]) -> float:
    started = time.perf_counter()
    for workerid in ids:
        await call(workerid)
    return time.perf_counter() - started


async def make_master(basedir: Path, db_url: str) -> Any:  # noqa: ANN401 - Buildbot's master
    """A BuildMaster (not started) with its database made, its id and one builder."""
    basedir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - set-up, not measured
    master = BuildMaster(str(basedir))
    master.db.configured_db_config = DBConfig(db_url)
    await master.db.setup(check_version=False)
    await master.db.model.upgrade()
    master.masterid = await master.db.masters.findMasterId(master.name)
    builderid = await master.db.builders.findBuilderId("bench")
    await master.db.builders.addBuilderMaster(builderid=builderid, masterid=master.masterid)
    return master


async def measure(
    label: str, basedir: Path, db_url: str, count: int, **registry: str
) -> dict[str, float]:
    """The phases on a fresh master, through registryd when ``registry`` names a prefix."""
    master = await make_master(basedir / label, db_url)
    if registry:
        install(master, amqp_url=AMQP, prefix=registry["prefix"])
    try:
        return await run_phases(master.db.workers, master.masterid, count)
    finally:
        await master.db._shutdown()
        await master.db.pool.stop()


def postgres(statement: str) -> None:
    """Run one statement on the ``postgres`` database (create/drop the bench's own)."""
    connection = psycopg2.connect(f"{PG_DSN} dbname=postgres")
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


#: (label, Buildbot database of the master, through registryd?)
BACKENDS: Final = (
    ("sqlite", "sqlite", False),
    ("registryd/sqlite", "sqlite", True),
    ("postgresql", "postgresql", False),
    ("registryd/pg", "postgresql", True),
)


def print_table(results: dict[str, dict[str, float]], count: int) -> bool:
    """The table of seconds and ratios; whether start-up stays within the bound."""
    print(f"\nBuildbot worker-connector calls for {count} workers, seconds (lower is better)")
    print("registryd/X: install() on a master whose own tables (shadow rows) are on X\n")
    labels = "".join(f"{label:>18}" for label, _, _ in BACKENDS)
    print(f"{'phase':<11}{labels}{'ratio sqlite':>14}{'ratio pg':>10}")
    for phase in PHASES:
        row = [results[label][phase] for label, _, _ in BACKENDS]
        values = "".join(f"{value:>18.3f}" for value in row)
        print(f"{phase:<11}{values}{row[1] / row[0]:>13.2f}x{row[3] / row[2]:>9.2f}x")
    worst = max(
        results["registryd/sqlite"]["start-up"] / results["sqlite"]["start-up"],
        results["registryd/pg"]["start-up"] / results["postgresql"]["start-up"],
    )
    verdict = "ok" if worst <= BOUND else "TOO SLOW"
    print(f"\nstart-up through registryd: at most {worst:.2f}x on its own SQL tables")
    print(f"(bound {BOUND}x): {verdict}")
    return worst <= BOUND


async def measure_all(
    basedir: Path, count: int, prefixes: list[str], databases: list[str]
) -> dict[str, dict[str, float]]:
    """Every backend, one after the other (a fresh database and prefix each)."""
    results: dict[str, dict[str, float]] = {}
    fresh_pg, fresh_prefix = iter(databases), iter(prefixes)
    for n, (label, kind, registry) in enumerate(BACKENDS):
        if kind == "sqlite":
            url = f"sqlite:///{basedir}/db{n}.sqlite"
        else:
            url = f"{PG_URL}/{next(fresh_pg)}"
        extra = {"prefix": next(fresh_prefix)} if registry else {}
        results[label] = await measure(f"master{n}", basedir, url, count, **extra)
    return results


def run_reactor(work: Callable[[], Coroutine[Any, Any, _R]]) -> _R:
    """Run Twisted's default reactor until ``work()`` is done; its result (or its error)."""
    from twisted.internet import reactor  # noqa: PLC0415 - installs the default reactor

    outcome: list[Any] = []

    def finish(result: object) -> None:
        outcome.append(result)
        reactor.stop()  # type: ignore[attr-defined]

    def start() -> None:
        defer.ensureDeferred(work()).addBoth(finish)

    reactor.callWhenRunning(start)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    result: _R = outcome[0]
    return result


def main() -> None:
    """Every backend in one run, the table, exit 1 past the bound; everything is removed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="100 workers (for CI)")
    args = parser.parse_args()
    count = 100 if args.quick else args.workers
    run = uuid.uuid4().hex[:8]
    prefixes = [f"bench-bb-{run}-{n}" for n in range(2)]
    databases = [f"bench_bb_{run}_{n}" for n in range(2)]
    with tempfile.TemporaryDirectory(prefix="bench-buildbot-") as tmp:
        basedir = Path(tmp)
        daemons: list[Child] = []
        try:
            for prefix in prefixes:
                logdir = basedir / prefix
                logdir.mkdir()
                # The production lease: a master heartbeats every 20 s, as it would.
                daemons.append(asyncio.run(start_daemon(AMQP, REDIS, prefix, logdir, lease=60)))
            for database in databases:
                postgres(f'CREATE DATABASE "{database}"')
            results = run_reactor(lambda: measure_all(basedir, count, prefixes, databases))
        finally:
            for daemon in daemons:
                asyncio.run(daemon.stop(30))
            for database in databases:
                postgres(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            for prefix in prefixes:
                asyncio.run(clean_up(AMQP, REDIS, prefix))
    sys.exit(0 if print_table(results, count) else 1)


if __name__ == "__main__":
    main()
