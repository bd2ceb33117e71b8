"""Samples and how they are taken: medians and spread over repetitions.

A figure is a :class:`Stat`: one sample per repetition, each sample itself the median of
a few calls when a call is short (so that one sample takes about ``budget`` seconds and
a stray scheduling hiccup does not decide it). The table shows the median over the
repetitions and, in brackets, the lowest and highest.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["FEWEST", "Stat", "calibrate", "latencies", "percentile", "sample", "timed"]

Call = Callable[[], Awaitable[object]]
#: The fewest calls a latency or rate sample is made of, however slow the machine.
FEWEST = 50


@dataclass
class Stat:
    """One figure's samples, one per repetition (seconds, counts or rates)."""

    samples: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        """Record one repetition's sample."""
        self.samples.append(value)

    @property
    def median(self) -> float:
        """The median over the repetitions (NaN when there is none)."""
        return statistics.median(self.samples) if self.samples else math.nan

    @property
    def low(self) -> float:
        """The lowest sample."""
        return min(self.samples) if self.samples else math.nan

    @property
    def high(self) -> float:
        """The highest sample."""
        return max(self.samples) if self.samples else math.nan

    def __add__(self, other: Stat) -> Stat:
        """Per repetition sums (a floor made of several parts, measured side by side)."""
        return Stat([a + b for a, b in zip(self.samples, other.samples, strict=False)])

    def scaled(self, factor: float) -> Stat:
        """Every sample times ``factor``."""
        return Stat([s * factor for s in self.samples])


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` percentile (0.5: median, 0.99: p99), nearest-rank."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


async def timed(call: Call) -> float:
    """Seconds one awaited call takes."""
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def calibrate(call: Call, budget: float, most: int = 25) -> int:
    """How many calls make one sample of about ``budget`` s (after a warm-up call).

    A warm-up call that alone takes longer than ``budget`` is the answer (one call per
    sample) without a second one: slow calls are where the time of a run goes.
    """
    once = await timed(call)
    if once < budget:
        once = await timed(call)
    return max(1, min(most, int(budget / max(once, 1e-6))))


async def sample(call: Call, inner: int) -> float:
    """One sample: the median duration of ``inner`` calls."""
    return statistics.median([await timed(call) for _ in range(inner)])


async def latencies(
    call: Callable[[int], Awaitable[object]], calls: int, seconds: float
) -> tuple[float, float]:
    """p50 and p99 of sequential ``call(i)``: ``calls`` of them, or fewer after ``seconds``.

    At least :data:`FEWEST` calls, so that a slow machine still gives a p99 of something.
    """
    times = []
    deadline = time.perf_counter() + seconds
    for i in range(calls):
        started = time.perf_counter()
        await call(i)
        times.append(time.perf_counter() - started)
        if started > deadline and i >= FEWEST:
            break
    return percentile(times, 0.5), percentile(times, 0.99)
