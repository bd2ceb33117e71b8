"""Refusal messages quote what a client sent, bounded: they go into headers, replies and logs."""

from __future__ import annotations

import pytest

from registryd.errors import InvalidParams, UnknownMethod, UnknownType, quote
from registryd.models import parse_params
from registryd.models.ops import GetWorkers
from registryd.models.wire import parse_event, parse_request
from registryd.protocol import MAX_REJECTED, rejected_at, rejected_message


def test_quote_keeps_a_short_value_as_its_repr() -> None:
    """A short value is quoted whole, as ``repr`` writes it."""
    assert "'worker.bogus'" == quote("worker.bogus")


def test_quote_cuts_a_long_value_and_says_how_long_it_was() -> None:
    """A 200,000-character value is cut to about 100 characters, with its length."""
    quoted = quote("x" * 200_000)
    assert quoted.endswith("... (200000 characters)")
    assert len(quoted) < 130


def test_quote_escapes_a_lone_surrogate() -> None:
    """A lone surrogate comes out escaped, so the message can be encoded as UTF-8."""
    quoted = quote("get\udfff")
    quoted.encode()
    assert "\\udfff" in quoted


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"type": "' + b"x" * 200_000 + b'"}', UnknownType),
        (b'{"method": "' + b"m" * 200_000 + b'"}', UnknownMethod),
    ],
    ids=["event-type", "method"],
)
def test_an_overlong_name_is_quoted_cut_short(body: bytes, error: type[Exception]) -> None:
    """An unknown type or method of 200,000 characters gives a message of a few hundred."""
    parse = parse_event if error is UnknownType else parse_request
    with pytest.raises(error) as raised:
        parse(body)
    assert len(str(raised.value)) < 400


def test_an_overlong_unknown_param_is_named_cut_short() -> None:
    """invalid_params names a 200,000-character unknown param by a short quote."""
    with pytest.raises(InvalidParams) as raised:
        parse_params(GetWorkers, {"k" * 200_000: 1})
    assert "(200000 characters): is not allowed here" in str(raised.value)


def test_a_dead_letters_message_is_cut_and_keeps_its_time() -> None:
    """Over MAX_REJECTED characters the message is cut; the time of rejection still ends it."""
    message = rejected_message("y" * (MAX_REJECTED * 10))
    assert len(message) < MAX_REJECTED + 100
    assert rejected_at(message) is not None
