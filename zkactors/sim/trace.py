"""A simulated run told as a timeline: one line per thing that happened, in the
lane of the node it happened to.

    python -m zkactors.sim --seed 7 --trace --until leader

The :class:`Tracer` only watches: the simulator calls it at the points where a
node decides something (a timer fires, a vote is granted or refused, an entry
is appended, committed or applied, a role changes) or where the world does
something to a node (a crash, a partition, a pause). It draws no random numbers
and changes no state, so a traced run is the very run the seed names — the
same one ``run_seed`` checks.

Messages between nodes are shown when they leave, after any fsync they wait
for (so a vote is shown when it is really sent, and a node that dies in the
fsync shows none); a message the network loses is marked ``✗`` with the
reason. Vote and pre-vote answers carry the reason the voter's core gives
(:meth:`ReplicatedLog.vote_refusal`, :meth:`ElectionCore.pre_vote_refusal`):
the same function that decided the answer.

Routine traffic — a heartbeat or an empty append that repeats what the last
one said, an acknowledgement that moves nothing — is left out unless
``every_message`` is set; so is its loss. A line reads::

    t ms   n1  n2  n3
     163    ·  n2   ·   election timer fired: asks n1, n3 for pre-votes for term 1 …
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zkactors.core.messages import (
    CANDIDATE,
    LEADER,
    AppendEntries,
    AppendResponse,
    Campaign,
    Heartbeat,
    HeartbeatAck,
    InstallSnapshot,
    InstallSnapshotResponse,
    LeaderCheck,
    LeaderCheckAck,
    LeaderLost,
    LeaderSeen,
    PreVote,
    PreVoteResponse,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RoleChanged,
    StepDown,
    VoteResponse,
)
from zkactors.core.replog import Committed, Entry
from zkactors.errors import Code

#: Width of one node's lane.
LANE = 4
_CODES = {int(code) for code in Code}


def describe_txn(txn: Any) -> str:
    """A log entry's transaction in a few words: ``create /a``, ``no-op``, …"""
    if not isinstance(txn, list) or not txn:
        return repr(txn)
    op = txn[0]
    if op == "tagged" and len(txn) == 5:
        return f"{describe_txn(txn[4])} (client {txn[1]}, write #{txn[2]})"
    if op == "noop":
        return "no-op"
    if op in ("create", "set", "delete") and len(txn) > 1:
        return f"{op} {txn[1]}"
    if op == "multi":
        return f"multi of {len(txn) - 1}"
    if op == "session_expire" and len(txn) == 2:
        return f"expire sessions {txn[1]}"
    return str(op)


def _span(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}..{last}"


