"""Model-based test: the Redis store against the plain-Python reference of tests/reference.py.

Hypothesis drives random sequences of writes (over small pools of names, ids, builder
lists, connection tokens, master names and a fake clock) into both the real store and
the reference model, and after every step compares everything a client can observe:
getWorkers under many filters, getWorker, getMasters, getChanges and the raw change
log with its routing keys. Hypothesis' stateful tests are synchronous, so each machine
owns an event loop, a Redis client and a fresh prefix, all released in ``teardown``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from redis.asyncio import Redis

from registryd.errors import NotFound
from registryd.models import (
    DeconfigureAllWorkersForMaster,
    FindWorkerId,
    GetChanges,
    GetMasters,
    GetWorker,
    GetWorkers,
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
from registryd.ports import DUPLICATE, Applied
from registryd.service import Registry
from registryd.store import Keys, RedisStore
from tests.harness import REDIS_URL
from tests.integration.support import log_entries
from tests.reference import DUPLICATE as MODEL_DUPLICATE
from tests.reference import ReferenceRegistry, UnknownWorkerError

#: Passing takes well under a minute; a failure may shrink for up to five (Hypothesis'
#: own limit) before it prints the minimal example, which the default timeout would cut.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

T = TypeVar("T")
Json = dict[str, Any]

#: The fake clock's start (ms); every write gets the clock as ``now_ms``.
T0 = 1_700_000_000_000
NAMES = ("alpha", "beta", "Beta", "_ü-1")
MASTER_IDS = (1, 2, 3)
#: 9 < 10 < 100 numerically, not as text: pairs must sort by number.
BUILDER_IDS = (9, 10, 100)
#: Ids 1..5: with four names, id 5 is always unknown and 3..4 may be. Half the draws
#: are 1 or 2, which ``some_workers`` always creates, so one worker sees many writes.
WORKER_IDS = st.one_of(st.integers(1, 2), st.integers(1, len(NAMES) + 1))
UNKNOWN_WORKER = 1_000
WORKERINFOS: tuple[Json, ...] = (
    {},
    {"host": "h1"},
    {"host": "h2"},
    {"host": "h1", "version": [1, None]},
    {"version": [1, None], "host": "h1"},  # the same object, keys in another order
    {"ü": 'a "quoted"\n∞', "nested": {"b": False, "a": 1.5}},
)
CONNECTIONS = (None, "a", "b")
MASTER_NAMES = (None, "m1", 'ci-ü:/srv "x"', "")
PAUSE_REASONS = (None, "r", "maintenance ∞", "")
CLOCK_STEPS = (1, 999, 20_000, 59_999, 60_000, 60_001, 120_000)

#: Every combination of the filters other than masterid; the checks cycle through them.
OTHER_FILTERS: list[tuple[int | None, bool | None, bool | None]] = list(
    itertools.product((None, *BUILDER_IDS), (None, True, False), (None, True, False))
)
PAIR_FILTERS: list[tuple[int | None, int | None]] = list(
    itertools.product((None, *MASTER_IDS), (None, *BUILDER_IDS))
)


def _worker_writes(workerids: st.SearchStrategy[int]) -> st.SearchStrategy[Operation]:
    """Every write that names a worker, for workers drawn from ``workerids``."""
    masterids = st.sampled_from(MASTER_IDS)
    return st.one_of(
        st.builds(
            WorkerConnected,
            workerid=workerids,
            masterid=masterids,
            workerinfo=st.sampled_from(WORKERINFOS),
            connection=st.sampled_from(CONNECTIONS),
        ),
        st.builds(
            WorkerDisconnected,
            workerid=workerids,
            masterid=masterids,
            connection=st.sampled_from(CONNECTIONS),
        ),
        st.builds(
            WorkerConfigured,
            workerid=workerids,
            masterid=masterids,
            builderids=st.lists(st.sampled_from(BUILDER_IDS), max_size=4),
        ),
        st.builds(
            SetWorkerPaused,
            workerid=workerids,
            paused=st.booleans(),
            pause_reason=st.sampled_from(PAUSE_REASONS),
        ),
        st.builds(SetWorkerGraceful, workerid=workerids, graceful=st.booleans()),
    )


DECONFIGURES = st.builds(DeconfigureAllWorkersForMaster, masterid=st.sampled_from(MASTER_IDS))
MASTER_WRITES: st.SearchStrategy[Operation] = st.one_of(
    DECONFIGURES,
    st.builds(
        MasterHeartbeat,
        masterid=st.sampled_from(MASTER_IDS),
        name=st.sampled_from(MASTER_NAMES),
    ),
    st.builds(MasterStopped, masterid=st.sampled_from(MASTER_IDS)),
)
WRITES = st.one_of(_worker_writes(WORKER_IDS), MASTER_WRITES)


def apply_to_model(  # noqa: PLR0911 - one arm per write
    model: ReferenceRegistry, op: Operation, message_id: str | None, now_ms: int
) -> int:
    """Apply one write to the reference; what ``RedisStore.apply`` should return."""
    match op:
        case WorkerConnected():
            return model.worker_connected(
                op.workerid, op.masterid, op.workerinfo, op.connection, message_id
            )
        case WorkerDisconnected():
            return model.worker_disconnected(op.workerid, op.masterid, op.connection, message_id)
        case WorkerConfigured():
            return model.worker_configured(op.workerid, op.masterid, op.builderids, message_id)
        case DeconfigureAllWorkersForMaster():
            return model.deconfigure_all_workers_for_master(op.masterid, message_id)
        case SetWorkerPaused():
            return model.set_worker_paused(op.workerid, op.paused, op.pause_reason, message_id)
        case SetWorkerGraceful():
            return model.set_worker_graceful(op.workerid, op.graceful, message_id)
        case MasterHeartbeat():
            return model.master_heartbeat(op.masterid, op.name, now_ms, message_id)
        case MasterStopped():
            return model.master_stopped(op.masterid, now_ms, message_id)
    raise AssertionError(f"{op.method} is not a write the model knows")


#: One comparison of an invariant: what is read, the model's answer, the store's read.
Check = tuple[object, Any, Awaitable[Any]]


async def _gather(reads: list[Awaitable[Any]]) -> list[Any]:
    """Every read's result (or its exception), run concurrently on the machine's loop."""
    return await asyncio.gather(*reads, return_exceptions=True)


async def _json(read: Awaitable[object]) -> Any:
    """A read's models as plain JSON values."""
    return _dumped(await read)


