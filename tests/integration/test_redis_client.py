"""A closed Redis client keeps no connection open, and the daemon closes its own last.

A connection left open outlives the test's event loop and fails a later test with an
"unclosed Connection" ``ResourceWarning`` (seen in CI): each case here counts the
connections Redis itself sees under the client's name.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from registryd.config import Settings
from registryd.redis_client import connect_redis
from registryd.store import RelayStore
from tests.harness import connections_named, start_daemon, wait_for


async def test_a_closed_client_refuses_commands_and_opens_nothing(
    settings: Settings, redis: Redis
) -> None:
    """redis-py's own pool would lend a new connection, which nobody would close."""
    client = connect_redis(settings, name="t-closed")
    name = f"t-closed:{settings.prefix}"
    await client.ping()
    assert await connections_named(redis, name) == 1
    await client.aclose()
    with pytest.raises(RedisConnectionError, match="closed"):
        await client.ping()
    assert await connections_named(redis, name) == 0


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
    assert await connections_named(redis, name) == 0


async def _blocked_under(redis: Redis, name: str) -> bool:
    return await connections_named(redis, name, "blpop") > 0


@pytest.mark.parametrize(
    ("seconds", "outcomes"),
    [(0.3, {"released"}), (2.5, {"cancelled", "refused", "released"})],
    ids=["within-the-close-budget", "slower-than-the-close-budget"],
)
@pytest.mark.usefixtures("amqp")  # its clean-up deletes the daemon's queues
async def test_the_daemon_leaves_no_redis_connection_behind_its_relay(
    settings: Settings,
    redis: Redis,
    monkeypatch: pytest.MonkeyPatch,
    seconds: float,
    outcomes: set[str],
) -> None:
    """The relay's release outlives its cancelled task: the daemon waits for it.

    Within the close budget it gives the role up before Redis is closed (after, it
    would be refused); past the budget the daemon stops waiting, and whatever the
    release does then must not reopen a connection.
    """
    ended = _slow_release(monkeypatch, seconds)
    running = await start_daemon(settings)
    await running.stop()
    await wait_for(lambda: bool(ended), 10)
    assert ended[0] in outcomes
    assert await connections_named(redis, f"registryd:{settings.prefix}") == 0


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
