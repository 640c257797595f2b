"""Behaviour of the store core (zkactors.core.store): applying committed entries, reads, status."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zkactors.core.dedup import OUT_OF_ORDER, tag
from zkactors.core.replog import Committed, Entry
from zkactors.core.store import StoreCore
from zkactors.core.tree import (
    NODE_CHILDREN_CHANGED,
    NODE_CREATED,
    NODE_DATA_CHANGED,
    Event,
    Tree,
)
from zkactors.errors import Code, ZookeeperError
from zkactors.protocol import make_zxid

pytestmark = pytest.mark.timeout(60)

A = b"client-a"
B = b"client-b"


def committed(index: int, txn: list, ident: bytes | None = A, rid: int | None = None,
              term: int = 1, time_ms: int = 5000) -> Committed:
    """A committed entry for ``ident`` (rid defaults to the index)."""
    return Committed(Entry(index, term, time_ms, txn), ident, index if rid is None else rid)


def marker(ident: bytes, rid: int, op: str, *args) -> Committed:
    """A read released by the log in order behind its client's writes."""
    return Committed(None, ident, rid, [op, list(args)])


def create(path: str, data: bytes = b"", flags: int = 0) -> list:
    return ["create", path, data, flags]


def new_store(**kwargs) -> StoreCore:
    return StoreCore(Tree(), **kwargs)


# ------------------------------------------------------------------------ apply


def test_apply_in_order_answers_each_write():
    store = new_store()
    replies, _ = store.apply(
        [committed(1, create("/a", b"x")), committed(2, create("/a/b")),
         committed(3, ["set", "/a", b"y", 0], ident=B, rid=77)],
        commit_index=3, term=1,
    )
    assert [r[:3] for r in replies] == [[A, 1, 0], [A, 2, 0], [B, 77, 0]]
    assert replies[0][3] == "/a"
    assert replies[1][3] == "/a/b"
    stat = replies[2][3]
    assert stat[0] == make_zxid(1, 1)  # czxid
    assert stat[1] == make_zxid(1, 3)  # mzxid
    assert stat[4] == 1  # version
    assert all(r[4] is True for r in replies)  # via_log
    assert store.applied_index == 3
    assert store.applied_zxid == make_zxid(1, 3)


def test_applied_zxid_is_term_shifted_over_index():
    store = new_store()
    store.apply([committed(1, create("/a"), term=7)], commit_index=1, term=7)
    assert store.applied_zxid == (7 << 32) | 1
    _, stat = store.tree.get("/a")
    assert stat.czxid == (7 << 32) | 1


def test_entries_carry_their_time_into_the_stat():
    store = new_store()
    store.apply([committed(1, create("/a"), time_ms=123456)], commit_index=1, term=1)
    assert store.tree.get("/a")[1].ctime == 123456


def test_apply_split_over_batches_continues_the_index():
    store = new_store()
    store.apply([committed(1, create("/a"))], 1, 1)
    replies, _ = store.apply([committed(2, create("/b"))], 2, 1)
    assert [r[:5] for r in replies] == [[A, 2, 0, "/b", True]]
    assert store.applied_index == 2


def test_out_of_order_entry_raises():
    store = new_store()
    with pytest.raises(RuntimeError, match="out of order"):
        store.apply([committed(2, create("/a"))], 2, 1)
    assert store.applied_index == 0
    assert len(store.tree) == 1


def test_an_entry_applied_twice_raises():
    store = new_store()
    store.apply([committed(1, create("/a"))], 1, 1)
    with pytest.raises(RuntimeError, match="out of order"):
        store.apply([committed(1, create("/a"))], 1, 1)
    assert store.applied_index == 1


def test_a_gap_inside_a_batch_raises():
    store = new_store()
    with pytest.raises(RuntimeError, match="applied 1, got 3"):
        store.apply([committed(1, create("/a")), committed(3, create("/b"))], 3, 1)


