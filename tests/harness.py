"""Running a daemon inside a test, and talking to it with bare aio-pika.

The raw RPC helper here is deliberately independent of ``registryd.client``: it is what
an outside program written against PROTOCOL.md does.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue
from redis.asyncio import Redis

from registryd.amqp.topology import Names
from registryd.config import Settings
from registryd.daemon import Daemon

REDIS_URL = os.environ.get("REGISTRYD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("REGISTRYD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
#: The command line of the daemon, as a subprocess of the tests.
REGISTRYD = [sys.executable, "-m", "registryd"]


def cli_env(prefix: str, **extra: str) -> dict[str, str]:
    """The environment of a ``registryd`` subprocess on the test's prefix and services."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRYD_")}
    env.update(
        REGISTRYD_PREFIX=prefix,
        REGISTRYD_AMQP_URL=AMQP_URL,
        REGISTRYD_REDIS_URL=REDIS_URL,
        REGISTRYD_LOG_FORMAT="json",
        REGISTRYD_GRACE="5",
    )
    env.update(extra)
    return env


async def wait_for(condition: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            result = condition()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await asyncio.sleep(0.02)


@dataclass
class RunningDaemon:
    """A daemon serving in this event loop."""

    daemon: Daemon
    task: asyncio.Task[None]

    async def stop(self) -> None:
        """Ask it to stop and wait until :meth:`Daemon.serve` returns."""
        self.daemon.request_stop()
        await asyncio.wait_for(self.task, 30)


async def start_daemon(settings: Settings) -> RunningDaemon:
    """Start a daemon and wait until it is ready (consuming, both backends answering)."""
    daemon = Daemon(settings)
    task = asyncio.create_task(daemon.serve())
    await wait_for(lambda: daemon.health.ready or task.done(), 20)
    if task.done():
        task.result()
    return RunningDaemon(daemon, task)


async def start_daemon_unready(settings: Settings) -> RunningDaemon:
    """Start a daemon that cannot become ready yet; wait until it serves RPC."""
    daemon = Daemon(settings)
    task = asyncio.create_task(daemon.serve())
    await wait_for(lambda: daemon.health.serving_rpc, 20)
    return RunningDaemon(daemon, task)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RawRpc:
    """RPC over a named exclusive reply queue, as an outside program would do it."""

    channel: AbstractChannel
    names: Names
    reply_queue: AbstractQueue
    pending: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    stray: list[AbstractIncomingMessage] = field(default_factory=list)

    @classmethod
    async def open(cls, connection: AbstractConnection, names: Names) -> RawRpc:
        """A channel and an exclusive reply queue consumed for replies."""
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        rpc = cls(channel, names, queue)
        await queue.consume(rpc._on_reply, no_ack=True)
        return rpc

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self.pending.pop(message.correlation_id or "", None)
        if future is None:
            self.stray.append(message)
        else:
            future.set_result(json.loads(message.body))

    async def send(
        self, body: bytes, *, reply_to: str | None = "", timeout: float = 10.0, **props: Any
    ) -> dict[str, Any]:
        """Publish a raw request body and wait for its reply."""
        correlation_id = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self.pending[correlation_id] = future
        message = aio_pika.Message(
            body,
            content_type="application/json",
            correlation_id=correlation_id,
            reply_to=self.reply_queue.name if reply_to == "" else reply_to,
            **props,
        )
        await self.channel.default_exchange.publish(message, routing_key=self.names.rpc)
        return await asyncio.wait_for(future, timeout)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The full reply (``{"ok": ...}``) to one method call."""
        body: dict[str, Any] = {"method": method}
        if params is not None:
            body["params"] = params
        return await self.send(json.dumps(body).encode())

    async def result(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """The ``result`` of a call that must succeed."""
        reply = await self.call(method, params)
        assert reply["ok"], reply
        return reply["result"]


async def publish_event(
    channel: AbstractChannel, names: Names, event: dict[str, Any] | bytes, **props: Any
) -> None:
    """Publish one lifecycle event as a master does (persistent JSON, routing key = type)."""
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    routing_key = event.get("type", "x") if isinstance(event, dict) else "x"
    exchange = await channel.get_exchange(names.events)
    props.setdefault("content_type", "application/json")
    props.setdefault("delivery_mode", aio_pika.DeliveryMode.PERSISTENT)
    await exchange.publish(aio_pika.Message(body, **props), routing_key=str(routing_key))


REDIS_SERVER = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]


class PrivateRedis:
    """A redis-server of the test's own on a free port, without persistence, killable."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def _spawn(self) -> None:
        self.process = subprocess.Popen(
            [*REDIS_SERVER, "--port", str(self.port)], stdout=subprocess.DEVNULL
        )

    async def start(self) -> None:
        """Start it empty and wait until it answers."""
        self._spawn()
        client = Redis.from_url(self.url)
        try:

            async def answers() -> bool:
                try:
                    return bool(await client.ping())
                except OSError:
                    return False
                except Exception:  # noqa: BLE001 - redis-py's ConnectionError while it starts
                    return False

            await wait_for(answers, 10)
        finally:
            await client.aclose()

    def kill(self) -> None:
        """Kill it at once."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
