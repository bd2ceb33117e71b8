"""Copying a delivered message into a new one, for the dead queue and for replays."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, HeadersType

__all__ = ["copy_message"]


def copy_message(message: AbstractIncomingMessage, headers: HeadersType) -> aio_pika.Message:
    """The same body and properties with other ``headers``, and without ``user_id``.

    RabbitMQ refuses a ``user_id`` that is not the publishing connection's own user, so
    the copy never carries one; callers keep it in a header where it matters.
    """
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=message.delivery_mode,
        priority=message.priority,
        correlation_id=message.correlation_id,
        reply_to=message.reply_to,
        expiration=message.expiration,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )
