"""``registryd serve`` under a fake systemd: the ``$NOTIFY_SOCKET`` datagrams it sends.

The test binds the notification socket itself (in the abstract namespace, as systemd
does, or at a path) and reads what ``Type=notify`` promises: ``READY=1`` once events are
consumed with both backends answering, ``STATUS=`` on every change of state,
``WATCHDOG=1`` at half of ``WATCHDOG_USEC``, ``STOPPING=1`` on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aio_pika.abc import AbstractConnection
from redis.asyncio import Redis

from registryd import daemon as daemon_module
from registryd import metrics as metrics_module
from registryd.amqp.relay import Relay
from registryd.config import Settings
from registryd.daemon import Daemon
from registryd.systemd import Notifier
from tests.harness import PrivateRedis, served, wait_for

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Datagram:
    """One notification: its ``KEY=value`` lines and when it arrived."""

    fields: dict[str, str]
    at: float


class FakeSystemd:
    """The receiving end of ``$NOTIFY_SOCKET``, read from the test's event loop."""

    def __init__(self, address: str) -> None:
        #: The value for ``$NOTIFY_SOCKET`` (``@name`` for an abstract socket).
        self.address = address
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind("\0" + address[1:] if address.startswith("@") else address)
        self.socket.setblocking(False)  # noqa: FBT003 - the stdlib's signature
        self.seen: list[Datagram] = []

    async def next(self, timeout: float = 20) -> Datagram:
        """The next datagram."""
        loop = asyncio.get_running_loop()
        data = await asyncio.wait_for(loop.sock_recv(self.socket, 65536), timeout)
        lines = data.decode().splitlines()
        datagram = Datagram(dict(line.split("=", 1) for line in lines), time.monotonic())
        self.seen.append(datagram)
        return datagram

    async def until(self, key: str, value: str = "1", timeout: float = 20) -> Datagram:
        """Read until a datagram sets ``key`` to ``value`` (watchdog pings aside)."""
        async with asyncio.timeout(timeout):
            while (datagram := await self.next()).fields.get(key) != value:
                pass
        return datagram

    def statuses(self) -> list[str]:
        """Every STATUS= seen so far, in order."""
        return [d.fields["STATUS"] for d in self.seen if "STATUS" in d.fields]

    def close(self) -> None:
        """Close (and, for a path, remove) the socket."""
        self.socket.close()
        if not self.address.startswith("@"):
            Path(self.address).unlink(missing_ok=True)


@pytest.fixture
def systemd() -> Iterator[FakeSystemd]:
    """A fake service manager listening on an abstract socket of its own."""
    fake = FakeSystemd(f"@registryd-test-{uuid.uuid4().hex}")
    yield fake
    fake.close()


@contextlib.asynccontextmanager
async def _events_consumers(amqp: AbstractConnection, prefix: str) -> AsyncIterator[int]:
    channel = await amqp.channel()
    try:
        queue = await channel.declare_queue(f"{prefix}.events", passive=True)
        yield queue.declaration_result.consumer_count or 0
    finally:
        await channel.close()


