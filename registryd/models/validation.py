"""Turning pydantic's validation errors into the protocol's typed errors."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from registryd.errors import InvalidParams

__all__ = ["describe", "parse_params"]

M = TypeVar("M", bound=BaseModel)

_PLAIN = {
    "missing": "is required",
    "extra_forbidden": "is not allowed here",
}


def describe(error: ValidationError) -> str:
    """One line naming each bad field and what it must be: ``masterid: must be ...``."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "params"
        parts.append(f"{where}: {_PLAIN.get(item['type'], item['msg'])}")
    return "; ".join(parts)


def parse_params(model: type[M], data: dict[str, Any]) -> M:
    """Validate ``data`` as ``model`` or raise :class:`InvalidParams` saying why."""
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise InvalidParams(describe(exc)) from None
