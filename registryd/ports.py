"""What the service and the AMQP side need of a store: small protocols, no Redis here.

The service (:mod:`registryd.service`), the event consumer and the relay depend on these
protocols only; :class:`registryd.store.RedisStore` implements them. A test double or
another backend implements the same few methods.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from registryd.errors import RegistryError
from registryd.models import ChangesPage, Master, Operation
from registryd.registry import WorkerFilter

__all__ = [
    "DUPLICATE",
    "Applied",
    "Listing",
    "LoggedChange",
    "Outcome",
    "RelayClaim",
    "RelayLog",
    "Store",
]


class Outcome(enum.Enum):
    """A write's result that is not a count of changes."""

    #: The event's ``message_id`` was applied before: acknowledged and ignored.
    DUPLICATE = "duplicate"


DUPLICATE: Final = Outcome.DUPLICATE
#: What one write gives back: the number of changes it logged, or :data:`DUPLICATE`.
Applied = int | Outcome


@dataclass(frozen=True, slots=True)
class Listing:
    """A ``getWorkers`` listing as the store gives it: the documents, ready for the wire."""

    #: How many workers are listed.
    count: int
    #: Their JSON documents, cut down by the filters, by ascending id, joined by ``,``.
    docs: bytes


@dataclass(frozen=True, slots=True)
class LoggedChange:
    """One change-log entry as the relay publishes it."""

    revision: int
    routing_key: str
    body: bytes


@dataclass(frozen=True, slots=True)
class RelayClaim:
    """What the relay learns when it claims its role: one consistent snapshot."""

    held: bool
    epoch: str
    cursor: int
    pending_reset: str | None
    changes: list[LoggedChange]


@dataclass(frozen=True, slots=True)
class Published:
    """What the relay published (and saw confirmed) in an epoch, to record in the log."""

    epoch: str
    revision: int | None = None
    reset: str | None = None


class Store(Protocol):
    """The registry's state: atomic writes, consistent reads, the change log."""

    async def load_scripts(self) -> None:
        """Prepare the backend (called at start and after the backend restarted)."""

    async def init_epoch(self) -> tuple[str, bool]:
        """The current epoch, made now if there was none (then ``True``)."""

    async def state(self) -> tuple[int, str | None]:
        """The current revision and epoch (``None`` before the first start)."""

    async def apply(self, op: Operation, message_id: str | None = None) -> Applied:
        """Apply one write atomically."""

    async def apply_many(
        self, ops: Sequence[tuple[Operation, str | None]]
    ) -> list[Applied | RegistryError]:
        """Apply writes in order, each atomically; per write its outcome or error."""

    async def find_worker_id(self, name: str) -> int:
        """The id of ``name``, creating the worker when it is new."""

    async def expire_masters(self) -> list[int]:
        """Expire every master whose lease ended; the expired ids."""

    async def read_listing(
        self,
        where: WorkerFilter,
        after: int = 0,
        limit: int | None = None,
        budget: int | None = None,
    ) -> Listing | None:
        """The workers ``where`` lists with ids above ``after``, at most ``limit``.

        ``None`` when their joined documents would be over ``budget`` bytes.
        """

    async def read_worker_doc(self, workerid: int) -> bytes | None:
        """One worker's JSON document, or ``None``."""

    async def worker_id_of(self, name: str) -> int | None:
        """The id of a name, without creating it."""

    async def read_masters(self) -> list[Master]:
        """``getMasters``."""

    async def read_changes(self, since: int, limit: int) -> ChangesPage:
        """``getChanges``, or :class:`~registryd.errors.ResyncRequired`."""


class RelayLog(Protocol):
    """The relay's view of the change log: one process at a time publishes it."""

    async def claim(
        self,
        lock_ms: int,
        count: int,
        published: Published | None = None,
        in_flight: Published | None = None,
    ) -> RelayClaim:
        """Take or keep the role; the epoch, cursor, pending reset and what follows.

        ``published`` is recorded first, as :meth:`advance` would, in the same step.
        What follows is read after ``in_flight``'s revision (a batch sent, not yet
        confirmed, so not recorded) when that is the current epoch, else after the cursor.
        """

    async def wait(self, cursor: int, block_ms: int) -> None:
        """Return when an entry after ``cursor`` exists, or after ``block_ms``."""

    async def advance(self, epoch: str, revision: int | None, reset: str | None) -> bool:
        """Record what was published; ``False`` if the role or the epoch changed."""

    async def release(self) -> None:
        """Give the role up so another process can take it at once."""
