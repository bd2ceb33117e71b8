"""Events and notifications: ingest, notification latency and master expiry, with floors."""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from collections.abc import Awaitable, Callable

from bench import fleet
from bench.context import Context, progress
from bench.cpu import CORES, CpuSpan, processes_named
from bench.floors import (
    consume_ack_seconds,
    publish_confirmed,
    publish_consume_latencies,
    relayed_seconds,
)
from bench.registry_paths import (
    commit_latencies,
    event_latencies,
    expiry_seconds,
    ingest_seconds,
    pause_event,
    reason_number,
)
from bench.report import Row, at_least, at_most
from bench.stats import FEWEST, Stat, percentile

__all__ = ["event_rows", "expiry_rows"]

#: One latency path: (rate, count) to the seconds each of ``count`` messages took.
Measure = Callable[[float, int], Awaitable[list[float]]]
#: A wall clock that moved this far against the monotonic one voids an expiry sample (s).
CLOCK_STEP = 0.02


async def _dead_letters(ctx: Context) -> int:
    channel = await ctx.connection.channel()
    queue = await channel.declare_queue(ctx.names.dead, passive=True)
    await channel.close()
    return queue.declaration_result.message_count or 0


#: The process groups whose CPU the ingest rows account for.
CPU_GROUPS = ("broker", "redis", "daemon", "bare relay", "bench")


def _cpu_groups(ctx: Context) -> dict[str, list[int]]:
    """Pids by group: RabbitMQ's and Redis's servers on this machine, the run's children."""
    return {
        "broker": processes_named("beam.smp"),
        "redis": processes_named("redis-server"),
        "daemon": [ctx.daemon.pid],
        "bare relay": [ctx.forwarder.pid],
        "bench": [os.getpid()],
    }


async def _measure_ingest(
    ctx: Context, paused: list[int], count: int
) -> tuple[dict[str, Stat], dict[str, dict[str, Stat]]]:
    """Per repetition: the floor's two parts, the bare relay and ingest; CPU used by each."""
    plan, names = ctx.plan, ctx.bench_names
    bodies = [pause_event(paused[i % len(paused)], f"floor-{i}") for i in range(count)]
    stats = {key: Stat() for key in ("publish", "drain", "relay", "ingest")}
    cpu: dict[str, dict[str, Stat]] = {
        path: defaultdict(Stat) for path in ("floor", "relay", "ingest")
    }
    groups = _cpu_groups(ctx)
    await (await ctx.channel.get_queue(names.quorum)).purge()
    for rep in range(plan.event_reps):
        progress(f"{ctx.workers:,}: ingest, repetition {rep + 1}/{plan.event_reps}")
        span = CpuSpan(groups).start()
        stats["publish"].add(
            await publish_confirmed(ctx.channel.default_exchange, names.quorum, bodies)
        )
        stats["drain"].add(await consume_ack_seconds(ctx.connection, names.quorum, count, 512, 256))
        _per_thousand(cpu["floor"], span.stop(), count)
        cpu["floor"]["busy cores"].add(span.busy_cores)
        span.start()
        relayed = await relayed_seconds(
            ctx.channel,
            names.relay_in,
            names.relay_out,
            bodies,
            reason_number("floor", of_worker=False),
        )
        stats["relay"].add(relayed)
        _per_thousand(cpu["relay"], span.stop(), count)
        cpu["relay"]["busy cores"].add(span.busy_cores)
        span.start()
        stats["ingest"].add(await ingest_seconds(ctx.subscriber, ctx.events, paused, count))
        _per_thousand(cpu["ingest"], span.stop(), count)
        cpu["ingest"]["busy cores"].add(span.busy_cores)
    return stats, cpu


def _per_thousand(into: dict[str, Stat], used: dict[str, float], count: int) -> None:
    for group in CPU_GROUPS:
        into[group].add(used[group] * 1000 / count)
    into["total"].add(sum(used.values()) * 1000 / count)


