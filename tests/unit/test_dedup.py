"""The replicated reply cache that makes retried writes apply at most once."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zkactors.core import dedup
from zkactors.core.dedup import FORGOTTEN, ClientRecord, ClientTable

pytestmark = pytest.mark.timeout(60)


def test_unknown_client_and_unknown_seq_are_not_duplicates():
    table = ClientTable()
    assert table.lookup(1, 1) is None
    table.record(1, 1, 1, 0, "/a")
    assert table.lookup(1, 2) is None
    assert table.lookup(2, 1) is None


def test_a_recorded_reply_is_returned_until_the_client_acknowledges_it():
    table = ClientTable()
    table.record(1, 1, 1, 0, "/a")
    table.record(1, 2, 1, -110, "exists")
    assert table.lookup(1, 1) == [0, "/a"]
    assert table.lookup(1, 2) == [-110, "exists"]
    table.record(1, 3, 2, 0, None)  # "seq 1 answered"
    assert table.lookup(1, 1) == [None, FORGOTTEN]
    assert table.lookup(1, 2) == [-110, "exists"]


def test_ack_below_never_drops_the_write_that_carries_it():
    table = ClientTable()
    table.record(1, 5, 99, 0, "r")
    assert table.lookup(1, 5) == [0, "r"]
    assert table.lookup(1, 6) is None


def test_replies_per_client_are_bounded_and_the_dropped_ones_are_refused(monkeypatch):
    monkeypatch.setattr(dedup, "MAX_REPLIES_PER_CLIENT", 4)
    table = ClientTable()
    for seq in range(1, 8):
        table.record(1, seq, 1, 0, seq)  # never acknowledges anything
    assert [table.lookup(1, s) for s in range(1, 8)] == [
        [None, FORGOTTEN]] * 3 + [[0, 4], [0, 5], [0, 6], [0, 7]]


def test_least_recently_writing_client_is_evicted_first(monkeypatch):
    monkeypatch.setattr(dedup, "MAX_CLIENTS", 2)
    table = ClientTable()
    table.record(1, 1, 1, 0, "a")
    table.record(2, 1, 1, 0, "b")
    table.record(1, 2, 1, 0, "c")  # client 1 is now the most recent
    table.record(3, 1, 1, 0, "d")
    assert len(table) == 2
    assert table.lookup(2, 1) is None
    assert table.lookup(1, 2) == [0, "c"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 40), st.integers(0, 40)),
                max_size=80))
def test_snapshot_round_trip_keeps_every_answer(writes):
    table = ClientTable()
    for client, seq, ack in writes:
        if table.lookup(client, seq) is None:
            table.record(client, seq, ack, 0, [client, seq])
    copy = ClientTable.from_list(table.to_list())
    assert copy.to_list() == table.to_list()
    for client in range(1, 4):
        for seq in range(1, 41):
            assert copy.lookup(client, seq) == table.lookup(client, seq)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 3), st.integers(1, 30)), max_size=100))
def test_no_write_is_applied_twice_whatever_the_retries(attempts):
    """Model: a client retries any of its writes in any order, acknowledging only
    writes it has a reply for. Each (client, seq) applies at most once."""
    table = ClientTable()
    applied: dict[tuple[int, int], int] = {}
    answered: dict[int, set[int]] = {1: set(), 2: set(), 3: set()}
    for client, seq in attempts:
        pending = [s for s in range(1, 31) if s not in answered[client]]
        ack = min(pending) if pending else 31
        if seq in answered[client]:
            continue  # a client never resends what it has an answer for
        if table.lookup(client, seq) is None:
            applied[(client, seq)] = applied.get((client, seq), 0) + 1
            table.record(client, seq, ack, 0, None)
        answered[client].add(seq)
    assert all(count == 1 for count in applied.values())


# ------------------------------------------------------------------- FIFO order


def test_a_write_is_in_order_right_after_the_last_applied_or_once_all_before_are_settled():
    table = ClientTable()
    assert table.in_order(1, 1, 1) and table.in_order(1, 7, 7)
    assert not table.in_order(1, 7, 1)  # a client's first write is its seq 1 ...
    table.record(1, 1, 1, 0, "a")
    assert table.in_order(1, 2, 1)
    assert not table.in_order(1, 3, 1)  # 2 is still in flight: 3 would overtake it
    assert not table.in_order(1, 3, 2)
    assert table.in_order(1, 3, 3)  # the client settled 2 (gave up on it): go on
    table.record(1, 3, 3, 0, "c")
    assert table.in_order(1, 4, 3) and not table.in_order(1, 5, 4)


def test_the_last_applied_seq_survives_a_snapshot_and_old_snapshots_still_load():
    table = ClientTable()
    table.record(1, 1, 1, 0, "a")
    table.record(1, 2, 1, 0, "b")
    copy = ClientTable.from_list(table.to_list())
    assert not copy.in_order(1, 4, 1) and copy.in_order(1, 3, 1)
    old_format = [[1, 1, [[1, 0, "a"], [2, 0, "b"]]]]  # before last_seq was kept
    assert ClientTable.from_list(old_format).to_list() == table.to_list()
    assert ClientTable.from_list([[5, 9, []]])._clients[5] == ClientRecord({}, 9, 8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 12), st.booleans()), max_size=120))
def test_writes_apply_in_the_order_sent_however_copies_arrive(deliveries):
    """Model: one client's writes 1..12, sent pipelined; copies reach the state
    machine in any order (leader changes, resends), each carrying the ack_below of
    when it was sent. The client marks a write settled when answered, and may give
    one up (a timeout). Whatever applies, applies in increasing seq order."""
    table = ClientTable()
    settled: set[int] = set()
    applied: list[int] = []
    for seq, give_up in deliveries:
        if seq in settled:
            continue  # a client never resends a write it has an outcome for
        ack_below = min(s for s in range(1, 14) if s not in settled)
        if give_up:
            settled.add(seq)  # its future failed with a timeout: never sent again
            continue
        cached = table.lookup(1, seq)
        if cached is None:
            if not table.in_order(1, seq, ack_below):
                continue  # refused: the client sends it again later
            table.record(1, seq, ack_below, 0, seq)
            applied.append(seq)
        settled.add(seq)
    assert applied == sorted(set(applied)), applied
