"""Election actor: owns the heartbeat/pre-vote links; drives :class:`ElectionCore`.

It has its own sockets and thread, so heartbeats never wait behind the log actor's
fsync or a long apply. It tells the log actor when to campaign, whom to follow
and when to step down, and tells the gateway whether a live leader is known (a
node cut off from its leader stops serving reads).
"""

from __future__ import annotations

import random
from typing import Any

from zkactors.core.election import ElectionCore, Send, ToLog
from zkactors.core.messages import LEADER, Campaign, RoleChanged
from zkactors.runtime.actor import Actor, now_ms
from zkactors.runtime.mail import Health, Local, PeerCounters
from zkactors.runtime.transport import PeerLinks
from zkactors.stats import Histogram

#: Buckets of the time between two ticks, seconds: on time (a fifth of a
#: heartbeat) to a node held past any election timeout.
TICK_GAP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)


class ElectionActor(Actor):
    talks_to = ("log", "gateway")

    def __init__(self, *args: Any, members: dict[int, str], endpoint: str, heartbeat_ms: int,
                 election_timeout_ms: int, fingerprint: str = "", **kwargs: Any) -> None:
        kwargs["tick_ms"] = max(2, heartbeat_ms // 5)
        super().__init__("election", *args, **kwargs)
        # Timeouts must differ between nodes; the seed only has to differ, not be secret.
        self.core = ElectionCore(self.node_id, sorted(members), heartbeat_ms,
                                 election_timeout_ms, random.Random().random, now_ms())
        peers = {m: e for m, e in members.items() if m != self.node_id}
        self.links = PeerLinks(self.context, self.node_id, endpoint, peers, fingerprint)
        self.add_socket(self.links.router)
        self._extra.extend(self.links.dealers.values())
        self.alive: bool | None = None
        self._report_due = 0
        #: Elections this node started (for the admin endpoint).
        self.campaigns = 0
        #: Time between two ticks. Heartbeats go out on ticks, so a leader held
        #: longer than the election timeout (a long GC, a fork, swapping, a busy
        #: machine) loses its term though nothing failed: this shows how close
        #: that came (``zkactors_election_tick_gap_seconds``).
        self.tick_gaps = Histogram(TICK_GAP_BUCKETS)
        self._last_tick: int | None = None
        self._heartbeat_ms = heartbeat_ms
        self._election_timeout_ms = election_timeout_ms

    def on_inbox(self, messages: list[Any]) -> None:
        for message in messages:
            if not isinstance(message, Local) or not isinstance(message.message, RoleChanged):
                raise TypeError(f"election got {message!r:.80}")
            self._effects(self.core.on_role(message.message, now_ms()))

    def on_socket(self, sock: Any) -> None:
        now = now_ms()
        for message in self.links.receive(self.max_batch):
            self._effects(self.core.on_peer(message, now))

    def on_tick(self, now: int) -> None:
        if self._last_tick is not None:
            self._tick_gap(now - self._last_tick)
        self._last_tick = now
        self.links.maintain(now)
        if now >= self._report_due:  # peer counters for status, about once a second
            self._report_due = now + 1000
            self.send("gateway", PeerCounters(self.actor_name, self.links.counters()))
        self.links.take_mismatched()  # the log actor reports the same peers
        self._effects(self.core.tick(now))

    def _tick_gap(self, gap_ms: int) -> None:
        self.tick_gaps.observe(gap_ms / 1000)
        if self.core.role == LEADER and gap_ms >= 2 * self._heartbeat_ms:
            # As etcd warns "leader failed to send out heartbeat on time": the
            # operator's first clue before followers start an election.
            self.log.warning("heartbeat_late", held_ms=gap_ms, heartbeat_ms=self._heartbeat_ms,
                             election_timeout_ms=self._election_timeout_ms,
                             hint="the node was held (a long GC, a fork, swapping or a "
                                  "busy machine); past election_timeout_ms its followers "
                                  "elect another leader")

    def _effects(self, effects: list) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self.links.send(effect.to, effect.message)
            elif isinstance(effect, ToLog):
                if isinstance(effect.message, Campaign):
                    self.campaigns += 1
                self.send("log", Local(effect.message))
        alive = self.core.leader_alive(now_ms())
        if alive != self.alive:
            self.alive = alive
            self.send("gateway", Health(alive))
