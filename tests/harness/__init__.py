"""One harness for talking to a daemon, the way the tests of each kind need it.

- :mod:`.services`: the real services' URLs, a killable private Redis, bounded waits.
- :mod:`.redis_ha`: private Sentinel sets and Redis Clusters for the failover tests.
- :mod:`.wire`: :class:`Wire`, bare aio-pika on PROTOCOL.md's names, with the
  :meth:`Wire.settled` barrier the tests await instead of sleeping. Independent of
  ``registryd.client`` on purpose: it is what an outside program does.
- :mod:`.daemon`: a daemon in the test's event loop, and :func:`serving` (daemon + wire).
- :mod:`.served`: ``registryd serve`` as a subprocess, with its health and log.
- :mod:`.rabbit`: :class:`PrivateRabbit`, a RabbitMQ node of the test's own (users, a
  TLS listener, clusters) on free ports, stopped by PID.
"""

from tests.harness.daemon import RunningDaemon, serving, start_daemon, start_daemon_unready
from tests.harness.rabbit import PrivateRabbit, RabbitError, ServerTls, form_cluster
from tests.harness.redis_ha import SENTINEL_SERVICE, PrivateRedisCluster, PrivateSentinelSet
from tests.harness.served import Served, http_get, listening_ports, served
from tests.harness.services import (
    AMQP_URL,
    AMQP_USER,
    PREFIXES,
    REDIS_URL,
    REGISTRYD,
    PrivateRedis,
    clean_prefix,
    cli_env,
    connections_named,
    daemon_settings,
    free_port,
    left_behind,
    redis_client,
    unique_prefix,
    wait_for,
)
from tests.harness.wire import PROBE_MASTER, Json, Note, Wire

__all__ = [
    "AMQP_URL",
    "AMQP_USER",
    "PREFIXES",
    "PROBE_MASTER",
    "REDIS_URL",
    "REGISTRYD",
    "SENTINEL_SERVICE",
    "Json",
    "Note",
    "PrivateRabbit",
    "PrivateRedis",
    "PrivateRedisCluster",
    "PrivateSentinelSet",
    "RabbitError",
    "RunningDaemon",
    "Served",
    "ServerTls",
    "Wire",
    "clean_prefix",
    "cli_env",
    "connections_named",
    "daemon_settings",
    "form_cluster",
    "free_port",
    "http_get",
    "left_behind",
    "listening_ports",
    "redis_client",
    "served",
    "serving",
    "start_daemon",
    "start_daemon_unready",
    "unique_prefix",
    "wait_for",
]
