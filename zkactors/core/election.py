"""The election core: the node's failure detector — when to campaign, when to give up.

Raft with pre-vote and check-quorum (Raft thesis §9.6, §6.2), split over two actors.
The log actor owns the term, the vote and the log, and answers RequestVote and
AppendEntries; this core owns only *timing*:

* as leader, it heartbeats every ``heartbeat_ms`` (so heartbeats never wait behind
  the log actor's fsync) and runs check-quorum: a leader that has not heard from a
  majority within ``election_timeout_ms`` asks its log actor to step down;
* as follower or candidate, it runs the randomized election timer and, when it
  fires, a pre-vote round; only a won round makes its log actor campaign;
* it answers peers' pre-votes, refusing while it is or hears from a live leader,
  so a node that was cut off cannot disrupt a healthy leader when it returns.

It tells its own log actor what to do with :class:`Campaign`, :class:`LeaderSeen`
and :class:`StepDown`, and learns the log actor's state from :class:`RoleChanged`.

What it must never do: change a term or a vote durably, or make a safety decision.
Those belong to the log actor's core, which sees term, vote and log in one step.
The ``term`` here is only a view (the log actor's last word, or a newer term heard
in a heartbeat while that word is on its way), and pre-vote changes no state at all.

Pure: no sockets, threads, clock, disk or ``random`` module. Time comes in as
``now_ms`` and randomness as an injected callable, so the same inputs always give
the same outputs and the simulator can replay any run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from zkactors.core.messages import (
    CANDIDATE,
    FOLLOWER,
    LEADER,
    Campaign,
    Heartbeat,
    HeartbeatAck,
    LeaderLost,
    LeaderSeen,
    PreVote,
    PreVoteResponse,
    RoleChanged,
    StepDown,
)
from zkactors.core.quorum import majority

#: The order roles come in within one term (see :meth:`ElectionCore.on_role`).
_ROLE_ORDER = {CANDIDATE: 0, LEADER: 1, FOLLOWER: 2}


@dataclass(frozen=True, slots=True)
class Send:
    """A message to a peer's election actor."""

    to: int
    message: object


@dataclass(frozen=True, slots=True)
class ToLog:
    """A message to this node's log actor (Campaign, LeaderSeen, StepDown)."""

    message: object


Effect = Send | ToLog


def _sender(message: object) -> int | None:
    """Who sent a peer message, or None if it is not one this core speaks."""
    if isinstance(message, Heartbeat):
        return message.leader
    if isinstance(message, HeartbeatAck):
        return message.sender
    if isinstance(message, PreVote):
        return message.candidate
    if isinstance(message, PreVoteResponse):
        return message.voter
    return None


