"""Messages of the replication protocol, as the pure cores see them.

Two conversations run between nodes, each between same-named actors:

* **election ↔ election** — the failure detector. The leader's election actor
  sends :class:`Heartbeat` every ``heartbeat_ms``; followers answer with
  :class:`HeartbeatAck`. A follower that hears nothing for an election timeout
  runs a :class:`PreVote` round first, so a node that was cut off cannot disturb
  a healthy leader when it comes back (Raft thesis §9.6). None of these messages
  changes a term or a vote: they only decide *when* to campaign.
* **log ↔ log** — Raft proper: :class:`RequestVote` / :class:`VoteResponse` and
  :class:`AppendEntries` / :class:`AppendResponse`. The log actor owns the term,
  the vote and the log together, so a vote is always granted on an up-to-date
  picture of its own log and a term is adopted in the same step (ARCHITECTURE.md,
  "the election/log race").

Inside one node the election actor talks to its log actor with :class:`Campaign`,
:class:`LeaderSeen` and :class:`StepDown`, and hears back :class:`RoleChanged`.

Every message is a frozen dataclass; :func:`to_wire` / :func:`from_wire` turn them
into msgpack-friendly lists ``[kind, *fields]`` and back, validating field types,
so a malformed peer message is rejected at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

FOLLOWER = "follower"
CANDIDATE = "candidate"
LEADER = "leader"


# ---------------------------------------------------------------- election <-> election
@dataclass(frozen=True, slots=True)
class Heartbeat:
    term: int
    leader: int
    commit_index: int


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    term: int  # the sender's term; higher than the heartbeat's means "you are stale"
    sender: int
    ok: bool


@dataclass(frozen=True, slots=True)
class PreVote:
    term: int  # the term the candidate would campaign in (its term + 1)
    candidate: int
    last_index: int
    last_term: int


@dataclass(frozen=True, slots=True)
class PreVoteResponse:
    term: int  # echoes the PreVote's term
    voter: int
    granted: bool
    #: The voter's own term: a candidate behind it learns the term it missed (else
    #: every one of its pre-votes is refused and it can never catch up).
    voter_term: int = 0


# ---------------------------------------------------------------------- log <-> log
@dataclass(frozen=True, slots=True)
class RequestVote:
    term: int
    candidate: int
    last_index: int
    last_term: int


@dataclass(frozen=True, slots=True)
class VoteResponse:
    term: int
    voter: int
    granted: bool


@dataclass(frozen=True, slots=True)
class AppendEntries:
    term: int
    leader: int
    prev_index: int
    prev_term: int
    #: ``[[term, time_ms, txn], ...]`` for indexes prev_index + 1, prev_index + 2, …
    entries: list
    commit_index: int


@dataclass(frozen=True, slots=True)
class AppendResponse:
    term: int
    sender: int
    success: bool
    #: On success: the highest index known to match the leader's log.
    match_index: int
    #: On failure: where the leader should try next (Raft's fast back-up hint):
    #: the first index of the conflicting term, or one past the follower's log.
    conflict_index: int
    #: On failure: the ``prev_index`` that was refused, so the leader can tell the
    #: answer to its latest probe from stale answers to older appends.
    rejected_index: int


# ReadIndex (Raft thesis §6.4): a read that must reflect every write committed
# before it arrived (``sync``) waits until the leader has proven it still leads —
# a majority acknowledged a LeaderCheck sent after the read arrived — and the node
# serving it has applied the leader's commit index as of the read's arrival.
@dataclass(frozen=True, slots=True)
class LeaderCheck:
    term: int
    leader: int
    round: int  # the leader's latest ReadIndex round; echoed in the ack


@dataclass(frozen=True, slots=True)
class LeaderCheckAck:
    term: int  # the sender's term; higher than the check's means "you are stale"
    sender: int
    round: int


@dataclass(frozen=True, slots=True)
class ReadIndexRequest:
    """A follower asks the leader for a read index on behalf of a client's sync."""

    term: int
    sender: int
    request_id: int


@dataclass(frozen=True, slots=True)
class ReadIndexResponse:
    term: int
    leader: int
    request_id: int
    #: The index the follower must apply before answering; 0: refused (not leader).
    index: int


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """A chunk of the leader's snapshot, for a follower whose next entry the leader
    no longer holds. ``index``/``last_term``: the last entry the snapshot covers;
    ``offset``: where ``data`` goes in the snapshot file; ``done``: the last chunk."""

    term: int
    leader: int
    index: int
    last_term: int
    offset: int
    data: bytes
    done: bool


@dataclass(frozen=True, slots=True)
class InstallSnapshotResponse:
    term: int
    sender: int
    index: int
    #: Where the follower's copy ends: the offset the leader sends next.
    next_offset: int
    #: The snapshot is installed (or the follower already had it all).
    done: bool


