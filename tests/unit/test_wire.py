"""Parsing event and request bodies: each failure gets its protocol code, nothing escapes."""

from __future__ import annotations

import json

import pytest

from registryd.errors import BadRequest, InvalidParams, RegistryError, UnknownMethod, UnknownType
from registryd.models import GetWorkers, WorkerConnected
from registryd.models.types import MAX_DEPTH
from registryd.models.wire import MAX_BODY, parse_event, parse_request


def _connected(info: str) -> bytes:
    head = '{"type": "worker.connected", "workerid": 1, "masterid": 1, "workerinfo": '
    return (head + info + "}").encode()


def _nested(levels: int) -> str:
    return '{"a": ' * (levels - 1) + "[1]" + "}" * (levels - 1)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"[" * 5000, BadRequest),
        (b'{"a": ' * 5000, BadRequest),
        (_connected(_nested(MAX_DEPTH + 1)), InvalidParams),
        (_connected(_nested(200)), InvalidParams),
        (_connected('{"x": NaN}'), BadRequest),
        (_connected('{"x": Infinity}'), BadRequest),
        (_connected('{"x": 1e400}'), InvalidParams),
        (
            b'{"type": "worker.graceful", "workerid": 1, "graceful": true, "pad": "'
            + b"x" * MAX_BODY
            + b'"}',
            BadRequest,
        ),
        (b'{"type": "nope"}', UnknownType),
        (b'"just a string"', BadRequest),
    ],
)
def test_bad_event_bodies_raise_their_code(body: bytes, error: type[RegistryError]) -> None:
    """Deep nesting, non-finite numbers and oversize bodies are typed errors, never crashes."""
    with pytest.raises(error):
        parse_event(body)


def test_workerinfo_at_the_depth_limit_is_accepted() -> None:
    """A workerinfo nested exactly MAX_DEPTH levels deep is still an object we store."""
    op = parse_event(_connected(_nested(MAX_DEPTH)))
    assert isinstance(op, WorkerConnected)


def test_the_routing_key_plays_no_part_and_type_decides() -> None:
    """The body's type decides what the event is; extra envelope fields are params."""
    op = parse_event(
        json.dumps(
            {"type": "worker.connected", "workerid": 3, "masterid": 4, "workerinfo": {"h": 1}}
        ).encode()
    )
    assert WorkerConnected(workerid=3, masterid=4, workerinfo={"h": 1}) == op


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"method": "getWorkers"}', GetWorkers()),
        (b'{"method": "getWorkers", "params": {}}', GetWorkers()),
        (b'{"method": "getWorkers", "params": {"masterid": null}}', GetWorkers()),
        (b'{"method": "getWorkers", "params": {"paused": true}, "id": 7}', GetWorkers(paused=True)),
    ],
)
def test_requests_parse(body: bytes, expected: GetWorkers) -> None:
    """params may be omitted; null means not given; unknown envelope fields are ignored."""
    assert expected == parse_request(body)


def test_unknown_method_is_its_own_code() -> None:
    """A method the protocol does not have is unknown_method, not invalid_params."""
    with pytest.raises(UnknownMethod):
        parse_request(b'{"method": "getWorkerz"}')
