"""The services the tests run against: URLs, prefixes and their clean-up, a private Redis."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import aiormq
from aio_pika.abc import AbstractConnection
from redis.asyncio import Redis

from registryd.amqp.topology import delete_topology
from registryd.config import Settings
from registryd.protocol import Names
from registryd.redis_client import connect_redis
from registryd.store import Keys, RedisClient

REDIS_URL = os.environ.get("REGISTRYD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("REGISTRYD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
#: The AMQP user the tests log in as: the only ``user_id`` RabbitMQ lets them publish.
AMQP_USER = urlsplit(AMQP_URL).username or "guest"
#: The command line of the daemon, as a subprocess of the tests.
REGISTRYD = [sys.executable, "-m", "registryd"]
#: How often a bounded wait looks again.
POLL = 0.01


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
            await asyncio.sleep(POLL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


REDIS_SERVER = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]


class PrivateRedis:
    """A redis-server of the test's own on a free port, killable, pausable, restartable.

    Without ``appendonly`` it keeps nothing: started again, it is empty. With it (and a
    ``directory`` for the file), it comes back with everything it acknowledged: Redis
    writes the append-only file before it replies, so even SIGKILL loses nothing.
    ``args`` are more options (``--replicaof``, ``--cluster-enabled yes``...); ``command``
    replaces the whole command line (a sentinel: ``redis-server <file> --sentinel``).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        appendonly: bool = False,
        directory: Path | None = None,
        args: Sequence[str] = (),
        command: Sequence[str] | None = None,
        cwd: Path | None = None,
        password: str | None = None,
    ) -> None:
        if appendonly and directory is None:
            raise ValueError("an append-only Redis needs a directory for its file")
        self.port = port or free_port()
        self.appendonly = appendonly
        self.directory = directory
        self.args = list(args)
        self.command = None if command is None else list(command)
        self.cwd = cwd
        #: What its ``requirepass`` is (set by ``command``'s config file), in :attr:`url`.
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL (with its password, if it has one)."""
        login = "" if self.password is None else f":{self.password}@"
        return f"redis://{login}127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def _spawn(self) -> None:
        args = [*REDIS_SERVER, "--port", str(self.port)]
        if self.appendonly:
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
        if self.directory is not None:
            args += ["--dir", str(self.directory)]
        command = self.command or [*args, *self.args]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, cwd=self.cwd)

    async def start(self) -> None:
        """Start it (empty, or from its append-only file) and wait until it answers."""
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
        """Kill it at once, by its PID (a paused one too)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: it keeps its connections open and answers nothing."""
        assert self.process is not None, "start() first"
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.process is not None, "start() first"
        self.process.send_signal(signal.SIGCONT)


def redis_client(url: str) -> RedisClient:
    """A client for any ``redis_url`` the daemon takes: one server, Sentinel, Cluster."""
    return connect_redis(Settings(redis_url=url, prefix="test"), name="registryd-test")


#: Every prefix handed out in this process, with the test it was made for (see
#: :func:`left_behind`).
PREFIXES: dict[str, str] = {}


def unique_prefix() -> str:
    """A prefix no other test (or run) uses: RabbitMQ names and Redis keys hang off it."""
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    PREFIXES[prefix] = os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" (", 1)[0]
    return prefix


async def connections_named(redis: Redis, name: str, command: str | None = None) -> int:
    """The connections ``redis`` counts under the client name ``name`` (running ``command``)."""
    return sum(
        1
        for client in await redis.client_list()
        if client["name"] == name and command in (None, client["cmd"])
    )


async def left_behind(prefixes: dict[str, str]) -> dict[str, list[str]]:
    """The tests whose prefix still has queues on the shared broker or keys in Redis."""
    found: dict[str, list[str]] = {}
    connection = await aio_pika.connect(AMQP_URL)
    redis = Redis.from_url(REDIS_URL)
    try:
        for prefix, test in prefixes.items():
            names = Names(prefix)
            for queue in (names.events, names.rpc, names.dead):
                channel = await connection.channel()
                try:
                    await channel.declare_queue(queue, passive=True)
                except aiormq.exceptions.ChannelNotFoundEntity:
                    continue
                finally:
                    with contextlib.suppress(Exception):
                        await channel.close()
                found.setdefault(test, []).append(queue)
            async for key in redis.scan_iter(match=Keys(prefix).pattern(), count=1000):
                found.setdefault(test, []).append(key.decode())
                break
    finally:
        await redis.aclose()
        await connection.close()
    return found


def daemon_settings(prefix: str) -> Settings:
    """Daemon settings for a test's prefix; no HTTP endpoint unless a test asks."""
    return Settings(
        prefix=prefix, amqp_url=AMQP_URL, redis_url=REDIS_URL, metrics_port=0, grace=5.0
    )


async def clean_prefix(connection: AbstractConnection, redis: RedisClient, prefix: str) -> None:
    """Delete every queue, exchange and Redis key of ``prefix``."""
    await delete_topology(connection, Names(prefix))
    keys = [key async for key in redis.scan_iter(match=Keys(prefix).pattern(), count=1000)]
    for start in range(0, len(keys), 1000):
        await redis.delete(*keys[start : start + 1000])