class ElectionCore:
    """Decides when this node campaigns, heartbeats, and gives up leadership."""

    def __init__(self, node_id: int, members: list[int], heartbeat_ms: int,
                 election_timeout_ms: int, random: Callable[[], float], now_ms: int) -> None:
        if node_id not in members:
            raise ValueError(f"node {node_id} is not in members {members}")
        if len(set(members)) != len(members):
            raise ValueError(f"duplicate members in {members}")
        if not 0 < heartbeat_ms < election_timeout_ms:
            raise ValueError("need 0 < heartbeat_ms < election_timeout_ms")
        self.node_id = node_id
        self.members = tuple(sorted(members))  # sorted: sends come out in a fixed order
        self.peers = tuple(m for m in self.members if m != node_id)
        self.majority = majority(len(self.members))
        self.heartbeat_ms = heartbeat_ms
        self.election_timeout_ms = election_timeout_ms
        self._random = random

        # The log actor's view, as last reported (or a newer term seen in a heartbeat).
        self.term = 0
        self.role = FOLLOWER
        self.leader = 0
        self.last_index = 0
        self.last_term = 0
        self.commit_index = 0

        self.rejected = 0  # peer messages dropped: non-members, impossible, unknown
        # Alone, there is nobody to wait for: campaign on the first tick.
        self._deadline = now_ms if not self.peers else now_ms + self._timeout()
        self._heard_ms: int | None = None  # last accepted heartbeat: the leader lease
        self._lapse_told = False  # the log knows the current lease lapsed
        self._pre_vote_term: int | None = None  # the running pre-vote round, if any
        self._granted: set[int] = set()
        # Leader only.
        self._acked: dict[int, int] = {}  # peer -> last time it acked at our term
        self._next_heartbeat = now_ms
        # The highest term we already asked our log actor to step down to, so a
        # failing check-quorum asks once, not on every tick. Re-armed by RoleChanged.
        self._asked_step_down: int | None = None
        self._asked_step_down_ms = 0

    # ----------------------------------------------------------------- inputs

    def tick(self, now_ms: int) -> list[Effect]:
        """Time passes: heartbeat and check quorum as leader, else maybe pre-vote."""
        if self._asked_step_down is not None and \
                now_ms - self._asked_step_down_ms >= self.election_timeout_ms:
            # The log actor has not confirmed a step-down we asked for: ask again
            # (an unanswered request must not leave us leading, or stuck, forever).
            self._asked_step_down_ms = now_ms
            return [ToLog(StepDown(self._asked_step_down))]
        if self.role == LEADER:
            return self._tick_leader(now_ms)
        effects = self._lease_lapse(now_ms)
        if now_ms >= self._deadline:
            effects.extend(self._start_pre_vote(now_ms))
        return effects

    def on_peer(self, message: object, now_ms: int) -> list[Effect]:
        """A message from a peer's election actor."""
        sender = _sender(message)
        if sender is None or sender not in self.peers:
            self.rejected += 1
            return []
        if isinstance(message, Heartbeat):
            return self._on_heartbeat(message, now_ms)
        if isinstance(message, HeartbeatAck):
            return self._on_heartbeat_ack(message, now_ms)
        if isinstance(message, PreVote):
            return self._on_pre_vote(message, now_ms)
        assert isinstance(message, PreVoteResponse)
        return self._on_pre_vote_response(message, now_ms)

    def on_role(self, message: RoleChanged, now_ms: int) -> list[Effect]:
        """The log actor's state after a change of role, term, leader or log end."""
        # The log position is always news: pre-votes are judged against it.
        self.last_index = message.last_index
        self.last_term = message.last_term
        self.commit_index = message.commit_index
        if message.term < self.term:
            # Sent before our log actor saw the LeaderSeen for the newer term we
            # already heard; its RoleChanged for that term is right behind this one.
            # Adopting this one would briefly revive a role we know is over.
            return []
        if message.term == self.term and _ROLE_ORDER[message.role] < _ROLE_ORDER[self.role]:
            # Within one term a node's role only moves forward: candidate, then
            # leader, then follower (a leader that stepped down, or one that never
            # led): a candidacy starts a new term. A report going back is stale
            # (the log's reports may arrive late, or twice): adopting a "leader"
            # sent before a step-down would heartbeat for a log that no longer
            # leads, keeping every follower from ever electing another.
            return []
        changed = (message.role, message.term) != (self.role, self.term)
        was_leader = self.role == LEADER
        self.term = message.term
        self.role = message.role
        self.leader = message.leader
        if not changed:
            return []  # only the log end moved: timers and rounds stand
        self._asked_step_down = None
        self._pre_vote_term = None  # a round for an older term is moot
        if self.role == LEADER:
            return self._become_leader(now_ms)
        if was_leader:
            self._acked.clear()
        self._reset_deadline(now_ms)
        return []

    @property
    def timer_due(self) -> int:
        """When (``now_ms`` time) the election timer fires next, unless a leader
        is heard from first."""
        return self._deadline

    def leader_alive(self, now_ms: int) -> bool:
        """Leader: check-quorum holds now. Others: a leader was heard from within
        ``election_timeout_ms`` (the lease during which we refuse pre-votes)."""
        if self.role == LEADER:
            return self._quorum_alive(now_ms)
        return (self.leader != 0 and self._heard_ms is not None
                and now_ms - self._heard_ms < self.election_timeout_ms)

    # ----------------------------------------------------------------- leader

    def _become_leader(self, now_ms: int) -> list[Effect]:
        # Grace period: count every peer as just heard from, or check-quorum would
        # depose a new leader before its first heartbeat round could be answered.
        self._acked = {peer: now_ms for peer in self.peers}
        self._heard_ms = None  # a lease on some earlier leader is over
        self._next_heartbeat = now_ms
        return self._heartbeats(now_ms)

    def _tick_leader(self, now_ms: int) -> list[Effect]:
        if self._asked_step_down is not None:
            return []  # leadership given up: stop feeding followers' leases
        if not self._quorum_alive(now_ms):
            # Cut off from a majority: step down so clients go to a leader that can
            # actually commit, and so our followers' leases lapse.
            return self._step_down(self.term, now_ms)
        if now_ms >= self._next_heartbeat:
            return self._heartbeats(now_ms)
        return []

    def _heartbeats(self, now_ms: int) -> list[Effect]:
        self._next_heartbeat = now_ms + self.heartbeat_ms
        beat = Heartbeat(self.term, self.node_id, self.commit_index)
        return [Send(peer, beat) for peer in self.peers]

    def _quorum_alive(self, now_ms: int) -> bool:
        recent = sum(1 for t in self._acked.values()
                     if now_ms - t < self.election_timeout_ms)
        return 1 + recent >= self.majority

    def _step_down(self, term: int, now_ms: int = 0) -> list[Effect]:
        if self._asked_step_down is not None and term <= self._asked_step_down:
            return []  # already asked; the log actor's RoleChanged will follow
        self._asked_step_down = term
        self._asked_step_down_ms = now_ms
        return [ToLog(StepDown(term))]

    def _on_heartbeat_ack(self, ack: HeartbeatAck, now_ms: int) -> list[Effect]:
        if ack.term > self.term:
            return self._step_down(ack.term, now_ms)  # a newer term exists: we are stale
        if ack.ok and ack.term == self.term and self.role == LEADER:
            self._acked[ack.sender] = now_ms
        return []

    # --------------------------------------------------------------- follower

    def _on_heartbeat(self, beat: Heartbeat, now_ms: int) -> list[Effect]:
        if beat.term < self.term:
            # Tell the stale leader our term so its log actor steps down.
            return [Send(beat.leader, HeartbeatAck(self.term, self.node_id, False))]
        if beat.term == self.term and (
                self.role == LEADER or self.leader not in (0, beat.leader)):
            # Two leaders in one term cannot happen (election safety): a bug or a
            # forged message. Don't let it move our leader or feed its lease.
            self.rejected += 1
            return []
        if self.role != FOLLOWER:
            # Someone leads at a term >= ours: stop acting as leader or candidate at
            # once (a leader must not heartbeat at a term it does not lead); the
            # log actor's RoleChanged makes it official.
            self.role = FOLLOWER
            self._acked.clear()
        # (A lease that lapsed unnoticed — we were paused — is reported first.)
        effects = self._lease_lapse(now_ms)
        self.term = beat.term
        self.leader = beat.leader
        self._heard_ms = now_ms
        self._lapse_told = False
        self._pre_vote_term = None
        self._reset_deadline(now_ms)
        return [
            *effects,
            # Every heartbeat: it carries the leader's commit index to the log actor.
            ToLog(LeaderSeen(beat.term, beat.leader, beat.commit_index)),
            Send(beat.leader, HeartbeatAck(beat.term, self.node_id, True)),
        ]

    def _lease_lapse(self, now_ms: int) -> list[Effect]:
        """Once per lapse: tell the log actor its leader went silent, so it stops
        serving reads from a state that may be missing any number of commits."""
        if self._lapse_told or self.leader == 0 or self._heard_ms is None \
                or self.leader_alive(now_ms):
            return []
        self._lapse_told = True
        return [ToLog(LeaderLost(self.term, self.leader))]

    # --------------------------------------------------------------- pre-vote

    def _start_pre_vote(self, now_ms: int) -> list[Effect]:
        self._reset_deadline(now_ms)  # a round that goes unanswered retries later
        if not self.peers:
            return [ToLog(Campaign(self.term + 1))]  # nobody to ask: we are a majority
        self._pre_vote_term = self.term + 1
        self._granted = {self.node_id}
        ask = PreVote(self._pre_vote_term, self.node_id, self.last_index, self.last_term)
        return [Send(peer, ask) for peer in self.peers]

    def pre_vote_refusal(self, ask: PreVote, now_ms: int) -> str | None:
        """Why this node refuses ``ask`` its pre-vote, or None: it grants it. The
        same test the real vote will make, minus any state change, plus the lease:
        while a leader is alive we refuse, so a node that was cut off (and whose
        timer fired) cannot force a healthy leader out when it comes back (Raft
        thesis §9.6). Pure: a trace can ask it too."""
        up_to_date = (ask.last_term, ask.last_index) >= (self.last_term, self.last_index)
        if ask.term <= self.term:
            return f"term {ask.term} is not past ours, {self.term}"
        # (A leader that has asked to step down holds no lease any more.)
        if self.role == LEADER and self._asked_step_down is None:
            return f"we lead term {self.term}"
        if self.leader_alive(now_ms):
            if self.role == LEADER:
                return "we lead, and still hear from a quorum"
            return (f"leader n{self.leader} was heard {now_ms - self._heard_ms} ms ago, "
                    f"within the election timeout")
        if not up_to_date:
            return (f"its log ends at {ask.last_index}@{ask.last_term}, behind ours "
                    f"at {self.last_index}@{self.last_term}")
        return None

    def _on_pre_vote(self, ask: PreVote, now_ms: int) -> list[Effect]:
        granted = self.pre_vote_refusal(ask, now_ms) is None
        return [Send(ask.candidate, PreVoteResponse(ask.term, self.node_id, granted,
                                                    self.term))]

    def _on_pre_vote_response(self, reply: PreVoteResponse, now_ms: int) -> list[Effect]:
        if reply.voter_term > self.term:
            # We missed a term: adopt it (through the log actor, which owns terms)
            # rather than ask forever for one that can never be granted.
            return self._step_down(reply.voter_term, now_ms)
        if not reply.granted or reply.term != self._pre_vote_term:
            return []  # refused, or an answer for a round that is over
        self._granted.add(reply.voter)
        if len(self._granted) < self.majority:
            return []
        self._pre_vote_term = None  # round won: campaign once, later grants are moot
        return [ToLog(Campaign(reply.term))]

    # ----------------------------------------------------------------- timers

    def _timeout(self) -> int:
        """A fresh election timeout in [election_timeout_ms, 2 * election_timeout_ms):
        randomized so that followers rarely time out together and split the vote."""
        base = self.election_timeout_ms
        r = self._random()
        if not 0.0 <= r < 1.0:
            raise ValueError(f"random() must return a float in [0, 1), got {r!r}")
        # min(): float rounding of r * base can reach base when r is just under 1.
        return base + min(int(r * base), base - 1)

    def _reset_deadline(self, now_ms: int) -> None:
        self._deadline = now_ms + self._timeout()
