"""A daemon serving in the test's own event loop: the fast way to run ``registryd serve``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractConnection

from registryd.config import Settings
from registryd.daemon import Daemon
from tests.harness.services import wait_for
from tests.harness.wire import Wire

__all__ = ["RunningDaemon", "serving", "start_daemon", "start_daemon_unready"]


@dataclass
class RunningDaemon:
    """A daemon serving in this event loop."""

    daemon: Daemon
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Ask it to stop and wait until :meth:`Daemon.serve` returns (again: no-op)."""
        if not self.task.done():
            self.daemon.request_stop()
        await asyncio.wait_for(self.task, 30)


async def start_daemon(settings: Settings) -> RunningDaemon:
    """Start a daemon and wait until it is ready (consuming, both backends answering)."""
    daemon = Daemon(settings)
    task = asyncio.create_task(daemon.serve())
    await wait_for(lambda: daemon.health.ready or task.done(), 20)
    if task.done():
        task.result()
    return RunningDaemon(daemon, task)


async def start_daemon_unready(settings: Settings) -> RunningDaemon:
    """Start a daemon that cannot become ready yet; wait until it serves RPC."""
    daemon = Daemon(settings)
    task = asyncio.create_task(daemon.serve())
    await wait_for(lambda: daemon.health.serving_rpc, 20)
    return RunningDaemon(daemon, task)


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, amqp: AbstractConnection, *, fresh: bool = True, **update: Any
) -> AsyncIterator[Wire]:
    """A daemon with ``settings`` (updated) and a wire subscribed before it starts.

    ``fresh``: the prefix is new, so the first notification is the reset; it is taken
    into :attr:`Wire.reset`. The wire settles on the daemon's Redis.
    """
    settings = settings.model_copy(update=update)
    wire = await Wire.open(amqp, settings.prefix, redis_url=settings.redis_url)
    try:
        wire.daemon = running = await start_daemon(settings)
        try:
            await wire.attach()
            if fresh:
                wire.reset = (await wire.notes(1))[0]
            yield wire
        finally:
            await running.stop()
    finally:
        await wire.close()
