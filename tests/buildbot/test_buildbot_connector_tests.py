"""Buildbot's own unit tests of the workers connector, run through the registryd component.

Ported from ``master/buildbot/test/unit/db/test_workers.py`` (Buildbot 4.x): the same
fixture rows, inserted with ``insert_test_data``, and the same expected records, with
``master.db.workers`` replaced by :func:`registryd.buildbot.install`.
"""

# Buildbot's own test names (camelCase API names) are kept, so the two can be compared.
# ruff: noqa: N802
from __future__ import annotations

import inspect
from typing import Any

import pytest
from buildbot.db.workers import BuilderMasterModel, WorkerModel, WorkersConnectorComponent
from buildbot.test import fakedb

from registryd.buildbot import RegistryWorkersComponent
from tests.buildbot.fakes import RegistryMasterCase

pytestmark = pytest.mark.integration

BASE_ROWS = [
    fakedb.Master(id=10, name="m10"),
    fakedb.Master(id=11, name="m11"),
    fakedb.Builder(id=20, name="a"),
    fakedb.Builder(id=21, name="b"),
    fakedb.Builder(id=22, name="c"),
    fakedb.Worker(id=30, name="zero"),
    fakedb.Worker(id=31, name="one"),
]

MULTIPLE_MASTERS = [
    fakedb.BuilderMaster(id=12, builderid=20, masterid=10),
    fakedb.BuilderMaster(id=13, builderid=21, masterid=10),
    fakedb.BuilderMaster(id=14, builderid=20, masterid=11),
    fakedb.BuilderMaster(id=15, builderid=22, masterid=11),
    fakedb.BuilderMaster(id=16, builderid=22, masterid=10),
    fakedb.ConfiguredWorker(id=3012, workerid=30, buildermasterid=12),
    fakedb.ConfiguredWorker(id=3013, workerid=30, buildermasterid=13),
    fakedb.ConfiguredWorker(id=3014, workerid=30, buildermasterid=14),
    fakedb.ConfiguredWorker(id=3114, workerid=31, buildermasterid=14),
    fakedb.ConfiguredWorker(id=3115, workerid=31, buildermasterid=15),
    fakedb.ConnectedWorker(id=3010, workerid=30, masterid=10),
    fakedb.ConnectedWorker(id=3111, workerid=31, masterid=11),
]

W1_NAME, W1_ID, W1_INFO = "w1", 100, {"a": 1}
WORKER1_ROWS = [fakedb.Worker(id=W1_ID, name=W1_NAME, info=W1_INFO)]


def pairs(*pairs: tuple[int, int]) -> list[BuilderMasterModel]:
    """``BuilderMasterModel``s from (masterid, builderid), sorted as the tests compare."""
    return [BuilderMasterModel(builderid=b, masterid=m) for m, b in sorted(pairs)]


def worker(
    workerid: int,
    name: str,
    configured_on: list[BuilderMasterModel] | None = None,
    connected_to: list[int] | None = None,
    **fields: Any,
) -> WorkerModel:
    """The expected model, with Buildbot's fixture defaults."""
    fields.setdefault("workerinfo", {"a": "b"})
    return WorkerModel(
        id=workerid,
        name=name,
        configured_on=configured_on or [],
        connected_to=connected_to or [],
        **fields,
    )


def sorted_pairs(model: WorkerModel) -> WorkerModel:
    """``model`` with ``configured_on`` sorted by (masterid, builderid)."""
    model.configured_on = sorted(model.configured_on, key=lambda p: (p.masterid, p.builderid))
    return model


#: The public API of Buildbot 4.3's SQL component (every method the connector defines).
API = sorted(
    name
    for name, value in vars(WorkersConnectorComponent).items()
    if callable(value) and not name.startswith("_")
)