def _cpu_rows(n: int, cpu: dict[str, dict[str, Stat]]) -> list[Row]:
    """CPU seconds per 1,000 events of each path, all processes together, and its split."""
    section = "events and notifications"

    def split(path: str) -> str:
        parts = [f"{g} {cpu[path][g].median * 1000:.0f} ms" for g in CPU_GROUPS
                 if cpu[path][g].median >= 0.0005]  # fmt: skip
        return "CPU per 1,000 events: " + ", ".join(parts)

    floor = cpu["floor"]["total"]
    cores = Stat([CORES] * len(cpu["ingest"]["busy cores"].samples))
    busy = [
        Row(
            section,
            n,
            f"cores busy during the {what}",
            cpu[path]["busy cores"],
            "cores",
            floor=cores,
            floor_label="on this machine",
            note="the machine's /proc/stat, every process and stolen time",
        )
        for path, what in (
            ("floor", "ingest floor"),
            ("relay", "bare relay"),
            ("ingest", "end-to-end ingest"),
        )
    ]
    return [
        *busy,
        Row(section, n, "CPU per 1,000 events, ingest floor (every process)", floor, "s",
            note=split("floor")),
        Row(section, n, "CPU per 1,000 events, bare relay (every process)", cpu["relay"]["total"],
            "s", floor=floor, floor_label="the ingest floor's", note=split("relay")),
        Row(section, n, "CPU per 1,000 events, end-to-end ingest (every process)",
            cpu["ingest"]["total"], "s", floor=floor, floor_label="the ingest floor's",
            note=split("ingest")),
    ]  # fmt: skip


async def event_rows(ctx: Context, n: int) -> list[Row]:
    """Ingest (events/s) beside its floor and a bare relay, CPU per event, latency."""
    paused = fleet.paused_ids(n)
    count = ctx.plan.ingest_events
    stats, cpu = await _measure_ingest(ctx, paused, count)
    rates = {key: Stat([count / s for s in stat.samples]) for key, stat in stats.items()}
    floor = Stat([count / s for s in (stats["publish"] + stats["drain"]).samples])
    ctx.first.setdefault("ingest", rates["ingest"])
    section = "events and notifications"
    rows = [
        Row(section, n, "end-to-end ingest, events/s", rates["ingest"], "/s",
            floor=floor, floor_label="publish with confirms + consume+ack", target=at_least(0.7),
            note=f"{count:,} events: published with confirms → applied → notification received"),
        Row(section, n, "end-to-end ingest ÷ the bare relay, events/s", rates["ingest"], "/s",
            floor=rates["relay"], floor_label="bare relay: both hops, no Redis",
            note="the second hop (one notification per change) is the protocol's"),
        Row(section, n, "floor part: bare relay (event → forwarded with confirms → subscriber), "
            "events/s", rates["relay"], "/s", floor=floor,
            floor_label="publish with confirms + consume+ack"),
        Row(section, n, "end-to-end ingest ceiling with no registry work, events/s",
            _ceiling(cpu), "/s", floor=floor, floor_label="publish with confirms + consume+ack",
            note="all cores ÷ CPU per event of the broker and the bench as ingest used them "
            "and of the bare relay's process: what a registryd that cost no more than the "
            "bare relay, and nothing in Redis, could reach with the cores all busy"),
        Row(section, n, "floor part: publish with confirms, msg/s", rates["publish"], "/s"),
        Row(section, n, "floor part: consume+ack from a quorum queue, msg/s", rates["drain"], "/s"),
        *_cpu_rows(n, cpu),
    ]  # fmt: skip
    if n != ctx.plan.sizes[0]:
        rows.append(
            Row("scale: no slower with more workers", n, "scale: end-to-end ingest, events/s",
                rates["ingest"], "/s", floor=ctx.first["ingest"],
                floor_label=f"at {ctx.plan.sizes[0]:,}", target=at_least(1 / 1.3))
        )  # fmt: skip
    rows += await _latency_rows(ctx, n, paused, rates["ingest"].median, rates["publish"].median)
    dead = await _dead_letters(ctx)
    if dead:
        rows[0].error = f"{dead} bench events were dead-lettered: the bench is wrong"
    return rows


def _ceiling(cpu: dict[str, dict[str, Stat]]) -> Stat:
    """Per repetition: events/s with every core busy on the two hops and a bare relay alone.

    The two hops (the broker's work, the publisher's and the subscriber's) as ingest
    used them, since its notifications are the protocol's; the relay's own work as the
    bare relay's process did it (consume, publish with confirms, ack). A registryd also
    commits each event in Redis and parses it, so its ingest stays below this.
    """
    parts = zip(
        cpu["ingest"]["broker"].samples,
        cpu["ingest"]["bench"].samples,
        cpu["relay"]["bare relay"].samples,
        strict=True,
    )
    return Stat([CORES * 1000 / sum(per_thousand) for per_thousand in parts])


def _rate(plan_rate: float, capacity: float) -> float:
    """The steady rate to measure at: the plan's, or half of what the path sustains now.

    Above what a path sustains, its latency only measures a queue growing for as long
    as the measurement lasts.
    """
    return plan_rate if capacity >= 1.2 * plan_rate else capacity / 2


