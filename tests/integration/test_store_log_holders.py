"""The change log's compact worker entries: the bulk of a record is written once.

A worker's entry names the revision of its *holder*, the entry that holds its name and
workerinfo, unless the workerinfo changed or the holder is ``REBASE`` (a quarter of the
retained count) revisions old; then it is a holder itself. Every body read back is the
full record all the same (PROTOCOL.md section 6).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from redis.asyncio import Redis

from registryd.errors import ResyncRequired
from registryd.models import SetWorkerPaused, WorkerChange, WorkerConfigured, WorkerConnected
from registryd.store import RedisStore, StoreSettings
from registryd.store.redis import RelayStore
from tests.integration.support import changes_since, revision, worker

pytestmark = pytest.mark.integration

#: A short history: a holder is written again at least every 10 revisions.
RETAIN = 40
REBASE = RETAIN // 4
HOST = "holder-test.example.com"
INFO = {"host": HOST, "admin": "someone"}


@pytest.fixture
def store_settings() -> StoreSettings:
    """A short retained history so that holders are written again and trimmed."""
    return StoreSettings(retain_changes=RETAIN)


async def _connected(store: RedisStore, name: str = "held") -> int:
    """A worker connected with :data:`INFO` (its holder is the connect's entry)."""
    wid = await store.find_worker_id(name)
    await store.apply(WorkerConnected(workerid=wid, masterid=10, workerinfo=INFO))
    return wid


async def _toggle(store: RedisStore, wid: int, times: int) -> None:
    """Pause and unpause the worker, a new reason each time: one change each."""
    for i in range(times):
        await store.apply(SetWorkerPaused(workerid=wid, paused=i % 2 == 0, pause_reason=f"r{i}"))


async def _entries_holding(redis: Redis, store: RedisStore, text: str) -> list[int]:
    """The revisions of the raw log entries whose stored bytes contain ``text``."""
    raw: Any = await redis.xrange(store.keys.changes)
    return [
        int(entry_id.split(b"-")[0])
        for entry_id, fields in raw
        if any(text.encode() in value for value in fields.values())
    ]


async def _worker_changes(store: RedisStore, since: int) -> list[WorkerChange]:
    """The change records after ``since``, which must all be about workers."""
    found = await changes_since(store, since)
    changes = [c for c in found if isinstance(c, WorkerChange)]
    assert len(changes) == len(found)
    return changes


async def test_changes_that_keep_the_workerinfo_do_not_store_it_again(
    redis: Redis, store: RedisStore
) -> None:
    """Five pauses after a connect: the workerinfo is stored once, and read back six times."""
    wid = await _connected(store)
    await _toggle(store, wid, 5)
    assert [2] == await _entries_holding(redis, store, HOST)
    changes = await _worker_changes(store, 1)
    assert [INFO] * 6 == [c.worker.workerinfo for c in changes]
    assert [(i % 2 == 0, f"r{i}") for i in range(5)] == [
        (c.worker.paused, c.worker.pause_reason) for c in changes[1:]
    ]
    assert await worker(store, wid) == changes[-1].worker


async def test_a_new_workerinfo_makes_a_new_holder(redis: Redis, store: RedisStore) -> None:
    """A reconnect with other workerinfo stores it; the earlier changes keep the old one."""
    wid = await _connected(store)
    await _toggle(store, wid, 2)
    other = {"host": "other.example.com"}
    await store.apply(WorkerConnected(workerid=wid, masterid=11, workerinfo=other))
    await _toggle(store, wid, 2)
    assert [2] == await _entries_holding(redis, store, HOST)
    assert [5] == await _entries_holding(redis, store, "other.example.com")
    infos = [c.worker.workerinfo for c in await _worker_changes(store, 0)]
    assert [{}, INFO, INFO, INFO, other, other, other] == infos


async def test_the_last_retained_changes_read_back_whole_past_many_holders(
    redis: Redis, store: RedisStore
) -> None:
    """400 pauses: a holder at least every REBASE revisions, the last RETAIN read whole.

    They read back in order, none missing, each with the workerinfo.
    """
    wid = await _connected(store)
    await _toggle(store, wid, 400)
    top = await revision(store)
    held = await _entries_holding(redis, store, HOST)
    assert all(b - a <= REBASE for a, b in itertools.pairwise(held)), held
    assert held[-1] > top - REBASE
    changes = await _worker_changes(store, top - RETAIN)
    assert list(range(top - RETAIN + 1, top + 1)) == [c.revision for c in changes]
    assert all(c.worker.workerinfo == INFO for c in changes)
    assert await worker(store, wid) == changes[-1].worker


async def test_an_entry_whose_holder_is_gone_is_no_longer_retained(
    redis: Redis, store: RedisStore
) -> None:
    """An entry without its holder cannot be read whole: it is no longer retained.

    getChanges before it is resync_required, and the relay sees the entries up to it as
    lost.
    """
    wid = await _connected(store)  # 1 new, 2 connected (the holder)
    await _toggle(store, wid, 3)  # 3, 4, 5 name 2
    await redis.xdel(store.keys.changes, "2-1")
    for since in (0, 2, 4):
        with pytest.raises(ResyncRequired, match=r"oldest kept: 6\)"):
            await store.read_changes(since, 100)
    assert [] == await _worker_changes(store, 5)
    relay = RelayStore(store)
    claim = await relay.claim(60_000, 100)
    assert [] == claim.changes
    await _toggle(store, wid, REBASE)  # the last of them is a holder again
    claim = await relay.claim(60_000, 100)
    first = claim.changes[0].revision
    assert list(range(first, 6 + REBASE)) == [c.revision for c in claim.changes]
    assert 6 < first


async def test_a_holder_of_an_earlier_epoch_is_never_named(redis: Redis, store: RedisStore) -> None:
    """Were the epoch and log lost but a worker kept, its next change holds its record.

    Revision 2 of the new log, its old holder's number, is another worker's entry.
    """
    wid = await _connected(store)
    await redis.delete(store.keys.epoch)
    await store.init_epoch()
    for name in ("n1", "n2", "n3"):
        await store.find_worker_id(name)
    await _toggle(store, wid, 1)
    changes = await _worker_changes(store, 0)
    assert [1, 2, 3, 4] == [c.revision for c in changes]
    assert (wid, INFO) == (changes[-1].workerid, changes[-1].worker.workerinfo)


async def test_entries_written_before_the_compact_form_read_back_as_stored(
    redis: Redis, store: RedisStore
) -> None:
    """A log an earlier registryd wrote (routing key and full body per entry) still reads.

    Its entries go out as they were stored, and the next change holds its record.
    """
    wid = await store.find_worker_id("old")
    before = await worker(store, wid)
    stored: Any = await redis.get(store.keys.worker(wid))
    record = stored.decode()
    await redis.incr(store.keys.revision)
    body = (
        f'{{"revision":2,"event":"state_updated","workerid":{wid},"masterid":null,'
        f'"worker":{record}}}'
    )
    await redis.xadd(store.keys.changes, {"k": f"workers.{wid}.state_updated", "b": body}, id="2-1")
    await _toggle(store, wid, 1)
    changes = await _worker_changes(store, 0)
    assert [1, 2, 3] == [c.revision for c in changes]
    assert ("state_updated", before) == (changes[1].event, changes[1].worker)
    claim = await RelayStore(store).claim(60_000, 10)
    assert (f"workers.{wid}.state_updated", body.encode()) == (
        claim.changes[1].routing_key,
        claim.changes[1].body,
    )


async def test_pairs_are_stored_with_each_master_once(redis: Redis, store: RedisStore) -> None:
    """configured_on goes into an entry as "10:1,2,11:3" and reads back as every pair."""
    wid = await _connected(store)
    await store.apply(WorkerConfigured(workerid=wid, masterid=11, builderids=[3]))
    await store.apply(WorkerConfigured(workerid=wid, masterid=10, builderids=[2, 1]))
    assert [4] == await _entries_holding(redis, store, "|10:1,2,11:3|")
    [change] = await _worker_changes(store, 3)
    assert [(10, 1), (10, 2), (11, 3)] == [
        (p.masterid, p.builderid) for p in change.worker.configured_on
    ]
    assert await worker(store, wid) == change.worker
