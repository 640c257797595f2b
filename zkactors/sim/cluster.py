"""A deterministic simulation of an ensemble, running the very cores the nodes run.

Each simulated node is an :class:`~zkactors.core.election.ElectionCore`, a
:class:`~zkactors.core.replog.ReplicatedLog` and a
:class:`~zkactors.core.store.StoreCore` over a :class:`~zkactors.core.tree.Tree`,
wired the way the runtime wires them — but every message, between nodes *and*
between a node's own election and log actors, goes through one seeded event queue
that delays, reorders, duplicates and drops it. The driver's contract is modelled
too: a :class:`~zkactors.core.replog.Ready` is written to a volatile buffer and only
after a simulated fsync does it reach "disk" and may its messages leave. A crash
loses the buffer, the cores and the tree; a restart rebuilds from disk.

Everything random comes from one ``random.Random(seed)``, so a seed replays
exactly. :mod:`zkactors.sim.invariants` is checked after every event.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from zkactors.core.election import ElectionCore, Send, ToLog
from zkactors.core.messages import (
    LEADER,
    Campaign,
    LeaderSeen,
    RoleChanged,
    StepDown,
)
from zkactors.core.replog import Entry, Ready, ReplicatedLog, may_send_before_persist
from zkactors.core.store import StoreCore
from zkactors.core.tree import Tree
from zkactors.sim.invariants import Checker


@dataclass
class Faults:
    """Probabilities and ranges of the fault model (per message / per step)."""

    drop: float = 0.02
    duplicate: float = 0.02
    max_delay_ms: int = 12
    inproc_drop: float = 0.005
    inproc_max_delay_ms: int = 2
    fsync_ms: tuple[int, int] = (1, 4)
    crash: float = 0.002
    restart_after_ms: tuple[int, int] = (50, 1500)
    partition: float = 0.002
    heal_after_ms: tuple[int, int] = (100, 2000)
    write: float = 0.25
    read: float = 0.1


@dataclass
class Disk:
    """What survives a crash: the last fsynced term, vote and log."""

    term: int = 0
    voted_for: int = 0
    entries: list[Entry] = field(default_factory=list)


class SimNode:
    def __init__(self, node_id: int, members: list[int], sim: Simulation) -> None:
        self.id = node_id
        self.members = members
        self.sim = sim
        self.disk = Disk()
        self.up = False
        self.incarnation = 0
        self.start()

    def start(self) -> None:
        sim = self.sim
        self.up = True
        self.incarnation += 1
        self.election = ElectionCore(self.id, self.members, sim.heartbeat_ms,
                                     sim.election_timeout_ms, sim.rng.random, sim.now)
        self.log = ReplicatedLog(self.id, self.members, self.disk.term, self.disk.voted_for,
                                 list(self.disk.entries), max_batch=16, max_inflight=4,
                                 retransmit_ms=4 * sim.heartbeat_ms)
        self.store = StoreCore(Tree())
        #: Readies in the order the core produced them; the head may be fsyncing.
        self.pending: deque[Ready] = deque()
        self.fsyncing = False
        # The election actor starts knowing what the log knows, as the runtime does.
        sim.handle_election(self, self.election.on_role(self.log.role_changed(), sim.now))

    def crash(self) -> None:
        self.up = False
        self.incarnation += 1  # fsyncs and messages of the old incarnation are void


class Simulation:
    def __init__(self, seed: int, nodes: int = 3, faults: Faults | None = None,
                 heartbeat_ms: int = 20, election_timeout_ms: int = 150,
                 tick_ms: int = 5) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.faults = faults or Faults()
        self.heartbeat_ms = heartbeat_ms
        self.election_timeout_ms = election_timeout_ms
        self.tick_ms = tick_ms
        self.now = 0
        self._queue: list[tuple[int, int, str, Any]] = []
        self._seq = 0
        self.members = list(range(1, nodes + 1))
        self.partitioned: set[frozenset[int]] = set()
        self.checker = Checker(self)
        self.acked: dict[str, int] = {}  # path -> zxid at which it was acknowledged
        self._client_seq = 0
        self.nodes: dict[int, SimNode] = {}
        for node_id in self.members:
            self.nodes[node_id] = SimNode(node_id, self.members, self)
        for node_id in self.members:
            self._schedule(self.rng.randint(0, tick_ms), "tick", node_id)
        self._schedule(1, "chaos", None)

    # ------------------------------------------------------------ scheduling
    def _schedule(self, delay: int, kind: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (self.now + max(0, delay), self._seq, kind, payload))

    def run(self, until_ms: int, chaos: bool = True) -> None:
        self.chaos = chaos
        while self._queue and self._queue[0][0] <= until_ms:
            when, _, kind, payload = heapq.heappop(self._queue)
            self.now = when
            getattr(self, f"_on_{kind}")(payload)
            self.checker.check()
        self.now = until_ms

    # --------------------------------------------------------------- events
    def _on_tick(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if node.up:
            self.handle_election(node, node.election.tick(self.now))
            self.handle_ready(node, node.log.tick(self.now))
        self._schedule(self.tick_ms, "tick", node_id)

    def _on_deliver(self, payload: tuple) -> None:
        dst, incarnation, actor, message = payload
        node = self.nodes[dst]
        if not node.up or (incarnation is not None and incarnation != node.incarnation):
            return
        if actor == "election":
            if isinstance(message, RoleChanged):
                self.handle_election(node, node.election.on_role(message, self.now))
            else:
                self.handle_election(node, node.election.on_peer(message, self.now))
        elif isinstance(message, Campaign):
            self.handle_ready(node, node.log.campaign(message, self.now))
        elif isinstance(message, LeaderSeen):
            self.handle_ready(node, node.log.leader_seen(message, self.now))
        elif isinstance(message, StepDown):
            self.handle_ready(node, node.log.step_down(message, self.now))
        else:
            self.handle_ready(node, node.log.on_message(message, self.now))

    def _on_fsynced(self, payload: tuple) -> None:
        node_id, incarnation = payload
        node = self.nodes[node_id]
        if not node.up or incarnation != node.incarnation:
            return  # the crash came first: that buffer is gone
        ready = node.pending.popleft()
        node.fsyncing = False
        disk = node.disk
        if ready.hard_state is not None:
            disk.term, disk.voted_for = ready.hard_state
        if ready.truncate_after is not None:
            del disk.entries[ready.truncate_after:]
        for entry in ready.entries:
            del disk.entries[entry.index - 1:]
            disk.entries.append(entry)
        self._after_persist(node, ready)
        if ready.entries:
            last = ready.entries[-1]
            self.handle_ready(node, node.log.persisted(last.index, last.term, self.now))
        self._pump(node)

    def _on_chaos(self, _: Any) -> None:
        f, rng = self.faults, self.rng
        if self.chaos:
            if rng.random() < f.crash:
                victim = self.nodes[rng.choice(self.members)]
                if victim.up:
                    victim.crash()
                    self._schedule(rng.randint(*f.restart_after_ms), "restart", victim.id)
            if rng.random() < f.partition:
                a, b = rng.sample(self.members, 2)
                self.partitioned.add(frozenset((a, b)))
                self._schedule(rng.randint(*f.heal_after_ms), "heal", frozenset((a, b)))
        if rng.random() < f.write:
            self._client_write()
        if rng.random() < f.read:
            self._client_read()
        self._schedule(1, "chaos", None)

    def _on_restart(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if not node.up:
            node.start()

    def _on_heal(self, pair: frozenset[int]) -> None:
        self.partitioned.discard(pair)

    # ------------------------------------------------------------- clients
    def _client_write(self) -> None:
        self._client_seq += 1
        path = f"/k{self._client_seq}"
        node = self.nodes[self.rng.choice(self.members)]
        leader = node.log.leader if node.up else 0
        if leader and self.nodes[leader].up:
            node = self.nodes[leader]  # the client library follows NOT_LEADER hints
        if not node.up:
            return
        ident = f"client-{self._client_seq}".encode()
        txn = ["create", path, path.encode(), 0]
        self.handle_ready(node, node.log.propose([[ident, self._client_seq, txn, None]],
                                                 self.now))

    def _client_read(self) -> None:
        node = self.nodes[self.rng.choice(self.members)]
        if node.up and self.acked:
            path = self.rng.choice(sorted(self.acked))
            node.store.read([[b"reader", 0, "exists", [path]]])

    # --------------------------------------------------------- the drivers
    def handle_election(self, node: SimNode, effects: list) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._send_peer(node.id, effect.to, "election", effect.message)
            elif isinstance(effect, ToLog):
                self._send_inproc(node, "log", effect.message)

    def handle_ready(self, node: SimNode, ready: Ready) -> None:
        if not ready:
            return
        if ready.role is not None and ready.role.role == LEADER:
            self.checker.became_leader(node, ready.role.term)
        # One node's Readies complete in the order they were made, as in the log
        # actor, which fsyncs each before it takes the next input: a Ready that needs
        # no disk still waits for the fsync ahead of it, since it may rest on it.
        node.pending.append(ready)
        self._pump(node)

    def _pump(self, node: SimNode) -> None:
        while node.pending and not node.fsyncing:
            ready = node.pending[0]
            early = [m for m in ready.messages if may_send_before_persist(m[1])]
            if early:  # as the log actor does: a leader's appends don't wait
                for peer, message in early:
                    self._send_peer(node.id, peer, "log", message)
                ready.messages = [m for m in ready.messages if not may_send_before_persist(m[1])]
            if ready.hard_state is not None or ready.truncate_after is not None \
                    or ready.entries:
                node.fsyncing = True
                self._schedule(self.rng.randint(*self.faults.fsync_ms), "fsynced",
                               (node.id, node.incarnation))
                return
            node.pending.popleft()
            self._after_persist(node, ready)

    def _after_persist(self, node: SimNode, ready: Ready) -> None:
        for peer, message in ready.messages:
            self._send_peer(node.id, peer, "log", message)
        if ready.committed:
            replies, _ = node.store.apply(ready.committed, node.log.commit_index, node.log.term)
            self.checker.applied(node, ready.committed)
            for ident, rid, code, result, _via_log in replies:
                if code == 0 and ident.startswith(b"client-"):
                    self.acked[result] = node.store.applied_zxid
        if ready.role is not None:
            self._send_inproc(node, "election", ready.role)

    def _send_peer(self, src: int, dst: int, actor: str, message: Any) -> None:
        f, rng = self.faults, self.rng
        if frozenset((src, dst)) in self.partitioned or rng.random() < f.drop:
            return
        copies = 2 if rng.random() < f.duplicate else 1
        for _ in range(copies):
            self._schedule(rng.randint(1, f.max_delay_ms), "deliver", (dst, None, actor, message))

    def _send_inproc(self, node: SimNode, actor: str, message: Any) -> None:
        f, rng = self.faults, self.rng
        if rng.random() < f.inproc_drop:
            return
        copies = 2 if rng.random() < f.duplicate else 1
        for _ in range(copies):
            self._schedule(rng.randint(0, f.inproc_max_delay_ms), "deliver",
                           (node.id, node.incarnation, actor, message))

    # -------------------------------------------------------------- the end
    def heal_and_settle(self, settle_ms: int = 3000) -> None:
        """Stop the chaos, heal every partition, restart every node, let it converge."""
        self.partitioned.clear()
        for node in self.nodes.values():
            if not node.up:
                node.start()
        self.faults = Faults(drop=0, duplicate=0, inproc_drop=0, crash=0, partition=0,
                             write=0, read=0)
        self.run(self.now + settle_ms, chaos=False)
