"""Behaviour of the log core (zkactors.core.replog): entries, the commit rule, read markers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zkactors.core.replog import Committed, Entry, LogCore, quorum_index

pytestmark = pytest.mark.timeout(60)

TXN = ["create", "/a", b"", 0]


def write(ident: bytes, rid: int, path: str = "/a") -> list:
    """A write request as the gateway sends it to the log."""
    return [ident, rid, ["create", path, b"", 0], None]


def read(ident: bytes, rid: int, path: str = "/a") -> list:
    """A read the gateway held back behind the same client's writes."""
    return [ident, rid, None, ["get", [path]]]


def shape(released: list[Committed]) -> list[tuple]:
    """Released items as ("entry", index) / ("read", rid), easy to compare."""
    return [("read", c.rid) if c.entry is None else ("entry", c.entry.index) for c in released]


def brute_quorum(match: list[int]) -> int:
    """The largest index that at least a majority of members have reached."""
    return max(v for v in [0, *match] if sum(m >= v for m in match) * 2 > len(match))


# ------------------------------------------------------------------ quorum_index


def test_quorum_index_of_one_member_is_its_own_index():
    assert quorum_index([7]) == 7


@pytest.mark.parametrize(
    ("match", "expected"),
    [([5, 0, 0], 0), ([5, 3, 0], 3), ([5, 5, 0], 5), ([0, 3, 9], 3), ([2, 2, 2], 2)],
)
def test_quorum_index_of_three_members_is_the_second_highest(match, expected):
    assert quorum_index(match) == expected


@pytest.mark.parametrize(
    ("match", "expected"),
    [([9, 8, 0, 0, 0], 0), ([9, 8, 7, 0, 0], 7), ([1, 2, 3, 4, 5], 3), ([4, 4, 4, 4, 0], 4)],
)
def test_quorum_index_of_five_members_needs_three(match, expected):
    assert quorum_index(match) == expected


def test_quorum_index_of_an_even_ensemble_needs_more_than_half():
    assert quorum_index([9, 9, 0, 0]) == 0
    assert quorum_index([9, 9, 9, 0]) == 9
    assert quorum_index([4, 0]) == 0


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=9))
def test_quorum_index_is_the_largest_index_a_majority_has_reached(match):
    assert quorum_index(match) == brute_quorum(match)


# ----------------------------------------------------------------- construction


def test_node_not_in_members_raises():
    with pytest.raises(ValueError, match="not a member"):
        LogCore(4, [1, 2, 3], term=1, last_index=0)


def test_replayed_log_counts_as_committed():
    log = LogCore(1, [1], term=2, last_index=10)
    assert log.commit_index == 10
    assert log.last_index == 10
    assert log.pending == 0


# ---------------------------------------------------------------------- entries


def test_entries_get_consecutive_indexes_and_the_current_term():
    log = LogCore(1, [1], term=3, last_index=41)
    entries = log.propose([write(b"A", 1), write(b"B", 1, "/b"), write(b"A", 2, "/c")], 1234)
    assert entries == [
        Entry(42, 3, 1234, ["create", "/a", b"", 0]),
        Entry(43, 3, 1234, ["create", "/b", b"", 0]),
        Entry(44, 3, 1234, ["create", "/c", b"", 0]),
    ]
    assert log.last_index == 44
    more = log.propose([write(b"A", 3)], 2000)
    assert [(e.index, e.time_ms) for e in more] == [(45, 2000)]


def test_reads_make_no_entries():
    log = LogCore(1, [1], term=1, last_index=0)
    assert log.propose([read(b"A", 1), read(b"A", 2)], 0) == []
    assert log.last_index == 0
    assert log.pending == 2


def test_entry_record_is_term_time_txn():
    assert Entry(5, 2, 99, TXN).to_record() == [2, 99, TXN]


# ------------------------------------------------------------------- commit rule


def test_single_member_commits_on_its_own_persisted():
    log = LogCore(1, [1], term=1, last_index=0)
    log.propose([write(b"A", 1), write(b"B", 7)], 0)
    assert log.pending == 2
    released = log.persisted(1, 2)
    assert shape(released) == [("entry", 1), ("entry", 2)]
    assert [(c.ident, c.rid) for c in released] == [(b"A", 1), (b"B", 7)]
    assert log.commit_index == 2
    assert log.pending == 0


def test_single_member_commits_only_what_it_has_persisted():
    log = LogCore(1, [1], term=1, last_index=0)
    log.propose([write(b"A", 1), write(b"A", 2)], 0)
    assert shape(log.persisted(1, 1)) == [("entry", 1)]
    assert log.commit_index == 1
    assert shape(log.persisted(1, 2)) == [("entry", 2)]


def test_commit_needs_a_majority_of_three():
    log = LogCore(1, [1, 2, 3], term=1, last_index=0)
    log.propose([write(b"A", 1), write(b"A", 2)], 0)
    assert log.persisted(1, 2) == []  # the leader alone is one of three
    assert log.commit_index == 0
    assert shape(log.persisted(2, 1)) == [("entry", 1)]
    assert log.commit_index == 1
    assert shape(log.persisted(3, 2)) == [("entry", 2)]
    assert log.commit_index == 2


def test_two_followers_make_a_majority_without_the_leader():
    log = LogCore(1, [1, 2, 3], term=1, last_index=0)
    log.propose([write(b"A", 1)], 0)
    assert log.persisted(2, 1) == []
    assert shape(log.persisted(3, 1)) == [("entry", 1)]