def _parameters(method: Any) -> list[tuple[str, Any, Any]]:
    """(name, kind, default) of each parameter; annotations differ on purpose (typed here)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(method).parameters.values()]


@pytest.mark.parametrize("method", API)
def test_signature_matches_buildbot(method: str) -> None:
    """Each method has exactly Buildbot's parameters, private _workerid/_name included."""
    ours = getattr(RegistryWorkersComponent, method)
    assert _parameters(getattr(WorkersConnectorComponent, method)) == _parameters(ours)


@pytest.mark.parametrize("method", API)
def test_method_is_registryds_own(method: str) -> None:
    """No method falls through to Buildbot's SQL implementation."""
    assert method in vars(RegistryWorkersComponent)


class WorkersConnectorTests(RegistryMasterCase):
    """Buildbot's ``db/test_workers.py`` against the registryd component."""

    async def test_findWorkerId_insert(self) -> None:
        """A new name gets an id and an empty worker."""
        workerid = await self.db.workers.findWorkerId(name="xyz")
        found = await self.db.workers.getWorker(workerid=workerid)
        assert found.name == "xyz"
        assert found.workerinfo == {}

    async def test_findWorkerId_existing(self) -> None:
        """A known name keeps its SQL id."""
        await self.db.insert_test_data(BASE_ROWS)
        assert 31 == await self.db.workers.findWorkerId(name="one")

    async def test_getWorker_no_such(self) -> None:
        """An unknown id is None."""
        await self.db.insert_test_data(BASE_ROWS)
        assert await self.db.workers.getWorker(workerid=99) is None

    async def test_getWorker_by_name_no_such(self) -> None:
        """An unknown name is None."""
        await self.db.insert_test_data(BASE_ROWS)
        assert await self.db.workers.getWorker(name="NOSUCH") is None

    async def test_getWorker_not_configured(self) -> None:
        """A worker of the fixture reads as in SQL."""
        await self.db.insert_test_data(BASE_ROWS)
        assert worker(30, "zero") == await self.db.workers.getWorker(workerid=30)

    async def test_getWorker_connected_not_configured(self) -> None:
        """A worker connected but not configured shows the connection."""
        await self.db.insert_test_data(
            [
                *BASE_ROWS,
                fakedb.Worker(id=32, name="two"),
                fakedb.ConnectedWorker(workerid=32, masterid=11),
            ]
        )
        assert worker(32, "two", connected_to=[11]) == await self.db.workers.getWorker(workerid=32)

    async def test_getWorker_multiple_connections(self) -> None:
        """A worker connected to two masters lists both, and both pairs."""
        await self.db.insert_test_data(
            [
                *BASE_ROWS,
                fakedb.Worker(id=32, name="two"),
                fakedb.ConnectedWorker(workerid=32, masterid=10),
                fakedb.ConnectedWorker(workerid=32, masterid=11),
                fakedb.BuilderMaster(id=24, builderid=20, masterid=10),
                fakedb.BuilderMaster(id=25, builderid=20, masterid=11),
                fakedb.ConfiguredWorker(workerid=32, buildermasterid=24),
                fakedb.ConfiguredWorker(workerid=32, buildermasterid=25),
            ]
        )
        expected = worker(32, "two", pairs((10, 20), (11, 20)), [10, 11])
        assert expected == await self.db.workers.getWorker(workerid=32)

    async def test_getWorker_by_name_not_configured(self) -> None:
        """getWorker by name finds the fixture's worker."""
        await self.db.insert_test_data(BASE_ROWS)
        assert worker(30, "zero") == await self.db.workers.getWorker(name="zero")

    async def test_getWorker_connected(self) -> None:
        """A configured, connected worker shows both."""
        await self.db.insert_test_data(
            [
                *BASE_ROWS,
                fakedb.BuilderMaster(id=12, builderid=20, masterid=10),
                fakedb.ConfiguredWorker(workerid=30, buildermasterid=12),
                fakedb.ConnectedWorker(workerid=30, masterid=10),
            ]
        )
        expected = worker(30, "zero", pairs((10, 20)), [10])
        assert expected == await self.db.workers.getWorker(workerid=30)

    async def test_getWorker_with_multiple_masters(self) -> None:
        """Every pair of every master is listed."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        found = sorted_pairs(await self.db.workers.getWorker(workerid=30))
        assert worker(30, "zero", pairs((10, 20), (10, 21), (11, 20)), [10]) == found

    async def test_getWorker_with_multiple_masters_builderid(self) -> None:
        """A builderid filter keeps that builder's pairs, connections untouched."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        found = sorted_pairs(await self.db.workers.getWorker(workerid=30, builderid=20))
        assert worker(30, "zero", pairs((10, 20), (11, 20)), [10]) == found

    async def test_getWorker_with_multiple_masters_masterid(self) -> None:
        """A masterid filter cuts pairs and connections down to that master."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        found = await self.db.workers.getWorker(workerid=30, masterid=11)
        assert worker(30, "zero", pairs((11, 20))) == found

    async def test_getWorker_with_multiple_masters_builderid_masterid(self) -> None:
        """Both filters apply to the same pair."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        found = await self.db.workers.getWorker(workerid=30, builderid=20, masterid=11)
        assert worker(30, "zero", pairs((11, 20))) == found

    async def test_getWorker_by_name_with_multiple_masters_builderid_masterid(self) -> None:
        """Both filters apply by name too."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        found = await self.db.workers.getWorker(name="zero", builderid=20, masterid=11)
        assert worker(30, "zero", pairs((11, 20))) == found

    async def test_getWorkers_no_config(self) -> None:
        """Every worker is listed, by id."""
        await self.db.insert_test_data(BASE_ROWS)
        assert [worker(30, "zero"), worker(31, "one")] == await self.db.workers.getWorkers()

    async def test_getWorkers_with_config(self) -> None:
        """The unfiltered listing has every pair and connection."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        found = [sorted_pairs(w) for w in await self.db.workers.getWorkers()]
        assert [
            worker(30, "zero", pairs((10, 20), (10, 21), (11, 20)), [10]),
            worker(31, "one", pairs((11, 20), (11, 22)), [11]),
        ] == found

    async def test_getWorkers_empty(self) -> None:
        """No pair matches both filters: nothing is listed."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        assert [] == await self.db.workers.getWorkers(masterid=11, builderid=21)

    async def test_getWorkers_with_config_builderid(self) -> None:
        """builderid lists the workers on that builder, with those pairs."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        found = [sorted_pairs(w) for w in await self.db.workers.getWorkers(builderid=20)]
        assert [
            worker(30, "zero", pairs((10, 20), (11, 20)), [10]),
            worker(31, "one", pairs((11, 20)), [11]),
        ] == found

    async def test_getWorkers_with_config_masterid_10(self) -> None:
        """masterid 10 lists its worker with its pairs and connection."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        found = [sorted_pairs(w) for w in await self.db.workers.getWorkers(masterid=10)]
        assert [worker(30, "zero", pairs((10, 20), (10, 21)), [10])] == found

    async def test_getWorkers_with_config_masterid_11(self) -> None:
        """masterid 11 lists both workers, connections cut down to 11."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        found = [sorted_pairs(w) for w in await self.db.workers.getWorkers(masterid=11)]
        assert [
            worker(30, "zero", pairs((11, 20))),
            worker(31, "one", pairs((11, 20), (11, 22)), [11]),
        ] == found

    async def test_getWorkers_with_config_masterid_11_builderid_22(self) -> None:
        """Both filters: the one worker with that pair."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        found = await self.db.workers.getWorkers(masterid=11, builderid=22)
        assert [worker(31, "one", pairs((11, 22)), [11])] == found

    async def test_getWorkers_with_paused(self) -> None:
        """paused=True lists the paused worker only."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        await self.db.workers.set_worker_paused(31, paused=True, pause_reason="reason")
        await self.db.workers.set_worker_graceful(31, graceful=False)
        found = await self.db.workers.getWorkers(paused=True)
        for model in found:
            model.configured_on = []
        expected = worker(31, "one", connected_to=[11], paused=True, pause_reason="reason")
        assert [expected] == found

    async def test_getWorkers_with_graceful(self) -> None:
        """graceful=True lists the graceful worker only."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        await self.db.workers.set_worker_paused(31, paused=False)
        await self.db.workers.set_worker_graceful(31, graceful=True)
        found = await self.db.workers.getWorkers(graceful=True)
        for model in found:
            model.configured_on = []
        assert [worker(31, "one", connected_to=[11], graceful=True)] == found

    async def test_workerConnected_existing(self) -> None:
        """A connect adds the master and replaces the info."""
        await self.db.insert_test_data(BASE_ROWS + WORKER1_ROWS)
        new_info = {"other": [1, 2, 3]}
        await self.db.workers.workerConnected(workerid=W1_ID, masterid=11, workerinfo=new_info)
        assert worker(
            W1_ID, W1_NAME, workerinfo=new_info, connected_to=[11]
        ) == await self.db.workers.getWorker(W1_ID)

    async def test_workerConnected_already_connected(self) -> None:
        """A second connect to the same master lists it once."""
        await self.db.insert_test_data(
            [
                *BASE_ROWS,
                *WORKER1_ROWS,
                fakedb.ConnectedWorker(id=888, workerid=W1_ID, masterid=11),
            ]
        )
        await self.db.workers.workerConnected(workerid=W1_ID, masterid=11, workerinfo={})
        assert [11] == (await self.db.workers.getWorker(W1_ID)).connected_to

    async def test_workerDisconnected(self) -> None:
        """A disconnect removes that one master."""
        await self.db.insert_test_data(
            [
                *BASE_ROWS,
                *WORKER1_ROWS,
                fakedb.ConnectedWorker(id=888, workerid=W1_ID, masterid=10),
                fakedb.ConnectedWorker(id=889, workerid=W1_ID, masterid=11),
            ]
        )
        await self.db.workers.workerDisconnected(workerid=W1_ID, masterid=11)
        assert [10] == (await self.db.workers.getWorker(W1_ID)).connected_to

    async def test_workerDisconnected_already_disconnected(self) -> None:
        """Disconnecting a worker that is not connected is a no-op."""
        await self.db.insert_test_data(BASE_ROWS + WORKER1_ROWS)
        await self.db.workers.workerDisconnected(workerid=W1_ID, masterid=11)
        assert [] == (await self.db.workers.getWorker(W1_ID)).connected_to

    async def test_set_worker_paused_existing(self) -> None:
        """Pausing stores the flag and reason, unpausing clears both."""
        await self.db.insert_test_data(BASE_ROWS + WORKER1_ROWS)
        await self.db.workers.set_worker_paused(W1_ID, paused=False, pause_reason=None)
        assert worker(W1_ID, W1_NAME, workerinfo=W1_INFO) == await self.db.workers.getWorker(W1_ID)
        await self.db.workers.set_worker_paused(W1_ID, paused=True, pause_reason="reason")
        assert worker(
            W1_ID, W1_NAME, workerinfo=W1_INFO, paused=True, pause_reason="reason"
        ) == await self.db.workers.getWorker(W1_ID)

    async def test_set_worker_graceful_existing(self) -> None:
        """The graceful flag is stored."""
        await self.db.insert_test_data(BASE_ROWS + WORKER1_ROWS)
        await self.db.workers.set_worker_graceful(W1_ID, graceful=True)
        assert worker(
            W1_ID, W1_NAME, workerinfo=W1_INFO, graceful=True
        ) == await self.db.workers.getWorker(W1_ID)

    async def test_workerConfigured(self) -> None:
        """After a deconfigure, a configure sets this master's builders only."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        await self.db.workers.deconfigureAllWorkersForMaster(masterid=10)
        await self.db.workers.workerConfigured(workerid=30, masterid=10, builderids=[20, 22])
        found = sorted_pairs(await self.db.workers.getWorker(30))
        assert pairs((10, 20), (10, 22), (11, 20)) == found.configured_on

    async def test_workerConfiguredTwice(self) -> None:
        """A second configure replaces the list (no duplicate pairs)."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        await self.db.workers.deconfigureAllWorkersForMaster(masterid=10)
        await self.db.workers.workerConfigured(workerid=30, masterid=10, builderids=[20, 22])
        await self.db.workers.workerConfigured(workerid=30, masterid=10, builderids=[20, 21, 22])
        found = sorted_pairs(await self.db.workers.getWorker(30))
        assert pairs((10, 20), (10, 21), (10, 22), (11, 20)) == found.configured_on

    async def test_workerReConfigured(self) -> None:
        """A configure removes builder 21 and adds 22 on that master."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        await self.db.workers.workerConfigured(workerid=30, masterid=10, builderids=[20, 22])
        found = sorted_pairs(await self.db.workers.getWorker(30))
        assert pairs((10, 20), (10, 22), (11, 20)) == found.configured_on

    async def test_workerReConfigured_should_not_affect_other_worker(self) -> None:
        """Configuring one worker leaves the others alone (Buildbot #3392)."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        await self.db.workers.workerConfigured(workerid=30, masterid=11, builderids=[])
        zero = sorted_pairs(await self.db.workers.getWorker(30))
        one = sorted_pairs(await self.db.workers.getWorker(31))
        assert pairs((10, 20), (10, 21)) == zero.configured_on
        assert pairs((11, 20), (11, 22)) == one.configured_on

    async def test_workerUnconfigured(self) -> None:
        """An empty list removes every pair of that master."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        await self.db.workers.workerConfigured(workerid=30, masterid=10, builderids=[])
        found = await self.db.workers.getWorker(30)
        assert pairs((11, 20)) == found.configured_on

    async def test_nothingConfigured(self) -> None:
        """Deconfigure then an empty configure keeps the other master's pairs."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        await self.db.workers.deconfigureAllWorkersForMaster(masterid=10)
        await self.db.workers.workerConfigured(workerid=30, masterid=10, builderids=[])
        found = await self.db.workers.getWorker(30)
        assert pairs((11, 20)) == found.configured_on

    async def test_deconfiguredAllWorkers(self) -> None:
        """deconfigureAllWorkersForMaster empties that master's listing."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        assert 2 == len(await self.db.workers.getWorkers(masterid=11))
        await self.db.workers.deconfigureAllWorkersForMaster(masterid=11)
        assert [] == await self.db.workers.getWorkers(masterid=11)

    async def test_workerConfigured_drops_builders_without_builder_master(self) -> None:
        """As in SQL, a builder id with no builder_masters row on the master is dropped."""
        await self.db.insert_test_data(BASE_ROWS + MULTIPLE_MASTERS)
        await self.db.workers.workerConfigured(workerid=31, masterid=11, builderids=[20, 21, 99])
        found = await self.db.workers.getWorker(31)
        assert pairs((11, 20)) == found.configured_on

    async def test_workerConfiguredMany(self) -> None:
        """1,000 workers on one builder of a master: deconfiguring the master empties them."""
        many = [
            fakedb.BuilderMaster(id=1000, builderid=20, masterid=10),
            *(fakedb.Worker(id=50 + n, name=f"zero{n}") for n in range(1000)),
            *(
                fakedb.ConfiguredWorker(id=n + 3000, workerid=50 + n, buildermasterid=1000)
                for n in range(1000)
            ),
        ]
        await self.db.insert_test_data(BASE_ROWS + many)
        assert 1000 == len(await self.db.workers.getWorkers(masterid=10))
        await self.db.workers.deconfigureAllWorkersForMaster(masterid=10)
        assert [] == (await self.db.workers.getWorker(30)).configured_on
        assert [] == await self.db.workers.getWorkers(masterid=10)
