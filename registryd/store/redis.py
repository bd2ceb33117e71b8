"""The Redis store: the only module that talks to Redis.

Every write is one Lua script (:mod:`registryd.store.lua`) that checks, changes the
state, bumps the revision and appends its change records to the change log in one
atomic step. Reads are one script call each, so a listing of any size is one round trip
and one consistent snapshot. :class:`RedisStore` implements :class:`registryd.ports.Store`
and :class:`RelayStore` implements :class:`registryd.ports.RelayLog`.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import structlog
from pydantic import TypeAdapter
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    MovedError,
    NoScriptError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from registryd.errors import (
    EpochMissing,
    Internal,
    NotFound,
    RegistryError,
    ResyncRequired,
    Unavailable,
)
from registryd.models import WORKER_ADAPTER, ChangesPage, FindWorkerId, Master, Operation, Worker
from registryd.ports import DUPLICATE, Applied, Listing, LoggedChange, Published, RelayClaim
from registryd.registry import WorkerFilter
from registryd.store.keys import LAYOUT_VERSION, Keys
from registryd.store.lua import BATCH, SOURCES, batch_args, write_args, write_script
from registryd.store.sorted import Outcome, SortedListings

__all__ = ["RedisClient", "RedisStore", "RelayStore", "StoreSettings", "redis_errors"]

log = structlog.get_logger(__name__)

#: One server or a Sentinel-found master (``Redis``), or a Redis Cluster.
RedisClient = Redis | RedisCluster
#: What a lost or slow Redis raises; the store turns it into ``Unavailable``. A cluster
#: without a node for the slot (a failover under way) is one of them, and so is a
#: cluster client that cannot route a command: redis-py retries a pipeline after a lost
#: connection without the ``target_nodes`` it was given (it pops them on the first
#: try), so a keyless command (the script loading's ``MULTI``) then has nowhere to go.
_BACKEND_DOWN = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    TimeoutError,
    ClusterError,
    RedisClusterException,
)
#: Replies that say "not now" rather than "no": a demoted master (READONLY), a replica
#: still loading, a cluster slot moving (TRYAGAIN, ASK) or moved (MOVED, a batch's
#: scripts are not redirected one by one) or without a master. The write did not
#: happen; it is retried like a lost connection, never refused.
#: redis-py turns these classes' codes into classes and strips them from the text.
_NOT_NOW_ERRORS = (ReadOnlyError, TryAgainError, ClusterDownError, AskError, MovedError)
#: UNBLOCKED: a blocking command (the relay's XREAD, a WAIT) cut short as its master
#: turned replica; the command is simply made again.
_NOT_NOW: Final = (
    "READONLY ",
    "LOADING ",
    "MASTERDOWN ",
    "CLUSTERDOWN ",
    "TRYAGAIN ",
    "BUSY ",
    "UNBLOCKED ",
)
#: What a write script returns for an already-seen ``message_id`` (``_lib.lua``).
_LUA_DUPLICATE: Final = -1
_WORKERS = TypeAdapter(list[Worker])
_MASTERS = TypeAdapter(list[Master])
_CHANGES = TypeAdapter(ChangesPage)
#: The field of a worker's hash holding its JSON document (written by ``_lib.lua``).
_SCRIPT_TRAILER = re.compile(r"\s*script: \w+, on @user_script:\d+\.$")


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """The store's tunables; the defaults are the protocol's minimums."""

    master_lease_ms: int = 60_000
    retain_changes: int = 100_000
    message_memory_ms: int = 600_000
    #: Replicas a write must reach (``WAIT``) before it counts as done; 0: no wait.
    wait_replicas: int = 0
    wait_timeout_ms: int = 1_000
    #: Unfiltered listings through ``SORT_RO`` where Redis allows it (:mod:`.sorted`);
    #: off, every listing is a script call.
    sorted_listings: bool = True


def _error_from(exc: Exception) -> RegistryError:
    if not isinstance(exc, ResponseError):
        return Unavailable(f"redis: {exc}")
    text = _SCRIPT_TRAILER.sub("", str(exc))
    if isinstance(exc, _NOT_NOW_ERRORS) or text.startswith(_NOT_NOW):
        return Unavailable(f"redis cannot write now ({type(exc).__name__}): {text}")
    if text.startswith("NOT_FOUND "):
        return NotFound(text.removeprefix("NOT_FOUND "))
    if text.startswith("NOEPOCH "):
        return EpochMissing(text.removeprefix("NOEPOCH "))
    return Internal(f"redis script failed: {text}")


@contextmanager
def redis_errors() -> Iterator[None]:
    """Turn redis-py's failures into the protocol's errors (``unavailable`` when down)."""
    try:
        yield
    except ResponseError as exc:
        raise _error_from(exc) from None
    except _BACKEND_DOWN as exc:
        raise Unavailable(f"redis: {exc}") from exc


def _per_write(reply: object, count: int) -> list[Any]:
    """A batch's reply as one per write: its list, or what failed the whole of it, for each."""
    if count == 1 or isinstance(reply, Exception):
        return [reply] * count
    if not isinstance(reply, list) or len(reply) != count:
        raise Internal(f"redis: {count} writes answered with {reply!r:.200}")
    return reply


