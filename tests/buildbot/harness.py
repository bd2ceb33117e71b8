"""registryd daemons for the Buildbot tests: in a thread, or as a process, on a fresh prefix.

Everything is cleaned up by prefix afterwards: the Redis keys ``{<prefix>}:...`` and the
RabbitMQ queues and exchanges ``<prefix>.*`` (PROTOCOL.md's names).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aio_pika
from redis.asyncio import Redis

from registryd.client import RegistryClient
from registryd.config import Settings
from registryd.daemon import Daemon

REDIS_URL = os.environ.get("REGISTRYD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("REGISTRYD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

_T = TypeVar("_T")


def unique_prefix() -> str:
    """A prefix no other test (or run) uses."""
    return f"tb-{uuid.uuid4().hex[:12]}"


async def drop_prefix(prefix: str) -> None:
    """Delete every Redis key and RabbitMQ queue and exchange of ``prefix``."""
    redis = Redis.from_url(REDIS_URL)
    try:
        pattern = "\\{" + prefix + "\\}:*"
        keys = [key async for key in redis.scan_iter(match=pattern, count=1000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
    finally:
        await redis.aclose()
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for queue in ("events", "rpc", "dead"):
            await channel.queue_delete(f"{prefix}.{queue}")
        for exchange in ("events", "notifications", "dead"):
            await channel.exchange_delete(f"{prefix}.{exchange}")


async def wait_until(
    condition: Callable[[], Awaitable[bool]], timeout: float, what: str, step: float = 0.05
) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(step)


class ThreadDaemon:
    """A registryd daemon serving a fresh prefix on an event loop of its own thread."""

    def __init__(self, **settings: Any) -> None:
        self.prefix = unique_prefix()
        self.settings = Settings(
            prefix=self.prefix,
            amqp_url=AMQP_URL,
            redis_url=REDIS_URL,
            metrics_port=0,
            grace=5.0,
            **settings,
        )
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._task: asyncio.Task[None] | None = None
        self.resume()

    def resume(self) -> None:
        """Start a daemon (again) on the prefix and wait until it is ready."""
        self.daemon = Daemon(self.settings)
        self._task = self.run(self._start(), 30)

    async def _start(self) -> asyncio.Task[None]:
        task = asyncio.create_task(self.daemon.serve())
        deadline = time.monotonic() + 20
        while not self.daemon.health.ready and not task.done():
            if time.monotonic() > deadline:
                raise AssertionError("registryd did not become ready within 20 s")
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        return task

    def halt(self) -> None:
        """Stop the daemon; its prefix (state, queues) stays for :meth:`resume`."""
        task, self._task = self._task, None
        if task is not None:
            self.daemon.request_stop()
            self.run(asyncio.wait_for(task, 20), 25)

    def run(self, coro: Awaitable[_T], timeout: float = 10) -> _T:
        """Run ``coro`` on the daemon's loop and wait for its result."""

        async def bounded() -> _T:
            return await asyncio.wait_for(coro, timeout)

        return asyncio.run_coroutine_threadsafe(bounded(), self.loop).result(timeout + 5)

    def client_call(self, call: Callable[[RegistryClient], Awaitable[_T]]) -> _T:
        """``call(client)`` with a registry client of the test's own."""

        async def once() -> _T:
            async with await RegistryClient.connect(AMQP_URL, self.prefix) as client:
                return await call(client)

        return self.run(once())

    def wait_for(
        self, condition: Callable[[RegistryClient], Awaitable[bool]], what: str, timeout: float = 10
    ) -> None:
        """Poll ``condition(client)`` until it holds (fail after ``timeout`` s)."""

        async def poll() -> None:
            async with await RegistryClient.connect(AMQP_URL, self.prefix) as client:
                await wait_until(lambda: condition(client), timeout, what)

        self.run(poll(), timeout + 5)

    def stop(self) -> None:
        """Stop the daemon, drop its prefix, end the thread."""
        try:
            with contextlib.suppress(Exception):
                self.halt()
            self.run(drop_prefix(self.prefix), 20)
            # Not through run(): its wrapper task would be among the cancelled.
            asyncio.run_coroutine_threadsafe(_cancel_others(), self.loop).result(15)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()
            _finalise_leftovers(self)


async def _cancel_others() -> None:
    """Cancel and await every other task of the running loop (the daemon's stragglers)."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _finalise_leftovers(daemon: ThreadDaemon) -> None:
    """Collect what the stopped daemon left open, here rather than in a later test.

    The daemon bounds its shutdown (a broker close gets 1 s, ``redis.aclose()`` 5 s); on
    a loaded machine a close can run out of time and leave sockets to the garbage
    collector, whose ``ResourceWarning`` would then fail whichever test happens to run.
    """
    del daemon.daemon
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
