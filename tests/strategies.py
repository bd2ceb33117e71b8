"""Hypothesis strategies for what masters and clients put on the wire, good and bad.

Each strategy builds a :class:`Case`: the exact bytes to publish, and what PROTOCOL.md
says must become of them, known *by construction*: the strategy took a valid message
and broke one thing in it, so it knows the code (section 4's for events, section 5's
for RPC) without asking registryd's own models. The rules are spelled here from
PROTOCOL.md and docs/protocol.md (values, section 2), not imported from ``registryd``,
so a daemon that read them differently fails.

Precedence, as the protocol orders the checks: ``bad_request`` (the envelope: size,
UTF-8, JSON, an object, a string ``type``/``method``, ``params`` an object), then
``unknown_type``/``unknown_method``, then ``invalid_params``, then ``not_found``. A
near-valid case breaks exactly one thing, so exactly one code applies.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from hypothesis import strategies as st

__all__ = [
    "EVENT_TYPES",
    "MAX_BODY",
    "MAX_ID",
    "Case",
    "Raw",
    "encode",
    "event_cases",
    "rpc_cases",
]

Json = dict[str, Any]
St = st.SearchStrategy

#: Section 2: ids are JSON integers from 1; registryd keeps them exact up to 2**53 - 1.
MAX_ID: Final = 2**53 - 1
#: Section 4: events (and, registryd's reading, requests) over 1 MiB are ``bad_request``.
MAX_BODY: Final = 1024 * 1024
#: Section 4's event types and the operation each one is.
EVENT_TYPES: Final = {
    "worker.connected": "workerConnected",
    "worker.disconnected": "workerDisconnected",
    "worker.configured": "workerConfigured",
    "worker.paused": "set_worker_paused",
    "worker.graceful": "set_worker_graceful",
    "master.deconfigured": "deconfigureAllWorkersForMaster",
    "master.heartbeat": "masterHeartbeat",
    "master.stopped": "masterStopped",
}
#: The writes that name a worker: an unknown id is ``not_found``.
WORKER_WRITES: Final = frozenset(
    {
        "workerConnected",
        "workerDisconnected",
        "workerConfigured",
        "set_worker_paused",
        "set_worker_graceful",
    }
)
#: workerinfo may nest arrays and objects this deep (docs/protocol.md, section 2).
MAX_DEPTH: Final = 100


@dataclass(frozen=True)
class Raw:
    """A JSON token written verbatim into the body (``1e400``, ``NaN``, deep brackets)."""

    text: str


@dataclass(frozen=True)
class Case:
    """One message and its fate: ``expect`` None means applied (event) or ok (RPC).

    ``op`` is the operation (method, params) a valid case performs, for the model;
    ``label`` says what the strategy built (reported with ``hypothesis.event``).
    """

    body: bytes
    expect: str | None
    label: str
    op: tuple[str, Json] | None = field(default=None)


def encode(value: object, *, ascii_only: bool = False) -> bytes:
    r"""JSON bytes of ``value``, with each :class:`Raw` token spliced in as written.

    Text holding a lone surrogate can only be written as a JSON ``\\u`` escape, so such
    values are always encoded ASCII-only.
    """
    raws: list[str] = []

    def mark(item: object) -> object:
        if isinstance(item, Raw):
            raws.append(item.text)
            return f"\x00raw{len(raws) - 1}\x00"
        if isinstance(item, dict):
            return {k: mark(v) for k, v in item.items()}
        if isinstance(item, list):
            return [mark(v) for v in item]
        return item

    text = json.dumps(mark(value), ensure_ascii=ascii_only)
    try:
        data = text.encode()
    except UnicodeEncodeError:
        text = json.dumps(mark(value), ensure_ascii=True)
        data = text.encode()
    for index, raw in enumerate(raws):
        for quoted in (f'"\\u0000raw{index}\\u0000"', f'"\x00raw{index}\x00"'):
            data = data.replace(quoted.encode(), raw.encode())
    return data


# Values (section 2) -----------------------------------------------------------------------

#: Characters a string may hold: anything but surrogates, with the awkward ones boosted.
_AWKWARD = "\x00\x01\x1f\x7f\x85\xa0\u200b\u202e\ufeff\ufdd0\ufffe\uffff\U0001f600\U0010ffff"
_CHARS = st.one_of(st.characters(exclude_categories=["Cs"]), st.sampled_from(_AWKWARD))
#: A lone surrogate: valid only as a JSON escape, and never valid Unicode text.
_SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc00b", "\udbff"])


def _text(min_size: int = 0, max_size: int = 20) -> St[str]:
    return st.text(_CHARS, min_size=min_size, max_size=max_size)


def _with_surrogate(base: St[str]) -> St[str]:
    return st.tuples(base, _SURROGATES, base).map("".join)


_WRONG_SCALARS: Final = [None, True, False, 0, 1, -1, 1.5, "", "x", [], {}, [1], {"a": 1}]
IDS: St[int] = st.one_of(st.integers(1, 5), st.integers(1, MAX_ID), st.just(MAX_ID))
BAD_IDS: St[object] = st.one_of(
    st.sampled_from([0, -1, MAX_ID + 1, 10.0, 1.0, True, False, "10", None, [], {}, [1]]),
    st.integers(max_value=0),
    st.integers(min_value=MAX_ID + 1, max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([Raw("1e400"), Raw("-0.0"), Raw("1E2"), Raw("2.0e0"), Raw("-1e400")]),
    st.integers(4_301, 20_000).map(lambda n: Raw("1" * n)),  # valid JSON, too long for Python
    _text(max_size=5),
)
FLAGS: St[bool] = st.booleans()
BAD_FLAGS: St[object] = st.sampled_from([0, 1, "yes", "true", "false", None, 1.0, [], {}, "True"])

_NAME_FIRST = st.one_of(
    st.sampled_from(string.ascii_letters + "_-"),
    st.characters(min_codepoint=0xA0, exclude_categories=["Cs"]),
    st.sampled_from("\xa0\ufeff\ufffe\uffff\U0010ffff\U0001f600\u0301ß"),
)
_NAME_REST = st.one_of(_NAME_FIRST, st.sampled_from(string.digits))
#: Buildbot's identifier: a letter, ``_``, ``-`` or U+00A0 up, then those or digits; 1 to 50.
NAMES: St[str] = st.tuples(_NAME_FIRST, st.lists(_NAME_REST, max_size=49)).map(
    lambda t: t[0] + "".join(t[1])
)
BAD_NAMES: St[object] = st.one_of(
    st.sampled_from(["", "1linux", "a b", "a.b", "linux-1\n", "a\x00", "\x00", "a\x7f", "\x85x"]),
    st.sampled_from(["a" * 51, "ω" * 51, "x" * 100_000, "a\u3000\n"]),
    NAMES.map(lambda n: n + "\n"),
    NAMES.map(lambda n: string.digits[len(n) % 10] + n),
    NAMES.map(lambda n: (n * 51)[:51]),
    _with_surrogate(st.just("w")),
    st.sampled_from(_WRONG_SCALARS).filter(lambda v: not isinstance(v, str)),
)
#: A connection token: 1 to 200 characters.
CONNECTIONS: St[str] = st.one_of(_text(1, 20), st.just("c" * 200), _text(200, 200))
BAD_CONNECTIONS: St[object] = st.one_of(
    st.sampled_from(["", "c" * 201, 1, True, [], {}, ["a"]]),
    _with_surrogate(st.just("s")),
)
MASTER_NAMES: St[str] = st.one_of(_text(0, 30), st.just("m" * 200), st.just(""))
BAD_MASTER_NAMES: St[object] = st.one_of(
    st.sampled_from(["m" * 201, 7, False, [], {"n": 1}]),
    _with_surrogate(st.just("ci:")),
)
REASONS: St[str] = st.one_of(_text(0, 30), st.just("r" * 10_000))
BAD_REASONS: St[object] = st.one_of(
    st.sampled_from([0, True, [], {}, ["r"]]), _with_surrogate(st.just("r"))
)

_SCALARS: St[object] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    _text(),
)


def _nested(depth: int) -> object:
    """An object ``depth`` levels deep (itself the first), alternating objects and arrays."""
    value: object = {}
    for level in range(depth - 1, 0, -1):
        value = {"k": value} if level % 2 else [value]
    return value


#: workerinfo: any JSON object of finite numbers and valid text, nesting at most 100 deep.
INFOS: St[Json] = st.one_of(
    st.dictionaries(
        _text(),
        st.recursive(
            _SCALARS,
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text(), inner, max_size=3),
            max_leaves=12,
        ),
        max_size=5,
    ),
    st.just({"host": "h1", "admin": None, "access_uri": None, "version": "4.3.0"}),
    st.just({"deep": _nested(MAX_DEPTH - 1)}),
    st.integers(-(10**300), 10**300).map(lambda n: {"big": n}),
)
BAD_INFOS: St[object] = st.one_of(
    st.sampled_from([[], "x", 1, None, True, [{}]]),
    st.just({"deep": _nested(MAX_DEPTH)}),
    st.integers(MAX_DEPTH + 1, 400).map(lambda d: {"deeper": _nested(d)}),
    _with_surrogate(st.just("k")).map(lambda k: {k: 1}),
    _with_surrogate(st.just("v")).map(lambda v: {"host": [v]}),
    st.just({"huge": Raw("1e400")}),
    st.just({"n": [Raw("-1e999")]}),
    st.integers(4_301, 20_000).map(lambda n: {"n": Raw("-" + "9" * n)}),
)
BUILDER_LISTS: St[list[int]] = st.lists(st.one_of(st.integers(1, 4), IDS), max_size=6)
BAD_BUILDER_LISTS: St[object] = st.one_of(
    st.sampled_from(["1", 1, {}, None, True, {"0": 1}]),
    st.tuples(BUILDER_LISTS, BAD_IDS).map(lambda t: [*t[0], t[1]]),
)
LIMITS: St[int] = st.integers(1, 10_000)
BAD_LIMITS: St[object] = st.sampled_from([0, -1, 10_001, True, 1.0, "5", [5], Raw("1e1")])
AFTERS: St[int] = st.one_of(st.integers(0, 10), st.integers(0, MAX_ID))
BAD_AFTERS: St[object] = st.sampled_from([-1, MAX_ID + 1, True, 1.0, "0", [0]])
#: getChanges' ``since``: an integer >= 0, however large (at or above now: an empty list).
SINCES: St[int] = st.one_of(st.integers(0, 20), st.integers(0, 10**30))
BAD_SINCES: St[object] = st.sampled_from([-1, True, 0.0, "0", None, [0], {}])
CHANGE_LIMITS: St[int] = st.integers(1, 1000)
BAD_CHANGE_LIMITS: St[object] = st.sampled_from([0, 1001, -5, False, 2.0, "10"])


@dataclass(frozen=True)
class Param:
    """One parameter: its valid and invalid values; optional ones also accept ``null``."""

    valid: St[Any]
    invalid: St[Any]
    required: bool = True


def _signatures(workers: St[int]) -> dict[str, dict[str, Param]]:
    """Every method's params (sections 2 and 5) over the given existing worker ids."""
    worker, master = Param(workers, BAD_IDS), Param(IDS, BAD_IDS)
    opt_id = Param(IDS, BAD_IDS, required=False)
    return {
        "ping": {},
        "getMasters": {},
        "findWorkerId": {"name": Param(NAMES, BAD_NAMES)},
        "getWorker": {
            "workerid": Param(st.one_of(workers, IDS), BAD_IDS, required=False),
            "name": Param(NAMES, BAD_NAMES, required=False),
            "masterid": opt_id,
            "builderid": opt_id,
        },
        "getWorkers": {
            "masterid": opt_id,
            "builderid": opt_id,
            "paused": Param(FLAGS, BAD_FLAGS, required=False),
            "graceful": Param(FLAGS, BAD_FLAGS, required=False),
            "limit": Param(LIMITS, BAD_LIMITS, required=False),
            "after": Param(AFTERS, BAD_AFTERS, required=False),
        },
        "workerConnected": {
            "workerid": worker,
            "masterid": master,
            "workerinfo": Param(INFOS, BAD_INFOS),
            "connection": Param(CONNECTIONS, BAD_CONNECTIONS, required=False),
        },
        "workerDisconnected": {
            "workerid": worker,
            "masterid": master,
            "connection": Param(CONNECTIONS, BAD_CONNECTIONS, required=False),
        },
        "workerConfigured": {
            "workerid": worker,
            "masterid": master,
            "builderids": Param(BUILDER_LISTS, BAD_BUILDER_LISTS),
        },
        "deconfigureAllWorkersForMaster": {"masterid": master},
        "set_worker_paused": {
            "workerid": worker,
            "paused": Param(FLAGS, BAD_FLAGS),
            "pause_reason": Param(REASONS, BAD_REASONS, required=False),
        },
        "set_worker_graceful": {"workerid": worker, "graceful": Param(FLAGS, BAD_FLAGS)},
        "masterHeartbeat": {
            "masterid": master,
            "name": Param(MASTER_NAMES, BAD_MASTER_NAMES, required=False),
        },
        "masterStopped": {"masterid": master},
        "getChanges": {
            "since": Param(SINCES, BAD_SINCES),
            "limit": Param(CHANGE_LIMITS, BAD_CHANGE_LIMITS, required=False),
        },
    }


