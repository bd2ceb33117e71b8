"""Redis clients for the daemon, `check` and purge, from the settings.

``redis_url`` picks the kind (:func:`registryd.config.redis_target`): one server, the
master of a Sentinel-watched service (found anew after a failover), or a Redis Cluster
(redirections followed). A closed client opens nothing more: see :class:`_ClosingPool`
and :class:`_ClosingCluster`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from registryd.config import RedisTarget, Settings, redis_target
from registryd.store.redis import RedisClient
from registryd.tls import uses_tls

__all__ = ["close_redis", "connect_redis", "redis_tls_kwargs"]

_CLOSED = "this Redis client is closed"


def redis_tls_kwargs(settings: Settings) -> dict[str, Any]:
    """redis-py's TLS arguments from the settings: empty unless the URL is ``rediss``."""
    return settings.redis_tls.redis_kwargs() if uses_tls(settings.redis_url) else {}


def connect_redis(settings: Settings, name: str = "registryd") -> RedisClient:
    """A Redis client whose calls fail within seconds when Redis is gone.

    The pool blocks (up to 3 s) rather than failing when every connection is busy: one
    per RPC in flight, plus the consumer, the relay and the expiry loop. A command that
    finds its pooled connection closed (Redis restarted) is sent once more on a new one;
    every write is a state-setting script, so a repeat changes nothing twice.
    """
    target = redis_target(settings.redis_url)
    options: dict[str, Any] = {
        "max_connections": settings.rpc_concurrency + 8,
        "socket_timeout": 5.0,
        "socket_connect_timeout": 3.0,
        "health_check_interval": 15,
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        "client_name": f"{name}:{settings.prefix}",
        **redis_tls_kwargs(settings),
    }
    if target.kind == "sentinel":
        return _sentinel_master(target, options, _sentinel_login(settings))
    if target.kind == "cluster":
        return _cluster(target, options)
    return Redis.from_pool(_ClosingPool.from_url(target.url, timeout=3, **options))


class _ClosingPool(BlockingConnectionPool):
    """A blocking pool that keeps no connection open once it is closed.

    redis-py's pool closes the connections it holds, then goes on lending: a task still
    running when its owner closes the client (one that lost its cancellation, or a
    command retried on the connection the close just cut) would open a socket that
    nobody closes. Here a closed pool lends nothing, and a connection that comes back
    to it, or finished connecting while it closed, is disconnected.
    """

    _closed = False

    async def get_connection(self, *args: Any, **kwargs: Any) -> AbstractConnection:  # noqa: ANN401 - redis-py's deprecated arguments
        """A connected connection, unless the pool is closed (then a lost connection)."""
        if self._closed:
            raise RedisConnectionError(_CLOSED)
        connection: AbstractConnection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        if self._closed:  # it connected while the pool was closing
            await self.release(connection)
            raise RedisConnectionError(_CLOSED)
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        """Take ``connection`` back; close it if the pool is closed."""
        await super().release(connection)
        if self._closed:
            await connection.disconnect()

    async def aclose(self) -> None:
        """Close every connection and lend no more."""
        self._closed = True
        await super().aclose()


class _SentinelPool(SentinelConnectionPool, _ClosingPool):
    """The master's pool, blocking and closing like the standalone one; it closes the sentinels.

    Each new connection asks the sentinels where the master is, so after a failover the
    next connection goes to the new master (a demoted one answering READONLY is dropped
    by redis-py and the command fails as a lost connection: retried, never refused).
    """

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: object) -> None:
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        # Closed from this copy: redis-py's discover_master reorders the manager's list
        # without a lock, and concurrent calls during a failover can drop a client from
        # it, whose sockets Sentinel.aclose() would then never close.
        self._sentinel_clients = list(sentinel_manager.sentinels)

    async def get_master_address(self) -> Any:  # noqa: ANN401 - redis-py's (host, port)
        """Where the master is now, unless the pool is closed (then a lost connection).

        Otherwise a task of an ended session would reopen sockets to the sentinels.
        """
        if self._closed:
            raise RedisConnectionError(_CLOSED)
        return await super().get_master_address()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        """Close the master's connections, then the sentinels' clients."""
        try:
            await super().aclose()
        finally:
            await asyncio.gather(*(c.aclose() for c in self._sentinel_clients))


def _sentinel_login(settings: Settings) -> dict[str, str]:
    """The sentinels' own user and password, where they have them (else none)."""
    password = settings.redis_sentinel_password
    login = {
        "username": settings.redis_sentinel_username,
        "password": None if password is None else password.get_secret_value(),
    }
    return {key: value for key, value in login.items() if value is not None}


def _sentinel_master(target: RedisTarget, options: dict[str, Any], login: dict[str, str]) -> Redis:
    sentinel_options = {
        "socket_timeout": options["socket_timeout"],
        "socket_connect_timeout": options["socket_connect_timeout"],
        **login,
    }
    sentinel = Sentinel(list(target.nodes), sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call,unused-ignore]
    client: Redis = sentinel.master_for(
        target.service,
        connection_pool_class=_SentinelPool,
        timeout=3,
        db=target.db,
        username=target.username,
        password=target.password,
        ssl=target.tls,
        **options,
    )
    return client


class _ClosingCluster(RedisCluster):
    """A cluster client that can be closed for good (:func:`close_redis`).

    redis-py's ``aclose()`` is also its own reset: it calls it after a lost node, and the
    next command finds the nodes anew. So only :func:`close_redis` marks the client
    closed; after that, finding the nodes fails as a lost connection.
    """

    closed_for_good = False

    async def initialize(self, *args: Any, **kwargs: Any) -> RedisCluster:  # noqa: ANN401 - redis-py's
        """Find the nodes, unless the client is closed for good (then a lost connection)."""
        if self.closed_for_good:
            raise RedisConnectionError(_CLOSED)
        return await super().initialize(*args, **kwargs)


async def close_redis(client: RedisClient) -> None:
    """Close ``client`` for good: a task still using it fails instead of reconnecting."""
    if isinstance(client, _ClosingCluster):
        client.closed_for_good = True
    await client.aclose()


def _cluster(target: RedisTarget, options: dict[str, Any]) -> RedisCluster:
    options = {k: v for k, v in options.items() if k != "retry"}  # the cluster's own retries
    return _ClosingCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        username=target.username,
        password=target.password,
        ssl=target.tls,
        **options,
    )
