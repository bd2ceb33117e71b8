"""The fault matrix's rig: a prefix, a subscriber bound before the daemon, the client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection
from redis.asyncio import Redis

from registryd.client import RegistryClient
from tests.harness import AMQP_URL, REDIS_URL, Wire, clean_prefix, unique_prefix
from tests.harness.faults import Daemons


@dataclass
class Rig:
    """One registry under test: its prefix, daemons, wire (subscriber) and client."""

    prefix: str
    amqp: AbstractConnection
    wire: Wire
    client: RegistryClient
    daemons: Daemons


Open = Callable[..., AbstractAsyncContextManager[Rig]]


@pytest.fixture
def rig(tmp_path: Path) -> Open:
    """Opens daemons serving a new prefix, as an async context manager of a Rig.

    The wire subscribes before the first daemon starts, so it sees every notification
    from the first reset on; everything is stopped and deleted afterwards.
    """

    @contextlib.asynccontextmanager
    async def open_rig(
        *, redis_url: str = REDIS_URL, daemons: int = 1, **env: str
    ) -> AsyncIterator[Rig]:
        prefix = unique_prefix()
        amqp = await aio_pika.connect(AMQP_URL)
        try:
            wire = await Wire.open(amqp, prefix, redis_url=redis_url)
            with contextlib.ExitStack() as stack:
                group = Daemons(tmp_path, prefix, stack, REGISTRYD_REDIS_URL=redis_url, **env)
                for _ in range(daemons):
                    await group.start()
                await wire.attach()
                client = await RegistryClient.connect(AMQP_URL, prefix, timeout=10)
                try:
                    yield Rig(prefix, amqp, wire, client, group)
                finally:
                    await client.close()
                    await wire.close()
        finally:
            redis = Redis.from_url(redis_url)
            with contextlib.suppress(Exception):  # a private Redis may be gone already
                await clean_prefix(amqp, redis, prefix)
            await redis.aclose()
            await amqp.close()

    return open_rig
