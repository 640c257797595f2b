"""The replicated log: Raft's terms, votes, log replication and commit rule.

Pure: no sockets, no disk, no clock. The log actor feeds :class:`ReplicatedLog`
client writes, peer messages and the election core's decisions, with the time it
read off its clock; every input returns a :class:`Ready` saying what to persist,
what to send once that is durable, and which entries are committed.

An entry is ``(index, term, time_ms, txn)``; ``txn`` is the znode operation as the
tree's :meth:`~zkactors.core.tree.Tree.apply` takes it. The entry's zxid is
``term << 32 | index``.

Commit rule (Raft §5.3–5.4): an index is committed once a majority of members hold
it durably *and* it is from the leader's current term; earlier entries commit with
it. With one member that is "once our own fsync has returned". The counting is
:mod:`zkactors.core.quorum`'s; what a leader knows of each follower is its
:class:`Progress` (probe, replicate or snapshot, as etcd-raft has it); the
rounds by which a leader proves it still leads before a linearizable read are
:mod:`zkactors.core.readindex`'s; and the orders the code relies on are
:meth:`ReplicatedLog.check_invariants`.

A peer's message meets first the rules every role obeys (a newer term wins, one
vote per term, a stale request is refused with our term), then its role's step:
:meth:`~ReplicatedLog._step_leader`, :meth:`~ReplicatedLog._step_candidate` or
:meth:`~ReplicatedLog._step_follower` — so a handler never asks which role it is in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from zkactors.core.messages import (
    CANDIDATE,
    FOLLOWER,
    LEADER,
    AppendEntries,
    AppendResponse,
    Campaign,
    InstallSnapshot,
    InstallSnapshotResponse,
    LeaderCheck,
    LeaderCheckAck,
    LeaderLost,
    LeaderSeen,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RoleChanged,
    StepDown,
    VoteResponse,
    sender_of,
)
from zkactors.core.quorum import majority, quorum_index
from zkactors.core.readindex import LeadershipRounds
from zkactors.errors import Code


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    term: int
    time_ms: int
    txn: list


@dataclass(frozen=True, slots=True)
class Committed:
    """What the store may now act on, in order: a committed entry (with the client
    to answer; ``ident`` is None after replay), or a client's read that had to wait
    for that client's earlier writes (``entry`` is None, ``read`` is ``[op, args]``).
    """

    entry: Entry | None
    ident: bytes | None
    rid: int
    read: list | None = None


@dataclass(slots=True)
class Progress:
    """What a leader knows of one follower's log and has in flight to it (the
    etcd-raft name). Three states, as there:

    * **probe** (``probing``): where its log matches ours is not known; one
      append at a time, each answer moving ``next_index`` back or confirming it;
    * **replicate**: it matched; up to ``max_inflight`` appends in flight;
    * **snapshot** (``snapshot_offset`` set): what it needs next was compacted
      away, so it is sent the snapshot, chunk by chunk.
    """

    #: The next index to send it.
    next_index: int
    #: The highest index known to match ours (Raft's matchIndex).
    match_index: int = 0
    #: Appends sent and not yet answered.
    inflight: int = 0
    probing: bool = True
    #: The prev_index of the latest probe, whose answer we await.
    probe_prev: int = -1
    #: When something was last sent to it (retransmit and idle probes go by it).
    last_sent: int = 0
    #: The commit index the latest append to it carried.
    sent_commit: int = 0
    #: Being sent the snapshot: the offset it has acknowledged; None otherwise.
    snapshot_offset: int | None = None

    @property
    def state(self) -> str:
        if self.snapshot_offset is not None:
            return "snapshot"
        return "probe" if self.probing else "replicate"

    def probe_from(self, next_index: int) -> None:
        """Back to probing, one append at a time, from ``next_index``."""
        self.next_index = next_index
        self.probing = True
        self.inflight = 0


# --------------------------------------------------------------------------- Raft
NOOP = ["noop"]  # appended by a new leader, so entries of earlier terms can commit
LOG_MESSAGES = (RequestVote, VoteResponse, AppendEntries, AppendResponse,
                LeaderCheck, LeaderCheckAck, ReadIndexRequest, ReadIndexResponse,
                InstallSnapshot, InstallSnapshotResponse)
#: What only a leader sends: receiving one of our term means its sender leads it.
_FROM_A_LEADER = (AppendEntries, LeaderCheck, InstallSnapshot)
#: The read op that needs a ReadIndex (protocol.OP_SYNC; the core doesn't import
#: the wire module).
SYNC = "sync"


@dataclass(slots=True)
class _Pending:
    """A request proposed here and not yet handed to the store, in arrival order.

    An entry is handed over once committed; a read once everything up to ``index``
    has been handed over — and, for a sync, once the leadership check ``round``
    has been confirmed (leader), or the leader has told us its read index
    (``remote``: the id of our ReadIndexRequest, follower)."""

    index: int
    item: Committed
    round: int = 0
    remote: int = 0
    asked_ms: int = 0


@dataclass(slots=True)
class Ready:
    """What the driver must do after one input, in this order:

    1. persist ``hard_state`` (term, vote) if set, drop the log after
       ``truncate_after`` if set, append ``entries`` — and fsync all of it;
    2. only then send ``messages`` (each ``(peer id, message)``): a vote or an
       acknowledgement must never leave before what it promises is on disk;
    3. hand ``committed`` to the store, answer ``failed`` requests with their error,
       and tell the election actor ``role`` if set.

    A leader's own entries count toward the quorum only once the driver reports
    them with :meth:`ReplicatedLog.persisted`. That is why its appends are the one
    exception to step 2 (see :func:`may_send_before_persist`): sending them while
    its own fsync runs lets leader and followers write to disk in parallel.
    """

    hard_state: tuple[int, int] | None = None
    truncate_after: int | None = None
    entries: list[Entry] = field(default_factory=list)
    messages: list[tuple[int, Any]] = field(default_factory=list)
    committed: list[Committed] = field(default_factory=list)
    failed: list[tuple[bytes, int, int, str]] = field(default_factory=list)
    role: RoleChanged | None = None
    #: Leader: send these followers a chunk of the latest snapshot from this offset.
    snapshot_sends: list[tuple[int, int]] = field(default_factory=list)
    #: Follower: a chunk of the leader's snapshot to write to disk before anything
    #: else; then report it with :meth:`ReplicatedLog.snapshot_chunk_stored`.
    snapshot_chunk: InstallSnapshot | None = None
    #: Follower: a snapshot up to (index, term) is installed; the log restarts
    #: after it and the store must load it before any later entry.
    restore: tuple[int, int] | None = None

    def __bool__(self) -> bool:
        return bool(self.hard_state or self.truncate_after is not None or self.entries
                    or self.messages or self.committed or self.failed or self.role
                    or self.snapshot_sends or self.snapshot_chunk or self.restore)


def may_send_before_persist(message: Any) -> bool:
    """True for a leader's AppendEntries, which promise nothing about the leader's
    own disk (its term was made durable when it campaigned; its entries count for
    it only after :meth:`ReplicatedLog.persisted`). Everything else — votes and
    acknowledgements above all — must wait for the fsync."""
    return isinstance(message, AppendEntries)


class ReplicatedLog:
    """Raft's log replication, terms and votes, for one member of an ensemble.

    It owns the term, the vote and the log *together*, so a vote is granted on an
    up-to-date picture of its own log and a newer term is adopted in the same step
    as whatever revealed it. When to campaign is decided elsewhere (the election
    core sends :class:`Campaign`); whether a campaign, a vote or an append is valid
    is decided here.

    Pure: every input returns a :class:`Ready`. The log held in memory starts
    after ``base_index``: everything up to there is covered by a snapshot of the
    state machine (committed, applied, and compacted away), so ``entries[i -
    base_index - 1]`` is index ``i``. A follower whose next entry is at or below
    the base gets the snapshot instead (:class:`InstallSnapshot`), in chunks the
    driver reads from disk.
    """

    def __init__(self, node_id: int, members: list[int], term: int = 0, voted_for: int = 0,
                 entries: list[Entry] | None = None, max_batch: int = 512,
                 max_inflight: int = 8, retransmit_ms: int = 200,
                 snapshot: tuple[int, int] = (0, 0), commit: int = 0,
                 read_id_base: int = 0) -> None:
        """``read_id_base``: where this incarnation's ReadIndex request ids start.
        Give each start of the process a different one (the driver draws it), so
        an answer to a request of the previous incarnation, still on its way
        when the process restarted, is never taken for an answer to ours."""
        if node_id not in members:
            raise ValueError(f"node {node_id} is not a member of {members}")
        self.node_id = node_id
        self.members = sorted(members)
        self.peers = [m for m in self.members if m != node_id]
        self.term = term
        self.voted_for = voted_for
        #: The last (index, term) covered by the state machine's snapshot: the
        #: entries up to there are committed and no longer held.
        self.base_index, self.base_term = snapshot
        self.entries: list[Entry] = [e for e in entries or [] if e.index > self.base_index]
        for position, entry in enumerate(self.entries, start=self.base_index + 1):
            if entry.index != position:
                raise ValueError(f"log entries must be contiguous from "
                                 f"{self.base_index + 1}, got {entry.index}")
        self.role = FOLLOWER
        self.leader = 0
        # ``commit``: how far a restart applied its own log (the commit hint, see
        # zkactors.engine.state.recover): committed, and already in the store.
        self.commit_index = max(self.base_index, min(commit, self.last_index))
        self.handed_index = self.commit_index  # last index handed to the store
        self.persisted_index = self.last_index
        #: Last index known to match the current leader's log (follower side).
        self.verified_index = 0
        self.max_batch = max_batch
        self.max_inflight = max_inflight
        self.retransmit_ms = retransmit_ms
        self.votes: set[int] = set()
        #: Leader: each follower's :class:`Progress` (made afresh in each term led).
        self.progress: dict[int, Progress] = {}
        #: Requests proposed here, in arrival order. For an entry the index is its
        #: own; for a read, the log's last index when it arrived — the read is
        #: answered once everything up to there has been handed to the store.
        self._waiting: deque[_Pending] = deque()
        #: ReadIndex: the latest leadership-check round started (leader), the
        #: highest round each peer acknowledged in this term, when the latest
        #: check went out, and followers' requests waiting for a round:
        #: (round, follower, request id, read index).
        self.reads = LeadershipRounds()
        self._read_ids = read_id_base
        #: The index of this leader's first entry of its term (its no-op).
        self.term_start = 0
        #: Catching up (ZooKeeper's "synced with the leader"): reads are served only
        #: once this node has applied an index that covers everything committed
        #: anywhere before it started following its leader — for a leader, its
        #: term's first entry (leader completeness); for a follower, the read index
        #: its leader gives in answer to a request this incarnation sent
        #: (_ask_catch_up). Reset whenever the leader changes or its lease lapses.
        self.catch_up_target: int | None = None
        self.caught_up = False
        #: The id of our catch-up ReadIndexRequest awaiting its answer (0: none),
        #: and when it was sent.
        self._catch_up_ask = 0
        self._catch_up_asked_ms = 0
        self.rejected = 0  # messages dropped as stale, foreign or impossible

    # ------------------------------------------------------------------ queries
    @property
    def last_index(self) -> int:
        return self.base_index + len(self.entries)

    @property
    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.base_term

    def term_at(self, index: int) -> int:
        """The term of the entry at ``index``; 0 if there is none, or if it was
        compacted away (only the base's term is remembered)."""
        position = index - self.base_index
        if 0 < position <= len(self.entries):
            return self.entries[position - 1].term
        return self.base_term if index == self.base_index and index else 0

    def entry_at(self, index: int) -> Entry:
        return self.entries[index - self.base_index - 1]

    def majority(self) -> int:
        return majority(len(self.members))

    def role_changed(self) -> RoleChanged:
        return RoleChanged(self.role, self.term, self.leader, self.last_index, self.last_term,
                           self.commit_index, self.caught_up,
                           self.catch_up_target or 0 if self.caught_up else 0)

    def check_invariants(self) -> None:
        """Raise AssertionError if an order the code relies on does not hold:
        ``base ≤ handed ≤ commit ≤ last`` (nothing is handed to the store before
        it commits, nor committed beyond the log, nor compacted before it is
        handed), ``persisted ≤ last``, and for a leader, for each follower,
        ``match < next ≤ last + 1``. The replica driver asks after every batch,
        so the simulator checks them at every step of every run."""
        base, handed, commit, last = (self.base_index, self.handed_index, self.commit_index,
                                      self.last_index)
        if not base <= handed <= commit <= last:
            raise AssertionError(f"node {self.node_id}: base {base} ≤ handed {handed} ≤ "
                                 f"commit {commit} ≤ last {last} does not hold")
        if self.persisted_index > last:
            raise AssertionError(f"node {self.node_id}: persisted {self.persisted_index} "
                                 f"is beyond the log's last index {last}")
        if self.role == LEADER:
            for peer, progress in self.progress.items():
                if not progress.match_index < progress.next_index <= last + 1:
                    raise AssertionError(
                        f"node {self.node_id}, leader: follower {peer}'s match "
                        f"{progress.match_index} < next {progress.next_index} ≤ last + 1 "
                        f"({last + 1}) does not hold")

    # ------------------------------------------------------------ client side
    def propose(self, requests: list[list], now_ms: int, wall_ms: int | None = None) -> Ready:
        """Client requests ``[ident, rid, txn, read]``, in arrival order.

        A write (``txn``) becomes a new entry. A read (``read`` = ``[op, args]``,
        ``txn`` None) is one the gateway held back because the same client has
        requests in the log: it is released once every entry that was in the log
        when it arrived has been handed to the store, so that client's reads and
        writes take effect in the order it sent them (ZooKeeper's FIFO client order).

        ``now_ms`` is the monotonic clock every input gets (for retransmit timing);
        ``wall_ms`` is the calendar time stamped on the entries (ctime/mtime)."""
        stamp = now_ms if wall_ms is None else wall_ms
        ready = Ready()
        if self.role != LEADER:
            self._propose_at_follower(requests, now_ms, ready)
            return ready
        new_round = False
        for ident, rid, txn, read in requests:
            if txn is None:
                pending = _Pending(self.last_index, Committed(None, ident, rid, read))
                if read[0] == SYNC:
                    # Everything this client sent before, and everything committed
                    # anywhere before now, once we have proven we still lead.
                    if not new_round:
                        self.reads.next_round()
                        new_round = True
                    pending.round = self.reads.round
                self._waiting.append(pending)
                continue
            entry = Entry(self.last_index + 1, self.term, stamp, txn)
            self.entries.append(entry)
            ready.entries.append(entry)
            self._waiting.append(_Pending(entry.index, Committed(entry, ident, rid)))
        if new_round:
            self._check_leadership(now_ms, ready)
        ready.committed = self._release()  # reads with nothing ahead of them go at once
        for peer in self.peers:
            self._send_appends(peer, now_ms, ready)
        return ready

    def _propose_at_follower(self, requests: list[list], now_ms: int, ready: Ready) -> None:
        """Writes go to the leader; reads held behind the client's earlier requests
        are served here in order; a sync asks the leader for a read index first."""
        for ident, rid, txn, read in requests:
            if txn is not None:
                hint = f"not the leader; leader is node {self.leader}" if self.leader else \
                    "not the leader; no leader known"
                ready.failed.append((ident, rid, int(Code.NOT_LEADER), hint))
                continue
            pending = _Pending(self.handed_index, Committed(None, ident, rid, read))
            if read[0] != SYNC and not self.caught_up:
                # What we hold may be older than what was committed before (a
                # restart, a new leader): not until a leader vouches for our state.
                ready.failed.append((ident, rid, int(Code.NOT_READY),
                                     "still catching up with the leader; try another node"))
                continue
            if read[0] == SYNC:
                if not self.leader or self.role != FOLLOWER:
                    ready.failed.append((ident, rid, int(Code.NOT_READY),
                                         "no leader known to sync with; try another node"))
                    continue
                self._read_ids += 1
                pending.remote = self._read_ids
                pending.asked_ms = now_ms
                ready.messages.append((self.leader, ReadIndexRequest(
                    self.term, self.node_id, pending.remote)))
            self._waiting.append(pending)
        ready.committed.extend(self._release())

    def persisted(self, index: int, term: int, now_ms: int = 0) -> Ready:
        """The driver fsynced our log up to ``index``, whose entry had ``term``.

        The term guards against a stale report: if the log was truncated and
        rewritten meanwhile, the entry now at ``index`` is not the one on disk."""
        ready = Ready()
        if self.term_at(index) == term:
            self.persisted_index = max(self.persisted_index, index)
        if self.role == LEADER:
            self._advance_commit(now_ms, ready)
        ready.committed.extend(self._release())
        self._check_caught_up(ready)
        return ready

    # ------------------------------------------------------ from the election core
    def campaign(self, message: Campaign, now_ms: int = 0) -> Ready:
        ready = Ready()
        if self.role == LEADER or self.term >= message.pre_vote_term:
            return ready  # stale: something newer happened since the pre-vote
        self._become(CANDIDATE, message.pre_vote_term, 0, ready)
        self.voted_for = self.node_id
        ready.hard_state = (self.term, self.voted_for)
        self.votes = {self.node_id}
        if len(self.votes) >= self.majority():
            self._become_leader(now_ms, ready)
        else:
            request = RequestVote(self.term, self.node_id, self.last_index, self.last_term)
            ready.messages = [(peer, request) for peer in self.peers]
        return ready

    def leader_seen(self, message: LeaderSeen, now_ms: int = 0) -> Ready:
        ready = Ready()
        if message.term < self.term or message.leader not in self.members:
            self.rejected += 1
            return ready
        if message.term > self.term or self.role == CANDIDATE or self.leader != message.leader:
            if self.role == LEADER and message.term == self.term:
                self.rejected += 1  # two leaders in one term: impossible, never obey it
                return ready
            self._become(FOLLOWER, message.term, message.leader, ready)
        # A heartbeat's commit index is the election actor's view, which lags: it
        # moves our commit, never our catch-up target.
        self._learn_commit(message.commit_index, ready)
        return ready

    def leader_lost(self, message: LeaderLost, now_ms: int = 0) -> Ready:
        """The election actor heard nothing from our leader for an election
        timeout. Cut off, we may have missed any number of commits: stop serving
        reads until the leader gives us a read index again."""
        ready = Ready()
        if self.role == FOLLOWER and message.term == self.term \
                and message.leader == self.leader and self.catch_up_target is not None:
            self.catch_up_target = None
            self.caught_up = False
            self._catch_up_ask = 0
            ready.role = self.role_changed()
        return ready

    def step_down(self, message: StepDown, now_ms: int = 0) -> Ready:
        ready = Ready()
        if message.term > self.term:
            self._become(FOLLOWER, message.term, 0, ready)
        elif message.term == self.term and self.role == LEADER:
            self._become(FOLLOWER, self.term, 0, ready)
        return ready

    # -------------------------------------------------------------- from peers
    def on_message(self, message: Any, now_ms: int = 0) -> Ready:
        """A message from a peer: first the rules every role obeys, then the
        role's own step (as etcd-raft's ``Step`` and ``stepLeader``,
        ``stepCandidate``, ``stepFollower``)."""
        ready = Ready()
        # Only log messages from a member; anything else (a misrouted PreVote carries
        # term + 1!) must not touch the term or the vote.
        if not isinstance(message, LOG_MESSAGES) or sender_of(message) not in self.peers:
            self.rejected += 1
            return ready
        # Raft §5.1: a newer term makes any role a follower of it (of its sender,
        # if that is the term's leader).
        if message.term > self.term:
            leader = message.leader if isinstance(message, _FROM_A_LEADER) else 0
            self._become(FOLLOWER, message.term, leader, ready)
        if isinstance(message, RequestVote):
            self._on_request_vote(message, ready)  # §5.2, §5.4.1: the same for every role
        elif isinstance(message, ReadIndexResponse):
            self._on_read_index_response(message, ready)  # the answer to our own request
        elif message.term < self.term:
            self._answer_stale(message, ready)
        elif self.role == LEADER:
            self._step_leader(message, now_ms, ready)
        elif self.role == CANDIDATE:
            self._step_candidate(message, now_ms, ready)
        else:
            self._step_follower(message, now_ms, ready)
        return ready

    def _answer_stale(self, message: Any, ready: Ready) -> None:
        """A message of an older term: a request gets a refusal carrying our term,
        which deposes its sender (§5.1); an answer to a request of that term is
        dropped."""
        if isinstance(message, AppendEntries):
            ready.messages.append((message.leader, AppendResponse(
                self.term, self.node_id, False, 0, 0, message.prev_index)))
        elif isinstance(message, InstallSnapshot):
            ready.messages.append((message.leader, InstallSnapshotResponse(
                self.term, self.node_id, message.index, 0, False)))
        elif isinstance(message, LeaderCheck):
            ready.messages.append((message.leader, LeaderCheckAck(
                self.term, self.node_id, message.round)))
        elif isinstance(message, ReadIndexRequest):
            self._refuse_read_index(message, ready)

    def _step_leader(self, message: Any, now_ms: int, ready: Ready) -> None:
        """Our term's messages, as its leader: the followers' answers, and their
        requests for a read index."""
        if isinstance(message, AppendResponse):
            self._on_append_response(message, now_ms, ready)
        elif isinstance(message, LeaderCheckAck):
            self._on_leader_check_ack(message, ready)
        elif isinstance(message, ReadIndexRequest):
            self._on_read_index_request(message, now_ms, ready)
        elif isinstance(message, InstallSnapshotResponse):
            self._on_install_snapshot_response(message, now_ms, ready)
        elif isinstance(message, _FROM_A_LEADER):
            self.rejected += 1  # another leader in our term: impossible (§5.2)
        # A VoteResponse comes after we already won: nothing to count.

    def _step_candidate(self, message: Any, now_ms: int, ready: Ready) -> None:
        """Our term's messages, as a candidate: votes; or a leader of this term,
        which won the election we lost (§5.2)."""
        if isinstance(message, VoteResponse):
            self._on_vote(message, now_ms, ready)
        elif isinstance(message, (*_FROM_A_LEADER, ReadIndexRequest)):
            self._step_follower(message, now_ms, ready)

    def _step_follower(self, message: Any, now_ms: int, ready: Ready) -> None:
        """Our term's messages, as a follower: the leader's appends, snapshot and
        leadership checks. A follower has no read index to give."""
        if isinstance(message, _FROM_A_LEADER) and (
                self.role != FOLLOWER or self.leader != message.leader):
            self._become(FOLLOWER, self.term, message.leader, ready)
        if isinstance(message, AppendEntries):
            self._on_append(message, ready)
        elif isinstance(message, InstallSnapshot):
            self._on_install_snapshot(message, ready)
        elif isinstance(message, LeaderCheck):
            ready.messages.append((message.leader, LeaderCheckAck(
                self.term, self.node_id, message.round)))
        elif isinstance(message, ReadIndexRequest):
            self._refuse_read_index(message, ready)
        # Votes and answers to a leader's requests come too late: we lost or left.
        if isinstance(message, _FROM_A_LEADER):
            self._ask_catch_up(now_ms, ready)

    # ------------------------------------------------------ snapshots, compaction
    def compact(self, index: int) -> int:
        """Forget the entries up to ``index``: the state machine's snapshot, made
        durable by the driver, covers them. Returns the new base (never past what
        was handed to the store, never backwards)."""
        index = min(index, self.handed_index, self.last_index)
        if index <= self.base_index:
            return self.base_index
        self.base_term = self.term_at(index)
        del self.entries[:index - self.base_index]
        self.base_index = index
        return index

    def _on_install_snapshot(self, message: InstallSnapshot, ready: Ready) -> None:
        if message.index <= self.commit_index:
            # Already ours (committed entries are the leader's too): say so.
            ready.messages.append((message.leader, InstallSnapshotResponse(
                self.term, self.node_id, message.index, 0, True)))
            return
        ready.snapshot_chunk = message

    def snapshot_chunk_stored(self, chunk: InstallSnapshot, next_offset: int,
                              installed: bool) -> Ready:
        """The driver wrote ``chunk`` (durably, if ``installed``: the whole
        snapshot is in place). ``next_offset`` is where the file now ends — what
        the leader must send next, which also tells it when a chunk was refused."""
        ready = Ready()
        if chunk.term != self.term or chunk.leader != self.leader:
            return ready  # we moved on meanwhile; the leader will start again
        if installed and chunk.index <= self.handed_index:
            installed = False  # overtaken by appends meanwhile: we have it all already
            ready.messages.append((chunk.leader, InstallSnapshotResponse(
                self.term, self.node_id, chunk.index, next_offset, True)))
            return ready
        if installed:
            index, term = chunk.index, chunk.last_term
            if self.term_at(index) == term:
                # Raft §7: the entries after the snapshot still match; keep them.
                del self.entries[:index - self.base_index]
            else:
                self.entries = []
                ready.truncate_after = index  # the driver restarts the log after it
            self.base_index, self.base_term = index, term
            self.persisted_index = max(self.persisted_index, index)
            self.persisted_index = min(self.persisted_index, self.last_index)
            self.verified_index = max(self.verified_index, index)
            self.commit_index = max(self.commit_index, index)
            self.handed_index = max(self.handed_index, index)
            ready.restore = (index, term)
            self._check_caught_up(ready)
        ready.messages.append((chunk.leader, InstallSnapshotResponse(
            self.term, self.node_id, chunk.index, next_offset, installed)))
        return ready

    def _on_install_snapshot_response(self, message: InstallSnapshotResponse, now_ms: int,
                                      ready: Ready) -> None:
        peer = message.sender
        progress = self.progress[peer]
        if progress.snapshot_offset is None:
            return
        if message.done:
            progress.snapshot_offset = None
            progress.match_index = max(progress.match_index, message.index)
            progress.probe_from(progress.match_index + 1)
            self._advance_commit(now_ms, ready)
            self._send_appends(peer, now_ms, ready, probe=True)
            return
        progress.snapshot_offset = message.next_offset
        ready.snapshot_sends.append((peer, message.next_offset))
        progress.last_sent = now_ms

    # ------------------------------------------------------------- ReadIndex
    def _check_leadership(self, now_ms: int, ready: Ready) -> None:
        """Ask every peer to acknowledge our term for the latest round."""
        check = self.reads.check(self.term, self.node_id, now_ms)
        ready.messages.extend((peer, check) for peer in self.peers)

    def _confirmed_round(self) -> int:
        """The highest round a majority (us included) has acknowledged."""
        return self.reads.confirmed(self.peers)

    def _on_leader_check_ack(self, message: LeaderCheckAck, ready: Ready) -> None:
        if self.reads.acknowledged(message.sender, message.round):
            self._answer_remote_reads(ready)
            ready.committed.extend(self._release())

    def _on_read_index_request(self, message: ReadIndexRequest, now_ms: int,
                               ready: Ready) -> None:
        # Everything committed before the request arrived: our commit index, which
        # is current only once our own term's first entry has committed.
        index = max(self.commit_index, self.term_start)
        self.reads.wait(message.sender, message.request_id, index)
        self._check_leadership(now_ms, ready)
        self._answer_remote_reads(ready)

    def _refuse_read_index(self, message: ReadIndexRequest, ready: Ready) -> None:
        """Not this term's leader: index 0 tells the follower to ask again later."""
        ready.messages.append((message.sender, ReadIndexResponse(
            self.term, self.node_id, message.request_id, 0)))

    def _answer_remote_reads(self, ready: Ready) -> None:
        if not self.reads.remote:
            return
        for follower, request_id, index in self.reads.answerable(self._confirmed_round()):
            ready.messages.append((follower, ReadIndexResponse(
                self.term, self.node_id, request_id, index)))

    def _on_read_index_response(self, message: ReadIndexResponse, ready: Ready) -> None:
        if message.request_id == self._catch_up_ask:
            self._on_catch_up_answer(message, ready)
            return
        for pending in self._waiting:
            if pending.remote == message.request_id:
                break
        else:
            return  # answered already, or given up
        if message.index == 0 or message.term != self.term:
            self._waiting.remove(pending)
            item = pending.item
            ready.failed.append((item.ident, item.rid, int(Code.NOT_READY),
                                 "the leader could not confirm a read index; try again"))
        else:
            pending.index, pending.remote = message.index, 0
        ready.committed.extend(self._release())

    def vote_refusal(self, message: RequestVote) -> str | None:
        """Why this node refuses ``message`` its vote, or None: it grants it (Raft
        §5.2: one vote per term; §5.4.1: only to a log at least as up to date).
        Pure, and unchanged by the grant itself, so a trace can ask it afterwards."""
        up_to_date = (message.last_term, message.last_index) >= (self.last_term, self.last_index)
        if message.term < self.term:
            return f"its term {message.term} is behind ours, {self.term}"
        if self.role == LEADER:
            return f"we lead term {self.term}"
        if self.voted_for not in (0, message.candidate):
            whom = "itself" if self.voted_for == self.node_id else f"n{self.voted_for}"
            return f"already voted for {whom} in term {self.term}"
        if not up_to_date:
            return (f"its log ends at {message.last_index}@{message.last_term}, behind ours "
                    f"at {self.last_index}@{self.last_term}")
        return None

    def _on_request_vote(self, message: RequestVote, ready: Ready) -> None:
        granted = self.vote_refusal(message) is None
        if granted and self.voted_for != message.candidate:
            self.voted_for = message.candidate
            ready.hard_state = (self.term, self.voted_for)
            ready.role = self.role_changed()  # lets the election timer restart
        ready.messages.append((message.candidate,
                               VoteResponse(self.term, self.node_id, granted)))

    def _on_vote(self, message: VoteResponse, now_ms: int, ready: Ready) -> None:
        if not message.granted:
            return
        self.votes.add(message.voter)
        if len(self.votes) >= self.majority():
            self._become_leader(now_ms, ready)

    def _on_append(self, message: AppendEntries, ready: Ready) -> None:
        prev, prev_term, incoming = message.prev_index, message.prev_term, message.entries
        if prev < self.base_index:
            # Up to our base everything is committed, hence the leader's too: skip
            # what we already hold in the snapshot and match from the base.
            skip = min(self.base_index - prev, len(incoming))
            prev, incoming = prev + skip, incoming[skip:]
            if prev < self.base_index:
                ready.messages.append((message.leader, AppendResponse(
                    self.term, self.node_id, True, self.base_index, 0, 0)))
                return
            prev_term = self.base_term
        if prev > self.last_index:
            ready.messages.append((message.leader, AppendResponse(
                self.term, self.node_id, False, 0, self.last_index + 1, prev)))
            return
        if self.term_at(prev) != prev_term:
            # Skip back over the whole conflicting term in one round trip.
            conflict_term = self.term_at(prev)
            first = prev
            while first > self.base_index + 1 and self.term_at(first - 1) == conflict_term:
                first -= 1
            ready.messages.append((message.leader, AppendResponse(
                self.term, self.node_id, False, 0, max(first, self.commit_index + 1), prev)))
            return
        index = prev
        for term, time_ms, txn in incoming:
            index += 1
            if index <= self.last_index:
                if self.term_at(index) == term:
                    continue  # already have it (a duplicate or an overlap)
                if index <= self.commit_index:
                    raise RuntimeError(f"leader {message.leader} conflicts with committed "
                                       f"index {index}: refusing to diverge")
                self._truncate_after(index - 1, ready)
            entry = Entry(index, term, time_ms, txn)
            self.entries.append(entry)
            ready.entries.append(entry)
        self.verified_index = max(self.verified_index, index)
        ready.messages.append((message.leader, AppendResponse(
            self.term, self.node_id, True, index, 0, 0)))
        self._learn_commit(message.commit_index, ready)
        if ready.entries or ready.truncate_after is not None:
            # The election actor pre-votes on our log end: keep its view current.
            ready.role = self.role_changed()

    def _on_append_response(self, message: AppendResponse, now_ms: int, ready: Ready) -> None:
        peer = message.sender
        progress = self.progress[peer]
        if message.success:
            progress.inflight = max(0, progress.inflight - 1)
            if message.match_index > progress.match_index:
                progress.match_index = message.match_index
                self._advance_commit(now_ms, ready)
            progress.next_index = max(progress.next_index, message.match_index + 1)
            progress.probing = False
        elif message.conflict_index == 0:
            return  # a refusal of an append from an older term of ours: stale
        elif self._is_answer_to_latest(progress, message.rejected_index):
            # Back up to the follower's hint and probe, one append at a time, until
            # an append succeeds; answers to anything sent before are now stale.
            target = min(message.conflict_index, self.last_index + 1)
            if target <= progress.match_index:
                # The follower no longer has entries it acknowledged: its disk was
                # wiped or replaced. Start again from what it does have.
                progress.match_index = target - 1
            progress.probe_from(max(progress.match_index + 1, target))
        else:
            return  # stale: acting on it would resend what is already on its way
        # If the commit moved past what this follower was last told (the quorum
        # formed without its ack), an empty append tells it now: otherwise it would
        # learn only at the next write or retransmit, and its watchers and
        # readers would wait that long.
        self._send_appends(peer, now_ms, ready, probe=progress.sent_commit < self.commit_index)

    @staticmethod
    def _is_answer_to_latest(progress: Progress, rejected: int) -> bool:
        if progress.probing:
            return rejected == progress.probe_prev
        return rejected > progress.match_index

    # -------------------------------------------------------------------- time
    def tick(self, now_ms: int) -> Ready:
        """Probe followers whose appends seem lost, or that are idle (the empty
        append carries the commit index and proves the logs still match)."""
        ready = Ready()
        if self.role != LEADER:
            if self.leader and self.role == FOLLOWER and self._catch_up_ask:
                self._ask_catch_up(now_ms, ready)  # the ask or its answer was lost
                # A ReadIndexRequest or its answer may have been lost: ask again
                # (the leader answers each; the first answer wins).
                for pending in self._waiting:
                    if pending.remote and now_ms - pending.asked_ms >= self.retransmit_ms:
                        pending.asked_ms = now_ms
                        ready.messages.append((self.leader, ReadIndexRequest(
                            self.term, self.node_id, pending.remote)))
            return ready
        if self.reads.round > self._confirmed_round() and \
                now_ms - self.reads.sent_ms >= self.retransmit_ms:
            self._check_leadership(now_ms, ready)
        for peer, progress in self.progress.items():
            if progress.snapshot_offset is not None:
                if now_ms - progress.last_sent >= self.retransmit_ms:
                    # A chunk or its answer was lost: send again from what it has.
                    ready.snapshot_sends.append((peer, progress.snapshot_offset))
                    progress.last_sent = now_ms
                continue
            if now_ms - progress.last_sent >= self.retransmit_ms:
                # Lost or unanswered: probe again from just past what is known to
                # match. (For a follower that hasn't answered since the election
                # that is the log's start; a cheaper restart point is future work.)
                progress.probe_from(progress.match_index + 1)
                self._send_appends(peer, now_ms, ready, probe=True)
        return ready

    # ---------------------------------------------------------------- helpers
    def _become(self, role: str, term: int, leader: int, ready: Ready) -> None:
        was_leader = self.role == LEADER
        if term > self.term:
            self.term = term
            self.voted_for = 0
            ready.hard_state = (self.term, self.voted_for)
            self.verified_index = 0
        elif leader != self.leader:
            self.verified_index = 0
        leader_changed = leader != self.leader or term != self.term or role != self.role
        self.role = role
        self.leader = leader
        if was_leader and role != LEADER:
            # Whatever was proposed and not committed may or may not commit under
            # the next leader: its clients get a retryable error, never a success.
            for pending in self._waiting:
                item = pending.item
                if item.ident is None:
                    continue
                if item.entry is None:
                    ready.failed.append((item.ident, item.rid, int(Code.NOT_READY),
                                         "leadership lost before the read; try again"))
                else:
                    ready.failed.append((item.ident, item.rid, int(Code.CONNECTION_LOSS),
                                         "leadership lost before commit; outcome unknown"))
            self._waiting.clear()
            for follower, request_id in self.reads.abandon():
                ready.messages.append((follower, ReadIndexResponse(
                    self.term, self.node_id, request_id, 0)))
        elif leader_changed:
            # Syncs waiting for the old leader's read index never get one, and one
            # it answered may name an index we won't reach as we were (a new
            # leader's entries would queue behind it, unanswered): fail every
            # read not releasable now (the client sends it again); the rest go on.
            for pending in [p for p in self._waiting
                            if p.remote or p.index > self.handed_index]:
                self._waiting.remove(pending)
                ready.failed.append((pending.item.ident, pending.item.rid,
                                     int(Code.NOT_READY), "the leader changed; sync again"))
            ready.committed.extend(self._release())
        self.reads.acked = {}
        if leader_changed:
            self.catch_up_target = None
            self.caught_up = False
            self._catch_up_ask = 0
        ready.role = self.role_changed()

    def _become_leader(self, now_ms: int, ready: Ready) -> None:
        self._become(LEADER, self.term, self.node_id, ready)
        # A leader *holds* every committed entry (Raft §5.4), but does not know
        # which are committed, nor has it applied them, until an entry of its own
        # term commits: it serves reads once it has applied its no-op.
        self.caught_up = False
        self.progress = {peer: Progress(next_index=self.last_index + 1, last_sent=now_ms)
                         for peer in self.peers}
        noop = Entry(self.last_index + 1, self.term, now_ms, NOOP)
        self.entries.append(noop)
        ready.entries.append(noop)
        self.term_start = self.catch_up_target = noop.index
        self._waiting.append(_Pending(noop.index, Committed(noop, None, 0)))
        for peer in self.peers:
            self._send_appends(peer, now_ms, ready)
        ready.role = self.role_changed()

    def _send_appends(self, peer: int, now_ms: int, ready: Ready, probe: bool = False) -> None:
        progress = self.progress[peer]
        if progress.next_index <= self.base_index:
            # What it needs next was compacted away: it gets the snapshot.
            if progress.snapshot_offset is None:
                progress.snapshot_offset = 0
                ready.snapshot_sends.append((peer, 0))
                progress.last_sent = now_ms
            return
        sent = False
        window = 1 if progress.probing else self.max_inflight
        while progress.inflight < window and progress.next_index <= self.last_index:
            start = progress.next_index
            progress.probe_prev = start - 1
            first = start - self.base_index - 1
            batch = self.entries[first:first + self.max_batch]
            ready.messages.append((peer, AppendEntries(
                self.term, self.node_id, start - 1, self.term_at(start - 1),
                [[e.term, e.time_ms, e.txn] for e in batch], self.commit_index)))
            progress.sent_commit = self.commit_index
            progress.next_index = start + len(batch)
            progress.inflight += 1
            sent = True
        if probe and not sent and not progress.inflight:
            # Nothing new: an empty append carries the commit index and proves the
            # follower's log still matches.
            prev = progress.next_index - 1
            progress.probe_prev = prev
            ready.messages.append((peer, AppendEntries(
                self.term, self.node_id, prev, self.term_at(prev), [], self.commit_index)))
            progress.sent_commit = self.commit_index
            progress.inflight += 1
            sent = True
        if sent:
            progress.last_sent = now_ms

    def _advance_commit(self, now_ms: int, ready: Ready) -> None:
        match = [p.match_index for p in self.progress.values()] + [self.persisted_index]
        candidate = quorum_index(match)
        # Raft §5.4.2: only an entry of the current term commits by counting.
        if candidate > self.commit_index and self.term_at(candidate) == self.term:
            self.commit_index = candidate
            ready.committed.extend(self._release())
            self._check_caught_up(ready)
            for peer, progress in self.progress.items():
                if not progress.inflight:
                    self._send_appends(peer, now_ms, ready, probe=True)

    def _learn_commit(self, leader_commit: int, ready: Ready) -> None:
        """``leader_commit`` is committed (as far as our log matches the leader's)."""
        # Only what is verified to match the leader's log may be taken as committed.
        commit = min(leader_commit, self.verified_index)
        if commit > self.commit_index:
            self.commit_index = commit
            ready.committed.extend(self._release())
        self._check_caught_up(ready)

    def _ask_catch_up(self, now_ms: int, ready: Ready) -> None:
        """A follower that must catch up asks its leader for a read index (Raft
        thesis §6.4) and takes the answer as its target. Not an append's commit
        index: that vouches only for what was committed when the append left the
        leader, and nothing in the append says it left after this process
        started. (The real transport happens not to deliver such a message — its
        links are ``immediate`` and TCP — but the rule should not rest on that.
        The simulator's network may: swarm seed 318 had a restarted node serve a
        read from index 1 while index 4 had been committed before it started.)"""
        if self.role != FOLLOWER or not self.leader or self.catch_up_target is not None:
            return
        if self._catch_up_ask and now_ms - self._catch_up_asked_ms < self.retransmit_ms:
            return  # asked; the answer may still come
        self._read_ids += 1
        self._catch_up_ask, self._catch_up_asked_ms = self._read_ids, now_ms
        ready.messages.append((self.leader, ReadIndexRequest(
            self.term, self.node_id, self._catch_up_ask)))

    def _on_catch_up_answer(self, message: ReadIndexResponse, ready: Ready) -> None:
        self._catch_up_ask = 0
        if message.index and message.term == self.term and message.leader == self.leader \
                and self.role == FOLLOWER and self.catch_up_target is None:
            self.catch_up_target = message.index
            self._check_caught_up(ready)
        # (Refused — it no longer leads — or moot: asked again when a leader is heard.)

    def _check_caught_up(self, ready: Ready) -> None:
        if not self.caught_up and self.catch_up_target is not None \
                and self.handed_index >= self.catch_up_target:
            self.caught_up = True
            ready.role = self.role_changed()

    def _release(self) -> list[Committed]:
        """Committed entries, and the reads queued behind them, not yet handed to the
        store — strictly in log order."""
        released = []
        waiting = self._waiting
        entries = self.entries
        confirmed = self._confirmed_round() if self.role == LEADER else 0
        while True:
            head = waiting[0] if waiting else None
            if head is not None and head.item.entry is None and \
                    head.index <= self.handed_index and not head.remote:
                if head.round > confirmed:
                    # A sync whose leadership check is still out: the requests
                    # behind it (their entries included) wait, to stay in order.
                    return released
                released.append(waiting.popleft().item)
            elif self.handed_index < self.commit_index:
                self.handed_index += 1
                entry = entries[self.handed_index - self.base_index - 1]
                if head is not None and head.item.entry is entry:
                    released.append(waiting.popleft().item)
                else:  # replicated from a leader, or from before our term
                    released.append(Committed(entry, None, 0))
            else:
                return released

    def _truncate_after(self, index: int, ready: Ready) -> None:
        del self.entries[index - self.base_index:]
        self.persisted_index = min(self.persisted_index, index)
        ready.truncate_after = index if ready.truncate_after is None else \
            min(ready.truncate_after, index)
        ready.entries = [e for e in ready.entries if e.index <= index]
