"""The processes a run starts and what it removes at the end, whatever happened.

- :class:`Child`: ``registryd serve`` or the echo server as a subprocess of its own (never
  in the benchmark client's event loop), its log kept in a file, its memory from
  ``/proc``.
- :func:`clean_up`: every Redis key of the run's prefix (SCAN + DEL on
  :meth:`registryd.store.Keys.pattern`, nothing else) and every RabbitMQ queue and
  exchange whose name it made.
- :func:`machine`: what the header says about the machine and the services.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import aio_pika
from redis.asyncio import Redis

from registryd.client import RegistryClient
from registryd.protocol import Names
from registryd.store import Keys

__all__ = ["BenchNames", "Child", "clean_up", "machine", "start_daemon", "start_echo"]


@dataclass(frozen=True, slots=True)
class BenchNames:
    """The RabbitMQ names the floors use, under the run's prefix."""

    prefix: str

    @property
    def echo(self) -> str:
        """The echo server's request queue."""
        return f"{self.prefix}.echo"

    @property
    def quorum(self) -> str:
        """The quorum queue of the consume+ack floor."""
        return f"{self.prefix}.floor-quorum"

    @property
    def latency(self) -> str:
        """The classic queue of the publish-to-consume latency floor."""
        return f"{self.prefix}.floor-latency"

    @property
    def relay_in(self) -> str:
        """The quorum queue the bare relay (:mod:`bench.forwarder`) consumes."""
        return f"{self.prefix}.floor-relay"

    @property
    def relay_out(self) -> str:
        """The topic exchange the bare relay publishes to."""
        return f"{self.prefix}.floor-relayed"

    def queues(self) -> list[str]:
        """Every queue of the floors."""
        return [self.echo, self.quorum, self.latency, self.relay_in]


@dataclass
class Child:
    """A subprocess of the run, with its log file."""

    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.process.pid

    def memory(self) -> dict[str, int]:
        """``VmRSS`` (now) and ``VmHWM`` (peak) in bytes, from ``/proc``."""
        out: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
        return out

    def tail(self, lines: int = 20) -> str:
        """The end of its log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def check(self) -> None:
        """Raise with its log if it has exited."""
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.log.stem} exited ({self.process.returncode}):\n{self.tail()}"
            )

    async def stop(self, grace: float = 20) -> None:
        """SIGTERM, then SIGKILL after ``grace`` s."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.process.wait, grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait, 5)


def _spawn(command: Sequence[str], env: dict[str, str], log: Path) -> Child:
    with log.open("wb") as out:
        process = subprocess.Popen(list(command), env=env, stdout=out, stderr=subprocess.STDOUT)
    return Child(process, log)


async def start_daemon(
    amqp_url: str, redis_url: str, prefix: str, logdir: Path, *, lease: float = 4.0, **env: str
) -> Child:
    """``registryd serve`` on ``prefix``, answering ``ping``, its log in ``logdir``.

    ``env``: more ``REGISTRYD_*`` settings (``REGISTRYD_REDIS_WAIT_REPLICAS="1"``).

    The default master lease of 4 s is long enough that expiry passes run every second as
    in production (lease / 4, at most 1 s), short enough that the expiry measurement
    waits a few seconds.
    """
    settings = env
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRYD_")}
    env.update(settings)
    env.update(
        REGISTRYD_PREFIX=prefix,
        REGISTRYD_AMQP_URL=amqp_url,
        REGISTRYD_REDIS_URL=redis_url,
        REGISTRYD_METRICS_PORT="0",
        REGISTRYD_LOG_LEVEL="warning",
        REGISTRYD_LOG_FORMAT="console",
        REGISTRYD_MASTER_LEASE=str(lease),
    )
    child = _spawn([sys.executable, "-m", "registryd", "serve"], env, logdir / "registryd.log")
    deadline = time.monotonic() + 60
    while True:
        child.check()
        try:
            async with await RegistryClient.connect(amqp_url, prefix, timeout=2) as client:
                await client.ping()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
        else:
            return child


async def start_echo(amqp_url: str, queue: str, logdir: Path) -> Child:
    """The echo server (:mod:`bench.echo`), consuming ``queue``."""
    command = [sys.executable, "-m", "bench.echo", "--url", amqp_url, "--queue", queue]
    return await _ready(_spawn(command, dict(os.environ), logdir / "echo.log"))


async def start_forwarder(amqp_url: str, names: BenchNames, logdir: Path) -> Child:
    """The bare relay (:mod:`bench.forwarder`): ``relay_in`` to ``relay_out``."""
    command = [sys.executable, "-m", "bench.forwarder", "--url", amqp_url,
               "--queue", names.relay_in, "--exchange", names.relay_out]  # fmt: skip
    return await _ready(_spawn(command, dict(os.environ), logdir / "forwarder.log"))


async def _ready(child: Child, within: float = 30) -> Child:
    """``child`` once it printed ``ready``; its log in the error if it never does."""
    deadline = time.monotonic() + within
    while "ready" not in child.tail():
        child.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.log.stem} did not start:\n{child.tail()}")
        await asyncio.sleep(0.1)
    return child


async def delete_keys(redis: Redis, pattern: str) -> int:
    """SCAN + DEL every key matching ``pattern``; how many there were."""
    deleted = 0
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=pattern, count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            deleted += await redis.delete(*batch)
            batch = []
    if batch:
        deleted += await redis.delete(*batch)
    return deleted


async def clean_up(amqp_url: str, redis_url: str, prefix: str) -> None:
    """Delete the prefix's Redis keys and every queue and exchange the run made."""
    redis = Redis.from_url(redis_url)
    try:
        await delete_keys(redis, Keys(prefix).pattern())
    finally:
        await redis.aclose()
    names, bench = Names(prefix), BenchNames(prefix)
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        for queue in [names.events, names.rpc, names.dead, *bench.queues()]:
            channel = await connection.channel()  # a failure closes the channel: one each
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue)
        for exchange in (names.events, names.notifications, names.dead, bench.relay_out):
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(exchange)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (uncommitted changes)" if dirty else "")


async def machine(amqp_url: str, redis: Redis) -> dict[str, str]:
    """The machine, the services' versions and the libraries' (the table's header)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        props = connection.transport.connection.server_properties  # type: ignore[union-attr]
        rabbit = props.get("version", "unknown")
        rabbit = rabbit.decode() if isinstance(rabbit, bytes) else str(rabbit)
    info = await redis.info("server")
    libs = ("aio-pika", "aiormq", "redis", "hiredis", "pydantic", "buildbot")
    load = os.getloadavg()
    return {
        "cpu": f"{os.cpu_count()} x {_cpu_model()} (nproc {len(os.sched_getaffinity(0))})",
        "python": platform.python_version(),
        "rabbitmq": rabbit,
        "redis": str(info.get("redis_version", "unknown")),
        "libraries": ", ".join(f"{lib} {metadata.version(lib)}" for lib in libs),
        "registryd": f"{metadata.version('registryd')} at {_git()}",
        "load": " ".join(f"{x:.2f}" for x in load),
    }
