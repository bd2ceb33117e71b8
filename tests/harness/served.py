"""``registryd serve`` as a real process: its health endpoint, its signals, its log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.services import REGISTRYD, cli_env, free_port, wait_for

__all__ = ["Served", "http_get", "listening_ports", "served"]


def http_get(port: int, path: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of a GET on 127.0.0.1; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as reply:
            return int(reply.status), str(reply.headers.get("Content-Type", "")), reply.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), str(exc.headers.get("Content-Type", "")), exc.read()
    except OSError:
        return 0, "", b""


@dataclass
class Served:
    """A ``registryd serve`` subprocess, its metrics port and its log files."""

    process: subprocess.Popen[bytes]
    port: int
    err: Path
    out: Path

    async def health(self) -> int:
        """The /healthz status (0: nothing listens)."""
        return (await asyncio.to_thread(http_get, self.port, "/healthz"))[0]

    async def reaches(self, status: int, timeout: float = 20) -> None:
        """Wait until /healthz answers ``status``; fail at once if the process exits."""

        async def reached() -> bool:
            assert self.process.poll() is None, self.log()
            return await self.health() == status

        await wait_for(reached, timeout)

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20) -> int | None:
        """Send ``sig``; the exit code, or None when it still runs after ``timeout`` s."""
        self.process.send_signal(sig)
        try:
            return await asyncio.to_thread(self.process.wait, timeout)
        except subprocess.TimeoutExpired:
            return None

    async def stopped(self) -> None:
        """SIGTERM, and the exit code must be 0 (the log's tail says why when it is not)."""
        assert 0 == await self.stop(), self.log()[-2000:]

    def log(self) -> str:
        """Everything it wrote to stderr."""
        return self.err.read_text(encoding="utf-8", errors="replace")

    def records(self) -> list[dict[str, Any]]:
        """Its log lines, each of which must be one JSON object."""
        records = []
        for line in self.log().splitlines():
            record = json.loads(line)
            assert isinstance(record, dict), line
            records.append(record)
        return records


@contextlib.contextmanager
def served(
    tmp_path: Path,
    prefix: str,
    *args: str,
    environ: dict[str, str] | None = None,
    port: int | None = None,
    **env: str,
) -> Iterator[Served]:
    """``registryd [ARGS] serve`` with ``cli_env(prefix, **env)`` (or ``environ``) and a port."""
    if environ is None:
        env.setdefault("REGISTRYD_METRICS_PORT", str(port or free_port()))
        environ = cli_env(prefix, **env)
    port = port or int(environ.get("REGISTRYD_METRICS_PORT", "0"))
    tag = uuid.uuid4().hex[:8]
    err, out = tmp_path / f"serve-{tag}.err", tmp_path / f"serve-{tag}.out"
    with err.open("wb") as err_file, out.open("wb") as out_file:
        process = subprocess.Popen(
            [*REGISTRYD, *args, "serve"], env=environ, stdout=out_file, stderr=err_file
        )
    try:
        yield Served(process, port, err, out)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def listening_ports(pid: int) -> set[tuple[str, int]]:
    """(local address hex, port) of the TCP sockets process ``pid`` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = str(fd.readlink())
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text(encoding="ascii").splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                address, port = fields[1].split(":")
                found.add((address, int(port, 16)))
    return found
