"""Buildbot's own unit tests of the workers data API, run through the registryd component.

Ported from ``master/buildbot/test/unit/data/test_workers.py`` (Buildbot 4.x): the same
rows and expectations, with :func:`registryd.buildbot.install` applied to the fake
master that ``EndpointMixin`` makes. ``/workers/n:ID/builders`` (the builders
component's ``workerid`` filter) is checked the same way.
"""

from __future__ import annotations

from typing import Any

import pytest
from buildbot.data import builders, exceptions, resultspec, workers
from buildbot.test import fakedb
from buildbot.test.util import endpoint
from twisted.internet import defer
from twisted.trial import unittest

from registryd.buildbot import install
from tests.buildbot.harness import AMQP_URL, ThreadDaemon

pytestmark = pytest.mark.integration

TEST_DATA = [
    fakedb.Builder(id=40, name="b1"),
    fakedb.Builder(id=41, name="b2"),
    fakedb.Master(id=13),
    fakedb.Master(id=14),
    fakedb.BuilderMaster(id=4013, builderid=40, masterid=13),
    fakedb.BuilderMaster(id=4014, builderid=40, masterid=14),
    fakedb.BuilderMaster(id=4113, builderid=41, masterid=13),
    fakedb.Worker(id=1, name="linux", info={}),
    fakedb.ConfiguredWorker(id=14013, workerid=1, buildermasterid=4013),
    fakedb.ConfiguredWorker(id=14014, workerid=1, buildermasterid=4014),
    fakedb.ConnectedWorker(id=113, masterid=13, workerid=1),
    fakedb.Worker(id=2, name="windows", info={"a": "b"}),
    fakedb.ConfiguredWorker(id=24013, workerid=2, buildermasterid=4013),
    fakedb.ConfiguredWorker(id=24014, workerid=2, buildermasterid=4014),
    fakedb.ConfiguredWorker(id=24113, workerid=2, buildermasterid=4113),
    fakedb.ConnectedWorker(id=214, masterid=14, workerid=2),
]


def _key(item: dict[str, Any]) -> tuple[int, int]:
    return (item.get("masterid", 0), item.get("builderid", 0))


def _filtered(data: dict[str, Any], builderid: int | None, masterid: int | None) -> dict[str, Any]:
    data["connected_to"] = sorted(
        (d for d in data["connected_to"] if not masterid or masterid == d["masterid"]), key=_key
    )
    data["configured_on"] = sorted(
        (
            d
            for d in data["configured_on"]
            if (not masterid or masterid == d["masterid"])
            and (not builderid or builderid == d["builderid"])
        ),
        key=_key,
    )
    return data


def w1(builderid: int | None = None, masterid: int | None = None) -> dict[str, Any]:
    """Worker 1 as the data API shows it, filtered."""
    return _filtered(
        {
            "workerid": 1,
            "name": "linux",
            "workerinfo": {},
            "paused": False,
            "graceful": False,
            "pause_reason": None,
            "connected_to": [{"masterid": 13}],
            "configured_on": [{"builderid": 40, "masterid": 13}, {"builderid": 40, "masterid": 14}],
        },
        builderid,
        masterid,
    )


def w2(builderid: int | None = None, masterid: int | None = None) -> dict[str, Any]:
    """Worker 2 as the data API shows it, filtered."""
    return _filtered(
        {
            "workerid": 2,
            "name": "windows",
            "workerinfo": {"a": "b"},
            "paused": False,
            "pause_reason": None,
            "graceful": False,
            "connected_to": [{"masterid": 14}],
            "configured_on": [
                {"builderid": 40, "masterid": 13},
                {"builderid": 41, "masterid": 13},
                {"builderid": 40, "masterid": 14},
            ],
        },
        builderid,
        masterid,
    )


