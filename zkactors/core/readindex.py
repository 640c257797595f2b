"""ReadIndex, the leader's half (Raft thesis §6.4): proving it still leads
before it answers a linearizable read.

A leader that was deposed without knowing it (cut off, paused) must not answer
a ``sync`` from its own, possibly stale, state. So each such read waits for a
*round*: the leader sends every follower a ``LeaderCheck`` carrying the round's
number, and the round is confirmed once a majority (the leader included) has
acknowledged that round or a later one in the leader's term. Reads that arrive
together share a round; rounds only go up, so one acknowledgement confirms
every round up to it.

A follower's ``sync`` asks the leader for a *read index* (ReadIndexRequest);
the leader notes its commit index, waits for a round started after the request
arrived, and answers with that index; the follower serves the read once it has
applied that far. What waits for a round on the leader's side is here; the
reads themselves stay in their client's order in the log core
(zkactors.core.replog), which asks :meth:`LeadershipRounds.confirmed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zkactors.core.messages import LeaderCheck
from zkactors.core.quorum import quorum_index


@dataclass(slots=True)
class LeadershipRounds:
    #: The latest round started (rounds only go up, across terms too).
    round: int = 0
    #: Peer -> the highest round it acknowledged in the current term.
    acked: dict[int, int] = field(default_factory=dict)
    #: When the latest check went out (it is sent again if unconfirmed for long).
    sent_ms: int = 0
    #: Followers' requests waiting for their round: (round, follower, request
    #: id, the read index to answer with).
    remote: list[tuple[int, int, int, int]] = field(default_factory=list)

    def next_round(self) -> int:
        self.round += 1
        return self.round

    def check(self, term: int, leader: int, now_ms: int) -> LeaderCheck:
        """The LeaderCheck for the latest round, going out now."""
        self.sent_ms = now_ms
        return LeaderCheck(term, leader, self.round)

    def confirmed(self, peers: list[int]) -> int:
        """The highest round a majority (the leader included) has acknowledged."""
        return quorum_index([self.acked.get(p, 0) for p in peers] + [self.round])

    def acknowledged(self, peer: int, round_: int) -> bool:
        """``peer`` acknowledged ``round_``; whether that is news."""
        if round_ > self.acked.get(peer, 0):
            self.acked[peer] = round_
            return True
        return False

    def wait(self, follower: int, request_id: int, index: int) -> None:
        """A follower's request for a read index, answered once a round started
        now is confirmed."""
        self.remote.append((self.next_round(), follower, request_id, index))

    def answerable(self, confirmed: int) -> list[tuple[int, int, int]]:
        """The waiting requests whose round is confirmed, as (follower, request
        id, index), taken off the list."""
        ready = [(f, r, i) for round_, f, r, i in self.remote if round_ <= confirmed]
        if ready:
            self.remote = [w for w in self.remote if w[0] > confirmed]
        return ready

    def abandon(self) -> list[tuple[int, int]]:
        """Leadership lost: every waiting request, as (follower, request id), to be
        refused; none waits any more."""
        dropped = [(f, r) for _, f, r, _ in self.remote]
        self.remote = []
        return dropped
