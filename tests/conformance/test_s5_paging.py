"""PROTOCOL.md v1.1: ``getWorkers`` paging, the ``too_large`` error, ``ping``'s lease."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aio_pika.abc import AbstractConnection
from pydantic import ValidationError
from redis.asyncio import Redis

from registryd.client import RegistryClient
from registryd.config import Settings
from tests.harness import AMQP_URL, Json, Wire, serving

#: The smallest reply limit the daemon accepts.
SMALLEST_LIMIT = 64 * 1024


@pytest.fixture
async def small(settings: Settings, redis: Redis, amqp: AbstractConnection) -> AsyncIterator[Wire]:
    """A registry whose replies may be at most 64 KiB, with a 42.5 s master lease."""
    async with serving(settings, amqp, rpc_max_reply=SMALLEST_LIMIT, master_lease=42.5) as wire:
        yield wire


async def _workers(wire: Wire, count: int, info: Json | None = None) -> list[int]:
    ids = [await wire.ok("findWorkerId", {"name": f"w{i}"}) for i in range(count)]
    if info is not None:
        for workerid in ids:
            params = {"workerid": workerid, "masterid": 1, "workerinfo": info}
            await wire.ok("workerConnected", params)
    return ids


async def _pages(wire: Wire, limit: int, **filters: Any) -> list[list[Json]]:
    pages: list[list[Json]] = []
    after = 0
    while True:
        page = await wire.ok("getWorkers", {**filters, "limit": limit, "after": after})
        pages.append(page)
        if len(page) < limit:
            return pages
        after = page[-1]["id"]


async def test_ping_gives_the_master_lease_in_seconds(small: Wire) -> None:
    """``master_lease`` is the configured lease; a master heartbeats every third of it."""
    ping = await small.ok("ping")
    assert {"version", "revision", "epoch", "master_lease"} == set(ping)
    assert 42.5 == ping["master_lease"]


async def test_pages_follow_after_until_a_short_page(wire: Wire) -> None:
    """``limit`` cuts the list, ``after`` skips ids up to it; the pages add up to the whole."""
    ids = await _workers(wire, 25)
    pages = await _pages(wire, 10)
    assert [10, 10, 5] == [len(page) for page in pages]
    assert ids == [w["id"] for page in pages for w in page]
    assert await wire.ok("getWorkers") == [w for page in pages for w in page]


async def test_an_exact_multiple_ends_with_an_empty_page(wire: Wire) -> None:
    """20 workers in pages of 10: the third page is empty, and ends the listing."""
    await _workers(wire, 20)
    assert [10, 10, 0] == [len(page) for page in await _pages(wire, 10)]


async def test_after_alone_lists_every_greater_id(wire: Wire) -> None:
    """``after`` without ``limit`` lists the rest, by ascending id."""
    ids = await _workers(wire, 5)
    listed = await wire.ok("getWorkers", {"after": ids[1]})
    assert ids[2:] == [w["id"] for w in listed]


@pytest.mark.parametrize(
    "filters",
    [{"masterid": 1}, {"builderid": 7}, {"masterid": 1, "builderid": 7}, {"paused": True}],
    ids=["masterid", "builderid", "pair", "paused"],
)
async def test_pages_of_a_filtered_listing_count_listed_workers(wire: Wire, filters: Json) -> None:
    """``limit`` counts the workers the filters list (cut down as unpaged), not all."""
    ids = await _workers(wire, 12)
    for workerid in ids[::2]:  # every other worker is configured, and paused
        params = {"workerid": workerid, "masterid": 1, "builderids": [7, 8]}
        await wire.ok("workerConfigured", params)
        await wire.ok("set_worker_paused", {"workerid": workerid, "paused": True})
    pages = await _pages(wire, 4, **filters)
    assert [4, 2] == [len(page) for page in pages]
    assert await wire.ok("getWorkers", filters) == [w for page in pages for w in page]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 10_001},
        {"limit": True},
        {"limit": "5"},
        {"limit": 1.5},
        {"after": -1},
        {"after": False},
        {"after": "3"},
    ],
    ids=repr,
)
async def test_paging_params_out_of_range_are_invalid_params(wire: Wire, params: Json) -> None:
    """``limit`` is 1 to 10,000 and ``after`` an integer >= 0, strictly typed."""
    assert "invalid_params" == await wire.code("getWorkers", params)


async def test_the_paging_bounds_themselves_are_accepted(wire: Wire) -> None:
    """``limit`` 10,000 and ``after`` 0 are valid."""
    ids = await _workers(wire, 2)
    listed = await wire.ok("getWorkers", {"limit": 10_000, "after": 0})
    assert ids == [w["id"] for w in listed]


@pytest.mark.parametrize("param", ["limit", "after"])
async def test_get_worker_takes_no_paging(wire: Wire, param: str) -> None:
    """Paging belongs to ``getWorkers`` only."""
    assert "invalid_params" == await wire.code("getWorker", {"workerid": 1, param: 1})


async def test_an_unpaged_reply_over_the_limit_is_too_large(small: Wire) -> None:
    """Over ``REGISTRYD_RPC_MAX_REPLY`` the whole list is ``too_large``; pages still work."""
    big = {"blob": "x" * 2000}
    ids = await _workers(small, 40, big)  # about 80 KiB of workers
    error = await small.error("getWorkers")
    assert ("too_large", False) == (error["code"], error["retryable"])
    assert "limit" in error["message"]
    pages = await _pages(small, 10)
    assert ids == [w["id"] for page in pages for w in page]


async def test_the_client_library_pages_transparently(small: Wire) -> None:
    """``get_workers()`` lists every worker even when one page of 10,000 is too large."""
    ids = await _workers(small, 40, {"blob": "y" * 2000})
    async with await RegistryClient.connect(AMQP_URL, small.prefix) as client:
        listed = await client.get_workers()
        on_master = await client.get_workers(masterid=1)
    assert ids == [w.id for w in listed]
    assert [] == on_master  # connected, but configured nowhere: not listed by masterid


@pytest.mark.parametrize("value", [SMALLEST_LIMIT - 1, 0, -5])
def test_a_reply_limit_under_64_kib_is_refused(value: int) -> None:
    """The daemon accepts any reply limit from 64 KiB up, and no less."""
    with pytest.raises(ValidationError):
        Settings(rpc_max_reply=value)


def test_the_reply_limit_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``REGISTRYD_RPC_MAX_REPLY`` sets it; the default is 8 MiB."""
    assert 8 * 1024 * 1024 == Settings().rpc_max_reply
    monkeypatch.setenv("REGISTRYD_RPC_MAX_REPLY", "65536")
    assert SMALLEST_LIMIT == Settings().rpc_max_reply
