"""The Redis store: the only module that talks to Redis.

Every write is one Lua script (``scripts/*.lua``, each prefixed by ``_lib.lua``) that
checks, changes the state, bumps the revision and appends its change records to the
change log in one atomic step. Reads are one script call each, so a listing of any size
is one round trip and one consistent snapshot.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from pydantic import TypeAdapter
from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from registryd.errors import Internal, NotFound, RegistryError, ResyncRequired, Unavailable
from registryd.models import (
    ChangesPage,
    DeconfigureAllWorkersForMaster,
    FindWorkerId,
    Master,
    MasterHeartbeat,
    MasterStopped,
    Operation,
    SetWorkerGraceful,
    SetWorkerPaused,
    Worker,
    WorkerConfigured,
    WorkerConnected,
    WorkerDisconnected,
)
from registryd.models.types import canonical_json
from registryd.store.keys import Keys

__all__ = ["DUPLICATE", "LoggedChange", "RedisStore", "RelayClaim", "RelayStore", "StoreSettings"]

#: What a write returns when its ``message_id`` was already applied.
DUPLICATE: Final = -1

#: What a lost or slow Redis raises; the store turns it into ``Unavailable``.
_BACKEND_DOWN = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
_WORKERS = TypeAdapter(list[Worker])
_MASTERS = TypeAdapter(list[Master])
_CHANGES = TypeAdapter(ChangesPage)
_SCRIPT_NAMES = (
    "init_epoch",
    "find_worker_id",
    "worker_connected",
    "worker_disconnected",
    "worker_configured",
    "deconfigure_master",
    "set_worker_state",
    "master_heartbeat",
    "master_stopped",
    "expire_masters",
    "read_workers",
    "read_masters",
    "read_changes",
    "relay_claim",
    "relay_advance",
    "relay_release",
)


@dataclass(frozen=True, slots=True)
class LoggedChange:
    """One change-log entry as the relay publishes it."""

    revision: int
    routing_key: str
    body: bytes


@dataclass(frozen=True, slots=True)
class RelayClaim:
    """What the relay learns when it claims its role: one consistent snapshot."""

    held: bool
    epoch: str
    cursor: int
    pending_reset: str | None
    changes: list[LoggedChange]


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """The store's tunables; the defaults are the protocol's minimums."""

    master_lease_ms: int = 60_000
    retain_changes: int = 100_000
    message_memory_ms: int = 600_000


def _load_sources() -> dict[str, str]:
    folder = resources.files("registryd.store") / "scripts"
    lib = (folder / "_lib.lua").read_text(encoding="utf-8")
    return {
        name: lib + (folder / f"{name}.lua").read_text(encoding="utf-8") for name in _SCRIPT_NAMES
    }


_SOURCES: Final = _load_sources()


def _json_text(value: str | None) -> str:
    return json.dumps(value, ensure_ascii=False)


_SCRIPT_TRAILER = re.compile(r"\s*script: \w+, on @user_script:\d+\.$")


def _error_from(exc: ResponseError) -> RegistryError:
    text = _SCRIPT_TRAILER.sub("", str(exc))
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


class EpochMissing(Internal):
    """The registry lost its epoch (Redis came back empty); a new one must be made."""


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One script invocation: which script, and its operation arguments."""

    script: str
    args: tuple[str | int, ...]


def write_call(op: Operation, settings: StoreSettings) -> ScriptCall:  # noqa: PLR0911 - one arm per write
    """The script call that applies one write operation."""
    match op:
        case WorkerConnected():
            info = canonical_json(op.workerinfo)
            return ScriptCall(
                "worker_connected", (op.workerid, op.masterid, info, op.connection or "")
            )
        case WorkerDisconnected():
            return ScriptCall(
                "worker_disconnected", (op.workerid, op.masterid, op.connection or "")
            )
        case WorkerConfigured():
            builders = ",".join(str(b) for b in sorted(set(op.builderids)))
            return ScriptCall("worker_configured", (op.workerid, op.masterid, builders))
        case DeconfigureAllWorkersForMaster():
            return ScriptCall("deconfigure_master", (op.masterid,))
        case SetWorkerPaused():
            state = ("paused", int(op.paused), "reason", _json_text(op.pause_reason))
            return ScriptCall("set_worker_state", (op.workerid, *state))
        case SetWorkerGraceful():
            return ScriptCall("set_worker_state", (op.workerid, "graceful", int(op.graceful)))
        case MasterHeartbeat():
            name = "" if op.name is None else _json_text(op.name)
            return ScriptCall("master_heartbeat", (op.masterid, name, settings.master_lease_ms))
        case MasterStopped():
            return ScriptCall("master_stopped", (op.masterid,))
        case FindWorkerId():
            return ScriptCall("find_worker_id", (op.name, _json_text(op.name)))
    raise Internal(f"{op.method} is not a write")


