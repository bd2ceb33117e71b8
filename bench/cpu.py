"""CPU time by process over a span, from ``/proc``: where a path's work is done.

On a machine whose cores are all busy, a path's rate is bounded by the CPU it needs per
message across every process it involves (broker, Redis, daemon, the bench itself).
Comparing those totals between a figure and its floor shows how much of a gap is work
the figure must do and the floor does not. The machine's own counters (``/proc/stat``)
over the same span say whether its cores were all busy: only then is the rate bounded
by CPU.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CORES", "CpuSpan", "processes_named"]

#: The cores this process may run on (what the bench's processes share).
CORES = len(os.sched_getaffinity(0))

_TICKS = os.sysconf("SC_CLK_TCK")


def processes_named(name: str) -> list[int]:
    """Pids whose command name (``/proc/<pid>/comm``) is ``name``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _machine() -> tuple[float, float]:
    """Seconds of wall time, and CPU seconds all cores spent busy (not idle, not waiting)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return time.monotonic(), (user + nice + system + irq + softirq + steal) / _TICKS


@dataclass
class CpuSpan:
    """CPU seconds each group of processes used between :meth:`start` and :meth:`stop`.

    Also the machine's busy cores over the span (:attr:`busy_cores`): every process's,
    this run's or not, and time stolen by the hypervisor.
    """

    groups: Mapping[str, Sequence[int]]
    used: dict[str, float] = field(default_factory=dict)
    busy_cores: float = 0.0
    _at_start: dict[str, float] = field(default_factory=dict)
    _machine_at_start: tuple[float, float] = (0.0, 0.0)

    def _now(self) -> dict[str, float]:
        return {name: sum(map(_seconds, pids)) for name, pids in self.groups.items()}

    def start(self) -> CpuSpan:
        """Take the starting reading."""
        self._at_start = self._now()
        self._machine_at_start = _machine()
        return self

    def stop(self) -> dict[str, float]:
        """CPU seconds per group since :meth:`start`."""
        now = self._now()
        wall, busy = _machine()
        started, was_busy = self._machine_at_start
        self.busy_cores = (busy - was_busy) / (wall - started) if wall > started else 0.0
        self.used = {name: now[name] - self._at_start[name] for name in now}
        return self.used
