"""What every operator command shares: the output hooks, exit codes, timeouts, headers."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from enum import IntEnum
from typing import Final, Literal

from registryd.errors import NotFound, RegistryError, Unavailable
from registryd.protocol import ERROR_HEADER, USER_HEADER

#: Where a command writes one line (stdout or stderr).
Echo = Callable[[str], None]
#: Asks the operator a yes/no question (blocking; run in a thread); ``None`` = ``--yes``.
Confirm = Callable[[str], bool]
#: What ``dead-letters`` does with the messages it takes.
DeadLetterAction = Literal["list", "replay", "drop"]


class Exit(IntEnum):
    """The exit codes of the operator commands (``registryd --help`` lists them)."""

    #: Done.
    OK = 0
    #: ``worker`` found no such worker; ``dead-letters --message-id`` matched none.
    NOT_FOUND = 1
    #: Bad arguments or configuration (nothing was contacted).
    USAGE = 2
    #: RabbitMQ cannot be reached or refused us, no daemon consumes the RPC queue, or
    #: the daemon did not answer in time or answered ``unavailable``.
    UNAVAILABLE = 3
    #: Refused: the daemon answered another error, or the command declined to act
    #: (``demo`` on a registry in use, a replay or drop not confirmed).
    REFUSED = 4
    #: Interrupted (Ctrl-C).
    INTERRUPTED = 130


class Refused(Exception):
    """The command declines to act; the message says why and what to do instead."""


async def ask(confirm: Confirm, question: str) -> bool:
    """``confirm(question)``, asked in a daemon thread.

    The event loop (and the broker's heartbeats) go on meanwhile, and Ctrl-C at the
    prompt does not wait for an answer.
    """
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[bool] = loop.create_future()

    def settle(result: bool) -> None:
        if not answer.done():
            answer.set_result(result)

    def run() -> None:
        try:
            result = confirm(question)
        except Exception:  # noqa: BLE001 - a prompt that fails is a "no"
            result = False
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
            loop.call_soon_threadsafe(settle, result)

    threading.Thread(target=run, name="confirm", daemon=True).start()
    return await answer


def exit_code(error: RegistryError | Refused) -> Exit:
    """The exit code of a command that failed with ``error``."""
    if isinstance(error, NotFound):
        return Exit.NOT_FOUND
    if isinstance(error, Unavailable):
        return Exit.UNAVAILABLE
    return Exit.REFUSED


#: Seconds a command waits for the broker or a reply: above the daemon's own 5 s bound
#: on a request, so that its ``unavailable`` reply arrives rather than our timeout.
TIMEOUT: Final = 8.0
#: Headers a replayed event leaves behind: registryd's verdict and the broker's
#: dead-lettering bookkeeping, which would be false once the event is published again.
_DROPPED_HEADERS: Final = frozenset({ERROR_HEADER, USER_HEADER, "x-death"})
_DROPPED_PREFIXES: Final = ("x-first-death-", "x-last-death-")
_BODY_SHOWN: Final = 500
_REASON_SHOWN: Final = 30
