"""Wiring, start-up and shut-down: ``registryd serve`` runs :meth:`Daemon.serve`.

A *session* is one connection to each backend with everything running on it. When the
broker connection is lost the session ends and a new one starts (backoff up to 5 s,
each attempt logged); a Redis outage is ridden out inside the session (events are held
unacked and retried, RPCs answer ``unavailable``). Nothing is acked before its commit,
so either way nothing is lost. ``/healthz`` is 503 whenever the daemon is not consuming
with both backends answering.

Under systemd (``Type=notify``) every change of that state is told to the service
manager: ``READY=1`` the first time it serves, a ``STATUS=`` line on each change,
``STOPPING=1`` when asked to stop, and ``WATCHDOG=1`` from the event loop when a
watchdog is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractRobustConnection

from registryd import __version__
from registryd.amqp.batch import BatchPublisher
from registryd.amqp.consumer import EventConsumer
from registryd.amqp.relay import Relay
from registryd.amqp.rpc import RpcServer
from registryd.amqp.topology import Topology, declare
from registryd.broker import BROKER_ERRORS, connect_in_turn, connection_lost
from registryd.config import Settings
from registryd.diagnose import RefusalLog
from registryd.errors import ConfigError, Crashed, EpochMissing, RegistryError, Unavailable
from registryd.logs import mask
from registryd.metrics import CRASH_WINDOW, Health, Metrics, MetricsServer
from registryd.protocol import JSON, Names
from registryd.redis_client import close_redis, connect_redis
from registryd.retry import forever
from registryd.service import Registry
from registryd.store import Keys, RedisClient, RedisStore, RelayStore, StoreSettings
from registryd.systemd import Notifier
from registryd.tls import uses_tls

__all__ = [
    "Daemon",
    "amqp_ssl_context",
    "connect_amqp",
    "connect_amqp_node",
]

log = structlog.get_logger(__name__)

#: How long closing a connection or waiting for a cancelled task may take.
_CLOSE_SECONDS = 1.0
#: Closing the Redis pool may take longer under load; cut short, its sockets would leak.
_REDIS_CLOSE_SECONDS = 5.0
#: A lost or refusing backend: the session ends and the next one starts after a backoff.
_BACKEND_ERRORS = (Unavailable, TimeoutError, *BROKER_ERRORS)
#: Seconds one RabbitMQ node may take to accept a connection before the next is tried.
_CONNECT_SECONDS = 10.0
#: Seconds between two readings of the queues' depths and the committed revision.
BACKLOG_SECONDS = 1.0
#: The most masters one expiry pass expires; a full pass is followed by another at once.
_EXPIRE_BATCH = 100
#: How long after a lease's end its pass runs: the end must be strictly past, by a
#: clock read a round trip earlier.
_LEASE_MARGIN = 0.002


async def _wait_out(tasks: list[asyncio.Task[None]]) -> None:
    """Wait up to ``_CLOSE_SECONDS`` for ``tasks`` to end; cancel those left, saying which."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=_CLOSE_SECONDS)
    for task in pending:  # a cancelled one lost its cancellation: it ends with the loop
        task.cancel()
        log.warning("task did not stop in time; cancelled", task=task.get_name())


def _next_pass(interval: float, expired: int, lease_end: float | None) -> float:
    """Seconds until the next expiry pass: at the earliest lease end, at most ``interval``."""
    if expired >= _EXPIRE_BATCH:
        return 0.0
    if lease_end is None:
        return interval
    return min(interval, max(0.0, lease_end) + _LEASE_MARGIN)  # never a busy loop


def amqp_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """aio-pika's ``ssl_context`` from the settings: ``None`` unless a node is ``amqps://``."""
    return settings.amqp_tls.context() if any(map(uses_tls, settings.amqp_urls)) else None


async def connect_amqp(
    settings: Settings, name: str = "registryd"
) -> aio_pika.abc.AbstractConnection:
    """A broker connection named after the daemon and its prefix (visible in RabbitMQ).

    The configured nodes are tried in turn (:func:`connect_amqp_node`).
    """
    connection, _ = await connect_amqp_node(settings, name)
    return connection


async def connect_amqp_node(
    settings: Settings, name: str = "registryd", *, first: int = 0
) -> tuple[aio_pika.abc.AbstractConnection, int]:
    """A connection to the first configured node that answers, from node ``first`` on.

    Returns the index of the node too, so that the next session starts after it: a
    session usually ends because its node went away, and any node of the cluster
    serves every queue.
    """
    return await connect_in_turn(
        settings.amqp_urls,
        first=first,
        timeout=_CONNECT_SECONDS,
        client_properties={"connection_name": f"{name} {settings.prefix} {__version__}"},
        ssl_context=amqp_ssl_context(settings),
    )


