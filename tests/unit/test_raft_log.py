"""Behaviour of the Raft core (zkactors.core.replog.ReplicatedLog): votes, terms, log
replication, flow control, the commit rule and what the clients see.

The core is pure, so every scenario drives 1, 3 or 5 instances by hand. :class:`Cluster`
plays a synchronous driver: each Ready is "fsynced" on the spot, its messages go onto
a network the test delivers (or drops) explicitly, and ``persisted()`` is reported for
the entries it appended. The property test at the end uses an asynchronous driver
instead, where fsyncs, deliveries and inputs interleave at random.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zkactors.core.messages import (
    CANDIDATE,
    FOLLOWER,
    LEADER,
    AppendEntries,
    AppendResponse,
    Campaign,
    Heartbeat,
    InstallSnapshot,
    InstallSnapshotResponse,
    LeaderCheck,
    LeaderCheckAck,
    LeaderLost,
    LeaderSeen,
    PreVote,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    StepDown,
    VoteResponse,
)
from zkactors.core.replog import NOOP, Committed, Entry, Ready, ReplicatedLog
from zkactors.errors import Code

pytestmark = pytest.mark.timeout(60)

RETRANSMIT = 200


# ------------------------------------------------------------------ helpers


def txn(tag: Any) -> list:
    return ["create", f"/{tag}", b"", 0]


def write(ident: bytes, rid: int, tag: Any = "a") -> list:
    """A write request as the gateway hands it to the log."""
    return [ident, rid, txn(tag), None]


def read(ident: bytes, rid: int, tag: Any = "a") -> list:
    """A read the gateway held back behind the same client's writes."""
    return [ident, rid, None, ["get", [f"/{tag}"]]]


def log_of(*terms: int, tag: str = "e") -> list[Entry]:
    """A log whose entry i (from 1) has terms[i - 1]."""
    return [Entry(i, t, 0, txn(f"{tag}{i}t{t}")) for i, t in enumerate(terms, start=1)]


def wire(entries: list[Entry]) -> list[list]:
    return [[e.term, e.time_ms, e.txn] for e in entries]


def shape(committed: list[Committed]) -> list[tuple]:
    """Handed-over items as ("entry", index) / ("read", rid), easy to compare."""
    return [("read", c.rid) if c.entry is None else ("entry", c.entry.index) for c in committed]


def sent(ready: Ready, kind: type, to: int | None = None) -> list:
    return [m for dst, m in ready.messages if isinstance(m, kind) and to in (None, dst)]


def terms_of(node: ReplicatedLog) -> list[int]:
    return [e.term for e in node.entries]


Keep = Callable[[int, int, Any], bool]


class Cluster:
    """Some ReplicatedLogs and a synchronous driver around them."""

    def __init__(self, n: int = 3, logs: dict[int, list[Entry]] | None = None,
                 terms: dict[int, int] | None = None, **options: Any) -> None:
        self.members = list(range(1, n + 1))
        logs, terms = logs or {}, terms or {}
        options.setdefault("retransmit_ms", RETRANSMIT)
        self.nodes = {i: ReplicatedLog(i, self.members, terms.get(i, 0), 0,
                                       logs.get(i), **options) for i in self.members}
        self.net: list[tuple[int, int, Any]] = []  # (src, dst, message)
        self.handed: dict[int, list[Committed]] = {i: [] for i in self.members}
        self.failed: dict[int, list[tuple]] = {i: [] for i in self.members}
        self.hard: dict[int, tuple[int, int]] = {}
        self.leaders: dict[int, int] = {}  # term -> leader
        self.restored: dict[int, list[tuple[int, bytes]]] = {}
        self.now = 0

    def __getitem__(self, node_id: int) -> ReplicatedLog:
        return self.nodes[node_id]

    def feed(self, node_id: int, ready: Ready) -> Ready:
        """Carry out a Ready: fsync, send, hand over, then report persisted()."""
        if ready.hard_state is not None:
            self.hard[node_id] = ready.hard_state
        if ready.role is not None and ready.role.role == LEADER:
            assert self.leaders.setdefault(ready.role.term, node_id) == node_id, \
                "two leaders in one term"
        self._snapshot_effects(node_id, ready)
        self.net.extend((node_id, dst, m) for dst, m in ready.messages)
        self.handed[node_id].extend(ready.committed)
        self.failed[node_id].extend(ready.failed)
        if ready.entries:
            last = ready.entries[-1]
            self.feed(node_id, self.nodes[node_id].persisted(last.index, last.term, self.now))
        return ready

    #: The snapshot each node would send: (index, term, file bytes); chunk size.
    snapshot_files: dict[int, tuple[int, int, bytes]]
    CHUNK = 4

    def _snapshot_effects(self, node_id: int, ready: Ready) -> None:
        """The driver's part of snapshot transfer: read chunks, store chunks."""
        files = self.__dict__.setdefault("snapshot_files", {})
        node = self.nodes[node_id]
        for peer, offset in ready.snapshot_sends:
            index, term, data = files[node_id]
            chunk = data[offset:offset + self.CHUNK]
            ready.messages.append((peer, InstallSnapshot(
                node.term, node_id, index, term, offset, chunk,
                offset + len(chunk) >= len(data))))
        chunk = ready.snapshot_chunk
        if chunk is not None:
            received = self.__dict__.setdefault("received", {})
            have = received.get(node_id, b"") if chunk.offset else b""
            if chunk.offset == len(have):
                have += chunk.data
            received[node_id] = have
            installed = chunk.done and chunk.offset + len(chunk.data) == len(have)
            if installed:
                files[node_id] = (chunk.index, chunk.last_term, have)
                self.restored.setdefault(node_id, []).append((chunk.index, have))
            self.feed(node_id, node.snapshot_chunk_stored(chunk, len(have), installed))

    def deliver(self, src: int, dst: int, message: Any) -> Ready:
        return self.feed(dst, self.nodes[dst].on_message(message, self.now))

    def step(self, keep: Keep | None = None) -> int:
        """Deliver every message now on the network (dropping those ``keep`` refuses)."""
        batch, self.net = self.net, []
        delivered = 0
        for src, dst, message in batch:
            if keep is None or keep(src, dst, message):
                self.deliver(src, dst, message)
                delivered += 1
        return delivered

    def settle(self, keep: Keep | None = None, limit: int = 200) -> None:
        for _ in range(limit):
            if not self.net:
                return
            self.step(keep)
        raise AssertionError("the network never went quiet")

    def tick(self, ms: int = RETRANSMIT) -> None:
        self.now += ms
        for node_id, node in self.nodes.items():
            self.feed(node_id, node.tick(self.now))

    def settle_with_ticks(self, keep: Keep | None = None, rounds: int = 4) -> None:
        """Settle, then let retransmissions repair whatever is still behind."""
        self.settle(keep)
        for _ in range(rounds):
            self.tick()
            self.settle(keep)

    def campaign(self, node_id: int) -> Ready:
        node = self.nodes[node_id]
        return self.feed(node_id, node.campaign(Campaign(node.term + 1), self.now))

    def propose(self, node_id: int, requests: list[list]) -> Ready:
        return self.feed(node_id, self.nodes[node_id].propose(requests, self.now))

    def entries_handed(self, node_id: int) -> list[Entry]:
        return [c.entry for c in self.handed[node_id] if c.entry is not None]


def elected(n: int = 3, leader: int = 1, **options: Any) -> Cluster:
    """A cluster whose ``leader`` won term 1 and committed its NOOP everywhere."""
    cluster = Cluster(n, **options)
    cluster.campaign(leader)
    # A follower whose acknowledgement arrives after the commit learns of it from the
    # next empty append (or from a heartbeat's LeaderSeen): one tick.
    cluster.settle_with_ticks(rounds=1)
    assert cluster[leader].role == LEADER
    assert all(node.commit_index == 1 for node in cluster.nodes.values())
    return cluster


