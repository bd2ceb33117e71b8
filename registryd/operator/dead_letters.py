"""``dead-letters``: list, replay or drop the events registryd refused."""

from __future__ import annotations

from collections.abc import Sequence

from aio_pika import Message
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aio_pika.exceptions import ChannelNotFoundEntity
from aio_pika.exceptions import PublishError as Unroutable

from registryd.broker import BROKER_ERRORS, copy_message
from registryd.client import RegistryClient
from registryd.errors import Unavailable
from registryd.operator.common import TIMEOUT, DeadLetterAction, Echo
from registryd.operator.format import (
    dead_letter_record,
    dead_letter_text,
    replay_headers,
    replay_routing_key,
    to_json,
)


async def dead_letters(
    client: RegistryClient,
    action: DeadLetterAction,
    limit: int,
    *,
    as_json: bool,
    echo: Echo,
    note: Echo,
) -> None:
    """``dead-letters``: list (and leave), replay or drop the messages of ``<prefix>.dead``.

    Up to ``limit`` messages, and none that arrive after the start, are taken with
    basic.get and no auto-ack, so they stay the queue's until the end: a list requeues
    them all at once (RabbitMQ puts them back in their places, marked redelivered;
    another consumer of the dead queue meanwhile could change their order, and while
    held they are invisible to it); a crash requeues them the same way. A replay
    publishes each to ``<prefix>.events`` with publisher confirms and acks it from the
    dead queue only once confirmed; one that fails stops the replay, and it and the
    rest stay dead letters. A drop acks (deletes) them.
    """
    names = client.names
    channel = await client.connection.channel(on_return_raises=True)
    try:
        queue = await _dead_queue(channel, names.dead, names.prefix)
        total = queue.declaration_result.message_count or 0
        taken = await _take(queue, min(limit, total))
        records = [
            dead_letter_record(m.body, m.headers or {}, m.message_id, m.routing_key) for m in taken
        ]
        if as_json:
            echo(to_json(records))
        else:
            for number, record in enumerate(records, 1):
                echo(dead_letter_text(number, record))
        await _settle(channel, taken, action, names.events)
        summary = {
            "list": f"listed {len(taken)} of {total} dead letters in {names.dead} (left there)",
            "replay": f"replayed {len(taken)} of {total} dead letters from {names.dead} "
            f"to {names.events}",
            "drop": f"dropped {len(taken)} of {total} dead letters from {names.dead}",
        }[action]
        (note if as_json else echo)(summary)
    finally:
        if not channel.is_closed:
            await channel.close()


async def _dead_queue(channel: AbstractChannel, name: str, prefix: str) -> AbstractQueue:
    try:
        return await channel.declare_queue(name, passive=True)
    except ChannelNotFoundEntity:
        raise Unavailable(
            f"queue {name} does not exist; has registryd run with prefix {prefix!r}?"
        ) from None


async def _take(queue: AbstractQueue, count: int) -> list[AbstractIncomingMessage]:
    taken: list[AbstractIncomingMessage] = []
    while len(taken) < count:
        message = await queue.get(no_ack=False, fail=False, timeout=TIMEOUT)
        if message is None:
            break
        taken.append(message)
    return taken


async def _settle(
    channel: AbstractChannel,
    taken: Sequence[AbstractIncomingMessage],
    action: DeadLetterAction,
    events: str,
) -> None:
    """Requeue, replay or ack what was taken (one frame where RabbitMQ allows)."""
    if not taken:
        return
    if action == "list":
        await taken[-1].nack(multiple=True, requeue=True)
    elif action == "drop":
        await taken[-1].ack(multiple=True)
    else:
        await _replay(channel, taken, events)


async def _replay(
    channel: AbstractChannel, taken: Sequence[AbstractIncomingMessage], events: str
) -> None:
    exchange = await channel.get_exchange(events, ensure=False)
    for done, message in enumerate(taken):
        try:
            await exchange.publish(_replayed(message), _routing_key(message), mandatory=True)
        except (Unroutable, *BROKER_ERRORS) as exc:
            if not channel.is_closed:
                await taken[-1].nack(multiple=True, requeue=True)
            raise Unavailable(
                f"replay stopped after {done} of {len(taken)}: {events} did not take "
                f"message_id={message.message_id}: {exc!r}; the rest are still dead letters"
            ) from None
        await message.ack()


def _routing_key(message: AbstractIncomingMessage) -> str:
    return replay_routing_key(message.body, message.routing_key or "")


def _replayed(message: AbstractIncomingMessage) -> Message:
    """The dead letter as its master sent it: same properties, verdict headers dropped."""
    return copy_message(message, replay_headers(message.headers or {}))
