"""The fault matrix (issue 10): each case a burst under one kind of fault, then the model.

Each prints one line (``make faults`` runs them with ``-s``): events sent, applied,
dead-lettered, lost, duplicated effects, revisions the subscriber missed, and the
longest time the daemon took to recover from one fault.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from registryd.errors import RpcTimeout, Unavailable
from tests.faults.conftest import Open
from tests.harness import PrivateRedis, wait_for
from tests.harness.faults import Burst, Daemons, Fault, close_broker_connections

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(240)]


async def test_daemon_sigkilled_three_times(rig: Open) -> None:
    """SIGKILL, restart, three times during the burst: nothing lost, nothing twice."""
    async with rig() as r:

        async def kill_and_restart(_burst: Burst) -> None:
            (daemon,) = r.daemons.alive()
            await Daemons.kill(daemon)
            await r.daemons.start()

        faults = [Fault(at, "sigkill", kill_and_restart) for at in (0.15, 0.4, 0.65)]
        burst = Burst(r.client, r.wire, faults=faults, seed=1)
        await burst.setup()
        await burst.run()
        report = await burst.verify("daemon SIGKILLed 3x")
    print(report.line())  # noqa: T201 - the matrix's output
    report.check()


async def test_broker_connection_and_channel_closed(rig: Open) -> None:
    """Its connection force-closed twice, its channel closed by the broker once."""
    async with rig() as r:
        (daemon,) = r.daemons.alive()

        async def new_session(action: Callable[[], Awaitable[object]]) -> None:
            before = Daemons.sessions(daemon)
            await action()
            await wait_for(lambda: Daemons.sessions(daemon) > before, 60)
            await daemon.reaches(200, 60)

        async def close_connection(_burst: Burst) -> None:
            async def close() -> None:
                assert 1 == await close_broker_connections(r.prefix)

            await new_session(close)

        async def close_channel(burst: Burst) -> None:
            # The dead exchange gone, the next dead letter's publish is refused: the
            # broker closes the events channel (404) and the daemon declares it again.
            async def delete_and_refuse() -> None:
                channel = await r.amqp.channel()
                await channel.exchange_delete(f"{r.prefix}.dead")
                await channel.close()
                await burst.publish_bad()

            await new_session(delete_and_refuse)

        faults = [
            Fault(0.1, "close_connection", close_connection),
            Fault(0.4, "channel 404", close_channel),
            Fault(0.6, "close_connection", close_connection),
        ]
        burst = Burst(r.client, r.wire, faults=faults, seed=2)
        await burst.setup()
        await burst.run()
        report = await burst.verify("broker connection closed 2x, channel 1x")
    print(report.line())  # noqa: T201 - the matrix's output
    report.check()


async def test_appendonly_redis_killed(rig: Open, tmp_path: Path) -> None:
    """A private append-only Redis SIGKILLed and started again mid-burst: nothing lost."""
    server = PrivateRedis(appendonly=True, directory=tmp_path)
    await server.start()
    try:
        async with rig(redis_url=server.url) as r:
            (daemon,) = r.daemons.alive()

            async def kill_and_restart(_burst: Burst) -> None:
                server.kill()
                await daemon.reaches(503, 60)  # it noticed
                await server.start()
                await daemon.reaches(200, 60)

            faults = [Fault(0.3, "redis SIGKILL", kill_and_restart)]
            burst = Burst(r.client, r.wire, faults=faults, seed=3)
            await burst.setup()
            await burst.run()
            report = await burst.verify("append-only Redis killed")
    finally:
        server.kill()
    print(report.line())  # noqa: T201 - the matrix's output
    report.check()


async def test_redis_paused_longer_than_rpc_timeout(rig: Open, tmp_path: Path) -> None:
    """Redis stopped (SIGSTOP) past the RPC timeout: RPCs answer unavailable, in time."""
    server = PrivateRedis(directory=tmp_path)
    await server.start()
    answers: list[BaseException] = []
    try:
        async with rig(redis_url=server.url, REGISTRYD_RPC_TIMEOUT="2") as r:
            (daemon,) = r.daemons.alive()

            async def ping() -> None:
                try:
                    # The protocol's bound: "unavailable" within 5 s, never silence.
                    await r.client.call("ping", timeout=5.0)
                except Unavailable as error:
                    answers.append(error)

            async def pause(_burst: Burst) -> None:
                server.pause()
                try:
                    # Each answer takes the RPC timeout: the pause outlasts it.
                    await asyncio.gather(*(ping() for _ in range(5)))
                finally:
                    server.resume()
                await daemon.reaches(200, 60)

            faults = [Fault(0.3, "redis SIGSTOP", pause)]
            burst = Burst(r.client, r.wire, faults=faults, seed=4)
            await burst.setup()
            await burst.run()
            report = await burst.verify("Redis paused past the RPC timeout")
    finally:
        server.kill()
    print(report.line())  # noqa: T201 - the matrix's output
    assert 5 == len(answers)
    assert not [a for a in answers if isinstance(a, RpcTimeout)], answers
    report.check()


async def test_standby_takes_over_and_expires_once(rig: Open) -> None:
    """Two daemons, the active consumer SIGKILLed: the standby goes on; expiry happens once."""
    silent = 4
    async with rig(daemons=2, REGISTRYD_MASTER_LEASE="8") as r:
        active, _standby = r.daemons.alive()

        async def kill_active(_burst: Burst) -> None:
            before = (await r.client.ping()).revision
            await Daemons.kill(active)

            async def moving() -> bool:
                return (await r.client.ping()).revision > before

            await wait_for(moving, 60)

        async def expired(_burst: Burst) -> None:
            async def gone() -> bool:
                masters = {m.id: m for m in await r.client.get_masters()}
                return not masters[silent].active

            await wait_for(gone, 60)

        faults = [Fault(0.2, "active SIGKILL", kill_active), Fault(0.9, "expiry", expired)]
        burst = Burst(r.client, r.wire, faults=faults, heartbeat_every=1.0, seed=5)
        await burst.setup(silent_masters=[silent])
        await burst.run()
        report = await burst.verify("standby takes over; expiry once")
    print(report.line())  # noqa: T201 - the matrix's output
    report.check()


async def test_redis_restarted_empty(rig: Open, tmp_path: Path) -> None:
    """Redis back without its data: a new epoch, the reset, and the masters re-announce."""
    server = PrivateRedis(directory=tmp_path)
    await server.start()
    try:
        async with rig(redis_url=server.url) as r:
            first = (await r.client.ping()).epoch

            async def restart_empty(burst: Burst) -> None:
                server.kill()
                await server.start()

                async def new_epoch() -> bool:
                    try:
                        return bool((await r.client.call("ping", timeout=5.0))["epoch"] != first)
                    except Unavailable:
                        return False

                await wait_for(new_epoch, 60)
                await r.wire.settled(timeout=60)
                await burst.reannounce()

            faults = [Fault(0.4, "redis restarted empty", restart_empty, blocking=True)]
            burst = Burst(r.client, r.wire, faults=faults, seed=6)
            await burst.setup()
            await burst.run()
            report = await burst.verify("Redis restarted empty (reset)")
            assert first != (await r.client.ping()).epoch
    finally:
        server.kill()
    print(report.line())  # noqa: T201 - the matrix's output
    report.check()
