"""The conformance suite's shared registry for case tables of refusals.

Most tests get a fresh registry of their own (the ``wire`` fixture). A table of cases
that must each change nothing (refused requests, dead-lettered events) shares one
registry per module instead, in the module's event loop: a daemon per case would cost
more than the whole suite used to. Each such case proves it changed nothing (the revision
stays), so sharing cannot hide one case's effect from another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from tests.harness import (
    AMQP_URL,
    REDIS_URL,
    Wire,
    clean_prefix,
    daemon_settings,
    serving,
    unique_prefix,
)

#: The mark of a module whose tests share one registry (they run in the module's loop).
SHARED = pytest.mark.asyncio(loop_scope="module")


async def shared_registry(**update: Any) -> AsyncIterator[Wire]:
    """A fresh registry under a prefix of its own, served until the module ends."""
    prefix = unique_prefix()
    connection = await aio_pika.connect(AMQP_URL)
    redis = Redis.from_url(REDIS_URL)
    try:
        async with serving(daemon_settings(prefix), connection, **update) as wire:
            yield wire
    finally:
        await clean_prefix(connection, redis, prefix)
        await redis.aclose()
        await connection.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared() -> AsyncIterator[Wire]:
    """One registry for a module's table of refusals; its reset already taken."""
    async for wire in shared_registry():
        yield wire


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_worker(shared: Wire) -> int:
    """The id of worker ``w`` in the shared registry (the one the refusals aim at)."""
    workerid: int = await shared.ok("findWorkerId", {"name": "w"})
    return workerid
