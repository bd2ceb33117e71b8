"""sd_notify(3) in a few lines of socket code: readiness, status, stopping, watchdog.

systemd gives a ``Type=notify`` service ``$NOTIFY_SOCKET``: a datagram socket's path, or
``@name`` for one in the abstract namespace. Each notification is one datagram of
``KEY=value`` lines; systemd learns the sender from the socket's credentials, so nothing
else is sent. The protocol is that small and has been stable since systemd 209, so the
daemon speaks it itself rather than depending on ``sdnotify`` or ``systemd-python`` (the
latter builds against libsystemd). Without ``$NOTIFY_SOCKET`` every call does nothing.

``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, when set, naming this process) asks for
``WATCHDOG=1`` at least that often; :attr:`Notifier.watchdog_interval` is half of it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

__all__ = ["Notifier"]

log = structlog.get_logger(__name__)


def _address(value: str) -> str | None:
    """The socket address of ``$NOTIFY_SOCKET`` (abstract: a leading NUL), or None."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    if value:
        log.warning("NOTIFY_SOCKET not understood; systemd is not notified", value=value)
    return None


def _watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Half of ``WATCHDOG_USEC`` in seconds, when the watchdog is meant for this process."""
    pid = environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    return usec / 2 / 1_000_000 if usec > 0 else None


class Notifier:
    """Tells systemd (the service manager of ``$NOTIFY_SOCKET``) what the daemon does."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _address(env.get("NOTIFY_SOCKET", ""))
        #: Seconds between two ``WATCHDOG=1`` pings, or None: no watchdog asked for.
        self.watchdog_interval = _watchdog_interval(env) if self._address is not None else None
        self._socket: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        """True under a service manager that listens."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; False if not sent (never raises).

        The socket does not block: a service manager too busy to read loses a line
        rather than stalling the event loop. A failure is logged once.
        """
        if self._address is None:
            return False
        data = "\n".join(line.replace("\n", " ") for line in assignments).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
                self._socket.setblocking(False)  # noqa: FBT003 - the stdlib's signature
            self._socket.sendto(data, self._address)
        except OSError as exc:
            if not self._failed:
                log.warning("cannot notify systemd", error=str(exc))
                self._failed = True
            return False
        return True

    def ready(self, status: str) -> None:
        """``READY=1``: start-up is over, the service serves."""
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        """``STATUS=``: one line for ``systemctl status``."""
        self.notify(f"STATUS={status}")

    def stopping(self, status: str = "stopping") -> None:
        """``STOPPING=1``: shutdown has begun."""
        self.notify("STOPPING=1", f"STATUS={status}")

    def watchdog(self) -> None:
        """``WATCHDOG=1``: the event loop is alive."""
        self.notify("WATCHDOG=1")

    def close(self) -> None:
        """Close the socket (a later notification opens it again)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