def test_store_restored_at_an_index_expects_the_next_one():
    store = new_store(applied_index=10, applied_term=2, term=2)
    with pytest.raises(RuntimeError):
        store.apply([committed(1, create("/a"))], 1, 2)
    replies, _ = store.apply([committed(11, create("/a"), term=2)], 11, 2)
    assert replies[0][2] == 0
    assert store.applied_zxid == make_zxid(2, 11)


def test_replayed_entries_without_ident_get_no_reply():
    store = new_store()
    replies, events = store.apply(
        [committed(1, create("/a"), ident=None, rid=0), committed(2, create("/b"))], 2, 1
    )
    assert [r[:5] for r in replies] == [[A, 2, 0, "/b", True]]
    assert store.applied_index == 2
    # Replayed changes still produce their events.
    assert Event(NODE_CREATED, "/a", make_zxid(1, 1), 0) in events


def test_error_txn_consumes_its_index():
    store = new_store()
    replies, events = store.apply([committed(1, ["set", "/missing", b"x", -1], rid=5)], 1, 1)
    assert len(replies) == 1
    ident, rid, code, result, via_log, _ = replies[0]
    assert (ident, rid, code, via_log) == (A, 5, int(Code.NO_NODE), True)
    assert isinstance(result, str) and "/missing" in result
    assert events == []
    assert store.applied_index == 1
    assert store.applied_zxid == make_zxid(1, 1)
    assert len(store.tree) == 1
    # The next index follows on.
    replies, _ = store.apply([committed(2, create("/a"))], 2, 1)
    assert replies[0][2] == 0
    assert store.tree.get("/a")[1].czxid == make_zxid(1, 2)


@pytest.mark.parametrize(
    ("txn", "code"),
    [
        (create("/a"), Code.NODE_EXISTS),
        (create("/x/y"), Code.NO_NODE),
        (["set", "/a", b"", 5], Code.BAD_VERSION),
        (["delete", "/", -1, False], Code.BAD_ARGUMENTS),
        (["delete", "/a", -1, False], Code.NOT_EMPTY),
        (["rename", "/a", "/b", 0], Code.UNIMPLEMENTED),
    ],
)
def test_each_failing_txn_is_answered_with_its_code_and_leaves_the_tree(txn, code):
    store = new_store()
    store.apply([committed(1, create("/a")), committed(2, create("/a/b"))], 2, 1)
    digest = store.tree.digest()
    replies, events = store.apply([committed(3, txn)], 3, 1)
    assert replies[0][2] == int(code)
    assert events == []
    assert store.tree.digest() == digest
    assert store.applied_index == 3


def test_events_returned_for_successful_writes_only():
    store = new_store()
    replies, events = store.apply(
        [
            committed(1, create("/a")),
            committed(2, ["set", "/nope", b"", -1]),
            committed(3, ["set", "/a", b"v", -1]),
        ],
        3, 1,
    )
    assert [r[2] for r in replies] == [0, int(Code.NO_NODE), 0]
    assert events == [
        Event(NODE_CREATED, "/a", make_zxid(1, 1), 0),
        Event(NODE_CHILDREN_CHANGED, "/", make_zxid(1, 1), 1),
        Event(NODE_DATA_CHANGED, "/a", make_zxid(1, 3), 1),
    ]


def test_delete_reply_result_is_none():
    store = new_store()
    replies, events = store.apply(
        [committed(1, create("/a")), committed(2, ["delete", "/a", -1, False])], 2, 1
    )
    assert replies[1][:5] == [A, 2, 0, None, True]
    assert [e.type for e in events][-2:] == ["deleted", "child"]


# ----------------------------------------------------------------- read markers


def test_read_markers_are_answered_in_position():
    store = new_store()
    replies, _ = store.apply(
        [
            marker(A, 1, "exists", "/a"),
            committed(1, create("/a", b"one"), rid=2),
            marker(A, 3, "get", "/a"),
            committed(2, ["set", "/a", b"two", -1], rid=4),
            marker(A, 5, "get", "/a"),
            marker(B, 6, "children", "/"),
        ],
        2, 1,
    )
    assert [(r[0], r[1], r[2], r[4]) for r in replies] == [
        (A, 1, 0, True), (A, 2, 0, True), (A, 3, 0, True),
        (A, 4, 0, True), (A, 5, 0, True), (B, 6, 0, True),
    ]  # every reply came through the log: the gateway counts them all down
    assert replies[0][3] is None  # did not exist yet
    assert replies[2][3][0] == b"one"
    assert replies[4][3][0] == b"two"
    assert replies[5][3] == ["a"]


