"""An RPC caller that keeps calling through a failover, and what it saw."""

from __future__ import annotations

import asyncio
import contextlib
import time

from registryd.client import RegistryClient
from registryd.errors import RegistryError

__all__ = ["RpcCaller"]


class RpcCaller:
    """Calls ``ping`` in a loop (a failure is retried after 0.1 s), as a master would.

    ``longest_gap`` is the longest time between two answers: what a master would notice.
    """

    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self.answered = 0
        self.failed = 0
        self.longest_gap = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RpcCaller:
        self._task = asyncio.create_task(self._loop(), name="rpc-caller")
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        last = time.monotonic()
        while True:
            try:
                await self.client.ping()
            except RegistryError:
                self.failed += 1
                await asyncio.sleep(0.1)  # a caller's backoff before its retry
                continue
            now = time.monotonic()
            self.answered += 1
            self.longest_gap = max(self.longest_gap, now - last)
            last = now

    def line(self, case: str) -> str:
        """One line: answered, failed, the longest time without an answer."""
        return (
            f"{case}: RPC answered {self.answered}, failed {self.failed}, "
            f"longest without an answer {self.longest_gap:.2f} s"
        )
