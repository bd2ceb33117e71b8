"""What the component adds to Buildbot's connector: liveness, sessions, outages, recovery.

Each test runs on Buildbot's fake master (id 824, named ``fake:/master``) with its own
registryd daemon in a thread; assertions read registryd with a client of the test's own.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from buildbot.test import fakedb

from registryd.buildbot import RegistryUnreachable, install
from registryd.client import RegistryClient
from registryd.models import Master, Worker
from tests.buildbot.fakes import RegistryMasterCase
from tests.buildbot.harness import AMQP_URL, drop_prefix, wait_until

pytestmark = pytest.mark.integration

MASTER = 824


def master_in(masters: list[Master]) -> Master | None:
    """The fake master's record among ``masters``."""
    return next((m for m in masters if m.id == MASTER), None)


class Liveness(RegistryMasterCase):
    """The start-up barrier, heartbeats and the clean stop."""

    async def test_first_write_announces_the_master(self) -> None:
        """Before the first write the master heartbeats under its id and name."""
        await self.db.workers.findWorkerId("linux")
        masters = self.registry.client_call(lambda c: c.get_masters())
        assert (True, "fake:/master") == _state(master_in(masters))

    async def test_barrier_clears_connections_left_by_a_crash(self) -> None:
        """A worker left connected by the master's previous life is disconnected first."""

        async def crashed_life(c: RegistryClient) -> int:
            await c.master_heartbeat(MASTER, name="fake:/master")
            ghost = await c.find_worker_id("ghost")
            await c.worker_connected(ghost, MASTER, {})
            return ghost

        ghost = self.registry.client_call(crashed_life)
        await self.db.workers.findWorkerId("linux")
        record = self.registry.client_call(lambda c: c.get_worker(workerid=ghost))
        assert [] == _record(record).connected_to

    async def test_clean_stop_marks_the_master_stopped(self) -> None:
        """Shutting the master's database down sends masterStopped."""
        workerid = await self.db.workers.findWorkerId("linux")
        await self.db.workers.workerConnected(workerid, MASTER, {"host": "h"})
        await self.master.test_shutdown()
        masters = self.registry.client_call(lambda c: c.get_masters())
        worker = self.registry.client_call(lambda c: c.get_worker(name="linux"))
        assert ((False, "fake:/master"), []) == (
            _state(master_in(masters)),
            _record(worker).connected_to,
        )


class Sessions(RegistryMasterCase):
    """Connection identity of worker sessions, passed through to registryd."""

    async def test_late_disconnect_of_an_old_session_is_ignored(self) -> None:
        """A disconnect of session 1 that arrives after session 2's connect changes nothing."""
        workerid = await self.db.workers.findWorkerId("linux")
        await self.db.workers.workerConnected(workerid, MASTER, {"host": "h"})
        held: list[tuple[str, int, str | None]] = []
        send = self.component.remote.disconnected

        async def hold(name: str, masterid: int, token: str | None) -> None:
            held.append((name, masterid, token))

        self.component.remote.disconnected = hold  # type: ignore[method-assign]
        await self.db.workers.workerDisconnected(workerid, MASTER)
        self.component.remote.disconnected = send  # type: ignore[method-assign]
        await self.db.workers.workerConnected(workerid, MASTER, {"host": "h2"})
        await self.component.bridge.call(send(*held[0]), 10)
        found = await self.db.workers.getWorker(workerid)
        assert ([MASTER], {"host": "h2"}) == (found.connected_to, found.workerinfo)

    async def test_disconnect_of_the_current_session_applies(self) -> None:
        """The disconnect of the live session removes the connection."""
        workerid = await self.db.workers.findWorkerId("linux")
        await self.db.workers.workerConnected(workerid, MASTER, {"host": "h"})
        await self.db.workers.workerDisconnected(workerid, MASTER)
        assert [] == (await self.db.workers.getWorker(workerid)).connected_to


