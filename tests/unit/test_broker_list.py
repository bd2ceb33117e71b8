"""A RabbitMQ cluster's nodes in one setting: how the list is read and checked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from registryd.broker import broker_urls
from registryd.config import load_settings
from registryd.errors import ConfigError

A = "amqp://ci:secret@mq-1.example.org:5672/ci"
B = "amqps://ci:secret@mq-2.example.org:5671/ci"
C = "amqp://ci:secret@mq-3.example.org/ci"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No REGISTRYD_* variable of the machine leaks into these tests."""
    for key in list(os.environ):
        if key.startswith("REGISTRYD_"):
            monkeypatch.delenv(key)


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        (A, (A,)),
        (f"{A},{B},{C}", (A, B, C)),
        (f" {A} , {B} ,", (A, B)),
        # A comma inside a password is not a separator: only one before a scheme is.
        ("amqp://u:p,q@h/,amqp://u:p,q@k/", ("amqp://u:p,q@h/", "amqp://u:p,q@k/")),
        ("", ()),
    ],
)
def test_a_comma_separated_list_is_split_before_each_scheme(
    text: str, urls: tuple[str, ...]
) -> None:
    """The order is kept: it is the order a first connection tries them in."""
    assert urls == broker_urls(text)


def test_the_variable_takes_a_list_of_nodes() -> None:
    """REGISTRYD_AMQP_URL with three URLs: amqp_urls has them in order."""
    settings = load_settings(environ={"REGISTRYD_AMQP_URL": f"{A},{B},{C}"})
    assert (A, B, C) == settings.amqp_urls


def test_a_toml_array_is_the_same_list(tmp_path: Path) -> None:
    """`url = [a, b]` in the file reads as the comma-separated text."""
    config = tmp_path / "registryd.toml"
    config.write_text(f'[amqp]\nurl = ["{A}", "{B}"]\n', encoding="utf-8")
    settings = load_settings(config, environ={})
    assert ((A, B), f"{A},{B}") == (settings.amqp_urls, settings.amqp_url)


def test_every_node_url_is_checked_and_shown_masked() -> None:
    """A wrong scheme anywhere in the list is an error that shows no password."""
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"REGISTRYD_AMQP_URL": f"{A},http://ci:secret@mq-2/"})
    message = str(caught.value)
    assert "must be a URL starting amqp:// or amqps://, not http://" in message
    assert "secret" not in message


def test_an_empty_list_is_refused() -> None:
    """Commas alone name no broker."""
    with pytest.raises(ConfigError, match="must name at least one URL"):
        load_settings(environ={"REGISTRYD_AMQP_URL": " , "})
