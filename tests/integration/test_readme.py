"""Every shell and Python snippet of README.md runs as written, against a live daemon.

Python blocks run as programs. Shell blocks run in README order, line by line, in a fresh
copy of the repository (what git tracks, plus what it would add; no ``.venv``), as on a
fresh clone: the first block makes the environment there. ``export`` lines hold for the
rest of their block. Both kinds get the environment a user would have set
(``REGISTRYD_PREFIX`` and friends, here the test's own prefix), so they read the same
configuration as the daemon. A shell line that ends in ``serve`` starts the daemon in the
foreground: it must become ready, then stop with exit code 0 on SIGTERM. The only block
not run is the one whose line above is an HTML comment starting with :data:`SKIP` (the
test command itself).
"""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from aio_pika.abc import AbstractConnection
from redis.asyncio import Redis

from tests.harness import RunningDaemon, cli_env, free_port, http_get, wait_for

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SKIP = "<!-- not run by tests/integration/test_readme.py"
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_SECONDS = 120


@dataclass(frozen=True)
class Snippet:
    """One fenced block of the README."""

    language: str
    code: str
    line: int
    skipped: bool

    def __str__(self) -> str:
        return f"{self.language}@{self.line}"


def _snippets() -> list[Snippet]:
    text = README.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        above = text[: match.start()].rstrip().splitlines()
        found.append(
            Snippet(
                match.group(1),
                match.group(2),
                text.count("\n", 0, match.start()) + 1,
                bool(above) and above[-1].startswith(SKIP),
            )
        )
    return found


SNIPPETS = _snippets()
#: The ``buildbot.tac`` lines run in every live Buildbot master (tests/buildbot/live.py).
TAC_MARK = "# buildbot.tac, right after"
PYTHON = [s for s in SNIPPETS if s.language == "python" and not s.code.startswith(TAC_MARK)]
SHELL = [s for s in SNIPPETS if s.language == "sh" and not s.skipped]


def _commands(code: str) -> list[str]:
    """The shell lines of a block, without comments and blank lines."""
    lines = (line.split(" #", 1)[0].strip() for line in code.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_the_readme_has_snippets_of_both_kinds() -> None:
    """The parametrized tests below run something: the README has both kinds of block."""
    assert PYTHON
    assert SHELL
    assert [s for s in SNIPPETS if s.skipped] == [s for s in SNIPPETS if "make all" in s.code]


def test_the_buildbot_tac_lines_are_the_ones_the_live_masters_run() -> None:
    """The one Python block not run here is run by every live Buildbot master instead."""
    from tests.buildbot.live import TAC_MARK as LIVE_MARK  # noqa: PLC0415 - needs buildbot
    from tests.buildbot.live import readme_tac_lines  # noqa: PLC0415

    (tac,) = [s for s in SNIPPETS if s.language == "python" and s.code.startswith(TAC_MARK)]
    assert (TAC_MARK, "\n" + tac.code) == (LIVE_MARK, readme_tac_lines())


@pytest.mark.parametrize("snippet", PYTHON, ids=str)
async def test_python_snippet_runs(snippet: Snippet, daemon: RunningDaemon, prefix: str) -> None:
    """The block runs to completion as a program against the daemon, exit code 0."""
    run = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", snippet.code],
        env=cli_env(prefix),
        cwd=ROOT,
        capture_output=True,
        timeout=_SECONDS,
        check=False,
    )
    assert 0 == run.returncode, run.stderr.decode()[-3000:]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the repository's files, shared by the shell blocks in order."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    target = tmp_path_factory.mktemp("clone")
    for name in filter(None, (item.decode() for item in listed)):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.mark.parametrize("snippet", SHELL, ids=str)
async def test_shell_snippet_runs(
    snippet: Snippet, clone: Path, prefix: str, redis: Redis, amqp: AbstractConnection
) -> None:
    """Every line of the block succeeds; a ``serve`` line serves, then stops cleanly.

    No daemon runs beside them: the blocks start their own (``make demo``, ``serve``), and
    the demo refuses to delete a prefix that another daemon serves. The ``redis`` and
    ``amqp`` fixtures delete what they leave under the test's prefix.
    """
    exports: list[str] = []
    for command in _commands(snippet.code):
        if command.startswith("export "):
            exports.append(command)
            continue
        port = free_port()
        env = cli_env(prefix, REGISTRYD_METRICS_PORT=str(port), REGISTRYD_LOG_FORMAT="console")
        script = "; ".join([*exports, command])
        if shlex.split(command)[-1] == "serve":
            await _serve("; ".join([*exports, f"exec {command}"]), clone, env, port)
            continue
        run = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-c", script],
            env=env,
            cwd=clone,
            capture_output=True,
            timeout=_SECONDS * 3,
            check=False,
        )
        output = (run.stdout + run.stderr).decode()[-3000:]
        assert 0 == run.returncode, f"{command}:\n{output}"


async def _serve(script: str, cwd: Path, env: dict[str, str], port: int) -> None:
    process = subprocess.Popen(  # noqa: ASYNC220 - started here, waited on in a thread
        ["bash", "-c", script],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        async def ready() -> bool:
            assert process.poll() is None, f"{script} exited early"
            return (await asyncio.to_thread(http_get, port, "/healthz"))[0] == 200

        await wait_for(ready, 30)
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
        assert 0 == code, f"{script} exited {code}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
