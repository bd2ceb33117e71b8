"""Real processes for the live tests: registryd, Buildbot masters and workers, databases.

Every process is started by the test (``buildbot start --nodaemon`` and
``buildbot-worker start --nodaemon`` run twistd in the foreground, so the child's PID is
the master's or worker's) and stopped by that PID. PostgreSQL databases are the test's
own (created and dropped here).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg2

from registryd.client import RegistryClient
from tests.buildbot.harness import AMQP_URL, REDIS_URL, wait_until

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
PG_DSN = os.environ.get("REGISTRYD_TEST_PG", "host=127.0.0.1 port=5432 user=postgres")
PG_URL = os.environ.get("REGISTRYD_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")
#: Seconds a master may take to start on this (slow, shared) machine.
START_TIMEOUT = 90.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment less REGISTRYD_* settings, plus ``extra`` and the repo on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRYD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@dataclass
class Process:
    """A child process, its log, stopped by PID."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    _out: IO[bytes] = field(repr=False)

    @classmethod
    def spawn(cls, name: str, argv: list[str], log: Path, env: dict[str, str]) -> Process:
        """Start ``argv`` in ``log``'s folder, in a session of its own, output into ``log``."""
        out = log.open("ab")
        popen = subprocess.Popen(
            argv,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        return cls(name, popen, log, out)

    @property
    def alive(self) -> bool:
        """Whether it still runs."""
        return self.popen.poll() is None

    def signal(self, signum: int, timeout: float = 60.0) -> int:
        """Send ``signum`` to its PID and wait; SIGKILL if it outlives ``timeout``."""
        if self.alive:
            os.kill(self.popen.pid, signum)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.popen.pid, signal.SIGKILL)
            code = self.popen.wait(30)
        self._out.close()
        return code

    def tail(self, lines: int = 30, path: Path | None = None) -> str:
        """The end of its log (or of ``path``), for failure messages."""
        target = path or self.log
        if not target.exists():
            return ""
        return "\n".join(target.read_text(errors="replace").splitlines()[-lines:])


def run_tool(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    """Run a set-up command (``create-master`` ...); fail with its output if it fails."""
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"{argv} failed:\n{done.stdout}\n{done.stderr}")


class Registryd:
    """``python -m registryd serve`` on a prefix, with a short master lease."""

    def __init__(self, prefix: str, workdir: Path, lease: float) -> None:
        self.prefix = prefix
        env = clean_env(
            REGISTRYD_PREFIX=prefix,
            REGISTRYD_AMQP_URL=AMQP_URL,
            REGISTRYD_REDIS_URL=REDIS_URL,
            REGISTRYD_MASTER_LEASE=str(lease),
            REGISTRYD_METRICS_PORT="0",
            REGISTRYD_LOG_FORMAT="json",
            REGISTRYD_GRACE="5",
        )
        argv = [sys.executable, "-m", "registryd", "serve"]
        self.process = Process.spawn("registryd", argv, workdir / "registryd.log", env)

    async def client(self) -> RegistryClient:
        """A client of the test's own (close it)."""
        return await RegistryClient.connect(AMQP_URL, self.prefix, timeout=5)

    async def wait_ready(self) -> None:
        """Until ``ping`` answers."""

        async def pings() -> bool:
            if not self.process.alive:
                raise AssertionError(f"registryd exited:\n{self.process.tail()}")
            try:
                async with await self.client() as client:
                    await client.ping()
            except Exception:  # noqa: BLE001 - not serving yet, whatever the error
                return False
            return True

        await wait_until(pings, 30, "registryd answers ping", step=0.2)

    def stop(self) -> None:
        """SIGTERM by PID."""
        self.process.signal(signal.SIGTERM)


MASTER_CFG = """\
from buildbot.plugins import schedulers, steps, util, worker
from tests.buildbot.control import Control

c = BuildmasterConfig = {{}}
c["workers"] = [worker.Worker(name, "pass") for name in {workers!r}]
c["protocols"] = {{"pb": {{"port": "tcp:{pb_port}:interface=127.0.0.1"}}}}
c["builders"] = [
    util.BuilderConfig(
        name="build-" + name,
        workernames=[name],
        factory=util.BuildFactory([steps.ShellCommand(command=["echo", "hello"])]),
    )
    for name in {workers!r}
]
c["schedulers"] = [
    schedulers.ForceScheduler(name="force", builderNames=["build-" + n for n in {workers!r}])
]
c["services"] = [Control({control_port})]
c["db"] = {{"db_url": {db_url!r}}}
c["buildbotNetUsageData"] = None
c["title"] = "registryd live test"
"""

#: The first line of the README's ``buildbot.tac`` block, which the masters here run.
TAC_MARK = "# buildbot.tac, right after"