def test_read_marker_errors_are_replies():
    store = new_store()
    replies, _ = store.apply([marker(A, 1, "get", "/nope")], 0, 1)
    assert replies[0][:3] == [A, 1, int(Code.NO_NODE)]
    assert replies[0][4] is True


def test_sync_marker_sees_the_writes_before_it():
    store = new_store()
    replies, _ = store.apply(
        [committed(1, create("/a"), term=4), marker(A, 2, "sync", "/")], 1, 4
    )
    assert replies[1][:5] == [A, 2, 0, make_zxid(4, 1), True]


# ------------------------------------------------------------------------ reads


def populated() -> StoreCore:
    store = new_store()
    store.apply(
        [committed(1, create("/a", b"data")), committed(2, create("/a/c")),
         committed(3, create("/a/b"))],
        3, 2,
    )
    return store


def test_get_returns_data_and_stat_list():
    store = populated()
    [[ident, rid, code, result, via_log, _]] = store.read([[B, 9, "get", ["/a"]]])
    assert (ident, rid, code, via_log) == (B, 9, 0, False)
    data, stat = result
    assert data == b"data"
    assert stat == store.tree.get("/a")[1].to_list()
    assert len(stat) == 11


def test_exists_returns_stat_or_none():
    store = populated()
    replies = store.read([[A, 1, "exists", ["/a/b"]], [A, 2, "exists", ["/zz"]]])
    assert replies[0][2:4] == [0, store.tree.exists("/a/b").to_list()]
    assert replies[1][:5] == [A, 2, 0, None, False]


def test_children_are_sorted_names():
    store = populated()
    assert store.read([[A, 1, "children", ["/a"]]])[0][:5] == [A, 1, 0, ["b", "c"], False]


def test_sync_returns_the_applied_zxid():
    store = populated()
    assert store.read([[A, 1, "sync", ["/"]]]) == [[A, 1, 0, make_zxid(1, 3), False,
                                                    make_zxid(1, 3)]]


def test_status_read_returns_the_status_map():
    store = populated()
    [[_, _, code, result, _, _]] = store.read([[A, 1, "status", []]])
    assert code == 0
    assert result == store.status()


def test_read_errors_become_error_replies():
    store = populated()
    replies = store.read([
        [A, 1, "get", ["/missing"]],
        [A, 2, "children", ["/missing"]],
        [A, 3, "get", ["no-slash"]],
        [A, 4, "frobnicate", ["/a"]],
        [A, 5, "get", ["/a"]],
    ])
    assert [r[2] for r in replies] == [
        int(Code.NO_NODE), int(Code.NO_NODE), int(Code.BAD_ARGUMENTS),
        int(Code.UNIMPLEMENTED), 0,
    ]
    assert all(isinstance(r[3], str) for r in replies[:4])


def test_reads_do_not_change_anything():
    store = populated()
    before = (store.tree.digest(), store.status())
    store.read([[A, 1, "get", ["/a"]], [A, 2, "children", ["/"]], [A, 3, "sync", ["/"]]])
    assert (store.tree.digest(), store.status()) == before


# ----------------------------------------------------------------------- status


def test_status_fields_of_a_fresh_store():
    assert new_store().status() == {
        "term": 0, "applied_zxid": 0, "applied_index": 0, "commit_index": 0, "znodes": 1,
        "sessions": 0, "dedup_clients": 0, "duplicate_writes": 0,
    }


def test_status_of_a_restored_store():
    store = new_store(applied_index=7, applied_term=2, term=3)
    assert store.status() == {
        "term": 3, "applied_zxid": make_zxid(2, 7), "applied_index": 7, "commit_index": 7,
        "znodes": 1, "sessions": 0, "dedup_clients": 0, "duplicate_writes": 0,
    }


