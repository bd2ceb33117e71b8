"""Stopping the RPC server: no request still uses Redis once the daemon closes its client.

A stand-in channel and registry (no broker, no Redis): what is checked is the server's
own bookkeeping of the requests in hand, which a real broker cannot time on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import aiormq
import pytest
from aiormq import spec
from aiormq.abc import DeliveredMessage
from pamqp.header import ContentHeader

from registryd.amqp.rpc import RpcServer
from registryd.metrics import Metrics
from registryd.service import Registry


class _Registry:
    """Answers every operation once ``release`` is set; counts what it was asked."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()

    async def execute_json(self, _op: object) -> bytes:
        self.calls += 1
        await self.release.wait()
        return b'{"ok":true,"result":null}'


class _Channel:
    """What the server uses of an aiormq channel; its cancel fails when ``gone``."""

    number = 1
    max_content_size = 131_072
    is_closed = False

    def __init__(self, *, gone: bool = False) -> None:
        self.gone = gone
        self.write_queue: asyncio.Queue[Any] = asyncio.Queue()

    async def basic_consume(self, _queue: str, _callback: object) -> spec.Basic.ConsumeOk:
        return spec.Basic.ConsumeOk(consumer_tag="ctag")

    async def basic_cancel(self, _tag: str) -> None:
        if self.gone:
            raise aiormq.exceptions.ChannelInvalidStateError("the channel is closed")

    def create_future(self) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)  # the writer took the frames
        return future


def _request(tag: int) -> DeliveredMessage:
    properties = spec.Basic.Properties(reply_to="amq.rabbitmq.reply-to", correlation_id="c")
    return DeliveredMessage(
        delivery=spec.Basic.Deliver(consumer_tag="ctag", delivery_tag=tag),
        header=ContentHeader(properties=properties),
        body=b'{"method": "ping"}',
        channel=cast(aiormq.Channel, None),
    )


async def _server(channel: _Channel) -> tuple[RpcServer, _Registry]:
    registry = _Registry()
    server = RpcServer(
        cast(Registry, registry), cast(aiormq.Channel, channel), "q", Metrics(), timeout=5
    )
    await server.start()
    return server, registry


@pytest.mark.parametrize("gone", [False, True], ids=["cancelled", "channel-gone"])
async def test_stop_waits_for_the_requests_in_hand(gone: bool) -> None:
    """Also when the cancel fails: the request in hand still finishes before stop returns."""
    channel = _Channel(gone=gone)
    server, registry = await _server(channel)
    task = asyncio.create_task(server._on_request(_request(1)))
    await asyncio.sleep(0)  # the request starts and waits on the registry
    assert 1 == registry.calls
    stopping = asyncio.create_task(server.stop())
    await asyncio.sleep(0.01)
    assert not stopping.done()
    registry.release.set()
    with (
        pytest.raises(aiormq.exceptions.ChannelInvalidStateError)
        if gone
        else contextlib.nullcontext()
    ):
        await stopping
    assert task.done()
    assert 1 == channel.write_queue.qsize()  # its reply and ack went out


async def test_a_request_starting_after_stop_is_not_served() -> None:
    """A delivery whose task starts once stopped stays unacked: nothing read, nothing sent."""
    channel = _Channel()
    server, registry = await _server(channel)
    await server.stop()
    async with asyncio.timeout(1):  # a served request would wait on the registry
        await server._on_request(_request(2))
    assert 0 == registry.calls
    assert channel.write_queue.empty()


async def test_abort_cancels_the_requests_in_hand() -> None:
    """After the grace period the daemon cancels what is left; nothing is written."""
    channel = _Channel()
    server, registry = await _server(channel)
    task = asyncio.create_task(server._on_request(_request(3)))
    await asyncio.sleep(0)
    assert [task] == server.in_flight
    server.abort()
    await asyncio.wait([task])
    assert task.cancelled()
    assert [] == server.in_flight
    assert channel.write_queue.empty()
    assert 1 == registry.calls
