"""Authorization (PROTOCOL.md section 7): which AMQP user may act for which master."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from registryd.errors import Forbidden
from registryd.models.ops import Operation

__all__ = ["authorize"]


def authorize(op: Operation, user: str | None, masters: Mapping[str, Sequence[int]] | None) -> None:
    """Raise :class:`Forbidden` unless ``user`` may send ``op``; no map means no checks."""
    if masters is None or op.auth == "read":
        return
    allowed = masters.get(user or "", ())
    if op.auth == "any_master":
        if not allowed:
            raise Forbidden(f"user {user!r} is not mapped to any master")
        return
    masterid = getattr(op, "masterid", None)
    if masterid not in allowed:
        raise Forbidden(f"user {user!r} may not act for master {masterid}")
