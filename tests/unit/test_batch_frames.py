"""The relay's frames are pamqp's, byte for byte; expiry passes follow the leases."""

from __future__ import annotations

import pytest
from pamqp import commands as spec
from pamqp import frame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from registryd.amqp.batch import encode_publish
from registryd.daemon import _next_pass

PROPERTIES = spec.Basic.Properties(content_type="application/json", delivery_mode=2)


def _pamqp(channel: int, exchange: str, key: str, body: bytes, max_content: int) -> bytes:
    frames: list[frame.FrameTypes] = [
        spec.Basic.Publish(exchange=exchange, routing_key=key),
        ContentHeader(properties=PROPERTIES, body_size=len(body)),
    ]
    frames += [ContentBody(body[i : i + max_content]) for i in range(0, len(body), max_content)]
    return b"".join(frame.marshal(f, channel) for f in frames)


@pytest.mark.parametrize(
    ("channel", "key", "body"),
    [
        (1, "workers.30.connected", b'{"revision": 1}'),
        (7, "masters.10.expired", b""),
        (65535, "registry.reset", "é".encode() * 700),
        (3, "workers." + "9" * 240 + ".new", b"x" * 1000),
        (2, "workers.1.configured", b"y" * 2500),
    ],
)
def test_encode_publish_is_pamqps_marshalling(channel: int, key: str, body: bytes) -> None:
    """Method, content header and body frames (split at the frame size) as pamqp writes them."""
    header = frame.marshal(ContentHeader(properties=PROPERTIES, body_size=0), channel)
    mine = encode_publish(channel, "p.notifications", key, body, header=header, max_content=1000)
    assert _pamqp(channel, "p.notifications", key, body, 1000) == mine


def test_encode_publish_refuses_a_routing_key_over_255_bytes() -> None:
    """A key AMQP cannot carry is a clear error, not a corrupt frame."""
    header = frame.marshal(ContentHeader(properties=PROPERTIES, body_size=0), 1)
    with pytest.raises(ValueError, match="255"):
        encode_publish(1, "x", "k" * 256, b"", header=header, max_content=1000)


@pytest.mark.parametrize(
    ("expired", "lease_end", "wait"),
    [
        (0, None, 1.0),  # no lease: the regular pass
        (0, 5.0, 1.0),  # the earliest lease ends after the next regular pass
        (0, 0.25, 0.252),  # ... before it: a pass just after it ends
        (0, -3.0, 0.002),  # already ended (after this pass began): a pass at once
        (100, 5.0, 0.0),  # a full pass: more may be due
    ],
)
def test_next_expiry_pass(expired: int, lease_end: float | None, wait: float) -> None:
    """Passes run at the earliest lease end (just after: it must be past), at most 1 s apart."""
    assert wait == pytest.approx(_next_pass(1.0, expired, lease_end))
