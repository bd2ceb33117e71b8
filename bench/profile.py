"""Where the time goes: py-spy attached to the daemon (and the client) during a section.

``python -m bench.suite --profile DIR`` records, for each section of each size, one
py-spy profile of ``registryd serve`` and one of the benchmark client, as collapsed
stacks (``DIR/<size>-<section>-daemon.txt``; open them in speedscope or any flame graph
tool). py-spy is not a dependency: install it (``pip install py-spy``) or put it on
``PATH``; without it, ``--profile`` says so and the run goes on unprofiled.

``python -m bench.profile FILE...`` prints the functions with the most samples: where
the process itself was (self) and what was on the stack (total).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

__all__ = ["Profiler", "summarize"]


class Profiler:
    """Starts and stops ``py-spy record`` on a set of processes."""

    def __init__(self, directory: Path, pids: dict[str, int]) -> None:
        self.directory = directory
        self.pids = pids
        self.py_spy = shutil.which("py-spy")

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        """Profile every process while the block runs."""
        if self.py_spy is None:
            yield
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        running = [self._record(f"{name}-{who}", pid) for who, pid in self.pids.items()]
        try:
            yield
        finally:
            for process in running:
                process.send_signal(signal.SIGINT)  # py-spy writes its file and exits
            for process in running:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(30)

    def _record(self, name: str, pid: int) -> subprocess.Popen[bytes]:
        assert self.py_spy is not None
        path = self.directory / f"{name}.txt"
        command = [self.py_spy, "record", "--pid", str(pid), "--rate", "250"]
        command += ["--format", "raw", "--output", str(path), "--nonblocking"]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


#: Frames every stack has (the event loop, the command line): not worth a "total" line.
_PLUMBING = ("asyncio/", "click/", "<frozen", "runpy", "registryd/__main__", "registryd/cli.py")


def _frame(entry: str) -> str:
    """``func (registryd/service.py:12)`` as ``registryd/service.py:func``."""
    name, _, where = entry.partition(" (")
    return f"{where.rsplit(':', 1)[0]}:{name}" if where else name


def summarize(path: Path, top: int = 25) -> str:
    """The functions with the most samples in one collapsed-stack file."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";")]
        samples += int(number)
        own[frames[-1]] += int(number)
        for frame in set(frames):
            total[frame] += int(number)
    lines = [f"{path.name}: {samples} samples", "  self%  total%  function"]
    for frame, count in own.most_common(top):
        lines.append(
            f"  {100 * count / samples:5.1f}  {100 * total[frame] / samples:6.1f}  {frame}"
        )
    lines.append("  largest totals (the event loop and the command line left out):")
    inner = [(f, c) for f, c in total.most_common() if not f.startswith(_PLUMBING)]
    for frame, count in inner[:top]:
        lines.append(f"         {100 * count / samples:6.1f}  {frame}")
    return "\n".join(lines)


def main() -> None:
    """Print a summary of each file."""
    parser = argparse.ArgumentParser(description="Summarize py-spy collapsed stacks.")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.files:
        print(summarize(path, args.top), end="\n\n")


if __name__ == "__main__":
    main()
