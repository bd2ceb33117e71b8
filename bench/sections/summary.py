"""Memory (daemon RSS, Redis bytes per worker) and the rows beside Buildbot's SQLite."""

from __future__ import annotations

from bench import fleet
from bench.context import Context
from bench.report import Row, at_most
from bench.stats import Stat

__all__ = ["buildbot_rows", "memory_rows"]


async def memory_rows(ctx: Context, n: int, usage: dict[str, int]) -> list[Row]:
    """The daemon's peak RSS and Redis's bytes per worker, beside their floors."""
    section = "memory"
    rss = ctx.daemon.memory()
    at_10k = n == 10_000
    registry = {kind: size for kind, size in usage.items() if kind != "floor copies"}
    parts = ", ".join(f"{k} {v / n:,.0f} B" for k, v in sorted(registry.items()))
    return [
        Row(section, n, "daemon peak RSS (VmHWM)", Stat([rss["VmHWM"]]), "B",
            floor=Stat([ctx.idle_rss]), floor_label="the daemon idle, empty registry",
            target=at_most(100 * 2**20, "figure", "B") if at_10k else None,
            note="peak so far in the run"),
        Row(section, n, "Redis bytes per worker", Stat([sum(registry.values()) / n]), "B",
            floor=Stat([usage.get("floor copies", 0) / n]),
            floor_label="the documents alone as strings",
            target=at_most(1536, "figure", "B") if at_10k else None,
            note=f"MEMORY USAGE of each key: {parts}"),
        Row(section, n, "Redis bytes per worker, the change log left out",
            Stat([sum(v for k, v in registry.items() if k != "change log") / n]), "B",
            floor=Stat([usage.get("floor copies", 0) / n]),
            floor_label="the documents alone as strings",
            note="the change log keeps the last 100,000 changes whatever the registry's size"),
    ]  # fmt: skip


def buildbot_rows(
    ctx: Context, n: int, figures: dict[str, Stat], bb: dict[str, list[float]]
) -> list[Row]:
    """registryd's figures beside Buildbot 4.3's SQLite connector on the same calls."""
    section = "beside Buildbot 4.3's SQLite connector (in-process, no network)"
    label = "Buildbot SQLite"
    rows = [
        Row(section, n, f"{listing.label}: registryd typed call ÷ Buildbot",
            figures[f"typed:{listing.label}"], "s",
            floor=Stat(bb[f"listing:{listing.label}"]), floor_label=label)
        for listing in fleet.LISTINGS
    ]  # fmt: skip
    for key, what in (
        ("get.p50", "getWorker p50: registryd RPC ÷ Buildbot"),
        ("get.p99", "getWorker p99: registryd RPC ÷ Buildbot"),
        ("write.p50", "workerConnected p50: registryd RPC ÷ Buildbot (durable)"),
    ):
        bb_key = {"get": "getWorker", "write": "workerConnected"}[key.split(".")[0]]
        rows.append(
            Row(section, n, what, figures[key], "s",
                floor=Stat(bb[f"{bb_key}.{key.split('.')[1]}"]), floor_label=label)
        )  # fmt: skip
    return rows