class RedisStore:
    """The registry's state in Redis, under one prefix."""

    def __init__(self, redis: Redis, keys: Keys, settings: StoreSettings | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings or StoreSettings()
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(source) for name, source in _SOURCES.items()
        }
        self._key_list = keys.script_keys()

    def _argv(
        self, args: Sequence[str | int], message_id: str | None, now_ms: int | None
    ) -> list[str | int]:
        s = self.settings
        now = "" if now_ms is None else now_ms
        return [s.retain_changes, message_id or "", s.message_memory_ms, now, *args]

    async def _run(
        self,
        script: str,
        *args: str | int,
        message_id: str | None = None,
        now_ms: int | None = None,
    ) -> Any:  # noqa: ANN401 - scripts return Redis replies
        with redis_errors():
            return await self._scripts[script](self._key_list, self._argv(args, message_id, now_ms))

    # Epoch and revision ------------------------------------------------------------------

    async def init_epoch(self) -> tuple[str, bool]:
        """The current epoch, making a new one if there is none; ``True`` when made now."""
        epoch, made = await self._run("init_epoch", secrets.token_hex(16))
        return _text(epoch), bool(made)

    async def state(self) -> tuple[int, str | None]:
        """The current revision and epoch (``None`` before the first start)."""
        with redis_errors():
            rev, epoch = await self.redis.mget([self.keys.revision, self.keys.epoch])
        return int(rev or 0), None if epoch is None else _text(epoch)

    # Writes ------------------------------------------------------------------------------

    async def apply(
        self, op: Operation, message_id: str | None = None, now_ms: int | None = None
    ) -> int:
        """Apply one write; the number of changes it logged, or :data:`DUPLICATE`."""
        call = write_call(op, self.settings)
        return int(await self._run(call.script, *call.args, message_id=message_id, now_ms=now_ms))

    async def apply_many(
        self, ops: Sequence[tuple[Operation, str | None]]
    ) -> list[int | RegistryError]:
        """Apply writes in order in one round trip; each result as :meth:`apply`'s or its error.

        Each write is still its own atomic script; a failed one does not stop the rest.
        Scripts go as bare EVALSHA: redis-py's own script pipelining would first ask
        ``SCRIPT EXISTS``, a second round trip per batch. When Redis has lost its script
        cache (a restart), every EVALSHA fails alike; the scripts are loaded again and
        the batch is sent again from its first failure.
        """
        replies = await self._pipeline(ops)
        missing = next((i for i, r in enumerate(replies) if isinstance(r, NoScriptError)), None)
        if missing is not None:
            await self.load_scripts()
            replies = replies[:missing] + await self._pipeline(ops[missing:])
        return [_error_from(r) if isinstance(r, ResponseError) else int(r) for r in replies]

    async def _pipeline(self, ops: Sequence[tuple[Operation, str | None]]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for op, message_id in ops:
            call = write_call(op, self.settings)
            argv = self._argv(call.args, message_id, None)
            pipe.evalsha(
                self._scripts[call.script].sha, len(self._key_list), *self._key_list, *argv
            )
        with redis_errors():
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def load_scripts(self) -> None:
        """Load every script into Redis's script cache (at start, and after a restart)."""
        pipe = self.redis.pipeline(transaction=False)
        for source in _SOURCES.values():
            pipe.script_load(source)
        with redis_errors():
            await pipe.execute()

    async def find_worker_id(self, name: str) -> int:
        """``findWorkerId``: the id of ``name``, creating the worker when it is new."""
        call = write_call(FindWorkerId(name=name), self.settings)
        return int(await self._run(call.script, *call.args))

    async def expire_masters(self, now_ms: int | None = None, limit: int = 100) -> list[int]:
        """Expire every master whose lease ended; each exactly once across processes."""
        ids = await self._run("expire_masters", limit, now_ms=now_ms)
        return [int(i) for i in ids]

    # Reads -------------------------------------------------------------------------------

    async def read_worker_docs(self, masterid: int | None = None) -> list[bytes]:
        """The JSON documents of every worker (or those with pairs on ``masterid``), by id."""
        mode: tuple[str | int, ...] = ("all",) if masterid is None else ("master", masterid)
        docs: list[bytes] = await self._run("read_workers", *mode)
        return docs

    async def read_worker_doc(self, workerid: int) -> bytes | None:
        """One worker's JSON document, or ``None``."""
        docs: list[bytes] = await self._run("read_workers", "ids", workerid)
        return docs[0] if docs else None

    async def read_workers(self, masterid: int | None = None) -> list[Worker]:
        """Every worker (or those with pairs on ``masterid``), unfiltered, by id."""
        return _parse_docs(await self.read_worker_docs(masterid))

    async def read_worker(self, workerid: int) -> Worker | None:
        """One worker by id, unfiltered."""
        doc = await self.read_worker_doc(workerid)
        return None if doc is None else Worker.model_validate_json(doc)

    async def worker_id_of(self, name: str) -> int | None:
        """The id of a name, without creating it."""
        with redis_errors():
            found = await self.redis.hget(self.keys.names, name)
        return None if found is None else int(found)

    async def read_masters(self) -> list[Master]:
        """``getMasters``."""
        docs = await self._run("read_masters")
        return _MASTERS.validate_json(b"[" + b",".join(docs) + b"]")

    async def read_changes(self, since: int, limit: int) -> ChangesPage:
        """``getChanges``: the change records after ``since``, or :class:`ResyncRequired`."""
        current, oldest, *bodies = await self._run("read_changes", since, limit)
        if since < current and (oldest == 0 or since + 1 < oldest):
            raise ResyncRequired(
                f"changes after revision {since} are no longer retained (oldest kept: "
                f"{oldest or 'none'}); reload with getWorkers and continue from ping's revision"
            )
        return _CHANGES.validate_json(
            b'{"revision":%d,"changes":[' % current + b",".join(bodies) + b"]}"
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _parse_docs(docs: list[bytes]) -> list[Worker]:
    return _WORKERS.validate_json(b"[" + b",".join(docs) + b"]")


class RelayStore:
    """The relay's view of the change log: one process at a time publishes it, in order."""

    def __init__(self, store: RedisStore, token: str) -> None:
        self.store = store
        self.token = token

    async def claim(self, lock_ms: int, count: int) -> RelayClaim:
        """Take or keep the role for ``lock_ms``; the epoch, cursor, reset and what follows."""
        reply = await self.store._run("relay_claim", self.token, lock_ms, count)
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
        return bool(await self.store._run("relay_advance", self.token, epoch, rev, reset or ""))

    async def release(self) -> None:
        """Give the role up so another process can take it at once."""
        await self.store._run("relay_release", self.token)
