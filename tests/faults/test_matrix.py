"""The fault matrix (issue 10): each case a burst under one kind of fault, then the model.

Each prints one line (``make faults`` runs them with ``-s``): events sent, applied,
dead-lettered, lost, duplicated effects, revisions the subscriber missed, and the
longest time the daemon took to recover from one fault.
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import Open
from tests.harness.faults import Burst, Daemons, Fault

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(240)]


async def test_daemon_sigkilled_three_times(rig: Open) -> None:
    """SIGKILL, restart, three times during the burst: nothing lost, nothing twice."""
    async with rig() as r:

        async def kill_and_restart(_burst: Burst) -> None:
            (daemon,) = r.daemons.alive()
            await Daemons.kill(daemon)
            await r.daemons.start()

        faults = [Fault(at, "sigkill", kill_and_restart) for at in (0.15, 0.4, 0.65)]
        burst = Burst(r.client, r.wire, faults=faults, seed=1)
        await burst.setup()
        await burst.run()
        report = await burst.verify("daemon SIGKILLed 3x")
    print(report.line())  # noqa: T201 - the matrix's output
    report.check()
