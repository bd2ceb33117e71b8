"""The envelopes on the wire: event bodies, RPC requests and replies (sections 4 and 5).

Parsing goes in two steps so that each failure gets its own code: the envelope
(``bad_request``), then the name (``unknown_type`` / ``unknown_method``), then the
fields (``invalid_params``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from pydantic import BaseModel

from registryd.errors import BadRequest, RegistryError, UnknownMethod, UnknownType, quote
from registryd.models.ops import EVENTS, OPERATIONS, Operation
from registryd.models.records import WORKER_ADAPTER, Worker
from registryd.models.validation import parse_params

__all__ = [
    "MAX_BODY",
    "encode_error",
    "encode_result",
    "event_model",
    "parse_event",
    "parse_request",
]

#: Events and requests larger than this are ``bad_request``.
MAX_BODY: Final = 1024 * 1024


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _parse_int(digits: str) -> int | float:
    """A JSON integer; one too long for Python to convert (over 4,300 digits) is infinite.

    Such a number is valid JSON, so refusing the body as ``bad_request`` would be wrong;
    as a float it fails the field's own check (``invalid_params``), like ``1e400`` does.
    """
    try:
        return int(digits)
    except ValueError:
        return float(digits)


def _object(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY:
        raise BadRequest(f"body is {len(body)} bytes, over the limit of {MAX_BODY}")
    try:
        data = json.loads(
            body.decode("utf-8"), parse_constant=_reject_constant, parse_int=_parse_int
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"body is not UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("body is JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise BadRequest(f"body must be a JSON object, not {type(data).__name__}")
    return data


def event_model(body: bytes) -> tuple[type[Operation], dict[str, Any]]:
    """The first two steps of :func:`parse_event`: the model ``type`` names, and the fields.

    Raises ``bad_request`` or ``unknown_type``; the fields are not checked yet.
    """
    data = _object(body)
    kind = data.pop("type", None)
    if not isinstance(kind, str):
        raise BadRequest("event has no string 'type'")
    model = EVENTS.get(kind)
    if model is None:
        raise UnknownType(f"unknown event type {quote(kind)}; known: {', '.join(sorted(EVENTS))}")
    return model, data


def parse_event(body: bytes) -> Operation:
    """The operation an event body asks for; ``type`` decides, the routing key does not."""
    return parse_params(*event_model(body))


def parse_request(body: bytes) -> Operation:
    """The operation an RPC request body asks for."""
    data = _object(body)
    method = data.get("method")
    if not isinstance(method, str):
        raise BadRequest("request has no string 'method'")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise BadRequest("'params' must be a JSON object")
    model = OPERATIONS.get(method)
    if model is None:
        raise UnknownMethod(f"unknown method {quote(method)}")
    return parse_params(model, params)


def _plain(result: object) -> object:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if isinstance(result, Worker):
        return WORKER_ADAPTER.dump_python(result, mode="json")
    if isinstance(result, list | tuple):
        return [_plain(item) for item in result]
    return result


def encode_result(
    result: BaseModel | Worker | Sequence[object] | dict[str, Any] | int | None,
) -> bytes:
    """``{"ok": true, "result": ...}``."""
    return json.dumps({"ok": True, "result": _plain(result)}, ensure_ascii=False).encode()


def encode_error(error: RegistryError) -> bytes:
    """``{"ok": false, "error": {"code", "message", "retryable"}}``."""
    return json.dumps({"ok": False, "error": error.to_wire()}, ensure_ascii=False).encode()
