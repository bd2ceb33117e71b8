"""Field types shared by every message: ids, flags, identifiers, free text.

Each type checks strictly (a JSON ``true`` or ``10.0`` is not an id) and fails with a
message a person can act on; pydantic's error becomes the protocol's
``invalid_params`` with that message.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "MAX_DEPTH",
    "MAX_ID",
    "Connection",
    "Flag",
    "Id",
    "JsonObject",
    "MasterName",
    "Name",
    "OptionalText",
    "canonical_json",
]

#: Ids are kept exact through JSON, Lua and sorted-set scores up to 2**53 - 1.
MAX_ID = 2**53 - 1
#: How deep ``workerinfo`` may nest: every JSON parser on the way (pydantic's among
#: them) has a recursion limit, and a worker's info is a flat map in practice.
MAX_DEPTH = 100
_NAME = re.compile(r"[a-zA-Z\u00a0-\U0010ffff_-][a-zA-Z0-9\u00a0-\U0010ffff_-]*")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _fail(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


def _id(value: object) -> int:
    if type(value) is not int or not 1 <= value <= MAX_ID:
        raise _fail("id", "must be a positive integer (at most 2**53 - 1)")
    return value


def _flag(value: object) -> bool:
    if type(value) is not bool:
        raise _fail("flag", "must be a JSON boolean (true or false)")
    return value


def _text(value: object, limit: int | None, what: str, shortest: int = 1) -> str:
    if type(value) is not str:
        raise _fail("text", f"must be {what}")
    if _SURROGATE.search(value):
        raise _fail("text", "must be valid Unicode (no lone surrogates)")
    if limit is not None and not shortest <= len(value) <= limit:
        raise _fail("text", f"must be {what}")
    return value


def _name(value: object) -> str:
    what = (
        "an identifier of 1 to 50 characters: a letter, '_', '-' or a character from "
        "U+00A0 up, then the same or digits"
    )
    text = _text(value, 50, what)
    if not _NAME.fullmatch(text):
        raise _fail("name", f"must be {what}")
    return text


def _depth(value: object) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar is 0), without recursion."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        item, depth = todo.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        )
        if children is not None:
            deepest = max(deepest, depth + 1)
            if deepest > MAX_DEPTH:
                break
            todo.extend((child, depth + 1) for child in children)
    return deepest


def _json_object(value: object) -> dict[str, Any]:
    if type(value) is not dict:
        raise _fail("object", "must be a JSON object")
    if _depth(value) > MAX_DEPTH:
        raise _fail("object", f"must nest arrays and objects at most {MAX_DEPTH} levels deep")
    try:
        canonical_json(value).encode()
    except (ValueError, TypeError) as exc:
        raise _fail("object", "must be a JSON object of finite numbers and valid Unicode") from exc
    return value


def canonical_json(value: object) -> str:
    """One JSON text per value (sorted keys, no spaces), so equal values compare equal."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _schema(**schema: object) -> WithJsonSchema:
    return WithJsonSchema(schema)


Id = Annotated[
    int,
    PlainValidator(_id),
    _schema(type="integer", minimum=1, maximum=MAX_ID),
]
Flag = Annotated[bool, PlainValidator(_flag), _schema(type="boolean")]
Name = Annotated[str, PlainValidator(_name), _schema(type="string", minLength=1, maxLength=50)]
Connection = Annotated[
    str,
    PlainValidator(lambda v: _text(v, 200, "a string of 1 to 200 characters")),
    _schema(type="string", minLength=1, maxLength=200),
]
MasterName = Annotated[
    str,
    PlainValidator(lambda v: _text(v, 200, "a string of at most 200 characters", shortest=0)),
    _schema(type="string", maxLength=200),
]
OptionalText = Annotated[
    str,
    PlainValidator(lambda v: _text(v, None, "a string")),
    _schema(type="string"),
]
JsonObject = Annotated[dict[str, Any], PlainValidator(_json_object), _schema(type="object")]
