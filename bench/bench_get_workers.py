"""getWorkers over 10,000 workers, against a floor measured in the same run.

Floor: one MGET of 10,000 copies of a worker's JSON document, the cheapest way Redis
hands back that many records. Measured: the store's read (one Lua call for a consistent
snapshot), the RPC reply body for getWorkers without and with filters (what the daemon
sends), and the typed Python API (pydantic models). Prints medians and the ratio to the
floor. Cleans up its keys.

    .venv/bin/python bench/bench_get_workers.py [--workers N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import aio_pika
from redis.asyncio import Redis

from registryd.amqp.topology import delete_topology
from registryd.client import RegistryClient
from registryd.config import Settings
from registryd.daemon import Daemon
from registryd.logs import configure_logging
from registryd.models import GetWorkers, Operation, WorkerConfigured, WorkerConnected
from registryd.protocol import Names
from registryd.service import Registry
from registryd.store import Keys, RedisStore

AMQP = "amqp://guest:guest@127.0.0.1:5672/"


async def _median_ms(fn: Callable[[], Awaitable[object]], rounds: int) -> float:
    await fn()  # warm-up: script load, connection
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def _populate(registry: Registry, count: int) -> None:
    store = registry.store
    for start in range(0, count, 1000):
        names = [f"worker-{i}" for i in range(start, min(count, start + 1000))]
        ids = [await store.find_worker_id(n) for n in names]
        writes: list[tuple[Operation, str | None]] = []
        for wid in ids:
            master = 10 + wid % 4
            writes.append(
                (WorkerConfigured(workerid=wid, masterid=master, builderids=[1, 2, 3]), None)
            )
            info = {"host": f"h{wid}", "admin": "ci@example.com", "version": "4.2.0"}
            writes.append((WorkerConnected(workerid=wid, masterid=master, workerinfo=info), None))
        await store.apply_many(writes)
        print(f"  populated {min(count, start + 1000):>6}/{count}", flush=True)


async def main(count: int, rounds: int) -> None:
    """Populate, measure the floor and each read path, print, clean up."""
    configure_logging("console", "warning")
    redis = Redis()
    keys = Keys(f"bench-{uuid.uuid4().hex[:8]}")
    store = RedisStore(redis, keys)
    registry = Registry(store)
    await registry.start()
    floor_keys = [f"{keys.base}:floor:{i}" for i in range(count)]
    try:
        print(f"populating {count} workers under {keys.base} ...")
        await _populate(registry, count)
        doc = json.dumps((await store.read_workers())[0].model_dump())
        for start in range(0, count, 1000):
            await redis.mset(dict.fromkeys(floor_keys[start : start + 1000], doc))

        async def floor() -> object:
            return await redis.mget(floor_keys)

        async def read_docs() -> object:
            return await store.read_worker_docs()

        def reply(op: GetWorkers) -> Callable[[], Awaitable[object]]:
            return lambda: registry.execute_json(op)

        async def typed() -> object:
            return await registry.get_workers(GetWorkers())

        base = await _median_ms(floor, rounds)
        print(f"\nfloor: one MGET of {count} docs: {base:8.1f} ms (median of {rounds})")
        client = await RegistryClient.connect(AMQP, keys.prefix)
        daemon = Daemon(Settings(prefix=keys.prefix, metrics_port=0, log_level="warning"))
        serving = asyncio.create_task(daemon.serve())
        while not daemon.health.ready:  # noqa: ASYNC110 - Health is a plain flag
            await asyncio.sleep(0.05)

        async def over_rabbitmq() -> object:
            return await client.call("getWorkers")

        for label, fn in [
            ("store read (1 Lua call)", read_docs),
            ("RPC reply getWorkers()", reply(GetWorkers())),
            ("RPC reply getWorkers(paused=false)", reply(GetWorkers(paused=False))),
            ("RPC reply getWorkers(masterid=10)", reply(GetWorkers(masterid=10))),
            ("typed get_workers() (models)", typed),
            ("getWorkers() over RabbitMQ, decoded", over_rabbitmq),
        ]:
            ms = await _median_ms(fn, rounds)
            print(f"{label:36s} {ms:8.1f} ms   ratio to floor {ms / base:5.2f}")
        daemon.request_stop()
        await serving
        await client.close()
        connection = await aio_pika.connect(AMQP)
        await delete_topology(connection, Names(keys.prefix))
        await connection.close()
    finally:
        async for key in redis.scan_iter(match=keys.pattern(), count=5000):
            await redis.delete(key)
        await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    asyncio.run(main(args.workers, args.rounds))
