"""A closed Redis client keeps no connection open, and the daemon closes its own last.

A connection left open outlives the test's event loop and fails a later test with an
"unclosed Connection" ``ResourceWarning`` (seen in CI): each case here counts the
connections Redis itself sees under the client's name. (``amqp`` is there for its
clean-up: it deletes the prefix's queues that the daemons declared.)
"""

from __future__ import annotations

import asyncio

import pytest
from aio_pika.abc import AbstractConnection
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from registryd.config import Settings
from registryd.redis_client import connect_redis
from registryd.store import RelayStore
from tests.harness import start_daemon, wait_for


async def _open_under(redis: Redis, name: str) -> int:
    return sum(1 for client in await redis.client_list() if client["name"] == name)


async def test_a_closed_client_refuses_commands_and_opens_nothing(
    settings: Settings, redis: Redis
) -> None:
    """redis-py's own pool would lend a new connection, which nobody would close."""
    client = connect_redis(settings, name="t-closed")
    name = f"t-closed:{settings.prefix}"
    await client.ping()
    assert await _open_under(redis, name) == 1
    await client.aclose()
    with pytest.raises(RedisConnectionError, match="closed"):
        await client.ping()
    assert await _open_under(redis, name) == 0


async def test_a_command_cut_by_the_close_leaves_no_connection_open(
    settings: Settings, redis: Redis
) -> None:
    """The retried command reconnects its connection; taken back, it is closed."""
    client = connect_redis(settings, name="t-cut")
    name = f"t-cut:{settings.prefix}"
    blocked = asyncio.ensure_future(client.blpop([f"{settings.prefix}:never"], timeout=0.5))
    await wait_for(lambda: _blocked_under(redis, name))
    await client.aclose()  # cuts the BLPOP; redis-py retries it once on the same connection
    await asyncio.gather(blocked, return_exceptions=True)
    assert await _open_under(redis, name) == 0


async def _blocked_under(redis: Redis, name: str) -> bool:
    return any(c["name"] == name and c["cmd"] == "blpop" for c in await redis.client_list())


async def test_the_daemon_closes_redis_after_the_relay_released_its_role(
    settings: Settings, redis: Redis, amqp: AbstractConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within the close budget, the role is given up before Redis is closed."""
    released = _slow_release(monkeypatch, seconds=0.3)
    running = await start_daemon(settings)
    await running.stop()
    assert released == ["released"]
    assert await _open_under(redis, f"registryd:{settings.prefix}") == 0


async def test_a_release_slower_than_the_close_budget_leaves_no_connection_open(
    settings: Settings, redis: Redis, amqp: AbstractConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon gives up on it and closes Redis; the release must not reopen it."""
    released = _slow_release(monkeypatch, seconds=2.5)
    running = await start_daemon(settings)
    await running.stop()
    await wait_for(lambda: bool(released), 10)  # cancelled, refused, or (a leak) done
    assert await _open_under(redis, f"registryd:{settings.prefix}") == 0


def _slow_release(monkeypatch: pytest.MonkeyPatch, seconds: float) -> list[str]:
    """Make the relay's release of its role take ``seconds``; the list says how it ended."""
    ended: list[str] = []
    release = RelayStore.release

    async def slow_release(self: RelayStore) -> None:
        outcome = "cancelled"
        try:
            await asyncio.sleep(seconds)
            outcome = "refused"
            await release(self)
            outcome = "released"
        finally:
            ended.append(outcome)

    monkeypatch.setattr(RelayStore, "release", slow_release)
    return ended