def test_status_after_apply_reports_the_logs_commit_index_and_term():
    store = new_store()
    store.apply([committed(1, create("/a"), term=2)], commit_index=5, term=3)
    assert store.status() == {
        "term": 3, "applied_zxid": make_zxid(2, 1), "applied_index": 1, "commit_index": 5,
        "znodes": 2, "sessions": 0, "dedup_clients": 0, "duplicate_writes": 0,
    }


def test_commit_index_in_status_never_goes_backwards_nor_below_applied():
    store = new_store()
    store.apply([committed(1, create("/a"))], commit_index=4, term=1)
    store.apply([committed(2, create("/b"))], commit_index=2, term=1)
    assert store.status()["commit_index"] == 4
    store.apply([committed(3, create("/c"))], commit_index=0, term=1)
    assert store.status()["commit_index"] == 4
    store.apply([committed(4, create("/d")), committed(5, create("/e"))], 0, 1)
    assert store.status()["commit_index"] == 5



def test_status_gives_the_tree_digest_and_its_zxid_only_when_asked():
    store = populated()
    assert "digest" not in store.status()
    [[_, _, code, result, _, _]] = store.read([[A, 1, "status", [True]]])
    assert code == 0
    assert result["digest"] == store.tree.digest()
    assert result["digest_zxid"] == result["applied_zxid"] == make_zxid(1, 3)
    [[_, _, _, plain, _, _]] = store.read([[A, 2, "status", []]])
    assert "digest" not in plain and "digest_zxid" not in plain


def test_two_stores_that_applied_the_same_entries_report_the_same_digest():
    one, two = populated(), populated()
    assert one.status(digest=True) == two.status(digest=True)
    two.apply([committed(4, ["set", "/a", b"other", -1])], 4, 2)
    one.apply([committed(4, ["set", "/a", b"differs", -1])], 4, 2)
    assert one.status(digest=True)["digest"] != two.status(digest=True)["digest"]


def test_the_digest_is_computed_once_per_applied_zxid():
    store = populated()
    calls = []
    real = store.tree.digest
    store.tree.digest = lambda: calls.append(1) or real()
    first = store.status(digest=True)
    assert store.status(digest=True) == first
    assert len(calls) == 1  # the same zxid: the cached digest
    store.apply([committed(4, create("/new"))], 4, 2)
    after = store.status(digest=True)
    assert len(calls) == 2
    assert after["digest_zxid"] == make_zxid(1, 4) and after["digest"] != first["digest"]


def test_a_snapshot_restore_drops_the_cached_digest_even_at_the_same_zxid():
    store = populated()
    other = new_store()
    other.apply([committed(1, create("/z")), committed(2, create("/y")),
                 committed(3, create("/x"))], 3, 2)
    before = store.status(digest=True)
    store.restore_state(msgpack.unpackb(msgpack.packb(other.snapshot_state())), 3, 1)
    after = store.status(digest=True)
    assert after["digest_zxid"] == before["digest_zxid"]
    assert after["digest"] == other.tree.digest() != before["digest"]

# --------------------------------------------------------------------- property

PATHS = ["/a", "/b", "/a/x", "/a/y", "/b/x"]
TXNS = st.one_of(
    st.builds(lambda p, d, f: ["create", p, d, f], st.sampled_from(PATHS),
              st.binary(max_size=3), st.sampled_from([0, 1, 2, 3])),
    st.builds(lambda p, d, v: ["set", p, d, v], st.sampled_from(PATHS),
              st.binary(max_size=3), st.integers(-1, 2)),
    st.builds(lambda p, v, r: ["delete", p, v, r], st.sampled_from(PATHS),
              st.integers(-1, 1), st.booleans()),
)