@dataclass(frozen=True, slots=True)
class SessionTouch:
    """Client sessions a follower heard from lately (``ids``), for the leader's
    expiry tracker (zkactors.core.sessions). Not Raft: the log actors carry it
    beside the protocol, and the leader hands it to its store."""

    sender: int
    ids: list


# ------------------------------------------------------------ election <-> log (inproc)
@dataclass(frozen=True, slots=True)
class Campaign:
    """Pre-vote won: start a real election (term + 1, vote for self)."""

    pre_vote_term: int


@dataclass(frozen=True, slots=True)
class LeaderSeen:
    """A heartbeat from ``leader`` at ``term`` was accepted: follow it (adopting the
    term if it is newer)."""

    term: int
    leader: int
    commit_index: int


@dataclass(frozen=True, slots=True)
class StepDown:
    """Check-quorum failed, or a peer's term ``term`` is newer than ours."""

    term: int


@dataclass(frozen=True, slots=True)
class LeaderLost:
    """The lease on ``leader`` at ``term`` lapsed: nothing heard from it for an
    election timeout. The log stops serving reads until the leader (or the next)
    vouches for its state again: a node cut off may have missed any number of
    commits."""

    term: int
    leader: int


@dataclass(frozen=True, slots=True)
class RoleChanged:
    """The log actor's view after any change of role, term, leader or log end."""

    role: str
    term: int
    leader: int  # 0 when unknown
    last_index: int
    last_term: int
    commit_index: int
    #: Whether this node may serve reads: it has applied a commit index its
    #: leader reached *in its current term* (a leader: its own term's first
    #: entry), so nothing committed before is missing. Until then it refuses reads.
    caught_up: bool = False
    #: That index: a read must not be answered from a state older than it (the
    #: store, which hears of commits on another pipe than the gateway, waits for it).
    read_floor: int = 0


PEER_MESSAGES = (Heartbeat, HeartbeatAck, PreVote, PreVoteResponse,
                 RequestVote, VoteResponse, AppendEntries, AppendResponse,
                 LeaderCheck, LeaderCheckAck, ReadIndexRequest, ReadIndexResponse,
                 InstallSnapshot, InstallSnapshotResponse, SessionTouch)
LOCAL_MESSAGES = (Campaign, LeaderSeen, LeaderLost, StepDown, RoleChanged)
_BY_NAME = {cls.__name__: cls for cls in (*PEER_MESSAGES, *LOCAL_MESSAGES)}
# Field annotations are strings here (``from __future__ import annotations``).
_TYPES = {"int": int, "bool": bool, "list": list, "str": str, "bytes": bytes}


_SENDER_FIELD = {
    Heartbeat: "leader", HeartbeatAck: "sender", PreVote: "candidate",
    PreVoteResponse: "voter", RequestVote: "candidate", VoteResponse: "voter",
    AppendEntries: "leader", AppendResponse: "sender",
    LeaderCheck: "leader", LeaderCheckAck: "sender",
    ReadIndexRequest: "sender", ReadIndexResponse: "leader",
    InstallSnapshot: "leader", InstallSnapshotResponse: "sender",
    SessionTouch: "sender",
}


def sender_of(message: Any) -> int | None:
    """The member a peer message says it comes from (None for other objects)."""
    name = _SENDER_FIELD.get(type(message))
    return None if name is None else getattr(message, name)


class MessageError(ValueError):
    """A message that does not decode into one of the kinds above."""


def to_wire(message: Any) -> list:
    return [type(message).__name__, *(getattr(message, f.name) for f in fields(message))]


def from_wire(obj: Any) -> Any:
    """Decode and type-check a ``[kind, *fields]`` list; MessageError if malformed."""
    if not isinstance(obj, list) or not obj or not isinstance(obj[0], str):
        raise MessageError("not a [kind, ...] list")
    cls = _BY_NAME.get(obj[0])
    if cls is None:
        raise MessageError(f"unknown message kind {obj[0]!r}")
    specs = fields(cls)
    values = obj[1:]
    if len(values) != len(specs):
        raise MessageError(f"{obj[0]} takes {len(specs)} fields, got {len(values)}")
    for spec, value in zip(specs, values):
        expected = _TYPES[spec.type]
        if expected is int and (not isinstance(value, int) or isinstance(value, bool)
                                or value < 0):
            raise MessageError(f"{obj[0]}.{spec.name} must be a non-negative integer")
        if expected is bool and not isinstance(value, bool):
            raise MessageError(f"{obj[0]}.{spec.name} must be a boolean")
        if expected in (list, str, bytes) and not isinstance(value, expected):
            raise MessageError(f"{obj[0]}.{spec.name} must be a {expected.__name__}")
    return cls(*values)
