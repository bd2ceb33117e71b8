"""``registryd check``: which backends answer, and why one does not."""

from __future__ import annotations

import asyncio

from registryd.config import Settings
from registryd.daemon import connect_amqp
from registryd.diagnose import configured_refusal
from registryd.logs import mask
from registryd.redis_client import close_redis, connect_redis

__all__ = ["probe"]


async def _redis(settings: Settings) -> None:
    client = connect_redis(settings, name="registryd-check")
    try:
        await client.ping()
    finally:
        await close_redis(client)


async def _rabbitmq(settings: Settings) -> None:
    connection = await connect_amqp(settings, name="registryd-check")
    await connection.close()


def _why(error: BaseException, settings: Settings) -> str:
    """A refusal explained (with its hint), or the error's own text."""
    found = configured_refusal(error, settings)
    if found is not None:
        return found.message
    if isinstance(error, TimeoutError):
        return "no answer in time"
    return mask(str(error) or type(error).__name__)


async def probe(settings: Settings, seconds: float = 5.0) -> list[tuple[str, str]]:
    """The services that did not answer within ``seconds``, each with the reason."""
    checks = {"rabbitmq": _rabbitmq(settings), "redis": _redis(settings)}
    results = await asyncio.gather(
        *(asyncio.wait_for(check, seconds) for check in checks.values()), return_exceptions=True
    )
    return [
        (name, _why(result, settings))
        for name, result in zip(checks, results, strict=True)
        if isinstance(result, BaseException)
    ]
