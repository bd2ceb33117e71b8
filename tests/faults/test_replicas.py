"""Three registryd replicas on one prefix, under load, one of them replaced.

RabbitMQ's single active consumer gives the events queue to one replica at a time;
every replica consumes the RPC queue; the relay and master expiry are claimed through
Redis. The burst of the fault matrix runs against the three: the active replica is
SIGKILLed a third of the way and a new one started, while a master falls silent and
must expire once (a 15 s lease: the masters' heartbeats are events, and a takeover
that held them up for a lease would expire live masters, which the model would show).
Prints the matrix's line, and the RPC caller's: the longest time it went without an
answer is what a master would notice.
"""

from __future__ import annotations

from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.conftest import Open
from tests.harness import Served, http_get, wait_for
from tests.harness.callers import RpcCaller
from tests.harness.faults import Burst, Daemons, Fault

pytestmark = [pytest.mark.ha, pytest.mark.integration, pytest.mark.timeout(240)]

SILENT_MASTER = 4


def _counted(daemon: Served, metric: str) -> float:
    """The sum of a counter's samples on the daemon's /metrics (0 when it is gone)."""
    status, _, body = http_get(daemon.port, "/metrics")
    if status != 200:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(body.decode())
        if family.name == metric.removesuffix("_total")
        for sample in family.samples
        if sample.name == metric
    )


def _applying(daemons: list[Served]) -> list[Served]:
    """The replicas that have applied events (one active consumer: one of them)."""
    return [d for d in daemons if _counted(d, "registryd_events_applied_total") > 0]


async def test_three_replicas_one_replaced_under_load(rig: Open) -> None:
    """One consumer at a time, RPC by all, expiry and notifications once, RPC unbroken."""
    async with rig(daemons=3, REGISTRYD_MASTER_LEASE="15") as r:
        replicas = r.daemons.alive()
        served_rpc: set[int] = set()

        async def replace_active(_burst: Burst) -> None:
            (active,) = _applying(r.daemons.alive())
            served_rpc.update(
                d.port for d in r.daemons.alive() if _counted(d, "registryd_rpc_requests_total")
            )
            await Daemons.kill(active)
            replicas.append(await r.daemons.start())

        async def expired(_burst: Burst) -> None:
            async def gone() -> bool:
                masters = {m.id: m for m in await r.client.get_masters()}
                return not masters[SILENT_MASTER].active

            await wait_for(gone, 60)

        faults = [
            Fault(0.3, "active replica SIGKILLed, a new one started", replace_active),
            Fault(0.9, "silent master expired", expired),
        ]
        burst = Burst(r.client, r.wire, events=1500, faults=faults, heartbeat_every=1.0, seed=21)
        await burst.setup(silent_masters=[SILENT_MASTER])
        async with RpcCaller(r.client) as calls:
            await burst.run()
        notes = [r.wire.notes_inbox.get_nowait() for _ in range(r.wire.notes_inbox.qsize())]
        for note in notes:  # verify() reads them again
            r.wire.notes_inbox.put_nowait(note)
        report = await burst.verify("replicas: the active one replaced under load")
        alive = r.daemons.alive()
        consumers = _applying(alive)
        served_rpc.update(d.port for d in alive if _counted(d, "registryd_rpc_requests_total"))
    twice = sum(n - 1 for n in Counter(note.body.get("revision") for note in notes).values())
    print(report.line())  # noqa: T201 - the figures
    print(f"{calls.line('replicas')}; notifications delivered twice {twice}")  # noqa: T201
    report.check()
    assert len(consumers) == 1, "one active event consumer among the live replicas"
    assert served_rpc == {d.port for d in replicas}, "every replica served RPC"
    assert calls.failed == 0
