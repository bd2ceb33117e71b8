"""PROTOCOL.md section 7, authorization: what a mapped AMQP user may do."""

from __future__ import annotations

import pytest
from aio_pika.abc import AbstractConnection
from redis.asyncio import Redis

from registryd.config import Settings
from tests.harness import AMQP_USER, Json, serving

pytestmark = pytest.mark.integration

ME = {"user_id": AMQP_USER}


async def test_s7_writes_of_a_mapped_user_for_its_master_pass(
    settings: Settings, redis: Redis, amqp: AbstractConnection
) -> None:
    """§7 a write RPC passes when its user_id is mapped to the masterid it names (or any)."""
    async with serving(settings, amqp, auth_masters={AMQP_USER: [10]}) as wire:
        wid = await wire.ok("findWorkerId", {"name": "w"}, **ME)
        allowed: list[tuple[str, Json]] = [
            ("masterHeartbeat", {"masterid": 10}),
            ("workerConnected", {"workerid": wid, "masterid": 10, "workerinfo": {}}),
            ("workerConfigured", {"workerid": wid, "masterid": 10, "builderids": [1]}),
            ("set_worker_paused", {"workerid": wid, "paused": True}),
            ("set_worker_graceful", {"workerid": wid, "graceful": True}),
            ("workerDisconnected", {"workerid": wid, "masterid": 10}),
            ("deconfigureAllWorkersForMaster", {"masterid": 10}),
            ("masterStopped", {"masterid": 10}),
        ]
        for method, params in allowed:
            assert {"ok": True, "result": None} == await wire.call(method, params, **ME), method


async def test_s7_events_of_a_mapped_user_for_its_master_apply(
    settings: Settings, redis: Redis, amqp: AbstractConnection
) -> None:
    """§7 an event "is accepted only when its AMQP user_id ... is mapped to the masterid"."""
    async with serving(settings, amqp, auth_masters={AMQP_USER: [10]}) as wire:
        wid = await wire.ok("findWorkerId", {"name": "w"}, **ME)
        await wire.event({"type": "master.heartbeat", "masterid": 10}, **ME)
        await wire.event({"type": "worker.graceful", "workerid": wid, "graceful": True}, **ME)
        assert [] == await wire.dead_letters()
        assert [10] == [m["id"] for m in await wire.ok("getMasters")]
        assert (await wire.worker(wid))["graceful"] is True
