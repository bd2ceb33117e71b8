"""``getWorkers`` through ``SORT_RO ... GET``: the documents copied in C.

``read_workers.lua`` lists any filter in one script, but Redis turns every document it
reads into a Lua string and back: at 10,000 workers the script costs about 1.5x an
``MGET`` of the same documents. An unfiltered listing needs no Lua: the worker ids are
a sorted set scored by themselves and each document is ``<worker_prefix><id>``, so
``SORT_RO <workers> BY nosort GET <worker_prefix>* LIMIT <offset> <count>`` returns the
documents by ascending id, read in C (about 0.6x the ``MGET``).

Worker ids only ever grow (``findWorkerId`` adds the next one; nothing removes one), so
the offset of the first id above ``after`` is the number of ids up to ``after``. It is
counted first, then counted again inside the ``MULTI`` that sorts: a different count
(the registry was reset meanwhile) or, for a listing meant to reach the last worker, a
different number of workers after ``after`` (one was added meanwhile) gives the
listing back to the script. So the answer is one snapshot, as the protocol wants.

The fast path stays off where it cannot work: on a Redis Cluster (``SORT``'s ``GET``
patterns are refused there), for a prefix with ``*`` in it (the pattern's placeholder),
and after any refusal (a Redis before 7.0 has no ``SORT_RO``; an ACL user needs read
access to all keys for ``GET`` patterns), logged once. A page reads at most
:data:`SORTED_MAX` documents (and as many more as a false flag cuts out, up to as
many again); a longer page goes to the script. An unpaged listing longer than that is
read :data:`SORTED_MAX` documents at a time, each ``MULTI`` also reading the epoch and
the revision: every write to a document takes a revision, so the same pair in every
chunk means one snapshot (a different one gives the listing to the script), and the
reading stops as soon as the documents are over the reply's budget.

``paused=false`` and ``graceful=false`` sort the same way. The ids of the paused (or
graceful) set are cut out by position: a registry's ids are 1 to its next worker id,
none ever removed, so the sort's document at offset ``p`` is worker ``p + 1``'s, and no
id needs reading back (no ``GET #``, for any of these listings). A registry found
otherwise (by the counting round trip) lists a false flag through the script. The
sets are read with the counts, so that a page sorts just the documents up to its last
listed worker, and the (first) ``MULTI`` that sorts checks the stamp
(epoch, revision, next worker id) they were read at: any write moves it, and a listing
written to between its count and its sort is counted again, then given to the script.
The next listing (the next page of one, say) takes the last one's offsets while the
stamp holds: at 100,000 workers the paused set is 10,000 ids, and read, parsed and
sorted for each page it made a page of 10,000 cost 1.4x the unfiltered one.

``masterid`` alone, or ``builderid`` alone: the master's (builder's) set is split by
worker id (:data:`~registryd.store.keys.ID_SPAN` ids a set), so ``SORT_RO <span set>
GET <worker_prefix>*`` of each span, in span order, gives its documents by ascending
id, read in C; a span's set is small, so each sort is short.
:data:`SPANS_A_READ` spans go in one ``MULTI`` that also reads the epoch, the revision
and the next worker id (the same three every time: one snapshot; the first one's next
worker id says which span is the last), from ``after``'s span on, until the page is
full or the documents are over the reply's budget. Each document is cut down here as
``read_workers.lua`` cuts it (:func:`cut_to_master`, :func:`cut_to_builder`); most
listings need no cut, which a few byte counts over the documents' own lists show.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from itertools import compress
from typing import Any, Final, Literal

import structlog
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError

from registryd.ports import Listing
from registryd.store.keys import ID_SPAN, Keys

__all__ = [
    "SORTED_MAX",
    "Command",
    "Outcome",
    "SortedListings",
    "SpanFilter",
    "cut_to_builder",
    "cut_to_master",
]

log = structlog.get_logger(__name__)

#: The most documents one sorted listing reads (the protocol's largest page).
SORTED_MAX: Final = 10_000
#: The id filters a listing of span sets serves alone.
SpanFilter = Literal["masterid", "builderid"]
#: One Redis command, its name first.
Command = tuple[str | int, ...]
#: A master's span sets one ``MULTI`` of its listing sorts (about 10,000 ids).
SPANS_A_READ: Final = 20


class Outcome(Enum):
    """A sorted listing that gave no documents back."""

    #: The joined documents would be over the reply's budget (``too_large``).
    OVER_BUDGET = "over budget"
    #: Not for this path (or the registry changed meanwhile): list through the script.
    USE_SCRIPT = "use the script"


class SortedListings:
    """Listings through ``SORT_RO``, for one prefix on one Redis (not a cluster)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        prefix = keys.worker_prefix
        #: The ``GET`` pattern, or ``None`` while the fast path is off.
        self.pattern: str | None = None if "*" in prefix else f"{prefix}*"
        #: The last span set of the registry the last master listing saw.
        self._last_span = 0
        #: Read beside every sort: the same three values, the same snapshot (every write
        #: to a document takes a revision; a new worker also moves the next worker id).
        self._stamp: Command = ("MGET", keys.epoch, keys.revision, keys.next_worker_id)
        #: By sets cut out (paused, graceful or both): the stamp their ids were last read
        #: at, and their offsets. The next listing takes them while the stamp holds.
        self._cuts: dict[tuple[str, ...], tuple[list[Any], list[int]]] = {}
        #: The sets whose offsets the last listing found written to: read with the counts.
        self._written: set[tuple[str, ...]] = set()

    async def read(
        self,
        after: int,
        limit: int | None,
        budget: int | None,
        leave_out: Sequence[str] = (),
    ) -> Listing | Outcome:
        """The workers above ``after`` (at most ``limit``), by ascending id, joined.

        ``leave_out``: sets of ids not to list (``paused=false`` leaves out the paused
        set): the sort reads that many more documents and cuts theirs out.
        Raises what redis-py raises for a lost connection (the store maps it).
        """
        return await self._guarded(lambda p: self._read(p, after, limit, budget, leave_out))

    async def _guarded(
        self, read: Callable[[str], Awaitable[Listing | Outcome]]
    ) -> Listing | Outcome:
        """``read`` with the ``GET`` pattern, unless the fast path is off.

        A refusal (no ``SORT_RO`` before Redis 7.0, an ACL user without read access to
        every key) turns it off for good, logged once.
        """
        if self.pattern is None:
            return Outcome.USE_SCRIPT
        try:
            return await read(self.pattern)
        except ResponseError as exc:
            log.warning("sorted listings off; listing through the script", error=str(exc))
            self.pattern = None
            return Outcome.USE_SCRIPT

    async def _read(
        self,
        pattern: str,
        after: int,
        limit: int | None,
        budget: int | None,
        leave_out: Sequence[str],
    ) -> Listing | Outcome:
        keep = _Keep(leave_out)
        # The sets' ids are read with the counts, unless the last listing read them.
        cached = keep.sets in self._cuts and keep.sets not in self._written
        counted = await self._counts(after, leave_out, members=bool(leave_out) and not cached)
        for again in (False, True):  # a write between the count and the sort: once more
            if again:
                counted = await self._counts(after, leave_out, members=bool(leave_out))
            if leave_out:
                counted = await self._cut(counted, after, keep)
            if counted.remaining == 0:
                return Listing(0, b"")
            if leave_out and not counted.dense:
                return Outcome.USE_SCRIPT
            if limit is None:
                listed = await self._in_chunks(pattern, counted, after, budget, keep)
            else:
                listed = await self._page(
                    pattern, counted, after, limit=limit, budget=budget, keep=keep
                )
            if listed is not _STALE:
                return listed
        return Outcome.USE_SCRIPT  # written to all the time: the script reads in one step

    async def _cut(self, counted: _Counted, after: int, keep: _Keep) -> _Counted:
        """``keep`` given the offsets of its sets as of ``counted``'s stamp.

        The last listing's, where the stamp still holds (no write since, so the sets are
        the same); else those ``counted`` read, or read now with the counts again. Sets
        found written to since are read with the counts from then on, until a listing
        finds them as the last one left them: a registry written to all the time costs
        no second round trip a listing.
        """
        stamp, cuts = self._cuts.get(keep.sets, (None, []))
        if stamp == counted.stamp:
            self._written.discard(keep.sets)
            keep.cuts = cuts
            return counted
        if counted.members is None:
            self._written.add(keep.sets)
            counted = await self._counts(after, keep.sets, members=True)
        keep.found(counted.members or [])
        self._cuts[keep.sets] = (counted.stamp, keep.cuts)
        return counted

    async def _page(
        self,
        pattern: str,
        counted: _Counted,
        after: int,
        *,
        limit: int,
        budget: int | None,
        keep: _Keep,
    ) -> Listing | Outcome | _Stale:
        """A page of ``limit``, reading just as many documents as hold it after the cuts.

        One ``MULTI`` that checks what the page was planned on: the counts of ids up to
        ``after`` and after it, and, where ids are cut out, the stamp the offsets were
        read at (any write moves it). Either changed: :data:`_STALE`.
        """
        before, remaining = counted.before, counted.remaining
        count = keep.reading(before, limit, remaining)
        if count > SORTED_MAX + min(len(keep.cuts), SORTED_MAX):
            return Outcome.USE_SCRIPT
        workers = self.keys.workers
        sort = ("SORT_RO", workers, "BY", "nosort", "GET", pattern, "LIMIT", before, count)
        stamped = [self._stamp] if keep.sets else []  # only cut offsets need the stamp
        replies = await self._transaction([*stamped, *_Planned.counting(workers, after), sort])
        *stamp, now_before, now_remaining, docs = replies
        if now_before != before or (count == remaining and now_remaining != remaining):
            return _STALE  # a reset, or a worker added after a page meant to reach the last
        if keep.sets and stamp != [counted.stamp]:
            return _STALE  # a write came between: the sets may have changed
        kept = keep(docs, before)
        if len(kept) < limit and count < remaining:
            return Outcome.USE_SCRIPT  # a document is missing (a foreign hand): it reads on
        return _joined(kept[:limit], budget)

    async def read_by(
        self, field: SpanFilter, value: int, after: int, limit: int | None, budget: int | None
    ) -> Listing | Outcome:
        """``getWorkers(masterid=...)`` or ``getWorkers(builderid=...)`` alone.

        The filter's span sets in id order, each document cut to its pairs. Raises what
        redis-py raises for a lost connection (the store maps it).
        """
        if limit is not None and limit > SORTED_MAX:
            return Outcome.USE_SCRIPT
        prefix = self.keys.configured_prefix if field == "masterid" else self.keys.builder_prefix
        all_kept, cut_to = _CUTS[field]

        def cut(docs: Sequence[bytes | None]) -> Listing:
            return _cut_down(docs, value, all_kept, cut_to)

        return await self._guarded(
            lambda p: self._spans(_SpanAsk(p, f"{prefix}{value}:", cut, after, limit, budget))
        )

    async def _spans(self, ask: _SpanAsk) -> Listing | Outcome:
        """The span sets from ``after``'s span on, :data:`SPANS_A_READ` to a ``MULTI``.

        Every ``MULTI`` also reads the epoch, the revision and the next worker id: the
        first one's say which span is the last, and the same three in every later one
        mean one snapshot (another three hand the listing to the script). The first
        ``MULTI`` sorts up to the last span the previous listing saw, so that a registry
        that did not grow is read without sorting empty spans. The reading stops at the
        last span, the page's end or the budget.
        """
        joining, stamp, start = _Joining(ask.budget), None, ask.after // ID_SPAN
        last = None
        while last is None or start <= last:
            known = self._last_span if last is None else last
            spans = range(start, min(start + SPANS_A_READ, max(known, start) + 1))
            sorts = [("SORT_RO", f"{ask.sets}{span}", *ask.gets(span)) for span in spans]
            now, *sorted_spans = await self._transaction([self._stamp, *sorts])
            if stamp is None:
                stamp, last = now, int(now[2] or 0) // ID_SPAN
                self._last_span = last
            elif now != stamp:
                return Outcome.USE_SCRIPT
            docs = ask.documents(sorted_spans, start, joining.count)
            if joining.over(ask.cut(docs)):
                return Outcome.OVER_BUDGET
            if ask.limit is not None and joining.count >= ask.limit:
                break
            start = spans.stop
        return joining.listing()

    async def _in_chunks(
        self,
        pattern: str,
        counted: _Counted,
        after: int,
        budget: int | None,
        keep: _Keep,
    ) -> Listing | Outcome | _Stale:
        """An unpaged listing, :data:`SORTED_MAX` documents a ``MULTI``, as one snapshot.

        Every ``MULTI`` reads the stamp (:attr:`_stamp`) beside its chunk: another stamp
        than the first chunk's means a write came between them, and the script lists.
        The first one also checks the counts the listing was planned on, and, where ids
        are cut out, the stamp the offsets were read at: either changed, :data:`_STALE`.
        """
        workers = self.keys.workers
        sort = ("SORT_RO", workers, "BY", "nosort", "GET", pattern)
        planned = _Planned(workers, after, counted.before, counted.remaining)
        joining, stamp = _Joining(budget), None
        for offset, count in _spans(counted.before, counted.remaining):
            first = planned.checks if stamp is None else []
            replies = await self._transaction(
                [self._stamp, *first, (*sort, "LIMIT", offset, count)]
            )
            now, *checked, docs = replies
            if stamp is None:
                if not planned.held(checked) or (keep.sets and now != counted.stamp):
                    return _STALE
                stamp = now
            elif now != stamp:
                return Outcome.USE_SCRIPT
            kept = keep(docs, offset)
            if joining.over(Listing(len(kept), b",".join(kept))):
                return Outcome.OVER_BUDGET
        return joining.listing()

    async def _transaction(self, commands: Sequence[Command]) -> list[Any]:
        """``EXEC``'s replies to ``commands`` in a ``MULTI``, all sent in one write.

        Packed and read on a connection of the pool: redis-py's pipeline cost about 0.1
        ms more a round trip (a master's listing of two spans at 1,000 workers: 590
        against 470 µs). A lost connection is retried as the client retries any command;
        after any other failure the connection is dropped, never handed back with
        replies unread. A command refused inside the ``MULTI`` raises its error.
        """
        wrapped = [("MULTI",), *commands, ("EXEC",)]
        pool = self.redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            replies = await connection.retry.call_with_retry(
                lambda: _exchange(connection, wrapped), lambda _: connection.disconnect()
            )
        except BaseException:
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)
        return _executed(replies[-1])

    async def _counts(self, after: int, sets: Sequence[str], *, members: bool) -> _Counted:
        """Ids up to ``after`` and after it; whether they are dense; the stamp.

        One round trip, one snapshot; with the ids of ``sets`` where ``members``. Dense:
        every id from 1 to the next worker id is a worker's.
        """
        counts = _Planned.counting(self.keys.workers, after)
        reads = [("SMEMBERS", key) for key in sets] if members else []
        before, remaining, stamp, *found = await self._transaction([*counts, self._stamp, *reads])
        before, remaining = int(before), int(remaining)
        dense = before == after and before + remaining == int(stamp[2] or 0)
        return _Counted(before, remaining, dense, stamp, found if members else None)


