"""A fake Buildbot master whose workers live in registryd, for trial-style test cases."""

from __future__ import annotations

from typing import Any

from buildbot.test.fake import fakemaster
from buildbot.test.reactor import TestReactorMixin
from twisted.internet import defer
from twisted.trial import unittest

from registryd.buildbot import RegistryWorkersComponent, install
from tests.buildbot.harness import AMQP_URL, ThreadDaemon


class RegistryMasterCase(TestReactorMixin, unittest.TestCase):  # type: ignore[misc] # untyped base
    """Buildbot's fake master (a real in-memory SQLite) with ``install()`` applied.

    Each test gets a registryd daemon of its own on a fresh prefix, in a thread.
    """

    #: Also the fake MQ and the data API (Buildbot's data tests need them).
    want_data = False
    #: Settings of the test's daemon.
    daemon_settings: dict[str, Any] = {}  # noqa: RUF012 - read-only per class

    master: Any
    db: Any
    component: RegistryWorkersComponent
    registry: ThreadDaemon

    @defer.inlineCallbacks
    def setUp(self) -> Any:  # type: ignore[override] # trial waits on a returned Deferred
        """Start the daemon, make the fake master, install the component."""
        self.setup_test_reactor()
        self.registry = ThreadDaemon(**self.daemon_settings)
        self.addCleanup(self.registry.stop)
        self.master = yield fakemaster.make_master(
            self, wantDb=True, wantMq=self.want_data, wantData=self.want_data
        )
        self.component = install(self.master, amqp_url=AMQP_URL, prefix=self.registry.prefix)
        self.db = self.master.db
