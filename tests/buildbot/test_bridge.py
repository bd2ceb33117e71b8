"""The asyncio-in-a-thread bridge: results, errors, timeouts, cancellation, blocking mode.

These run on Twisted's real (global) reactor, which trial spins while a test's Deferred
is pending, except the blocking-mode ones, which use Buildbot's test reactor.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from typing import Any, cast

import pytest
from buildbot.test.fake import reactor as fake_reactor
from twisted.internet import defer
from twisted.internet import reactor as global_reactor
from twisted.internet.interfaces import IReactorThreads
from twisted.trial import unittest

from registryd.buildbot.bridge import Bridge, BridgeClosed, runs_inline

#: Twisted's global reactor, as the interface the bridge needs.
REACTOR = cast(IReactorThreads, global_reactor)


class Boom(Exception):
    """An error raised on the loop."""


class BridgeOnRealReactor(unittest.TestCase):
    """A bridge whose Deferreds fire through the real reactor's ``callFromThread``."""

    def setUp(self) -> None:
        """A bridge on the global reactor, closed afterwards."""
        self.bridge = Bridge(REACTOR)
        self.addCleanup(self.bridge.close)

    def test_real_reactor_is_not_blocking(self) -> None:
        """callFromThread queues on a real reactor: the bridge does not block."""
        assert not self.bridge.blocking

    async def test_result_arrives_in_the_reactor_thread(self) -> None:
        """The coroutine runs on the loop's thread; the Deferred fires in the reactor's."""
        seen: dict[str, str] = {}

        async def work() -> int:
            seen["loop"] = threading.current_thread().name
            return 42

        result = await self.bridge.call(work(), 5)
        assert (42, "registryd-bridge", threading.current_thread().name) == (
            result,
            seen["loop"],
            threading.main_thread().name,
        )

    async def test_error_is_the_coroutines(self) -> None:
        """An exception of the coroutine fails the Deferred with that exception."""

        async def fail() -> None:
            raise Boom("no")

        with pytest.raises(Boom):
            await self.bridge.call(fail(), 5)

    async def test_timeout_cancels_the_coroutine(self) -> None:
        """Past its timeout the coroutine is cancelled and the call fails with TimeoutError."""
        cancelled = threading.Event()

        async def hang() -> None:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        with pytest.raises(TimeoutError):
            await self.bridge.call(hang(), 0.2)
        assert cancelled.wait(5)

    async def test_cancelling_the_deferred_cancels_the_coroutine(self) -> None:
        """Deferred.cancel() cancels the coroutine and fails with CancelledError."""
        started, cancelled = threading.Event(), threading.Event()

        async def hang() -> None:
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        deferred = self.bridge.call(hang(), 30)
        assert started.wait(5)
        deferred.cancel()
        with pytest.raises(defer.CancelledError):
            await deferred
        assert cancelled.wait(5)

    async def test_closed_bridge_fails_at_once(self) -> None:
        """After close() a call fails with BridgeClosed, leaving no un-awaited coroutine."""
        self.bridge.close()

        async def work() -> int:
            return 1

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            deferred = self.bridge.call(work(), 5)
        assert deferred.called
        with pytest.raises(BridgeClosed):
            await deferred

    async def test_close_cancels_what_still_runs(self) -> None:
        """close() cancels pending coroutines; their calls fail, none is left running."""
        started = threading.Event()

        async def hang() -> None:
            started.set()
            await asyncio.sleep(60)

        deferred = self.bridge.call(hang(), 30)
        assert started.wait(5)
        self.bridge.close()
        with pytest.raises(defer.CancelledError):
            await deferred


class BridgeOnTestReactor(unittest.TestCase):
    """Under Buildbot's test reactor, callFromThread runs inline: the bridge blocks."""

    def setUp(self) -> None:
        """A bridge on a TestReactor."""
        self.test_reactor: Any = fake_reactor.TestReactor()
        self.bridge = Bridge(self.test_reactor)
        self.addCleanup(self.bridge.close)

    def test_test_reactor_is_detected(self) -> None:
        """runs_inline() recognises the test reactor; the real one queues."""
        assert (True, False) == (runs_inline(self.test_reactor), runs_inline(REACTOR))

    def test_blocking_call_has_fired_when_returned(self) -> None:
        """In blocking mode the Deferred carries the result as soon as call() returns."""

        async def work() -> str:
            await asyncio.sleep(0.05)
            return "done"

        results: list[str] = []
        self.bridge.call(work(), 5).addCallback(results.append)
        assert ["done"] == results

    def test_blocking_timeout_fails_the_call(self) -> None:
        """In blocking mode too, a call past its timeout fails with TimeoutError."""

        async def hang() -> None:
            await asyncio.sleep(60)

        failures: list[Any] = []
        self.bridge.call(hang(), 0.2).addErrback(failures.append)
        assert [TimeoutError] == [f.type for f in failures]