@dataclass(frozen=True, slots=True)
class _Counted:
    """What the counting round trip of a sorted listing found, in one snapshot."""

    #: Ids up to ``after``, and after it.
    before: int
    remaining: int
    #: Whether every id from 1 to the next worker id is a worker's.
    dense: bool
    #: The epoch, the revision and the next worker id (:attr:`SortedListings._stamp`).
    stamp: list[Any]
    #: The sets' ids, where they were read.
    members: list[list[bytes]] | None


class _Stale(Enum):
    """A listing whose plan no longer held when it was sorted."""

    STALE = "stale"


_STALE: Final = _Stale.STALE


_CONNECTED: Final = b',"connected_to":['
_TAIL: Final = re.compile(rb"([\d,]*)\],\"configured_on\":\[(.*)\]\}", re.DOTALL)
_PAIR: Final = re.compile(rb'\{"builderid":(\d+),"masterid":(\d+)\}')


def _tails(docs: list[bytes]) -> bytes:
    """Each document's two lists (``connected_to``, ``configured_on``), joined.

    A document's last ``,"connected_to":[`` is its own (``workerinfo`` comes before it),
    so its tail holds nothing but ids and pairs: the counts over the tails are exact, and
    about a fifth of the bytes of the documents are scanned.
    """
    return b"".join([doc[doc.rindex(_CONNECTED) :] for doc in docs])


