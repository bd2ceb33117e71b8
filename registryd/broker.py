"""aio-pika helpers shared by the daemon, the client and the operator commands.

- :data:`BROKER_ERRORS`: what aio-pika and aiormq raise when RabbitMQ is lost or
  refuses. Channel state errors are ``RuntimeError`` subclasses in aio-pika and socket
  errors are ``OSError``: neither is an ``AMQPError``, so catching that alone misses them.
- :func:`copy_message`: a delivered message copied into a new one, for the dead queue
  and for replays.
- :func:`broker_urls` and :func:`connect_in_turn`: a cluster's nodes given as one
  setting (``amqp://a/,amqp://b/``), tried one after the other, each attempt logged.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping, Sequence
from typing import Any, Final

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, HeadersType
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from registryd.logs import mask
from registryd.tls import uses_tls

__all__ = ["BROKER_ERRORS", "broker_urls", "connect_in_turn", "connection_lost", "copy_message"]

log = structlog.get_logger(__name__)

BROKER_ERRORS: Final = (AMQPError, ChannelInvalidStateError, OSError)

#: A comma that starts the next URL. A comma is legal inside a URL's password, so the
#: list is cut only before a scheme: ``amqp://u:a,b@h/`` stays one URL.
_NEXT_URL: Final = re.compile(r"\s*,\s*(?=[a-zA-Z][a-zA-Z0-9+.-]*://)")


def broker_urls(urls: str | Sequence[str]) -> tuple[str, ...]:
    """The nodes of a setting: one URL, several separated by commas, or a sequence.

    Empty items (a trailing comma) are dropped; the order is kept: it is the order in
    which a first connection tries them.
    """
    items = _NEXT_URL.split(urls.strip(", \t\n")) if isinstance(urls, str) else list(urls)
    return tuple(url.strip() for url in items if url.strip())


def connection_lost(connection: AbstractConnection) -> bool:
    """Whether the broker or the network closed ``connection`` (or it never opened).

    aio-pika's ``is_closed`` only says whether the application closed it; a channel
    opened on a connection the broker closed fails with a bare ``RuntimeError``.
    """
    transport = connection.transport
    return connection.is_closed or transport is None or transport.connection.is_closed


async def connect_in_turn(
    urls: Sequence[str],
    *,
    first: int = 0,
    timeout: float,  # noqa: ASYNC109 - aio-pika's own per-attempt timeout
    client_properties: Mapping[str, Any] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[AbstractConnection, int]:
    """Connect to the first node that answers, from ``urls[first]`` round the list.

    Each attempt is logged (the password masked); an unreachable node costs at most
    ``timeout`` seconds. Returns the connection and the index of its URL (where the
    next round should not start); raises the last node's error when none answers.
    ``ssl_context`` is used for the ``amqps://`` nodes.
    """
    if not urls:
        raise ValueError("no RabbitMQ URL given")
    error: BaseException | None = None
    for step in range(len(urls)):
        index = (first + step) % len(urls)
        url = urls[index]
        try:
            connection = await aio_pika.connect(
                url,
                timeout=timeout,
                client_properties=dict(client_properties or {}),
                ssl_context=ssl_context if uses_tls(url) else None,
            )
        except (*BROKER_ERRORS, TimeoutError) as exc:
            error = exc
            if len(urls) > 1:
                log.warning("RabbitMQ node did not answer", url=mask(url), error=repr(exc))
            continue
        if len(urls) > 1:
            log.info("connected to RabbitMQ", url=mask(url), node=index + 1, nodes=len(urls))
        return connection, index
    assert error is not None
    raise error


class _Copy(aio_pika.Message):
    """A message that sends its ``expiration`` as the text it arrived with.

    aio-pika turns the wire's milliseconds into float seconds and back with truncation,
    so "2097151" would leave as "2097150"; the copy must keep it to the millisecond.
    """

    _expiration_ms: str | None = None

    @property
    def properties(self) -> aiormq.spec.Basic.Properties:
        """The properties to publish, with the exact expiration."""
        props = super().properties
        props.expiration = self._expiration_ms
        return props


def copy_message(message: AbstractIncomingMessage, headers: HeadersType) -> aio_pika.Message:
    """The same body and properties with other ``headers``, and without ``user_id``.

    RabbitMQ refuses a ``user_id`` that is not the publishing connection's own user, so
    the copy never carries one; callers keep it in a header where it matters.
    """
    copy = _Copy(
        message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=message.delivery_mode,
        priority=message.priority,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )
    seconds = message.expiration  # a delivered message's is always float seconds
    if isinstance(seconds, int | float):  # whole milliseconds on the wire: round, don't cut
        copy._expiration_ms = str(round(seconds * 1000))
    return copy