@contextlib.contextmanager
def _lost_while_starting(connection: aio_pika.abc.AbstractConnection) -> Iterator[None]:
    """A connection the broker closed while the session started is a backend failure.

    A node going down as a session starts on another one (queues moving their
    members) may close the new connection too; the next channel then fails with a bare
    ``RuntimeError``, which must start the next session rather than end the process.
    """
    try:
        yield
    except RuntimeError as exc:
        if not connection_lost(connection):
            raise
        raise Unavailable(f"broker connection lost while the session started: {exc}") from exc


@dataclass
class _Session:
    redis: RedisClient
    connection: aio_pika.abc.AbstractConnection | AbstractRobustConnection
    topology: Topology
    store: RedisStore
    registry: Registry
    consumer: EventConsumer | None
    rpc: RpcServer
    tasks: list[asyncio.Task[None]]
    lost: asyncio.Event
    relay: Relay | None = None
    #: Set when the session ends: the loops check it (cancellation alone can be lost).
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


class Daemon:
    """registryd's process: sessions with the backends until asked to stop."""

    def __init__(self, settings: Settings, notifier: Notifier | None = None) -> None:
        self.settings = settings
        self.names = Names(settings.prefix)
        self.metrics = Metrics()
        self.health = Health()
        #: systemd's notification socket (``$NOTIFY_SOCKET``; does nothing without one).
        self.notifier = Notifier() if notifier is None else notifier
        #: A refused login or vhost is said once, as such: retrying will not fix it.
        self.refusals = RefusalLog(settings)
        self.health.watch(self._announce)
        self._ready_told = False
        self._crash_aged: asyncio.TimerHandle | None = None
        self.stop_requested = asyncio.Event()
        self.store_settings = StoreSettings(
            master_lease_ms=int(settings.master_lease * 1000),
            retain_changes=settings.changes_retain,
            message_memory_ms=int(settings.events_dedupe_window * 1000),
            wait_replicas=settings.redis_wait_replicas,
            wait_timeout_ms=int(settings.redis_wait_timeout * 1000),
        )
        self._http: MetricsServer | None = None
        self._epoch: str | None = None
        #: The RabbitMQ node the next session tries first.
        self._next_node = 0

    def request_stop(self) -> None:
        """Ask :meth:`serve` to stop consuming, finish in-flight work and return."""
        self.health.stopping = True  # tells systemd STOPPING=1
        self.stop_requested.set()

    def _announce(self, state: str) -> None:
        """Tell systemd: READY=1 the first time the daemon serves, STATUS= on every change."""
        if state == "stopping":
            self.notifier.stopping()
        elif state == "serving" and not self._ready_told:
            self._ready_told = True
            self.notifier.ready(state)
        else:
            self.notifier.status(state)

    def _session_failed(self, error: BaseException) -> None:
        """A session ended: a crash is on /healthz already; anything else is the broker."""
        self.health.consuming = False
        self.refusals(error)
        if not isinstance(error, Crashed):
            self.metrics.backend_errors.labels("rabbitmq").inc()
            self.health.fail("rabbitmq")

    def _redis_failed(self, error: BaseException) -> None:
        self.refusals(error)
        self.health.fail("redis")

    async def _watchdog(self, interval: float) -> None:
        """WATCHDOG=1 every ``interval`` s from the event loop: a stuck loop stops them."""
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    async def serve(self) -> None:
        """Run sessions until :meth:`request_stop`; a backend failure starts a new one."""
        self._start_http()
        self.notifier.status(self.health.state())
        watchdog = None
        if self.notifier.watchdog_interval is not None:
            watchdog = asyncio.create_task(
                self._watchdog(self.notifier.watchdog_interval), name="watchdog"
            )
        log.info(
            "registryd starting",
            version=__version__,
            prefix=self.settings.prefix,
            amqp=mask(self.settings.amqp_url),
            redis=mask(self.settings.redis_url),
        )
        retrying = forever(
            "session ended; starting a new one",
            (*_BACKEND_ERRORS, Crashed),
            first=0.2,
            stop=self.stop_requested,
            on_failure=self._session_failed,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if not self.stop_requested.is_set():
                        await self._run_session()
        finally:
            if watchdog is not None:
                watchdog.cancel()
            if self._crash_aged is not None:
                self._crash_aged.cancel()
            if self._http is not None:
                self._http.stop()
            log.info("registryd stopped")
            self.notifier.close()

    def _start_http(self) -> None:
        port = self.settings.metrics_port
        if port == 0:
            return
        try:
            self._http = MetricsServer(self.metrics, self.health, self.settings.metrics_host, port)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {self.settings.metrics_host}:{port}: {exc.strerror}"
            ) from None
        self._http.start()

    async def _run_session(self) -> None:
        async with self._session() as session:
            with _lost_while_starting(session.connection):
                if not await self._wait_for_redis(session):
                    return
                await self._start_processing(session)
            self.health.started("rabbitmq", "redis")  # both answered to get here
            log.info("serving", events=self.names.events, rpc=self.names.rpc)
            self.refusals.forget()
            stop = asyncio.ensure_future(self.stop_requested.wait())
            lost = asyncio.ensure_future(session.lost.wait())
            watched = {stop, lost, *session.tasks}
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for task in (stop, lost):
                task.cancel()
            self._end_of_session(done - {stop, lost}, lost_connection=lost in done)

    def _end_of_session(
        self, ended: Iterable[asyncio.Future[Any]], *, lost_connection: bool
    ) -> None:
        """Why the session ends: asked to stop (return), a backend failure, or a bug.

        A bug (any other exception in a task) is logged once with its traceback and the
        task's name, counted, and shown on ``/healthz`` before the session restarts.
        """
        for task in ended:
            error = None if task.cancelled() else task.exception()
            if error is None:
                continue
            name = task.get_name() if isinstance(task, asyncio.Task) else "task"
            if isinstance(error, _BACKEND_ERRORS):
                # Before the session closes (which stops consuming), so that the state
                # goes straight from serving to retrying rather than through starting.
                self.health.fail("rabbitmq")
                # The task and the error's type: a bare TimeoutError() says nothing alone.
                raise Unavailable(f"session ended: {name}: {error!r}") from error
            log.error("task crashed", task=name, exc_info=error)
            self.metrics.task_crashes.labels(name).inc()
            self.health.crash(f"{name}: {error!r}")
            # The state changes again when the crash ages out: announce that too.
            if self._crash_aged is not None:
                self._crash_aged.cancel()
            loop = asyncio.get_running_loop()
            self._crash_aged = loop.call_later(CRASH_WINDOW, self.health.refresh)
            raise Crashed(f"task {name} crashed: {error!r}") from error
        if lost_connection:
            self.health.fail("rabbitmq")
            raise Unavailable("session ended: broker connection lost")

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[_Session]:
        redis = connect_redis(self.settings)
        connection: aio_pika.abc.AbstractConnection | None = None
        session: _Session | None = None
        try:
            connection, node = await connect_amqp_node(self.settings, first=self._next_node)
            self._next_node = (node + 1) % len(self.settings.amqp_urls)
            with _lost_while_starting(connection):
                session = await self._open(redis, connection)
            yield session
        finally:
            await self._close(redis, connection, session)

    async def _open(
        self, redis: RedisClient, connection: aio_pika.abc.AbstractConnection
    ) -> _Session:
        """Declare the topology and serve RPC at once.

        While Redis is down, RPC answers ``unavailable`` rather than leaving requests
        unanswered; events wait in their queue until Redis answers.
        """
        s = self.settings
        lost = asyncio.Event()
        connection.close_callbacks.add(lambda *_: lost.set())
        events_channel = await connection.channel(publisher_confirms=True)
        await events_channel.set_qos(prefetch_count=s.events_batch * 2)
        topology = await declare(
            events_channel,
            self.names,
            s.events_delivery_limit,
            quorum_queues=s.amqp_quorum_queues,
        )
        rpc_channel = await connection.channel(publisher_confirms=False)
        await rpc_channel.set_qos(prefetch_count=s.rpc_concurrency)
        store = RedisStore(redis, Keys(s.prefix), self.store_settings)
        registry = Registry(store, master_lease=s.master_lease, max_reply=s.rpc_max_reply)
        registry.epoch = self._epoch  # so a reset between sessions is noticed and logged
        rpc = RpcServer(
            registry,
            # aio-pika opens it and sets its prefetch; the hot path speaks aiormq under it.
            cast(aiormq.Channel, await rpc_channel.get_underlay_channel()),
            self.names.rpc,
            self.metrics,
            timeout=s.rpc_timeout,
            auth_masters=s.auth_masters,
        )
        await rpc.start()
        self.health.serving_rpc = True
        return _Session(redis, connection, topology, store, registry, None, rpc, [], lost)

    async def _wait_for_redis(self, session: _Session) -> bool:
        """Make sure of the epoch, retrying while Redis is down; False if asked to stop."""
        retrying = forever(
            "redis unavailable; retrying",
            Unavailable,
            stop=self.stop_requested,
            on_failure=self._redis_failed,
        )
        async for attempt in retrying:
            with attempt:
                if self.stop_requested.is_set():
                    return False
                self._epoch = await session.registry.start()
        return True

    async def _start_processing(self, session: _Session) -> None:
        """Start the event consumer, the relay and the expiry loop."""
        s = self.settings
        session.relay = relay = Relay(
            RelayStore(session.store), await self._notifier(session), self.metrics, self.health
        )
        session.consumer = EventConsumer(
            session.registry,
            session.topology,
            self.metrics,
            self.health,
            batch=s.events_batch,
            auth_masters=s.auth_masters,
        )
        session.tasks += [
            asyncio.create_task(relay.run(session.stopping), name="relay"),
            asyncio.create_task(
                self._expire_masters(session.registry, session.store, session.stopping),
                name="master-expiry",
            ),
            asyncio.create_task(self._watch_backlog(session), name="backlog"),
        ]
        try:
            await session.consumer.start()
        finally:  # its task runs from the start: stopped with the others even if this failed
            if session.consumer.task is not None:
                session.tasks.append(session.consumer.task)

    async def _notifier(self, session: _Session) -> BatchPublisher:
        """The relay's publisher: a confirm channel of its own, the exchange checked to exist."""
        channel = await session.connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(self.names.notifications)  # a passive declare
        underlay = await channel.get_underlay_channel()
        if not isinstance(underlay, aiormq.Channel):
            raise TypeError(f"aio-pika's channel is not an aiormq.Channel: {underlay!r}")
        properties = aiormq.spec.Basic.Properties(
            content_type=JSON, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        return BatchPublisher(underlay, exchange.name, properties)

    async def _close(
        self,
        redis: RedisClient,
        connection: aio_pika.abc.AbstractConnection | None,
        session: _Session | None,
    ) -> None:
        """Reverse order: stop consuming, finish in-flight work (up to the grace), close."""
        self.health.consuming = False
        self.health.serving_rpc = False
        if session is not None:
            await self._drain(session)
        # Bounded: a close that hangs must not keep the process from exiting.
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), _CLOSE_SECONDS)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(close_redis(redis), _REDIS_CLOSE_SECONDS)

    async def _drain(self, session: _Session) -> None:
        try:
            async with asyncio.timeout(self.settings.grace):
                await session.rpc.stop()
                if session.consumer is not None:
                    await session.consumer.stop()
        except TimeoutError:
            log.warning(
                "grace period over; unfinished work returns to the queues",
                grace=self.settings.grace,
            )
        except Exception as exc:  # noqa: BLE001 - shutdown goes on whatever failed; logged
            log.warning("error while finishing in-flight work", error=str(exc))
        session.stopping.set()
        # Nothing may use Redis once its client is closed (the pool would refuse it):
        # the tasks, the requests in hand, then the relay's release, which outlives a
        # cancelled relay task.
        session.rpc.abort()
        for task in session.tasks:
            task.cancel()
        await _wait_out([*session.tasks, *session.rpc.in_flight])
        if session.relay is not None and session.relay.releasing is not None:
            await _wait_out([session.relay.releasing])

    async def _expire_masters(
        self, registry: Registry, store: RedisStore, stopping: asyncio.Event
    ) -> None:
        """Expire masters as their leases end; doubles as the Redis health probe.

        A pass runs when the earliest lease ends (Redis's clock) and at least every
        second (lease/4 if shorter). The expiry itself is one atomic script, so several
        daemons still expire each master exactly once.
        """
        interval = min(1.0, self.settings.master_lease / 4)
        while not stopping.is_set():
            wait = interval
            try:
                expired = await store.expire_masters(limit=_EXPIRE_BATCH)
                wait = _next_pass(interval, len(expired), await store.next_lease_end())
            except EpochMissing:
                await registry.start()
                continue
            except RegistryError as exc:
                self.health.fail("redis")
                self.metrics.backend_errors.labels("redis").inc()
                log.warning("redis failed", error=exc.message)
            else:
                self.health.recover("redis")
                for masterid in expired:
                    log.warning("master expired: no heartbeat within the lease", masterid=masterid)
                self.metrics.expired_masters.inc(len(expired))
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), wait)

    async def _watch_backlog(self, session: _Session) -> None:
        """Read the queues' depths and the committed revision for /metrics, every second.

        A passive declare answers with the count of ready messages; it runs on a
        channel of its own, which a missing queue would close (ending the session,
        whose start declares the queues again).
        """
        channel = await session.connection.channel()
        names = self.names
        queues = {
            role: await channel.declare_queue(name, passive=True)
            for role, name in (("events", names.events), ("rpc", names.rpc), ("dead", names.dead))
        }
        while not session.stopping.is_set():
            for role, queue in queues.items():
                declared = await queue.declare()
                self.metrics.queue_messages.labels(role).set(declared.message_count or 0)
            with contextlib.suppress(RegistryError):  # Redis down: the expiry loop says so
                self.metrics.committed(*await session.store.state())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.stopping.wait(), BACKLOG_SECONDS)