# Params: valid, near-valid -------------------------------------------------------------


@st.composite
def _valid_params(draw: st.DrawFn, signature: Mapping[str, Param]) -> Json:
    params: Json = {}
    for name, param in signature.items():
        if param.required:
            params[name] = draw(param.valid)
        else:
            choice = draw(st.sampled_from(["absent", "null", "value", "value"]))
            if choice != "absent":
                params[name] = None if choice == "null" else draw(param.valid)
    return params


@st.composite
def _params_case(
    draw: st.DrawFn, method: str, signature: Mapping[str, Param], unknown_worker: int
) -> tuple[Json, str | None, str]:
    """Params for ``method`` and the code they must get (None: valid), with a label."""
    params = draw(_valid_params(signature))
    required = [n for n, p in signature.items() if p.required]
    defects = ["valid", "valid", "extra", "wrong"]
    if required:
        defects.append("missing")
    if method in WORKER_WRITES:
        defects.append("unknown_worker")
    defect = draw(st.sampled_from(defects))
    if defect == "extra":
        reserved = {*signature, "type"}
        key = draw(
            st.one_of(_text(), _with_surrogate(_text(max_size=3))).filter(
                lambda k: k not in reserved
            )
        )
        params[key] = draw(st.one_of(_SCALARS, st.just(Raw("[" * 500 + "]" * 500))))
        return params, "invalid_params", "extra"
    if defect == "wrong" and signature:
        name = draw(st.sampled_from(sorted(signature)))
        param = signature[name]
        # An explicit null is an optional param left out: valid, so never drawn as "wrong".
        params[name] = draw(param.invalid.filter(lambda v: param.required or v is not None))
        return params, "invalid_params", f"wrong {name}"
    if defect == "missing":
        del params[draw(st.sampled_from(required))]
        return params, "invalid_params", "missing"
    if defect == "unknown_worker":
        params["workerid"] = unknown_worker
        return params, "not_found", "unknown worker"
    return params, None, "valid"