def _all_on_master(docs: list[bytes], masterid: int) -> bool:
    """Whether no document of ``docs`` loses anything to the cut.

    Counted over all their tails at once: every ``configured_on`` pair on ``masterid``,
    every ``connected_to`` empty or ``masterid`` alone, no ``configured_on`` empty (none
    would be listed).
    """
    tails, mid = _tails(docs), b"%d" % masterid
    return (
        tails.count(b'"masterid":') == tails.count(b'"masterid":' + mid + b"}")
        and tails.count(_CONNECTED + b"]") + tails.count(_CONNECTED + mid + b"]") == len(docs)
        and b'"configured_on":[]' not in tails
    )


def cut_to_master(doc: bytes, masterid: int) -> bytes | None:
    """``doc`` as ``getWorkers(masterid=...)`` lists it, as ``read_workers.lua`` cuts it.

    ``configured_on`` keeps the pairs on ``masterid`` (``None`` when none is left) and
    ``connected_to`` keeps ``masterid`` only; a document that loses nothing is returned
    as stored. ``connected_to`` is the document's last list but ``configured_on``, so
    its last ``,"connected_to":[`` is its own (``workerinfo`` comes before it).
    """
    mid = b"%d" % masterid
    start = doc.rindex(_CONNECTED) + len(_CONNECTED)
    end = doc.index(b"]", start)
    conn = doc[start:end]
    # Every "masterid":<mid>} is also a "masterid": (counted in workerinfo too), so
    # equal counts mean that no pair is on another master.
    if conn in (b"", mid) and doc.count(b'"masterid":') == doc.count(b'"masterid":' + mid + b"}"):
        return doc
    conn, found = _tail(doc, start)
    kept = [pair[0] for pair in found if pair[2] == mid]
    if not kept:
        return None
    if conn not in (b"", mid):
        conn = mid if mid in conn.split(b",") else b""
    elif len(kept) == len(found):
        return doc
    return b'%s%s],"configured_on":[%s]}' % (doc[:start], conn, b",".join(kept))


