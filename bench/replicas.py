"""RPC throughput with one, two and three registryd replicas on one prefix (issue 11).

Every replica consumes ``<prefix>.rpc``, so RabbitMQ spreads the requests over them.
The load is ``getWorker`` with 64 calls in flight on each of three client connections
(in this process), the same for every count of replicas; each repetition measures one,
then two, then three replicas (``--reps`` times: 1, 2, 3, 1, 2, 3...), so that the
machine's drift hits the counts alike. Prints calls/s (median) and
the ratio to one replica. ``make bench`` runs it.

On a small machine the replicas share its cores with the broker, Redis and the load
itself: the ratio says how much a replica adds *here*; on a fleet each has its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import uuid
from pathlib import Path

from bench.floors import in_flight
from bench.services import Child, clean_up, start_daemon
from registryd.client import RegistryClient

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
#: Workers in the registry (getWorker picks among them).
WORKERS = 200
#: Client connections making the load (64 calls in flight on each).
CLIENTS = 3
#: Most replicas measured.
REPLICAS = 3


async def _rate(clients: list[RegistryClient], seconds: float) -> float:
    """getWorker calls per second, every client at once."""

    async def load(client: RegistryClient) -> float:
        return await in_flight(lambda i: client.get_worker(i % WORKERS + 1), 10**9, seconds)

    return sum(await asyncio.gather(*(load(client) for client in clients)))


async def _replica(args: argparse.Namespace, prefix: str, logdir: Path) -> Child:
    where = Path(tempfile.mkdtemp(prefix="replica-", dir=logdir))
    return await start_daemon(args.amqp_url, args.redis_url, prefix, where)


async def _measure(args: argparse.Namespace, prefix: str, logdir: Path) -> dict[int, list[float]]:
    """Calls/s samples for 1..REPLICAS replicas, counted up in each repetition.

    The first replica serves throughout; the others are started for each repetition and
    stopped (SIGTERM: they finish what they took) before the next.
    """
    first = await _replica(args, prefix, logdir)
    clients = [
        await RegistryClient.connect(args.amqp_url, prefix, timeout=30) for _ in range(CLIENTS)
    ]
    more: list[Child] = []
    try:
        for index in range(WORKERS):
            await clients[0].find_worker_id(f"bench-{index}")
        samples: dict[int, list[float]] = {count: [] for count in range(1, REPLICAS + 1)}
        await _rate(clients, 1.0)  # warm-up
        for rep in range(args.reps):
            for count, rates in samples.items():
                if count > 1:
                    more.append(await _replica(args, prefix, logdir))
                print(f"  repetition {rep + 1}/{args.reps}: {count} replica(s)", flush=True)
                rates.append(await _rate(clients, args.seconds))
            for child in more:
                await child.stop()
            more = []
        return samples
    finally:
        for client in clients:
            await client.close()
        for child in [*more, first]:
            await child.stop()


def _report(samples: dict[int, list[float]]) -> None:
    one = statistics.median(samples[1])
    print("replicas  calls/s  ratio to one replica")
    for count, values in samples.items():
        rate = statistics.median(values)
        print(f"{count:>8}  {rate:>7.0f}  {rate / one:.2f}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="measurements of each count")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of a measurement")
    parser.add_argument("--amqp-url", default=os.environ.get("REGISTRYD_AMQP_URL", DEFAULT_AMQP))
    parser.add_argument("--redis-url", default=os.environ.get("REGISTRYD_REDIS_URL", DEFAULT_REDIS))
    return parser.parse_args()


async def _run(args: argparse.Namespace) -> None:
    prefix = f"bench-replicas-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="registryd-replicas-") as logdir:
        try:
            _report(await _measure(args, prefix, Path(logdir)))
        finally:
            await clean_up(args.amqp_url, args.redis_url, prefix)


def main() -> None:
    """``python -m bench.replicas``."""
    asyncio.run(_run(_arguments()))


if __name__ == "__main__":
    main()