# Events (section 4) ----------------------------------------------------------------------


def _envelope_garbage() -> St[tuple[bytes, str]]:
    """Bodies that are not a JSON object at all: always ``bad_request``."""

    def not_event(data: bytes) -> bool:
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            return True
        return not (isinstance(value, dict) and isinstance(value.get("type"), str))

    return st.one_of(
        st.binary(max_size=64).filter(not_event).map(lambda b: (b, "bytes")),
        st.sampled_from(
            [b"", b"null", b"[]", b"42", b'"x"', b"true", b"{", b"\xff", b"{}", b"[{}]"]
        ).map(lambda b: (b, "not an object")),
        st.integers(2_000, 200_000).map(lambda n: (b"[" * n + b"]" * n, "deep array")),
        st.integers(2_000, 100_000).map(lambda n: (b'{"a":' * n + b"1" + b"}" * n, "deep object")),
    )


@st.composite
def _valid_event(draw: st.DrawFn, workers: St[int]) -> tuple[Json, tuple[str, Json]]:
    kind = draw(st.sampled_from(sorted(EVENT_TYPES)))
    method = EVENT_TYPES[kind]
    params = draw(_valid_params(_signatures(workers)[method]))
    return {"type": kind, **params}, (method, params)


def _event_envelope_defects(workers: St[int]) -> St[tuple[bytes, str, str]]:
    """Valid events broken at the envelope: (body, code, label)."""
    valid = _valid_event(workers).map(lambda e: e[0])

    def without_type(event: Json) -> Json:
        return {k: v for k, v in event.items() if k != "type"}

    def utf8_broken(event: Json) -> bytes:
        body = encode(event)
        return body[:-1] + b',"x":"\xc0\xaf\xed\xa0\x80"}' if body.endswith(b"}") else b"\xff"

    return st.one_of(
        valid.map(without_type).map(lambda e: (encode(e), "bad_request", "no type")),
        st.tuples(valid, st.sampled_from([None, 7, True, [], {}, ["worker.graceful"], 1.5])).map(
            lambda t: (encode({**t[0], "type": t[1]}), "bad_request", "type not a string")
        ),
        valid.map(lambda e: (utf8_broken(e), "bad_request", "not UTF-8")),
        valid.map(lambda e: (b"\xef\xbb\xbf" + encode(e), "bad_request", "BOM")),
        valid.map(lambda e: (encode(e) + b" x", "bad_request", "trailing garbage")),
        valid.map(lambda e: (encode(e)[:-1], "bad_request", "truncated")),
        valid.map(lambda e: (encode({**e, "n": Raw("NaN")}), "bad_request", "NaN")),
        valid.map(lambda e: (encode([e]), "bad_request", "array of event")),
        valid.map(lambda e: (_padded(encode(e), MAX_BODY + 1), "bad_request", "over 1 MiB")),
        _envelope_garbage().map(lambda t: (t[0], "bad_request", t[1])),
    )


