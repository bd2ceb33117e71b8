"""RPC: ``getWorker`` sequential and 64 in flight, and a durable write, beside the echo."""

from __future__ import annotations

import random
from collections.abc import Awaitable

from bench import fleet
from bench.context import Context, progress
from bench.floors import echo_latencies, echo_rate, in_flight
from bench.report import Row, at_least, at_most
from bench.stats import Stat, latencies
from registryd.models import GetWorker

__all__ = ["rpc_rows"]


async def rpc_rows(ctx: Context, n: int) -> list[Row]:
    """``getWorker`` (sequential, 64 in flight) and a durable write, beside the echo."""
    plan = ctx.plan
    rng = random.Random(n)
    ids = [rng.randint(1, n) for _ in range(max(plan.sequential_calls, plan.in_flight_calls))]
    small = len(await ctx.registry.execute_json(GetWorker(workerid=1)))

    def get(i: int) -> Awaitable[object]:
        return ctx.client.call("getWorker", {"workerid": ids[i]})

    def connect(i: int) -> Awaitable[object]:
        w = ids[i]
        info = {**fleet.info_of(w), "version": f"4.3.{i}"}  # a change each time
        params = {"workerid": w, "masterid": fleet.master_of(w), "workerinfo": info}
        return ctx.client.call("workerConnected", params)

    names = ("echo.p50", "echo.p99", "get.p50", "get.p99", "write.p50", "write.p99")
    stats = {key: Stat() for key in (*names, "echo.rate", "get.rate")}
    calls, seconds = plan.sequential_calls, plan.sample_seconds
    await echo_rate(ctx.echo, small, 64, seconds)  # warm-up
    for rep in range(plan.reps):
        progress(f"{n:,}: getWorker and workerConnected, repetition {rep + 1}/{plan.reps}")
        figures = [
            *await echo_latencies(ctx.echo, small, calls, seconds),
            *await latencies(get, calls, seconds),
            *await latencies(connect, calls, seconds),
        ]
        for key, value in zip(names, figures, strict=True):
            stats[key].add(value)
        rate = await echo_rate(ctx.echo, small, plan.in_flight_calls, seconds)
        stats["echo.rate"].add(rate)
        stats["get.rate"].add(await in_flight(get, plan.in_flight_calls, seconds))
    for key in ("get.p50", "get.p99", "write.p50"):
        ctx.figures.setdefault(n, {})[key] = stats[key]
    ctx.first.setdefault("get.p50", stats["get.p50"])
    ctx.first.setdefault("write.p50", stats["write.p50"])
    ctx.first.setdefault("get.rate", stats["get.rate"])
    return _rpc_rows(ctx, n, stats, small)


def _rpc_rows(ctx: Context, n: int, stats: dict[str, Stat], small: int) -> list[Row]:
    section = "RPC: getWorker and a write"
    echo = f"echo ({small} B reply)"
    rows = [
        Row(section, n, "getWorker p50, sequential", stats["get.p50"], "s",
            floor=stats["echo.p50"], floor_label=echo, target=at_most(1.3)),
        Row(section, n, "getWorker p99, sequential", stats["get.p99"], "s",
            floor=stats["echo.p99"], floor_label=echo, target=at_most(2.0)),
        Row(section, n, "getWorker calls/s, 64 in flight", stats["get.rate"], "/s",
            floor=stats["echo.rate"], floor_label=echo, target=at_least(0.7)),
        Row(section, n, "workerConnected RPC p50, sequential", stats["write.p50"], "s",
            floor=stats["echo.p50"], floor_label=echo),
        Row(section, n, "workerConnected RPC p99, sequential", stats["write.p99"], "s",
            floor=stats["echo.p99"], floor_label=echo),
    ]  # fmt: skip
    if n != ctx.plan.sizes[0]:
        base = f"at {ctx.plan.sizes[0]:,}"
        scale = "scale: no slower with more workers"
        rows += [
            Row(scale, n, "scale: getWorker p50", stats["get.p50"], "s",
                floor=ctx.first["get.p50"], floor_label=base, target=at_most(1.3)),
            Row(scale, n, "scale: getWorker calls/s, 64 in flight", stats["get.rate"], "/s",
                floor=ctx.first["get.rate"], floor_label=base, target=at_least(1 / 1.3)),
            Row(scale, n, "scale: workerConnected RPC p50", stats["write.p50"], "s",
                floor=ctx.first["write.p50"], floor_label=base, target=at_most(1.3)),
        ]  # fmt: skip
    return rows
