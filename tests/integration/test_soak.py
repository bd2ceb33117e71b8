"""The short soak CI runs (``tests/soak.py``; ``python -m tests.soak --minutes 10`` by hand).

45 s of the full mix at the full rates: 5 masters, 2,000 workers churning at
20 events/s, 50 reads/s, two fast subscribers and a slow one. It passes when nothing is
lost (the model agrees, the fast subscribers saw every revision), nothing was refused,
the daemon kept serving, and its RSS and open descriptors grew under 10 % after warm-up.
Its figures (relay lag, RPC p99, the slow subscriber's backlog) are printed, not asserted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.soak import SoakConfig, soak

pytestmark = [pytest.mark.integration, pytest.mark.soak, pytest.mark.timeout(300)]


async def test_a_short_soak_loses_nothing_and_does_not_grow(tmp_path: Path) -> None:
    """A minute of mixed load: nothing lost, every revision seen, RSS and fds steady."""
    report = await soak(SoakConfig(minutes=0.75, warmup_s=15.0), tmp_path)
    print("\n".join(report.lines()))  # noqa: T201 - the figures belong in the CI log
    assert [] == report.problems