async def test_ready_comes_once_events_are_consumed_with_both_backends(
    systemd: FakeSystemd, tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """READY=1 (with STATUS=serving) follows STATUS=starting; by then the events are consumed."""
    with served(tmp_path, prefix, NOTIFY_SOCKET=systemd.address) as serve:
        ready = await systemd.until("READY")
        assert "serving" == ready.fields["STATUS"]
        async with _events_consumers(amqp, prefix) as consumers:
            assert 1 == consumers
        assert 200 == await serve.health()
        assert "starting" == systemd.statuses()[0]
        await serve.stopped()


async def test_watchdog_pings_come_at_half_the_requested_interval(
    systemd: FakeSystemd, tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """WATCHDOG_USEC=400000: WATCHDOG=1 every 0.2 s, from start-up on, without a pid check."""
    with served(tmp_path, prefix, NOTIFY_SOCKET=systemd.address, WATCHDOG_USEC="400000") as serve:
        await systemd.until("READY")
        pings = [(await systemd.until("WATCHDOG")).at for _ in range(8)]
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert 0.15 < statistics.median(gaps) < 0.3, gaps
        assert max(gaps) < 0.4, gaps  # never as late as the watchdog itself
        await serve.stopped()


async def test_stopping_is_sent_on_sigterm_before_the_process_exits(
    systemd: FakeSystemd, tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """SIGTERM: STOPPING=1 with STATUS=stopping, and nothing but watchdog pings after it."""
    with served(tmp_path, prefix, NOTIFY_SOCKET=systemd.address) as serve:
        await systemd.until("READY")
        await serve.stopped()
        stopping = await systemd.until("STOPPING", timeout=5)
        assert "stopping" == stopping.fields["STATUS"]
        assert "stopping" == systemd.statuses()[-1]


async def test_status_names_the_backend_being_retried_until_it_answers(
    systemd: FakeSystemd,
    tmp_path: Path,
    prefix: str,
    amqp: AbstractConnection,
    private_redis: PrivateRedis,
) -> None:
    """Redis down at start: STATUS=retrying redis, no READY; Redis up: READY=1, serving."""
    with served(
        tmp_path, prefix, NOTIFY_SOCKET=systemd.address, REGISTRYD_REDIS_URL=private_redis.url
    ) as serve:
        await systemd.until("STATUS", "retrying redis")
        assert not any("READY" in d.fields for d in systemd.seen)
        await private_redis.start()
        await systemd.until("READY")
        assert ["starting", "retrying redis", "serving"] == systemd.statuses()
        await serve.stopped()


async def test_status_names_rabbitmq_while_a_session_is_retried(
    systemd: FakeSystemd, tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """The daemon's broker connection closed: STATUS=retrying rabbitmq, then serving again."""
    with served(tmp_path, prefix, NOTIFY_SOCKET=systemd.address) as serve:
        await systemd.until("READY")
        await _close_connections_of(prefix)
        await systemd.until("STATUS", "retrying rabbitmq")
        await systemd.until("STATUS", "serving")
        assert ["starting", "serving", "retrying rabbitmq", "serving"] == systemd.statuses()
        assert 200 == await serve.health()
        await serve.stopped()


async def test_a_socket_at_a_path_is_notified_too(
    tmp_path: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """NOTIFY_SOCKET may be a filesystem path (short: sun_path holds 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="rd-") as directory:
        fake = FakeSystemd(f"{directory}/notify")
        try:
            with served(tmp_path, prefix, NOTIFY_SOCKET=fake.address) as serve:
                await fake.until("READY")
                await serve.stopped()
        finally:
            fake.close()


class RecordingNotifier(Notifier):
    """A notifier that keeps what it would send, for a daemon in the test's loop."""

    def __init__(self) -> None:
        super().__init__({"NOTIFY_SOCKET": "@unused"})
        self.sent: list[tuple[str, ...]] = []

    def notify(self, *assignments: str) -> bool:
        """Record instead of sending."""
        self.sent.append(assignments)
        return True

    def statuses(self) -> list[str]:
        """Every STATUS= value, in order."""
        return [a[7:] for line in self.sent for a in line if a.startswith("STATUS=")]


async def test_a_crash_is_a_status_until_it_ages_out(
    settings: Settings, redis: Redis, amqp: AbstractConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task dies of a bug: STATUS=crashed: <task>: <error>, then serving when it ages out."""
    for module in (daemon_module, metrics_module):
        monkeypatch.setattr(module, "CRASH_WINDOW", 2.0)
    original, calls = Relay._step, []

    async def buggy_step(self: Relay) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the relay")
        await original(self)

    monkeypatch.setattr(Relay, "_step", buggy_step)
    notifier = RecordingNotifier()
    daemon = Daemon(settings, notifier)
    task = asyncio.create_task(daemon.serve())
    try:
        crashed = "crashed: relay: RuntimeError('a bug in the relay')"
        await wait_for(lambda: crashed in notifier.statuses(), 20)
        await wait_for(lambda: notifier.statuses()[-1] == "serving" and daemon.health.ready, 20)
        assert ["starting", "serving", crashed] == notifier.statuses()[:3]
        assert [("READY=1", "STATUS=serving")] == [s for s in notifier.sent if "READY=1" in s]
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 30)
    assert ("STOPPING=1", "STATUS=stopping") == notifier.sent[-1]


def test_a_watchdog_meant_for_another_process_is_not_fed() -> None:
    """WATCHDOG_PID naming another process: no pings (systemd's rule for forked helpers)."""
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}
    assert None is Notifier(env).watchdog_interval
    env["WATCHDOG_PID"] = str(os.getpid())
    assert 1.0 == Notifier(env).watchdog_interval


def test_without_a_notify_socket_nothing_is_sent() -> None:
    """Not under systemd: notifying is a no-op that says so, and no watchdog is run."""
    notifier = Notifier({"WATCHDOG_USEC": "2000000"})
    assert (False, False, None) == (
        notifier.enabled,
        notifier.notify("READY=1"),
        notifier.watchdog_interval,
    )


def test_a_vanished_socket_is_reported_once_and_never_raises(tmp_path: Path) -> None:
    """The manager's socket gone: notify answers False each time; the daemon goes on."""
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert [False, False] == [notifier.notify("STATUS=x"), notifier.notify("WATCHDOG=1")]
    notifier.close()


async def _close_connections_of(prefix: str) -> None:
    """Close the daemon's broker connection from the broker's side (rabbitmqctl)."""
    listing = await _run("rabbitmqctl", "list_connections", "pid", "client_properties", "-q")
    pids = [line.split("\t")[0] for line in listing.splitlines() if f"registryd {prefix} " in line]
    assert pids, listing
    for pid in pids:
        await _run("rabbitmqctl", "close_connection", pid, "test: connection closed")


async def _run(*command: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    assert 0 == process.returncode, err.decode()
    return out.decode()
