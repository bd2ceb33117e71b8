"""Pure formatting of the operator commands' output: tables, lines, JSON, dead letters."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aio_pika.abc import (
    FieldValue,
    HeadersType,
)

from registryd.client import Resync, SubscriptionItem
from registryd.models import (
    ConfiguredOn,
    Master,
    Worker,
    WorkerChange,
)
from registryd.operator.common import (
    _BODY_SHOWN,
    _DROPPED_HEADERS,
    _DROPPED_PREFIXES,
    _REASON_SHOWN,
)
from registryd.protocol import ERROR_HEADER, rejected_at
from registryd.subscription import routing_key_of


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters escaped (names are free text)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _ids(ids: Iterable[int]) -> str:
    return ",".join(map(str, ids)) or "-"


def compact_pairs(pairs: Iterable[ConfiguredOn]) -> str:
    """``configured_on`` as ``master:builder`` pairs, comma-separated; ``-`` when none."""
    return ",".join(f"{p.masterid}:{p.builderid}" for p in pairs) or "-"


def format_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, a header row first, no trailing blanks."""
    table = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in table
    )


def _paused(worker: Worker) -> str:
    if not worker.paused or worker.pause_reason is None:
        return _yes(worker.paused)
    reason = printable(worker.pause_reason)
    cut = "..." if len(reason) > _REASON_SHOWN else ""
    return f"yes ({reason[:_REASON_SHOWN]}{cut})"


def workers_table(workers: Sequence[Worker]) -> str:
    """The ``workers`` table: one row per worker, ``(none)`` under the header if empty."""
    headers = ("ID", "NAME", "PAUSED", "GRACEFUL", "CONNECTED_TO", "CONFIGURED_ON")
    rows = [
        (
            str(w.id),
            printable(w.name),
            _paused(w),
            _yes(w.graceful),
            _ids(w.connected_to),
            compact_pairs(w.configured_on),
        )
        for w in workers
    ]
    return format_table(headers, rows or [("(none)", "", "", "", "", "")])


def worker_details(worker: Worker) -> str:
    """The ``worker`` view: every field of the record, one per line."""
    reason = worker.pause_reason
    fields = {
        "id": str(worker.id),
        "name": printable(worker.name),
        "paused": _yes(worker.paused),
        "pause_reason": "-" if reason is None else printable(reason),
        "graceful": _yes(worker.graceful),
        "connected_to": _ids(worker.connected_to),
        "configured_on": compact_pairs(worker.configured_on),
        "workerinfo": printable(json.dumps(worker.workerinfo, ensure_ascii=False)),
    }
    return "\n".join(f"{key + ':':<15}{value}" for key, value in fields.items())


def masters_table(masters: Sequence[Master]) -> str:
    """The ``masters`` table: id, name, active, last_seen."""
    rows = [
        (str(m.id), printable(m.name or "-"), _yes(m.active), m.last_seen or "-") for m in masters
    ]
    return format_table(("ID", "NAME", "ACTIVE", "LAST_SEEN"), rows or [("(none)", "", "", "")])


def to_json(value: object) -> str:
    """One JSON document on one line (ASCII, so any terminal or pipe takes it)."""
    return json.dumps(value)


def timestamp(at: datetime) -> str:
    """``2026-12-01T21:42:34.162Z``: UTC with milliseconds, as registryd writes times."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def change_line(item: SubscriptionItem, at: datetime | None = None) -> str:
    """One readable line per notification (or resync) that ``watch`` and ``demo`` see.

    ``at`` (when it was received) starts the line.
    """
    when = "" if at is None else f"{timestamp(at)} "
    if isinstance(item, Resync):
        return (
            f"{when}resync at revision {item.revision} ({item.reason}), epoch {item.epoch}: "
            "reload what you hold"
        )
    head = f"{when}{item.revision} {routing_key_of(item)}"
    if isinstance(item, WorkerChange):
        w = item.worker
        return (
            f"{head} worker={w.id} name={printable(w.name)} master={item.masterid or '-'} "
            f"connected_to={_ids(w.connected_to)} configured_on={compact_pairs(w.configured_on)} "
            f"paused={_yes(w.paused)} graceful={_yes(w.graceful)}"
        )
    m = item.master
    return f"{head} master={m.id} name={printable(m.name or '-')} active={_yes(m.active)}"


def change_json(item: SubscriptionItem, at: datetime | None = None) -> str:
    """The notification's body plus its ``routing_key``; a resync as ``event: resync``.

    ``at`` (when it was received) is added as ``received_at``.
    """
    extra = {} if at is None else {"received_at": timestamp(at)}
    if isinstance(item, Resync):
        body = {"event": "resync", "reason": item.reason, "revision": item.revision}
        return to_json({**body, "epoch": item.epoch, **extra})
    fields = {**item.model_dump(mode="json"), "routing_key": routing_key_of(item)}
    return to_json({**fields, **extra})


def _jsonable(value: object) -> object:
    """An AMQP header value as JSON: bytes as UTF-8 text, dates and decimals as text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | Decimal):
        return str(value)
    return value