#: Documents found (``None`` where one is missing) to a listing of them cut to a filter.
_Cut = Callable[[Sequence[bytes | None]], Listing]


@dataclass(frozen=True, slots=True)
class _SpanAsk:
    """One ``getWorkers(masterid=...)`` or ``getWorkers(builderid=...)`` as the sort reads it."""

    pattern: str
    #: The span sets' prefix: ``sets`` and a span name a set of worker ids.
    sets: str
    cut: _Cut
    after: int
    limit: int | None
    budget: int | None

    def with_ids(self, span: int) -> bool:
        """Whether ``span`` is ``after``'s, where the ids at or below it are left out."""
        return self.after > 0 and span == self.after // ID_SPAN

    def gets(self, span: int) -> tuple[str, ...]:
        """``SORT``'s ``GET``s: the documents, and their ids where :meth:`with_ids`."""
        if self.with_ids(span):
            return ("GET", "#", "GET", self.pattern)
        return ("GET", self.pattern)

    def documents(self, sorted_spans: list[list[Any]], first: int, listed: int) -> list[bytes]:
        """The documents of spans from ``first`` on, above ``after``, up to the page's end.

        A document of the filter's set is never dropped by the cut (the set changes with
        the document, in one script), so cutting the page here keeps it full.
        """
        docs: list[bytes | None] = []
        for span, found in enumerate(sorted_spans, first):
            if self.with_ids(span):
                docs += [doc for wid, doc in zip(found[::2], found[1::2], strict=True)
                         if int(wid) > self.after]  # fmt: skip
            else:
                docs += found
        kept = [doc for doc in docs if doc is not None]
        return kept if self.limit is None else kept[: self.limit - listed]


