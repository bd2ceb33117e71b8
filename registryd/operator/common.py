"""What every operator command shares: the output hook, timeouts, dropped headers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

from registryd.protocol import ERROR_HEADER, USER_HEADER

#: Where a command writes one line (stdout or stderr).
Echo = Callable[[str], None]
#: What ``dead-letters`` does with the messages it takes.
DeadLetterAction = Literal["list", "replay", "drop"]

#: Seconds a command waits for the broker or a reply: above the daemon's own 5 s bound
#: on a request, so that its ``unavailable`` reply arrives rather than our timeout.
TIMEOUT: Final = 8.0
#: Headers a replayed event leaves behind: registryd's verdict and the broker's
#: dead-lettering bookkeeping, which would be false once the event is published again.
_DROPPED_HEADERS: Final = frozenset({ERROR_HEADER, USER_HEADER, "x-death"})
_DROPPED_PREFIXES: Final = ("x-first-death-", "x-last-death-")
_BODY_SHOWN: Final = 500
_REASON_SHOWN: Final = 30
