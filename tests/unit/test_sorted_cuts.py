"""The sorted listings' cut checks: a document's own lists decide, never its workerinfo."""

from __future__ import annotations

import json
from typing import Any

import pytest

from registryd.ports import Listing
from registryd.store.sorted import _all_on_builder as all_on_builder
from registryd.store.sorted import _all_on_master as all_on_master
from registryd.store.sorted import _cut_down as cut_down
from registryd.store.sorted import cut_to_builder, cut_to_master

#: A workerinfo that holds every needle the checks count, as keys and in strings.
TRICKY: dict[str, Any] = {
    "masterid": 3,
    "x": {"builderid": 9, "masterid": 3},
    "note": ',"connected_to":[7],"configured_on":[]',
    "connected_to": [7],
    "after": {"builderid": 9, "masterid": 3},
}


def _doc(wid: int, connected: list[int], pairs: list[tuple[int, int]], info: object) -> bytes:
    """A stored document, in the order and spelling ``render_worker`` writes it."""
    document = {
        "id": wid,
        "name": f"w{wid}",
        "workerinfo": info,
        "paused": False,
        "pause_reason": None,
        "graceful": False,
        "connected_to": connected,
        "configured_on": [{"builderid": b, "masterid": m} for m, b in pairs],
    }
    return json.dumps(document, separators=(",", ":")).encode()


#: (connected_to, configured_on pairs as (masterid, builderid)), whether master 10 keeps all.
ON_MASTER = [
    ([10], [(10, 1), (10, 2)], True),
    ([], [(10, 1)], True),
    ([7], [(10, 1)], False),
    ([10, 7], [(10, 1)], False),
    ([10], [(10, 1), (7, 1)], False),
]


@pytest.mark.parametrize(("connected", "pairs", "kept"), ON_MASTER)
@pytest.mark.parametrize("info", [{}, TRICKY], ids=["plain", "tricky workerinfo"])
def test_the_master_check_reads_the_documents_own_lists(
    connected: list[int], pairs: list[tuple[int, int]], kept: bool, info: object
) -> None:
    """All kept exactly when cutting would change no document (and none would vanish)."""
    docs = [_doc(1, [10], [(10, 5)], info), _doc(2, connected, pairs, info)]
    assert kept == all_on_master(docs, 10)
    assert kept == all(cut_to_master(doc, 10) == doc for doc in docs)


@pytest.mark.parametrize(
    ("pairs", "kept"),
    [([(10, 4), (7, 4)], True), ([(10, 4), (10, 5)], False), ([], False)],
)
@pytest.mark.parametrize("info", [{}, TRICKY], ids=["plain", "tricky workerinfo"])
def test_the_builder_check_reads_the_documents_own_lists(
    pairs: list[tuple[int, int]], kept: bool, info: object
) -> None:
    """All kept exactly when cutting to builder 4 would change no document."""
    docs = [_doc(1, [7], [(7, 4)], info), _doc(2, [10], pairs, info)]
    assert kept == all_on_builder(docs, 4)
    assert kept == all(cut_to_builder(doc, 4) == doc for doc in docs)


@pytest.mark.parametrize("info", [{}, TRICKY], ids=["plain", "tricky workerinfo"])
def test_a_document_with_no_pair_is_never_taken_as_kept(info: object) -> None:
    """No ``configured_on`` at all: the slow path decides (such a worker is not listed)."""
    assert not all_on_master([_doc(1, [10], [], info)], 10)
    assert not all_on_builder([_doc(1, [10], [], info)], 4)


def test_a_listing_cut_down_is_each_document_cut() -> None:
    """Mixed documents (and a missing one): the listing is the cut ones, joined."""
    docs = [
        _doc(1, [10], [(10, 1)], TRICKY),
        None,
        _doc(3, [7, 10], [(7, 1), (10, 2)], TRICKY),
        _doc(4, [7], [(7, 1)], {}),
    ]
    cut = [cut_to_master(doc, 10) for doc in docs if doc is not None]
    kept = [doc for doc in cut if doc is not None]
    assert Listing(len(kept), b",".join(kept)) == cut_down(docs, 10, all_on_master, cut_to_master)
    assert len(kept) == 2
