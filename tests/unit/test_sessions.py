"""Sessions and ephemeral znodes in the pure cores: the replicated session table
and its transactions (StoreCore), ephemeral owners in the tree, and the leader's
expiry tracker."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zkactors.core.replog import Committed, Entry
from zkactors.core.sessions import REPROPOSE_MS, ExpiryTracker, touch_route
from zkactors.core.store import StoreCore
from zkactors.core.tree import (
    CREATE_EPHEMERAL,
    CREATE_SEQUENCE,
    NODE_CHILDREN_CHANGED,
    NODE_DELETED,
    MultiError,
    Tree,
)
from zkactors.errors import BadVersionError, Code, NoChildrenForEphemeralsError

S1, S2 = 0x1111, 0x2222


class Log:
    """Applies txns to a store one entry at a time, as the log hands them over."""

    def __init__(self) -> None:
        self.store = StoreCore(Tree())
        self.index = 0

    def apply(self, txn: list) -> tuple[int, object, list]:
        self.index += 1
        replies, events = self.store.apply(
            [Committed(Entry(self.index, 1, 1000, txn), b"c", self.index)], self.index, 1)
        [reply] = replies
        return reply[2], reply[3], events


def ephemeral(path: str, owner: int, flags: int = 0) -> list:
    return ["create", path, b"e", CREATE_EPHEMERAL | flags, owner]


def test_an_ephemeral_needs_an_open_session_and_records_its_owner():
    log = Log()
    code, result, _ = log.apply(ephemeral("/e", S1))
    assert code == Code.SESSION_EXPIRED and "not open" in result
    assert log.store.tree.exists("/e") is None
    assert log.apply(["session_open", S1, 4000])[:2] == (Code.OK, 4000)
    assert log.apply(ephemeral("/e", S1))[:2] == (Code.OK, "/e")
    assert log.store.tree.exists("/e").ephemeralOwner == S1
    assert log.store.tree.exists("/").ephemeralOwner == 0
    assert log.store.sessions == {S1: 4000}


def test_closing_a_session_deletes_its_ephemerals_in_that_transaction_only():
    log = Log()
    log.apply(["session_open", S1, 4000])
    log.apply(["session_open", S2, 4000])
    log.apply(["create", "/app", b"", 0])
    log.apply(ephemeral("/app/a", S1))
    log.apply(ephemeral("/app/b", S2))
    log.apply(ephemeral("/app/s-", S1, CREATE_SEQUENCE))
    code, ended, events = log.apply(["session_close", S1])
    assert (code, ended) == (Code.OK, [S1])
    deleted = [e.path for e in events if e.type == NODE_DELETED]
    assert deleted == ["/app/a", "/app/s-0000000002"]
    assert all(e.zxid == log.store.applied_zxid for e in events)
    assert any(e.type == NODE_CHILDREN_CHANGED and e.path == "/app" for e in events)
    assert log.store.tree.get_children("/app") == ["b"]
    assert log.store.sessions == {S2: 4000}
    # Ended is ended: its id can no longer own anything.
    assert log.apply(ephemeral("/app/late", S1))[0] == Code.SESSION_EXPIRED


def test_expiry_ends_every_listed_session_still_open():
    log = Log()
    log.apply(["session_open", S1, 4000])
    log.apply(ephemeral("/a", S1))
    code, ended, events = log.apply(["session_expire", [S1, S2]])
    assert (code, ended) == (Code.OK, [S1])  # S2 was never open
    assert [e.path for e in events if e.type == NODE_DELETED] == ["/a"]
    assert log.store.sessions == {}
    assert log.apply(["session_expire", [S1]])[:2] == (Code.OK, [])  # again: nothing


def test_an_ephemeral_deleted_by_hand_is_no_longer_its_sessions():
    log = Log()
    log.apply(["session_open", S1, 4000])
    log.apply(ephemeral("/a", S1))
    log.apply(["delete", "/a", -1, False])
    log.apply(["create", "/a", b"persistent", 0])
    _, _, events = log.apply(["session_close", S1])
    assert events == []
    assert log.store.tree.get("/a")[0] == b"persistent"


def test_ephemerals_may_not_have_children():
    tree = Tree()
    tree.create("/e", b"", 1, 0, owner=S1)
    with pytest.raises(NoChildrenForEphemeralsError):
        tree.create("/e/child", b"", 2, 0)
    log = Log()
    log.apply(["session_open", S1, 4000])
    log.apply(ephemeral("/e", S1))
    assert log.apply(["create", "/e/c", b"", 0])[0] == Code.NO_CHILDREN_FOR_EPHEMERALS


@pytest.mark.parametrize("txn", [
    ["session_open", 0, 4000], ["session_open", S1, 0], ["session_open", S1, "x"],
    ["session_open", S1], ["session_close", -1], ["session_expire", S1],
    ["session_expire", [S1, "x"]], ["create", "/e", b"", CREATE_EPHEMERAL, 0],
    ["create", "/e", b"", 0, S1], ["create", "/e", b"", CREATE_EPHEMERAL],
])
def test_malformed_session_txns_are_refused_and_change_nothing(txn):
    log = Log()
    log.apply(["session_open", S2, 4000])
    digest = log.store.tree.digest()
    code, _, events = log.apply(txn)
    assert code in (Code.BAD_ARGUMENTS, Code.SESSION_EXPIRED)
    assert events == [] and log.store.sessions == {S2: 4000}
    assert log.store.tree.digest() == digest


def test_sessions_and_owners_survive_a_snapshot():
    log = Log()
    log.apply(["session_open", S1, 4000])
    log.apply(["session_open", S2, 9000])
    log.apply(ephemeral("/a", S1))
    log.apply(ephemeral("/b", S2))
    state = msgpack.unpackb(msgpack.packb(log.store.snapshot_state()))
    copy = StoreCore(Tree())
    copy.restore_state(state, log.index, 1)
    assert copy.sessions == {S1: 4000, S2: 9000}
    assert copy.tree.digest() == log.store.tree.digest()
    assert copy.tree.ephemerals(S1) == ["/a"]
    _, events = copy.apply([Committed(Entry(log.index + 1, 1, 0, ["session_close", S2]),
                                      b"c", 1)], log.index + 1, 1)
    assert [e.path for e in events if e.type == NODE_DELETED] == ["/b"]


def test_a_version_1_state_still_loads_with_no_sessions():
    tree = Tree()
    tree.create("/a", b"x", 1, 0)
    records = [record[:9] for record in tree.snapshot()[1]]
    old = ["zkactors-state-1", ["zkactors.tree/1", records], []]
    store = StoreCore(Tree())
    store.restore_state(old, 1, 1)
    assert store.sessions == {} and store.tree.get("/a")[0] == b"x"
    assert store.tree.exists("/a").ephemeralOwner == 0


# ------------------------------------------------------------------ tracker
# (These step time by hand, in leaps a live tracker would take for its own stalls:
# stall_ms=None. The stall rule has tests of its own below.)
def test_the_tracker_expires_only_when_leading_and_silent_past_the_timeout():
    tracker = ExpiryTracker(stall_ms=None)  # time stepped by hand
    sessions = {S1: 1000, S2: 5000}
    assert tracker.expired(sessions, 10_000) == []  # not leading
    tracker.lead(sessions, 0)
    assert tracker.expired(sessions, 1000) == []  # a full timeout from taking over
    assert tracker.expired(sessions, 1001) == [S1]
    assert tracker.expired(sessions, 1002) == []  # proposed once
    tracker.touch([S2], 4000)
    assert tracker.expired(sessions, 5001) == []
    del sessions[S1]  # its expiry applied
    assert tracker.expired(sessions, 9001) == [S2]


def test_a_new_leader_gives_every_session_a_full_timeout():
    tracker = ExpiryTracker(stall_ms=None)  # time stepped by hand
    sessions = {S1: 1000}
    tracker.lead(sessions, 0)
    tracker.follow()
    tracker.touch([S1], 5000)  # not leading: not ours to track
    tracker.lead(sessions, 50_000)  # leader again, long after
    assert tracker.expired(sessions, 50_500) == []
    assert tracker.expired(sessions, 51_001) == [S1]


def test_a_lost_proposal_is_made_again_and_a_gone_session_forgotten():
    tracker = ExpiryTracker(stall_ms=None)  # time stepped by hand
    sessions = {S1: 1000}
    tracker.lead(sessions, 0)
    assert tracker.expired(sessions, 2000) == [S1]
    assert tracker.expired(sessions, 2000 + REPROPOSE_MS) == []
    assert tracker.expired(sessions, 2001 + REPROPOSE_MS) == [S1]
    assert tracker.expired({}, 9_000_000) == []
    assert tracker.last_heard == {} and tracker.proposed == {}


def test_a_session_opened_while_leading_starts_with_a_full_timeout():
    tracker = ExpiryTracker(stall_ms=None)  # time stepped by hand
    tracker.lead({}, 0)
    tracker.opened(S1, 10_000)
    assert tracker.expired({S1: 1000}, 10_900) == []
    assert tracker.expired({S1: 1000}, 11_001) == [S1]


def test_time_the_leader_could_not_watch_is_not_counted_against_sessions():
    tracker = ExpiryTracker(stall_ms=300)
    sessions = {S1: 1000, S2: 1000}
    tracker.lead(sessions, 0)
    for now in range(100, 801, 100):  # checking every 100 ms, as the store does
        assert tracker.expired(sessions, now) == []
    tracker.touch([S1, S2], 800)
    # Then a stall of 2 s (a paused process, a clock that leapt): what arrived
    # meanwhile, the touches included, is seen only after this check.
    assert tracker.expired(sessions, 2800) == []
    tracker.touch([S2], 2800)
    now = 2800
    while now < 3500:  # S1: 300 ms of the stall counted, then 700 ms watched
        now += 100
        assert tracker.expired(sessions, now) == []
    assert tracker.expired(sessions, 3600) == [S1]  # silent > 1000 ms counted


def test_a_silent_session_still_expires_under_steady_small_stalls():
    tracker = ExpiryTracker(stall_ms=300)
    sessions = {S1: 1000}
    tracker.lead(sessions, 0)
    now, due = 0, []
    for _ in range(20):  # checks every 400 ms: 100 ms of each gap forgiven
        now += 400
        due = tracker.expired(sessions, now)
        if due:
            break
    assert due == [S1] and 1000 < now <= 1600


def test_a_stall_shorter_than_the_limit_counts_as_silence():
    tracker = ExpiryTracker(stall_ms=300)
    sessions = {S1: 1000}
    tracker.lead(sessions, 0)
    for now in range(100, 1001, 250):
        assert tracker.expired(sessions, now) == []
    assert tracker.expired(sessions, 1101) == [S1]


def test_touches_go_to_the_own_store_when_leading_else_to_the_known_leader():
    assert touch_route(True, 1, 1) == "store"
    assert touch_route(False, 3, 1) == 3
    assert touch_route(False, 0, 1) is None  # no leader known: dropped
    assert touch_route(False, 1, 1) is None  # a stale idea of itself leading



# ------------------------------------------------------------------- multi


PATHS = ["/a", "/a/b", "/a/b/c", "/d", "/a/e"]
ops = st.one_of(
    st.builds(lambda p, f, o: ["create", p, b"x", f, o] if o else ["create", p, b"x", f],
              st.sampled_from(PATHS), st.sampled_from([0, 1, 2, 3]),
              st.sampled_from([0, 0, S1])),
    st.builds(lambda p, v: ["set", p, b"y", v], st.sampled_from(PATHS),
              st.sampled_from([-1, 0, 1])),
    st.builds(lambda p, v, r: ["delete", p, v, r], st.sampled_from(PATHS),
              st.sampled_from([-1, 0]), st.booleans()),
    st.builds(lambda p, v: ["check", p, v], st.sampled_from(PATHS), st.sampled_from([-1, 0, 1])),
)


def seeded_tree() -> Tree:
    tree = Tree()
    tree.create("/a", b"", 1, 0)
    tree.create("/a/b", b"", 2, 0, owner=S2)
    return tree


def with_owner_flag(txn: list) -> list:
    if txn[0] == "create" and len(txn) == 5:
        return [*txn[:3], txn[3] | CREATE_EPHEMERAL, txn[4]]
    return txn


@settings(max_examples=300, deadline=None)
@given(st.lists(ops, min_size=1, max_size=6))
def test_a_multi_is_all_or_nothing(txns):
    txns = [with_owner_flag(t) for t in txns]
    tree, alone = seeded_tree(), seeded_tree()
    before = tree.digest()
    try:
        results, _ = tree.apply_multi(txns, 10, 99)
    except MultiError as err:
        assert tree.digest() == before  # nothing stays applied
        assert tree.ephemerals(S1) == [] and tree.ephemerals(S2) == ["/a/b"]
        # ... and applying one by one fails at that very operation.
        for i, txn in enumerate(txns):
            try:
                if txn[0] == "check":
                    alone._check(txn)
                else:
                    alone.apply(txn, 10, 99)
            except Exception:  # noqa: BLE001 - the first failure is what is compared
                assert i == err.index
                break
        return
    for txn in txns:  # the same as one by one, at the same zxid
        if txn[0] != "check":
            alone.apply(txn, 10, 99)
    assert tree.digest() == alone.digest()
    assert len(results) == len(txns)
    for owner in (S1, S2):
        assert tree.ephemerals(owner) == alone.ephemerals(owner)


def test_a_failed_multi_tells_which_operation_and_why():
    tree = seeded_tree()
    with pytest.raises(MultiError) as info:
        tree.apply_multi([["create", "/x", b"", 0], ["check", "/a", 7],
                          ["create", "/y", b"", 0]], 10, 0)
    assert info.value.index == 1 and isinstance(info.value.error, BadVersionError)
    assert tree.exists("/x") is None


def test_the_store_answers_a_multi_per_operation_and_refuses_a_dead_sessions_ephemeral():
    log = Log()
    log.apply(["create", "/cfg", b"v0", 0])
    code, result, events = log.apply(["multi", [["check", "/cfg", 0],
                                                ["set", "/cfg", b"v1", 0],
                                                ["create", "/cfg-1", b"", 0]]])
    assert code == Code.OK and result[0] == "ok" and result[1][2] == "/cfg-1"
    assert len({e.zxid for e in events}) == 1
    code, result, events = log.apply(["multi", [["set", "/cfg", b"v2", -1],
                                                ephemeral("/e", S1)]])
    assert result[:3] == ["failed", 1, int(Code.SESSION_EXPIRED)] and events == []
    assert log.store.tree.get("/cfg")[0] == b"v1"


def test_a_touch_moves_the_deadline_and_many_sessions_are_tracked_apart():
    tracker = ExpiryTracker(stall_ms=None)  # time stepped by hand
    sessions = {i: 1000 for i in range(1, 2001)}
    tracker.lead(sessions, 0)
    tracker.touch(list(range(1, 1001)), 900)  # half of them heard from
    assert tracker.expired(sessions, 1001) == list(range(1001, 2001))
    for session_id in range(1001, 2001):
        del sessions[session_id]  # their expiry applied
    assert tracker.expired(sessions, 1900) == []
    assert tracker.expired(sessions, 1901) == list(range(1, 1001))


# ------------------------------------------------ sessions, as a state machine
session_ids = st.sampled_from([S1, S2, 0x3333])
store_ops = st.one_of(
    st.builds(lambda s: ["session_open", s, 4000], session_ids),
    st.builds(lambda s: ["session_close", s], session_ids),
    st.builds(lambda ss: ["session_expire", ss], st.lists(session_ids, max_size=3)),
    st.builds(lambda p, s, q: ["create", p, b"e", CREATE_EPHEMERAL | (2 if q else 0), s],
              st.sampled_from(["/e1", "/e2", "/a/e3", "/p"]), session_ids, st.booleans()),
    st.builds(lambda p: ["create", p, b"", 1], st.sampled_from(["/a", "/p", "/e1/x"])),
    st.builds(lambda p, r: ["delete", p, -1, r], st.sampled_from(["/e1", "/a", "/p"]),
              st.booleans()),
    st.builds(lambda p, s: ["multi", [["create", p, b"", CREATE_EPHEMERAL, s],
                                      ["check", "/a", 0]]],
              st.sampled_from(["/m1", "/a/m2"]), session_ids),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(store_ops, max_size=25))
def test_ephemerals_live_exactly_as_long_as_their_sessions(txns):
    """After every transaction: each ephemeral belongs to an open session, the
    tree's index of them agrees with the nodes, and a session that ended took
    exactly its own ephemerals with it, in that transaction."""
    log = Log()
    for txn in txns:
        store, tree = log.store, log.store.tree
        before_owned = {owner: set(tree.ephemerals(owner)) for owner in (S1, S2, 0x3333)}
        open_before = set(store.sessions)
        code, result, events = log.apply(txn)
        owners = tree.owners()
        assert set(owners) <= set(store.sessions), (txn, owners, store.sessions)
        for owner in (S1, S2, 0x3333):
            for path in tree.ephemerals(owner):
                assert tree.exists(path).ephemeralOwner == owner
        if txn[0] in ("session_close", "session_expire") and code == Code.OK:
            deleted = {e.path for e in events if e.type == NODE_DELETED}
            expected = set().union(*(before_owned[s] for s in result))
            assert deleted == expected
            assert set(result) <= open_before and not set(result) & set(store.sessions)


def test_an_expiry_naming_a_session_twice_ends_it_once():
    """Found by the property test above: it used to raise KeyError in the store,
    which would have stopped the node."""
    log = Log()
    log.apply(["session_open", S1, 4000])
    log.apply(ephemeral("/a", S1))
    code, ended, events = log.apply(["session_expire", [S1, S1]])
    assert (code, ended) == (Code.OK, [S1])
    assert [e.path for e in events if e.type == NODE_DELETED] == ["/a"]


def test_clients_without_a_session_are_not_tracked():
    """Gateways report every client id they hear from; a leader that kept them all
    would grow without bound with short-lived clients (zkctl, scripts)."""
    tracker = ExpiryTracker(stall_ms=None)
    tracker.lead({S1: 1000}, 0)
    tracker.touch([S1, 77, 78], 100)
    assert set(tracker.last_heard) == {S1}
    tracker.opened(S2, 200)
    tracker.touch([S2], 300)
    assert tracker.last_heard == {S1: 100, S2: 300}