def _aimed_at(node: object) -> dict[str, Any]:
    """A pipelined command's keyword to send it to ``node`` (a cluster's); none elsewhere."""
    return {} if node is None else {"target_nodes": node}


def _applied(reply: object) -> Applied:
    count = int(reply)  # type: ignore[call-overload]
    return DUPLICATE if count == _LUA_DUPLICATE else count


class RedisStore:
    """The registry's state in Redis, under one prefix."""

    def __init__(
        self, redis: RedisClient, keys: Keys, settings: StoreSettings | None = None
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings or StoreSettings()
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(source) for name, source in SOURCES.items()
        }
        self._key_list = keys.script_keys()
        # SORT's GET patterns are refused on a cluster: listings go through the script.
        self._sorted: SortedListings | None = None
        if self.settings.sorted_listings and isinstance(redis, Redis):
            self._sorted = SortedListings(redis, keys)

    def _argv(
        self, args: Sequence[str | int], message_id: str | None, now_ms: int | None
    ) -> list[str | int]:
        s = self.settings
        now = "" if now_ms is None else now_ms
        header: list[str | int] = [
            s.retain_changes,
            message_id or "",
            s.message_memory_ms,
            now,
            s.master_lease_ms,
        ]
        return [*header, *args]

    async def run_script(
        self,
        script: str,
        *args: str | int,
        message_id: str | None = None,
        now_ms: int | None = None,
        durable: bool = False,
    ) -> Any:  # noqa: ANN401 - scripts return Redis replies
        """Run one script with the common ``ARGV`` header and ``args`` after it.

        ``durable``: with ``wait_replicas`` set, the script's writes must reach that many
        replicas (:meth:`_replicated`) before it returns.
        """
        argv = self._argv(args, message_id, now_ms)
        if durable and self.settings.wait_replicas:
            return await self._run_durable(script, argv)
        with redis_errors():
            return await self._scripts[script](self._key_list, argv)

    async def _run_durable(self, script: str, argv: list[str | int]) -> Any:  # noqa: ANN401
        """The script and ``WAIT`` in one round trip on one connection (WAIT is per client)."""
        for _ in range(2):
            pipe = self.redis.pipeline(transaction=False)
            self._evalsha(pipe, self._scripts[script].sha, argv)
            node = await self._slot_node()
            self._wait_step(pipe, node)
            with redis_errors():
                reply, _, reached = await pipe.execute(raise_on_error=False)
            if isinstance(reply, NoScriptError):  # Redis lost its script cache
                await self.load_scripts()
                continue
            if isinstance(reply, Exception):
                raise _error_from(reply)
            self._replicated(reached, node)
            return reply
        raise Unavailable("redis: the scripts vanish from its cache as they are loaded")

    def _evalsha(self, pipe: Any, sha: str, argv: list[str | int], **target: Any) -> None:  # noqa: ANN401
        """Queue one script call (a cluster pipeline takes EVALSHA as a raw command only)."""
        pipe.execute_command("EVALSHA", sha, len(self._key_list), *self._key_list, *argv, **target)

    async def _slot_node(self) -> object:
        """On a cluster, the node that serves the prefix's slot now; ``None`` elsewhere."""
        if not isinstance(self.redis, RedisCluster):
            return None
        await self.redis.initialize()
        return self.redis.get_node_from_key(self.keys.wait_fence)

    def _wait_step(self, pipe: Any, node: object) -> None:  # noqa: ANN401 - either pipeline
        """Append the fence's write and ``WAIT n timeout`` (two replies).

        On a cluster both go to ``node`` (:meth:`_slot_node`), on the connection that
        carries the pipeline's scripts; :meth:`_replicated` checks that the slot did not
        move meanwhile (a redirected script would have run on another connection).
        """
        s = self.settings
        pipe.set(self.keys.wait_fence, 1)
        pipe.execute_command("WAIT", s.wait_replicas, s.wait_timeout_ms, **_aimed_at(node))

    def _replicated(self, reached: object, node: object = None) -> None:
        """Raise ``Unavailable`` unless ``WAIT`` saw enough replicas: not acked, retried."""
        wanted = self.settings.wait_replicas
        moved = isinstance(self.redis, RedisCluster) and (
            getattr(node, "name", None)
            != getattr(self.redis.get_node_from_key(self.keys.wait_fence), "name", None)
        )
        if isinstance(reached, int) and reached >= wanted and not moved:
            return
        if moved:
            why = "the slot moved to another node during the write"
        elif isinstance(reached, int):
            timeout = self.settings.wait_timeout_ms
            why = f"the write reached {reached} of {wanted} replicas within {timeout} ms"
        else:
            why = f"WAIT failed: {reached}"
        log.warning(
            "write not confirmed by enough redis replicas; not acknowledged, will retry",
            reason=why,
            wanted=wanted,
        )
        raise Unavailable(f"redis: {why} (REGISTRYD_REDIS_WAIT_REPLICAS={wanted})")

    # Epoch and revision ------------------------------------------------------------------

    async def init_epoch(self) -> tuple[str, bool]:
        """The current epoch, making a new one if there is none; ``True`` when made now.

        First brings keys an older registryd wrote to this version's layout (once,
        atomically: ``migrate.lua``).
        """
        started = time.monotonic()
        converted = await self.run_script("migrate", LAYOUT_VERSION)
        if converted:
            log.info(
                "registry keys migrated to this version's layout",
                layout=LAYOUT_VERSION,
                workers=converted,
                seconds=round(time.monotonic() - started, 3),
            )
        epoch, made = await self.run_script("init_epoch", secrets.token_hex(16), durable=True)
        return _text(epoch), bool(made)

    async def state(self) -> tuple[int, str | None]:
        """The current revision and epoch (``None`` before the first start)."""
        with redis_errors():
            rev, epoch = await self.redis.mget([self.keys.revision, self.keys.epoch])
        return int(rev or 0), None if epoch is None else _text(epoch)

    # Writes ------------------------------------------------------------------------------

    async def apply(
        self, op: Operation, message_id: str | None = None, now_ms: int | None = None
    ) -> Applied:
        """Apply one write; the number of changes it logged, or :data:`DUPLICATE`."""
        script = write_script(op)
        reply = await self.run_script(
            script, *write_args(op), message_id=message_id, now_ms=now_ms, durable=True
        )
        return _applied(reply)

    async def apply_many(
        self, ops: Sequence[tuple[Operation, str | None]]
    ) -> list[Applied | RegistryError]:
        """Apply writes in order in one round trip; each result as :meth:`apply`'s or its error.

        The batch is one script run (:meth:`_pipeline`), each write applied in turn as
        its own script would; a failed one does not stop the rest. The script goes as a
        bare EVALSHA: redis-py's own script pipelining would first ask ``SCRIPT
        EXISTS``, a second round trip per batch. When Redis has lost its script cache (a
        restart), the scripts are loaded again and the batch is sent again. A reply that
        says Redis cannot write now (a demoted master, a moving slot) fails the whole
        batch as ``Unavailable``: the batch is retried, its events are not refused.
        With ``wait_replicas``, a ``WAIT`` closes the batch: too few replicas fail it too.
        """
        replies = await self._pipeline(ops)
        if any(isinstance(r, NoScriptError) for r in replies):
            await self.load_scripts()
            replies = await self._pipeline(ops)
        results = [_error_from(r) if isinstance(r, Exception) else _applied(r) for r in replies]
        down = next((r for r in results if isinstance(r, Unavailable)), None)
        if down is not None:
            raise down
        return results

    async def _pipeline(self, ops: Sequence[tuple[Operation, str | None]]) -> list[Any]:
        """The batch's writes in one script run (:data:`~.lua.BATCH`); each one's reply or error.

        One script, so that nothing runs between two writes of the batch, and the
        prelude and library run once for all of them. Redis's script cache holds it or
        not: a batch fails as a whole (``NOSCRIPT``) or runs in full, never in part.
        A batch of one write runs that write's own script.
        """
        pipe = self.redis.pipeline(transaction=False)
        node = await self._slot_node()  # on a cluster, every command of the batch goes there
        target = _aimed_at(node)
        if len(ops) == 1:
            op, message_id = ops[0]
            script, argv = write_script(op), self._argv(write_args(op), message_id, None)
        else:
            script, argv = BATCH, self._argv(batch_args(ops), None, None)
        self._evalsha(pipe, self._scripts[script].sha, argv, **target)
        durable = bool(self.settings.wait_replicas)
        if durable:
            self._wait_step(pipe, node)
        with redis_errors():
            reply, *waited = await self._send(pipe)
        if durable:
            self._replicated(waited[-1], node)
        return _per_write(reply, len(ops))

    async def _send(self, pipe: Any) -> list[Any]:  # noqa: ANN401 - either kind of pipeline
        """Execute a batch's pipeline; on a cluster, all of it on one node or not at all.

        redis-py would re-send each redirected (MOVED) command on its own and go on past
        one that fails there; the batch's retry would then apply that one after later
        events, out of queue order. So nothing is redirected: a moved slot fails the
        batch as ``Unavailable``, the slot is pointed at the node the ``MOVED`` names,
        and the retry sends the whole batch to the new master, where what the old one
        applied before the move is a duplicate.
        """
        if not isinstance(self.redis, RedisCluster):
            replies: list[Any] = await pipe.execute(raise_on_error=False)
            return replies
        replies = await pipe.execute(raise_on_error=False, allow_redirections=False)
        moved = next((r for r in replies if isinstance(r, MovedError)), None)
        if moved is not None:  # as redis-py does for one command: the slot's new node
            await self.redis.nodes_manager.move_slot(moved)
        return replies

    async def load_scripts(self) -> None:
        """Load every script into Redis's script cache (at start, and after a restart).

        On a cluster each goes to every master, so a slot that moves finds them there.
        """
        nodes: list[Any] = [None]
        if isinstance(self.redis, RedisCluster):
            with redis_errors():
                await self.redis.initialize()
            nodes = list(self.redis.get_primaries())
        pipe = self.redis.pipeline(transaction=False)
        for node in nodes:
            # All at once (MULTI): a script run meanwhile finds every script or none.
            target = _aimed_at(node)
            pipe.execute_command("MULTI", **target)
            for source in SOURCES.values():
                pipe.execute_command("SCRIPT LOAD", source, **target)
            pipe.execute_command("EXEC", **target)
        with redis_errors():
            replies = await pipe.execute(raise_on_error=False)
        failed = next((r for r in replies if isinstance(r, Exception)), None)
        if failed is not None:
            raise _error_from(failed)

    async def find_worker_id(self, name: str) -> int:
        """``findWorkerId``: the id of ``name``, creating the worker when it is new."""
        op = FindWorkerId(name=name)
        return int(await self.run_script(write_script(op), *write_args(op), durable=True))

    async def expire_masters(self, now_ms: int | None = None, limit: int = 100) -> list[int]:
        """Expire every master whose lease ended; each exactly once across processes."""
        ids = await self.run_script("expire_masters", limit, now_ms=now_ms)
        return [int(i) for i in ids]

    async def next_lease_end(self) -> float | None:
        """Seconds from now until the earliest lease ends, by Redis's clock; ``None``: no lease.

        Negative when a lease has already ended (an expiry pass is due).
        """
        ms = await self.run_script("next_lease_end")
        return None if ms is None else int(ms) / 1000

    # Reads -------------------------------------------------------------------------------

    async def read_listing(
        self,
        where: WorkerFilter,
        after: int = 0,
        limit: int | None = None,
        budget: int | None = None,
    ) -> Listing | None:
        """``getWorkers``: the listed documents, cut down, joined, by ascending id.

        One snapshot; ``None`` when the joined documents would be over ``budget`` bytes.
        A listing with no id filter and no true flag, or with ``masterid`` alone, is
        read with ``SORT_RO`` (:mod:`.sorted`); any other is one script call, which
        stops as soon as the budget is passed (nothing that large crosses from Redis).
        """
        sorted_listing = await self._sorted_listing(where, after, limit, budget)
        if sorted_listing is not Outcome.USE_SCRIPT:
            return None if sorted_listing is Outcome.OVER_BUDGET else sorted_listing
        status, *docs = await self.run_script(
            "read_workers", "list", *_page(after, limit, budget), *_filter_args(where)
        )
        return None if status < 0 else Listing(len(docs), b",".join(docs))

    async def _sorted_listing(
        self, where: WorkerFilter, after: int, limit: int | None, budget: int | None
    ) -> Listing | Outcome:
        """The listing through ``SORT_RO`` (:mod:`.sorted`), where it can go that way."""
        if self._sorted is None:
            return Outcome.USE_SCRIPT
        masterid, leave_out = where.masterid, self._left_out_by(where)
        with redis_errors():
            if masterid is not None and where == WorkerFilter(masterid):
                return await self._sorted.read_by("masterid", masterid, after, limit, budget)
            builderid = where.builderid
            if builderid is not None and where == WorkerFilter(builderid=builderid):
                return await self._sorted.read_by("builderid", builderid, after, limit, budget)
            if leave_out is not None:
                return await self._sorted.read(after, limit, budget, leave_out)
        return Outcome.USE_SCRIPT

    def _left_out_by(self, where: WorkerFilter) -> list[str] | None:
        """The sets a sorted listing leaves out for ``where``; ``None``: only a script can."""
        if where.masterid is not None or where.builderid is not None:
            return None  # the documents are cut down to the matching pairs, in Lua
        flags = ((where.paused, self.keys.paused), (where.graceful, self.keys.graceful))
        if any(flag for flag, _ in flags):
            return None  # a true flag reads its (small) set only, through the script
        return [key for flag, key in flags if flag is False]

    async def read_worker_docs(
        self, masterid: int | None = None, after: int = 0, limit: int | None = None
    ) -> list[bytes]:
        """Whole worker documents with ids above ``after`` (those with pairs on ``masterid``).

        At most ``limit`` of them (all when ``None``), by ascending id, one snapshot.
        """
        where = _filter_args(WorkerFilter(masterid))
        reply: list[bytes] = await self.run_script(
            "read_workers", "docs", *_page(after, limit, None), *where
        )
        return reply[1:]

    async def read_worker_doc(self, workerid: int) -> bytes | None:
        """One worker's JSON document, or ``None``.

        One plain ``GET`` of the worker's document key (a single command is as consistent
        as a script), not the ``read_workers`` script: ``getWorker`` is the hot read and
        a script call costs the fixed ``KEYS`` and header on both ends.
        """
        with redis_errors():
            doc = await self.redis.get(self.keys.worker(workerid))
        return doc.encode() if isinstance(doc, str) else doc

    async def read_workers(self, masterid: int | None = None) -> list[Worker]:
        """Every worker (or those with pairs on ``masterid``), unfiltered, as models."""
        docs = await self.read_worker_docs(masterid)
        return _WORKERS.validate_json(b"[" + b",".join(docs) + b"]")

    async def read_worker(self, workerid: int) -> Worker | None:
        """One worker by id, unfiltered, as a model."""
        doc = await self.read_worker_doc(workerid)
        return None if doc is None else WORKER_ADAPTER.validate_json(doc)

    async def worker_id_of(self, name: str) -> int | None:
        """The id of a name, without creating it."""
        with redis_errors():
            found = await self.redis.hget(self.keys.names, name)
        return None if found is None else int(found)

    async def read_masters(self) -> list[Master]:
        """``getMasters``."""
        docs = await self.run_script("read_masters")
        return _MASTERS.validate_json(b"[" + b",".join(docs) + b"]")

    async def remembered(self, message_ids: Sequence[str]) -> int:
        """How many of ``message_ids`` are remembered (their events applied or no-ops)."""
        if not message_ids:
            return 0
        return int(await self.run_script("read_remembered", *message_ids))

    async def read_changes(self, since: int, limit: int) -> ChangesPage:
        """``getChanges``: the change records after ``since``, or :class:`ResyncRequired`."""
        current, oldest, *bodies = await self.run_script("read_changes", since, limit)
        if since < current and (oldest == 0 or since + 1 < oldest):
            raise ResyncRequired(
                f"changes after revision {since} are no longer retained (oldest kept: "
                f"{oldest or 'none'}); reload with getWorkers and continue from ping's revision"
            )
        return _CHANGES.validate_json(
            b'{"revision":%d,"changes":[' % current + b",".join(bodies) + b"]}"
        )


