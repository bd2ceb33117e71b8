"""Rows of the table: a figure, its floor from the same run, the ratio, issue 9's target.

Every row says what it measures and what its floor is. The ratio is median over median;
when both were sampled side by side (same number of repetitions, interleaved), the
brackets give the lowest and highest per-repetition ratio, which no drift of the machine
between repetitions can fake. A target is on the ratio unless it is absolute (seconds,
bytes): then it is on the figure, and the ratio is shown for information.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.stats import Stat

__all__ = ["Row", "Target", "at_least", "at_most", "render", "to_json"]

Unit = Literal["s", "/s", "B", "x", "cores"]


@dataclass(frozen=True, slots=True)
class Target:
    """Issue 9's bound for a row: ``op`` ``value``, on the ratio or on the figure."""

    op: Literal["<=", ">="]
    value: float
    on: Literal["ratio", "figure"] = "ratio"
    unit: Unit = "x"

    def met(self, value: float) -> bool:
        """Whether ``value`` meets the bound."""
        return value <= self.value if self.op == "<=" else value >= self.value

    def __str__(self) -> str:
        sign = "≤" if self.op == "<=" else "≥"
        shown = f"{self.value:.2f}x" if self.on == "ratio" else _amount(self.value, self.unit)
        return f"{sign} {shown}"


def at_most(value: float, on: Literal["ratio", "figure"] = "ratio", unit: Unit = "x") -> Target:
    """Target: the ratio (or the figure) at most ``value``."""
    return Target("<=", value, on, unit)


def at_least(value: float) -> Target:
    """Target: the ratio at least ``value``."""
    return Target(">=", value)


@dataclass
class Row:
    """One line of the table."""

    section: str
    size: int | None
    measure: str
    figure: Stat | None
    unit: Unit
    floor: Stat | None = None
    floor_label: str = ""
    target: Target | None = None
    note: str = ""
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Figure over floor, medians (NaN without a floor)."""
        if self.figure is None or self.floor is None or not self.floor.median:
            return math.nan
        return self.figure.median / self.floor.median

    def ratio_range(self) -> tuple[float, float] | None:
        """Lowest and highest per-repetition ratio, when sampled side by side."""
        if self.figure is None or self.floor is None:
            return None
        a, b = self.figure.samples, self.floor.samples
        if len(a) != len(b) or len(a) < 2 or not all(b):
            return None
        ratios = [x / y for x, y in zip(a, b, strict=True)]
        return min(ratios), max(ratios)

    @property
    def verdict(self) -> str:
        """PASS, MISS, ERROR, or ``—`` when issue 9 sets no target here."""
        if self.error is not None:
            return "ERROR"
        if self.target is None:
            return "—"
        value = self.ratio if self.target.on == "ratio" else self.figure_median
        if math.isnan(value):
            return "MISS"
        return "PASS" if self.target.met(value) else "MISS"

    @property
    def figure_median(self) -> float:
        """The figure's median (NaN when it failed)."""
        return math.nan if self.figure is None else self.figure.median


def _seconds(value: float) -> str:
    ms = value * 1000
    if ms >= 10_000:
        return f"{value:,.1f} s"
    return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:.3g} ms"


def _bytes(value: float) -> str:
    for size, suffix in ((2**20, "MiB"), (2**10, "KiB")):
        if value >= size:
            return f"{value / size:.3g} {suffix}"
    return f"{value:.0f} B"


_FORMATS: dict[Unit, Callable[[float], str]] = {
    "s": _seconds,
    "/s": lambda value: f"{value:,.0f}/s",
    "B": _bytes,
    "x": lambda value: f"{value:.2f}x",
    "cores": lambda value: f"{value:.2f} cores",
}


def _amount(value: float, unit: Unit) -> str:
    return "n/a" if math.isnan(value) else _FORMATS[unit](value)


def _stat(stat: Stat | None, unit: Unit) -> str:
    if stat is None or not stat.samples:
        return "n/a"
    shown = _amount(stat.median, unit)
    if len(stat.samples) > 1:
        shown += f" [{_amount(stat.low, unit)}..{_amount(stat.high, unit)}]"
    return shown


def _ratio(row: Row) -> str:
    if math.isnan(row.ratio):
        return "n/a"
    shown = f"{row.ratio:.2f}x"
    spread = row.ratio_range()
    if spread is not None:
        shown += f" [{spread[0]:.2f}..{spread[1]:.2f}]"
    return shown


def _cells(row: Row) -> list[str]:
    figure = f"ERROR: {row.error}" if row.error is not None else _stat(row.figure, row.unit)
    floor = _stat(row.floor, row.unit) if row.floor is not None else ""
    if row.floor_label:
        floor = f"{floor} {row.floor_label}".strip()
    size = "" if row.size is None else f"{row.size:,}"
    measure = f"{row.measure} ({row.note})" if row.note else row.measure
    target = "" if row.target is None else str(row.target)
    return [size, measure, figure, floor, _ratio(row), target, row.verdict]


HEADER = ["workers", "measure", "figure [min..max]", "floor [min..max]", "ratio", "target", ""]


def render(rows: Iterable[Row]) -> str:
    """The rows as Markdown tables, one per section, in the order the sections come."""
    sections: dict[str, list[Row]] = {}
    for row in rows:
        sections.setdefault(row.section, []).append(row)
    out: list[str] = []
    for title, members in sections.items():
        out += ["", f"### {title}", ""]
        out.append("| " + " | ".join(HEADER) + " |")
        out.append("|" + "|".join("---" for _ in HEADER) + "|")
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |" for r in members]
    return "\n".join(out) + "\n"


def to_json(row: Row) -> dict[str, Any]:
    """A row with its samples, for comparing runs."""
    return {
        "section": row.section,
        "size": row.size,
        "measure": row.measure,
        "unit": row.unit,
        "figure": None if row.figure is None else row.figure.samples,
        "floor": None if row.floor is None else row.floor.samples,
        "floor_label": row.floor_label,
        "ratio": None if math.isnan(row.ratio) else row.ratio,
        "target": None if row.target is None else str(row.target),
        "verdict": row.verdict,
        "note": row.note,
        "error": row.error,
        **row.extra,
    }