def _grows(seconds: list[float], duration: float) -> bool:
    """Whether a queue built up: the rate is higher than what the path sustains.

    Either latency grew through the run, or the last messages waited a good part of
    the time it took to send them all.
    """
    tenth = max(1, len(seconds) // 10)
    first, last = statistics.median(seconds[:tenth]), statistics.median(seconds[-tenth:])
    return (last > 3 * first and last > 0.05) or last > max(0.1, duration / 4)


async def _latency_rows(
    ctx: Context, n: int, paused: list[int], ingest: float, publish: float
) -> list[Row]:
    """Latency at a steady rate, each path beside bare publish→consume at the same rate.

    ``ingest`` and ``publish`` are the rates ingest and bare publishing sustained just
    before: the commit path needs the broker only, the event path registryd's ingest too.
    """
    plan = ctx.plan
    paths: dict[str, tuple[float, Measure]] = {
        "commit": (
            _rate(plan.latency_rate, publish),
            lambda rate, count: commit_latencies(ctx.subscriber, ctx.store, paused, rate, count),
        ),
        "event": (
            _rate(plan.latency_rate, min(ingest, publish)),
            lambda rate, count: event_latencies(ctx.subscriber, ctx.events, paused, rate, count),
        ),
    }
    stats: dict[str, Stat] = defaultdict(Stat)
    growing: set[str] = set()
    for rep in range(plan.event_reps):
        progress(f"{n:,}: notification latency, repetition {rep + 1}/{plan.event_reps}")
        for path, (rate, measure) in paths.items():
            count = max(FEWEST, int(rate * plan.latency_seconds))
            bare = await publish_consume_latencies(
                ctx.channel, ctx.bench_names.latency, rate, count
            )
            seconds = await measure(rate, count)
            if _grows(seconds, count / rate):
                growing.add(path)
            for name, values in ((f"{path}.floor", bare), (path, seconds)):
                stats[f"{name}.p50"].add(percentile(values, 0.5))
                stats[f"{name}.p99"].add(percentile(values, 0.99))
    rows = []
    for path, what in (("commit", "commit → subscriber"), ("event", "event publish → subscriber")):
        rate = paths[path][0]
        note = f"steady {rate:,.0f}/s"
        if rate < plan.latency_rate:
            note = f"at {rate:,.0f}/s, half of what this path sustains on this machine now"
        if path in growing:
            note += "; QUEUEING: latency grows through the run, the rate is too high"
        label = f"bare publish→consume at {rate:,.0f}/s"
        rows += [
            Row("events and notifications", n, f"notification latency p50, {what}",
                stats[f"{path}.p50"], "s", floor=stats[f"{path}.floor.p50"], floor_label=label,
                note=note),
            Row("events and notifications", n, f"notification latency p99, {what}",
                stats[f"{path}.p99"], "s", floor=stats[f"{path}.floor.p99"], floor_label=label,
                target=at_most(5.0) if path == "commit" else None),
        ]  # fmt: skip
    return rows


async def expiry_rows(ctx: Context, n: int) -> list[Row]:
    """A master with 5,000 workers: lease end to last notification, beside the relay's cost.

    A repetition during which the wall clock stepped is left out (and said so), and
    another one runs in its place, up to as many again: Redis expires by the wall clock.
    """
    relay, expired = Stat(), Stat()
    problems: list[str] = []
    stepped: list[str] = []
    reps = ctx.plan.expiry_reps
    for attempt in range(2 * reps):
        if len(expired.samples) == reps:
            break
        progress(f"{n:,}: master expiry, repetition {attempt + 1} (of {reps} wanted)")
        result = await expiry_seconds(ctx.subscriber, ctx.store, ctx.client, lease=4.0)
        if abs(result.clock_step) > CLOCK_STEP:
            stepped.append(f"{result.clock_step * 1000:+,.0f} ms")
            continue
        relay.add(result.relay)
        expired.add(result.expiry)
        if result.notified != fleet.EXPIRY_WORKERS + 1 or result.repeats or not result.order_ok:
            problems.append(
                f"{result.notified} notifications ({result.repeats} repeated), "
                f"the master's last: {result.order_ok}"
            )
        if result.expiry < 0:
            problems.append(f"expired {-result.expiry * 1000:,.0f} ms before its lease end")
    section = "master expiry (5,000 workers)"
    note = "expiry passes run at the earliest lease end (Redis clock), at least every second"
    if stepped:
        note += f"; left out, the wall clock stepped during them: {', '.join(stepped)}"
    row = Row(
        section, n, "lease end → last notification", expired, "s", floor=relay,
        floor_label="relay: one step changing 5,000 workers → last notification",
        target=at_most(1.0, "figure", "s"),
        note=note,
    )  # fmt: skip
    if len(expired.samples) < reps:
        problems.append(f"only {len(expired.samples)} of {reps} repetitions without a clock step")
    if problems:
        row.error = "; ".join(problems)
    return [row]