@settings(max_examples=150, deadline=None, database=None)
@given(txns=st.lists(TXNS, max_size=25), cuts=st.sets(st.integers(1, 24)))
def test_any_batching_gives_the_same_tree_replies_and_events(txns, cuts):
    items = [committed(i, txn, rid=i, time_ms=1000 + i) for i, txn in enumerate(txns, start=1)]
    one = new_store()
    all_replies, all_events = one.apply(items, len(items), 1)

    other = new_store()
    replies, events, start = [], [], 0
    for cut in sorted(c for c in cuts if c < len(items)) + [len(items)]:
        r, e = other.apply(items[start:cut], cut, 1)
        replies += r
        events += e
        start = cut

    assert (replies, events) == (all_replies, all_events)
    assert one.tree.digest() == other.tree.digest()
    # Every entry, failed or not, was answered and consumed its index.
    assert [r[1] for r in all_replies] == list(range(1, len(txns) + 1))
    assert one.applied_index == len(txns)
    assert one.applied_zxid == make_zxid(1 if txns else 0, len(txns))
    # The same txns applied straight to a tree agree with the store's answers.
    tree = Tree()
    for i, txn in enumerate(txns, start=1):
        try:
            tree.apply(txn, make_zxid(1, i), 1000 + i)
            code = 0
        except ZookeeperError as err:
            code = int(err.code)
        assert all_replies[i - 1][2] == code
    assert tree.digest() == one.tree.digest()


# ------------------------------------------------------- reads at a client's zxid


def test_a_read_at_a_zxid_not_yet_applied_waits_until_it_is():
    store = new_store()
    store.apply([committed(1, create("/a", b"one"))], 1, 1)
    target = make_zxid(1, 2)
    assert store.read([[A, 7, "get", ["/a", target]]], now_ms=0) == []  # parked
    replies, _ = store.apply([committed(2, ["set", "/a", b"two", -1])], 2, 1)
    waited = [r for r in replies if r[1] == 7]
    assert waited and waited[0][2] == 0 and waited[0][3][0] == b"two"


def test_a_read_waits_for_the_index_its_node_caught_up_to():
    # The gateway heard "caught up to 2" from the log; the commits are still on
    # their way here on another pipe: the read must not see the older tree.
    store = new_store()
    store.apply([committed(1, create("/a", b"one"))], 1, 1)
    assert store.read([[A, 7, "get", ["/a"], 2]], now_ms=0) == []  # parked
    replies, _ = store.apply([committed(2, ["set", "/a", b"two", -1])], 2, 1)
    [waited] = [r for r in replies if r[1] == 7]
    assert waited[2] == 0 and waited[3][0] == b"two"
    [reply] = store.read([[A, 8, "get", ["/a"], 2]], now_ms=0)  # applied: at once
    assert reply[3][0] == b"two"


def test_a_read_held_behind_its_clients_writes_still_waits_for_the_zxid_it_has_seen():
    # At a follower, a client's read queued behind its writes (refused: not the
    # leader) is released at once — but the client has seen the leader's newer
    # state: it must not be answered from an older one (read-your-writes).
    store = new_store()
    store.apply([committed(1, create("/a", b"one"))], 1, 1)
    read = Committed(None, A, 7, ["get", ["/a", make_zxid(1, 2)]])
    replies, _ = store.apply([read], 1, 1, now_ms=100)
    assert replies == []  # parked
    replies, _ = store.apply([committed(2, ["set", "/a", b"two", -1], ident=None),
                              committed(3, ["set", "/a", b"three", -1], ident=None)], 3, 1)
    [waited] = replies
    # Answered as soon as index 2 was applied, not at the end of the batch, and
    # marked as coming through the log (the gateway counts those).
    assert waited[1] == 7 and waited[3][0] == b"two" and waited[4] is True
    [again], _ = store.apply([read], 3, 1, now_ms=200)  # applied that far: at once
    assert again[3][0] == b"three"
    assert store.read([[A, 8, "get", ["/a", make_zxid(1, 9)]]], now_ms=200) == []
    expired = store.tick(200 + store.max_wait_ms)
    assert [(r[1], r[2], r[4]) for r in expired] == [(8, Code.NOT_READY, False)]