def test_commit_needs_three_of_five():
    log = LogCore(1, [1, 2, 3, 4, 5], term=1, last_index=0)
    log.propose([write(b"A", 1)], 0)
    assert log.persisted(1, 1) == []
    assert log.persisted(4, 1) == []
    assert shape(log.persisted(5, 1)) == [("entry", 1)]


def test_commit_index_never_goes_backwards():
    # Replayed entries are committed, but followers start at 0: the quorum index
    # is below the commit index until they catch up.
    log = LogCore(1, [1, 2, 3], term=1, last_index=5)
    log.propose([write(b"A", 1)], 0)
    assert log.persisted(1, 6) == []
    assert log.commit_index == 5
    assert log.persisted(2, 3) == []
    assert log.commit_index == 5
    assert shape(log.persisted(2, 6)) == [("entry", 6)]
    assert log.commit_index == 6


def test_a_stale_acknowledgement_does_not_lower_a_members_match_index():
    log = LogCore(1, [1, 2, 3], term=1, last_index=0)
    log.propose([write(b"A", 1), write(b"A", 2)], 0)
    log.persisted(1, 2)
    log.persisted(2, 2)
    assert log.commit_index == 2
    log.persisted(2, 1)  # late, reordered ack
    assert log.match_index[2] == 2
    log.persisted(3, 0)
    assert log.commit_index == 2


def test_acknowledgement_from_a_non_member_is_ignored():
    log = LogCore(1, [1, 2, 3], term=1, last_index=0)
    log.propose([write(b"A", 1)], 0)
    log.persisted(1, 1)
    assert log.persisted(99, 1) == []
    assert log.commit_index == 0
    assert 99 not in log.match_index


def test_persisted_with_nothing_new_releases_nothing():
    log = LogCore(1, [1], term=1, last_index=3)
    assert log.persisted(1, 3) == []
    assert log.commit_index == 3


# ----------------------------------------------------------------- read markers


def test_read_with_nothing_ahead_is_released_at_once():
    log = LogCore(1, [1, 2, 3], term=1, last_index=0)
    log.propose([read(b"A", 9)], 0)
    released = log.persisted(1, 0)  # nothing new is durable; the read still goes
    assert released == [Committed(None, b"A", 9, ["get", ["/a"]])]
    assert log.pending == 0


def test_read_waits_until_every_entry_before_it_is_committed():
    log = LogCore(1, [1, 2, 3], term=1, last_index=0)
    log.propose([write(b"A", 1), write(b"B", 1, "/b"), read(b"A", 2), write(b"A", 3, "/c")], 0)
    log.persisted(1, 3)
    assert shape(log.persisted(2, 1)) == [("entry", 1)]
    # Entry 2 (another client's) is still ahead of the read.
    assert log.pending == 3
    assert shape(log.persisted(2, 2)) == [("entry", 2), ("read", 2)]
    assert shape(log.persisted(3, 3)) == [("entry", 3)]
    assert log.pending == 0


def test_reads_keep_their_place_among_entries():
    log = LogCore(1, [1], term=1, last_index=0)
    log.propose([read(b"A", 1), write(b"A", 2), read(b"A", 3), read(b"A", 4), write(b"A", 5)], 0)
    released = log.persisted(1, 2)
    assert shape(released) == [("read", 1), ("entry", 1), ("read", 3), ("read", 4), ("entry", 2)]
    assert [c.rid for c in released] == [1, 2, 3, 4, 5]


def test_read_behind_an_uncommitted_entry_is_not_released_by_a_later_read():
    log = LogCore(1, [1], term=1, last_index=0)
    log.propose([write(b"A", 1)], 0)
    log.propose([read(b"A", 2)], 0)
    assert log.persisted(1, 0) == []
    assert log.pending == 2
    assert shape(log.persisted(1, 1)) == [("entry", 1), ("read", 2)]


# --------------------------------------------------------------------- property


@settings(max_examples=200, deadline=None, database=None)
@given(
    members=st.integers(min_value=1, max_value=5),
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("write"), st.integers(1, 3)),
            st.tuples(st.just("read"), st.just(0)),
            st.tuples(st.just("ack"), st.integers(0, 4), st.integers(0, 12)),
        ),
        max_size=40,
    ),
)
def test_release_order_follows_proposal_order_and_the_majority(members, steps):
    ids = list(range(1, members + 1))
    log = LogCore(1, ids, term=1, last_index=0)
    proposed: list[tuple] = []
    released: list[tuple] = []
    acked = {m: 0 for m in ids}
    rid = 0
    for step in steps:
        if step[0] == "write":
            for _ in range(step[1]):
                rid += 1
                log.propose([write(b"A", rid)], 0)
                proposed.append(("entry", log.last_index))
        elif step[0] == "read":
            rid += 1
            log.propose([read(b"A", rid)], 0)
            proposed.append(("read", rid))
        else:
            member = ids[step[1] % members]
            index = min(step[2], log.last_index)  # a member can't hold more than exists
            before = log.commit_index
            out = shape(log.persisted(member, index))
            acked[member] = max(acked[member], index)
            assert log.commit_index >= before
            assert log.commit_index == max(before, brute_quorum(list(acked.values())))
            assert all(i <= log.commit_index for kind, i in out if kind == "entry")
            released.extend(out)
    released.extend(shape(log.persisted(1, 0)))  # the driver always calls it after propose
    # Released items are a prefix of what was proposed, in the same order...
    assert released == proposed[: len(released)]
    # ...and the first one held back (if any) is an uncommitted entry.
    if len(released) < len(proposed):
        kind, index = proposed[len(released)]
        assert kind == "entry" and index > log.commit_index
    assert log.pending == len(proposed) - len(released)
