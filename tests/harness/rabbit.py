"""A private RabbitMQ node: its own temp dir, free ports, config file and node name.

The shared broker is never reconfigured: a test that needs users, a TLS listener or a
cluster starts one of these. The node runs as the ``rabbitmq`` user (the packaged
scripts refuse anything else but root, and root's nodes would not share the Erlang
cookie in ``/var/lib/rabbitmq/.erlang.cookie``), so ``rabbitmqctl -n NODE`` manages it.
It is started in a session of its own, so that stopping it (by PID, SIGTERM then SIGKILL
of that process group) takes the Erlang VM and its port programs with it; epmd is
shared and left alone.

Usage::

    async with PrivateRabbit(config=["log.console.level = warning"]) as node:
        await node.ctl("add_user", "alice", "secret")
        url = node.amqp_url("alice", "secret")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

from tests.harness.services import free_port, wait_for

__all__ = ["PrivateRabbit", "RabbitError", "ServerTls", "form_cluster"]

#: The packaged scripts, called directly: ``/usr/sbin``'s wrappers re-run them through
#: ``su`` with a shell-quoted command line, and would hide the server's PID.
_SBIN = Path("/usr/lib/rabbitmq/bin")
_USER = "rabbitmq"
#: Seconds a node may take to start (about 10 s here; the machine is shared) or stop.
START_SECONDS = 90.0
STOP_SECONDS = 30.0
CTL_SECONDS = 60.0


class RabbitError(RuntimeError):
    """A private node failed to start, or ``rabbitmqctl`` failed."""


@dataclass(frozen=True)
class ServerTls:
    """The TLS listener's files (readable by the ``rabbitmq`` user) and client policy."""

    cacertfile: Path
    certfile: Path
    keyfile: Path
    #: ``True``: a client without a certificate the CA signed is refused.
    fail_if_no_peer_cert: bool = False
    #: More loopback addresses to listen on besides 127.0.0.1 (say, one the server's
    #: certificate does not name).
    also_on: tuple[str, ...] = ()

    def config(self, port: int) -> list[str]:
        """The ``rabbitmq.conf`` lines of a TLS listener on ``port``."""
        fail = "true" if self.fail_if_no_peer_cert else "false"
        more = [f"listeners.ssl.{n} = {host}:{port}" for n, host in enumerate(self.also_on, 2)]
        return [
            f"listeners.ssl.default = 127.0.0.1:{port}",
            *more,
            f"ssl_options.cacertfile = {self.cacertfile}",
            f"ssl_options.certfile = {self.certfile}",
            f"ssl_options.keyfile = {self.keyfile}",
            "ssl_options.verify = verify_peer",
            f"ssl_options.fail_if_no_peer_cert = {fail}",
        ]