def readme_tac_lines() -> str:
    """The README's ``buildbot.tac`` lines, as written there (the live masters run them)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks: list[str] = re.findall(r"^```python\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    (block,) = [b for b in blocks if b.startswith(TAC_MARK)]
    return "\n" + block


class Master:
    """A Buildbot master made by ``buildbot create-master``, its tac calling install()."""

    def __init__(
        self,
        basedir: Path,
        db_url: str,
        prefix: str,
        workers: list[str],
        reactor: str | None = None,
    ) -> None:
        self.basedir = basedir
        self.workers = workers
        self.reactor = reactor
        self.pb_port = free_port()
        self.control_port = free_port()
        self.process: Process | None = None
        self.env = clean_env(REGISTRYD_AMQP_URL=AMQP_URL, REGISTRYD_PREFIX=prefix)
        run_tool(
            [str(BIN / "buildbot"), "create-master", "--db", db_url, str(basedir)], ROOT, self.env
        )
        config = MASTER_CFG.format(
            workers=workers, pb_port=self.pb_port, control_port=self.control_port, db_url=db_url
        )
        (basedir / "master.cfg").write_text(config)
        tac = (basedir / "buildbot.tac").read_text()
        line = "m = BuildMaster(basedir, configfile, umask)\n"
        assert line in tac, tac
        (basedir / "buildbot.tac").write_text(tac.replace(line, line + readme_tac_lines()))

    def start(self) -> None:
        """Run the master in the foreground (the PID is the master's).

        ``buildbot start --nodaemon``, or with :attr:`reactor` set, twistd on that
        reactor (``twistd --reactor=asyncio --python=buildbot.tac``).
        """
        if self.reactor is None:
            argv = [str(BIN / "buildbot"), "start", "--nodaemon", str(self.basedir)]
        else:
            argv = [
                str(BIN / "twistd"),
                f"--reactor={self.reactor}",
                "--nodaemon",
                "--no_save",
                "--pidfile=",
                f"--logfile={self.basedir / 'twistd.log'}",
                f"--python={self.basedir / 'buildbot.tac'}",
            ]
        self.process = Process.spawn("master", argv, self.basedir / "stdout.log", self.env)

    @property
    def log(self) -> str:
        """The end of ``twistd.log``."""
        assert self.process is not None
        return self.process.tail(60, self.basedir / "twistd.log")

    async def call(self, request: dict[str, Any], timeout: float = 30) -> Any:
        """One data API request through the control service (see tests.buildbot.control)."""
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.control_port)
            try:
                writer.write(json.dumps(request).encode() + b"\n")
                reply = json.loads(await reader.readline())
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        if not reply["ok"]:
            raise AssertionError(f"{request}: {reply['error']}")
        return reply["result"]

    async def wait_started(self) -> int:
        """Until the control service answers with the master's id; return the id."""
        info: dict[str, Any] = {}

        async def answers() -> bool:
            assert self.process is not None
            if not self.process.alive:
                raise AssertionError(f"the master exited:\n{self.log}")
            try:
                info.update(await self.call({"op": "info"}, timeout=5))
            except (OSError, TimeoutError, ValueError):
                return False
            return info.get("masterid") is not None

        await wait_until(answers, START_TIMEOUT, f"the master in {self.basedir} starts", step=0.3)
        return int(info["masterid"])

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Signal the master's PID (SIGTERM: a clean stop) and wait for it to end."""
        if self.process is not None:
            self.process.signal(signum)


class Worker:
    """A worker made by ``buildbot-worker create-worker``, reconnecting every 2 s at most."""

    def __init__(self, basedir: Path, name: str, pb_port: int) -> None:
        self.basedir = basedir
        self.name = name
        self.env = clean_env()
        run_tool(
            [
                str(BIN / "buildbot-worker"),
                "create-worker",
                "--maxdelay=2",
                "--keepalive=5",
                str(basedir),
                f"127.0.0.1:{pb_port}",
                name,
                "pass",
            ],
            ROOT,
            self.env,
        )
        self.process: Process | None = None

    def start(self) -> None:
        """``buildbot-worker start --nodaemon``."""
        argv = [str(BIN / "buildbot-worker"), "start", "--nodaemon", str(self.basedir)]
        self.process = Process.spawn(self.name, argv, self.basedir / "stdout.log", self.env)

    def stop(self) -> None:
        """SIGTERM by PID (a worker that already shut down is left alone)."""
        if self.process is not None:
            self.process.signal(signal.SIGTERM)


class PostgresDatabase:
    """A database of the test's own on the local PostgreSQL, dropped afterwards."""

    def __init__(self) -> None:
        self.name = f"tb_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE DATABASE "{self.name}"')

    @property
    def url(self) -> str:
        """Its SQLAlchemy URL."""
        return f"{PG_URL}/{self.name}"

    def drop(self) -> None:
        """Drop it, even with connections left (a killed master's)."""
        self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    @staticmethod
    def _execute(statement: str) -> None:
        connection = psycopg2.connect(f"{PG_DSN} dbname=postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()