class Tracer:
    """Collects the timeline; ``write`` gets each finished line."""

    def __init__(self, members: list[int], write: Callable[[str], None],
                 every_message: bool = False, clients: bool = False) -> None:
        self.members = members
        self.write = write
        self.every_message = every_message
        #: Show what clients ask and are answered (a chaos run has many clients).
        self.clients = clients
        #: Answers decided but not yet sent: ("vote" or "pre-vote", voter,
        #: candidate, term) -> the voter's reason for refusing (None: granted).
        self._reasons: dict[tuple[str, int, int, int], str | None] = {}
        #: A broadcast being gathered: (time, sender, message object, kind of loss).
        self._pending: tuple[int, int, Any, str | None] | None = None
        self._pending_to: list[int] = []
        #: What was last said, to leave out what merely repeats it.
        self._said: dict[tuple, Any] = {}
        self.lines = 0

    # ------------------------------------------------------------- lines
    def header(self, command: str = "", note: str = "") -> None:
        """The command and a note as comments (if given), then the lanes' names."""
        for comment in (command, note):
            if comment:
                self.write(f"# {comment}")
        if command or note:
            self.write("")
        self.write(" t ms  " + "".join(f"n{m}".ljust(LANE) for m in self.members).rstrip())

    def note(self, now: int, nodes: int | tuple[int, ...] | None, text: str) -> None:
        """One line at ``now`` in the lanes of ``nodes`` (None: the whole ensemble)."""
        self._flush()
        self._line(now, nodes, text)

    def _line(self, now: int, nodes: int | tuple[int, ...] | None, text: str) -> None:
        marked = (nodes,) if isinstance(nodes, int) else (nodes or ())
        lanes = "".join((f"n{m}" if m in marked else " ·" if nodes is not None else " *")
                        .ljust(LANE) for m in self.members)
        self.write(f"{now:5d}  {lanes}{text}")
        self.lines += 1

    def close(self) -> None:
        self._flush()

    # ------------------------------------------------------ node lifecycle
    def started(self, now: int, node: Any, timer_ms: int) -> None:
        log = node.log
        if log.last_index == 0 and log.term == 0:
            state = "an empty log"
        else:
            vote = ("voted for itself" if log.voted_for == node.id else
                    f"voted for n{log.voted_for}" if log.voted_for else "no vote")
            state = (f"term {log.term}, {vote}, log {log.base_index + 1}..{log.last_index} "
                     f"(last {log.last_index}@{log.last_term}), applied through "
                     f"{node.store.applied_index}")
        self.note(now, node.id, f"starts as a follower: {state}; election timer "
                                f"fires in {timer_ms} ms unless a leader is heard")
        self._said[("role", node.id)] = (log.role, log.term, log.leader)

    def crashed(self, now: int, node_id: int) -> None:
        self.note(now, node_id, "CRASHES: the process dies (what it had not fsynced is lost)")

    def paused(self, now: int, node_id: int, duration: int, clock_stops: bool) -> None:
        self.note(now, node_id, f"PAUSED for {duration} ms "
                                f"({'its clock stops too' if clock_stops else 'its clock runs'})")

    def resumed(self, now: int, node_id: int) -> None:
        self.note(now, node_id, "resumes")

    def partitioned(self, now: int, pair: frozenset[int], healed: bool = False) -> None:
        a, b = sorted(pair)
        self.note(now, (a, b), f"link n{a} — n{b} {'healed' if healed else 'CUT both ways'}")

    def cut_one_way(self, now: int, victim: int, inbound: bool, mended: bool = False) -> None:
        way = "into" if inbound else "out of"
        self.note(now, victim, f"messages {way} n{victim} "
                               f"{'flow again' if mended else 'are LOST from now on'}")

    def healed_all(self, now: int) -> None:
        self.note(now, None, "chaos ends: every link healed, every node resumed or restarted")

    def clock_jumped(self, now: int, node_id: int, by_ms: int) -> None:
        self.note(now, node_id, f"its monotonic clock jumps {by_ms} ms ahead")

    # ----------------------------------------------------- election actor
    def election_effects(self, now: int, node: Any, effects: list) -> None:
        """Effects the election core returned that go to its own log actor."""
        for effect in effects:
            message = getattr(effect, "message", None)
            if isinstance(message, Campaign):
                self.note(now, node.id, f"won the pre-vote: tells its log to campaign "
                                        f"for term {message.pre_vote_term}")
            elif isinstance(message, StepDown):
                if message.term > node.election.term:
                    why = f"heard of a newer term, {message.term}"
                else:
                    why = ("check-quorum: no majority answered its heartbeats within "
                           f"{node.election.election_timeout_ms} ms")
                self.note(now, node.id, f"{why}: tells its log to step down")
            elif isinstance(message, LeaderLost):
                self.note(now, node.id, f"nothing from leader n{message.leader} for an "
                                        "election timeout: lease lapsed, reads refused")
            elif isinstance(message, LeaderSeen):
                pass  # every heartbeat: the heartbeat lines say it

    def pre_vote_decided(self, node: Any, ask: PreVote, reason: str | None) -> None:
        self._reasons[("pre-vote", node.id, ask.candidate, ask.term)] = reason

    # ---------------------------------------------------------- log actor
    def vote_decided(self, node: Any, ask: RequestVote, reason: str | None) -> None:
        self._reasons[("vote", node.id, ask.candidate, ask.term)] = reason

    def log_ready(self, now: int, node: Any, ready: Any) -> None:
        """A Ready the replica is about to carry out."""
        if ready.role is not None:
            self._role(now, node, ready.role)
        if ready.truncate_after is not None:
            self.note(now, node.id, f"drops its entries after {ready.truncate_after}: "
                                    "they conflict with the leader's log")
        if ready.entries:
            self._appended(now, node, ready.entries)
        if ready.restore is not None:
            index, term = ready.restore
            self.note(now, node.id, f"installed the leader's snapshot through "
                                    f"{index}@{term}; its log restarts after it")
        if ready.failed and self.clients:
            reasons = sorted({item[3] for item in ready.failed})
            self.note(now, node.id, f"fails {len(ready.failed)} client request"
                                    f"{'s' if len(ready.failed) > 1 else ''}: "
                                    + "; ".join(reasons))
        entries = [item.entry for item in ready.committed if item.entry is not None]
        if entries:
            self.note(now, node.id, f"committed: hands {_span(entries[0].index, entries[-1].index)}"
                                    " to its store")

    def _appended(self, now: int, node: Any, entries: list[Entry]) -> None:
        first, last = entries[0], entries[-1]
        if node.log.role == LEADER:
            what = "; ".join(f"{e.index}: {describe_txn(e.txn)}" for e in entries[:4])
            more = f"; … {len(entries) - 4} more" if len(entries) > 4 else ""
            self.note(now, node.id, f"appends {what}{more} (term {last.term}), to fsync")
        else:
            self.note(now, node.id, f"appends {_span(first.index, last.index)} from the "
                                    f"leader (last {last.index}@{last.term}), to fsync")

    def _role(self, now: int, node: Any, role: RoleChanged) -> None:
        key = ("role", node.id)
        said = (role.role, role.term, role.leader)
        if self._said.get(key) == said:
            return
        self._said[key] = said
        if role.role == LEADER:
            votes = ", ".join(f"n{v}" for v in sorted(node.log.votes))
            text = (f"LEADER of term {role.term} (votes: {votes}); appends a no-op so "
                    "entries of earlier terms can commit")
        elif role.role == CANDIDATE:
            text = (f"candidate in term {role.term}: votes for itself, asks for votes "
                    f"(log ends at {role.last_index}@{role.last_term})")
        elif role.leader:
            text = f"follows n{role.leader} in term {role.term}"
        else:
            text = f"follower in term {role.term}, no leader known"
        self.note(now, node.id, text)

    # ----------------------------------------------------------- the store
    def applied(self, now: int, node: Any, committed: list[Committed]) -> None:
        entries = [item.entry for item in committed if item.entry is not None]
        if not entries:
            return
        if len(entries) == 1:
            self.note(now, node.id, f"applies {entries[0].index}: {describe_txn(entries[0].txn)}")
            return
        shown = entries[:3]
        what = "; ".join(f"{e.index}: {describe_txn(e.txn)}" for e in shown)
        more = f"; … {len(entries) - len(shown)} more" if len(entries) > len(shown) else ""
        self.note(now, node.id, f"applies {_span(entries[0].index, entries[-1].index)} "
                                f"({what}{more})")

    def restored(self, now: int, node_id: int, index: int, term: int) -> None:
        self.note(now, node_id, f"its store loads the snapshot through {index}@{term}")

    def snapshot_taken(self, now: int, node_id: int, index: int) -> None:
        self.note(now, node_id, f"snapshots its tree at {index}; the log before it may go")

    # ---------------------------------------------------------- clients
    def client_asked(self, now: int, node_id: int, client: str, requests: list[list]) -> None:
        if not self.clients:
            return
        asks = "; ".join(" ".join(str(a) for a in r[1:3]) for r in requests)
        self.note(now, node_id, f"client {client} asks: {asks}")

    def client_answered(self, now: int, node_id: int, what: str, code: int,
                        result: Any) -> None:
        if not self.clients:
            return
        outcome = "ok" if code == 0 else Code(code).name if code in _CODES else f"error {code}"
        shown = result if isinstance(result, str) and code == 0 else ""
        self.note(now, node_id, f"answers {what}: {outcome}{' ' + shown if shown else ''}")

    # ------------------------------------------------------- the network
    def sent(self, now: int, src: int, dst: int, message: Any, lost: str | None) -> None:
        """A peer message leaves ``src`` for ``dst`` (``lost``: why it never arrives)."""
        pending = self._pending
        if pending is not None and pending[0] == now and pending[1] == src \
                and pending[2] is message and pending[3] == lost:
            self._routine(src, dst, message)  # (noted as said to this one too)
            self._pending_to.append(dst)
            return
        self._flush()
        if not self.every_message and self._routine(src, dst, message):
            return
        self._pending = (now, src, message, lost)
        self._pending_to = [dst]

    def _flush(self) -> None:
        if self._pending is None:
            return
        now, src, message, lost = self._pending
        to = ", ".join(f"n{d}" for d in self._pending_to)
        self._pending = None
        text = f"→ {to}: {self._describe(src, self._pending_to[0], message)}"
        if lost:
            text = f"✗ {text}  [LOST: {lost}]"
        self._line(now, src, text)

    def _routine(self, src: int, dst: int, message: Any) -> bool:
        """Whether ``message`` only repeats what ``src`` last told ``dst``."""
        if isinstance(message, Heartbeat):
            said = (message.term, message.commit_index)
        elif isinstance(message, HeartbeatAck):
            said = (message.term, message.ok)
        elif isinstance(message, AppendEntries):
            if message.entries:
                return False
            said = (message.term, message.commit_index)
        elif isinstance(message, AppendResponse):
            said = (message.term, message.success, message.match_index)
        elif isinstance(message, (LeaderCheck, LeaderCheckAck)):
            said = (message.term, message.round)  # each ReadIndex round is news
        else:
            return False
        key = (type(message).__name__, src, dst)
        if self._said.get(key) == said:
            return True
        self._said[key] = said
        return False

    def _describe(self, src: int, dst: int, m: Any) -> str:
        if isinstance(m, Heartbeat):
            return f"heartbeat, term {m.term}, commit {m.commit_index}"
        if isinstance(m, HeartbeatAck):
            return (f"heartbeat ack, term {m.term}" if m.ok else
                    f"heartbeat refused: our term is {m.term}, the sender is stale")
        if isinstance(m, PreVote):
            return (f"pre-vote? for term {m.term}, my log ends at "
                    f"{m.last_index}@{m.last_term}")
        if isinstance(m, PreVoteResponse):
            return self._answer("pre-vote", src, dst, m.term, m.granted)
        if isinstance(m, RequestVote):
            return f"vote for me in term {m.term}? my log ends at {m.last_index}@{m.last_term}"
        if isinstance(m, VoteResponse):
            return self._answer("vote", src, dst, m.term, m.granted)
        if isinstance(m, AppendEntries):
            span = (f"entries {_span(m.prev_index + 1, m.prev_index + len(m.entries))}"
                    if m.entries else "nothing new")
            return (f"append {span} after {m.prev_index}@{m.prev_term}, commit "
                    f"{m.commit_index} (term {m.term})")
        if isinstance(m, AppendResponse):
            if m.success:
                return f"appended: my log matches yours through {m.match_index}"
            if m.conflict_index == 0:  # (a follower always hints at least index 1)
                return f"refused: my term, {m.term}, is newer than yours"
            return (f"refused append after {m.rejected_index}: no match there; "
                    f"try from {m.conflict_index}")
        if isinstance(m, LeaderCheck):
            return f"still leader of term {m.term}? (ReadIndex round {m.round})"
        if isinstance(m, LeaderCheckAck):
            return f"yes, term {m.term} (round {m.round})"
        if isinstance(m, ReadIndexRequest):
            return f"read index for request {m.request_id}?"
        if isinstance(m, ReadIndexResponse):
            return (f"read index {m.index} for request {m.request_id}" if m.index
                    else f"no read index for request {m.request_id}: not the leader")
        if isinstance(m, InstallSnapshot):
            return (f"snapshot through {m.index}@{m.last_term}, bytes "
                    f"{m.offset}..{m.offset + len(m.data)}{' (last chunk)' if m.done else ''}")
        if isinstance(m, InstallSnapshotResponse):
            return (f"snapshot through {m.index} installed" if m.done
                    else f"snapshot through {m.index}: have bytes up to {m.next_offset}")
        return type(m).__name__

    def _answer(self, kind: str, voter: int, candidate: int, term: int, granted: bool) -> str:
        reason = self._reasons.pop((kind, voter, candidate, term), None)
        what = f"{kind} for term {term}"
        if granted:
            return f"{what}: GRANTED"
        return f"{what}: refused ({reason})" if reason else f"{what}: refused"