class Ids(RegistryMasterCase):
    """Buildbot's ids are its SQL rows; registryd's workers are mapped by name."""

    async def test_write_to_an_unknown_worker_changes_nothing(self) -> None:
        """As in SQL: a write naming an id without a row is a silent no-op."""
        await self.db.workers.set_worker_paused(999, paused=True, pause_reason="why")
        await self.db.workers.workerConnected(999, MASTER, {})
        assert [] == await self.db.workers.getWorkers()

    async def test_worker_created_elsewhere_gets_a_sql_row(self) -> None:
        """A worker another client created in registryd is listed under a new SQL id."""
        self.registry.client_call(lambda c: c.find_worker_id("elsewhere"))
        listed = await self.db.workers.getWorkers()
        in_sql = await self.component.shadow.sql.getWorkers()
        assert [("elsewhere", listed[0].id)] == [(w.name, w.id) for w in in_sql]

    async def test_sql_ids_and_registry_ids_may_differ(self) -> None:
        """Buildbot keeps its SQL id even where registryd numbers the worker otherwise."""
        self.registry.client_call(lambda c: c.find_worker_id("first-in-registry"))
        workerid = await self.db.workers.findWorkerId("linux")
        registry_id = self.registry.client_call(lambda c: c.find_worker_id("linux"))
        assert (1, 2) == (workerid, registry_id)
        assert "linux" == (await self.db.workers.getWorker(workerid=1)).name


class Outages(RegistryMasterCase):
    """registryd unreachable: bounded failures, a clear error, recovery by itself."""

    def setUp(self) -> Any:
        """The fake master, with short timeouts for the outage."""
        return super().setUp().addCallback(lambda _: self._short_timeouts())

    def _short_timeouts(self) -> None:
        self.component.remote.link.settings = type(self.component.remote.link.settings)(
            AMQP_URL, self.registry.prefix, timeout=1.0
        )
        self.component.call_timeout = 3.0

    async def test_call_fails_within_the_timeout_then_fast(self) -> None:
        """The first call waits one timeout; later ones fail at once, naming the outage."""
        workerid = await self.db.workers.findWorkerId("linux")
        self.registry.halt()
        first = await _failure_time(
            lambda: self.db.workers.set_worker_graceful(workerid, graceful=True)
        )
        started = time.monotonic()
        with pytest.raises(RegistryUnreachable) as caught:
            await self.db.workers.set_worker_graceful(workerid, graceful=False)
        fast = time.monotonic() - started
        assert first < 3.0, first
        assert fast < 0.5, fast
        assert "unreachable" in str(caught.value)
        assert self.registry.prefix in str(caught.value)

    async def test_writes_that_failed_are_sent_when_registryd_is_back(self) -> None:
        """After the outage, the heartbeat task reconnects and re-sends what failed."""
        workerid = await self.db.workers.findWorkerId("linux")
        self.registry.halt()
        await _failure_time(
            lambda: self.db.workers.set_worker_paused(workerid, paused=True, pause_reason="outage")
        )
        self.registry.resume()

        async def paused(c: RegistryClient) -> bool:
            record = await c.get_worker(name="linux")
            return record is not None and (record.paused, record.pause_reason) == (True, "outage")

        self.registry.wait_for(paused, "the failed pause reaches registryd", timeout=20)
        assert (await self.db.workers.getWorker(workerid)).paused

    async def test_unknown_prefix_is_a_clear_error(self) -> None:
        """A prefix no registryd serves fails at once, saying so."""
        other = install(self.master, amqp_url=AMQP_URL, prefix="tb-nobody-serves-this")
        with pytest.raises(RegistryUnreachable) as caught:
            await other.getWorkers()
        assert "tb-nobody-serves-this" in str(caught.value)