def lone_leader(members: list[int], entries: list[Entry] | None = None, term: int = 0,
                **options: Any) -> tuple[ReplicatedLog, Ready]:
    """Node 1 elected with the votes of nodes 2..majority; returns it and the
    Ready that made it leader (with its first probes)."""
    node = ReplicatedLog(1, members, term, 0, entries, **options)
    node.campaign(Campaign(term + 1))
    ready = Ready()
    for voter in members[1:len(members) // 2 + 1]:
        ready = node.on_message(VoteResponse(term + 1, voter, True))
    assert node.role == LEADER
    return node, ready


# ----------------------------------------------------------------- construction


def test_node_must_be_a_member():
    with pytest.raises(ValueError, match="not a member"):
        ReplicatedLog(4, [1, 2, 3])


def test_replayed_log_must_be_contiguous_from_one():
    with pytest.raises(ValueError, match="contiguous"):
        ReplicatedLog(1, [1], entries=[Entry(2, 1, 0, txn("x"))])


def test_starts_as_a_follower_with_what_it_was_given():
    node = ReplicatedLog(2, [3, 1, 2], term=4, voted_for=3, entries=log_of(1, 4))
    assert (node.role, node.term, node.voted_for, node.leader) == (FOLLOWER, 4, 3, 0)
    assert (node.last_index, node.last_term, node.commit_index) == (2, 4, 0)
    assert node.peers == [1, 3]


def test_an_empty_ready_is_false_and_any_effect_makes_it_true():
    assert not Ready()
    assert Ready(truncate_after=0)
    assert Ready(hard_state=(1, 0))
    assert Ready(messages=[(2, VoteResponse(1, 1, False))])


# ------------------------------------------------------------------- vote rules


def test_grants_one_vote_per_term():
    node = ReplicatedLog(1, [1, 2, 3])
    first = node.on_message(RequestVote(1, 2, 0, 0))
    assert first.messages == [(2, VoteResponse(1, 1, True))]
    second = node.on_message(RequestVote(1, 3, 0, 0))
    assert second.messages == [(3, VoteResponse(1, 1, False))]
    assert second.hard_state is None
    assert node.voted_for == 2


def test_repeated_request_from_the_same_candidate_is_granted_again_without_new_state():
    node = ReplicatedLog(1, [1, 2, 3])
    node.on_message(RequestVote(1, 2, 0, 0))
    again = node.on_message(RequestVote(1, 2, 0, 0))
    assert again.messages == [(2, VoteResponse(1, 1, True))]
    assert again.hard_state is None


def test_a_new_term_allows_a_new_vote():
    node = ReplicatedLog(1, [1, 2, 3])
    node.on_message(RequestVote(1, 2, 0, 0))
    ready = node.on_message(RequestVote(2, 3, 0, 0))
    assert ready.messages == [(3, VoteResponse(2, 1, True))]
    assert ready.hard_state == (2, 3)


def test_vote_grant_sets_hard_state_in_the_same_ready_as_the_response():
    node = ReplicatedLog(1, [1, 2, 3], term=3, entries=log_of(1, 3))
    ready = node.on_message(RequestVote(5, 2, 2, 3))
    # The Ready is fsynced before its messages leave: the grant is sent only once
    # (term 5, vote 2) is durable.
    assert ready.hard_state == (5, 2)
    assert ready.messages == [(2, VoteResponse(5, 1, True))]
    assert (node.term, node.voted_for) == (5, 2)


@pytest.mark.parametrize(
    ("last_index", "last_term"),
    [(9, 2), (3, 2), (2, 3)],  # older last term, however long; same last term but shorter
    ids=["older-last-term-longer-log", "older-last-term", "same-last-term-shorter-log"],
)
def test_refuses_a_candidate_whose_log_is_behind(last_index, last_term):
    node = ReplicatedLog(1, [1, 2, 3], term=3, entries=log_of(1, 3, 3))
    ready = node.on_message(RequestVote(4, 2, last_index, last_term))
    assert ready.messages == [(2, VoteResponse(4, 1, False))]
    # The term is adopted all the same, with no vote cast in it.
    assert ready.hard_state == (4, 0)
    assert node.voted_for == 0


@pytest.mark.parametrize(
    ("last_index", "last_term"),
    [(1, 4), (3, 3), (7, 3)],  # newer last term, however short; same last term, as long or longer
    ids=["newer-last-term-shorter-log", "equal-log", "same-last-term-longer-log"],
)
def test_grants_a_candidate_whose_log_is_at_least_as_up_to_date(last_index, last_term):
    node = ReplicatedLog(1, [1, 2, 3], term=3, entries=log_of(1, 3, 3))
    ready = node.on_message(RequestVote(4, 2, last_index, last_term))
    assert ready.messages == [(2, VoteResponse(4, 1, True))]
    assert ready.hard_state == (4, 2)


def test_refuses_a_candidate_of_an_older_term_and_tells_it_our_term():
    node = ReplicatedLog(1, [1, 2, 3], term=5)
    ready = node.on_message(RequestVote(4, 2, 9, 4))
    assert ready.messages == [(2, VoteResponse(5, 1, False))]
    assert ready.hard_state is None
    assert node.voted_for == 0


def test_a_candidate_does_not_vote_for_a_rival_in_its_own_term():
    node = ReplicatedLog(1, [1, 2, 3])
    node.campaign(Campaign(1))
    ready = node.on_message(RequestVote(1, 2, 5, 1))
    assert ready.messages == [(2, VoteResponse(1, 1, False))]
    assert node.role == CANDIDATE


def test_a_leader_never_grants_a_vote_in_its_own_term():
    cluster = elected(3)
    leader = cluster[1]
    ready = leader.on_message(RequestVote(1, 2, 10, 1))  # even to a longer log
    assert ready.messages == [(2, VoteResponse(1, 1, False))]
    assert leader.role == LEADER
    assert ready.hard_state is None


HIGHER_TERM_MESSAGES = {
    "RequestVote": RequestVote(7, 2, 0, 0),  # log behind: refused, term adopted anyway
    "VoteResponse": VoteResponse(7, 2, False),
    "AppendEntries": AppendEntries(7, 2, 0, 0, [], 0),
    "AppendResponse": AppendResponse(7, 2, False, 0, 0, 0),
}


@pytest.mark.parametrize("kind", sorted(HIGHER_TERM_MESSAGES))
@pytest.mark.parametrize("role", [LEADER, CANDIDATE, FOLLOWER])
def test_a_higher_term_in_any_message_makes_us_a_follower_and_clears_the_vote(kind, role):
    cluster = elected(3)
    node = cluster[1]
    if role == CANDIDATE:
        node.step_down(StepDown(1))
        node.campaign(Campaign(2))
    elif role == FOLLOWER:
        node.step_down(StepDown(1))
    assert node.role == role and node.voted_for == 1
    ready = node.on_message(HIGHER_TERM_MESSAGES[kind])
    assert (node.role, node.term, node.voted_for) == (FOLLOWER, 7, 0)
    assert ready.hard_state == (7, 0)
    assert ready.role is not None and (ready.role.role, ready.role.term) == (FOLLOWER, 7)


def test_a_stale_campaign_is_ignored():
    node = ReplicatedLog(1, [1, 2, 3], term=3)
    assert not node.campaign(Campaign(3))
    assert not node.campaign(Campaign(2))
    assert (node.role, node.term, node.voted_for) == (FOLLOWER, 3, 0)
    ready = node.campaign(Campaign(4))
    assert node.role == CANDIDATE
    assert ready.hard_state == (4, 1)


def test_a_campaign_reaching_a_leader_is_ignored():
    cluster = elected(3)
    assert not cluster[1].campaign(Campaign(5))
    assert (cluster[1].role, cluster[1].term) == (LEADER, 1)


def test_a_campaign_persists_the_self_vote_before_asking_for_votes():
    node = ReplicatedLog(1, [1, 2, 3], term=2, entries=log_of(1, 2))
    ready = node.campaign(Campaign(3))
    assert ready.hard_state == (3, 1)
    assert ready.messages == [(2, RequestVote(3, 1, 2, 2)), (3, RequestVote(3, 1, 2, 2))]
    assert ready.role is not None and (ready.role.role, ready.role.term) == (CANDIDATE, 3)


def test_a_single_member_campaign_becomes_leader_at_once():
    node = ReplicatedLog(1, [1], term=4, entries=log_of(2, 4))
    ready = node.campaign(Campaign(5), now_ms=77)
    assert node.role == LEADER
    assert ready.hard_state == (5, 1)
    assert ready.messages == []
    assert ready.entries == [Entry(3, 5, 77, NOOP)]
    assert ready.role is not None and (ready.role.role, ready.role.leader) == (LEADER, 1)
    # Its own fsync is the whole quorum; the replayed entries commit with the NOOP.
    done = node.persisted(3, 5)
    assert shape(done.committed) == [("entry", 1), ("entry", 2), ("entry", 3)]
    assert node.commit_index == 3


def test_a_candidate_needs_a_majority_of_distinct_granted_votes():
    node = ReplicatedLog(1, [1, 2, 3, 4, 5])
    node.campaign(Campaign(1))
    node.on_message(VoteResponse(1, 2, True))
    node.on_message(VoteResponse(1, 2, True))  # a duplicate is one vote
    node.on_message(VoteResponse(1, 3, False))  # a refusal is none
    assert node.role == CANDIDATE
    ready = node.on_message(VoteResponse(1, 4, True))
    assert node.role == LEADER
    assert ready.role is not None and ready.role.role == LEADER


def test_votes_of_an_older_term_do_not_count():
    node = ReplicatedLog(1, [1, 2, 3], term=1)
    node.campaign(Campaign(2))
    assert not node.on_message(VoteResponse(1, 2, True))
    assert node.role == CANDIDATE


# --------------------------------------------------------------- becoming leader


def test_a_new_leader_appends_a_noop_of_its_term_and_probes_every_follower():
    node, ready = lone_leader([1, 2, 3, 4, 5], log_of(1, 1), term=1)
    assert node.term == 2
    assert ready.entries == [Entry(3, 2, 0, NOOP)]
    assert ready.role is not None and (ready.role.role, ready.role.term) == (LEADER, 2)
    probe = AppendEntries(2, 1, 2, 1, [[2, 0, NOOP]], 0)
    assert ready.messages == [(2, probe), (3, probe), (4, probe), (5, probe)]
    assert all(p.probing for p in node.progress.values())


def test_the_noop_of_a_new_leader_is_committed_everywhere():
    cluster = elected(5)
    for node_id in cluster.members:
        assert [(e.index, e.term, e.txn) for e in cluster.entries_handed(node_id)] == \
            [(1, 1, NOOP)]
        assert cluster[node_id].leader == 1


# ---------------------------------------------------------------- follower side


def test_append_from_an_older_term_is_refused_with_our_term():
    node = ReplicatedLog(2, [1, 2, 3], term=5, entries=log_of(1))
    ready = node.on_message(AppendEntries(4, 1, 1, 1, wire(log_of(1, 4)[1:]), 2))
    assert ready.messages == [(1, AppendResponse(5, 2, False, 0, 0, 1))]
    assert ready.entries == [] and node.last_index == 1 and node.leader == 0


def test_append_makes_a_candidate_follow_the_leader_of_its_term():
    node = ReplicatedLog(2, [1, 2, 3])
    node.campaign(Campaign(1))
    ready = node.on_message(AppendEntries(1, 3, 0, 0, [[1, 0, NOOP]], 0))
    assert (node.role, node.leader, node.term) == (FOLLOWER, 3, 1)
    assert ready.role is not None and (ready.role.role, ready.role.leader) == (FOLLOWER, 3)
    assert sent(ready, AppendResponse, 3) == [AppendResponse(1, 2, True, 1, 0, 0)]


def test_a_leader_refuses_an_append_from_another_leader_of_its_term():
    cluster = elected(3)
    leader = cluster[1]
    before = leader.rejected
    ready = leader.on_message(AppendEntries(1, 2, 1, 1, [[1, 0, txn("x")]], 1))
    assert not ready
    assert leader.rejected == before + 1
    assert leader.last_index == 1 and leader.role == LEADER


def test_prev_mismatch_fails_with_a_hint_skipping_the_whole_conflicting_term():
    node = ReplicatedLog(2, [1, 2, 3], term=3, entries=log_of(1, 1, 2, 2, 2))
    ready = node.on_message(AppendEntries(4, 1, 5, 3, [[4, 0, txn("x")]], 0))
    # Index 5 has term 2, not 3: the whole of term 2 (indexes 3..5) is suspect.
    assert sent(ready, AppendResponse, 1) == [AppendResponse(4, 2, False, 0, 3, 5)]
    assert ready.entries == [] and ready.truncate_after is None
    assert terms_of(node) == [1, 1, 2, 2, 2]


def test_prev_mismatch_in_the_first_term_hints_index_one():
    node = ReplicatedLog(2, [1, 2, 3], term=2, entries=log_of(2, 2, 2))
    ready = node.on_message(AppendEntries(3, 1, 2, 1, [], 0))
    assert sent(ready, AppendResponse, 1) == [AppendResponse(3, 2, False, 0, 1, 2)]


def test_a_follower_missing_entries_hints_one_past_its_last_index():
    node = ReplicatedLog(2, [1, 2, 3], term=1, entries=log_of(1, 1))
    ready = node.on_message(AppendEntries(2, 1, 6, 2, [[2, 0, txn("x")]], 0))
    assert sent(ready, AppendResponse, 1) == [AppendResponse(2, 2, False, 0, 3, 6)]
    assert ready.entries == [] and node.last_index == 2


def test_a_conflicting_suffix_is_truncated_and_replaced():
    node = ReplicatedLog(2, [1, 2, 3], term=1, entries=log_of(1, 1, 1, 1))
    new = [Entry(3, 2, 5, txn("n3")), Entry(4, 2, 5, txn("n4")), Entry(5, 2, 5, txn("n5"))]
    ready = node.on_message(AppendEntries(2, 1, 1, 1, [[1, 0, txn("e2t1")], *wire(new)], 0))
    # Index 2 matches (same term): kept. Index 3 conflicts: 3.. dropped and replaced.
    assert ready.truncate_after == 2
    assert ready.entries == new
    assert terms_of(node) == [1, 1, 2, 2, 2]
    assert node.entries[2:] == new
    assert sent(ready, AppendResponse, 1) == [AppendResponse(2, 2, True, 5, 0, 0)]


def test_a_truncation_makes_the_persisted_report_of_the_old_suffix_stale():
    node = ReplicatedLog(1, [1, 2, 3], term=1, entries=log_of(1))
    ready = node.on_message(AppendEntries(1, 2, 1, 1, wire(log_of(1, 1, 1)[1:]), 0))
    assert [e.index for e in ready.entries] == [2, 3]
    node.on_message(AppendEntries(2, 3, 1, 1, [[2, 0, txn("new")]], 0))  # truncates 2..
    node.persisted(3, 1)  # the fsync of the first Ready comes back late
    assert node.persisted_index == 1
    node.persisted(2, 2)
    assert node.persisted_index == 2


def test_duplicate_and_overlapping_appends_are_idempotent():
    node = ReplicatedLog(2, [1, 2, 3])
    entries = log_of(1, 1, 1)
    first = node.on_message(AppendEntries(1, 1, 0, 0, wire(entries[:2]), 0))
    assert first.entries == entries[:2]
    again = node.on_message(AppendEntries(1, 1, 0, 0, wire(entries[:2]), 0))
    assert again.entries == [] and again.truncate_after is None
    assert again.messages == [(1, AppendResponse(1, 2, True, 2, 0, 0))]
    overlap = node.on_message(AppendEntries(1, 1, 1, 1, wire(entries[1:]), 0))
    assert overlap.entries == entries[2:] and overlap.truncate_after is None
    assert overlap.messages == [(1, AppendResponse(1, 2, True, 3, 0, 0))]
    # A late, shorter append must not cut off what came after it.
    late = node.on_message(AppendEntries(1, 1, 0, 0, wire(entries[:1]), 0))
    assert late.entries == [] and late.truncate_after is None
    assert late.messages == [(1, AppendResponse(1, 2, True, 1, 0, 0))]
    assert node.entries == entries


def test_a_conflict_with_a_committed_entry_raises():
    node = ReplicatedLog(2, [1, 2, 3], term=1)
    node.on_message(AppendEntries(1, 1, 0, 0, wire(log_of(1, 1)), 2))
    assert node.commit_index == 2
    with pytest.raises(RuntimeError, match="committed"):
        node.on_message(AppendEntries(2, 3, 1, 1, [[2, 0, txn("other")]], 2))


def test_a_follower_of_a_new_leader_asks_it_for_a_read_index_and_catches_up_to_the_answer():
    # Not to an append's commit index: an append can have been queued for us
    # while we were down, and vouches only for what was committed when it left.
    node = ReplicatedLog(2, [1, 2, 3], term=1, entries=log_of(1, 1), read_id_base=7 << 32)
    ready = node.on_message(AppendEntries(1, 1, 2, 1, [], 2), now_ms=10)
    ask = sent(ready, ReadIndexRequest, 1)
    assert ask == [ReadIndexRequest(1, 2, (7 << 32) + 1)]
    assert node.commit_index == 2 and not node.caught_up  # (old: caught up here)
    assert not node.tick(20).messages  # asked; not again before the retransmit time
    node.on_message(AppendEntries(1, 1, 2, 1, [[1, 0, txn("x")]], 3), now_ms=30)
    done = node.on_message(ReadIndexResponse(1, 1, ask[0].request_id, 3), now_ms=40)
    assert node.catch_up_target == 3 and node.caught_up and done.role is not None
    stale = ReplicatedLog(2, [1, 2, 3], term=1, entries=log_of(1, 1), read_id_base=8 << 32)
    stale.on_message(AppendEntries(1, 1, 2, 1, [], 2), now_ms=10)
    stale.on_message(ReadIndexResponse(1, 1, ask[0].request_id, 2), now_ms=11)
    assert not stale.caught_up  # an answer to another incarnation's request
    assert sent(stale.tick(10 + stale.retransmit_ms), ReadIndexRequest, 1)  # asks again
    refused = sent(stale.tick(20 + 2 * stale.retransmit_ms), ReadIndexRequest, 1)[0]
    stale.on_message(ReadIndexResponse(1, 1, refused.request_id, 0), now_ms=30)
    assert not stale.tick(40 + 3 * stale.retransmit_ms).messages  # waits to hear a leader
    again = stale.on_message(AppendEntries(1, 1, 2, 1, [], 2), now_ms=50)
    assert sent(again, ReadIndexRequest, 1)


def test_commit_learned_from_the_leader_is_capped_at_the_verified_index():
    # Our log has a stale tail of term 1; the term-2 leader has committed 5 entries.
    node = ReplicatedLog(2, [1, 2, 3], term=1, entries=log_of(1, 1, 1, 1, 1))
    ready = node.on_message(AppendEntries(2, 1, 2, 1, [], 5))
    assert sent(ready, AppendResponse, 1) == [AppendResponse(2, 2, True, 2, 0, 0)]
    # Only 1..2 are known to match the leader's log.
    assert node.commit_index == 2
    assert shape(ready.committed) == [("entry", 1), ("entry", 2)]
    assert not node.leader_seen(LeaderSeen(2, 1, 5)).committed  # a heartbeat can't lift it
    assert node.commit_index == 2
    fix = node.on_message(AppendEntries(2, 1, 2, 1, [[2, 0, txn("n3")]], 5))
    assert fix.truncate_after == 2
    assert node.commit_index == 3
    assert shape(fix.committed) == [("entry", 3)]
    assert node.entries[2].term == 2


def test_leader_seen_commits_only_what_appends_verified():
    node = ReplicatedLog(2, [1, 2, 3], term=1, entries=log_of(1, 1, 1))
    assert not node.leader_seen(LeaderSeen(2, 1, 3)).committed  # nothing verified yet
    node.on_message(AppendEntries(2, 1, 3, 1, [], 1))
    assert node.commit_index == 1
    ready = node.leader_seen(LeaderSeen(2, 1, 3))
    assert shape(ready.committed) == [("entry", 2), ("entry", 3)]


def test_a_new_leader_forgets_what_the_old_one_verified():
    node = ReplicatedLog(2, [1, 2, 3], term=1)
    node.on_message(AppendEntries(1, 1, 0, 0, wire(log_of(1, 1, 1)), 0))
    assert node.verified_index == 3
    node.leader_seen(LeaderSeen(2, 3, 0))
    assert (node.leader, node.term, node.verified_index) == (3, 2, 0)
    # Leader 3's commit index says nothing about our entries until it verifies them.
    assert not node.leader_seen(LeaderSeen(2, 3, 3)).committed


def test_leader_seen_of_an_older_term_or_a_stranger_is_rejected():
    node = ReplicatedLog(2, [1, 2, 3], term=3)
    assert not node.leader_seen(LeaderSeen(2, 1, 0))
    assert not node.leader_seen(LeaderSeen(3, 9, 0))
    assert node.rejected == 2
    assert node.leader == 0


def test_a_leader_refuses_leader_seen_naming_another_leader_of_its_term():
    cluster = elected(3)
    assert not cluster[1].leader_seen(LeaderSeen(1, 2, 0))
    assert cluster[1].role == LEADER and cluster[1].rejected == 1


# ---------------------------------------------------------- leader flow control


def test_probing_sends_one_append_at_a_time():
    leader, ready = lone_leader([1, 2, 3], max_batch=2, max_inflight=3)
    assert [dst for dst, _ in ready.messages] == [2, 3]
    more = leader.propose([write(b"c", i, i) for i in range(10)], 0)
    assert len(more.entries) == 10
    assert more.messages == []  # each follower still has its one probe unanswered


def test_after_a_success_the_leader_pipelines_max_inflight_batches_of_max_batch():
    leader, _ = lone_leader([1, 2, 3], max_batch=2, max_inflight=3)
    leader.propose([write(b"c", i, i) for i in range(10)], 0)  # indexes 2..11
    ready = leader.on_message(AppendResponse(1, 2, True, 1, 0, 0))
    batches = sent(ready, AppendEntries)
    assert [dst for dst, _ in ready.messages] == [2, 2, 2]  # and nothing to node 3
    assert [(a.prev_index, len(a.entries)) for a in batches] == [(1, 2), (3, 2), (5, 2)]
    assert [a.prev_term for a in batches] == [1, 1, 1]
    # Each acknowledged batch frees one slot, for one more batch.
    ready = leader.on_message(AppendResponse(1, 2, True, 3, 0, 0))
    assert [(a.prev_index, len(a.entries)) for a in sent(ready, AppendEntries)] == [(7, 2)]
    ready = leader.on_message(AppendResponse(1, 2, True, 5, 0, 0))
    assert [(a.prev_index, len(a.entries)) for a in sent(ready, AppendEntries)] == [(9, 2)]
    ready = leader.on_message(AppendResponse(1, 2, True, 7, 0, 0))
    assert sent(ready, AppendEntries) == []  # everything is on its way


def test_a_large_backlog_reaches_the_follower_through_the_pipeline():
    cluster = elected(3, max_batch=3, max_inflight=2)
    cluster.propose(1, [write(b"c", i, i) for i in range(25)])
    cluster.settle_with_ticks(rounds=1)  # the last commit index travels on an empty append
    for node_id in cluster.members:
        assert cluster[node_id].entries == cluster[1].entries
        assert [e.index for e in cluster.entries_handed(node_id)] == list(range(1, 27))


def test_stale_failures_are_ignored():
    cluster = elected(3, max_batch=2, max_inflight=4)
    leader = cluster[1]
    cluster.propose(1, [write(b"c", i, i) for i in range(8)])  # indexes 2..9
    to_2 = [(s, d, m) for s, d, m in cluster.net if d == 2]
    assert [m.prev_index for _, _, m in to_2] == [1, 3, 5, 7]
    cluster.net = []
    # The first batch is lost; the other three arrive and fail (node 2 lacks 2..3).
    replies = [cluster[2].on_message(m).messages[0][1] for _, _, m in to_2[1:]]
    assert [(r.success, r.conflict_index, r.rejected_index) for r in replies] == \
        [(False, 2, 3), (False, 2, 5), (False, 2, 7)]
    first = leader.on_message(replies[0])
    assert [(a.prev_index, len(a.entries)) for a in sent(first, AppendEntries)] == [(1, 2)]
    # The later failures answer appends sent before the back-up: no resend storm.
    assert not leader.on_message(replies[1])
    assert not leader.on_message(replies[2])


def test_tick_reprobes_a_follower_silent_for_retransmit_ms():
    leader, ready = lone_leader([1, 2, 3], retransmit_ms=RETRANSMIT)
    assert len(ready.messages) == 2  # the probes, lost
    assert not leader.tick(RETRANSMIT - 1)
    again = leader.tick(RETRANSMIT)
    assert again.messages == ready.messages
    assert not leader.tick(RETRANSMIT + 1)  # just sent


def test_tick_sends_an_idle_follower_an_empty_append_with_the_commit_index():
    cluster = elected(3)
    ready = cluster[1].tick(cluster.now + RETRANSMIT)
    assert ready.messages == [(2, AppendEntries(1, 1, 1, 1, [], 1)),
                              (3, AppendEntries(1, 1, 1, 1, [], 1))]


def test_tick_does_nothing_at_a_follower_or_candidate():
    node = ReplicatedLog(1, [1, 2, 3])
    assert not node.tick(10_000)
    node.campaign(Campaign(1))
    assert not node.tick(20_000)


def test_retransmission_repairs_a_follower_whose_appends_were_lost():
    cluster = elected(3)
    cluster.propose(1, [write(b"c", 1, "x"), write(b"c", 2, "y")])
    cluster.settle(keep=lambda src, dst, m: dst != 3)  # node 3 hears nothing
    assert cluster[3].last_index == 1
    cluster.settle_with_ticks()
    assert cluster[3].entries == cluster[1].entries
    assert [e.index for e in cluster.entries_handed(3)] == [1, 2, 3]


# Regression: a probe carrying entries moves next_index past its prev_index, so the
# leader must remember the probe's prev_index to recognise the answer to it (a new
# leader's first probe always carries its NOOP). Comparing rejected_index with
# next_index - 1 dropped that answer as stale and left the follower waiting for a
# retransmit — and took a repeated stale failure for the answer.


@pytest.mark.parametrize(
    ("leader_log", "follower_log", "hint"),
    [((1, 1, 1, 1), (1, 1), 3), ((1, 1, 1, 1), (1, 2, 2, 2), 2)],
    ids=["follower-missing-entries", "follower-with-a-conflicting-term"],
)
def test_a_failed_probe_backs_up_to_the_followers_hint_at_once(leader_log, follower_log,
                                                               hint):
    leader, ready = lone_leader([1, 2, 3], log_of(*leader_log), term=2)
    follower = ReplicatedLog(2, [1, 2, 3], 2, 0, log_of(*follower_log, tag="f"))
    answer = follower.on_message(sent(ready, AppendEntries, to=2)[0]).messages[0][1]
    assert (answer.success, answer.conflict_index) == (False, hint)
    retry = leader.on_message(answer)
    # Expected: the next probe starts at the hint, without waiting for a retransmit.
    assert [a.prev_index for a in sent(retry, AppendEntries, to=2)] == [hint - 1]


def test_a_diverged_follower_is_repaired_without_waiting_for_a_retransmit():
    cluster = Cluster(3, logs={1: log_of(1, 1, 1), 2: log_of(1, 1, 1), 3: log_of(1, 2, 2)},
                      terms={1: 2, 2: 2, 3: 2})
    cluster.campaign(1)
    cluster.settle()  # no tick: only the conflict hints drive the back-up
    assert cluster[3].entries == cluster[1].entries


def test_a_repeated_failure_does_not_resend_the_probe():
    cluster = elected(3, max_batch=2, max_inflight=4)
    leader = cluster[1]
    cluster.propose(1, [write(b"c", i, i) for i in range(8)])
    to_2 = [m for _, d, m in cluster.net if d == 2]
    cluster.net = []
    failure = cluster[2].on_message(to_2[1]).messages[0][1]  # batch 1 was lost
    assert sent(leader.on_message(failure), AppendEntries)  # the back-up probe
    # The network duplicates the failure: it answers nothing new.
    assert sent(leader.on_message(failure), AppendEntries) == []


# ------------------------------------------------------------------ commit rule


def test_an_entry_commits_once_a_majority_counting_the_leaders_own_fsync_holds_it():
    leader, _ = lone_leader([1, 2, 3])
    leader.persisted(1, 1)
    leader.on_message(AppendResponse(1, 2, True, 1, 0, 0))
    assert leader.commit_index == 1
    ready = leader.propose([write(b"c", 1)], 0)
    assert ready.entries == [Entry(2, 1, 0, txn("a"))]
    # A follower's acknowledgement alone is one of three.
    assert not leader.on_message(AppendResponse(1, 2, True, 2, 0, 0)).committed
    assert leader.commit_index == 1
    done = leader.persisted(2, 1)
    assert shape(done.committed) == [("entry", 2)]
    assert (done.committed[0].ident, done.committed[0].rid) == (b"c", 1)


def test_two_followers_commit_an_entry_before_the_leaders_own_fsync():
    leader, _ = lone_leader([1, 2, 3])
    leader.on_message(AppendResponse(1, 2, True, 1, 0, 0))
    assert leader.commit_index == 0
    ready = leader.on_message(AppendResponse(1, 3, True, 1, 0, 0))
    assert leader.commit_index == 1 and shape(ready.committed) == [("entry", 1)]


def test_five_members_need_three_copies():
    leader, _ = lone_leader([1, 2, 3, 4, 5])
    leader.persisted(1, 1)
    leader.on_message(AppendResponse(1, 2, True, 1, 0, 0))
    assert leader.commit_index == 0
    leader.on_message(AppendResponse(1, 5, True, 1, 0, 0))
    assert leader.commit_index == 1


def test_a_new_commit_index_is_pushed_to_idle_followers():
    leader, _ = lone_leader([1, 2, 3])
    leader.persisted(1, 1)
    ready = leader.on_message(AppendResponse(1, 2, True, 1, 0, 0))
    assert (3, AppendEntries(1, 1, 1, 1, [], 1)) not in ready.messages  # 3 has its probe
    assert (2, AppendEntries(1, 1, 1, 1, [], 1)) in ready.messages


def test_persisted_with_a_term_no_longer_at_that_index_is_ignored():
    leader, _ = lone_leader([1, 2, 3], log_of(1), term=1)  # NOOP at 2, term 2
    leader.on_message(AppendResponse(2, 2, True, 2, 0, 0))
    assert not leader.persisted(2, 1).committed  # index 2 holds a term-2 entry now
    assert leader.commit_index == 0
    assert not leader.persisted(5, 2).committed  # there is no index 5
    assert leader.commit_index == 0
    assert shape(leader.persisted(2, 2).committed) == [("entry", 1), ("entry", 2)]


def figure8() -> Cluster:
    """Raft's Figure 8, step (c), on 5 nodes.

    Term 2: S1 led and got entry ``a`` (index 1) to S2 only. Term 3: S5 led with the
    votes of S3, S4 and itself and wrote ``b`` at index 1. Now S1 wins term 4 (S2, S3
    vote for it) and replicates ``a`` to S3: a majority (S1, S2, S3) holds ``a``, but
    S1's own term-4 NOOP reaches nobody.
    """
    a = Entry(1, 2, 0, txn("a"))
    b = Entry(1, 3, 0, txn("b"))
    cluster = Cluster(5, logs={1: [a], 2: [a], 5: [b]}, terms=dict.fromkeys(range(1, 6), 3),
                      max_batch=1)

    def keep(src: int, dst: int, m: Any) -> bool:
        if {src, dst} & {4, 5}:
            return False  # S1 is cut off from S4 and S5
        if not isinstance(m, AppendEntries) or all(t != 4 for t, _, _ in m.entries):
            return True
        # Drop only appends that would land a term-4 entry; a probe the follower
        # refuses anyway may pass, so the leader learns where to back up to.
        receiver = cluster[dst]
        return receiver.term_at(m.prev_index) != m.prev_term or m.prev_index > receiver.last_index

    cluster.campaign(1)
    cluster.settle_with_ticks(keep)
    assert (cluster[1].role, cluster[1].term) == (LEADER, 4)
    assert terms_of(cluster[1]) == [2, 4]
    assert terms_of(cluster[2]) == terms_of(cluster[3]) == [2]
    assert {p: cluster[1].progress[p].match_index for p in (2, 3, 4, 5)} == {2: 1, 3: 1, 4: 0, 5: 0}
    return cluster


def test_figure8_an_old_term_entry_on_a_majority_is_not_committed_by_counting():
    cluster = figure8()
    assert cluster[1].commit_index == 0
    assert all(handed == [] for handed in cluster.handed.values())


def test_figure8_it_commits_once_an_entry_of_the_current_term_reaches_a_majority():
    cluster = figure8()
    cluster.settle_with_ticks(keep=lambda src, dst, m: not {src, dst} & {4, 5})
    assert cluster[1].commit_index == 2
    for node_id in (1, 2, 3):
        assert [(e.index, e.term) for e in cluster.entries_handed(node_id)] == [(1, 2), (2, 4)]


def test_figure8_it_is_right_not_to_commit_it_since_a_later_leader_may_overwrite_it():
    cluster = figure8()
    # S1 is cut off; S5 (last term 3) wins term 5 with S2, S3, S4 and overwrites index 1.
    def cut_off_s1(src: int, dst: int, m: Any) -> bool:
        return 1 not in (src, dst)

    cluster.feed(5, cluster[5].campaign(Campaign(5)))
    cluster.settle_with_ticks(cut_off_s1)
    assert (cluster[5].role, cluster[5].term) == (LEADER, 5)
    for node_id in (2, 3, 4, 5):
        assert [(e.index, e.term) for e in cluster.entries_handed(node_id)] == [(1, 3), (2, 5)]
    # And S1, back in touch, is brought in line.
    cluster.settle_with_ticks()
    assert cluster[1].entries == cluster[5].entries
    assert [(e.index, e.term) for e in cluster.entries_handed(1)] == [(1, 3), (2, 5)]


# ------------------------------------------------------------------ client side


@pytest.mark.parametrize(("leader", "hint"), [(3, "leader is node 3"), (0, "no leader known")])
def test_propose_at_a_follower_fails_writes_with_not_leader_and_reads_until_caught_up(
        leader, hint):
    node = ReplicatedLog(1, [1, 2, 3], term=1)
    if leader:
        node.leader_seen(LeaderSeen(1, leader, 0))
    ready = node.propose([write(b"x", 1), read(b"x", 2), write(b"y", 7)], 0)
    assert [(i, r, c) for i, r, c, _ in ready.failed] == \
        [(b"x", 1, Code.NOT_LEADER), (b"x", 2, Code.NOT_READY), (b"y", 7, Code.NOT_LEADER)]
    assert all(hint in text for _, _, code, text in ready.failed if code == Code.NOT_LEADER)
    assert ready.committed == [] and ready.entries == [] and node.last_index == 0


def test_a_caught_up_follower_serves_a_read_held_behind_the_clients_writes():
    cluster = elected(3)
    follower = cluster[2]
    assert follower.caught_up
    ready = follower.propose([write(b"x", 1), read(b"x", 2)], 0)
    assert [(i, r, c) for i, r, c, _ in ready.failed] == [(b"x", 1, Code.NOT_LEADER)]
    assert [(c.ident, c.rid) for c in ready.committed] == [(b"x", 2)]


def test_propose_at_a_candidate_fails_with_not_leader():
    node = ReplicatedLog(1, [1, 2, 3])
    node.campaign(Campaign(1))
    ready = node.propose([write(b"x", 1)], 0)
    assert [(i, r, c) for i, r, c, _ in ready.failed] == [(b"x", 1, Code.NOT_LEADER)]


def test_leader_gives_entries_consecutive_indexes_its_term_and_the_time():
    cluster = elected(3)
    ready = cluster[1].propose([write(b"x", 1, "p"), read(b"x", 2), write(b"y", 1, "q")], 555)
    assert ready.entries == [Entry(2, 1, 555, txn("p")), Entry(3, 1, 555, txn("q"))]
    assert [(a.prev_index, len(a.entries)) for a in sent(ready, AppendEntries, to=2)] == \
        [(1, 2)]


def test_a_read_with_nothing_ahead_of_it_is_released_at_once():
    cluster = elected(3)
    ready = cluster[1].propose([read(b"x", 1)], 0)
    assert shape(ready.committed) == [("read", 1)]
    assert ready.committed[0].read == ["get", ["/a"]] and ready.committed[0].ident == b"x"


def test_reads_are_released_after_every_entry_in_the_log_when_they_arrived():
    cluster = elected(3, max_batch=1)
    cluster.propose(1, [write(b"x", 1, "p"), read(b"x", 2), write(b"y", 1, "q")])
    cluster.propose(1, [read(b"x", 3), write(b"x", 4, "r")])
    assert shape(cluster.handed[1]) == [("entry", 1)]  # only the NOOP so far
    # Only index 2 reaches a second node: it commits, and the read that came after it
    # (and before index 3) goes with it.
    cluster.step(keep=lambda src, dst, m: dst == 2 and m.prev_index == 1)
    cluster.settle()
    assert cluster[1].commit_index == 2
    assert shape(cluster.handed[1][1:]) == [("entry", 2), ("read", 2)]
    # ... then the rest.
    cluster.settle_with_ticks()
    assert shape(cluster.handed[1]) == [("entry", 1), ("entry", 2), ("read", 2), ("entry", 3),
                                        ("read", 3), ("entry", 4)]
    assert [(c.ident, c.rid) for c in cluster.handed[1][1:]] == \
        [(b"x", 1), (b"x", 2), (b"y", 1), (b"x", 3), (b"x", 4)]


def test_a_read_waits_for_entries_of_earlier_terms_too():
    node, _ = lone_leader([1, 2, 3], log_of(1, 1), term=1)  # 1..2 uncommitted, NOOP at 3
    assert node.propose([read(b"x", 1)], 0).committed == []
    node.persisted(3, 2)
    ready = node.on_message(AppendResponse(2, 2, True, 3, 0, 0))
    assert shape(ready.committed) == [("entry", 1), ("entry", 2), ("entry", 3), ("read", 1)]


def lose_leadership(cluster: Cluster, how: str) -> None:
    """Leader 1 of term 1 loses its leadership to node 2 (term 2) in one of four ways."""
    if how == "step-down":  # check-quorum failed
        cluster.feed(1, cluster[1].step_down(StepDown(1)))
    elif how == "step-down-higher-term":  # a peer told the election actor of term 2
        cluster.feed(1, cluster[1].step_down(StepDown(2)))
    elif how == "leader-seen":  # node 2 already leads term 2
        cluster.feed(1, cluster[1].leader_seen(LeaderSeen(2, 2, 0)))
    else:  # node 2's RequestVote of term 2 reaches us
        assert how == "request-vote"
    assert how == "request-vote" or cluster[1].role == FOLLOWER
    cluster.campaign(2)
    cluster.settle_with_ticks()


@pytest.mark.parametrize("how", ["step-down", "step-down-higher-term", "leader-seen",
                                 "request-vote"])
def test_a_leader_losing_leadership_fails_pending_requests_and_never_reports_them(how):
    cluster = elected(3)
    cluster.propose(1, [write(b"x", 1, "p"), read(b"x", 2), write(b"y", 1, "q")])
    # The entries reach node 2, but no acknowledgement makes it back.
    cluster.step(keep=lambda src, dst, m: dst == 2)
    cluster.net = []
    assert cluster[2].last_index == 3 and cluster[1].commit_index == 1
    lose_leadership(cluster, how)
    assert (cluster[1].role, cluster[2].role) == (FOLLOWER, LEADER)
    assert [(i, r, c) for i, r, c, _ in cluster.failed[1]] == \
        [(b"x", 1, Code.CONNECTION_LOSS), (b"x", 2, Code.NOT_READY),
         (b"y", 1, Code.CONNECTION_LOSS)]
    # The new leader commits them, so they are handed to node 1's store — as
    # replicated entries, never as answers to the clients who were told "unknown".
    assert [(e.index, e.txn) for e in cluster.entries_handed(1)] == \
        [(1, NOOP), (2, txn("p")), (3, txn("q")), (4, NOOP)]
    assert all(c.ident is None for c in cluster.handed[1])


def test_step_down_of_an_older_term_or_at_a_follower_of_the_same_term_changes_nothing():
    cluster = elected(3)
    cluster.feed(1, cluster[1].campaign(Campaign(9)))  # ignored: a leader
    assert not cluster[1].step_down(StepDown(0))
    assert cluster[1].role == LEADER
    assert not cluster[2].step_down(StepDown(1))
    assert (cluster[2].role, cluster[2].leader) == (FOLLOWER, 1)


def test_a_single_member_commits_its_proposals_on_its_own_fsync():
    node = ReplicatedLog(1, [1])
    made = node.campaign(Campaign(1))
    node.persisted(made.entries[-1].index, 1)
    ready = node.propose([write(b"x", 1, "p"), read(b"x", 2), write(b"x", 3, "q")], 0)
    assert ready.messages == [] and ready.committed == []
    done = node.persisted(3, 1)
    assert shape(done.committed) == [("entry", 2), ("read", 2), ("entry", 3)]


# ---------------------------------------------------------------- non-members


@pytest.mark.parametrize("message", [
    RequestVote(5, 9, 0, 0), VoteResponse(5, 9, True), AppendEntries(5, 9, 0, 0, [], 0),
    AppendResponse(5, 9, True, 0, 0, 0), RequestVote(5, 1, 0, 0),
], ids=["RequestVote", "VoteResponse", "AppendEntries", "AppendResponse", "from-ourselves"])
def test_messages_from_non_members_are_rejected_and_counted(message):
    node = ReplicatedLog(1, [1, 2, 3], term=2)
    assert not node.on_message(message)
    assert node.rejected == 1
    assert (node.term, node.role, node.voted_for, node.leader) == (2, FOLLOWER, 0, 0)


def test_a_message_kind_the_log_does_not_handle_is_counted():
    node = ReplicatedLog(1, [1, 2, 3], term=2)
    assert not node.on_message(Heartbeat(2, 2, 0))
    assert node.rejected == 1


@pytest.mark.parametrize("message", [PreVote(3, 2, 0, 0), Heartbeat(3, 2, 0)],
                         ids=["PreVote", "Heartbeat"])
def test_an_election_message_reaching_the_log_changes_no_term_or_vote(message):
    node = ReplicatedLog(1, [1, 2, 3], term=2, voted_for=3)
    ready = node.on_message(message)
    assert node.rejected == 1
    assert (node.term, node.voted_for) == (2, 3)
    assert not ready


# ------------------------------------------------------ random interleavings


class AsyncCluster:
    """3 nodes under a driver whose fsyncs, deliveries and inputs interleave freely.

    Each node's Readies complete in the order they were made (as in the real driver);
    only when a Ready completes does it reach "disk", do its messages leave, its
    committed items reach the "store" and ``persisted()`` get reported. Messages may be
    delivered in any order, duplicated or dropped; a node may crash, losing whatever
    was not fsynced and its store, and restart from its disk.
    """

    def __init__(self) -> None:
        self.members = [1, 2, 3]
        self.nodes = {i: ReplicatedLog(i, self.members, max_batch=2, max_inflight=2,
                                       retransmit_ms=RETRANSMIT) for i in self.members}
        self.pending: dict[int, deque[Ready]] = {i: deque() for i in self.members}
        self.disk: dict[int, tuple[int, int, list[Entry]]] = {i: (0, 0, []) for i in self.members}
        self.net: list[tuple[int, Any]] = []
        self.handed: dict[int, list[Committed]] = {i: [] for i in self.members}
        self.history: dict[int, tuple] = {}  # index -> (term, txn) handed anywhere
        self.leaders: dict[int, int] = {}
        self.outcomes: dict[tuple, list[str]] = {}
        self.now = 0
        self.rid = 0

    def feed(self, node_id: int, ready: Ready) -> None:
        if ready.role is not None and ready.role.role == LEADER:
            assert self.leaders.setdefault(ready.role.term, node_id) == node_id, \
                f"two leaders in term {ready.role.term}"
            entries = self.nodes[node_id].entries
            for index, key in self.history.items():  # leader completeness
                assert index <= len(entries) and key == (entries[index - 1].term,
                                                         repr(entries[index - 1].txn)), \
                    f"node {node_id} leads term {ready.role.term} without committed {index}"
        if ready:
            self.pending[node_id].append(ready)

    def fsync(self, node_id: int) -> None:
        if not self.pending[node_id]:
            return
        ready = self.pending[node_id].popleft()
        term, vote, entries = self.disk[node_id]
        if ready.hard_state is not None:
            term, vote = ready.hard_state
        if ready.truncate_after is not None:
            del entries[ready.truncate_after:]
        for entry in ready.entries:
            del entries[entry.index - 1:]
            entries.append(entry)
        self.disk[node_id] = (term, vote, entries)
        self.net.extend((dst, m) for dst, m in ready.messages)
        for item in ready.committed:
            self.hand(node_id, item)
        for ident, rid, code, _ in ready.failed:
            if code == Code.CONNECTION_LOSS:
                self.outcomes.setdefault((ident, rid), []).append("lost")
        if ready.entries:
            last = ready.entries[-1]
            self.feed(node_id, self.nodes[node_id].persisted(last.index, last.term, self.now))

    def hand(self, node_id: int, item: Committed) -> None:
        if item.ident is not None:
            self.outcomes.setdefault((item.ident, item.rid), []).append("done")
        if item.entry is None:
            return
        handed = self.handed[node_id]
        expected = handed[-1].entry.index + 1 if handed else 1
        assert item.entry.index == expected, \
            f"node {node_id} handed index {item.entry.index} after {expected - 1}"
        handed.append(item)
        key = (item.entry.term, repr(item.entry.txn))
        assert self.history.setdefault(item.entry.index, key) == key, \
            f"node {node_id} handed a different entry at index {item.entry.index}"

    def act(self, kind: str, arg: int) -> None:
        node_id = self.members[arg % 3]
        node = self.nodes[node_id]
        if kind == "deliver" and self.net:
            dst, message = self.net.pop(arg % len(self.net))
            self.feed(dst, self.nodes[dst].on_message(message, self.now))
        elif kind == "duplicate" and self.net:
            dst, message = self.net[arg % len(self.net)]
            self.feed(dst, self.nodes[dst].on_message(message, self.now))
        elif kind == "drop" and self.net:
            self.net.pop(arg % len(self.net))
        elif kind == "fsync":
            self.fsync(node_id)
        elif kind == "campaign" and (node.leader == 0 or arg % 4 == 0):
            # Mostly as the election core would (nobody is leading); sometimes not.
            self.feed(node_id, node.campaign(Campaign(node.term + 1), self.now))
        elif kind == "propose":
            leaders = [n for n in self.nodes.values() if n.role == LEADER]
            if leaders and arg % 5:  # the client mostly finds the leader (NOT_LEADER hints)
                node = max(leaders, key=lambda n: n.term)
                node_id = node.node_id
            self.rid += 1
            request = write(b"c%d" % node_id, self.rid, self.rid) if arg % 4 else \
                read(b"c%d" % node_id, self.rid)
            self.feed(node_id, node.propose([request], self.now))
        elif kind == "tick":
            self.now += RETRANSMIT // 2
            self.feed(node_id, node.tick(self.now))
        elif kind == "step_down":
            self.feed(node_id, node.step_down(StepDown(node.term), self.now))
        elif kind == "crash":
            term, vote, entries = self.disk[node_id]
            self.nodes[node_id] = ReplicatedLog(node_id, self.members, term, vote, list(entries),
                                                max_batch=2, max_inflight=2,
                                                retransmit_ms=RETRANSMIT)
            self.pending[node_id].clear()
            self.handed[node_id] = []  # the store rebuilds from the log
        elif kind == "flush":  # a calm moment: every fsync completes, every message arrives
            for member in self.members:
                while self.pending[member]:
                    self.fsync(member)
            net, self.net = self.net, []
            for dst, message in net:
                self.feed(dst, self.nodes[dst].on_message(message, self.now))

    def quiesce(self) -> None:
        for _ in range(1000):
            if not self.net and not any(self.pending.values()):
                return
            for node_id in self.members:
                while self.pending[node_id]:
                    self.fsync(node_id)
            net, self.net = self.net, []
            for dst, message in net:
                self.feed(dst, self.nodes[dst].on_message(message, self.now))
        raise AssertionError("never went quiet")

    def heal(self) -> None:
        """No more faults: elect whoever can win, and let everyone catch up."""
        for _ in range(20):
            self.quiesce()
            top = max(n.term for n in self.nodes.values())
            leaders = [n for n in self.nodes.values() if n.role == LEADER and n.term == top]
            if not leaders:
                best = max(self.nodes.values(), key=lambda n: (n.last_term, n.last_index))
                if best.role == LEADER:  # a leader of an older term nobody told
                    self.feed(best.node_id, best.step_down(StepDown(best.term), self.now))
                self.feed(best.node_id, best.campaign(Campaign(top + 1), self.now))
                continue
            leader = leaders[0]
            if all(len(self.handed[i]) == leader.last_index for i in self.members):
                return
            self.now += RETRANSMIT
            self.feed(leader.node_id, leader.tick(self.now))
        raise AssertionError("the cluster never converged")


ACTIONS = st.lists(
    st.tuples(st.sampled_from(["deliver"] * 6 + ["fsync"] * 6 + ["propose"] * 5 + ["flush"] * 4
                              + ["campaign"] * 2
                              + ["tick", "step_down", "drop", "duplicate", "crash"]),
              st.integers(min_value=0, max_value=1 << 16)),
    min_size=20,
    max_size=150,
)


@settings(max_examples=300, deadline=None, database=None)
@given(ACTIONS)
def test_random_interleavings_hand_out_each_index_once_in_order_and_the_same_everywhere(
        actions):
    cluster = AsyncCluster()
    for kind, arg in actions:
        cluster.act(kind, arg)
    cluster.heal()
    handed = {i: [(c.entry.index, c.entry.term, c.entry.txn) for c in cluster.handed[i]]
              for i in cluster.members}
    assert handed[1] == handed[2] == handed[3]
    # A client hears one outcome per request: done once, or lost — never both.
    for request, outcomes in cluster.outcomes.items():
        assert outcomes in (["done"], ["lost"]), (request, outcomes)


# -------------------------------------------------------------- ReadIndex (sync)


def sync(ident: bytes, rid: int) -> list:
    """A sync as the gateway hands it to the log."""
    return [ident, rid, None, ["sync", ["/"]]]


def test_a_sync_at_the_leader_waits_for_a_majority_to_confirm_its_leadership():
    cluster = elected(3)
    ready = cluster.propose(1, [sync(b"c", 5)])
    assert ready.committed == []  # nothing to wait for in the log, but leadership is
    checks = [(dst, m) for dst, m in ready.messages if isinstance(m, LeaderCheck)]
    assert sorted(dst for dst, _ in checks) == [2, 3]
    cluster.step(keep=lambda src, dst, m: dst == 2 or src == 2)  # only node 2 answers
    cluster.step(keep=lambda src, dst, m: dst == 1)
    assert shape(cluster.handed[1])[-1] == ("read", 5)


def test_a_sync_at_a_cut_off_leader_is_never_answered_and_fails_when_it_steps_down():
    cluster = elected(3)
    cluster.net = []
    cluster.propose(1, [sync(b"c", 5)])
    cluster.net = []  # its checks never arrive
    cluster.tick()
    assert not any(c.rid == 5 for c in cluster.handed[1])
    assert any(isinstance(m, LeaderCheck) for _, _, m in cluster.net)  # retransmitted
    cluster.net = []
    cluster.feed(1, cluster[1].step_down(StepDown(1)))
    assert [(r, c) for _, r, c, _ in cluster.failed[1]] == [(5, Code.NOT_READY)]
    assert not any(c.rid == 5 for c in cluster.handed[1])


def test_requests_behind_an_unconfirmed_sync_wait_for_it_in_order():
    cluster = elected(3)
    cluster.propose(1, [sync(b"c", 5), write(b"c", 6, "after")])
    # Appends get through and commit, but the leadership checks are held back.
    cluster.settle(keep=lambda src, dst, m: not isinstance(m, (LeaderCheck, LeaderCheckAck)))
    assert cluster[1].commit_index == 2
    assert not any(c.rid in (5, 6) for c in cluster.handed[1])
    cluster.tick()  # checks go out again, and now get through
    cluster.settle()
    assert [c.rid for c in cluster.handed[1] if c.ident == b"c"] == [5, 6]


def test_a_sync_at_a_follower_gets_the_leaders_read_index_then_waits_to_apply_it():
    cluster = elected(3)
    # Node 3 misses a write that commits on nodes 1 and 2.
    cluster.propose(1, [write(b"w", 1, "x")])
    cluster.settle(keep=lambda src, dst, m: 3 not in (src, dst))
    assert cluster[1].commit_index == 2 and cluster[3].commit_index == 1
    ready = cluster.propose(3, [sync(b"c", 9), read(b"c", 10)])
    assert sent(ready, ReadIndexRequest, to=1)
    assert ready.committed == [] and ready.failed == []
    # The leader confirms and answers index 2; node 3 still needs the entry.
    cluster.settle(keep=lambda src, dst, m: not isinstance(m, AppendEntries) or dst != 3)
    assert not any(c.ident == b"c" for c in cluster.handed[3])
    cluster.settle_with_ticks()
    handed = [c for c in cluster.handed[3] if c.ident == b"c" or c.entry is not None]
    assert shape(handed)[-3:] == [("entry", 2), ("read", 9), ("read", 10)]


def test_a_follower_sync_fails_retryably_when_the_leader_changes_or_refuses():
    cluster = elected(3)
    cluster.net = []
    cluster.propose(3, [sync(b"c", 9), read(b"c", 10)])
    cluster.net = []  # the request is lost; then node 2 takes over
    cluster.feed(3, cluster[3].leader_seen(LeaderSeen(2, 2, 1)))
    assert [(r, c) for _, r, c, _ in cluster.failed[3]] == [(9, Code.NOT_READY)]
    assert [c.rid for c in cluster.handed[3] if c.ident == b"c"] == [10]
    # A node that is not the leader refuses a read index: the sync fails, retryable.
    cluster.propose(3, [sync(b"c", 11)])
    answer = cluster[1].on_message(ReadIndexRequest(2, 3, cluster[3]._read_ids))
    cluster.feed(1, answer)
    cluster.step(keep=lambda src, dst, m: isinstance(m, ReadIndexResponse))
    assert (11, Code.NOT_READY) in [(r, c) for _, r, c, _ in cluster.failed[3]]


def test_a_new_leader_serves_reads_only_once_it_has_applied_an_entry_of_its_term():
    # A leader holds every committed entry, but after a restart its commit index is
    # its snapshot's: it must not answer from that state before its no-op commits.
    leader_log = log_of(1, 1, 1, 1)
    cluster = Cluster(3, logs={1: leader_log, 2: leader_log}, terms={1: 1, 2: 1, 3: 1})
    cluster.campaign(1)
    cluster.step()  # the vote requests
    cluster.step()  # the votes: node 1 leads term 2 and sends its no-op
    leader = cluster[1]
    assert leader.role == LEADER and leader.last_index == 5
    assert not leader.caught_up and leader.handed_index == 0
    assert not leader.role_changed().caught_up and leader.role_changed().read_floor == 0
    cluster.settle()
    assert leader.caught_up and leader.handed_index == 5
    assert leader.role_changed().read_floor == 5


def test_a_follower_catches_up_only_to_a_commit_index_its_leader_reached_in_its_term():
    leader_log = log_of(1, 1, 1, 1)
    cluster = Cluster(3, logs={1: leader_log, 2: leader_log}, terms={1: 1, 2: 1, 3: 1})
    cluster[1].commit_index = cluster[1].handed_index = 3  # from term 1, applied
    cluster.campaign(1)
    cluster.step()
    cluster.step()  # elected: the no-op (5) goes out with the old commit index 3
    appends = [m for _, dst, m in cluster.net if dst == 3 and isinstance(m, AppendEntries)]
    assert appends and all(a.commit_index == 3 for a in appends)
    # Node 3 hears of the leader first by a heartbeat: the election actor's view of
    # the commit index lags (0, say), so it never sets what to catch up to.
    ready = cluster.feed(3, cluster[3].leader_seen(LeaderSeen(2, 1, 0)))
    assert cluster[3].leader == 1 and not cluster[3].caught_up
    assert ready.role is not None and not ready.role.caught_up
    cluster.feed(3, cluster[3].leader_seen(LeaderSeen(2, 1, 5)))
    assert not cluster[3].caught_up
    # Appends vouching only for an older term's commit (3 < the no-op at 5) don't:
    # node 3 takes the whole log and commits 3, but that is no catch-up point.
    without_2 = lambda src, dst, m: 2 not in (src, dst)
    for _ in range(10):
        cluster.step(without_2)
        if cluster[3].last_index == 5:
            break
    assert cluster[3].last_index == 5 and cluster[1].commit_index == 3
    assert cluster[3].handed_index == 3 and not cluster[3].caught_up
    cluster.settle_with_ticks()
    assert cluster[3].caught_up and cluster[3].handed_index == 5
    assert cluster[3].role_changed().read_floor == 5
    # A new leader means catching up with it again.
    cluster.feed(3, cluster[3].leader_seen(LeaderSeen(3, 2, 5)))
    assert not cluster[3].caught_up


def test_a_follower_whose_leader_went_silent_stops_serving_reads_until_vouched_again():
    cluster = elected(3)
    follower = cluster[3]
    assert follower.caught_up
    # Cut off for an election timeout: it may have missed any number of commits.
    ready = cluster.feed(3, follower.leader_lost(LeaderLost(1, 1)))
    assert not follower.caught_up and ready.role is not None and not ready.role.caught_up
    failed = cluster.feed(3, follower.propose([read(b"x", 1)], 0, 0)).failed
    assert [(r, c) for _, r, c, _ in failed] == [(1, Code.NOT_READY)]
    # A lapse of an older leader or term is nothing to us.
    cluster.propose(1, [write(b"c", 1)])
    cluster.settle()
    assert follower.caught_up
    assert not cluster.feed(3, follower.leader_lost(LeaderLost(1, 2)))
    assert not cluster.feed(3, follower.leader_lost(LeaderLost(0, 1)))
    assert follower.caught_up


# ----------------------------------------------------------- snapshots, compaction


def test_compaction_forgets_entries_up_to_what_the_store_has_and_keeps_the_base_term():
    cluster = elected(3)
    cluster.propose(1, [write(b"c", i, f"w{i}") for i in range(1, 10)])
    cluster.settle_with_ticks()
    leader = cluster[1]
    assert leader.handed_index == 10
    assert leader.compact(7) == 7
    assert (leader.base_index, leader.base_term, leader.last_index) == (7, 1, 10)
    assert leader.term_at(7) == 1 and leader.term_at(6) == 0 and leader.term_at(8) == 1
    assert leader.compact(5) == 7  # never backwards
    assert leader.compact(99) == 10  # never past what the store has
    # Replication goes on from the base.
    cluster.propose(1, [write(b"c", 20, "after")])
    cluster.settle_with_ticks()
    assert all(node.commit_index == 11 for node in cluster.nodes.values())


def test_a_log_restored_from_a_snapshot_starts_after_its_base():
    node = ReplicatedLog(1, [1, 2, 3], term=2, entries=log_of(1, 1, 2, 2, 2),
                         snapshot=(3, 2))
    assert (node.base_index, node.last_index, node.commit_index, node.handed_index) == \
        (3, 5, 3, 3)
    assert [e.index for e in node.entries] == [4, 5]
    with pytest.raises(ValueError, match="contiguous from 4"):
        ReplicatedLog(1, [1, 2, 3], entries=[Entry(5, 1, 0, txn("x"))], snapshot=(3, 1))


def test_a_follower_behind_the_leaders_base_gets_the_snapshot_then_the_rest():
    cluster = elected(3)
    cluster.net = []
    # Node 3 is cut off while 9 writes commit; the leader then compacts to 8.
    cluster.propose(1, [write(b"c", i, f"w{i}") for i in range(1, 10)])
    cluster.settle_with_ticks(keep=lambda src, dst, m: 3 not in (src, dst))
    cluster.snapshot_files = {1: (8, 1, b"snapshot-through-8")}
    cluster[1].compact(8)
    cluster.settle_with_ticks()
    follower = cluster[3]
    assert cluster.restored[3] == [(8, b"snapshot-through-8")]
    assert (follower.base_index, follower.last_index, follower.commit_index) == (8, 10, 10)
    assert [e.index for e in cluster.entries_handed(3)][-2:] == [9, 10]
    assert follower.entries == cluster[1].entries[-2:]
    assert cluster[1].progress[3].match_index == 10 and cluster[1].progress[3].state != "snapshot"


def test_lost_snapshot_chunks_are_sent_again_from_what_the_follower_has():
    cluster = elected(3)
    cluster.net = []
    cluster.propose(1, [write(b"c", i, f"w{i}") for i in range(1, 6)])
    cluster.settle_with_ticks(keep=lambda src, dst, m: 3 not in (src, dst))
    cluster.snapshot_files = {1: (6, 1, b"0123456789abcdefghij")}
    cluster[1].compact(6)
    dropped = []

    def lossy(src, dst, message):
        if isinstance(message, InstallSnapshot) and message.offset == 8 and not dropped:
            dropped.append(message)
            return False
        return True

    cluster.settle_with_ticks(keep=lossy, rounds=6)
    assert dropped and cluster.restored[3] == [(6, b"0123456789abcdefghij")]
    assert cluster[3].commit_index == 6 and cluster[1].progress[3].match_index == 6


def test_a_stale_leaders_snapshot_is_refused_and_an_old_one_is_acknowledged():
    cluster = elected(3)
    follower = cluster[2]
    ready = follower.on_message(InstallSnapshot(0, 1, 5, 0, 0, b"x", True))
    assert [(dst, type(m).__name__, m.done) for dst, m in ready.messages] == \
        [(1, "InstallSnapshotResponse", False)]
    ready = follower.on_message(InstallSnapshot(1, 1, 1, 1, 0, b"x", True))
    assert ready.snapshot_chunk is None
    assert [m.done for _, m in ready.messages] == [True]  # index 1: already committed
    assert sent(cluster[1].on_message(InstallSnapshotResponse(1, 2, 1, 0, True)),
                AppendEntries) == []  # not expecting a snapshot from it: ignored


def test_a_refusal_of_an_older_terms_append_does_not_move_a_new_leaders_probe():
    """Found by the simulator: a stale-term append is refused after the follower
    voted for the same node in a newer term; the refusal (conflict_index 0) must
    not be taken as the answer to that leader's new probe."""
    log = log_of(1, 1, 1, 1, 1)
    leader = ReplicatedLog(3, [1, 2, 3], 3, 3, list(log))
    follower = ReplicatedLog(1, [1, 2, 3], 3, 3, list(log))
    stale = AppendEntries(3, 3, 5, 1, [], 0)
    leader.campaign(Campaign(4), 0)
    leader.on_message(VoteResponse(4, 2, True), 0)
    follower.on_message(RequestVote(4, 3, 5, 1), 0)
    refusal = follower.on_message(stale, 0).messages[0][1]
    assert refusal.conflict_index == 0 and refusal.term == 4
    leader.on_message(refusal, 0)
    assert leader.progress[1].match_index == 0 and leader.progress[1].next_index >= 1


def test_a_follower_tells_its_election_actor_when_its_log_end_moves():
    cluster = elected(3)
    ready = cluster[2].on_message(AppendEntries(1, 1, 1, 1, wire(log_of(1, 1)[1:]), 1), 0)
    assert ready.role is not None and ready.role.last_index == 2


def test_a_follower_whose_ack_came_after_the_quorum_learns_the_commit_without_a_tick():
    cluster = elected(3)
    cluster.propose(1, [write(b"c", 1, "x")])
    cluster.step()  # appends reach nodes 2 and 3
    # Node 2's ack commits the entry; node 3's arrives after, with nothing in flight.
    acks = cluster.net
    cluster.net = []
    for src, dst, message in sorted(acks, key=lambda a: a[0]):
        cluster.deliver(src, dst, message)
    assert cluster[1].commit_index == 2
    cluster.settle()  # no tick: whatever the leader sends now is all there is
    assert cluster[3].commit_index == 2 and cluster[2].commit_index == 2


def test_a_sync_waiting_on_the_old_leaders_index_fails_when_its_node_becomes_leader():
    """Found by the simulator (seed 305): the stale read stayed at the head of the
    queue, and the new leader's own clients' writes were committed unanswered."""
    node = ReplicatedLog(2, [1, 2, 3], term=1, entries=[Entry(1, 1, 0, NOOP)])
    node.on_message(AppendEntries(1, 1, 1, 1, [], 1))
    node.propose([[b"c", 1, None, ["sync", ["/x"]]], [b"c", 2, None, ["get", ["/x"]]]], 0)
    node.on_message(ReadIndexResponse(1, 1, 1, 5))  # apply up to 5 first (never comes)
    ready = node.campaign(Campaign(2))  # the old leader is gone
    assert [(rid, code) for _, rid, code, _ in ready.failed] == [(1, Code.NOT_READY)]
    node.on_message(VoteResponse(2, 3, True))
    assert node.role == LEADER
    node.persisted(2, 2)
    node.propose([write(b"w", 7, "a")], 0)
    node.persisted(3, 2)
    ready = node.on_message(AppendResponse(2, 3, True, 3, 0, 0))
    assert [(c.ident, c.rid) for c in ready.committed if c.entry is not None] == \
        [(None, 0), (b"w", 7)]  # the no-op, then the write *with* its client


def test_a_snapshot_overtaken_by_appends_is_acknowledged_not_restored():
    """Found by reading: appends in the same batch handed over past the snapshot
    before the driver reported it stored; restoring it would rewind the store."""
    follower = ReplicatedLog(2, [1, 2, 3], term=1, entries=log_of(*[1] * 10))
    follower.leader_seen(LeaderSeen(1, 1, 0))
    follower.on_message(AppendEntries(1, 1, 10, 1, [], 5))
    chunk = InstallSnapshot(1, 1, 8, 1, 0, b"x", True)
    assert follower.on_message(chunk).snapshot_chunk is chunk
    follower.on_message(AppendEntries(1, 1, 10, 1, [], 10))
    assert follower.handed_index == 10
    ready = follower.snapshot_chunk_stored(chunk, 1, True)
    assert ready.restore is None and ready.truncate_after is None
    assert [(m.index, m.done) for _, m in ready.messages] == [(8, True)]
    assert follower.base_index == 0 and follower.last_index == 10


# The reason a vote is refused is the rule that refused it (a trace prints it).
@pytest.mark.parametrize(
    ("setup", "ask", "reason"),
    [
        ("term5", RequestVote(4, 2, 9, 4), "its term 4 is behind ours, 5"),
        ("voted2", RequestVote(1, 3, 0, 0), "already voted for n2 in term 1"),
        ("candidate", RequestVote(1, 2, 5, 1), "already voted for itself in term 1"),
        ("log3", RequestVote(3, 2, 2, 3), "its log ends at 2@3, behind ours at 3@3"),
        ("log3", RequestVote(3, 2, 9, 2), "its log ends at 9@2, behind ours at 3@3"),
        ("log3", RequestVote(3, 2, 3, 3), None),
    ],
)
def test_vote_refusal_names_the_rule_and_decides_the_answer(setup, ask, reason):
    if setup == "term5":
        node = ReplicatedLog(1, [1, 2, 3], term=5)
    elif setup == "voted2":
        node = ReplicatedLog(1, [1, 2, 3])
        node.on_message(RequestVote(1, 2, 0, 0))
    elif setup == "candidate":
        node = ReplicatedLog(1, [1, 2, 3])
        node.campaign(Campaign(1))
    else:
        node = ReplicatedLog(1, [1, 2, 3], term=3, entries=log_of(1, 3, 3))
    ready = node.on_message(ask)
    assert ready.messages[0][1].granted is (reason is None)
    # Asked after the step (as the trace does), the answer is the same.
    assert node.vote_refusal(ask) == reason


def test_a_leader_refusing_a_vote_says_it_leads():
    leader = elected(3)[1]
    assert leader.vote_refusal(RequestVote(1, 2, 10, 1)) == "we lead term 1"