def test_a_read_at_an_applied_zxid_is_answered_at_once():
    store = new_store()
    store.apply([committed(1, create("/a", b"one"))], 1, 1)
    [reply] = store.read([[A, 7, "get", ["/a", make_zxid(1, 1)]]], now_ms=0)
    assert reply[2] == 0 and reply[3][0] == b"one"


def test_a_read_that_waits_too_long_gets_not_ready():
    store = new_store()
    assert store.read([[A, 7, "exists", ["/a", make_zxid(1, 5)]]], now_ms=100) == []
    assert store.tick(100 + store.max_wait_ms - 1) == []
    [reply] = store.tick(100 + store.max_wait_ms)
    assert reply[:3] == [A, 7, int(Code.NOT_READY)]
    assert store.tick(10**9) == []  # answered once only


def test_waiting_reads_are_bounded():
    store = new_store()
    store.max_parked = 2
    for rid in range(2):
        assert store.read([[A, rid, "get", ["/a", make_zxid(1, 9)]]]) == []
    [reply] = store.read([[A, 99, "get", ["/a", make_zxid(1, 9)]]])
    assert reply[2] == int(Code.NOT_READY)


def test_waiting_reads_are_released_in_arrival_order():
    store = new_store()
    store.read([[B, 1, "exists", ["/a", make_zxid(1, 1)]]])
    store.read([[B, 2, "exists", ["/a", make_zxid(1, 1)]]])
    replies, _ = store.apply([committed(1, create("/a"))], 1, 1)
    assert [r[1] for r in replies if r[0] == B] == [1, 2]


# ------------------------------------------------------------ at-most-once writes


def test_a_tagged_write_applied_twice_changes_the_tree_once_and_answers_alike():
    store = new_store()
    seq_create = tag(42, 1, 1, create("/q/n-", b"x", flags=3))  # makepath + sequence
    replies, events = store.apply(
        [committed(1, seq_create), committed(2, seq_create, rid=9)], commit_index=2, term=1)
    assert [r[2:4] for r in replies] == [[0, "/q/n-0000000000"], [0, "/q/n-0000000000"]]
    assert store.tree.get_children("/q") == ["n-0000000000"]
    assert len([e for e in events if e.path == "/q/n-0000000000"]) == 1
    assert store.applied_index == 2  # the copy still consumes its index


def test_a_retried_write_that_failed_gets_the_same_failure_not_a_second_try():
    store = new_store()
    store.apply([committed(1, create("/a"))], commit_index=1, term=1)
    first = tag(7, 3, 3, ["set", "/a", b"v", 5])  # BadVersion
    replies, _ = store.apply([committed(2, first)], commit_index=2, term=1)
    assert replies[0][2] == Code.BAD_VERSION
    store.apply([committed(3, ["set", "/a", b"w", -1])], commit_index=3, term=1)
    replies, _ = store.apply([committed(4, first)], commit_index=4, term=1)
    assert replies[0][2] == Code.BAD_VERSION
    assert store.tree.get("/a")[0] == b"w"


def test_same_seq_from_two_clients_are_two_writes():
    store = new_store()
    replies, _ = store.apply(
        [committed(1, tag(1, 5, 5, create("/x", flags=2))),
         committed(2, tag(2, 5, 5, create("/x", flags=2)))], commit_index=2, term=1)
    assert [r[3] for r in replies] == ["/x0000000000", "/x0000000001"]


def test_a_retry_below_what_the_client_acknowledged_is_refused_not_reapplied():
    store = new_store()
    store.apply([committed(1, tag(3, 1, 1, create("/c", flags=2)))], commit_index=1, term=1)
    # The client got that reply and says so with its next write.
    store.apply([committed(2, tag(3, 2, 2, create("/d")))], commit_index=2, term=1)
    replies, _ = store.apply([committed(3, tag(3, 1, 1, create("/c", flags=2)))],
                             commit_index=3, term=1)
    assert replies[0][2] == Code.RUNTIME_INCONSISTENCY
    assert store.tree.get_children("/") == ["c0000000000", "d"]


