"""Turning pydantic's validation errors into the protocol's typed errors."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from registryd.errors import QUOTE_LIMIT, InvalidParams, quote

__all__ = ["describe", "parse_params"]

M = TypeVar("M", bound=BaseModel)

_PLAIN = {
    "missing": "is required",
    "extra_forbidden": "is not allowed here",
}


def _field(part: str | int) -> str:
    """A field's name as given, or quoted when it is long or not printable (a client's key)."""
    text = str(part)
    return text if len(text) <= QUOTE_LIMIT and text.isprintable() else quote(part)


def describe(error: ValidationError) -> str:
    """One line naming each bad field and what it must be: ``masterid: must be ...``."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(_field(part) for part in item["loc"]) or "params"
        parts.append(f"{where}: {_PLAIN.get(item['type'], item['msg'])}")
    return "; ".join(parts)


def parse_params(model: type[M], data: dict[str, Any]) -> M:
    """Validate ``data`` as ``model`` or raise :class:`InvalidParams` saying why."""
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise InvalidParams(describe(exc)) from None
