"""The wire vocabulary of PROTOCOL.md, in one place: names, headers, routing keys.

Everything a program outside registryd must spell the same way lives here and nowhere
else: the RabbitMQ names of a prefix (section 3), the headers of dead letters (section
4), the routing keys of notifications (section 6) and the protocol's version. This
module imports nothing of registryd's and no third-party package, so the client, the
operator commands and the daemon can all use it cheaply. The Lua scripts build routing
keys too: their helpers are generated from :data:`WORKER_KEY` and :data:`MASTER_KEY`
(``registryd/store/lua.py``), and a test checks both sides for every event kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, get_args

__all__ = [
    "DEFAULT_PREFIX",
    "DIRECT_REPLY_TO",
    "ERROR_HEADER",
    "JSON",
    "MASTER_EVENTS",
    "MASTER_KEY",
    "MAX_REJECTED",
    "REJECTED_AT",
    "RESET_ROUTING_KEY",
    "USER_HEADER",
    "VERSION",
    "WORKER_EVENTS",
    "WORKER_KEY",
    "MasterEvent",
    "Names",
    "WorkerEvent",
    "master_routing_key",
    "rejected_at",
    "rejected_message",
    "worker_routing_key",
]

#: The protocol version this package speaks (PROTOCOL.md's title).
VERSION: Final = "1.1"
#: The prefix of every RabbitMQ name and Redis key unless configured otherwise.
DEFAULT_PREFIX: Final = "registry"
#: Content type of every event, request, reply and notification.
JSON: Final = "application/json"
#: RabbitMQ's pseudo-queue for direct reply-to: never declared, consumed with no-ack.
DIRECT_REPLY_TO: Final = "amq.rabbitmq.reply-to"
#: The header of a dead-lettered event: a JSON text ``{"code", "message"}``; the message
#: ends with the time registryd refused the event (:func:`rejected_message`).
ERROR_HEADER: Final = "x-registry-error"
#: RabbitMQ refuses a ``user_id`` that is not the publishing connection's own user, so a
#: dead letter carries the original one in this header instead.
USER_HEADER: Final = "x-registry-user-id"
#: What a dead letter's error message ends with, before the time of rejection and ``]``.
REJECTED_AT: Final = "[rejected at "
_REJECTED_AT: Final = re.compile(r"\[rejected at (\d{4}-\d\d-\d\dT[\d:.]+Z)\]$")
#: Routing key of the reset notification (section 6, Reset).
RESET_ROUTING_KEY: Final = "registry.reset"

#: The ``event`` of a worker notification.
WorkerEvent = Literal["new", "connected", "disconnected", "configured", "state_updated"]
#: The ``event`` of a master notification.
MasterEvent = Literal["active", "stopped", "expired"]
WORKER_EVENTS: Final[tuple[WorkerEvent, ...]] = get_args(WorkerEvent)
MASTER_EVENTS: Final[tuple[MasterEvent, ...]] = get_args(MasterEvent)
#: Routing-key templates of notifications (``{id}`` and ``{event}`` filled in).
WORKER_KEY: Final = "workers.{id}.{event}"
MASTER_KEY: Final = "masters.{id}.{event}"


#: The longest error message a dead letter carries: its header must fit one AMQP frame
#: (RabbitMQ's ``frame_max``, 128 KiB by default) together with the original properties.
MAX_REJECTED: Final = 2000


def rejected_message(message: str, at: datetime | None = None) -> str:
    """A dead letter's error message with the time of rejection (ISO-8601 UTC, ms) at its end.

    A message over :data:`MAX_REJECTED` characters is cut there (and says so).
    """
    if len(message) > MAX_REJECTED:
        message = f"{message[:MAX_REJECTED]}... (cut from {len(message)} characters)"
    when = (at or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return f"{message} {REJECTED_AT}{when}]"


def rejected_at(message: str) -> str | None:
    """The time of rejection :func:`rejected_message` put at the end of ``message``."""
    match = _REJECTED_AT.search(message)
    return match.group(1) if match else None


def worker_routing_key(workerid: int, event: WorkerEvent) -> str:
    """``workers.<id>.<event>``: the routing key of a worker's notification."""
    return WORKER_KEY.format(id=workerid, event=event)


def master_routing_key(masterid: int, event: MasterEvent) -> str:
    """``masters.<id>.<event>``: the routing key of a master's notification."""
    return MASTER_KEY.format(id=masterid, event=event)


@dataclass(frozen=True, slots=True)
class Names:
    """Every RabbitMQ name of one registry, for one prefix (section 3)."""

    prefix: str = DEFAULT_PREFIX

    @property
    def events(self) -> str:
        """Topic exchange masters publish to, and the quorum queue bound to it with ``#``."""
        return f"{self.prefix}.events"

    @property
    def rpc(self) -> str:
        """Queue of RPC requests, reached through the default exchange."""
        return f"{self.prefix}.rpc"

    @property
    def notifications(self) -> str:
        """Topic exchange registryd publishes changes to."""
        return f"{self.prefix}.notifications"

    @property
    def dead(self) -> str:
        """Fanout exchange and queue of the events that could not be applied."""
        return f"{self.prefix}.dead"

    @property
    def reset_key(self) -> str:
        """Routing key of the reset notification."""
        return RESET_ROUTING_KEY
