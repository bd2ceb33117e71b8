"""The relay's batch publisher waits for slow confirms instead of ending the session.

Three runs of the fault matrix and a soak on a loaded broker saw the relay's confirm
timeout end the whole session again and again (the next session sent the same batch and
was as slow). Slow confirms on an open channel are now waited for, with a warning; only
confirms held past the patience fail the batch, and a nack still fails it at once.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import aiormq
import pytest
from pamqp import commands as spec
from structlog.testing import capture_logs

from registryd.amqp.batch import BatchPublisher


class _ConfirmingChannel:
    """What the publisher reads of an aiormq channel before it writes anything."""

    publisher_confirms = True
    number = 1


def _publisher(timeout: float, patience: float) -> BatchPublisher:
    channel = cast(aiormq.Channel, _ConfirmingChannel())
    return BatchPublisher(
        channel,
        "x",
        spec.Basic.Properties(),
        confirm_timeout=timeout,
        confirm_patience=patience,
    )


async def test_slow_confirms_are_waited_for_with_a_warning() -> None:
    """Confirms later than the timeout but within the patience: the batch is confirmed."""
    loop = asyncio.get_running_loop()
    batch: list[asyncio.Future[Any]] = [loop.create_future() for _ in range(3)]
    for confirmation in batch:
        loop.call_later(0.2, confirmation.set_result, "ack")
    with capture_logs() as logs:
        await _publisher(timeout=0.05, patience=5.0).confirmed(batch)
    slow = [e for e in logs if e["event"] == "publisher confirms are slow; still waiting"]
    assert slow, logs
    assert 3 == slow[0]["pending"]


async def test_confirms_held_past_the_patience_fail_the_batch_without_cancelling() -> None:
    """A broker that never confirms: TimeoutError after the patience; aiormq's futures stay."""
    loop = asyncio.get_running_loop()
    batch: list[asyncio.Future[Any]] = [loop.create_future() for _ in range(2)]
    with pytest.raises(TimeoutError, match="2 publisher confirms not back"):
        await _publisher(timeout=0.05, patience=0.2).confirmed(batch)
    assert not any(c.cancelled() for c in batch)


async def test_a_nack_fails_the_batch_at_once() -> None:
    """A nacked message raises its error, whatever the patience."""
    loop = asyncio.get_running_loop()
    batch: list[asyncio.Future[Any]] = [loop.create_future() for _ in range(2)]
    batch[0].set_exception(aiormq.exceptions.DeliveryError(None, spec.Basic.Nack(delivery_tag=1)))
    batch[1].set_result(True)
    with pytest.raises(aiormq.exceptions.DeliveryError):
        await _publisher(timeout=5.0, patience=60.0).confirmed(batch)
