"""Fixtures shared by every test: unique prefixes and clean-up on the real services."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import aio_pika
import pytest
from aio_pika.abc import AbstractConnection
from hypothesis import settings as hypothesis_settings
from redis.asyncio import Redis

from registryd.amqp.topology import delete_topology
from registryd.config import Settings
from registryd.protocol import Names
from registryd.service import Registry
from registryd.store import Keys, RedisStore, StoreSettings
from tests.harness import (
    AMQP_URL,
    PREFIXES,
    REDIS_URL,
    PrivateRedis,
    RunningDaemon,
    Wire,
    clean_prefix,
    daemon_settings,
    left_behind,
    serving,
    start_daemon,
    unique_prefix,
)

#: Hypothesis profiles. ``ci``, the default, is bounded: a fixed number of examples and
#: no per-example deadline (a live daemon's round trips vary with the machine's load).
#: ``long`` is for a run by hand: ``pytest --hypothesis-profile=long`` or
#: ``REGISTRYD_HYPOTHESIS_PROFILE=long``. Tests that fix their own counts keep them.
hypothesis_settings.register_profile("ci", max_examples=100, deadline=None)
hypothesis_settings.register_profile("long", max_examples=5_000, deadline=None)
hypothesis_settings.load_profile(os.environ.get("REGISTRYD_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """After the last test: no prefix handed out still has queues or keys on the services.

    The tests share the broker and Redis; one that forgets its clean-up would fill them
    run after run. The check runs once per process (each xdist worker checks its own).
    """
    yield
    found = asyncio.run(left_behind(dict(PREFIXES)))
    assert not found, f"tests left queues or keys behind: {found}"


@pytest.fixture
def prefix() -> str:
    """A prefix no other test (or run) uses: RabbitMQ names and Redis keys hang off it."""
    return unique_prefix()


@pytest.fixture
async def redis(prefix: str) -> AsyncIterator[Redis]:
    """A Redis client; every key under the test's prefix is deleted afterwards."""
    client = Redis.from_url(REDIS_URL)
    yield client
    keys = [key async for key in client.scan_iter(match=Keys(prefix).pattern(), count=1000)]
    for start in range(0, len(keys), 1000):
        await client.delete(*keys[start : start + 1000])
    await client.aclose()


@pytest.fixture
def store_settings() -> StoreSettings:
    """The store's settings; tests override this fixture to shrink limits."""
    return StoreSettings()


@pytest.fixture
async def store(redis: Redis, prefix: str, store_settings: StoreSettings) -> RedisStore:
    """A store with its epoch made, under the test's prefix."""
    store = RedisStore(redis, Keys(prefix), store_settings)
    await store.init_epoch()
    return store


@pytest.fixture
async def registry(store: RedisStore) -> Registry:
    """The service layer over the test's store."""
    registry = Registry(store)
    await registry.start()
    return registry


@pytest.fixture
def settings(prefix: str) -> Settings:
    """Daemon settings for the test's prefix; no HTTP endpoint unless a test asks."""
    return daemon_settings(prefix)


@pytest.fixture
async def amqp(prefix: str) -> AsyncIterator[AbstractConnection]:
    """A broker connection; every queue and exchange of the prefix is deleted afterwards."""
    connection = await aio_pika.connect(AMQP_URL)
    yield connection
    await delete_topology(connection, Names(prefix))
    await connection.close()


@pytest.fixture
async def other_prefix(prefix: str, redis: Redis, amqp: AbstractConnection) -> AsyncIterator[str]:
    """A second prefix for tests of two registries; cleaned up like the first."""
    other = f"{prefix}-b"
    yield other
    await clean_prefix(amqp, redis, other)


@pytest.fixture
async def daemon(
    settings: Settings, redis: Redis, amqp: AbstractConnection
) -> AsyncIterator[RunningDaemon]:
    """A daemon serving the test's prefix in this event loop, stopped afterwards."""
    running = await start_daemon(settings)
    yield running
    await running.stop()


@pytest.fixture
async def rpc(amqp: AbstractConnection, prefix: str) -> AsyncIterator[Wire]:
    """A wire for RPC and events only: no subscription, the dead queue left alone."""
    wire = await Wire.open(amqp, prefix, notes=False)
    await wire.attach(dead=False)
    yield wire
    await wire.close()


@pytest.fixture
async def wire(settings: Settings, redis: Redis, amqp: AbstractConnection) -> AsyncIterator[Wire]:
    """A fresh registry served in this loop, seen through a wire; its reset already taken."""
    async with serving(settings, amqp) as connected:
        yield connected


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A killable Redis, gone after the test (started by the test)."""
    server = PrivateRedis()
    yield server
    server.kill()
