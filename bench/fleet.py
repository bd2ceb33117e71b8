"""The fleet every benchmark measures: 4 masters, 50 builders, one shape for both backends.

Worker ``i`` (ids are 1, 2, ... in creation order) is configured and connected on one
master, ``MASTERS[i % 4]``, with 3 of that master's builders (builder ``b`` belongs to
master ``MASTERS[b % 4]``), so each master lists a quarter of the workers and builder
:data:`BUILDER` about a sixteenth. Every tenth worker is paused. ``workerinfo`` is what
a Buildbot 4.3 worker sends. Pure data: the Buildbot process imports it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

MASTERS: Final = (10, 11, 12, 13)
BUILDERS: Final = tuple(range(1, 51))
#: The builder the ``builderid`` listing filters on (one of master 10's).
BUILDER: Final = 4
#: The master whose lease expires in the expiry measurement, and how many workers it has.
EXPIRY_MASTER: Final = 99
EXPIRY_WORKERS: Final = 5_000
#: The builder the expiring master's workers are configured with.
EXPIRY_BUILDER: Final = 51
PER_WORKER_BUILDERS: Final = 3
PAUSED_EVERY: Final = 10


def name_of(workerid: int) -> str:
    """The worker's name."""
    return f"bench-worker-{workerid:06d}"


def master_of(workerid: int) -> int:
    """The one master the worker is configured and connected on."""
    return MASTERS[workerid % len(MASTERS)]


def builders_of(workerid: int) -> list[int]:
    """The worker's builders: 3 consecutive ones of its master's, ascending."""
    own = [b for b in BUILDERS if b % len(MASTERS) == workerid % len(MASTERS)]
    start = (workerid // len(MASTERS)) % len(own)
    return sorted(own[(start + j) % len(own)] for j in range(PER_WORKER_BUILDERS))


def is_paused(workerid: int) -> bool:
    """Whether the worker starts paused (one in ten)."""
    return workerid % PAUSED_EVERY == 0


def paused_ids(count: int) -> list[int]:
    """The ids of the paused workers among the first ``count``."""
    return list(range(PAUSED_EVERY, count + 1, PAUSED_EVERY))


def info_of(workerid: int) -> dict[str, Any]:
    """The ``workerinfo`` a Buildbot 4.3 worker sends."""
    return {
        "admin": "CI team <ci@example.com>",
        "host": f"build-{workerid:06d}.ci.example.com",
        "access_uri": None,
        "version": "4.3.0",
    }


@dataclass(frozen=True, slots=True)
class Listing:
    """One ``getWorkers`` call the suite measures, and what it should cost."""

    label: str
    params: dict[str, Any]
    #: The largest ratio to the unfiltered call that meets issue 9's target.
    bound: float


LISTINGS: Final = (
    Listing("getWorkers()", {}, 1.0),
    # "a filter that lists a quarter of the workers costs at most half of the unfiltered
    # call": the id filters list a quarter (masterid) or less (builderid).
    Listing("getWorkers(masterid=10)", {"masterid": MASTERS[0]}, 0.5),
    Listing(f"getWorkers(builderid={BUILDER})", {"builderid": BUILDER}, 0.5),
    # "a boolean filter never costs more than the unfiltered call".
    Listing("getWorkers(paused=false)", {"paused": False}, 1.0),
    Listing("getWorkers(paused=true)", {"paused": True}, 1.0),
)


def listed(listing: Listing, count: int) -> int:
    """How many of the first ``count`` workers the listing lists."""
    params = listing.params
    return sum(
        1
        for w in range(1, count + 1)
        if ("masterid" not in params or master_of(w) == params["masterid"])
        and ("builderid" not in params or params["builderid"] in builders_of(w))
        and ("paused" not in params or is_paused(w) == params["paused"])
    )
