"""getWorkers listings: reply body, raw and typed whole calls, beside MGET + echo + loads."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from bench import fleet
from bench.context import Context, progress
from bench.population import floor_key
from bench.report import Row, at_most
from bench.stats import Stat, calibrate, sample
from registryd.client import decode_json
from registryd.models import GetWorkers
from registryd.models.ops import MAX_PAGE
from registryd.service import DEFAULT_MAX_REPLY

__all__ = ["listing_rows"]

Call = Callable[[], Awaitable[object]]
#: RabbitMQ 3.13's default largest message: a full listing must page below it.
BROKER_LIMIT = 16 * 2**20
ALL = fleet.LISTINGS[0].label


async def _listing_calls(ctx: Context, listing: fleet.Listing) -> tuple[dict[str, Call], int]:
    """A listing's three figures (and, unfiltered, its three floors); its reply's size."""
    op = GetWorkers(**listing.params)
    body = await ctx.registry.execute_json(op)
    calls: dict[str, Call] = {
        "body": lambda: ctx.registry.execute_json(op),
        "raw": lambda: ctx.client.get_workers_json(**listing.params),
        "typed": lambda: ctx.client.get_workers(**listing.params),
    }
    if listing.params:  # a filtered listing's floor is the unfiltered one
        return calls, len(body)
    keys = [floor_key(ctx.keys, w["id"]) for w in json.loads(body)["result"]]
    size = b"%d" % len(body)

    async def loads() -> object:
        return json.loads(body)

    async def decoded() -> object:
        return decode_json(body)

    calls["mget"] = lambda: ctx.redis.mget(keys)
    calls["echo"] = lambda: ctx.echo.call(size)
    calls["loads"] = loads
    calls["decoded"] = decoded
    return calls, len(body)


async def _largest_page(ctx: Context) -> int:
    """The largest reply of an unfiltered listing in pages of 10,000 (the client's)."""
    largest, after = 0, 0
    while True:
        body = await ctx.registry.execute_json(GetWorkers(limit=MAX_PAGE, after=after))
        largest = max(largest, len(body))
        page = json.loads(body)["result"]
        if len(page) < MAX_PAGE:
            return largest
        after = page[-1]["id"]


async def listing_rows(ctx: Context, n: int) -> list[Row]:
    """Every listing: reply body, raw call and typed call, beside MGET + echo + loads."""
    prepared = {item.label: await _listing_calls(ctx, item) for item in fleet.LISTINGS}
    inner = {
        (label, kind): await calibrate(call, ctx.plan.budget)
        for label, (calls, _) in prepared.items()
        for kind, call in calls.items()
    }
    stats = {key: Stat() for key in inner}
    reps = ctx.plan.listing_reps(n)
    for rep in range(reps):
        progress(f"{n:,}: listings, repetition {rep + 1}/{reps}")
        for label, (calls, _) in prepared.items():
            for kind, call in calls.items():
                stats[label, kind].add(await sample(call, inner[label, kind]))
    for listing in fleet.LISTINGS:
        ctx.figures.setdefault(n, {})[f"typed:{listing.label}"] = stats[listing.label, "typed"]
    sizes = {label: size for label, (_, size) in prepared.items()}
    rows = _listing_rows(ctx, n, stats, sizes)
    if sizes[ALL] > DEFAULT_MAX_REPLY:
        rows[1].note = f"{n // MAX_PAGE + 1} pages of 10,000; unpaged would be too_large"
    largest = await _largest_page(ctx)
    rows.append(
        Row(
            "getWorkers listings", n, "largest reply of a full paged listing", Stat([largest]), "B",
            floor=Stat([BROKER_LIMIT]), floor_label="(RabbitMQ 3.13's limit)",
            target=at_most(BROKER_LIMIT, "figure", "B"),
        )
    )  # fmt: skip
    return rows


def _listing_rows(
    ctx: Context, n: int, stats: dict[tuple[str, str], Stat], sizes: dict[str, int]
) -> list[Row]:
    section = "getWorkers listings"
    trip = stats[ALL, "mget"] + stats[ALL, "echo"]
    everything = trip + stats[ALL, "loads"]
    rows = [
        Row(section, n, "getWorkers() reply body", stats[ALL, "body"], "s",
            floor=stats[ALL, "mget"], floor_label="MGET of the docs", target=at_most(1.5),
            note=f"{sizes[ALL] / 2**20:.1f} MiB"),
        Row(section, n, "getWorkers() whole call, raw", stats[ALL, "raw"], "s",
            floor=everything, floor_label="MGET + echo + json.loads", target=at_most(1.1)),
        Row(section, n, "getWorkers() whole call, raw, beside the client's own decoder",
            stats[ALL, "raw"], "s", floor=trip + stats[ALL, "decoded"],
            floor_label="MGET + echo + the client's decode_json",
            note="what the call adds to its parts, each as the client does it"),
        Row(section, n, "getWorkers() whole call, typed", stats[ALL, "typed"], "s",
            floor=stats[ALL, "raw"], floor_label="raw call", target=at_most(2.0)),
    ]  # fmt: skip
    for listing in fleet.LISTINGS[1:]:
        label = listing.label
        note = f"{fleet.listed(listing, n):,} of {n:,} listed"
        rows += [
            Row(section, n, f"{label} reply body", stats[label, "body"], "s",
                floor=stats[ALL, "body"], floor_label="unfiltered body",
                target=at_most(listing.bound), note=note),
            Row(section, n, f"{label} whole call, raw", stats[label, "raw"], "s",
                floor=stats[ALL, "raw"], floor_label="unfiltered raw",
                target=at_most(listing.bound)),
            Row(section, n, f"{label} whole call, typed", stats[label, "typed"], "s",
                floor=stats[label, "raw"], floor_label="raw call", target=at_most(2.0)),
        ]  # fmt: skip
    parts = (
        ("mget", "MGET of the docs"),
        ("echo", "echo of the reply's size"),
        ("loads", "json.loads of the reply"),
        ("decoded", "the client's decode_json of the reply (from_json, collector held off)"),
    )
    for kind, what in parts:
        rows.append(Row(section, n, f"floor part: {what}", stats[ALL, kind], "s"))
    per_worker = stats[ALL, "raw"].scaled(1 / n)
    first = ctx.plan.sizes[0]
    if n != first:
        rows.append(
            Row("scale: no slower with more workers", n,
                "scale: getWorkers() raw, per listed worker", per_worker, "s",
                floor=ctx.first["listing.per_worker"], floor_label=f"at {first:,}",
                target=at_most(1.3), note="cost grows linearly with what a call returns")
        )  # fmt: skip
    ctx.first.setdefault("listing.per_worker", per_worker)
    return rows
