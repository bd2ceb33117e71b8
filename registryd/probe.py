"""``registryd check``: which backends answer."""

from __future__ import annotations

import asyncio

import aio_pika

from registryd.config import Settings
from registryd.daemon import connect_redis
from registryd.logs import mask

__all__ = ["probe"]


async def _redis(settings: Settings) -> None:
    client = connect_redis(settings, name="registryd-check")
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _rabbitmq(settings: Settings) -> None:
    connection = await aio_pika.connect(settings.amqp_url, timeout=5)
    await connection.close()


async def probe(settings: Settings, seconds: float = 5.0) -> list[tuple[str, str]]:
    """The services that did not answer within ``seconds``, each with the reason."""
    checks = {"rabbitmq": _rabbitmq(settings), "redis": _redis(settings)}
    results = await asyncio.gather(
        *(asyncio.wait_for(check, seconds) for check in checks.values()), return_exceptions=True
    )
    return [
        (name, mask(str(result) or type(result).__name__))
        for name, result in zip(checks, results, strict=True)
        if isinstance(result, BaseException)
    ]
