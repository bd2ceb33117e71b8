"""The reading commands: workers, worker, masters, watch."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from aio_pika.exceptions import ChannelNotFoundEntity

from registryd.client import RegistryClient, SubscriptionItem
from registryd.config import Settings
from registryd.errors import NotFound, Unavailable
from registryd.models import (
    WORKER_ADAPTER,
    GetWorker,
    GetWorkers,
    parse_params,
)
from registryd.operator.common import TIMEOUT, Echo
from registryd.operator.format import (
    change_json,
    change_line,
    masters_table,
    to_json,
    worker_details,
    workers_table,
)
from registryd.subscription import Subscription

#: Seconds between two looks at the RPC queue while waiting for a daemon.
_POLL = 0.1


@asynccontextmanager
async def connected(
    settings: Settings, *, daemon: bool = True, wait: float = 0.0
) -> AsyncIterator[RegistryClient]:
    """A client of the configured registry; with ``daemon``, one whose daemon answered.

    A daemon must consume ``<prefix>.rpc``: the queue's consumer count says so at once
    (a passive declare), so that a command fails in well under a second when none runs,
    rather than after the request's timeout. Then a ``ping`` must answer. ``wait``
    seconds allow a daemon that is starting to come up (checked every 0.1 s).
    """
    client = await RegistryClient.connect(
        settings.amqp_url, settings.prefix, timeout=TIMEOUT, tls=settings.amqp_tls
    )
    async with client:
        if daemon:
            try:
                await _answers(client, asyncio.get_running_loop().time() + wait)
            except Unavailable as exc:
                raise Unavailable(
                    f"the daemon on prefix {settings.prefix!r} is unavailable: {exc.message}"
                ) from exc
        yield client


async def _answers(client: RegistryClient, deadline: float) -> None:
    """A daemon consumes the RPC queue (by the deadline) and answers a ``ping``."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            await _consumed(client)
            break
        except Unavailable:
            if loop.time() >= deadline:
                raise
        await asyncio.sleep(_POLL)
    await client.ping()


async def _consumed(client: RegistryClient) -> None:
    """Raise :class:`Unavailable` unless something consumes the RPC queue."""
    rpc = client.names.rpc
    channel = await client.connection.channel()
    try:
        queue = await channel.declare_queue(rpc, passive=True)
    except ChannelNotFoundEntity:
        raise Unavailable(
            f"queue {rpc} does not exist: registryd has not run with this prefix on this "
            "RabbitMQ (start it with `registryd serve`, or pick the prefix with --prefix)"
        ) from None
    finally:
        if not channel.is_closed:
            await channel.close()
    if not queue.declaration_result.consumer_count:
        raise Unavailable(f"no daemon consumes {rpc} (start it with `registryd serve`)")


async def show_workers(
    client: RegistryClient, filters: Mapping[str, object], *, as_json: bool, echo: Echo
) -> None:
    """``workers``: the table, or with ``as_json`` the RPC's JSON list exactly."""
    op = parse_params(GetWorkers, {k: v for k, v in filters.items() if v is not None})
    given = op.model_dump(exclude_none=True)
    if as_json:  # paged like the table: a large registry is over one reply's limit
        echo(to_json(await client.get_workers_json(**given)))
    else:
        echo(workers_table(await client.get_workers(**given)))


async def show_worker(
    client: RegistryClient, workerid: int | None, name: str | None, *, as_json: bool, echo: Echo
) -> None:
    """``worker``: one worker by id or name; :class:`NotFound` when there is none."""
    op = parse_params(GetWorker, {"workerid": workerid, "name": name})
    result = await client.execute(op)
    if result is None:
        if as_json:
            echo(to_json(None))  # scripts get JSON either way: null, as getWorker says
        what = f"id {workerid}" if workerid is not None else f"name {name!r}"
        raise NotFound(f"no worker with {what}")
    echo(to_json(result) if as_json else worker_details(WORKER_ADAPTER.validate_python(result)))


async def show_masters(client: RegistryClient, *, as_json: bool, echo: Echo) -> None:
    """``masters``: the table, or with ``as_json`` the RPC's JSON list exactly."""
    if as_json:
        echo(to_json(await client.call("getMasters")))
    else:
        echo(masters_table(await client.get_masters()))


async def _first(work: Awaitable[None], stop: asyncio.Event) -> None:
    """Run ``work`` until it ends or ``stop`` is set, whichever comes first."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stopped):
            pending.cancel()
        await asyncio.gather(task, stopped, return_exceptions=True)
    if not task.cancelled():
        task.result()


async def watch(
    client: RegistryClient, since: int | None, *, as_json: bool, echo: Echo, note: Echo
) -> None:
    """``watch``: a line per notification until SIGINT or SIGTERM (a clean end).

    Each line starts with the time it was received (``received_at`` in JSON). ``note``
    gets the status line once subscribed: from then on no change is missed.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with client.subscribe(since=since) as changes:
            note(
                f"watching {client.names.notifications} after revision {changes.revision} "
                f"(epoch {changes.epoch}); Ctrl-C stops"
            )
            render = change_json if as_json else change_line
            try:
                await _first(_follow(changes, lambda item: echo(render(item, _now()))), stop)
            except Unavailable as exc:
                raise Unavailable(
                    f"{exc.message}; resume with --since {changes.revision}"
                ) from None
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _now() -> datetime:
    return datetime.now(UTC)


async def _follow(changes: Subscription, seen: Callable[[SubscriptionItem], None]) -> None:
    async for item in changes:
        seen(item)
