"""A task that dies of a bug is loud: logged with its traceback, counted, shown on /healthz."""

from __future__ import annotations

from typing import Any

import pytest
from aio_pika.abc import AbstractConnection
from redis.asyncio import Redis
from structlog.testing import capture_logs

from registryd.amqp.relay import Relay
from registryd.client import RegistryClient
from registryd.config import Settings
from registryd.store import Keys
from tests.harness import AMQP_URL, start_daemon_unready, wait_for


async def test_a_crashing_relay_is_logged_counted_and_shown_then_recovers(
    settings: Settings, redis: Redis, amqp: AbstractConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first relay step raises a bug; the daemon logs it once, then serves on."""
    original = Relay._step
    calls = 0

    async def buggy_step(self: Relay) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in the relay")
        await original(self)

    monkeypatch.setattr(Relay, "_step", buggy_step)
    with capture_logs() as logs:
        running = await start_daemon_unready(settings)
        try:
            daemon = running.daemon
            crashes = daemon.metrics.task_crashes.labels("relay")
            await wait_for(lambda: crashes._value.get() == 1, 20)
            assert daemon.health.status().startswith("crashed: relay: RuntimeError")
            assert not daemon.health.ready
            async with await RegistryClient.connect(AMQP_URL, settings.prefix) as client:
                await wait_for(_serves(client), 20)
                await client.find_worker_id("after-the-crash")
            keys = Keys(settings.prefix)

            async def relayed() -> bool:
                revision, cursor = await redis.mget(keys.revision, keys.relay_cursor)
                return int(revision or 0) >= 1 and revision == cursor

            await wait_for(relayed, 20)
        finally:
            await running.stop()
    crashed = [entry for entry in logs if entry["event"] == "task crashed"]
    assert [("relay", "error")] == [(e["task"], e["log_level"]) for e in crashed]
    assert isinstance(crashed[0]["exc_info"], RuntimeError)


def _serves(client: RegistryClient) -> Any:
    async def ping() -> bool:
        try:
            await client.ping()
        except Exception:  # noqa: BLE001 - not serving yet
            return False
        return True

    return ping