def _padded(body: bytes, size: int) -> bytes:
    """``body`` grown to ``size`` bytes with JSON whitespace before its closing brace."""
    return body[:-1] + b" " * (size - len(body)) + body[-1:]


_UNKNOWN_TYPES: St[str] = st.one_of(
    st.sampled_from(
        ["", "Worker.Connected", "worker.connected ", "workerConnected", "findWorkerId", "ping"]
    ),
    st.sampled_from(["worker.connected\x00", "worker.\u0441onnected", "x" * 200_000]),
    _with_surrogate(st.just("worker.")),
    _text(max_size=30).filter(lambda t: t not in EVENT_TYPES),
)


def _existing(workers: tuple[int, ...]) -> St[int]:
    """One of ``workers``, drawn so that the draw does not depend on how many there are.

    The pool grows between examples (``findWorkerId``); Hypothesis refuses a strategy
    whose choices change shape from one run to the next.
    """
    return st.integers(0, 2**16).map(lambda i: workers[i % len(workers)])


@st.composite
def event_cases(draw: st.DrawFn, workers: tuple[int, ...], unknown_worker: int) -> Case:
    """One event body: valid, near-valid, broken at the envelope, garbage, deep or huge."""
    pool = _existing(workers)
    kind = draw(st.sampled_from(["valid", "params", "params", "envelope", "unknown_type", "big"]))
    if kind == "envelope":
        return Case(*draw(_event_envelope_defects(pool)))
    if kind == "unknown_type":
        event, _ = draw(_valid_event(pool))
        return Case(encode({**event, "type": draw(_UNKNOWN_TYPES)}), "unknown_type", "unknown")
    event_type = draw(st.sampled_from(sorted(EVENT_TYPES)))
    method = EVENT_TYPES[event_type]
    signature = _signatures(pool)[method]
    if kind == "big":
        return _big_event(draw, event_type, method, signature)
    code: str | None
    if kind == "valid":
        params, code, label = draw(_valid_params(signature)), None, "valid"
    else:
        params, code, label = draw(_params_case(method, signature, unknown_worker))
    body = encode({"type": event_type, **params}, ascii_only=draw(st.booleans()))
    op = (method, params) if code is None else None
    return Case(body, code, f"{event_type}: {label}", op)


