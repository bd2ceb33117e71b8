"""What belongs to the demo: its master ids and worker names, and what in a registry does not.

The demo acts as masters 9001 and up, far from the ids a Buildbot installation hands
out (1, 2, ...), and names its workers ``demo-worker-<n>``. A registry holding anything
else is in use: the demo refuses it (unless forced), and so does the clean-up of
``make demo``, which deletes a whole prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from registryd.models import Master, Worker

__all__ = [
    "DEMO_MASTERS",
    "DEMO_WORKER_PREFIX",
    "demo_master_id",
    "demo_worker_name",
    "foreign_data",
]

#: The master ids the demo may act as (``--masters`` picks the first N).
DEMO_MASTERS: Final = range(9001, 9010)
#: Every demo worker's name starts with this.
DEMO_WORKER_PREFIX: Final = "demo-worker-"
_SHOWN: Final = 3


def demo_master_id(index: int) -> int:
    """The id of the demo's master number ``index`` (from 0)."""
    return DEMO_MASTERS[index]


def demo_worker_name(index: int) -> str:
    """The name of the demo's worker number ``index`` (from 0)."""
    return f"{DEMO_WORKER_PREFIX}{index + 1}"


def _demo_worker(worker: Worker) -> bool:
    masters = {*worker.connected_to, *(pair.masterid for pair in worker.configured_on)}
    return worker.name.startswith(DEMO_WORKER_PREFIX) and masters <= set(DEMO_MASTERS)


def _some(what: str, items: Sequence[str]) -> str:
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return f"{len(items)} {what} ({', '.join(items[:_SHOWN])}{more})"


def foreign_data(workers: Sequence[Worker], masters: Sequence[Master]) -> str | None:
    """What in the registry is not the demo's (``None``: nothing, or its own leftovers)."""
    others = [f"{w.name!r}" for w in workers if not _demo_worker(w)]
    strangers = [str(m.id) for m in masters if m.id not in DEMO_MASTERS]
    parts = []
    if others:
        parts.append(_some("workers", others))
    if strangers:
        parts.append(_some("masters", strangers))
    return " and ".join(parts) or None
