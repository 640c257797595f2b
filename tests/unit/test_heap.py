"""Keeping the collector's full collections short (zkactors.runtime.heap): the
heap is frozen as the log and the tree grow, and a long log committed at once
reaches the store in bounded messages."""

from __future__ import annotations

import gc

import pytest

from zkactors.core.replog import Committed, Entry
from zkactors.runtime import mail
from zkactors.runtime.heap import CollectionTimes, HeapFreezer
from zkactors.runtime.log import _Outputs

pytestmark = pytest.mark.timeout(30)


def test_the_heap_is_frozen_after_every_so_many_entries():
    freezer = HeapFreezer(every=1000)
    try:
        freezer.grew(999)
        assert freezer.freezes == 0
        kept = [[i] for i in range(100)]  # some long-lived containers
        freezer.grew(1)
        assert freezer.freezes == 1 and gc.get_freeze_count() >= len(kept)
        freezer.grew(600)
        freezer.grew(600)
        assert freezer.freezes == 2
    finally:
        gc.unfreeze()


def test_collections_are_timed_by_generation():
    times = CollectionTimes()
    times.install()
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        times.uninstall()
    assert times.pauses[0].n >= 1 and times.pauses[2].n >= 1
    gc.collect(2)
    assert times.pauses[2].n == 1  # uninstalled: no longer counted


class _Actor:
    max_batch = 3

    def __init__(self) -> None:
        self.client_endpoints: dict[int, str] = {}
        self.sent: list[tuple[str, mail.Commits]] = []

    def send(self, actor: str, message: mail.Commits) -> None:
        self.sent.append((actor, mail.decode(mail.encode(message))))  # as the store gets it


def test_a_long_commit_reaches_the_store_in_messages_of_at_most_max_batch():
    actor = _Actor()
    committed = [Committed(Entry(i, 1, 0, ["noop"]), None, 0) for i in range(1, 8)]
    _Outputs(actor).commit(committed, 7, 1)
    assert [type(m) for _, m in actor.sent] == [mail.Commits] * 3
    assert [[item[2] for item in m.items] for _, m in actor.sent] == [[1, 2, 3], [4, 5, 6], [7]]
    assert all(to == "store" and (m.commit_index, m.term) == (7, 1) for to, m in actor.sent)
