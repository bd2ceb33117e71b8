"""Live: real ``buildbot`` and ``buildbot-worker`` processes keep their workers in registryd.

For each Buildbot database (SQLite, PostgreSQL) one fleet is made: registryd on a fresh
prefix with a 3 s master lease, master 1 (Twisted's default reactor) with worker ``w1``
and master 2 (``twistd --reactor=asyncio``) with worker ``w2``, on the same Buildbot
database. The tests walk through a fleet's life in order,
each pinning one behaviour of the state the previous ones left (the masters take many
seconds to start on this machine, so they are shared).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from registryd.models import MasterChange, Worker, WorkerChange
from tests.buildbot.harness import drop_prefix, unique_prefix, wait_until
from tests.buildbot.live import Master, PostgresDatabase, Registryd
from tests.buildbot.live import Worker as LiveWorker

pytestmark = [pytest.mark.integration, pytest.mark.buildbot]

LEASE = 3.0
SUCCESS = 0


@dataclass
class Fleet:
    """registryd, two masters on one Buildbot database, one worker each."""

    workdir: Path
    registry: Registryd
    masters: list[Master]
    workers: list[LiveWorker]
    masterids: list[int] = field(default_factory=list)
    cleanups: list[Any] = field(default_factory=list)

    async def registry_worker(self, name: str) -> Worker:
        """registryd's record of the worker ``name``."""
        async with await self.registry.client() as client:
            record = await client.get_worker(name=name)
        assert record is not None, name
        return record

    async def wait_registry(self, name: str, check: Any, what: str, timeout: float = 30) -> Worker:
        """Until registryd's record of ``name`` passes ``check``; return it."""
        seen: list[Worker] = []

        async def holds() -> bool:
            seen.append(await self.registry_worker(name))
            return bool(check(seen[-1]))

        try:
            await wait_until(holds, timeout, what, step=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last record {seen[-1:]}\n{self.masters[0].log}") from None
        return seen[-1]


def _start(registry: Registryd, fleet: Fleet) -> None:
    async def up() -> None:
        await registry.wait_ready()
        for master, worker in zip(fleet.masters, fleet.workers, strict=True):
            master.start()
            fleet.masterids.append(await master.wait_started())
            worker.start()

    asyncio.run(up())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """The fleet on one Buildbot database; every process stopped by PID afterwards."""
    workdir = tmp_path_factory.mktemp(f"live-{request.param}")
    prefix = unique_prefix()
    cleanups: list[Any] = [lambda: asyncio.run(drop_prefix(prefix))]
    if request.param == "postgresql":
        database = PostgresDatabase()
        cleanups.append(database.drop)
        db_url = database.url
    else:
        db_url = f"sqlite:///{workdir / 'state.sqlite'}"
    registry = Registryd(prefix, workdir, LEASE)
    cleanups.append(registry.stop)
    masters = [
        Master(workdir / "master1", db_url, prefix, ["w1"]),
        Master(workdir / "master2", db_url, prefix, ["w2"], reactor="asyncio"),
    ]
    workers = [
        LiveWorker(workdir / f"w{n}", f"w{n}", m.pb_port)
        for n, m in zip((1, 2), masters, strict=True)
    ]
    cleanups.extend(m.stop for m in masters)
    cleanups.extend(w.stop for w in workers)
    fleet = Fleet(workdir, registry, masters, workers, cleanups=cleanups)
    try:
        _start(registry, fleet)
        yield fleet
    finally:
        for cleanup in reversed(cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


async def test_worker_attaches_connected_and_configured(fleet: Fleet) -> None:
    """w1 attaches to master 1: registryd shows it connected there and on its builder."""
    m1 = fleet.masterids[0]
    builders = await fleet.masters[0].call({"op": "get", "path": ["builders"]})
    builderid = next(b["builderid"] for b in builders if b["name"] == "build-w1")
    record = await fleet.wait_registry(
        "w1",
        lambda w: (
            w.connected_to == [m1]
            and [(p.builderid, p.masterid) for p in w.configured_on] == [(builderid, m1)]
        ),
        "w1 connected to and configured on master 1",
    )
    assert {"admin", "host", "access_uri", "version"} == set(record.workerinfo)
    assert "4.3.0" == record.workerinfo["version"]
    seen = await fleet.masters[0].call({"op": "get", "path": ["workers", "w1"]})
    assert ([{"masterid": m1}], [{"builderid": builderid, "masterid": m1}]) == (
        seen["connected_to"],
        seen["configured_on"],
    )


async def test_build_runs_and_succeeds(fleet: Fleet) -> None:
    """A forced build runs on w1 and succeeds (its builds row names w1's Buildbot id)."""
    master = fleet.masters[0]
    await master.call(
        {
            "op": "control",
            "action": "force",
            "path": ["forceschedulers", "force"],
            "args": {"builderNames": ["build-w1"]},
        }
    )
    builds: list[dict[str, Any]] = []

    async def finished() -> bool:
        builds[:] = await master.call({"op": "get", "path": ["builds"]})
        return any(b["complete"] for b in builds)

    await wait_until(finished, 60, "the forced build completes", step=0.3)
    w1 = await master.call({"op": "get", "path": ["workers", "w1"]})
    assert [(SUCCESS, w1["workerid"])] == [(b["results"], b["workerid"]) for b in builds]


async def test_pause_and_unpause_show_in_registryd(fleet: Fleet) -> None:
    """Pausing w1 through the data API pauses it in registryd; unpausing clears it."""
    master = fleet.masters[0]
    w1 = await master.call({"op": "get", "path": ["workers", "w1"]})
    path = ["workers", w1["workerid"]]
    await master.call({"op": "control", "action": "pause", "path": path, "args": {"reason": "fix"}})
    await fleet.wait_registry("w1", lambda w: (w.paused, w.pause_reason) == (True, "fix"), "paused")
    await master.call({"op": "control", "action": "unpause", "path": path, "args": {}})
    await fleet.wait_registry(
        "w1", lambda w: (w.paused, w.pause_reason) == (False, None), "unpaused"
    )


async def test_two_masters_see_each_others_workers(fleet: Fleet) -> None:
    """Masters 1 and 2 (on two reactors) share a database and registryd: each sees both workers."""
    m1, m2 = fleet.masterids
    await fleet.wait_registry("w2", lambda w: w.connected_to == [m2], "w2 connected to master 2")
    expected = {"w1": [{"masterid": m1}], "w2": [{"masterid": m2}]}
    for master in fleet.masters:
        listed = await master.call({"op": "get", "path": ["workers"]})
        assert expected == {w["name"]: w["connected_to"] for w in listed}
    ids = [
        sorted((w["name"], w["workerid"]) for w in await m.call({"op": "get", "path": ["workers"]}))
        for m in fleet.masters
    ]
    assert ids[0] == ids[1]
    reactors = [(await m.call({"op": "info"}))["reactor"] for m in fleet.masters]
    assert ["EPollReactor", "AsyncioSelectorReactor"] == reactors


async def test_killed_master_is_expired_by_the_lease(fleet: Fleet) -> None:
    """SIGKILL master 1: within the lease registryd disconnects w1 and says so; w2 stays."""
    m1, m2 = fleet.masterids
    w1 = (await fleet.registry_worker("w1")).id
    async with await fleet.registry.client() as client, client.subscribe() as changes:
        fleet.masters[0].stop(signal.SIGKILL)
        seen = await asyncio.wait_for(_until_expired(changes, m1, w1), LEASE + 15)
    assert {("disconnected", w1, m1), ("expired", m1, m1)} <= seen
    assert [m2] == (await fleet.registry_worker("w2")).connected_to
    assert [] == (await fleet.registry_worker("w1")).connected_to


async def _until_expired(changes: Any, masterid: int, workerid: int) -> set[tuple[str, int, int]]:
    """Collect (event, id, masterid) of notifications until the master's expiry."""
    seen: set[tuple[str, int, int]] = set()
    async for change in changes:
        if isinstance(change, WorkerChange) and change.masterid is not None:
            seen.add((change.event, change.workerid, change.masterid))
        if isinstance(change, MasterChange):
            seen.add((change.event, change.masterid, change.masterid))
            if (change.event, change.masterid) == ("expired", masterid):
                return seen
    return seen


async def test_restarted_master_has_no_stale_connections(fleet: Fleet) -> None:
    """Master 1 restarts with its id: w1 reconnects once, nothing stale is left."""
    master = fleet.masters[0]
    master.start()
    assert fleet.masterids[0] == await master.wait_started()
    m1, m2 = fleet.masterids
    await fleet.wait_registry("w1", lambda w: w.connected_to == [m1], "w1 back on master 1")
    async with await fleet.registry.client() as client:
        masters = {m.id: m.active for m in await client.get_masters()}
    assert {m1: True, m2: True} == masters


async def test_graceful_shutdown_shows_in_registryd(fleet: Fleet) -> None:
    """A graceful stop of w1 through the data API sets graceful in registryd; w1 leaves."""
    master = fleet.masters[0]
    w1 = await master.call({"op": "get", "path": ["workers", "w1"]})
    await master.call({"op": "control", "action": "stop", "path": ["workers", w1["workerid"]]})
    await fleet.wait_registry(
        "w1", lambda w: w.graceful and w.connected_to == [], "w1 graceful and gone"
    )


async def test_clean_stop_marks_the_masters_stopped(fleet: Fleet) -> None:
    """SIGTERM stops both masters cleanly; registryd lists them stopped, w2 disconnected."""
    for master in fleet.masters:
        master.stop(signal.SIGTERM)
    async with await fleet.registry.client() as client:
        masters = {m.id: m.active for m in await client.get_masters()}
    assert dict.fromkeys(fleet.masterids, False) == masters
    assert [] == (await fleet.registry_worker("w2")).connected_to