def _big_event(
    draw: st.DrawFn, event_type: str, method: str, signature: Mapping[str, Param]
) -> Case:
    """A valid event padded to exactly 1 MiB (applied) or one byte over (``bad_request``)."""
    params = draw(_valid_params(signature))
    body = encode({"type": event_type, **params})
    if draw(st.booleans()):
        return Case(_padded(body, MAX_BODY), None, "exactly 1 MiB", (method, params))
    return Case(_padded(body, MAX_BODY + 1), "bad_request", "1 MiB + 1")


# RPC (section 5) -------------------------------------------------------------------------

_UNKNOWN_METHODS: St[str] = st.one_of(
    st.sampled_from(["", "GetWorkers", "getworkers", "worker.connected", "__init__", "ping "]),
    st.sampled_from(["ping\x00", "m" * 200_000, "getWorkers\n"]),
    _with_surrogate(st.just("get")),
    _text(max_size=30),
)


@st.composite
def rpc_cases(draw: st.DrawFn, workers: tuple[int, ...], unknown_worker: int) -> Case:
    """One request body: valid, near-valid, a bad envelope, an unknown method, garbage."""
    pool = _existing(workers)
    signatures = _signatures(pool)
    kind = draw(st.sampled_from(["params", "params", "params", "envelope", "unknown_method"]))
    if kind == "envelope":
        return draw(_rpc_envelope_defects(signatures))
    if kind == "unknown_method":
        method = draw(_UNKNOWN_METHODS.filter(lambda m: m not in signatures))
        request: Json = {"method": method}
        if draw(st.booleans()):
            request["params"] = draw(_valid_params(signatures["ping"]))
        return Case(encode(request), "unknown_method", "unknown method")
    method = draw(st.sampled_from(sorted(signatures)))
    params, code, label = draw(_params_case(method, signatures[method], unknown_worker))
    request = {"method": method, "params": params}
    if not params and draw(st.booleans()):
        del request["params"]  # section 5: params may be omitted when empty
    if draw(st.booleans()):
        request["jsonrpc"] = "2.0"  # registryd's reading: other top-level members are ignored
    body = encode(request, ascii_only=draw(st.booleans()))
    return Case(body, code, f"{method}: {label}", (method, params) if code is None else None)


def _rpc_envelope_defects(signatures: Mapping[str, Mapping[str, Param]]) -> St[Case]:
    def bad(body: bytes, label: str) -> Case:
        return Case(body, "bad_request", label)

    method = st.sampled_from(sorted(signatures))
    return st.one_of(
        st.sampled_from([None, 1, True, [], {}, ["ping"]]).map(
            lambda m: bad(encode({"method": m}), "method not a string")
        ),
        st.just(bad(encode({"params": {}}), "no method")),
        st.tuples(method, st.sampled_from([None, [], "x", 1, True, [{}]])).map(
            lambda t: bad(encode({"method": t[0], "params": t[1]}), "params not an object")
        ),
        method.map(lambda m: bad(_padded(encode({"method": m}), MAX_BODY + 1), "over 1 MiB")),
        method.map(lambda m: bad(encode({"method": m, "n": Raw("Infinity")}), "Infinity")),
        method.map(lambda m: bad(encode({"method": m})[:-1] + b',"x":"\xed\xa0\x80"}', "UTF-8")),
        _envelope_garbage().map(lambda t: bad(t[0], t[1])),
    )