class RegistryEndpointMixin(endpoint.EndpointMixin):  # type: ignore[misc] # untyped base
    """``EndpointMixin``'s fake master with the registryd component and the test data."""

    master: Any
    registry: ThreadDaemon

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        """Daemon, endpoint (its fake master), install(), then Buildbot's rows."""
        self.registry = ThreadDaemon()
        self.addCleanup(self.registry.stop)
        yield self.setUpEndpoint()
        install(self.master, amqp_url=AMQP_URL, prefix=self.registry.prefix)
        yield self.master.db.insert_test_data(TEST_DATA)

    def sorted_pairs(self, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` validated, its ``configured_on`` sorted."""
        self.validateData(data)
        data["configured_on"] = sorted(data["configured_on"], key=_key)
        return data


class WorkerEndpoint(RegistryEndpointMixin, unittest.TestCase):  # type: ignore[misc] # setUp -> Deferred
    """``/workers/...`` single-worker endpoints."""

    endpointClass = workers.WorkerEndpoint  # noqa: N815 - EndpointMixin's attribute
    resourceTypeClass = workers.Worker  # noqa: N815 - EndpointMixin's attribute

    async def test_get_existing(self) -> None:
        """By id."""
        assert w2() == self.sorted_pairs(await self.callGet(("workers", 2)))

    async def test_get_existing_name(self) -> None:
        """By name."""
        assert w1() == self.sorted_pairs(await self.callGet(("workers", "linux")))

    async def test_get_existing_masterid(self) -> None:
        """Under a master."""
        got = await self.callGet(("masters", 14, "workers", 2))
        assert w2(masterid=14) == self.sorted_pairs(got)

    async def test_get_existing_builderid(self) -> None:
        """Under a builder."""
        got = await self.callGet(("builders", 40, "workers", 2))
        assert w2(builderid=40) == self.sorted_pairs(got)

    async def test_get_existing_masterid_builderid(self) -> None:
        """Under a master's builder."""
        got = await self.callGet(("masters", 13, "builders", 40, "workers", 2))
        assert w2(masterid=13, builderid=40) == self.sorted_pairs(got)

    async def test_get_missing(self) -> None:
        """An unknown id is None."""
        assert await self.callGet(("workers", 99)) is None

    async def test_set_worker_paused(self) -> None:
        """The update method stores the flag and reason."""
        await self.master.data.updates.set_worker_paused(2, paused=True, pause_reason="reason")
        got = await self.callGet(("workers", 2))
        self.validateData(got)
        assert (True, "reason") == (got["paused"], got["pause_reason"])

    async def test_set_worker_graceful(self) -> None:
        """The update method stores the graceful flag."""
        await self.master.data.updates.set_worker_graceful(2, graceful=True)
        got = await self.callGet(("workers", 2))
        self.validateData(got)
        assert got["graceful"]

    async def test_actions(self) -> None:
        """Control actions find the worker through the component and go to the MQ."""
        for action in ("stop", "pause", "unpause", "kill"):
            await self.callControl(action, {}, ("masters", 13, "builders", 40, "workers", 2))
            self.master.mq.assertProductions(
                [(("control", "worker", "2", action), {"reason": "no reason"})]
            )

    async def test_bad_actions(self) -> None:
        """An unknown action is refused."""
        with pytest.raises(exceptions.InvalidControlException):
            await self.callControl("bad_action", {}, ("masters", 13, "builders", 40, "workers", 2))


class WorkersEndpoint(RegistryEndpointMixin, unittest.TestCase):  # type: ignore[misc] # setUp -> Deferred
    """``/workers`` collection endpoints."""

    endpointClass = workers.WorkersEndpoint  # noqa: N815 - EndpointMixin's attribute
    resourceTypeClass = workers.Worker  # noqa: N815 - EndpointMixin's attribute

    async def test_get(self) -> None:
        """Every worker."""
        got = [self.sorted_pairs(w) for w in await self.callGet(("workers",))]
        assert [w1(), w2()] == got

    async def test_get_masterid(self) -> None:
        """Workers of a master, cut down to it."""
        got = [self.sorted_pairs(w) for w in await self.callGet(("masters", "13", "workers"))]
        assert [w1(masterid=13), w2(masterid=13)] == got

    async def test_get_builderid(self) -> None:
        """Workers of a builder."""
        got = [self.sorted_pairs(w) for w in await self.callGet(("builders", "41", "workers"))]
        assert [w2(builderid=41)] == got

    async def test_get_masterid_builderid(self) -> None:
        """Workers of a master's builder."""
        path = ("masters", "13", "builders", "41", "workers")
        got = [self.sorted_pairs(w) for w in await self.callGet(path)]
        assert [w2(masterid=13, builderid=41)] == got

    async def test_set_worker_paused_find_by_paused(self) -> None:
        """The paused filter of the result spec reaches the component."""
        await self.master.data.updates.set_worker_paused(2, paused=True, pause_reason=None)
        spec = resultspec.OptimisedResultSpec(filters=[resultspec.Filter("paused", "eq", [True])])
        got = await self.callGet(("workers",), resultSpec=spec)
        assert [(2, True)] == [(w["workerid"], w["paused"]) for w in got]


class WorkerBuildersEndpoint(RegistryEndpointMixin, unittest.TestCase):  # type: ignore[misc] # setUp -> Deferred
    """``/workers/n:ID/builders``: the builders component's workerid filter."""

    endpointClass = builders.BuildersEndpoint  # noqa: N815 - EndpointMixin's attribute
    resourceTypeClass = builders.Builder  # noqa: N815 - EndpointMixin's attribute

    async def test_builders_of_worker(self) -> None:
        """A worker's builders, each with the masters of its pairs, as the SQL join gives."""
        got = await self.callGet(("workers", 1, "builders"))
        assert [(40, [13, 14])] == [(b["builderid"], b["masterids"]) for b in got]

    async def test_builders_follow_registry(self) -> None:
        """A configure through the component shows in the listing."""
        await self.master.db.workers.workerConfigured(workerid=1, masterid=13, builderids=[41])
        got = await self.callGet(("workers", 1, "builders"))
        assert [(40, [14]), (41, [13])] == [(b["builderid"], b["masterids"]) for b in got]

    async def test_builders_of_unknown_worker(self) -> None:
        """An unknown worker has no builders."""
        assert [] == await self.callGet(("workers", 99, "builders"))
