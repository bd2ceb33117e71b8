"""Before and after: two runs' JSON (``bench.suite --json``) side by side, row by row.

Absolute timings of two runs on a shared machine are not comparable (a day can be 4x
slower than another); their ratios to the same-run floors are. So this prints, for each
row both runs have, the ratio before, the ratio after, and the target, then the figures
for reference.

    .venv/bin/python -m bench.compare before.json after.json [--changed 0.05]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

__all__ = ["compare", "main"]

Key = tuple[int | None, str]


def _rows(path: Path) -> dict[Key, dict[str, Any]]:
    data = json.loads(path.read_text())
    rows = data["rows"] if isinstance(data, dict) else data
    return {(row["size"], row["measure"]): row for row in rows}


def _median(samples: list[float] | None) -> str:
    return "n/a" if not samples else f"{statistics.median(samples):.6g}"


def _ratio(row: dict[str, Any]) -> str:
    return "n/a" if row["ratio"] is None else f"{row['ratio']:.2f}x"


def compare(before: Path, after: Path, changed: float = 0.0) -> str:
    """A Markdown table of the rows of both runs whose ratio moved by ``changed`` or more."""
    old, new = _rows(before), _rows(after)
    lines = [
        f"before: {before}; after: {after}",
        "",
        "| workers | measure | ratio before | ratio after | target | verdict | figure |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, row in new.items():
        was = old.get(key)
        if was is None:
            continue
        a, b = was["ratio"], row["ratio"]
        if a is not None and b is not None and a and abs(b - a) / a < changed:
            continue
        size = "" if key[0] is None else f"{key[0]:,}"
        moved = f"{_median(was['figure'])} → {_median(row['figure'])} {row['unit']}"
        cells = [size, key[1], _ratio(was), _ratio(row), row["target"] or "", row["verdict"], moved]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    """Print the comparison."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument(
        "--changed", type=float, default=0.0, help="only ratios that moved this much"
    )
    args = parser.parse_args()
    print(compare(args.before, args.after, args.changed))


if __name__ == "__main__":
    main()
