"""``dead-letters``: list, replay or drop the events registryd refused."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Final

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
from registryd.errors import NotFound, Unavailable
from registryd.operator.common import TIMEOUT, Confirm, DeadLetterAction, Echo, Refused, ask
from registryd.operator.format import (
    dead_letter_record,
    dead_letter_text,
    replay_headers,
    replay_routing_key,
    to_json,
)
from registryd.protocol import Names


async def dead_letters(
    client: RegistryClient,
    action: DeadLetterAction,
    limit: int,
    *,
    message_ids: Collection[str] = (),
    confirm: Confirm | None = None,
    as_json: bool,
    echo: Echo,
    note: Echo,
) -> None:
    """``dead-letters``: list (and leave), replay or drop the messages of ``<prefix>.dead``.

    Needs no daemon: it reads the dead queue, and a replay publishes to the events
    exchange, where the events wait for a daemon. Up to ``limit`` messages, and none
    that arrive after the start, are taken with basic.get and no auto-ack, so they stay
    the queue's until the end: a list requeues them all at once (RabbitMQ puts them
    back in their places, marked redelivered; another consumer of the dead queue
    meanwhile could change their order, and while held they are invisible to it); a
    crash requeues them the same way. ``message_ids`` narrows the action to those
    (all must be among the taken, else :class:`NotFound` and nothing is done).
    ``confirm`` is asked before a replay or drop (``None``: no question); a "no" is
    :class:`Refused` and nothing is done. A replay publishes each to
    ``<prefix>.events`` with publisher confirms and acks it from the dead queue only
    once confirmed; one that fails stops the replay, and it and the rest stay dead
    letters. A drop acks (deletes) them.
    """
    names = client.names
    channel = await client.connection.channel(on_return_raises=True)
    try:
        queue = await _dead_queue(channel, names.dead, names.prefix)
        total = queue.declaration_result.message_count or 0
        taken = await _take(queue, min(limit, total))
        chosen = await _choose(taken, message_ids, total)
        _show(chosen, as_json=as_json, echo=echo)
        if action != "list" and chosen and confirm is not None:
            question = _QUESTIONS[action].format(count=len(chosen), names=names)
            if not await ask(confirm, question):
                await _requeue(taken)
                raise Refused(f"not confirmed: nothing {_PAST[action]} (--yes skips the question)")
        await _settle(channel, taken, chosen, action, names.events)
        (note if as_json else echo)(_summary(action, len(chosen), total, names))
    finally:
        if not channel.is_closed:
            await channel.close()


_QUESTIONS: Final = {
    "replay": "Replay {count} dead letters of {names.dead} to {names.events}?",
    "drop": "Drop (delete for good) {count} dead letters of {names.dead}?",
}
_PAST: Final = {"list": "listed", "replay": "replayed", "drop": "dropped"}


def _summary(action: DeadLetterAction, done: int, total: int, names: Names) -> str:
    return {
        "list": f"listed {done} of {total} dead letters in {names.dead} (left there)",
        "replay": f"replayed {done} of {total} dead letters from {names.dead} to {names.events}",
        "drop": f"dropped {done} of {total} dead letters from {names.dead}",
    }[action]


def _show(chosen: Sequence[AbstractIncomingMessage], *, as_json: bool, echo: Echo) -> None:
    records = [
        dead_letter_record(m.body, m.headers or {}, m.message_id, m.routing_key) for m in chosen
    ]
    if as_json:
        echo(to_json(records))
    else:
        for number, record in enumerate(records, 1):
            echo(dead_letter_text(number, record))


async def _choose(
    taken: list[AbstractIncomingMessage], message_ids: Collection[str], total: int
) -> list[AbstractIncomingMessage]:
    """The taken messages the action is for: all, or those with the given ids."""
    if not message_ids:
        return taken
    chosen = [m for m in taken if m.message_id in message_ids]
    missing = sorted(set(message_ids) - {m.message_id for m in chosen})
    if missing:
        await _requeue(taken)
        raise NotFound(
            f"no dead letter with message_id {', '.join(missing)} among the {len(taken)} "
            f"taken of {total} (--limit takes more); nothing was done"
        )
    return chosen


async def _requeue(taken: Sequence[AbstractIncomingMessage]) -> None:
    if taken:
        await taken[-1].nack(multiple=True, requeue=True)


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
    chosen: Sequence[AbstractIncomingMessage],
    action: DeadLetterAction,
    events: str,
) -> None:
    """Requeue, replay or ack what was taken (one frame where RabbitMQ allows)."""
    if action == "list" or not chosen:
        await _requeue(taken)
        return
    if action == "replay":
        await _replay(channel, chosen, events, taken[-1])
    elif len(chosen) == len(taken):
        await taken[-1].ack(multiple=True)
    else:
        for message in chosen:
            await message.ack()
    chosen_tags = {m.delivery_tag for m in chosen}
    for message in taken:
        if message.delivery_tag not in chosen_tags:
            await message.nack(requeue=True)


async def _replay(
    channel: AbstractChannel,
    chosen: Sequence[AbstractIncomingMessage],
    events: str,
    last: AbstractIncomingMessage,
) -> None:
    exchange = await channel.get_exchange(events, ensure=False)
    for done, message in enumerate(chosen):
        try:
            await exchange.publish(_replayed(message), _routing_key(message), mandatory=True)
        except (Unroutable, *BROKER_ERRORS) as exc:
            if not channel.is_closed:
                await last.nack(multiple=True, requeue=True)
            raise Unavailable(
                f"replay stopped after {done} of {len(chosen)}: {events} did not take "
                f"message_id={message.message_id}: {exc!r}; the rest are still dead letters"
            ) from None
        await message.ack()


def _routing_key(message: AbstractIncomingMessage) -> str:
    """The key the event was first published with (the dead letter keeps it), else its type."""
    return replay_routing_key(message.body, message.routing_key or "")


def _replayed(message: AbstractIncomingMessage) -> Message:
    """The dead letter as its master sent it: same properties, verdict headers dropped."""
    return copy_message(message, replay_headers(message.headers or {}))
