"""Publishing a batch of messages with confirms in one write, through aiormq directly.

aio-pika's ``Exchange.publish`` builds a message object, marshals three frames with
pamqp, queues them for aiormq's writer and waits for that write, one message at a time:
at a few thousand notifications a second that is most of the relay's time. Here the
frames of a whole batch are encoded up front into one buffer (the content header is
pamqp's, marshalled once; only its body size differs from message to message), handed
to the connection's writer at once (one socket write), and the batch's confirms are
awaited together. Delivery tags are taken under the channel's lock, in the order the
frames are written, so the broker confirms exactly the messages aiormq expects.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence

import aiormq
import structlog
from aiormq.abc import ChannelFrame
from pamqp import commands as spec
from pamqp import frame as pamqp_frame
from pamqp.constants import FRAME_END
from pamqp.header import ContentHeader

__all__ = ["BatchPublisher", "encode_ack", "encode_publish", "header_frame"]

log = structlog.get_logger(__name__)

_METHOD_FRAME, _BODY_FRAME = 1, 3
_FRAME_HEADER = struct.Struct(">BHI")
#: ``Basic.Publish``'s method id (class 60, method 40) and its reserved ticket (0).
_PUBLISH = struct.pack(">HHH", 60, 40, 0)
#: Offset and width of ``body_size`` in a marshalled content-header frame: after the
#: frame header (type, channel, size: 7 bytes), the class id and the weight (2 + 2).
_BODY_SIZE_AT = 11
_BODY_SIZE = struct.Struct(">Q")
_END = bytes([FRAME_END])
_MAX_SHORTSTR = 255


def _shortstr(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > _MAX_SHORTSTR:
        raise ValueError(f"AMQP short string over {_MAX_SHORTSTR} bytes: {text[:40]!r}...")
    return bytes([len(raw)]) + raw


def header_frame(channel_number: int, properties: spec.Basic.Properties) -> bytes:
    """The content-header frame of ``properties``, ``body_size`` 0 (see :func:`encode_publish`)."""
    header = ContentHeader(properties=properties, body_size=0)
    return pamqp_frame.marshal(header, channel_number)


def encode_ack(channel_number: int, delivery_tag: int) -> bytes:
    """The frame of a ``Basic.Ack`` of one delivery."""
    return pamqp_frame.marshal(spec.Basic.Ack(delivery_tag=delivery_tag), channel_number)


def encode_publish(
    channel_number: int,
    exchange: str,
    routing_key: str,
    body: bytes,
    *,
    header: bytes,
    max_content: int,
    then: bytes = b"",
) -> bytes:
    """The frames of one ``Basic.Publish`` (method, content header, bodies), as bytes.

    ``header`` is the content-header frame marshalled by pamqp with ``body_size`` 0
    (the properties are the same for every message); ``max_content`` is the largest
    body frame's payload the connection allows; ``then`` (frames to follow, an ack) is
    appended. The body is copied once, into the result: a reply of megabytes is
    sliced into frames through a memoryview.
    """
    method = _PUBLISH + _shortstr(exchange) + _shortstr(routing_key) + b"\x00"
    parts: list[bytes | memoryview] = [
        _FRAME_HEADER.pack(_METHOD_FRAME, channel_number, len(method)),
        method,
        _END,
        header[:_BODY_SIZE_AT],
        _BODY_SIZE.pack(len(body)),
        header[_BODY_SIZE_AT + _BODY_SIZE.size :],
    ]
    view = memoryview(body)
    for start in range(0, len(body), max_content):
        chunk = view[start : start + max_content]
        parts += (_FRAME_HEADER.pack(_BODY_FRAME, channel_number, len(chunk)), chunk, _END)
    parts.append(then)
    return b"".join(parts)


class BatchPublisher:
    """Publishes batches to one exchange on a channel in confirm mode (not mandatory)."""

    def __init__(
        self,
        channel: aiormq.Channel,
        exchange: str,
        properties: spec.Basic.Properties,
        *,
        confirm_timeout: float = 5.0,
        confirm_patience: float = 60.0,
    ) -> None:
        if not channel.publisher_confirms:
            raise ValueError("a batch publisher needs a channel in confirm mode")
        self.channel = channel
        self.exchange = exchange
        self.confirm_timeout = confirm_timeout
        #: How long confirms may be slow, on an open channel, before the batch fails.
        self.confirm_patience = confirm_patience
        self._header = header_frame(channel.number, properties)

    def encode(self, messages: Sequence[tuple[str, bytes]]) -> bytes:
        """Every message's frames, in order, as one buffer."""
        number, exchange = self.channel.number, self.exchange
        header, max_content = self._header, self.channel.max_content_size
        return b"".join(
            encode_publish(number, exchange, key, body, header=header, max_content=max_content)
            for key, body in messages
        )

    async def publish(self, messages: Sequence[tuple[str, bytes]]) -> None:
        """Publish ``(routing key, body)`` pairs in order; return once all are confirmed.

        Raises what aiormq raises for a nack (``DeliveryError``) or a closed channel, and
        ``TimeoutError`` when the confirms take longer than :attr:`confirm_timeout` s.
        """
        await self.confirmed(await self.send(messages))

    async def send(self, messages: Sequence[tuple[str, bytes]]) -> list[asyncio.Future[object]]:
        """Queue the frames of ``messages``, in order; their confirms, for :meth:`confirmed`.

        Batches sent one after another reach the broker in that order, so a caller may
        send the next batch before the previous one is confirmed.
        """
        if not messages:
            return []
        async with asyncio.timeout(self.confirm_timeout):
            return await self._write(self.encode(messages), len(messages))

    async def confirmed(self, confirmations: list[asyncio.Future[object]]) -> None:
        """Return once every confirm of a batch :meth:`send` queued came back (as ``publish``).

        Slow confirms on an open channel are waited for, with a warning every
        :attr:`confirm_timeout` s, up to :attr:`confirm_patience` s: a busy broker must not
        end the session (the next one would send the same batch again, and be as slow).
        A closed channel or connection fails the confirms at once (aiormq's doing); only
        a broker that holds them longer than the patience raises ``TimeoutError``.
        """
        if not confirmations:
            return
        # Confirms come back in order nearly always: one wait for the last, then the
        # rest are done (a nack among them raises from ``result``).
        await self._patiently(confirmations[-1], confirmations)
        for confirmation in confirmations:
            if not confirmation.done():
                await self._patiently(confirmation, confirmations)
            confirmation.result()

    async def _patiently(
        self, confirmation: asyncio.Future[object], batch: list[asyncio.Future[object]]
    ) -> None:
        waited = 0.0
        while True:
            # asyncio.wait, not a timeout: a timeout would cancel aiormq's future.
            done, _ = await asyncio.wait({confirmation}, timeout=self.confirm_timeout)
            if done:
                return
            waited += self.confirm_timeout
            pending = sum(not c.done() for c in batch)
            if waited >= self.confirm_patience:
                raise TimeoutError(
                    f"{pending} publisher confirms not back after {waited:.0f} s on an open channel"
                )
            log.warning(
                "publisher confirms are slow; still waiting", seconds=waited, pending=pending
            )

    async def _write(self, payload: bytes, count: int) -> list[asyncio.Future[object]]:
        """Take ``count`` delivery tags and queue the frames, as one step under the lock."""
        channel = self.channel
        async with channel.lock:
            first = channel.delivery_tag + 1
            confirmations: list[asyncio.Future[object]] = []
            for tag in range(first, first + count):
                confirmation = channel.create_future()
                channel.confirmations[tag] = confirmation
                confirmations.append(confirmation)
            channel.delivery_tag += count
            try:
                await channel.write_queue.put(ChannelFrame(payload=payload, should_close=False))
            except BaseException:
                # Nothing reached the broker: give the tags back, as aiormq does.
                channel.delivery_tag -= count
                for tag, confirmation in enumerate(confirmations, first):
                    channel.confirmations.pop(tag, None)
                    confirmation.cancel()
                raise
        return confirmations