class PrivateRabbit:
    """A RabbitMQ node of the test's own; ``async with`` starts and always stops it."""

    def __init__(
        self,
        *,
        config: Iterable[str] = (),
        tls: ServerTls | None = None,
        name: str | None = None,
    ) -> None:
        self.name = name or f"registryd-test-{uuid.uuid4().hex[:8]}"
        #: The node's Erlang name, for ``rabbitmqctl -n``.
        self.node = f"{self.name}@localhost"
        self.amqp_port = free_port()
        self.amqps_port = free_port()
        self.dist_port = free_port()
        self.tls = tls
        self.extra_config = list(config)
        self.dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def amqp_url(self, user: str = "guest", password: str = "guest", vhost: str = "/") -> str:
        """The plain listener's URL for ``user``."""
        auth = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"amqp://{auth}@127.0.0.1:{self.amqp_port}/{quote(vhost, safe='')}"

    def amqps_url(
        self, user: str = "guest", password: str = "guest", host: str = "localhost"
    ) -> str:
        """The TLS listener's URL for ``user`` (``host`` is the name the server must have)."""
        auth = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"amqps://{auth}@{host}:{self.amqps_port}/%2F"

    def config_lines(self) -> list[str]:
        """Everything in the node's ``rabbitmq.conf``."""
        lines = [
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}",
            # guest may log in from 127.0.0.1 only; the tests are local.
            "loopback_users.guest = true",
            "log.console = false",
            "log.file.level = info",
        ]
        if self.tls is not None:
            lines += self.tls.config(self.amqps_port)
        return lines + self.extra_config

    def _environment(self, base: Path) -> dict[str, str]:
        home = pwd.getpwnam(_USER).pw_dir
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=home,  # the shared Erlang cookie lives there
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_PORT=str(self.amqp_port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(base / "advanced.config"),
            # Not /etc/rabbitmq/rabbitmq-env.conf: that one names the shared node.
            RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
            RABBITMQ_LOG_BASE=str(base / "log"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=(
                "+S 1:1 -kernel inet_dist_use_interface {127,0,0,1}"
            ),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        return env

    def _prepare(self) -> Path:
        base = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        self.dir = base
        (base / "rabbitmq.conf").write_text("\n".join(self.config_lines()) + "\n")
        (base / "advanced.config").write_text("[].\n")
        (base / "rabbitmq-env.conf").write_text("")
        (base / "enabled_plugins").write_text("[].\n")
        for sub in ("mnesia", "log"):
            (base / sub).mkdir()
        user = pwd.getpwnam(_USER)
        for path in (base, *base.iterdir()):
            os.chown(path, user.pw_uid, user.pw_gid)
        return base

    async def start(self) -> None:
        """Start the node and wait until it accepts AMQP connections."""
        self.process = self._spawn(self._prepare())
        try:
            # rabbitmqctl fails at once until the node is registered: wait for its port.
            await wait_for(self._listening_or_exited, START_SECONDS)
            await self._await_startup()
        except (RabbitError, TimeoutError) as exc:
            raise RabbitError(f"{self.node} did not start: {exc}\n{self.log_tail()}") from None

    def _spawn(self, base: Path) -> subprocess.Popen[bytes]:
        with (base / "log" / "stdout.log").open("wb") as out:
            return subprocess.Popen(
                [str(_SBIN / "rabbitmq-server")],
                cwd=base,
                env=self._environment(base),
                user=_USER,
                group=_USER,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def _await_startup(self) -> None:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise RabbitError(f"the server exited with {code}")
        await self.ctl("await_startup", timeout=START_SECONDS)

    async def _listening_or_exited(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            return True
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", self.amqp_port)
        except OSError:
            await asyncio.sleep(0.2)
            return False
        writer.close()
        await writer.wait_closed()
        return True

    def log_tail(self, lines: int = 40) -> str:
        """The end of the node's logs, for a failure's message."""
        if self.dir is None:
            return ""
        text = []
        for log in sorted((self.dir / "log").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            text.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(text)

    async def ctl(self, *args: str, timeout: float = CTL_SECONDS) -> str:
        """``rabbitmqctl -n NODE args...``; its output, or :class:`RabbitError`."""
        return await self._cli("rabbitmqctl", args, timeout)

    async def _cli(self, tool: str, args: Sequence[str], timeout: float) -> str:
        env = self._environment(self.dir) if self.dir is not None else None
        process = await asyncio.create_subprocess_exec(
            str(_SBIN / tool),
            "-n",
            self.node,
            *args,
            env=env,
            user=_USER,
            group=_USER,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            async with asyncio.timeout(timeout):
                out, _ = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RabbitError(f"{tool} {' '.join(args[:1])} on {self.node}: timed out") from None
        text = out.decode(errors="replace")
        if process.returncode != 0:
            raise RabbitError(f"{tool} {args[0]} on {self.node} failed: {text.strip()}")
        return text

    async def queues(self, *args: str, timeout: float = CTL_SECONDS) -> str:
        """``rabbitmq-queues -n NODE args...``; its output, or :class:`RabbitError`."""
        return await self._cli("rabbitmq-queues", args, timeout)

    async def quorum_status(self, queue: str) -> list[dict[str, Any]]:
        """``rabbitmq-queues quorum_status``: one row per member (``Node Name``, ``Raft State``)."""
        rows = json.loads(await self.queues("quorum_status", queue, "--formatter", "json"))
        assert isinstance(rows, list)
        return rows

    async def join_cluster(self, other: PrivateRabbit) -> None:
        """Make this node a member of ``other``'s cluster (stop_app, reset, join, start)."""
        await self.ctl("stop_app")
        await self.ctl("reset")
        await self.ctl("join_cluster", other.node)
        await self.ctl("start_app")
        await self.ctl("await_startup", timeout=START_SECONDS)

    async def stop(self) -> None:
        """Stop the node (SIGTERM, then SIGKILL of its process group) and remove its dir."""
        process, self.process = self.process, None
        if process is not None:
            await _end(process)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    async def kill(self) -> None:
        """Kill the node at once (its whole process group), keeping its data dir."""
        process, self.process = self.process, None
        if process is not None:
            _signal_group(process, signal.SIGKILL)
            await _wait_exit(process, STOP_SECONDS)


def _signal_group(process: subprocess.Popen[bytes], signo: signal.Signals) -> None:
    # The group is the node's own (start_new_session): its VM, port programs, shells.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signo)


async def _wait_exit(process: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        await wait_for(lambda: process.poll() is not None, timeout)
    except TimeoutError:
        return False
    return True


async def _end(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the script stops the VM cleanly), SIGKILL of the group if that hangs."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        if await _wait_exit(process, STOP_SECONDS):
            # Port programs left behind by a VM that exited are killed with the group.
            _signal_group(process, signal.SIGKILL)
            return
    _signal_group(process, signal.SIGKILL)
    await _wait_exit(process, STOP_SECONDS)


async def form_cluster(nodes: Sequence[PrivateRabbit]) -> None:
    """Start the nodes and join every other one to the first's cluster.

    What :meth:`PrivateRabbit.join_cluster` does, with the steps that may overlap run at
    once (each ``rabbitmqctl`` call costs seconds here); the joins themselves go one by one.
    """
    first, others = nodes[0], nodes[1:]
    await asyncio.gather(*(node.start() for node in nodes))
    await asyncio.gather(*(node.ctl("stop_app") for node in others))
    await asyncio.gather(*(node.ctl("reset") for node in others))
    for node in others:
        await node.ctl("join_cluster", first.node)
    await asyncio.gather(*(node.ctl("start_app") for node in others))