def parse_error_header(value: object) -> dict[str, str | None] | None:
    """The ``x-registry-error`` header as ``{"code", "message", "rejected_at"}``, or ``None``.

    ``rejected_at`` is the time at the end of registryd's message (``None`` without one).

    A header that is not the JSON registryd writes keeps its text as the message.
    """
    if value is None:
        return None
    text = value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("code"), str):
        message = str(parsed.get("message", ""))
        return {"code": parsed["code"], "message": message, "rejected_at": rejected_at(message)}
    return {"code": None, "message": text, "rejected_at": None}


def _rejected_at(headers: Mapping[str, object]) -> str | None:
    """registryd's time of refusal, else RabbitMQ's of its own dead-lettering (``x-death``)."""
    error = parse_error_header(headers.get(ERROR_HEADER))
    if error is not None and error["rejected_at"]:
        return error["rejected_at"]
    deaths = headers.get("x-death")
    first = deaths[0] if isinstance(deaths, list | tuple) and deaths else None
    time = first.get("time") if isinstance(first, Mapping) else None
    return timestamp(time) if isinstance(time, datetime) else None


def dead_letter_record(
    body: bytes, headers: Mapping[str, object], message_id: str | None, routing_key: str | None
) -> dict[str, Any]:
    """A dead letter as ``dead-letters --json`` shows it (``body`` is null if not UTF-8)."""
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {
        "message_id": message_id,
        "routing_key": routing_key or None,
        "rejected_at": _rejected_at(headers),
        "error": parse_error_header(headers.get(ERROR_HEADER)),
        "headers": {str(k): _jsonable(v) for k, v in headers.items()},
        "body": text,
        "body_base64": base64.b64encode(body).decode(),
    }


def dead_letter_text(number: int, record: Mapping[str, Any]) -> str:
    """A dead letter as a few readable lines: ids and error, body, other headers."""
    error = record["error"]
    why = "-" if error is None else f"{error['code'] or '?'}: {error['message']}"
    lines = [
        (
            f"{number}. message_id={printable(record['message_id'] or '-')} "
            f"routing_key={printable(record['routing_key'] or '-')} "
            f"rejected_at={record['rejected_at'] or '-'} error={printable(why)}"
        )
    ]
    body = record["body"]
    if body is None:
        lines.append(f"   body (base64, not UTF-8): {record['body_base64'][:_BODY_SHOWN]}")
    else:
        cut = "..." if len(body) > _BODY_SHOWN else ""
        lines.append(f"   body: {printable(body[:_BODY_SHOWN])}{cut}")
    others = {k: v for k, v in record["headers"].items() if k != ERROR_HEADER}
    if others:
        lines.append(f"   headers: {printable(to_json(others))}")
    return "\n".join(lines)


def replay_headers(headers: Mapping[str, FieldValue]) -> HeadersType:
    """The headers a replayed event keeps: all but registryd's and the broker's verdicts."""
    return {
        k: v
        for k, v in headers.items()
        if k not in _DROPPED_HEADERS and not k.startswith(_DROPPED_PREFIXES)
    }


def replay_routing_key(body: bytes, fallback: str) -> str:
    """The routing key a replayed event gets: its body's ``type`` when it has one."""
    try:
        event = json.loads(body)
    except ValueError:
        return fallback
    kind = event.get("type") if isinstance(event, dict) else None
    return kind if isinstance(kind, str) and kind else fallback
