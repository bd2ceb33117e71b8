"""PROTOCOL.md section 4, events that cannot be applied: each dead-lettered once, with its code.

The cases share one registry (see ``conftest.py``) holding worker ``w`` only; ``<w>`` in
a body stands for its id.
"""

from __future__ import annotations

import json

import pytest

from tests.conformance.conftest import SHARED
from tests.harness import Wire

pytestmark = [pytest.mark.integration, SHARED]


def _case(body: bytes, code: str, case_id: str) -> object:
    return pytest.param(body, code, id=f"{code}-{case_id}")


BAD_EVENTS = [
    _case(b"", "bad_request", "empty"),
    _case(b"\xff\xfe{}", "bad_request", "not-utf8"),
    _case(b"\xff\xfe not utf-8", "bad_request", "not-utf8-text"),
    _case(b"{not json", "bad_request", "not-json"),
    _case(b"null", "bad_request", "null"),
    _case(b"42", "bad_request", "number"),
    _case(b"true", "bad_request", "boolean"),
    _case(b'"worker.graceful"', "bad_request", "string"),
    _case(b"[1, 2]", "bad_request", "array"),
    _case(b'[{"type": "master.heartbeat", "masterid": 1}]', "bad_request", "array-of-event"),
    _case(b'{"workerid": <w>, "graceful": true}', "bad_request", "no-type"),
    _case(b'{"workerid": 1}', "bad_request", "no-type-one-field"),
    _case(b'{"type": null, "masterid": 1}', "bad_request", "type-null"),
    _case(b'{"type": 7}', "bad_request", "type-number"),
    _case(b'{"type": ["master.heartbeat"], "masterid": 1}', "bad_request", "type-list"),
    _case(b'{"type": "master.heartbeat", "masterid": NaN}', "bad_request", "nan"),
    _case(b'{"type": "master.heartbeat", "masterid": Infinity}', "bad_request", "infinity"),
    _case(
        b'{"type": "worker.connected", "workerid": <w>, "masterid": 1, "workerinfo": {"x": NaN}}',
        "bad_request",
        "nan-in-workerinfo",
    ),
    _case(b'{"type": "worker.exploded", "workerid": <w>}', "unknown_type", "exploded"),
    # Found by tests/integration/test_generated_input.py: the refusal quoted the whole
    # value, and a header over one AMQP frame made RabbitMQ close the daemon's connection
    # at every redelivery (a loop until the delivery limit).
    _case(b'{"type": "' + b"x" * 200_000 + b'"}', "unknown_type", "200000-characters"),
    _case(b'{"type": "", "masterid": 1}', "unknown_type", "empty"),
    _case(b'{"type": "Master.Heartbeat", "masterid": 1}', "unknown_type", "case"),
    _case(b'{"type": "masterHeartbeat", "masterid": 1}', "unknown_type", "rpc-name"),
    _case(b'{"type": "findWorkerId", "name": "x"}', "unknown_type", "rpc-only"),
    _case(b'{"type": "ping"}', "unknown_type", "ping"),
    _case(
        b'{"type": "worker.connected", "workerid": <w>, "masterid": 1}',
        "invalid_params",
        "no-workerinfo",
    ),
    *[
        _case(
            b'{"type": "worker.connected", "workerid": <w>, "masterid": 1, "workerinfo": '
            + info
            + b"}",
            "invalid_params",
            f"workerinfo-{name}",
        )
        for info, name in [(b"[]", "list"), (b"null", "null"), (b'"x"', "text"), (b"1", "number")]
    ],
    *[
        _case(
            b'{"type": "master.heartbeat", "masterid": ' + ident + b"}",
            "invalid_params",
            f"masterid-{name}",
        )
        for ident, name in [
            (b'"10"', "text"),
            (b"10.0", "float"),
            (b"true", "boolean"),
            (b"0", "zero"),
            (b"-1", "negative"),
            (b"null", "null"),
            (b"9007199254740992", "2**53"),
            # Valid JSON that Python will not convert (over 4,300 digits): once bad_request.
            (b"1" * 5000, "5000-digits"),
        ]
    ],
    _case(
        b'{"type": "worker.configured", "workerid": <w>, "masterid": "10", "builderids": []}',
        "invalid_params",
        "configured-masterid-text",
    ),
    _case(
        b'{"type": "worker.graceful", "workerid": true, "graceful": true}',
        "invalid_params",
        "workerid-boolean",
    ),
    *[
        _case(
            b'{"type": "worker.graceful", "workerid": <w>, "graceful": ' + flag + b"}",
            "invalid_params",
            f"graceful-{name}",
        )
        for flag, name in [
            (b"1", "one"),
            (b"0", "zero"),
            (b'"yes"', "yes"),
            (b'"true"', "true-text"),
            (b"null", "null"),
        ]
    ],
    _case(b'{"type": "worker.graceful", "workerid": <w>}', "invalid_params", "graceful-missing"),
    _case(
        b'{"type": "worker.graceful", "workerid": <w>, "graceful": true, "x": 1}',
        "invalid_params",
        "extra-field",
    ),
    *[
        _case(
            b'{"type": "worker.configured", "workerid": <w>, "masterid": 1, "builderids": '
            + ids
            + b"}",
            "invalid_params",
            f"builderids-{name}",
        )
        for ids, name in [
            (b'"1"', "text"),
            (b"[true]", "boolean"),
            (b"[1.0]", "float"),
            (b'["1"]', "text-item"),
            (b"{}", "object"),
            (b"[0]", "zero"),
            (b"null", "null"),
        ]
    ],
    _case(
        b'{"type": "worker.configured", "workerid": <w>, "masterid": 1}',
        "invalid_params",
        "builderids-missing",
    ),
    _case(b'{"type": "worker.paused", "workerid": <w>}', "invalid_params", "paused-missing"),
    _case(
        b'{"type": "worker.paused", "workerid": <w>, "paused": true, "pause_reason": 5}',
        "invalid_params",
        "pause-reason-number",
    ),
    _case(
        b'{"type": "worker.disconnected", "workerid": <w>, "masterid": 1, "connection": ""}',
        "invalid_params",
        "connection-empty",
    ),
    _case(b'{"type": "master.deconfigured"}', "invalid_params", "deconfigured-no-masterid"),
    _case(
        b'{"type": "worker.graceful", "workerid": <w>, "graceful": true, "'
        + b"k" * 200_000
        + b'": 1}',
        "invalid_params",
        "extra-field-named-200000-characters",
    ),
    _case(
        b'{"type": "worker.graceful", "workerid": <w>, "graceful": true, "\\udc00": 1}',
        "invalid_params",
        "extra-field-named-lone-surrogate",
    ),
    _case(b'{"type": "master.stopped", "masterid": [10]}', "invalid_params", "masterid-list"),
    _case(
        b'{"type": "master.stopped", "masterid": 10, "name": "m"}',
        "invalid_params",
        "stopped-with-name",
    ),
    _case(
        b'{"type": "master.heartbeat", "masterid": 1, "name": 5}', "invalid_params", "name-number"
    ),
    _case(
        b'{"type": "master.heartbeat", "masterid": 1, "name": "' + b"n" * 201 + b'"}',
        "invalid_params",
        "name-201",
    ),
    _case(
        b'{"type": "worker.connected", "workerid": 999, "masterid": 1, "workerinfo": {}}',
        "not_found",
        "connected",
    ),
    _case(
        b'{"type": "worker.disconnected", "workerid": 999, "masterid": 1}',
        "not_found",
        "disconnected",
    ),
    _case(
        b'{"type": "worker.configured", "workerid": 999, "masterid": 1, "builderids": []}',
        "not_found",
        "configured",
    ),
    _case(b'{"type": "worker.paused", "workerid": 999, "paused": false}', "not_found", "paused"),
    _case(
        b'{"type": "worker.graceful", "workerid": 999, "graceful": true}', "not_found", "graceful"
    ),
    _case(
        b'{"type": "worker.graceful", "workerid": 999999, "graceful": true}',
        "not_found",
        "graceful-999999",
    ),
]


@pytest.mark.parametrize(("template", "code"), BAD_EVENTS)
async def test_s4_bad_event_is_dead_lettered_once_with_its_code(
    shared: Wire, shared_worker: int, request: pytest.FixtureRequest, template: bytes, code: str
) -> None:
    """§4 dead-lettered once, x-registry-error {"code","message"}; "never requeued in a loop"."""
    body = template.replace(b"<w>", str(shared_worker).encode())
    message_id = f"bad-{request.node.callspec.id}"
    before = await shared.revision()
    await shared.event(
        body, message_id=message_id, headers={"origin": "conformance"}, app_id="conformance"
    )
    (dead,) = await shared.dead_letters()
    headers = dict(dead.headers or {})
    error = json.loads(str(headers.pop("x-registry-error")))
    assert ["code", "message"] == sorted(error)
    assert isinstance(error["message"], str)
    assert error["message"]
    assert "x-death" not in headers
    assert (body, code, message_id, {"origin": "conformance"}, "conformance") == (
        dead.body,
        error["code"],
        dead.message_id,
        headers,
        dead.app_id,
    )
    assert before == await shared.revision()
    queue = await shared.channel.declare_queue(shared.events, passive=True)
    assert 0 == queue.declaration_result.message_count
