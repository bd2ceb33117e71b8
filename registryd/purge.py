"""``registryd purge-demo`` (hidden; ``make demo`` runs it): delete a demo's prefix whole.

Every Redis key of the prefix, its three queues and its three exchanges. It refuses a
prefix while a daemon still serves it (the daemon would declare and write again), and a
prefix that holds anything but the demo's data (:mod:`registryd.operator.demo_scope`),
so that it cannot wipe a real registry by mistake.
"""

from __future__ import annotations

from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import ChannelNotFoundEntity

from registryd.amqp.topology import delete_topology
from registryd.config import Settings
from registryd.daemon import connect_amqp
from registryd.operator import Refused
from registryd.operator.demo_scope import foreign_data
from registryd.protocol import Names
from registryd.redis_client import close_redis, connect_redis
from registryd.store import Keys, RedisClient, RedisStore

__all__ = ["purge_demo"]

_BATCH = 1000


async def _served(connection: AbstractConnection, names: Names) -> bool:
    """Whether something consumes the prefix's RPC queue (a daemon serves it)."""
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(names.rpc, passive=True)
    except ChannelNotFoundEntity:
        return False
    finally:
        if not channel.is_closed:
            await channel.close()
    return bool(queue.declaration_result.consumer_count)


async def _delete_keys(redis: RedisClient, keys: Keys) -> int:
    found = [key async for key in redis.scan_iter(match=keys.pattern(), count=_BATCH)]
    for start in range(0, len(found), _BATCH):
        await redis.delete(*found[start : start + _BATCH])
    return len(found)


async def _purge_redis(settings: Settings, *, force: bool) -> int:
    redis = connect_redis(settings, name="registryd-purge")
    try:
        keys = Keys(settings.prefix)
        store = RedisStore(redis, keys)
        foreign = foreign_data(await store.read_workers(), await store.read_masters())
        if foreign is not None and not force:
            raise Refused(
                f"prefix {settings.prefix!r} holds {foreign}, not only demo data: "
                "nothing deleted (--force deletes it all the same)"
            )
        return await _delete_keys(redis, keys)
    finally:
        await close_redis(redis)


async def purge_demo(settings: Settings, *, force: bool = False) -> str:
    """Delete the prefix's keys, queues and exchanges; a line saying what went.

    :class:`Refused` (nothing deleted) while a daemon serves the prefix, or when it
    holds more than demo data and ``force`` is not set.
    """
    names = Names(settings.prefix)
    connection = await connect_amqp(settings, name="registryd-purge")
    try:
        if await _served(connection, names):
            raise Refused(f"a daemon still serves prefix {names.prefix!r}: stop it first")
        deleted = await _purge_redis(settings, force=force)
        await delete_topology(connection, names)
    finally:
        await connection.close()
    return (
        f"deleted prefix {names.prefix!r}: {deleted} Redis keys, the queues and exchanges "
        f"{names.events}, {names.rpc}, {names.notifications}, {names.dead}"
    )
