"""aio-pika helpers shared by the daemon, the client and the operator commands.

- :data:`BROKER_ERRORS`: what aio-pika and aiormq raise when RabbitMQ is lost or
  refuses. Channel state errors are ``RuntimeError`` subclasses in aio-pika and socket
  errors are ``OSError``: neither is an ``AMQPError``, so catching that alone misses them.
- :func:`copy_message`: a delivered message copied into a new one, for the dead queue
  and for replays.
"""

from __future__ import annotations

from typing import Final

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage, HeadersType
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

__all__ = ["BROKER_ERRORS", "copy_message"]

BROKER_ERRORS: Final = (AMQPError, ChannelInvalidStateError, OSError)


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