class _Joining:
    """A listing's parts joined as they come, their size checked against a budget."""

    def __init__(self, budget: int | None) -> None:
        self.budget = budget
        self.parts: list[Listing] = []
        #: The joined size so far: the parts and a comma between each two.
        self.size = -1
        #: The documents so far.
        self.count = 0

    def over(self, part: Listing) -> bool:
        """Add ``part``; whether the listing is now over the budget."""
        if part.count:
            self.parts.append(part)
            self.size += len(part.docs) + 1
            self.count += part.count
        return self.budget is not None and self.size > self.budget

    def listing(self) -> Listing:
        """The parts joined into one listing."""
        return Listing(self.count, b",".join(p.docs for p in self.parts))


class _Planned:
    """The counts an unpaged listing was planned on, checked in its first ``MULTI``."""

    def __init__(self, workers: str, after: int, before: int, remaining: int) -> None:
        self.checks = _Planned.counting(workers, after)
        self.counts = (before, remaining)

    @staticmethod
    def counting(workers: str, after: int) -> list[Command]:
        """The commands that count the ids up to ``after`` and after it."""
        return [("ZCOUNT", workers, "-inf", after), ("ZCOUNT", workers, f"({after}", "+inf")]

    def held(self, answers: list[Any]) -> bool:
        """Whether the counts are still those planned on (no reset, no new worker)."""
        return (answers[0], answers[1]) == self.counts


