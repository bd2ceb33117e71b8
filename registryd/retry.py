"""Retrying with backoff (tenacity): one policy for every wait on a backend.

PROTOCOL.md section 8: retry forever, backoff up to 5 s, each attempt logged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

__all__ = ["MAX_BACKOFF", "forever"]

log = structlog.get_logger(__name__)

#: The longest wait between two attempts.
MAX_BACKOFF = 5.0


def _logger(
    what: str, on_failure: Callable[[BaseException], None] | None
) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        if on_failure is not None and error is not None:
            on_failure(error)
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(what, error=str(error), attempt=state.attempt_number, retry_in=round(wait, 2))

    return before_sleep


def _interruptible(stop: asyncio.Event | None) -> Callable[[float], Awaitable[None]]:
    async def sleep(seconds: float) -> None:
        if stop is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    return sleep


def forever(
    what: str,
    errors: type[BaseException] | tuple[type[BaseException], ...],
    *,
    first: float = 0.1,
    stop: asyncio.Event | None = None,
    on_failure: Callable[[BaseException], None] | None = None,
) -> AsyncRetrying:
    """Retry on ``errors`` forever, ``first`` s doubling up to 5 s, logging ``what``.

    A set ``stop`` event cuts a wait short (the next attempt then runs at once, and the
    caller decides whether to make it).
    """
    return AsyncRetrying(
        retry=retry_if_exception_type(errors),
        wait=wait_exponential(multiplier=first, min=first, max=MAX_BACKOFF),
        before_sleep=_logger(what, on_failure),
        sleep=_interruptible(stop),
        reraise=True,
    )
