"""A private asyncio loop in a thread, and Deferreds for the coroutines run on it.

Buildbot runs on Twisted, whatever reactor it is given; the registry client runs on
asyncio. The bridge owns one event loop in a daemon thread: :meth:`Bridge.call` hands a
coroutine to it with ``run_coroutine_threadsafe`` and returns a Deferred that fires in
the reactor thread (through ``reactor.callFromThread``). Cancelling the Deferred cancels
the coroutine; every call is bounded by a timeout.

Under Buildbot's ``TestReactorMixin``, ``callFromThread`` runs its callable at once in
the calling thread, which would fire Deferreds from the loop's thread. The bridge
detects such a reactor and then blocks on each result instead (``blocking``), which is
how that test reactor treats its thread pool too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, Final, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IReactorThreads

__all__ = ["Bridge", "BridgeClosed", "runs_inline"]

_T = TypeVar("_T")
#: Extra time a blocking caller waits beyond the call's own timeout: the coroutine
#: is cancelled at its timeout, this only guards against a loop that stopped turning.
_BLOCKING_SLACK: Final = 5.0


class BridgeClosed(RuntimeError):
    """The bridge was closed: no coroutine runs on its loop any more."""


def runs_inline(reactor: IReactorThreads) -> bool:
    """Whether ``reactor.callFromThread`` runs its callable immediately (test reactors)."""
    ran: list[int] = []
    reactor.callFromThread(ran.append, 1)
    return bool(ran)


class Bridge:
    """One asyncio loop in a daemon thread, called from the Twisted reactor thread."""

    def __init__(
        self, reactor: IReactorThreads, *, blocking: bool | None = None, name: str = "registryd"
    ) -> None:
        self.reactor = reactor
        #: Block the caller on each result instead of firing Deferreds from the loop.
        self.blocking = runs_inline(reactor) if blocking is None else blocking
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"{name}-bridge", daemon=True)
        self._closed = False
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def submit(
        self, coro: Coroutine[Any, Any, _T], timeout: float | None = None
    ) -> concurrent.futures.Future[_T]:
        """Run ``coro`` on the loop (cancelled after ``timeout`` s); its future, from any thread."""
        if self._closed:
            coro.close()
            raise BridgeClosed("the registryd bridge is closed")
        return asyncio.run_coroutine_threadsafe(_bounded(coro, timeout), self.loop)

    def call(self, coro: Coroutine[Any, Any, _T], timeout: float) -> defer.Deferred[_T]:
        """A Deferred of ``coro`` run on the loop, cancelled after ``timeout`` seconds.

        The Deferred fires in the reactor thread; cancelling it cancels the coroutine.
        In blocking mode it has already fired when it is returned.
        """
        try:
            future = self.submit(coro, timeout)
        except BridgeClosed:
            return defer.fail()
        if self.blocking:
            return _wait(future, timeout + _BLOCKING_SLACK)

        def cancel(_: defer.Deferred[_T]) -> None:
            future.cancel()

        deferred: defer.Deferred[_T] = defer.Deferred(cancel)
        future.add_done_callback(lambda done: self.reactor.callFromThread(_fire, deferred, done))
        return deferred

    def close(self, timeout: float = 5.0) -> None:
        """Cancel what still runs on the loop, stop it and join its thread."""
        if self._closed:
            return
        self._closed = True
        stopped = asyncio.run_coroutine_threadsafe(_cancel_all(), self.loop)
        with contextlib.suppress(
            concurrent.futures.TimeoutError, concurrent.futures.CancelledError
        ):
            stopped.result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


async def _bounded(coro: Coroutine[Any, Any, _T], seconds: float | None) -> _T:
    """``coro`` cancelled after ``seconds`` (``TimeoutError``), if given."""
    async with asyncio.timeout(seconds):
        return await coro


async def _cancel_all() -> None:
    """Cancel every task of the running loop but this one, and wait for them to end."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _wait(future: concurrent.futures.Future[_T], timeout: float) -> defer.Deferred[_T]:
    """A fired Deferred of ``future``'s outcome, waiting for it in this thread."""
    try:
        return defer.succeed(future.result(timeout))
    except concurrent.futures.CancelledError:
        return defer.fail(defer.CancelledError())
    except Exception:  # noqa: BLE001 - every failure goes to the Deferred, as Twisted does
        if future.done():  # the coroutine's own error (TimeoutError included)
            return defer.fail()
        future.cancel()
        return defer.fail(TimeoutError(f"the registryd loop gave no result within {timeout} s"))


def _fire(deferred: defer.Deferred[_T], future: concurrent.futures.Future[_T]) -> None:
    """Fire ``deferred`` with ``future``'s outcome, unless it was cancelled meanwhile."""
    if deferred.called:
        return
    if future.cancelled():
        deferred.errback(defer.CancelledError())
        return
    error = future.exception()
    if error is None:
        deferred.callback(future.result())
    else:
        deferred.errback(error)