async def _exchange(connection: AbstractConnection, commands: Sequence[Command]) -> list[Any]:
    """Send ``commands`` in one write; their replies, in order (an error reply raises)."""
    await connection.send_packed_command(connection.pack_commands(commands))
    return [await connection.read_response() for _ in commands]


def _executed(replies: list[Any]) -> list[Any]:
    """``EXEC``'s replies; a command that failed inside it raises (the sort is refused)."""
    failed = next((r for r in replies if isinstance(r, ResponseError)), None)
    if failed is not None:
        raise failed
    return replies


def _spans(offset: int, count: int) -> list[tuple[int, int]]:
    """``count`` from ``offset`` in spans of at most :data:`SORTED_MAX`."""
    return [(start, min(SORTED_MAX, offset + count - start))
            for start in range(offset, offset + count, SORTED_MAX)]  # fmt: skip


class _Keep:
    """The documents of a sort that a listing keeps: found, their ids in none of the sets.

    The sort's document at offset ``p`` is worker ``p + 1``'s (the ids are dense): the
    ids of the sets are cut out by position.
    """

    def __init__(self, sets: Sequence[str]) -> None:
        #: The sets whose ids are cut out.
        self.sets = tuple(sets)
        #: The offsets of their ids, ascending, once :meth:`found` has them.
        self.cuts: list[int] = []

    def found(self, replies: list[list[bytes]]) -> None:
        """The ids of the sets (``SMEMBERS`` of each): the offsets to cut, for every later call."""
        self.cuts = sorted({int(i) - 1 for ids in replies for i in ids})

    def reading(self, offset: int, limit: int, remaining: int) -> int:
        """How many documents from ``offset`` hold ``limit`` not cut out (or all ``remaining``)."""
        cuts, count = self.cuts, limit
        first = bisect_left(cuts, offset)
        while count < remaining:
            wanted = limit + bisect_left(cuts, offset + count) - first
            if wanted <= count:
                break
            count = wanted
        return min(count, remaining)

    def __call__(self, docs: list[bytes | None], offset: int) -> list[bytes]:
        """``docs`` (from ``offset``) without the missing ones and those to cut."""
        cuts = self.cuts
        # Only the cuts among these documents: an unpaged listing of 100,000 has ten.
        mine = cuts[bisect_left(cuts, offset) : bisect_left(cuts, offset + len(docs))]
        if not mine:
            return list(filter(None, docs))  # a document is never empty: drops the missing
        kept = bytearray(b"\x01") * len(docs)
        for cut in mine:
            kept[cut - offset] = 0
        return list(filter(None, compress(docs, kept)))


