"""The client decodes replies with pydantic-core's parser: always as ``json.loads`` would."""

from __future__ import annotations

import gc
import json

import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

from registryd.client import _collector_held, _result, decode_json
from registryd.errors import Internal

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text()
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


def _same(body: bytes) -> None:
    """``decode_json`` and ``json.loads`` give values of the same types, keys and order."""
    assert repr(decode_json(body)) == repr(json.loads(body))


@given(_VALUES, st.booleans())
def test_any_json_decodes_as_json_loads(value: object, ascii_only: bool) -> None:
    """Escaped or raw UTF-8, any value decodes to the same types, keys and order."""
    try:
        body = json.dumps(value, ensure_ascii=ascii_only).encode()
    except UnicodeEncodeError:
        reject()  # a raw lone surrogate is not UTF-8: no reply holds one
    _same(body)


@pytest.mark.parametrize(
    "body",
    [
        b'"\\ud800"',  # a lone surrogate escape: jiter refuses it, json.loads takes it
        b'{"a":"\\udfff x"}',
        b"[" * 250 + b"]" * 250,  # deeper than jiter's 200
        b"[NaN, Infinity, -Infinity, 1e400, -0.0, 123456789012345678901234567890]",
        b'{"a":1,"a":2}',
        b'{"ok":true,"result":[{"id":1,"name":"w","workerinfo":{"x":[1.5,"\\u00e9"]}}]}',
    ],
)
def test_what_jiter_refuses_still_decodes(body: bytes) -> None:
    """What jiter refuses (lone surrogate escapes, deep nesting) goes to ``json.loads``."""
    _same(body)


@pytest.mark.parametrize("body", [b"", b"{", b'{"a":}', b"\xff\xfe", b"[1] x"])
def test_not_json_is_an_internal_error(body: bytes) -> None:
    """What neither decoder takes raises ``ValueError``, which the client makes ``internal``."""
    with pytest.raises(Internal, match="the reply is not JSON"):
        _result("getWorkers", body)


def test_the_collector_is_held_off_and_given_back() -> None:
    """Off during a decode, on again after it, also after a failed one."""
    assert gc.isenabled()
    with _collector_held():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(Internal):
        _result("getWorkers", b"{")
    assert gc.isenabled()


def test_a_collector_already_off_stays_off() -> None:
    """A program that turned the collector off keeps it off."""
    gc.disable()
    try:
        decode_json(b"[1]")
        assert not gc.isenabled()
    finally:
        gc.enable()
