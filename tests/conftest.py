"""Fixtures shared by every test: unique prefixes and clean-up on the real services."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from registryd.service import Registry
from registryd.store import Keys, RedisStore, StoreSettings

REDIS_URL = os.environ.get("REGISTRYD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("REGISTRYD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture
def prefix() -> str:
    """A prefix no other test (or run) uses: RabbitMQ names and Redis keys hang off it."""
    return f"t-{uuid.uuid4().hex[:12]}"


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