def _all_on_builder(docs: list[bytes], builderid: int) -> bool:
    """Whether no document of ``docs`` loses anything to the cut.

    Counted over all their tails at once: every ``configured_on`` pair on ``builderid``,
    no ``configured_on`` empty (none would be listed).
    """
    tails = _tails(docs)
    return (
        tails.count(b'"builderid":') == tails.count(b'"builderid":%d,' % builderid)
        and b'"configured_on":[]' not in tails
    )


def cut_to_builder(doc: bytes, builderid: int) -> bytes | None:
    """``doc`` as ``getWorkers(builderid=...)`` lists it, as ``read_workers.lua`` cuts it.

    ``configured_on`` keeps the pairs on ``builderid`` (``None`` when none is left);
    ``connected_to`` stays as it is.
    """
    start = doc.rindex(_CONNECTED) + len(_CONNECTED)
    conn, found = _tail(doc, start)
    bid = b"%d" % builderid
    kept = [pair[0] for pair in found if pair[1] == bid]
    if not kept:
        return None
    if len(kept) == len(found):
        return doc
    return b'%s%s],"configured_on":[%s]}' % (doc[:start], conn, b",".join(kept))


def _tail(doc: bytes, start: int) -> tuple[bytes, list[re.Match[bytes]]]:
    """``connected_to``'s ids (from ``start``, just inside it) and the ``configured_on`` pairs."""
    tail = _TAIL.fullmatch(doc, start)
    if tail is None:
        raise ValueError(f"not a worker document: {doc[:80]!r}...")
    conn, pairs = tail.groups()
    return conn, list(_PAIR.finditer(pairs))


#: Per id filter: whether documents lose nothing to its cut, and the cut.
_CUTS: Final = {
    "masterid": (_all_on_master, cut_to_master),
    "builderid": (_all_on_builder, cut_to_builder),
}


def _cut_down(
    found: Sequence[bytes | None],
    value: int,
    all_kept: Callable[[list[bytes], int], bool],
    cut_to: Callable[[bytes, int], bytes | None],
) -> Listing:
    """The documents found (a missing one is ``None``), each cut down to the filter's ``value``.

    Documents that lose nothing (``all_kept``) are listed as they are, uncut.
    """
    docs = [doc for doc in found if doc is not None]
    if not all_kept(docs, value):
        cut = (cut_to(doc, value) for doc in docs)
        docs = [doc for doc in cut if doc is not None]
    return Listing(len(docs), b",".join(docs))


def _joined(docs: list[bytes], budget: int | None) -> Listing | Outcome:
    """The documents joined by ``,``, unless that is over ``budget`` bytes."""
    size = sum(map(len, docs)) + len(docs) - 1
    if budget is not None and size > budget:
        return Outcome.OVER_BUDGET
    return Listing(len(docs), b",".join(docs))
