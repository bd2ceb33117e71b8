"""A session ended by a backend error says which task failed and with what."""

from __future__ import annotations

import asyncio

import pytest

from registryd.daemon import Daemon
from registryd.errors import Unavailable
from tests.harness import daemon_settings


async def test_a_bare_timeout_names_its_task() -> None:
    """A relay publish that timed out is told as such, not as "session ended: "."""

    async def publish() -> None:
        raise TimeoutError

    task = asyncio.create_task(publish(), name="relay")
    await asyncio.wait([task])
    daemon = Daemon(daemon_settings("t-unit"))
    with pytest.raises(Unavailable, match=r"session ended: relay: TimeoutError\(\)"):
        daemon._end_of_session([task], lost_connection=False)