async def _wire(read: Awaitable[bytes]) -> Any:
    """A reply body, decoded."""
    return json.loads(await read)


async def _log_entries(redis: Redis, store: RedisStore, after: int) -> list[tuple[int, str, Any]]:
    """The change log after revision ``after``: (revision, routing key, decoded body)."""
    return [
        (revision, key, json.loads(body))
        for revision, key, body in await log_entries(redis, store)
        if revision > after
    ]


def _dumped(value: object) -> Any:
    """A model or worker (or list of them, or None) as plain JSON values."""
    if isinstance(value, list):
        return [_dumped(item) for item in value]
    if value is None:
        return None
    assert isinstance(value, BaseModel | Worker), value
    return to_jsonable_python(value)


@settings(
    max_examples=60,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # no slow "explain"
)
class RegistryMachine(RuleBasedStateMachine):
    """Random writes to the Redis store and the reference; every read must agree."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.redis = Redis.from_url(REDIS_URL)
        self.keys = Keys(f"t-{uuid.uuid4().hex[:12]}")
        self.store = RedisStore(self.redis, self.keys)
        self.registry = Registry(self.store)
        self.run(self.registry.start())
        self.model = ReferenceRegistry(lease_ms=self.store.settings.master_lease_ms)
        self.clock = T0
        self.message_ids: list[str] = []
        self.checks = 0
        self.checked_revision = 0

    def run(self, step: Awaitable[T]) -> T:
        """Run one coroutine to completion on the machine's own loop."""
        return self.loop.run_until_complete(step)

    def teardown(self) -> None:
        """Delete every key of this example's prefix, close the client and the loop."""
        self.run(self._delete_keys())
        self.run(self.redis.aclose())
        self.loop.close()

    async def _delete_keys(self) -> None:
        keys = [key async for key in self.redis.scan_iter(match=self.keys.pattern(), count=1000)]
        if keys:
            await self.redis.delete(*keys)

    def _new_message_id(self) -> str:
        message_id = f"msg-{len(self.message_ids)}"
        self.message_ids.append(message_id)
        return message_id

    def _expect(self, op: Operation, message_id: str | None) -> Applied | None:
        """Apply ``op`` to the model: its change count, DUPLICATE, or None for not_found."""
        try:
            count = apply_to_model(self.model, op, message_id, self.clock)
        except UnknownWorkerError:
            return None
        return DUPLICATE if count == MODEL_DUPLICATE else count  # the model's own spelling

    def _write(self, op: Operation, message_id: str | None = None) -> Applied | None:
        """Apply ``op`` to both sides; both return the same count or both raise not_found."""
        logged = self.model.revision
        expected = self._expect(op, message_id)
        try:
            actual: Applied | None = self.run(self.store.apply(op, message_id, now_ms=self.clock))
        except NotFound:
            actual = None
        assert expected == actual, (op, message_id)
        self._count(op.method, actual, logged)
        return actual

    def _count(self, what: str, result: Applied | None, logged: int) -> None:
        """Hypothesis statistics: how often each write failed, was a no-op, logged what."""
        outcome = {None: "not_found", DUPLICATE: "duplicate", 0: "nothing"}.get(result)
        if outcome:
            event(f"{what}: {outcome}")
        for change in self.model.changes[logged:]:
            event(f"{what}: logged {change.routing_key.split('.')[0]} {change.body['event']}")

    # Rules ----------------------------------------------------------------------------

    @initialize(count=st.integers(2, len(NAMES)))
    def some_workers(self, count: int) -> None:
        """Start with most names already workers, so most writes find theirs."""
        for name in NAMES[:count]:
            self.find_worker_id(name)

    @rule(name=st.sampled_from(NAMES))
    def find_worker_id(self, name: str) -> None:
        """findWorkerId: the same id on both sides (a new name logs ``new``)."""
        expected = self.model.find_worker_id(name)
        actual = self.run(self.registry.execute(FindWorkerId(name=name)))
        assert expected == actual

    @rule(op=_worker_writes(WORKER_IDS))
    def worker_write(self, op: Operation) -> None:
        """A write naming a worker (known or not), without a message_id."""
        self._write(op)

    def _connected_pair(self, data: st.DataObject) -> tuple[int, int]:
        """A (worker, master) pair connected now, or (1, 1) when there is none."""
        pairs = sorted((w.id, m) for w in self.model.workers.values() for m in w.connected_to)
        return data.draw(st.sampled_from(pairs)) if pairs else (1, 1)

    @rule(data=st.data(), connection=st.sampled_from(CONNECTIONS))
    def disconnect_connected(self, data: st.DataObject, connection: str | None) -> None:
        """workerDisconnected of a pair that is connected now (random ids seldom hit one)."""
        workerid, masterid = self._connected_pair(data)
        self._write(WorkerDisconnected(workerid=workerid, masterid=masterid, connection=connection))

    @rule(
        data=st.data(),
        workerinfo=st.sampled_from(WORKERINFOS),
        connection=st.sampled_from(CONNECTIONS),
    )
    def reconnect_connected(
        self, data: st.DataObject, workerinfo: Json, connection: str | None
    ) -> None:
        """workerConnected of a pair connected now: a new session, or only a new token."""
        workerid, masterid = self._connected_pair(data)
        op = WorkerConnected(
            workerid=workerid, masterid=masterid, workerinfo=workerinfo, connection=connection
        )
        self._write(op)

    @rule(op=MASTER_WRITES)
    def master_write(self, op: Operation) -> None:
        """A write naming only a master, without a message_id."""
        self._write(op)

    @rule(op=_worker_writes(st.just(UNKNOWN_WORKER)))
    def write_unknown_worker(self, op: Operation) -> None:
        """A write naming a worker that never existed is not_found and leaves no key."""
        message_id = self._new_message_id()
        assert self._write(op, message_id) is None
        assert 0 == self.run(self.redis.exists(self.keys.worker(UNKNOWN_WORKER)))
        assert 0 == self.run(self.store.remembered([message_id]))

    @rule(
        data=st.data(),
        ops=st.lists(st.one_of(_worker_writes(WORKER_IDS), DECONFIGURES), min_size=1, max_size=4),
    )
    def apply_many(self, data: st.DataObject, ops: list[Operation]) -> None:
        """A pipelined batch (as the event consumer sends): each result as apply's, in order.

        Only writes that do not read the clock: apply_many has no ``now_ms``.
        """
        ids = st.sampled_from([None, *self.message_ids[-3:], f"msg-{len(self.message_ids)}"])
        batch = [(op, data.draw(ids)) for op in ops]
        self.message_ids.extend(m for _, m in batch if m and m not in self.message_ids)
        logged = self.model.revision
        expected = [self._expect(op, message_id) for op, message_id in batch]
        results = self.run(self.store.apply_many(batch))
        actual = [None if isinstance(r, NotFound) else r for r in results]
        assert expected == actual, batch
        self._count("apply_many", sum(r for r in expected if isinstance(r, int) and r > 0), logged)

    @rule(op=WRITES)
    def write_then_replay(self, op: Operation) -> None:
        """A write with a new message_id, then the same again: the replay is a duplicate."""
        message_id = self._new_message_id()
        first = self._write(op, message_id)
        second = self._write(op, message_id)
        if first is not None:
            assert DUPLICATE == second

    @rule(data=st.data(), op=WRITES)
    def reuse_message_id(self, data: st.DataObject, op: Operation) -> None:
        """Any write reusing an earlier message_id: a duplicate unless that one failed."""
        if self.message_ids:
            self._write(op, data.draw(st.sampled_from(self.message_ids)))
        else:
            self._write(op, self._new_message_id())

    @rule(step=st.sampled_from(CLOCK_STEPS))
    def advance_clock(self, step: int) -> None:
        """Time passes on the fake clock shared by the store and the model."""
        self.clock += step

    @rule(step=st.sampled_from((0, *CLOCK_STEPS)))
    def expire_masters(self, step: int) -> None:
        """Time passes, then an expiry pass expires the same masters, in the same order."""
        self.clock += step
        logged = self.model.revision
        expected = self.model.expire_masters(self.clock)
        actual = self.run(self.store.expire_masters(now_ms=self.clock))
        assert expected == actual
        self._count("expiry", len(actual), logged)

    # Invariants -------------------------------------------------------------------------

    @invariant()
    def store_matches_model(self) -> None:
        """Every read of the store equals the reference's answer (reads run concurrently)."""
        checks = [*self._log_checks(), *self._worker_checks(), *self._wire_checks()]
        results = self.run(_gather([read for _, _, read in checks]))
        for (what, expected, _), actual in zip(checks, results, strict=True):
            if isinstance(actual, BaseException):
                raise actual
            assert expected == actual, what
        self.checks += 1
        self.checked_revision = self.model.revision

    def _log_checks(self) -> list[Check]:
        """The log's new entries with routing keys, its length, getChanges, getMasters.

        Stream entries never change once written, so each check reads only the entries
        after the last one checked; XLEN catches any entry trimmed or added, and the
        whole log is compared through read_changes every tenth check.
        """
        model, checked, n = self.model, self.checked_revision, self.checks
        since, limit = n % (model.revision + 2), 1 + n % 4
        full = 0 if n % 10 == 0 else checked
        masters = self.store.read_masters() if n % 2 else self.registry.execute(GetMasters())
        return [
            (
                f"change log after revision {checked}",
                [(c.revision, c.routing_key, c.body) for c in model.changes[checked:]],
                _log_entries(self.redis, self.store, checked),
            ),
            ("change log length", model.revision, self.redis.xlen(self.keys.changes)),
            ("revision, epoch", (model.revision, self.registry.epoch), self.store.state()),
            (
                f"read_changes({full}, 1000)",
                model.get_changes(full, 1000),
                _json(self.store.read_changes(full, 1000)),
            ),
            (
                GetChanges(since=since, limit=limit),
                model.get_changes(since, limit),
                _json(self.registry.execute(GetChanges(since=since, limit=limit))),
            ),
            ("getMasters", model.get_masters(), _json(masters)),
        ]

    def _worker_checks(self) -> list[Check]:
        """getWorkers under filters cycling through every combination, getWorker."""
        model, n = self.model, self.checks
        checks: list[Check] = [
            (GetWorkers(), model.get_workers(), _json(self.registry.get_workers(GetWorkers())))
        ]
        for i, masterid in enumerate((None, *MASTER_IDS)):
            builderid, paused, graceful = OTHER_FILTERS[(n * 4 + i) % len(OTHER_FILTERS)]
            op = GetWorkers(
                masterid=masterid, builderid=builderid, paused=paused, graceful=graceful
            )
            expected = model.get_workers(masterid, builderid, paused, graceful)
            checks.append((op, expected, _json(self.registry.get_workers(op))))
        ops = [GetWorker()]
        for workerid in range(1, len(model.workers) + 2):  # every worker and one unknown id
            masterid, builderid = PAIR_FILTERS[(n + workerid) % len(PAIR_FILTERS)]
            ops.append(GetWorker(workerid=workerid, masterid=masterid, builderid=builderid))
        for i, name in enumerate(NAMES):  # by name, or with an id that may not match it
            ops.append(GetWorker(workerid=(n + i) % (len(NAMES) + 2) or None, name=name))
        for get in ops:
            expected_one = model.get_worker(get.workerid, get.name, get.masterid, get.builderid)
            checks.append((get, expected_one, _json(self.registry.get_worker(get))))
        return checks

    def _wire_checks(self) -> list[Check]:
        """execute_json: the stored documents spliced as they are, and the filtered path.

        Each reply must equal the model's answer, and so does get_workers for the same op.
        """
        n = self.checks
        builderid, paused, graceful = OTHER_FILTERS[n % len(OTHER_FILTERS)]
        masterid = (None, *MASTER_IDS)[n % 4]
        filtered = GetWorkers(
            masterid=masterid, builderid=builderid, paused=paused, graceful=graceful
        )
        one = GetWorker(workerid=1 + n % 3, masterid=masterid, builderid=builderid)
        expected = self.model.get_workers(masterid, builderid, paused, graceful)
        expected_one = self.model.get_worker(one.workerid, None, masterid, builderid)
        after, limit = n % (len(self.model.workers) + 1), 1 + n % 3
        page = filtered.model_copy(update={"after": after, "limit": limit})
        expected_page = [w for w in expected if w["id"] > after][:limit]
        return [
            (filtered, expected, _json(self.registry.get_workers(filtered))),
            (page, expected_page, _json(self.registry.get_workers(page))),
            (
                f"execute_json({page!r})",
                {"ok": True, "result": expected_page},
                _wire(self.registry.execute_json(page)),
            ),
            (
                f"execute_json({filtered!r})",
                {"ok": True, "result": expected},
                _wire(self.registry.execute_json(filtered)),
            ),
            (
                "execute_json(GetWorkers())",
                {"ok": True, "result": self.model.get_workers()},
                _wire(self.registry.execute_json(GetWorkers())),
            ),
            (
                f"execute_json({one!r})",
                {"ok": True, "result": expected_one},
                _wire(self.registry.execute_json(one)),
            ),
        ]


TestStoreModel = RegistryMachine.TestCase
TestStoreModel.__doc__ = "The Redis store behaves as the reference model under random writes."
