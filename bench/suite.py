"""registryd's benchmark suite: every path beside its floor, measured in the same run.

``make bench`` runs the full suite (1,000, 10,000 and 100,000 workers); ``make
bench-quick`` (CI) runs 1,000 and 10,000 workers with few repetitions. One run starts
``registryd serve`` and an aio-pika echo server, each in a process of its own, on a
fresh prefix (``bench-<random>``); fills Redis with the fleet of :mod:`bench.fleet`
through the daemon's own store; measures each size; runs Buildbot 4.3's SQLite
connector on the same calls in a process of its own; prints one Markdown table; and
removes every key, queue and exchange of the prefix, even when it fails.

Only ratios within one run mean something on a shared machine: every row has a floor
measured side by side with its figure, and issue 9's target for the ratio.

    .venv/bin/python -m bench.suite [--quick] [--workers 1000,10000] [--reps N]
        [--markdown FILE] [--json FILE] [--no-buildbot]

Exit code 0 when every measurement ran (targets missed included), 1 when one failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import fleet, sections
from bench.context import QUICK, Context, Plan, opened, progress
from bench.population import copy_documents, grow, prefix_memory, relay_caught_up
from bench.profile import Profiler
from bench.report import Row, render, to_json
from bench.services import machine
from registryd.logs import configure_logging

__all__ = ["main", "run"]

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"

LEGEND = """\
How to read it: figure and floor are medians over the repetitions, [lowest..highest] in
brackets; ratio = figure ÷ floor (for a rate, higher is better), in brackets the lowest
and highest per-repetition ratio when floor and figure were sampled side by side.
target = issue 9's bound (on the ratio, or on the figure where it is in s or bytes);
— = no target. Reply bodies are what the daemon's service computes (in this process,
same Redis); whole calls go through RabbitMQ to `registryd serve` and are decoded by
the client library (raw `client.get_workers_json`, typed `client.get_workers`).
"""


async def _section(
    rows: list[Row], ctx: Context, n: int, name: str, make: Callable[[], Awaitable[list[Row]]]
) -> None:
    """Add a section's rows; a failure becomes an ERROR row, and the run goes on."""
    started = time.perf_counter()
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    profiling = ctx.profiler.section(f"{n}-{slug}") if ctx.profiler else contextlib.nullcontext()
    try:
        with profiling:
            rows += await make()
    except Exception as exc:  # noqa: BLE001 - reported as an ERROR row, exit code 1
        progress(f"{n:,}: {name} FAILED: {exc!r}")
        rows.append(Row(name, n, f"{name} (failed)", None, "s", error=repr(exc)[:300]))
        ctx.daemon.check()  # a dead daemon ends the run, with its log
    progress(f"{n:,}: {name} took {time.perf_counter() - started:.1f} s")


async def _populate(ctx: Context, n: int) -> dict[str, int]:
    started = time.perf_counter()
    progress(f"{n:,}: populating from {ctx.workers:,} workers")
    await grow(ctx.store, ctx.workers, n)
    ctx.workers = n
    waited = await relay_caught_up(ctx.redis, ctx.keys)
    await copy_documents(ctx.store)
    usage = await prefix_memory(ctx.redis, ctx.keys)
    progress(
        f"{n:,}: populated in {time.perf_counter() - started:.1f} s "
        f"(relay caught up {waited:.1f} s after the last write)"
    )
    return usage


#: The sections of a size, by the name ``--sections`` takes.
SECTIONS = ("listings", "rpc", "events", "expiry", "memory")


def _wanted(ctx: Context, section: str) -> bool:
    return not ctx.plan.sections or section in ctx.plan.sections


async def measure_size(ctx: Context, n: int) -> list[Row]:
    """Every section at ``n`` workers (those of ``--sections`` when given)."""
    usage = await _populate(ctx, n)
    rows: list[Row] = []
    if _wanted(ctx, "listings"):
        await _section(rows, ctx, n, "getWorkers listings", lambda: sections.listing_rows(ctx, n))
    if _wanted(ctx, "rpc"):
        await _section(
            rows, ctx, n, "RPC: getWorker and a write", lambda: sections.rpc_rows(ctx, n)
        )
    if _wanted(ctx, "events") or _wanted(ctx, "expiry"):
        await _notification_sections(ctx, n, rows)
    if _wanted(ctx, "memory"):
        await _section(rows, ctx, n, "memory", lambda: sections.memory_rows(ctx, n, usage))
    return rows


async def _notification_sections(ctx: Context, n: int, rows: list[Row]) -> None:
    await ctx.subscriber.bind()
    try:
        await ctx.subscriber.settle(ctx.store)
        if _wanted(ctx, "events"):
            await _section(
                rows, ctx, n, "events and notifications", lambda: sections.event_rows(ctx, n)
            )
        if n >= fleet.EXPIRY_WORKERS and _wanted(ctx, "expiry"):
            await _section(
                rows, ctx, n, "master expiry (5,000 workers)", lambda: sections.expiry_rows(ctx, n)
            )
    finally:
        await ctx.subscriber.unbind()


async def buildbot_figures(plan: Plan) -> dict[str, dict[str, list[float]]]:
    """Buildbot's figures from ``python -m bench.buildbot_sql`` (a process of its own)."""
    command = [
        sys.executable, "-m", "bench.buildbot_sql",
        "--sizes", ",".join(str(n) for n in plan.sizes),
        "--reps", str(plan.reps),
        "--calls", str(plan.sequential_calls),
        "--seconds", str(plan.sample_seconds),
        "--budget", str(plan.budget),
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"bench.buildbot_sql failed:\n{err.decode(errors='replace')[-2000:]}")
    figures: dict[str, dict[str, list[float]]] = json.loads(out.decode().splitlines()[-1])
    return figures


