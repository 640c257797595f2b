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

No core ever sees the simulator's global ``now``. Each node reads its own
:class:`~zkactors.sim.clock.NodeClock`: a monotonic clock that drifts and jumps
forward (handed to every core input, as the runtime hands ``time.monotonic``), and
a wall clock that NTP steps back and forth (stamped on proposed entries, as the
runtime stamps ``time.time``). A node can also be *paused* (a GC stall, a VM
descheduled or suspended): it takes no input until it resumes — messages, ticks
and fsync completions wait for it — and its monotonic clock either ran on (it then
sees the pause as one leap) or stood still (it then lags everyone else).

Everything random comes from one ``random.Random(seed)``, so a seed replays
exactly. :mod:`zkactors.sim.invariants` is checked after every event.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field, replace
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
from zkactors.sim.clock import EPOCH_MS, NodeClock
from zkactors.sim.invariants import Checker

#: Events addressed to one node, and where their payload names it: a paused node
#: takes none of them until it resumes.
_NODE_EVENTS = frozenset(("tick", "deliver", "fsynced"))


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
    #: Clocks (per node, see zkactors.sim.clock). Each node's monotonic clock runs at
    #: a rate drawn once from [1 - drift, 1 + drift] of simulated time.
    drift: float = 0.05
    #: Per ms: one node's monotonic clock (and its wall clock) leaps ahead by
    #: ``clock_jump_ms`` while the node keeps running.
    clock_jump: float = 0.001
    clock_jump_ms: tuple[int, int] = (50, 3000)
    #: Per ms: one node's wall clock is stepped by ``wall_step_ms`` (either way).
    #: Also the range of the nodes' initial wall-clock disagreement.
    wall_step: float = 0.001
    wall_step_ms: tuple[int, int] = (-3_600_000, 3_600_000)
    #: Per ms: one node freezes for ``pause_ms`` (takes no input at all); with
    #: probability ``pause_clock_stops`` its monotonic clock stands still meanwhile
    #: (suspend), else it runs on and the node sees a leap when it resumes.
    pause: float = 0.0005
    pause_ms: tuple[int, int] = (20, 2000)
    pause_clock_stops: float = 0.3

    def calm(self) -> Faults:
        """The same network and disks with every fault switched off (drift stays:
        it is the hardware, not an event)."""
        return replace(self, drop=0, duplicate=0, inproc_drop=0, crash=0, partition=0,
                       write=0, read=0, clock_jump=0, wall_step=0, pause=0)


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
        f, rng = sim.faults, sim.rng
        # Machines booted at different times: monotonic clocks share no origin.
        mono_base = rng.randint(0, 10**9)
        self.clock = NodeClock(sim.now, mono_base, 1 + rng.uniform(-f.drift, f.drift),
                               EPOCH_MS - mono_base + rng.randint(*f.wall_step_ms))
        self.start()

    def mono(self) -> int:
        """This node's monotonic clock, in ms: the only time its cores are given."""
        return self.clock.mono(self.sim.now)

    def wall(self) -> int:
        return self.clock.wall(self.sim.now)

    def start(self) -> None:
        sim = self.sim
        self.up = True
        self.incarnation += 1
        now = self.mono()
        self.election = ElectionCore(self.id, self.members, sim.heartbeat_ms,
                                     sim.election_timeout_ms, sim.rng.random, now)
        self.log = ReplicatedLog(self.id, self.members, self.disk.term, self.disk.voted_for,
                                 list(self.disk.entries), max_batch=16, max_inflight=4,
                                 retransmit_ms=4 * sim.heartbeat_ms)
        self.store = StoreCore(Tree())
        #: Readies in the order the core produced them; the head may be fsyncing.
        self.pending: deque[Ready] = deque()
        self.fsyncing = False
        # The election actor starts knowing what the log knows, as the runtime does.
        sim.handle_election(self, self.election.on_role(self.log.role_changed(), now))

    def crash(self) -> None:
        self.up = False
        self.incarnation += 1  # fsyncs and messages of the old incarnation are void
        self.sim.resume(self)  # a paused process can be killed too; the machine runs on


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
        #: Paused nodes: node id -> the time it resumes.
        self.paused: dict[int, int] = {}
        self.pauses = 0
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
        queue, paused = self._queue, self.paused
        while queue and queue[0][0] <= until_ms:
            when, _, kind, payload = heapq.heappop(queue)
            self.now = when
            if paused and kind in _NODE_EVENTS:
                resume_at = paused.get(payload if kind == "tick" else payload[0])
                if resume_at is not None and when <= resume_at:
                    # The node is frozen: this waits for it, behind the "resume" event
                    # (an earlier seq) and in the order it would have been taken.
                    self._seq += 1
                    heapq.heappush(queue, (resume_at, self._seq, kind, payload))
                    continue
            getattr(self, f"_on_{kind}")(payload)
            self.checker.check()
        self.now = until_ms

    def resume(self, node: SimNode) -> None:
        """End ``node``'s pause now, if it is paused. Ended early (a crash, the final
        heal), what it missed is brought forward to now, still in order — so it is
        neither overtaken by later messages nor, if the node is down, delivered to
        the next incarnation: a dead process's socket buffers die with it."""
        resume_at = self.paused.pop(node.id, None)
        if resume_at is None:
            return
        node.clock.thaw(self.now)
        if resume_at <= self.now:
            return
        missed, rest = [], []
        for event in self._queue:
            when, _, kind, payload = event
            mine = when == resume_at and kind in _NODE_EVENTS and \
                (payload if kind == "tick" else payload[0]) == node.id
            (missed if mine else rest).append(event)
        for _, _, kind, payload in sorted(missed):
            self._seq += 1
            rest.append((self.now, self._seq, kind, payload))
        heapq.heapify(rest)
        self._queue[:] = rest  # in place: run() holds a reference

    # --------------------------------------------------------------- events
    def _on_tick(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if node.up:
            now = node.mono()
            self.handle_election(node, node.election.tick(now))
            self.handle_ready(node, node.log.tick(now))
        self._schedule(self.tick_ms, "tick", node_id)

    def _on_deliver(self, payload: tuple) -> None:
        dst, incarnation, actor, message = payload
        node = self.nodes[dst]
        if not node.up or (incarnation is not None and incarnation != node.incarnation):
            return
        now = node.mono()
        if actor == "election":
            if isinstance(message, RoleChanged):
                self.handle_election(node, node.election.on_role(message, now))
            else:
                self.handle_election(node, node.election.on_peer(message, now))
        elif isinstance(message, Campaign):
            self.handle_ready(node, node.log.campaign(message, now))
        elif isinstance(message, LeaderSeen):
            self.handle_ready(node, node.log.leader_seen(message, now))
        elif isinstance(message, StepDown):
            self.handle_ready(node, node.log.step_down(message, now))
        else:
            self.handle_ready(node, node.log.on_message(message, now))

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
            self.handle_ready(node, node.log.persisted(last.index, last.term, node.mono()))
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
            self._clock_chaos()
        if rng.random() < f.write:
            self._client_write()
        if rng.random() < f.read:
            self._client_read()
        self._schedule(1, "chaos", None)

    def _clock_chaos(self) -> None:
        f, rng = self.faults, self.rng
        if rng.random() < f.clock_jump:
            node = self.nodes[rng.choice(self.members)]
            node.clock.jump(self.now, rng.randint(*f.clock_jump_ms))
        if rng.random() < f.wall_step:
            self.nodes[rng.choice(self.members)].clock.step_wall(rng.randint(*f.wall_step_ms))
        if rng.random() < f.pause:
            node = self.nodes[rng.choice(self.members)]
            duration = rng.randint(*f.pause_ms)
            clock_stops = rng.random() < f.pause_clock_stops
            self.pause(node, duration, clock_stops)

    def pause(self, node: SimNode, duration: int, clock_stops: bool) -> None:
        """Freeze ``node`` for ``duration`` ms (if it is up and not already frozen)."""
        if node.up and node.id not in self.paused:
            resume_at = self.now + duration
            self.paused[node.id] = resume_at
            self.pauses += 1
            if clock_stops:
                node.clock.freeze(self.now)
            self._schedule(duration, "resume", (node.id, resume_at))

    def _on_resume(self, payload: tuple[int, int]) -> None:
        node_id, resume_at = payload
        if self.paused.get(node_id) == resume_at:  # not ended early by a crash
            self.resume(self.nodes[node_id])

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
        leader = node.log.leader if node.up and node.id not in self.paused else 0
        if leader and self.nodes[leader].up:
            node = self.nodes[leader]  # the client library follows NOT_LEADER hints
        if not node.up or node.id in self.paused:
            return  # down or frozen: the client times out
        ident = f"client-{self._client_seq}".encode()
        txn = ["create", path, path.encode(), 0]
        self.handle_ready(node, node.log.propose([[ident, self._client_seq, txn, None]],
                                                 node.mono(), node.wall()))

    def _client_read(self) -> None:
        node = self.nodes[self.rng.choice(self.members)]
        if node.up and node.id not in self.paused and self.acked:
            path = self.rng.choice(sorted(self.acked))
            node.store.read([[b"reader", 0, "exists", [path]]], node.mono())

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
        if ready.committed:
            self.checker.committed(node, ready.committed)
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
        """Stop the chaos, heal every partition, resume and restart every node, let it
        converge. (Clocks keep their drift, offsets and past jumps.)"""
        self.partitioned.clear()
        for node in self.nodes.values():
            self.resume(node)
            if not node.up:
                node.start()
        self.faults = self.faults.calm()
        self.run(self.now + settle_ms, chaos=False)

    def describe(self) -> str:
        """Each node's log and election views, one line each (for failure reports)."""
        lines = []
        for node in self.nodes.values():
            log, el = node.log, node.election
            lines.append(
                f"  node {node.id}{'' if node.up else ' (down)'}: log {log.role} term "
                f"{log.term} leader {log.leader} last ({log.last_index}, {log.last_term}) "
                f"commit {log.commit_index} | election {el.role} term {el.term} leader "
                f"{el.leader} sees last ({el.last_index}, {el.last_term}) | mono "
                f"{node.mono()} x{node.clock.rate:.3f}, {node.clock.jumps} jumps")
        return "\n".join(lines)

    def clock_stats(self) -> dict[str, int]:
        clocks = [node.clock for node in self.nodes.values()]
        return {
            "clock_jumps": sum(c.jumps for c in clocks),
            "clock_jumped_ms": sum(c.jumped_ms for c in clocks),
            "wall_steps": sum(c.wall_steps for c in clocks),
            "pauses": self.pauses,
        }
