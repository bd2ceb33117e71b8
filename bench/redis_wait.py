"""What waiting for a replica costs: events/s and write-RPC p50, ``WAIT 1`` against off.

Both on the same private Sentinel set (a master, one replica, three sentinels; started
by :class:`tests.harness.redis_ha.PrivateSentinelSet`, stopped by PID), in the same run,
each with a ``registryd serve`` of its own: ``python -m bench.redis_wait``. Only the
ratio between the two rows means anything (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from bench.services import clean_up, start_daemon
from registryd.client import RegistryClient
from tests.harness.redis_ha import PrivateSentinelSet

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"


async def _events_per_second(client: RegistryClient, ids: list[int], count: int) -> float:
    """``count`` worker.connected events (each a change), published then applied.

    Published 200 at a time (confirms awaited together), as a master's burst would be.
    """
    start = (await client.ping()).revision
    started = time.perf_counter()
    for first in range(0, count, 200):
        await asyncio.gather(
            *(
                client.publish_event(
                    "worker.connected",
                    {"workerid": ids[i % len(ids)], "masterid": 1, "workerinfo": {"n": i}},
                    message_id=uuid.uuid4().hex,
                )
                for i in range(first, min(first + 200, count))
            )
        )
    while (await client.ping()).revision < start + count:  # noqa: ASYNC110 - the clock
        await asyncio.sleep(0.01)
    return count / (time.perf_counter() - started)


async def _rpc_p50_ms(client: RegistryClient, ids: list[int], count: int) -> float:
    """The median of ``count`` sequential ``set_worker_paused`` calls, in ms."""
    samples = []
    for i in range(count):
        started = time.perf_counter()
        await client.set_worker_paused(ids[i % len(ids)], i % 2 == 0, f"r{i}")
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def measure(
    amqp_url: str, servers: PrivateSentinelSet, wait: int, events: int, calls: int
) -> str:
    """One row: the daemon with ``REGISTRYD_REDIS_WAIT_REPLICAS=wait``."""
    prefix = f"bench-wait{wait}-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as logdir:
        daemon = await start_daemon(
            amqp_url,
            servers.url,
            prefix,
            Path(logdir),
            lease=3600,
            REGISTRYD_REDIS_WAIT_REPLICAS=str(wait),
        )
        try:
            async with await RegistryClient.connect(amqp_url, prefix) as client:
                ids = [await client.find_worker_id(f"w{i}") for i in range(50)]
                rate = await _events_per_second(client, ids, events)
                p50 = await _rpc_p50_ms(client, ids, calls)
        finally:
            await daemon.stop()
            await clean_up(amqp_url, servers.master.url, prefix)  # no failover here
    return f"| WAIT {wait} | {rate:,.0f} | {p50:.2f} |"


async def main(amqp_url: str, events: int, calls: int) -> None:
    """Both rows on one Sentinel set."""
    servers = PrivateSentinelSet()
    try:
        await servers.start()
        rows = [await measure(amqp_url, servers, w, events, calls) for w in (0, 1)]
    finally:
        servers.stop()
    print(f"Sentinel set, {events} events, {calls} sequential write RPCs")
    print("| replica wait | events/s | write RPC p50 (ms) |")
    print("|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--amqp-url", default=os.environ.get("REGISTRYD_AMQP_URL", DEFAULT_AMQP))
    args = parser.parse_args()
    asyncio.run(main(args.amqp_url, args.events, args.calls))