def test_a_write_that_overtook_an_earlier_one_of_its_client_is_refused_unapplied():
    store = new_store()
    store.apply([committed(1, tag(4, 1, 1, create("/a")))], commit_index=1, term=1)
    # Write 3 reached the log before write 2 (sent when 1 was still unanswered).
    replies, events = store.apply([committed(2, tag(4, 3, 1, create("/c")))], 2, 1)
    assert replies[0][2:4] == [Code.NOT_READY, OUT_OF_ORDER] and events == []
    assert store.tree.get_children("/") == ["a"] and store.applied_index == 2
    # Its predecessor, then its resent copy: applied, in order.
    replies, _ = store.apply([committed(3, tag(4, 2, 1, create("/b"))),
                              committed(4, tag(4, 3, 2, create("/c")))], 4, 1)
    assert [r[2] for r in replies] == [0, 0]
    assert [c.pzxid for c in [store.tree.exists(f"/{n}") for n in "abc"]] == \
        [make_zxid(1, 1), make_zxid(1, 3), make_zxid(1, 4)]


def test_dedup_table_is_rebuilt_identically_by_replay():
    entries = [committed(i, tag(i % 3 + 1, i, i, create(f"/n{i}"))) for i in range(1, 30)]
    first, second = new_store(), new_store()
    first.apply(entries, commit_index=29, term=1)
    second.apply([Committed(c.entry, None, 0) for c in entries], commit_index=29, term=1)
    assert first.clients.to_list() == second.clients.to_list()
    assert first.status()["dedup_clients"] == 3


def test_a_state_snapshot_restores_the_tree_and_the_dedup_table():
    store = new_store()
    store.apply([committed(1, tag(9, 1, 1, create("/s", b"1", flags=2))),
                 committed(2, create("/t", b"2"))], commit_index=2, term=3)
    copy = new_store()
    copy.restore_state(msgpack.unpackb(msgpack.packb(store.snapshot_state())), 2, 1)
    assert copy.tree.digest() == store.tree.digest()
    assert copy.applied_zxid == make_zxid(1, 2) == store.applied_zxid
    # A retry of the write the snapshot covers is still answered, not applied again.
    replies, _ = copy.apply([committed(3, tag(9, 1, 1, create("/s", b"1", flags=2)))],
                            commit_index=3, term=3)
    assert replies[0][2:4] == [0, "/s0000000000"]
    assert copy.tree.get_children("/") == ["s0000000000", "t"]
    with pytest.raises(ZookeeperError):
        copy.restore_state(["not", "a", "snapshot"], 1, 1)


def test_each_reply_carries_the_zxid_its_request_saw():
    """Not the batch's last: a client installing a watch by a read must know the
    exact state it read, or it would skip the changes between."""
    store = new_store()
    replies, _ = store.apply([committed(1, create("/a")), marker(B, 5, "children", "/"),
                              committed(2, create("/b"))], commit_index=2, term=1)
    by_rid = {r[1]: r for r in replies}
    assert by_rid[5][3] == ["a"] and by_rid[5][5] == make_zxid(1, 1)
    assert by_rid[1][5] == make_zxid(1, 1) and by_rid[2][5] == make_zxid(1, 2)
    assert store.read([[A, 9, "get", ["/b"]]])[0][5] == make_zxid(1, 2)


def test_a_backup_read_is_the_whole_state_at_the_applied_index():
    store = new_store()
    store.apply([committed(1, create("/a", b"1")), committed(2, create("/a/b", b"2"))], 2, 3)
    [reply] = store.read([[A, 7, "backup", ["/"]]], 0)
    assert reply[2] == 0
    index, term, payload = reply[3]
    assert index == 2 and make_zxid(term, index) == store.applied_zxid
    copy = new_store()
    copy.restore_state(msgpack.unpackb(payload), index, term)
    assert copy.tree.digest() == store.tree.digest()
    assert copy.applied_zxid == store.applied_zxid


def test_a_backup_of_part_of_the_tree_is_refused():
    store = new_store()
    store.apply([committed(1, create("/a"))], 1, 1)
    [reply] = store.read([[A, 7, "backup", ["/a"]]], 0)
    assert reply[2] == int(Code.BAD_ARGUMENTS)
