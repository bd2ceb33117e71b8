"""The library masters and subscribers import: typed RPC, confirmed events, change streams.

One :class:`RegistryClient` holds one RabbitMQ connection and three kinds of channel:

- RPC: requests go to the default exchange with routing key ``<prefix>.rpc``; replies
  come back through RabbitMQ's direct reply-to (``amq.rabbitmq.reply-to``), which must
  be consumed, without acks, on the very channel the requests are published on. Each
  call waits for the reply whose ``correlation_id`` it sent, for at most its timeout;
  the request carries that timeout as ``expiration`` so RabbitMQ drops it unserved
  once nobody waits any more.
- Events: a channel with publisher confirms; :meth:`RegistryClient.publish_event`
  returns only once the broker has taken the event (or raises).
- Subscriptions: one channel each, see :class:`Subscription`.

The URL may name a RabbitMQ cluster's nodes (several URLs, or one string of them
separated by commas). When the connection is lost, the calls waiting on it raise
:class:`~registryd.errors.Unavailable` (their outcome is unknown: retry them, every
write is idempotent); the next call connects again, to the nodes in turn starting
after the one that was lost. A :class:`Subscription` ends with the connection it was
opened on; it tells the application the revision to resume from.

Example (a master's day, PROTOCOL.md section 9)::

    async with await RegistryClient.connect(prefix="registry") as registry:
        await registry.master_heartbeat(10, name="ci-1:/srv/master")
        workerid = await registry.find_worker_id("linux-1")
        await registry.worker_configured(workerid, 10, [20, 21])
        await registry.worker_connected(workerid, 10, {"host": "h1"}, connection="s-1")
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import re
import ssl
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, Final, Generic, Literal, Self, TypeVar

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import ChannelNotFoundEntity
from aio_pika.exceptions import PublishError as Unroutable
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import from_json
from yarl import URL

from registryd.broker import BROKER_ERRORS, broker_urls, connect_in_turn
from registryd.errors import (
    ConfigError,
    Internal,
    RegistryError,
    RpcTimeout,
    TooLarge,
    Unavailable,
    error_for_code,
)
from registryd.models import (
    ChangesPage,
    DeconfigureAllWorkersForMaster,
    FindWorkerId,
    GetChanges,
    GetMasters,
    GetWorker,
    GetWorkers,
    Master,
    MasterHeartbeat,
    MasterStopped,
    Operation,
    Ping,
    PingResult,
    SetWorkerGraceful,
    SetWorkerPaused,
    Worker,
    WorkerConfigured,
    WorkerConnected,
    WorkerDisconnected,
    parse_params,
)
from registryd.models.ops import MAX_PAGE
from registryd.protocol import DEFAULT_PREFIX, DIRECT_REPLY_TO, JSON, Names
from registryd.subscription import Resync, Subscription, SubscriptionItem
from registryd.tls import TlsFiles, uses_tls

__all__ = [
    "DEFAULT_URL",
    "DIRECT_REPLY_TO",
    "RegistryClient",
    "Resync",
    "RpcTimeout",
    "Subscription",
    "SubscriptionItem",
    "decode_json",
]

log = structlog.get_logger(__name__)

#: The broker registryd's own default points at.
DEFAULT_URL: Final = "amqp://guest:guest@127.0.0.1:5672/"

_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")


class _Ok(BaseModel, Generic[_T]):
    """A successful reply, ``{"ok": true, "result": ...}``, with its result typed."""

    ok: Literal[True]
    result: _T


_PING: Final = TypeAdapter(_Ok[PingResult])
_DIGITS: Final = re.compile(rb"\d+")
_WORKER: Final = TypeAdapter(_Ok[Worker | None])
_WORKERS: Final = TypeAdapter(_Ok[list[Worker]])
_MASTERS: Final = TypeAdapter(_Ok[list[Master]])
_CHANGES: Final = TypeAdapter(_Ok[ChangesPage])


@dataclass(slots=True)
class _Pending:
    """A request waiting for its reply."""

    reply: asyncio.Future[bytes]
    #: The channel it went out on, once it is being published.
    channel: AbstractChannel | None = None


class RegistryClient:
    """A connection to one registry (one prefix): RPC, events and subscriptions.

    Make one with :meth:`connect`; close it with :meth:`close` or ``async with``.
    Every method is safe to call concurrently from many tasks.
    """

    def __init__(
        self,
        connection: AbstractConnection,
        prefix: str,
        *,
        timeout: float,
        user: str | None = None,
        urls: Sequence[str] = (),
        node: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.names = Names(prefix)
        self.timeout = timeout
        #: Sent as ``user_id`` on requests and events: RabbitMQ checks it against the
        #: connection's login, and registryd's authorization (section 7) reads it.
        self.user = user
        self._connection = connection
        #: The nodes to connect to again when the connection is lost (none: never).
        self._urls = tuple(urls)
        #: The index in ``_urls`` of the node of the current connection.
        self._node = node
        #: The TLS context of ``amqps://`` nodes, for connecting again.
        self._ssl_context = ssl_context
        self._closed = False
        #: Set by the connection's close callback: aio-pika's ``is_closed`` says only
        #: whether *we* closed it, not whether the broker or the network did.
        self._lost = False
        connection.close_callbacks.add(self._on_connection_closed)
        self._pending: dict[str, _Pending] = {}
        self._rpc: AbstractChannel | None = None
        #: The RPC queue was seen since the RPC channel opened (see :meth:`_check_rpc_queue`).
        self._rpc_queue_seen = False
        self._events: AbstractChannel | None = None
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(
        cls,
        url: str | Sequence[str] | None = None,
        prefix: str | None = None,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109 - also the default of every later call
        tls: TlsFiles | None = None,
    ) -> RegistryClient:
        """Connect to RabbitMQ at ``url``; ``timeout`` bounds this and is every call's default.

        ``url`` may be a cluster's nodes: a sequence of URLs, or one string of them
        separated by commas; they are tried in turn. ``url``, ``prefix`` and ``tls`` not
        given are read as the daemon reads them: ``REGISTRYD_AMQP_URL``,
        ``REGISTRYD_PREFIX`` and ``REGISTRYD_AMQP_CA_FILE``, ``_CERT_FILE``, ``_KEY_FILE``,
        ``_CHECK_HOSTNAME``, else the daemon's defaults (:data:`DEFAULT_URL`, ``registry``,
        the system's CAs). ``tls`` is used with ``amqps://`` URLs only. Raises
        :class:`~registryd.errors.Unavailable` when no node can be reached (or its
        certificate is not trusted).
        """
        _check_timeout(timeout)
        urls = broker_urls(url or os.environ.get("REGISTRYD_AMQP_URL") or DEFAULT_URL)
        if not urls:
            raise ValueError("no RabbitMQ URL given")
        prefix = prefix or os.environ.get("REGISTRYD_PREFIX") or DEFAULT_PREFIX
        where = ", ".join(str(URL(u).with_password(None)) for u in urls)
        user = URL(urls[0]).user or "guest"
        ssl_context = _ssl_context(urls, tls)
        connection: AbstractConnection | None = None
        try:
            async with asyncio.timeout(timeout):
                connection, node = await connect_in_turn(
                    urls, timeout=timeout, ssl_context=ssl_context
                )
                client = cls(
                    connection,
                    prefix,
                    timeout=timeout,
                    user=user,
                    urls=urls,
                    node=node,
                    ssl_context=ssl_context,
                )
                await client._rpc_channel()
        except BaseException as exc:
            if connection is not None:
                await connection.close()
            if isinstance(exc, TimeoutError):
                raise RpcTimeout(f"RabbitMQ at {where} did not answer within {timeout} s") from None
            if isinstance(exc, BROKER_ERRORS):
                raise Unavailable(f"cannot connect to RabbitMQ at {where}: {exc}") from exc
            raise
        return client

    async def close(self) -> None:
        """Fail the calls still waiting and close the connection (subscriptions end too)."""
        self._closed = True
        self._fail_pending(Unavailable("the registry client was closed"))
        await self._connection.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def connection(self) -> AbstractConnection:
        """The current aio-pika connection (subscriptions open their channels on it)."""
        return self._connection

    def _on_connection_closed(self, _connection: object, _exc: BaseException | None) -> None:
        self._lost = True

    async def _connected(self) -> AbstractConnection:
        """The open connection; a lost one is replaced (callers hold ``_lock``)."""
        if self._closed:
            raise Unavailable("the registry client was closed")
        if not self._lost or not self._urls:
            return self._connection
        lost = self._node
        self._rpc = self._events = None
        connection, self._node = await connect_in_turn(
            self._urls,
            first=(lost + 1) % len(self._urls),
            timeout=self.timeout,
            ssl_context=self._ssl_context,
        )
        connection.close_callbacks.add(self._on_connection_closed)
        old, self._connection, self._lost = self._connection, connection, False
        # Its close callback may not have run yet (a connection found closed on opening
        # a channel): run now, it would mark the new connection lost.
        old.close_callbacks.discard(self._on_connection_closed)
        with contextlib.suppress(*BROKER_ERRORS):  # lost already: this frees its socket
            await old.close()
        log.info("reconnected to RabbitMQ", node=self._node + 1, lost=lost + 1)
        return self._connection

    # -- RPC ---------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - it is also the request's expiration
    ) -> Any:  # noqa: ANN401 - the raw JSON result of any method
        """Call ``method`` and return its raw ``result``, or raise its typed error.

        Never waits longer than ``timeout`` (default: the client's): then it raises
        :class:`RpcTimeout`. A missing ``<prefix>.rpc`` queue (registryd never ran with
        this prefix) or a lost broker raises :class:`~registryd.errors.Unavailable`.
        """
        return _result(method, await self._request(method, params, timeout))

    async def _request(
        self,
        method: str,
        params: dict[str, Any] | None,
        timeout: float | None,  # noqa: ASYNC109 - it is also the request's expiration
        on_sent: Callable[[], None] | None = None,
    ) -> bytes:
        """Send one request; the reply's body as it came (see :meth:`call`).

        ``on_sent`` is called once the request is written to the broker.
        """
        timeout = _check_timeout(self.timeout if timeout is None else timeout)
        correlation_id = uuid.uuid4().hex
        request: dict[str, Any] = {"method": method}
        if params:
            request["params"] = params
        message = aio_pika.Message(
            json.dumps(request, ensure_ascii=False).encode(),
            content_type=JSON,
            correlation_id=correlation_id,
            reply_to=DIRECT_REPLY_TO,
            # Once the caller gave up, serving the request would only waste work.
            expiration=timeout,
            user_id=self.user,
        )
        pending = _Pending(asyncio.get_running_loop().create_future())
        self._pending[correlation_id] = pending
        try:
            async with asyncio.timeout(timeout):
                channel = await self._rpc_channel()
                if not self._rpc_queue_seen:
                    await self._check_rpc_queue()
                pending.channel = channel
                await channel.default_exchange.publish(message, self.names.rpc, mandatory=False)
                if on_sent is not None:
                    on_sent()
                body: bytes = await pending.reply
        except TimeoutError:
            raise RpcTimeout(
                f"{method}: no reply from {self.names.rpc} within {timeout} s"
            ) from None
        except ChannelNotFoundEntity:
            raise Unavailable(
                f"{method}: no queue {self.names.rpc} takes requests; has registryd run "
                f"with prefix {self.names.prefix!r}?"
            ) from None
        except BROKER_ERRORS as exc:
            raise Unavailable(f"{method}: RabbitMQ failed: {exc!r}") from exc
        finally:
            self._pending.pop(correlation_id, None)
        return body

    async def execute(
        self,
        op: Operation,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - passed on to call()
    ) -> Any:  # noqa: ANN401 - the raw JSON result
        """Call the RPC method of an operation model; return the raw ``result``."""
        return await self.call(op.method, _params(op), timeout=timeout)

    async def _typed(self, shape: TypeAdapter[_Ok[_T]], op: Operation) -> _T:
        """Call ``op``; its result parsed straight from the reply's bytes into ``shape``.

        One pass of pydantic's JSON parser, no ``json.loads`` first; a reply that does not
        fit (an error reply, or registryd's bug) goes through :func:`_result` for its
        typed error.
        """
        return _parsed(shape, op.method, await self._request(op.method, _params(op), None))

    async def _rpc_channel(self) -> AbstractChannel:
        """The open RPC channel, (re)opened with its reply consumer when needed."""
        async with self._lock:
            connection = await self._connected()
            if self._rpc is None or self._rpc.is_closed:
                # No publisher confirms: a request's reply (or its timeout) tells its
                # outcome, and a confirm would cost a frame and a wake-up per call on
                # both ends (measured: about 0.1x of getWorker's p50).
                channel = await self._channel_on(connection)
                # Direct reply-to: the pseudo-queue is never declared, only consumed,
                # with no-ack, on the channel the requests go out on, before the first.
                replies = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)
                await replies.consume(self._on_reply, no_ack=True)
                channel.close_callbacks.add(self._on_rpc_closed)
                self._rpc = channel
                self._rpc_queue_seen = False
            return self._rpc

    async def _channel_on(self, connection: AbstractConnection) -> AbstractChannel:
        """A channel without publisher confirms; a connection found closed is lost."""
        try:
            return await connection.channel(publisher_confirms=False)
        except RuntimeError as exc:
            # aiormq's "<Connection> closed": the node went before the close callback
            # marked it lost. Mark it now: the next call reconnects.
            self._lost = True
            raise Unavailable(f"RabbitMQ connection lost: {exc}") from exc

    async def _check_rpc_queue(self) -> None:
        """Raise ``ChannelNotFoundEntity`` unless the RPC queue exists.

        Without publisher confirms a request no queue takes would be dropped in silence
        (aiormq matches returns to confirms only), so the first call on each RPC channel
        declares the queue passively (no permission needed), on a channel of its own
        since a missing queue closes the channel it was asked on. A queue deleted later
        makes calls time out instead.
        """
        async with self._lock:
            if self._rpc_queue_seen:
                return
            channel = await self._channel_on(await self._connected())
            try:
                await channel.declare_queue(self.names.rpc, passive=True)
            finally:
                if not channel.is_closed:
                    await channel.close()
            self._rpc_queue_seen = True

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        pending = self._pending.get(message.correlation_id or "")
        if pending is None or pending.reply.done():
            log.debug("reply nobody waits for", correlation_id=message.correlation_id)
            return
        pending.reply.set_result(message.body)

    def _on_rpc_closed(self, channel: object, exc: BaseException | None) -> None:
        # Only the requests sent on that channel: its callback can run after the client
        # moved on to a new connection (a connection found closed on opening a channel).
        error = Unavailable(f"the RPC channel closed: {exc!r}")
        for pending in list(self._pending.values()):
            if pending.channel is channel and not pending.reply.done():
                pending.reply.set_exception(error)

    def _fail_pending(self, error: RegistryError) -> None:
        for pending in self._pending.values():
            if not pending.reply.done():
                pending.reply.set_exception(error)

    # -- typed operations --------------------------------------------------------------

    async def ping(self) -> PingResult:
        """``ping``: registryd's version, the current revision, the epoch, the lease."""
        return await self._typed(_PING, Ping())

    async def find_worker_id(self, name: str) -> int:
        """``findWorkerId``: the worker's id, created when the name is new."""
        result = await self.execute(_op(FindWorkerId, name=name))
        if type(result) is not int:
            raise Internal(f"findWorkerId: the result is not an id: {result!r}")
        return result

    async def get_worker(
        self,
        workerid: int | None = None,
        name: str | None = None,
        masterid: int | None = None,
        builderid: int | None = None,
    ) -> Worker | None:
        """``getWorker``: one worker by id and/or name, or ``None``."""
        op = _op(GetWorker, workerid=workerid, name=name, masterid=masterid, builderid=builderid)
        return await self._typed(_WORKER, op)

    async def get_workers(
        self,
        masterid: int | None = None,
        builderid: int | None = None,
        paused: bool | None = None,
        graceful: bool | None = None,
        *,
        page_size: int = MAX_PAGE,
    ) -> list[Worker]:
        """``getWorkers``: the workers matching every given filter, by ascending id.

        Fetched in pages of ``page_size`` (``limit``/``after``), so a registry of any size
        lists on a broker with a message size limit; a page the daemon finds too large is
        asked for again in halves. Pages may straddle changes (PROTOCOL.md section 2).
        """
        filters = _filters(masterid, builderid, paused, graceful)
        return await self._paged(
            filters, page_size, lambda body: _parsed(_WORKERS, "getWorkers", body), lambda w: w.id
        )

    async def get_workers_json(
        self,
        masterid: int | None = None,
        builderid: int | None = None,
        paused: bool | None = None,
        graceful: bool | None = None,
        *,
        page_size: int = MAX_PAGE,
    ) -> list[Any]:
        """:meth:`get_workers`, paged the same way, as the RPC's JSON records (dicts)."""
        filters = _filters(masterid, builderid, paused, graceful)
        return await self._paged(
            filters, page_size, lambda body: _result("getWorkers", body), lambda w: int(w["id"])
        )

    async def _paged(
        self,
        filters: dict[str, Any],
        page_size: int,
        decode: Callable[[bytes], list[_T]],
        id_of: Callable[[_T], int],
    ) -> list[_T]:
        """Every page of a ``getWorkers`` listing, halving pages the daemon finds too large.

        The next page is asked for while this one is decoded, from the last id its bytes
        show; the decoded last id must agree, or that early request is dropped and the
        page asked for again (a ``workerinfo`` can hold an ``{"id":`` of its own).
        """
        workers: list[_T] = []
        after = 0
        ahead: tuple[int, int, asyncio.Task[bytes]] | None = None  # after, size, request
        try:
            while True:
                if ahead is not None and ahead[:2] == (after, page_size):
                    body = await ahead[2]
                else:
                    if ahead is not None:
                        await _dropped(ahead[2])
                    body = await self._page(filters, page_size, after)
                ahead = None
                guess = _last_id(body, page_size)
                if guess is not None:
                    sent = asyncio.get_running_loop().create_future()
                    early = asyncio.create_task(
                        self._page(filters, page_size, guess, partial(sent.set_result, None))
                    )
                    ahead = (guess, page_size, early)
                    # Decoding holds the loop: the request must be on its way first, so
                    # that the daemon reads the next page while this one is decoded.
                    await asyncio.wait([sent, early], return_when=asyncio.FIRST_COMPLETED)
                try:
                    page = decode(body)
                except TooLarge:
                    if page_size == 1:
                        raise
                    page_size = max(1, page_size // 2)
                    continue
                workers += page
                if len(page) < page_size:
                    return workers
                after = id_of(page[-1])
        finally:
            if ahead is not None:
                await _dropped(ahead[2])

    async def _page(
        self,
        filters: dict[str, Any],
        size: int,
        after: int,
        on_sent: Callable[[], None] | None = None,
    ) -> bytes:
        """The reply's bytes for one page of a ``getWorkers`` listing."""
        op = _op(GetWorkers, **filters, limit=size, after=after)
        return await self._request(op.method, _params(op), None, on_sent)

    async def worker_connected(
        self,
        workerid: int,
        masterid: int,
        workerinfo: dict[str, Any],
        connection: str | None = None,
    ) -> None:
        """``workerConnected``: the worker is attached to the master (named session)."""
        await self.execute(
            _op(
                WorkerConnected,
                workerid=workerid,
                masterid=masterid,
                workerinfo=workerinfo,
                connection=connection,
            )
        )

    async def worker_disconnected(
        self, workerid: int, masterid: int, connection: str | None = None
    ) -> None:
        """``workerDisconnected``: the worker left the master (a stale session is ignored)."""
        await self.execute(
            _op(WorkerDisconnected, workerid=workerid, masterid=masterid, connection=connection)
        )

    async def worker_configured(
        self, workerid: int, masterid: int, builderids: Sequence[int]
    ) -> None:
        """``workerConfigured``: the worker's builders on this master, replaced."""
        await self.execute(
            _op(WorkerConfigured, workerid=workerid, masterid=masterid, builderids=list(builderids))
        )

    async def deconfigure_all_workers_for_master(self, masterid: int) -> None:
        """``deconfigureAllWorkersForMaster``: drop every pair of that master."""
        await self.execute(_op(DeconfigureAllWorkersForMaster, masterid=masterid))

    async def set_worker_paused(
        self, workerid: int, paused: bool, pause_reason: str | None = None
    ) -> None:
        """``set_worker_paused``: the flag and reason, stored as given (``None`` clears)."""
        await self.execute(
            _op(SetWorkerPaused, workerid=workerid, paused=paused, pause_reason=pause_reason)
        )

    async def set_worker_graceful(self, workerid: int, graceful: bool) -> None:
        """``set_worker_graceful``: the graceful-stop flag."""
        await self.execute(_op(SetWorkerGraceful, workerid=workerid, graceful=graceful))

    async def master_heartbeat(self, masterid: int, name: str | None = None) -> None:
        """``masterHeartbeat``: the master is alive for one more lease (and named)."""
        await self.execute(_op(MasterHeartbeat, masterid=masterid, name=name))

    async def master_stopped(self, masterid: int) -> None:
        """``masterStopped``: a clean shutdown; its workers are disconnected now."""
        await self.execute(_op(MasterStopped, masterid=masterid))

    async def get_masters(self) -> list[Master]:
        """``getMasters``: every master that sent a heartbeat or was stopped, by id."""
        return await self._typed(_MASTERS, GetMasters())

    async def get_changes(self, since: int, limit: int = 100) -> ChangesPage:
        """``getChanges``: the changes after revision ``since``, at most ``limit`` (1..1000).

        Raises :class:`~registryd.errors.ResyncRequired` when ``since`` is older than
        the retained history.
        """
        op = _op(GetChanges, since=since, limit=limit)
        return await self._typed(_CHANGES, op)

    # -- events ------------------------------------------------------------------------

    async def publish_event(
        self,
        event_type: str,
        fields: dict[str, Any],
        *,
        message_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the client's default unless given
    ) -> None:
        """Publish ``{"type": event_type, **fields}`` and wait for the broker's confirm.

        The event goes to ``<prefix>.events`` with routing key ``event_type``, persistent,
        as JSON. ``message_id`` makes it idempotent at registryd (use one per logical
        event when you may publish it again); without one, aiormq stamps a random id.
        No confirm within ``timeout`` raises :class:`RpcTimeout`; an event no queue takes
        (the topology is missing) or a broker refusal raises
        :class:`~registryd.errors.Unavailable`. Fields are sent as given: use
        :meth:`publish` to have them checked first.
        """
        timeout = _check_timeout(self.timeout if timeout is None else timeout)
        if "type" in fields:
            raise ValueError("the event's type is event_type; fields must not have 'type'")
        message = aio_pika.Message(
            json.dumps({"type": event_type, **fields}, ensure_ascii=False).encode(),
            content_type=JSON,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            user_id=self.user,
        )
        exchange = self.names.events
        try:
            async with asyncio.timeout(timeout):
                channel = await self._events_channel()
                # Not declared here: registryd owns the topology and its arguments.
                target = await channel.get_exchange(exchange, ensure=False)
                await target.publish(message, event_type, mandatory=True)
        except TimeoutError:
            raise RpcTimeout(f"{event_type}: no confirm within {timeout} s") from None
        except ChannelNotFoundEntity:
            raise Unavailable(
                f"{event_type}: exchange {exchange} does not exist; has registryd run "
                f"with prefix {self.names.prefix!r}?"
            ) from None
        except Unroutable:
            raise Unavailable(f"{event_type}: no queue is bound to {exchange}") from None
        except BROKER_ERRORS as exc:
            raise Unavailable(f"{event_type}: RabbitMQ did not take the event: {exc!r}") from exc

    async def publish(
        self,
        op: Operation,
        *,
        message_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - passed on to publish_event()
    ) -> None:
        """Publish an operation as its lifecycle event (``op.event_type``), confirmed.

        Raises :class:`ValueError` for operations that have no event (reads,
        ``findWorkerId``).
        """
        if op.event_type is None:
            raise ValueError(f"{op.method} has no lifecycle event; call it over RPC instead")
        await self.publish_event(op.event_type, _params(op), message_id=message_id, timeout=timeout)

    async def _events_channel(self) -> AbstractChannel:
        """The open events channel (a 404 on a missing exchange closes it: reopen)."""
        async with self._lock:
            connection = await self._connected()
            if self._events is None or self._events.is_closed:
                self._events = await connection.channel(on_return_raises=True)
            return self._events

    # -- notifications -----------------------------------------------------------------

    def subscribe(
        self,
        *,
        routing_keys: Sequence[str] = ("#",),
        since: int | None = None,
        epoch: str | None = None,
    ) -> Subscription:
        """A stream of change notifications; see :class:`Subscription` for the guarantees.

        ``since`` resumes after that revision (``epoch``, when given, must still be the
        registry's, else the stream starts with a :class:`Resync`).
        """
        return Subscription(self, routing_keys=routing_keys, since=since, epoch=epoch)


def _ssl_context(urls: Sequence[str], tls: TlsFiles | None) -> ssl.SSLContext | None:
    """aio-pika's ``ssl_context`` when a node is ``amqps://`` (``None`` for ``amqp://`` alone)."""
    if not any(uses_tls(url) for url in urls):
        return None
    try:
        tls = tls or TlsFiles.from_environ("amqp", os.environ)
        return tls.context()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:  # ssl.SSLError too
        raise ConfigError(f"cannot use the TLS files for RabbitMQ ({exc})") from None


def _filters(
    masterid: int | None, builderid: int | None, paused: bool | None, graceful: bool | None
) -> dict[str, Any]:
    """The filters of a ``getWorkers`` as params (``None``: not given)."""
    return {"masterid": masterid, "builderid": builderid, "paused": paused, "graceful": graceful}


def _check_timeout(timeout: float) -> float:
    """A timeout, refused unless positive (0 would expire every request at once)."""
    if not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    return timeout


def _op(model: type[_M], **params: Any) -> _M:  # noqa: ANN401 - validated by the model
    """The operation's model, checked here as registryd would (:class:`InvalidParams`)."""
    return parse_params(model, params)


def _params(op: Operation) -> dict[str, Any]:
    """The wire params: ``None`` means "not given" and is left out, except a pause reason.

    ``pause_reason`` is stored exactly as given (PROTOCOL.md section 2), so ``null`` is
    sent explicitly: it says "no reason" rather than "unspecified".
    """
    params = op.model_dump(mode="json", exclude_none=True)
    if isinstance(op, SetWorkerPaused):
        params["pause_reason"] = op.pause_reason
    return params


def _parsed(shape: TypeAdapter[_Ok[_T]], method: str, body: bytes) -> _T:
    """A reply's result parsed straight from its bytes into ``shape``.

    One pass of pydantic's JSON parser, no ``json.loads`` first; a reply that does not
    fit (an error reply, or registryd's bug) goes through :func:`_result` for its typed
    error.
    """
    try:
        with _collector_held():
            return shape.validate_json(body).result
    except ValidationError as exc:
        _result(method, body)  # raises the reply's own error, if it is one
        raise Internal(f"{method}: unexpected result: {exc}") from None


def _last_id(body: bytes, page_size: int) -> int | None:
    """The last worker id a full page's bytes show, or ``None`` for a page not full.

    A guess: a worker's document starts with ``{"id":``, but its ``workerinfo`` may
    hold one too (then there are more than counted, and the last may be that one).
    """
    if body.count(b'{"id":') < page_size:
        return None
    digits = _DIGITS.match(body, body.rindex(b'{"id":') + len(b'{"id":'))
    return None if digits is None else int(digits[0])


async def _dropped(request: asyncio.Task[bytes]) -> None:
    """Cancel a page asked for early and not wanted; whatever it ended with is moot."""
    request.cancel()
    await asyncio.wait([request])  # the caller's own cancellation still reaches it
    if not request.cancelled():
        request.exception()  # retrieved: nothing to report


def decode_json(body: bytes) -> Any:  # noqa: ANN401 - any JSON value
    """``body`` decoded as :func:`json.loads` decodes it, faster: the client's decoder.

    By pydantic-core's parser (jiter builds the same values in Rust: at 10,000 workers
    25 ms against ``json.loads``'s 45, with the collector off in both), with the
    garbage collector held off (:func:`_collector_held`). Where jiter refuses what
    ``json.loads`` takes (a lone surrogate escape, nesting deeper than 200),
    ``json.loads`` decodes; JSON that neither takes raises :class:`ValueError`.
    """
    with _collector_held():
        try:
            return from_json(body)
        except ValueError:
            return json.loads(body)


@contextlib.contextmanager
def _collector_held() -> Iterator[None]:
    """The cyclic garbage collector held off while a reply is decoded.

    A decode builds containers by the thousand, none in a cycle, so a collection finds
    nothing to free; left on, the collector ran 90 young and about one full collection
    for each 10,000 workers decoded (17-19 of 40-45 ms, in a process of 62,000 objects;
    a full collection walks every object of the process, so a larger one pays more).
    Once back on, it looks at the new objects once. Mercurial's ``util.nogc`` does the
    same around building large structures. Left alone where the collector is off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _result(method: str, body: bytes) -> Any:  # noqa: ANN401 - the raw JSON result
    """The ``result`` of an RPC reply, or its error raised as the typed exception."""
    try:
        reply = decode_json(body)
    except ValueError:
        raise Internal(f"{method}: the reply is not JSON: {body[:200]!r}") from None
    if isinstance(reply, dict) and reply.get("ok") is True:
        return reply.get("result")
    error = reply.get("error") if isinstance(reply, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        raise error_for_code(error["code"], str(error.get("message", "")))
    raise Internal(f"{method}: the reply is not a protocol reply: {body[:200]!r}")
