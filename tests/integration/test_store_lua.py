"""The routing keys the Lua scripts build are the ones :mod:`registryd.protocol` builds."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from registryd.protocol import (
    MASTER_EVENTS,
    WORKER_EVENTS,
    master_routing_key,
    worker_routing_key,
)
from registryd.store.keys import SCRIPT_KEYS, Keys
from registryd.store.lua import source_of

_ARGV_HEADER = ["100000", "", "600000", "", "60000"]


async def _lua(redis: Redis, prefix: str, expression: str) -> str:
    keys = Keys(prefix).script_keys()
    reply = await redis.eval(source_of(f"return {expression}"), len(keys), *keys, *_ARGV_HEADER)
    return reply.decode() if isinstance(reply, bytes) else str(reply)


@pytest.mark.parametrize("event", WORKER_EVENTS)
async def test_worker_routing_keys_agree(redis: Redis, prefix: str, event: str) -> None:
    """``worker_key`` in Lua gives ``workers.<id>.<event>`` as Python does, for each event."""
    lua = await _lua(redis, prefix, f"worker_key('9007199254740991', '{event}')")
    assert worker_routing_key(9007199254740991, event) == lua  # type: ignore[arg-type]


@pytest.mark.parametrize("event", MASTER_EVENTS)
async def test_master_routing_keys_agree(redis: Redis, prefix: str, event: str) -> None:
    """``master_key`` in Lua gives ``masters.<id>.<event>`` as Python does, for each event."""
    lua = await _lua(redis, prefix, f"master_key('10', '{event}')")
    assert master_routing_key(10, event) == lua  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "attribute"), SCRIPT_KEYS, ids=[n for n, _ in SCRIPT_KEYS])
async def test_lua_names_each_key_as_python_does(
    redis: Redis, prefix: str, name: str, attribute: str
) -> None:
    """The prelude's ``K_X``/``P_X``, built from the one ``KEY``, is the key Keys names."""
    assert getattr(Keys(prefix), attribute) == await _lua(redis, prefix, name)