class HandedOver(RegistryMasterCase):
    """The master's own workerConfigured does not wait for registryd's answer."""

    async def _linux_on_builder_20(self) -> int:
        await self.db.insert_test_data(
            [
                fakedb.Master(id=MASTER),
                fakedb.Builder(id=20, name="b20"),
                fakedb.BuilderMaster(id=2000, builderid=20, masterid=MASTER),
            ]
        )
        workerid: int = await self.db.workers.findWorkerId("linux")
        return workerid

    async def test_a_read_sees_the_configure_handed_over(self) -> None:
        """The read right after a configure of this master's builders shows them."""
        workerid = await self._linux_on_builder_20()
        await self.db.workers.workerConfigured(workerid, MASTER, [20])
        found = await self.db.workers.getWorker(workerid)
        assert [(20, MASTER)] == [(p.builderid, p.masterid) for p in found.configured_on]

    async def test_a_configure_lost_in_an_outage_is_sent_again(self) -> None:
        """Handed over just as registryd stops: it reaches registryd once it is back."""
        workerid = await self._linux_on_builder_20()
        self.component.remote.link.settings = type(self.component.remote.link.settings)(
            AMQP_URL, self.registry.prefix, timeout=1.0
        )
        self.registry.halt()
        await self.db.workers.workerConfigured(workerid, MASTER, [20])
        link = self.component.remote.link

        async def lost() -> bool:
            return link.down

        self.registry.run(wait_until(lost, 10, "the handed-over configure times out"), 15)
        self.registry.resume()

        async def configured(c: RegistryClient) -> bool:
            record = await c.get_worker(name="linux")
            return record is not None and [p.builderid for p in record.configured_on] == [20]

        self.registry.wait_for(configured, "the lost configure reaches registryd", timeout=20)


class Recovery(RegistryMasterCase):
    """A lapsed lease or a registry reset is repaired at the next heartbeat."""

    daemon_settings = {"master_lease": 2.0}  # noqa: RUF012 - read-only per class

    async def _connected_linux(self) -> int:
        workerid: int = await self.db.workers.findWorkerId("linux")
        await self.db.workers.workerConnected(workerid, MASTER, {"host": "h"})
        await self.db.workers.set_worker_paused(workerid, paused=True, pause_reason="kept")
        return workerid

    def _linux(self) -> Worker:
        return _record(self.registry.client_call(lambda c: c.get_worker(name="linux")))

    async def test_lapsed_lease_is_repaired_at_the_next_beat(self) -> None:
        """Heartbeats stopped past the lease: registryd expires the master; a beat reconnects."""
        await self._connected_linux()
        await self.component.bridge.call(_cancel(self.component.liveness), 5)

        async def expired(c: RegistryClient) -> bool:
            record = await c.get_worker(name="linux")
            return record is not None and record.connected_to == []

        self.registry.wait_for(expired, "registryd expires the silent master", timeout=15)
        await self.component.bridge.call(self.component.liveness.beat(), 10)
        assert [MASTER] == self._linux().connected_to

    async def test_reset_registry_is_announced_again(self) -> None:
        """registryd's state lost (new epoch): the next beat re-creates the workers' state."""
        await self._connected_linux()
        self.registry.halt()
        self.registry.run(drop_prefix(self.registry.prefix), 20)
        self.registry.resume()
        await self.component.bridge.call(self.component.liveness.beat(), 10)
        record = self._linux()
        assert ([MASTER], True, "kept", {"host": "h"}) == (
            record.connected_to,
            record.paused,
            record.pause_reason,
            record.workerinfo,
        )


async def _cancel(liveness: Any) -> None:
    """Stop the heartbeat task, as a hung loop would."""
    task = liveness._task
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _failure_time(call: Any) -> float:
    """Seconds until ``call()`` fails with RegistryUnreachable (fails the test otherwise)."""
    started = time.monotonic()
    try:
        await call()
    except RegistryUnreachable:
        return time.monotonic() - started
    raise AssertionError("the call succeeded while registryd was down")


def _state(master: Master | None) -> tuple[bool, str | None]:
    assert master is not None
    return master.active, master.name


def _record(worker: Worker | None) -> Worker:
    assert worker is not None
    return worker
