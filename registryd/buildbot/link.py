"""The master's connection to registryd, made and remade on the bridge's loop.

The client library does not reconnect; this does. Every registry call goes through
:meth:`Link.run`, which connects when there is no usable client. When registryd cannot
be reached (RabbitMQ down, the daemon not answering, a timeout), the call raises
:class:`RegistryUnreachable` and the link is *down*: later calls fail at once with the
same clear error until the next attempt is due (0.5 s, doubling up to 5 s), so a master
with a thousand workers never waits a thousand timeouts. The first call that succeeds
again ends the outage and runs the ``on_recovered`` hook (the liveness service re-sends
what the registry may have missed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from yarl import URL

from registryd.client import RegistryClient
from registryd.errors import Unavailable

__all__ = ["Link", "LinkSettings", "RegistryUnreachable"]

_T = TypeVar("_T")
_RETRY_MIN: Final = 0.5
_RETRY_MAX: Final = 5.0


class RegistryUnreachable(Unavailable):
    """registryd cannot be reached now; the master keeps retrying by itself."""


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """Where registryd is and how long a call may take."""

    amqp_url: str
    prefix: str
    #: Seconds one registry call (or connecting) may take before it fails.
    timeout: float = 5.0


class Link:
    """One registry client at a time, on the bridge's loop; down while unreachable."""

    def __init__(self, settings: LinkSettings, log: Callable[[str], None]) -> None:
        self.settings = settings
        self.log = log
        self.on_recovered: Callable[[], Coroutine[Any, Any, None]] | None = None
        self.on_down: Callable[[], None] | None = None
        self._client: RegistryClient | None = None
        self._lock: asyncio.Lock | None = None
        self._down_since: float | None = None
        self._error = ""
        self._retry = _RETRY_MIN
        self._next_attempt = 0.0
        self._recovery: asyncio.Task[None] | None = None

    @property
    def where(self) -> str:
        """registryd's address for messages: the broker URL without password, the prefix."""
        return f"{URL(self.settings.amqp_url).with_password(None)} prefix {self.settings.prefix!r}"

    @property
    def down(self) -> bool:
        """Whether the last attempt failed (calls fail fast until the next one is due)."""
        return self._down_since is not None

    async def run(self, call: Callable[[RegistryClient], Awaitable[_T]]) -> _T:
        """``call(client)``; a lost or silent registry raises :class:`RegistryUnreachable`."""
        self.check()
        client = await self._client_now()
        try:
            result = await call(client)
        except Unavailable as exc:
            self._failed(exc, client)
            raise RegistryUnreachable(f"registryd at {self.where} is unreachable: {exc}") from exc
        self._succeeded()
        return result

    async def close(self) -> None:
        """Close the client (a later call would connect again)."""
        if self._recovery is not None:
            self._recovery.cancel()
        client, self._client = self._client, None
        if client is not None:
            await _close_quietly(client)

    async def _client_now(self) -> RegistryClient:
        """The connected client; connects first (or fails fast while down)."""
        client = self._client
        if client is not None and not client.connection.is_closed:
            return client
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is None or self._client.connection.is_closed:
                self.check()
                self._client = await self._connect()
            return self._client

    async def _connect(self) -> RegistryClient:
        try:
            return await RegistryClient.connect(
                self.settings.amqp_url, self.settings.prefix, timeout=self.settings.timeout
            )
        except Unavailable as exc:
            self._failed(exc, None)
            raise RegistryUnreachable(
                f"cannot connect to registryd at {self.where}: {exc}"
            ) from exc

    def check(self) -> None:
        """Raise :class:`RegistryUnreachable` while down, until the next attempt is due.

        Safe from any thread (it only reads the outage's state).
        """
        since, due, now = self._down_since, self._next_attempt, time.monotonic()
        if since is None or now >= due:
            return
        raise RegistryUnreachable(
            f"registryd at {self.where} is unreachable (for {now - since:.1f} s:"
            f" {self._error}); next attempt in {due - now:.1f} s"
        )

    def _failed(self, exc: Unavailable, client: RegistryClient | None) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since, self._retry = now, _RETRY_MIN
            self.log(f"registryd at {self.where} is unreachable: {exc}")
            if self.on_down is not None:
                self.on_down()
        else:
            self._retry = min(self._retry * 2, _RETRY_MAX)
        self._error, self._next_attempt = str(exc), now + self._retry
        if client is not None and client.connection.is_closed and self._client is client:
            self._client = None

    def _succeeded(self) -> None:
        if self._down_since is None:
            return
        self.log(f"registryd at {self.where} is reachable again")
        self._down_since = None
        if self.on_recovered is not None and (self._recovery is None or self._recovery.done()):
            self._recovery = asyncio.create_task(self.on_recovered())


async def _close_quietly(client: RegistryClient) -> None:
    """Close a client whose connection may already be gone."""
    with contextlib.suppress(Unavailable, OSError, TimeoutError, RuntimeError):
        await asyncio.wait_for(client.close(), 5)