def _page(after: int, limit: int | None, budget: int | None) -> tuple[int, str | int, str | int]:
    return after, "" if limit is None else limit, "" if budget is None else budget


def _filter_args(where: WorkerFilter) -> list[str | int]:
    """The filters as ``read_workers.lua`` takes them: ids, flags as 1/0, '' when not given."""
    flags = ["" if flag is None else int(flag) for flag in (where.paused, where.graceful)]
    ids = ["" if i is None else i for i in (where.masterid, where.builderid)]
    return [*ids, *flags]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _published_args(published: Published) -> tuple[str, str, str]:
    revision = "" if published.revision is None else str(published.revision)
    return published.epoch, revision, published.reset or ""


class RelayStore:
    """The relay's view of the change log in Redis (:class:`registryd.ports.RelayLog`)."""

    def __init__(self, store: RedisStore, token: str | None = None) -> None:
        self.store = store
        self.token = token or secrets.token_hex(8)

    async def claim(
        self,
        lock_ms: int,
        count: int,
        published: Published | None = None,
        in_flight: Published | None = None,
    ) -> RelayClaim:
        """Take or keep the role for ``lock_ms``; the epoch, cursor, reset and what follows.

        ``published`` (what was confirmed since the last claim) is recorded in the same
        step, if this process still held the role in that epoch: one round trip a batch.
        Entries are read after ``in_flight`` (sent, awaiting its confirms) if it is of the
        current epoch and ahead of the cursor.
        """
        done = ("", "", "") if published is None else _published_args(published)
        ahead = ("", "") if in_flight is None else _published_args(in_flight)[:2]
        # Durable: the claim writes its lock, so WAIT covers every change it read; the
        # relay never publishes a change that a failover could take back.
        reply = await self.store.run_script(
            "relay_claim", self.token, lock_ms, count, *done, *ahead, durable=True
        )
        held, epoch, cursor, reset, *rest = reply
        changes = [
            LoggedChange(int(rest[i]), _text(rest[i + 1]), rest[i + 2])
            for i in range(0, len(rest), 3)
        ]
        return RelayClaim(bool(held), _text(epoch), int(cursor), _text(reset) or None, changes)

    async def wait(self, cursor: int, block_ms: int) -> None:
        """Return when an entry after ``cursor`` exists, or after ``block_ms``."""
        with redis_errors():
            await self.store.redis.xread(
                {self.store.keys.changes: f"{cursor}-1"}, count=1, block=block_ms
            )

    async def advance(self, epoch: str, revision: int | None, reset: str | None) -> bool:
        """Record what was published; ``False`` if the role or the epoch changed meanwhile."""
        rev = "" if revision is None else revision
        reply = await self.store.run_script("relay_advance", self.token, epoch, rev, reset or "")
        return bool(reply)

    async def release(self) -> None:
        """Give the role up so another process can take it at once."""
        await self.store.run_script("relay_release", self.token)