async def _buildbot_rows(ctx: Context, rows: list[Row]) -> None:
    started = time.perf_counter()
    progress("Buildbot 4.3 SQLite connector, every size (its own process)")
    try:
        figures = await buildbot_figures(ctx.plan)
        for n in ctx.plan.sizes:
            if n in ctx.figures:
                rows += sections.buildbot_rows(ctx, n, ctx.figures[n], figures[str(n)])
    except Exception as exc:  # noqa: BLE001 - reported as an ERROR row, exit code 1
        rows.append(Row("Buildbot", None, "Buildbot SQLite (failed)", None, "s", error=repr(exc)))
    progress(f"Buildbot took {time.perf_counter() - started:.1f} s")


def _header(plan: Plan, about: dict[str, str], mode: str, prefix: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sizes = ", ".join(f"{n:,}" for n in plan.sizes)
    lines = [
        f"## registryd benchmarks: {mode} run, {when}",
        "",
        (
            f"- workers: {sizes} on 4 masters and 50 builders (one in ten paused); "
            f"{plan.reps} repetitions ({plan.listing_reps(100_000)} of the listings from "
            f"100,000); prefix `{prefix}`"
        ),
        *(f"- {key}: {value}" for key, value in about.items()),
    ]
    return "\n".join(lines) + "\n"


async def run(
    plan: Plan, mode: str, amqp_url: str, redis_url: str, profile: Path | None = None
) -> tuple[str, dict[str, str], list[Row]]:
    """The whole run: the report's text, its header's facts and its rows."""
    started = time.perf_counter()
    rows: list[Row] = []
    async with opened(plan, amqp_url, redis_url) as ctx:
        about = await machine(amqp_url, ctx.redis)
        if profile is not None:
            ctx.profiler = Profiler(profile, {"daemon": ctx.daemon.pid, "client": os.getpid()})
            about["profile"] = f"py-spy into {profile}" if ctx.profiler.py_spy else "no py-spy"
        for n in plan.sizes:
            rows += await measure_size(ctx, n)
        if plan.buildbot:
            await _buildbot_rows(ctx, rows)
        about["load after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        if any(row.error for row in rows):
            progress(f"a measurement failed; the end of registryd's log:\n{ctx.daemon.tail(40)}")
        prefix = ctx.prefix
    took = f"\nThe run took {time.perf_counter() - started:.0f} s.\n"
    text = _header(plan, about, mode, prefix) + render(rows) + "\n" + LEGEND + took
    return text, about, rows


def _plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else Plan()
    if args.workers:
        plan = dataclasses.replace(plan, sizes=tuple(int(n) for n in args.workers.split(",")))
    if args.reps:
        plan = dataclasses.replace(plan, reps=args.reps)
    if args.no_buildbot:
        plan = dataclasses.replace(plan, buildbot=False)
    if args.sections:
        chosen = tuple(args.sections.split(","))
        unknown = sorted(set(chosen) - set(SECTIONS))
        if unknown:
            raise SystemExit(
                f"--sections: unknown {', '.join(unknown)}; known: {', '.join(SECTIONS)}"
            )
        plan = dataclasses.replace(plan, sections=chosen)
    return plan


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="1,000 and 10,000 workers, ~2 min")
    mode.add_argument("--full", action="store_true", help="1,000 to 100,000 workers (default)")
    parser.add_argument("--workers", help="comma-separated sizes, e.g. 1000,10000")
    parser.add_argument("--reps", type=int, help="repetitions of each measurement")
    parser.add_argument("--no-buildbot", action="store_true", help="skip Buildbot's SQLite")
    parser.add_argument("--sections", help=f"comma-separated, of: {', '.join(SECTIONS)} (all)")
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    parser.add_argument("--json", type=Path, help="write every row with its samples here")
    parser.add_argument("--profile", type=Path, help="py-spy each section into this directory")
    parser.add_argument("--amqp-url", default=os.environ.get("REGISTRYD_AMQP_URL", DEFAULT_AMQP))
    parser.add_argument("--redis-url", default=os.environ.get("REGISTRYD_REDIS_URL", DEFAULT_REDIS))
    return parser.parse_args()


async def _cancellable(work: Awaitable[Any]) -> Any:  # noqa: ANN401 - passes the result on
    """``work``, cancelled by SIGTERM like by Ctrl-C, so the clean-up runs either way."""
    task = asyncio.ensure_future(work)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await task


def main() -> None:
    """Run the suite, print the report; exit 1 if a measurement failed."""
    args = _arguments()
    configure_logging("console", "warning")
    plan = _plan(args)
    mode = "quick" if args.quick else "full"
    work = run(plan, mode, args.amqp_url, args.redis_url, args.profile)
    try:
        text, about, rows = asyncio.run(_cancellable(work))
    except (KeyboardInterrupt, asyncio.CancelledError):
        progress("interrupted; everything the run made is removed")
        sys.exit(130)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        data = {
            "machine": about,
            "plan": {**dataclasses.asdict(plan), "sections": sorted(plan.sections)},
            "rows": [to_json(r) for r in rows],
        }
        args.json.write_text(json.dumps(data, indent=1))
    sys.exit(1 if any(r.error for r in rows) else 0)


if __name__ == "__main__":
    main()
