"""A deterministic simulation of an ensemble, running the code the nodes run.

Each simulated node runs the shipped pieces, wired the way ``zkactors/runtime``
wires them: the :class:`~zkactors.core.election.ElectionCore`, the
:class:`~zkactors.engine.replica.Replica` driver over a
:class:`~zkactors.core.replog.ReplicatedLog` (the very driver the log actor runs),
a :class:`~zkactors.core.store.StoreCore` over a :class:`~zkactors.core.tree.Tree`,
and a :class:`~zkactors.core.gateway.GatewayCore` that routes the clients'
requests. Only the I/O is simulated:

* **Disks** are :class:`~zkactors.engine.memory.MemoryDisk`: the WAL's records
  and snapshot files in their real formats. An fsync takes a random time during
  which the node's log takes no input (its thread is blocked in ``fdatasync``)
  and nothing that depends on it leaves the node; a crash loses whatever was not
  yet durable. A restart recovers from the disk as ``zkactors/runtime/node.py``
  does (:func:`~zkactors.engine.state.recover`).
* **The network** between nodes delays, reorders, duplicates and drops messages;
  partitions cut pairs of nodes apart.
* **The inproc hops** inside a node are modelled too: election <-> log may be
  delayed, reordered, duplicated or dropped (their cores must cope); the pipes
  gateway -> log, gateway -> store, log -> store, log -> gateway and
  store -> gateway are FIFO each, but independent of one another, as ZeroMQ's are
  — so the store may see a read before the commits the gateway heard of.
* **Clocks**: no core ever sees the simulator's global ``now``. Each node reads
  its own :class:`~zkactors.sim.clock.NodeClock`: a monotonic clock that drifts
  and jumps forward, and a wall clock that NTP steps back and forth. A node can
  also be *paused* (a GC stall, a VM descheduled or suspended): it takes no
  input until it resumes, and its monotonic clock either ran on or stood still.

Faults include crashes of one node and of the whole ensemble at once (each
node restarting from its disk), partitions, and pauses.

Clients: a few writers each write one request at a time through a node's
gateway, tagged (client id, seq) for at-most-once application
(``zkactors.core.dedup``), and retry a write whose outcome is unknown
(NOT_LEADER, CONNECTION_LOSS, no answer in time) at another node with the same
seq. Pipelined clients (:mod:`zkactors.sim.pipelined`) keep a window of writes
and reads in flight, retrying as the client library does — or, some of them,
resending in any order — and must see their writes take effect in the order
sent and their reads answered from a state at least as new as they have seen.
Others send ``sync`` + ``get`` at any node and check that the get sees every
write acknowledged before the sync was sent; plain reads go to any node, and no
node may answer one from a state older than what was committed before it
(re)started. Clients with sessions (:mod:`zkactors.sim.sessions`) contend for
one lock with ephemeral nodes, ping, pause and lose their sessions; the nodes run
the sessions' wiring as the runtime does (gateway reports, touches carried to the
leader, the leader's expiry tracker proposing expiries through the log), and
:mod:`zkactors.sim.session_checks` checks it.

Everything random comes from one ``random.Random(seed)``, so a seed replays
exactly. :mod:`zkactors.sim.invariants` is checked after every event.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from zkactors.core.dedup import FORGOTTEN
from zkactors.core.election import ElectionCore, Send, ToLog
from zkactors.core.gateway import GatewayCore
from zkactors.core.messages import (
    LEADER,
    PreVote,
    RequestVote,
    RoleChanged,
    SessionTouch,
)
from zkactors.core.replog import Committed, Entry, Ready, ReplicatedLog
from zkactors.core.sessions import (
    TOUCH_EVERY_MS,
    TXN_SESSION_EXPIRE,
    ExpiryTracker,
    touch_route,
)
from zkactors.core.store import StoreCore
from zkactors.core.tree import Tree
from zkactors.engine.memory import MemoryDisk
from zkactors.engine.records import decode_record
from zkactors.engine.replica import Compact, Propose, Replica
from zkactors.engine.state import load_snapshot, recover, save_snapshot
from zkactors.errors import Code
from zkactors.protocol import OP_HELLO, OP_PING, PROTOCOL_VERSION, make_zxid, pack
from zkactors.sim.clock import EPOCH_MS, NodeClock
from zkactors.sim.faults import Faults
from zkactors.sim.invariants import Checker, LivenessFailure
from zkactors.sim.pipelined import PipelinedClient
from zkactors.sim.session_checks import SessionChecker
from zkactors.sim.sessions import Hold, LockClient, Resource
from zkactors.sim.trace import Tracer
from zkactors.sim.watchers import Watchers, new_watch_core

#: Events addressed to one node, and where their payload names it: a paused node
#: takes none of them until it resumes.
_NODE_EVENTS = frozenset(("tick", "deliver", "drain", "fsynced", "client_frame",
                          "lock_frame", "to_watch"))

#: Answers after which a client does not know whether its write took effect.
RETRY_CODES = frozenset((int(Code.NOT_LEADER), int(Code.CONNECTION_LOSS), int(Code.NOT_READY)))
#: The log actor's batch: inputs drained from its inbox and carried out together.
MAX_BATCH = 64
#: A healthy majority must have a working leader after this long (see
#: Simulation._check_progress): some seven election timeouts.
PROGRESS_MS = 1000
#: How many peer messages are queued for a node that is down (a high-water mark).
QUEUED_FOR_A_DOWN_PEER = 1000


def durable_entry(disk: MemoryDisk, index: int) -> Entry | None:
    """The entry at ``index`` in ``disk``'s durable log, if it holds one."""
    record = disk.log.durable_record(index)
    return None if record is None else decode_record(index, record)


@dataclass
class SimClient:
    """A client writing one request at a time, each with the next seq."""

    id: int
    seq: int = 0
    #: The write in flight: seq, txn, rid of its latest attempt, retry time, hint.
    op: dict | None = None


class _Counter:
    """The replica's logger: counts what it reports, by event name (some under the
    name the run's statistics have always used)."""

    NAMES: ClassVar[dict[str, str]] = {"snapshot_installed": "snapshots_installed",
                                       "log_compacted": "compactions"}

    def __init__(self, stats: dict[str, int]) -> None:
        self.stats = stats

    def _count(self, event: str, **_: Any) -> None:
        event = self.NAMES.get(event, event)
        self.stats[event] = self.stats.get(event, 0) + 1

    info = error = warning = _count


class SimOutputs:
    """Where one node's replica sends its effects: the simulated network and the
    node's other actors. Whatever the replica emits while an fsync it asked for
    is in flight waits for that fsync, as it does behind the log actor's
    blocking ``fdatasync``."""

    def __init__(self, sim: Simulation, node: SimNode) -> None:
        self.sim = sim
        self.node = node

    def _out(self, effect: tuple) -> None:
        node = self.node
        if node.doomed:
            return
        if node.disk.sync_pending:
            node.held.append(effect)
        else:
            self.sim._emit(node, effect)

    def send(self, peer: int, message: Any) -> None:
        self._out(("peer", peer, message))

    def commit(self, committed: list[Committed], commit_index: int, term: int) -> None:
        self._out(("store", ("commit", committed, commit_index, term)))

    def restore(self, index: int, term: int) -> None:
        self._out(("store", ("restore", index, term)))

    def refuse(self, failed: list[tuple[bytes, int, int, str]]) -> None:
        self._out(("gateway", ("replies", [[i, r, c, t, True] for i, r, c, t in failed])))

    def tell_election(self, role: RoleChanged) -> None:
        self._out(("election", role))

    def tell_gateway(self, role: RoleChanged) -> None:
        leading = role.role == LEADER
        if leading != self.node.leading:
            # The store's expiry tracker runs while this node leads (as the log
            # actor's outputs tell it in zkactors/runtime/log.py).
            self.node.leading = leading
            self._out(("store", ("leading", leading)))
        self._out(("gateway", ("role", role)))


class SimNode:
    def __init__(self, node_id: int, members: list[int], sim: Simulation) -> None:
        self.id = node_id
        self.members = members
        self.sim = sim
        self.disk = MemoryDisk()
        #: Peer messages that reached it while it was down, delivered once it is
        #: back (``faults.deliver_after_restart``).
        self.queued_at_peers: list[tuple] = []
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
        """Boot from disk as zkactors/runtime/node.py does: the newest snapshot into
        the store, then the log's entries after it."""
        sim = self.sim
        self.up = True
        self.incarnation += 1
        now = self.mono()
        disk = self.disk
        self.store = StoreCore(Tree())
        recovered = recover(disk.log, disk.terms, disk.snapshots, self.store)
        if recovered.commit > recovered.base[0]:
            hinted = recovered.entries[:recovered.commit - recovered.base[0]]
            sim.checker.applied_at_start(self, hinted)
            sim.sessions.applied(self, [Committed(entry, None, 0) for entry in hinted])
        if recovered.commit:
            sim.checker.state_at(self, "restarted from its snapshot and its commit hint")
        # The watch actor's history starts at the snapshot and refills from the log
        # applied after it, as in zkactors/runtime/node.py.
        self.watch = new_watch_core(make_zxid(recovered.base[1], recovered.base[0]))
        sim.watchers.started(self, recovered.events, self.store.applied_zxid)
        #: Everything committed anywhere before this start: no read it answers may
        #: come from an older state.
        self.read_floor = max(sim.checker.commit_terms, default=0)
        self.election = ElectionCore(self.id, self.members, sim.heartbeat_ms,
                                     sim.election_timeout_ms, sim.rng.random, now)
        #: The log core (the replica's): what the checker and the clients look at.
        self.log = ReplicatedLog(self.id, self.members, recovered.term, recovered.voted_for,
                                 recovered.entries, max_batch=sim.faults.log_batch,
                                 max_inflight=sim.faults.log_inflight,
                                 retransmit_ms=4 * sim.heartbeat_ms, snapshot=recovered.base,
                                 commit=recovered.commit, read_id_base=self.incarnation * 10**6)
        self.replica = Replica(self.log, disk.log, disk.terms, disk.snapshots,
                               SimOutputs(sim, self),
                               log_retain_entries=sim.rng.randint(*sim.faults.retain_entries),
                               chunk_bytes=sim.chunk_bytes,
                               observe=partial(sim._observe, self), logger=sim.counter)
        self.gateway = GatewayCore(self.id, max_data_bytes=1 << 20, max_path_bytes=4096,
                                   max_inflight=1024, max_clients=4096,
                                   session_timeout_ms=1 << 40, min_session_timeout_ms=100)
        #: Sessions: the store's expiry tracker (while this node leads), whether
        #: the log told it so, and when the gateway next reports whom it heard.
        self.expiry = ExpiryTracker(stall_ms=sim.expiry_stall_ms)
        self.leading = False
        self.touch_due = 0
        #: The log actor's inbox, and its effects waiting for an fsync.
        self.inbox: deque = deque()
        self.draining = False
        self.held: list[tuple] = []
        #: Whether the election actor last told the gateway a live leader is known.
        self.health = False
        #: When the node was last restarted, resumed or had its clock jump.
        self.disturbed_at = sim.now
        #: Dies as soon as its log actor's current step ends (see crash_on_commit).
        self.doomed = False
        # The election actor starts knowing what the log knows, as the runtime does.
        if sim.trace:
            sim.trace.started(sim.now, self, self.election.timer_due - now)
        sim.handle_election(self, self.election.on_role(self.log.role_changed(), now))
        self.replica.start(now)
        sim._after_log_step(self)

    def crash(self) -> None:
        if self.sim.trace:
            self.sim.trace.crashed(self.sim.now, self.id)
        self.up = False
        self.incarnation += 1  # fsyncs and messages of the old incarnation are void
        self.disk.crash()
        self.held = []
        self.inbox.clear()
        self.sim.resume(self)  # a paused process can be killed too; the machine runs on


class Simulation:
    def __init__(self, seed: int, nodes: int = 3, faults: Faults | None = None,
                 heartbeat_ms: int = 20, election_timeout_ms: int = 150,
                 tick_ms: int = 5, strict_replies: bool = True,
                 trace: Tracer | None = None) -> None:
        self.seed = seed
        #: Told what happens, as it happens (``python -m zkactors.sim --trace``).
        self.trace = trace
        #: Fail on a "lost reply" (a leader committing a write its client proposed
        #: there without that client, so it is never answered) rather than only
        #: count it. (It found a replog bug: a follower's sync holding the old
        #: leader's read index survived its becoming leader; fixed.)
        self.strict_replies = strict_replies
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
        #: One-way cuts: (from, to) pairs whose messages are lost, and the nodes cut
        #: off (all of a victim's inbound or outbound links go at once).
        self.cut: set[tuple[int, int]] = set()
        self.cut_off: list[int] = []
        #: The healthy majority (up, running, cut off from nothing) and since when
        #: it has been healthy: it must have a working leader within PROGRESS_MS.
        self._healthy: frozenset[int] = frozenset()
        self._healthy_since = 0
        self._last_working = 0  # the last time it had one
        #: Paused nodes: node id -> the time it resumes.
        self.paused: dict[int, int] = {}
        self.pauses = 0
        self.checker = Checker(self)
        #: The nodes' watch actors, the watchers following them, and their checks.
        self.watchers = Watchers(self)
        self.acked: dict[str, int] = {}  # created path -> zxid at which it was acknowledged
        self._acked_paths: list[str] = []  # the same, in order of acknowledgement
        #: (client, seq) -> the first answer [code, result] and when it came.
        self.answers: dict[tuple[int, int], tuple[list, int]] = {}
        #: (client, seq) of acknowledged (OK) writes -> (ack time, path written).
        self.acked_writes: dict[tuple[int, int], tuple[int, str]] = {}
        #: Per path: the highest zxid a read must see, from writes acknowledged so far.
        self.read_floor: dict[str, int] = {}
        self._rid = 0
        #: (node, incarnation, index, term) of entries clients proposed there -> rid.
        self.proposed: dict[tuple[int, int, int, int], int] = {}
        #: Requests waiting for an answer: rid -> ("write", client, seq) or
        #: ("sync"|"get", pair), pair = {path, floor, proposed, node, sync_ok}, or
        #: ("read",).
        self._inflight: dict[int, tuple] = {}
        self.clients = [SimClient(i) for i in range(1, 9)]
        f = self.faults
        self.pipelined = [
            PipelinedClient(self, 101 + i, self.rng.randint(*f.window),
                            in_order=self.rng.random() >= f.careless,
                            timeout_ms=f.client_timeout_ms)
            for i in range(f.pipelined)]
        #: Clients give up retrying from then on (set near the end of the settling).
        self.clients_stop_at = 1 << 62
        self.chunk_bytes = self.rng.randint(*self.faults.chunk_bytes)
        #: Sessions: the leader's expiry check runs every tick; a longer gap is a
        #: stall of its own, forgiven (core.sessions.ExpiryTracker).
        self.expiry_stall_ms = 4 * tick_ms
        self.sessions = SessionChecker(self)
        self.resource = Resource()
        #: When the last message on each FIFO pipe (node, from, to) is delivered.
        self._pipes: dict[tuple[int, str, str], int] = {}
        self.stats = dict.fromkeys((
            "snapshots_taken", "snapshots_installed", "snapshot_chunks", "snapshot_missing",
            "compactions",
            "syncs_ok", "syncs_failed", "reads_checked", "reads_refused", "retries",
            "unknown_outcome_retries", "timeouts",
            "duplicates_suppressed", "forgotten", "lost_replies", "crashes_of_all",
            "out_of_order_refused", "sessions_opened", "sessions_lost", "client_pauses",
            "lock_acquisitions", "stale_holders", "fenced"), 0)
        self.counter = _Counter(self.stats)
        self.nodes: dict[int, SimNode] = {}
        for node_id in self.members:
            self.nodes[node_id] = SimNode(node_id, self.members, self)
        self.lock_clients = [LockClient(self, i, self.rng.randint(*f.session_timeout_ms))
                             for i in range(f.lock_clients)]
        #: The watchers' own random stream (their network delays).
        self.watch_rng = random.Random(f"watch-{seed}")
        for i in range(f.watchers):
            self.watchers.add(f"w{i + 1}", f.watch_paths[i % len(f.watch_paths)],
                              self.members[i % nodes])
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
        node.disturbed_at = self.now
        if self.trace:
            self.trace.resumed(self.now, node.id)
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

    # ------------------------------------------------------ the log actor
    def _to_log(self, node: SimNode, message: Any) -> None:
        """A message lands in the log actor's inbox; it drains it when free."""
        node.inbox.append(message)
        if not node.disk.sync_pending:
            self._drain_soon(node)

    def _drain_soon(self, node: SimNode) -> None:
        if not node.draining:
            node.draining = True
            self._schedule(0, "drain", (node.id, node.incarnation))

    def _on_drain(self, payload: tuple) -> None:
        node_id, incarnation = payload
        node = self.nodes[node_id]
        if not node.up or incarnation != node.incarnation:
            return
        node.draining = False
        if node.disk.sync_pending or not node.inbox:
            return  # (the fsync's completion drains again)
        now, wall = node.mono(), node.wall()
        readies = []
        for _ in range(min(MAX_BATCH, len(node.inbox))):
            message = node.inbox.popleft()
            ready = node.replica.step(message, now, wall)
            if self.trace and isinstance(message, RequestVote):
                # Asked right after the step: the grant leaves the answer unchanged.
                self.trace.vote_decided(node, message, node.log.vote_refusal(message))
            if ready is None:
                continue
            if isinstance(message, Propose) and ready.entries:
                # A leader took these writes: it owes their clients an answer.
                writes = [request for request in message.requests if request[2] is not None]
                for entry, request in zip(ready.entries, writes, strict=False):
                    self.proposed[(node.id, node.incarnation, entry.index, entry.term)] = \
                        request[1]
            readies.append(ready)
        node.replica.carry_out(readies, now)
        self._after_log_step(node)

    def _after_log_step(self, node: SimNode) -> None:
        """After the replica carried something out: wait for the fsync it asked for,
        or go on draining."""
        if node.doomed:
            self._crash(node)
            return
        if node.disk.sync_pending:
            took = self.rng.randint(*self.faults.fsync_ms)
            self._schedule(took, "fsynced", (node.id, node.incarnation))
            if self.chaos and self.rng.random() < self.faults.crash_in_fsync:
                self._schedule(self.rng.randint(0, took - 1), "kill",
                               (node.id, node.incarnation))
        elif node.inbox:
            self._drain_soon(node)

    def _on_fsynced(self, payload: tuple) -> None:
        node_id, incarnation = payload
        node = self.nodes[node_id]
        if not node.up or incarnation != node.incarnation:
            return  # the crash came first: that buffer is gone
        node.disk.complete_sync()
        held, node.held = node.held, []
        for effect in held:
            if node.doomed:
                break
            self._emit(node, effect)
        self._after_log_step(node)

    def _observe(self, node: SimNode, ready: Ready) -> None:
        """Every Ready the replica carries out, before it does."""
        if self.trace:
            self.trace.log_ready(self.now, node, ready)
        if ready.role is not None and ready.role.role == LEADER:
            self.checker.became_leader(node, ready.role.term)
            self.sessions.became_leader(node.id, ready.role.term)
            if self.chaos and self.rng.random() < self.faults.crash_young_leader:
                self._schedule(self.rng.randint(*self.faults.young_ms), "kill",
                               (node.id, node.incarnation))
            if self.chaos and self.rng.random() < self.faults.isolate_new_leader:
                pairs = [frozenset((node.id, peer)) for peer in self.members if peer != node.id]
                for pair in pairs:
                    self.partitioned.add(pair)
                    self.sessions.link_cut(*pair)
                    if self.trace:
                        self.trace.partitioned(self.now, pair)
                    self._schedule(self.rng.randint(*self.faults.heal_after_ms), "heal", pair)
        if ready.committed:
            self.checker.committed(node, ready.committed)
            self._answers_owed(node, ready)
            if self.chaos and node.log.role == LEADER and \
                    self.rng.random() < self.faults.crash_on_commit:
                node.doomed = True  # nothing more leaves it; it dies right after
        self.stats["snapshot_chunks"] += len(ready.snapshot_sends)

    def _emit(self, node: SimNode, effect: tuple) -> None:
        """An effect of the log leaves the node's log actor."""
        if effect[0] == "peer":
            self._send_peer(node.id, effect[1], "log", effect[2])
        elif effect[0] == "election":
            self._send_inproc(node, "election", effect[1])
        else:
            self._send_pipe(node, "log", effect[0], effect[1])

    # ------------------------------------------------------ the store actor
    def _on_store(self, node: SimNode, message: tuple) -> None:
        kind = message[0]
        store = node.store
        if kind == "commit":
            _, committed, commit_index, term = message
            duplicates = store.duplicate_writes
            replies, events = store.apply(committed, commit_index, term, node.mono())
            self.stats["duplicates_suppressed"] += store.duplicate_writes - duplicates
            self.checker.applied(node, committed)
            self.sessions.applied(node, committed)
            if self.trace:
                self.trace.applied(self.now, node, committed)
            self.watchers.applied(node, events, store.applied_zxid)
            if store.applied_index in self.checker.digests:
                self.checker.state_at(node, "applied")
        elif kind == "restore":
            load_snapshot(store, node.disk.snapshots, message[1], message[2])
            node.watch.restart_from(store.applied_zxid)
            if self.trace:
                self.trace.restored(self.now, node.id, message[1], message[2])
            self.checker.state_at(node, "installed the leader's snapshot")
            replies = []
        elif kind == "touch":
            node.expiry.touch(message[1], node.mono())
            replies = []
        elif kind == "leading":
            if message[1]:
                node.expiry.lead(store.sessions, node.mono())
            else:
                node.expiry.follow()
            replies = []
        else:  # "read"
            replies = store.read(message[1], node.mono())
            if any(reply[2] != Code.NOT_READY for reply in replies):
                self.checker.read_not_older(node, store.applied_index, node.read_floor)
        # As the store actor does after each batch: opened sessions start their
        # timeout at the leader's tracker, and the gateway hears of ended ones.
        for session_id in store.take_opened():
            node.expiry.opened(session_id, node.mono())
        ended = store.take_ended()
        if ended:
            self._send_pipe(node, "store", "gateway", ("ended", ended))
        if replies:
            self._send_pipe(node, "store", "gateway", ("replies", replies))

    def _store_tick(self, node: SimNode, now: int) -> None:
        """The store actor's tick: the leader turns silence into expiry proposals,
        a write of the node's own through the log (no client waits for it)."""
        if node.expiry.leading:
            due = node.expiry.expired(node.store.sessions, now)
            if due:
                self.sessions.expiry_proposed(node, due)
                self._send_pipe(node, "store", "log",
                                Propose([[b"", 0, [TXN_SESSION_EXPIRE, due], None]]))
        expired = node.store.tick(now)
        if expired:
            self._send_pipe(node, "store", "gateway", ("replies", expired))
        self.watchers.tick(node, now)  # (the watch actor's own tick)

    # ------------------------------------------------------------ watchers
    def schedule_watch(self, delay: int, kind: str, payload: tuple) -> None:
        """A message between a watcher and a node's watch actor (zkactors.sim.watchers)."""
        self._schedule(delay, kind, payload)

    def _on_to_watch(self, payload: tuple) -> None:
        node_id, incarnation, watcher, conn, message = payload
        node = self.nodes[node_id]
        if node.up and node.incarnation == incarnation:
            self.watchers.on_to_watch(node, watcher, conn, message)

    def _on_to_watcher(self, payload: tuple) -> None:
        watcher, conn, kind, body = payload
        watcher.from_node(conn, kind, body)

    def _relay_touch(self, node: SimNode, ids: list[int]) -> None:
        """The log actor carries sessions heard from to the leader's store. Not
        dropped at random as Raft's messages are: a touch has no retry of its own,
        and between two live processes on a working network TCP loses nothing
        (partitions and cuts still stop it)."""
        route = touch_route(node.log.role == LEADER, node.log.leader, node.id)
        if route == "store":
            self._send_pipe(node, "log", "store", ("touch", ids))
        elif route is not None and frozenset((node.id, route)) not in self.partitioned \
                and (node.id, route) not in self.cut:
            self._schedule(self.rng.randint(1, self.faults.max_delay_ms), "deliver",
                           (route, None, "log", SessionTouch(node.id, ids)))

    def _take_snapshot(self, node: SimNode) -> None:
        """``node``'s store snapshots what it applied, then tells the log."""
        if not node.up or node.id in self.paused:
            return
        store = node.store
        if store.applied_index <= max(node.disk.snapshots.newest_index, node.log.base_index):
            return
        try:
            meta = save_snapshot(store, node.disk.snapshots, self.members)
        except ValueError:
            return  # a newer one is there already (installed from the leader)
        self.stats["snapshots_taken"] += 1
        if self.trace:
            self.trace.snapshot_taken(self.now, node.id, meta.index)
        self.checker.state_at(node, "took a snapshot",
                              node.disk.snapshots.files[(meta.index, meta.term)])
        self._send_pipe(node, "store", "log", Compact(meta.index))

    # ------------------------------------------------------ the gateway actor
    def _on_gateway(self, node: SimNode, message: tuple) -> None:
        kind = message[0]
        gateway = node.gateway
        if kind == "role":
            role = message[1]
            gateway.on_role(role.role, role.term, role.leader, "", role.caught_up,
                            role.read_floor)
        elif kind == "health":
            gateway.serving_reads = message[1]
        elif kind == "ended":
            gateway.on_sessions_ended(message[1])
        else:  # "replies"
            replies = message[1]
            gateway.on_replies(replies)
            for reply in replies:
                self._on_reply(node, reply[0], reply[1], reply[2], reply[3],
                               reply[5] if len(reply) > 5 else 0)

    def _client_frame(self, node: SimNode, ident: bytes, client_id: int,
                      requests: list[list]) -> None:
        """A client's frame reaches ``node``'s gateway: hello, then ``requests``."""
        if self.trace:
            self.trace.client_asked(self.now, node.id, ident.decode(), requests)
        frame = pack([[0, OP_HELLO, PROTOCOL_VERSION, ident.decode(), client_id], *requests])
        writes: list = []
        reads: list = []
        replies: list = []
        node.gateway.on_frame(ident, frame, node.mono(), writes, reads, replies)
        if writes:
            self._send_pipe(node, "gateway", "log", Propose(writes))
        if reads:
            self._send_pipe(node, "gateway", "store", ("read", reads))
        for reply in replies:
            if reply[1] != 0:  # (not the hello's answer)
                self._on_reply(node, ident, reply[1], reply[2], reply[3], 0)

    def _pipelined_frame(self, client: PipelinedClient, node_id: int, conn: int,
                         requests: list[list]) -> None:
        """A pipelined client's frame, on its connection ``conn`` to ``node_id``."""
        for request in requests:
            self._inflight[request[0]] = ("pipe", client)
        at = self._pipe_time(("conn", client.id, conn), 1, self.faults.max_delay_ms)
        self._schedule(at - self.now, "client_frame",
                       (node_id, self.pipelined.index(client), conn, requests))

    def _on_client_frame(self, payload: tuple) -> None:
        node_id, index, conn, requests = payload
        node = self.nodes[node_id]
        if not node.up:
            return  # its connection died with the process
        client = self.pipelined[index]
        self._client_frame(node, f"p{client.id}-{conn}".encode(), client.id, requests)

    def _on_client_reply(self, payload: tuple) -> None:
        index, *answer = payload
        self.pipelined[index].on_reply(*answer)

    # ------------------------------------------------- clients with sessions
    def next_rid(self) -> int:
        self._rid += 1
        return self._rid

    def lock_frame(self, client: LockClient, requests: list[list]) -> None:
        """A lock client's frame, over its connection to its node."""
        for request in requests:
            self._inflight[request[0]] = ("lock", client, request[1])
        at = self._pipe_time(("lconn", client.index, client.conn), 1,
                             self.faults.max_delay_ms)
        self._schedule(at - self.now, "lock_frame",
                       (client.node, client.index, client.conn, requests))

    def _on_lock_frame(self, payload: tuple) -> None:
        node_id, index, conn, requests = payload
        node = self.nodes[node_id]
        if not node.up:
            return  # its connection died with the process
        client = self.lock_clients[index]
        self._client_frame(node, f"l{index}-{conn}".encode(), client.session, requests)

    def _on_lock_reply(self, payload: tuple) -> None:
        index, *answer = payload
        client = self.lock_clients[index]
        if client.paused_until > self.now:  # it reads its socket when it resumes
            self._schedule(client.paused_until - self.now, "lock_reply", payload)
            return
        client.on_reply(*answer)

    def lock_acquired(self, hold: Hold) -> None:
        self.sessions.acquired(hold)
        f = self.faults
        if self.chaos and self.rng.random() < f.holder_pause:
            self.stats["client_pauses"] += 1
            self.lock_clients[hold.client].pause(self.rng.randint(*f.client_pause_ms),
                                                 self.rng.random() < f.client_clock_stops)

    def ephemeral_acked(self, client: LockClient, path: str, zxid: int) -> None:
        """``client`` was told it created ``path``, by a node that had applied
        ``zxid``."""
        self.sessions.ephemeral_acked(client.session, path, zxid)

    def ephemeral_released(self, client: LockClient, path: str | None) -> None:
        self.sessions.ephemeral_released(path)

    # --------------------------------------------------------------- events
    def _on_tick(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if node.up:
            now = node.mono()
            self.handle_election(node, node.election.tick(now))
            if not node.disk.sync_pending:  # (blocked in fsync: it ticks when done)
                node.replica.tick(now)
                self._after_log_step(node)
            self._store_tick(node, now)
            if now >= node.touch_due:
                # The gateway reports the sessions it heard from to its log actor.
                node.touch_due = now + TOUCH_EVERY_MS
                touched = node.gateway.take_touched()
                if touched:
                    self._send_pipe(node, "gateway", "log", ("touch", touched))
        self._schedule(self.tick_ms, "tick", node_id)

    def _on_deliver(self, payload: tuple) -> None:
        dst, incarnation, actor, message = payload
        node = self.nodes[dst]
        if not node.up and incarnation is None and self.faults.deliver_after_restart:
            if len(node.queued_at_peers) < QUEUED_FOR_A_DOWN_PEER:
                node.queued_at_peers.append(payload)
            return
        if not node.up or (incarnation is not None and incarnation != node.incarnation):
            return
        if actor == "election":
            now = node.mono()
            if isinstance(message, RoleChanged):
                self.handle_election(node, node.election.on_role(message, now))
            else:
                effects = node.election.on_peer(message, now)
                if self.trace and isinstance(message, PreVote):
                    self.trace.pre_vote_decided(
                        node, message, node.election.pre_vote_refusal(message, now))
                self.handle_election(node, effects)
        elif actor == "log":
            if isinstance(message, SessionTouch):
                self._relay_touch(node, message.ids)
            elif isinstance(message, tuple) and message[0] == "touch":
                self._relay_touch(node, message[1])
            else:
                self._to_log(node, message)
        elif actor == "store":
            self._on_store(node, message)
        else:
            self._on_gateway(node, message)

    def _on_chaos(self, _: Any) -> None:
        f, rng = self.faults, self.rng
        if self.chaos:
            if rng.random() < f.crash:
                victim = self.nodes[rng.choice(self.members)]
                if victim.up:
                    self._crash(victim)
            if f.crash_leader and rng.random() < f.crash_leader:
                for victim in self.nodes.values():
                    if victim.up and victim.log.role == LEADER:
                        self._crash(victim)
            if rng.random() < f.crash_all:
                self.stats["crashes_of_all"] += 1
                for victim in self.nodes.values():
                    if victim.up:
                        self._crash(victim)
            if rng.random() < f.partition:
                a, b = rng.sample(self.members, 2)
                self.partitioned.add(frozenset((a, b)))
                self.sessions.link_cut(a, b)
                if self.trace:
                    self.trace.partitioned(self.now, frozenset((a, b)))
                self._schedule(rng.randint(*f.heal_after_ms), "heal", frozenset((a, b)))
            if rng.random() < f.oneway:
                self._cut_one_way()
            self._clock_chaos()
        self._check_progress()
        if rng.random() < f.write:
            client = rng.choice(self.clients)
            if client.op is None:
                self._client_write(client)
        if self.now < self.clients_stop_at:
            for client in self.clients:
                if client.op is not None and client.op["retry_at"] <= self.now:
                    self._send_write(client)
        if self.now < self.clients_stop_at:
            for pipelined in self.pipelined:
                if rng.random() < f.pipelined_write and pipelined.busy() < 64:
                    pipelined.write()
                if rng.random() < f.pipelined_read:
                    pipelined.read()
                pipelined.step()
        for lock_client in self.lock_clients:
            lock_client.step()
        if self.chaos and self.lock_clients and rng.random() < f.client_pause:
            # The holder, mostly: a holder that stalls past its timeout is the case
            # the fencing token exists for.
            holders = [c for c in self.lock_clients if c.hold is not None]
            victim = holders[0] if holders and rng.random() < 0.7 else \
                rng.choice(self.lock_clients)
            victim.pause(rng.randint(*f.client_pause_ms), rng.random() < f.client_clock_stops)
        if rng.random() < f.read:
            self._client_read()
        if rng.random() < f.sync:
            self._client_sync()
        if rng.random() < f.snapshot:
            self._take_snapshot(self.nodes[rng.choice(self.members)])
        self._schedule(1, "chaos", None)

    def _clock_chaos(self) -> None:
        f, rng = self.faults, self.rng
        if rng.random() < f.clock_jump:
            node = self.nodes[rng.choice(self.members)]
            by_ms = rng.randint(*f.clock_jump_ms)
            node.clock.jump(self.now, by_ms)
            node.disturbed_at = self.now
            if self.trace:
                self.trace.clock_jumped(self.now, node.id, by_ms)
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
            if self.trace:
                self.trace.paused(self.now, node.id, duration, clock_stops)
            self._schedule(duration, "resume", (node.id, resume_at))

    def _on_resume(self, payload: tuple[int, int]) -> None:
        node_id, resume_at = payload
        if self.paused.get(node_id) == resume_at:  # not ended early by a crash
            self.resume(self.nodes[node_id])

    def _crash(self, node: SimNode) -> None:
        """``node``'s process dies; it restarts from its disk a while later."""
        node.crash()
        self._schedule(self.rng.randint(*self.faults.restart_after_ms), "restart", node.id)

    def _on_kill(self, payload: tuple[int, int]) -> None:
        node_id, incarnation = payload
        node = self.nodes[node_id]
        if node.up and node.incarnation == incarnation and self.chaos:
            self._crash(node)

    def _on_restart(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if not node.up:
            node.start()
            self.deliver_queued(node)

    def deliver_queued(self, node: SimNode) -> None:
        """What its peers queued for ``node`` while it was down arrives now."""
        for payload in node.queued_at_peers:
            self._schedule(1, "deliver", payload)
        node.queued_at_peers = []

    def _on_heal(self, pair: frozenset[int]) -> None:
        if self.trace and pair in self.partitioned:
            self.trace.partitioned(self.now, pair, healed=True)
        self.partitioned.discard(pair)

    def _cut_one_way(self) -> None:
        """Every message into (or out of) one node is lost — its leader's, mostly:
        a leader that still reaches its followers but hears nothing back must
        step down (check-quorum), or its followers, fed its heartbeats, never
        elect another."""
        rng = self.rng
        leaders = [n.id for n in self.nodes.values() if n.up and n.log.role == LEADER]
        victim = leaders[0] if leaders and rng.random() < 0.7 else rng.choice(self.members)
        inbound = rng.random() < self.faults.oneway_inbound
        pairs = [(peer, victim) if inbound else (victim, peer)
                 for peer in self.members if peer != victim]
        self.cut.update(pairs)
        for pair in pairs:
            self.sessions.link_cut(*pair)
        if self.trace:
            self.trace.cut_one_way(self.now, victim, inbound)
        self.cut_off.append(victim)
        self._schedule(rng.randint(*self.faults.oneway_ms), "mend", (victim, tuple(pairs)))

    def _on_mend(self, payload: tuple) -> None:
        victim, pairs = payload
        if victim in self.cut_off:  # (not healed meanwhile by heal_and_settle)
            self.cut_off.remove(victim)
        if victim not in self.cut_off:  # (another cut of it may still stand)
            self.cut.difference_update(pairs)
            if self.trace:
                self.trace.cut_one_way(self.now, victim, pairs[0][1] == victim, mended=True)

    def _check_progress(self) -> None:
        """Liveness under faults: a majority of nodes that are up, running, and cut
        off from nothing is never, for PROGRESS_MS on end without a disturbance,
        without a working leader: one leader, at the newest term among them, whose
        term's first entry has committed — and no other (a leader that saw a newer
        term steps down)."""
        troubled = {n for pair in self.partitioned for n in pair} | set(self.cut_off)
        healthy = frozenset(n.id for n in self.nodes.values()
                            if n.up and n.id not in self.paused and n.id not in troubled)
        disturbed = max((self.nodes[n].disturbed_at for n in healthy), default=0)
        if healthy != self._healthy:
            self._healthy, self._healthy_since = healthy, self.now
        if len(healthy) < len(self.members) // 2 + 1:
            return
        logs = [self.nodes[n].log for n in healthy]
        top = max(log.term for log in logs)
        leaders = [log for log in logs if log.role == LEADER]
        if len(leaders) == 1 and leaders[0].term == top and \
                leaders[0].commit_index >= leaders[0].term_start:
            self._last_working = self.now
            return
        since = max(self._healthy_since, disturbed, self._last_working)
        if self.now - since >= PROGRESS_MS:
            raise LivenessFailure(
                f"seed {self.seed} at t={self.now} ms: nodes {sorted(healthy)}, a healthy "
                f"majority, have had no working leader (one, at term {top}, its first "
                f"entry committed) since t={since}: {len(leaders)} leaders now\n"
                f"{self.describe()}")

    def _answers_owed(self, node: SimNode, ready: Ready) -> None:
        """A leader hands each committed entry a client proposed there to the store
        *with* that client, so it is answered. (If it lost its leadership first, it
        failed the request instead: the client was told.)"""
        proposed = self.proposed
        log = node.log
        for item in ready.committed:
            entry = item.entry
            if entry is None:
                continue
            rid = proposed.pop((node.id, node.incarnation, entry.index, entry.term), None)
            if rid is not None and item.ident is None and log.role == LEADER \
                    and log.term == entry.term:
                self.stats["lost_replies"] += 1
                if not self.strict_replies:
                    continue  # counted only, on request
                self.checker.fail(f"lost reply: node {node.id} committed entry "
                                  f"{entry.index} (term {entry.term}) that a client "
                                  f"proposed there (rid {rid}) without that client: it is "
                                  f"never answered")

    # ------------------------------------------------------------- clients
    def _pick_node(self, hint: int = 0) -> SimNode | None:
        """Where a client sends a request: the hinted leader, else a random node's
        idea of the leader (the client library follows NOT_LEADER hints), else that
        node. None if it is down or frozen (the client times out)."""
        if hint and (not self.nodes[hint].up or hint in self.paused):
            hint = 0
        node = self.nodes[hint] if hint else self.nodes[self.rng.choice(self.members)]
        if not hint:
            leader = node.log.leader if node.up and node.id not in self.paused else 0
            if leader and self.nodes[leader].up:
                node = self.nodes[leader]
        if not node.up or node.id in self.paused:
            return None
        return node

    def _client_write(self, client: SimClient) -> None:
        client.seq += 1
        seq, rng = client.seq, self.rng
        data = f"{client.id}:{seq}".encode()
        kind = rng.random()
        if kind < 0.35:  # a sequential create: a duplicate would be a second node
            request = ["create", "/q/n-", data, 3]
        elif kind < 0.6:  # a create of its own path: a duplicate would fail
            request = ["create", f"/k{client.id}-{seq}", data, 0]
        elif kind < 0.7:
            request = ["create", f"/r{rng.randint(0, 3)}", data, 0]
        else:  # overwrite a shared key, for the reads to check
            request = ["set", f"/r{rng.randint(0, 3)}", data, -1]
        client.op = {"seq": seq, "txn": request, "rid": 0, "retry_at": self.now, "hint": 0,
                     "attempts": 0}
        self._send_write(client)

    def _send_write(self, client: SimClient) -> None:
        op = client.op
        op["retry_at"] = self.now + self.faults.client_timeout_ms
        if op["attempts"] and op["rid"] in self._inflight:
            self.stats["timeouts"] += 1  # no answer in time: outcome unknown
            op["unknown"] = True
        self._inflight.pop(op["rid"], None)  # no answer: outcome unknown, try again
        node = self._pick_node(op.pop("hint", 0))
        if node is None:
            return
        op["attempts"] += 1
        if op["attempts"] > 1:
            self.stats["retries"] += 1
            if op.get("unknown"):  # maybe applied already: a copy that must not apply
                self.stats["unknown_outcome_retries"] += 1
        self._rid += 1
        op["rid"] = self._rid
        self._inflight[self._rid] = ("write", client, op["seq"])
        # Every earlier write of this client has been answered: ack_below = seq.
        op_name, *args = op["txn"]
        self._client_frame(node, f"c{client.id}".encode(), client.id,
                           [[self._rid, op_name, *args, op["seq"], op["seq"]]])

    def _client_read(self) -> None:
        node = self.nodes[self.rng.choice(self.members)]
        if node.up and node.id not in self.paused and self._acked_paths:
            path = self.rng.choice(self._acked_paths)
            self._rid += 1
            self._inflight[self._rid] = ("read",)
            self._client_frame(node, b"reader", 0, [[self._rid, "exists", path]])

    def _client_sync(self, node: SimNode | None = None, path: str | None = None) -> dict | None:
        """``sync`` then ``get`` in one frame to a random node: the get must see
        every write acknowledged before now. Returns what the check will look at."""
        if node is None:
            node = self.nodes[self.rng.choice(self.members)]
        if not node.up or node.id in self.paused:
            return None
        if path is not None:
            pass
        elif self._acked_paths and self.rng.random() < 0.5:
            path = self.rng.choice(self._acked_paths)
        else:
            path = f"/r{self.rng.randint(0, 3)}"
        pair = {"path": path, "floor": self.read_floor.get(path), "proposed": self.now,
                "node": node.id, "sync_ok": False}
        self._rid += 2
        self._inflight[self._rid - 1] = ("sync", pair)
        self._inflight[self._rid] = ("get", pair)
        self._client_frame(node, f"s{self._rid}".encode(), 0,
                           [[self._rid - 1, "sync", path], [self._rid, "get", path]])
        return pair

    def _on_reply(self, node: SimNode, ident: bytes, rid: int, code: int, result: Any,
                  zxid: int) -> None:
        """A request's answer, handed back at the node it was sent to, for the
        connection ``ident``."""
        waiting = self._inflight.get(rid)
        if waiting is None:
            return  # an attempt the client gave up on, or a reply nobody waits for
        kind = waiting[0]
        if self.trace and kind != "lock":
            self.trace.client_answered(self.now, node.id, f"client {ident.decode()}'s "
                                       f"request {rid}", code, result)
        if kind == "lock":
            client, op = waiting[1], waiting[2]
            if op == OP_PING and code == 0:
                self.sessions.ping_taken(client.session, node)
            conn = int(ident.rsplit(b"-", 1)[1])
            at = self._pipe_time(("lreply", client.index, conn), 1, self.faults.max_delay_ms)
            leader = node.log.leader if code == Code.NOT_LEADER else 0
            self._schedule(at - self.now, "lock_reply",
                           (client.index, conn, rid, code, result, leader,
                            node.store.applied_zxid))
            return
        if kind == "pipe":
            # Back over the client's connection to this node (whichever it was).
            client = waiting[1]
            conn = int(ident.rsplit(b"-", 1)[1])
            at = self._pipe_time(("reply", client.id, conn), 1, self.faults.max_delay_ms)
            leader = node.log.leader if code == Code.NOT_LEADER else 0
            self._schedule(at - self.now, "client_reply",
                           (self.pipelined.index(client), conn, rid, code, result, zxid,
                            leader))
            return
        if kind == "write":
            self._write_answered(node, rid, waiting[1], waiting[2], code, result)
            return
        del self._inflight[rid]
        if kind == "read":
            if code == int(Code.NOT_READY):
                self.stats["reads_refused"] += 1
            return
        pair = waiting[1]
        pair[kind] = code
        if kind == "sync":
            pair["sync_ok"] = code == 0
            self.stats["syncs_ok" if code == 0 else "syncs_failed"] += 1
        elif pair["sync_ok"]:
            self.stats["reads_checked"] += 1
            self.checker.linearizable_read(pair, code, result)

    def _write_settled(self, client_id: int, seq: int, code: int, result: Any,
                       parent: str) -> None:
        """A pipelined client's write got its answer (first one: it never resends
        a settled write)."""
        key = (client_id, seq)
        first = self.answers.get(key)
        if first is not None and first[0] != [code, result]:
            self.checker.fail(f"at-most-once: client {client_id}'s write {seq} was answered "
                              f"{first[0]} at t={first[1]}, and now {[code, result]}")
        self.answers[key] = ([code, result], self.now)
        if code == 0:
            self.acked_writes[key] = (self.now, result)
            self.acked[result] = 0
            self._acked_paths.append(result)
            self.read_floor[result] = max(self.read_floor.get(result, 0), 1)

    def _write_answered(self, node: SimNode, rid: int, client: SimClient, seq: int,
                        code: int, result: Any) -> None:
        op = client.op
        current = op is not None and op["seq"] == seq
        if code in RETRY_CODES:
            del self._inflight[rid]
            if current and op["rid"] == rid:
                if code == int(Code.CONNECTION_LOSS):
                    op["unknown"] = True
                # Try again soon, where it points (the client library backs off a
                # little while no leader is known).
                op["retry_at"] = self.now + self.rng.randint(1, 5 if node.log.leader else 30)
                op["hint"] = node.log.leader
            return
        self._inflight.pop(rid, None)
        key = (client.id, seq)
        if result == FORGOTTEN:
            self.stats["forgotten"] += 1
            if key not in self.answers:
                self.checker.fail(f"at-most-once: client {client.id}'s write {seq} was "
                                  f"refused as forgotten before it was ever answered")
            return  # a stale copy of an answered write, refused: fine
        first = self.answers.get(key)
        if first is not None:
            if first[0] != [code, result]:
                self.checker.fail(f"at-most-once: client {client.id}'s write {seq} was "
                                  f"answered {first[0]} at t={first[1]}, and now "
                                  f"{[code, result]}")
            return
        self.answers[key] = ([code, result], self.now)
        if current:
            client.op = None
        if code != 0:
            return
        txn = op["txn"] if current else None
        path = result if isinstance(result, str) else (txn[1] if txn else None)
        if path is None:  # (a stale attempt's set: we no longer hold its txn)
            return
        self.acked_writes[key] = (self.now, path)
        if isinstance(result, str):  # a create: the path must exist from now on
            self.acked[result] = node.store.applied_zxid
            self._acked_paths.append(result)
            floor = 1
        else:  # a set: reads must see at least this modification
            floor = result[1]
        self.read_floor[path] = max(self.read_floor.get(path, 0), floor)

    # --------------------------------------------------------- the wiring
    def handle_election(self, node: SimNode, effects: list) -> None:
        if self.trace:
            self.trace.election_effects(self.now, node, effects)
        for effect in effects:
            if isinstance(effect, Send):
                self._send_peer(node.id, effect.to, "election", effect.message)
            elif isinstance(effect, ToLog):
                self._send_inproc(node, "log", effect.message)
        # As the election actor does after every input: the gateway hears when a
        # live leader becomes known or is lost.
        alive = node.election.leader_alive(node.mono())
        if alive != node.health:
            node.health = alive
            self._send_pipe(node, "election", "gateway", ("health", alive))

    def _send_peer(self, src: int, dst: int, actor: str, message: Any) -> None:
        f, rng = self.faults, self.rng
        lost = "partitioned" if frozenset((src, dst)) in self.partitioned else \
            "cut one way" if (src, dst) in self.cut else None
        if lost is None and rng.random() < f.drop:
            lost = "dropped by the network"
        if self.trace:
            self.trace.sent(self.now, src, dst, message, lost)
        if lost:
            return
        copies = 2 if rng.random() < f.duplicate else 1
        for _ in range(copies):
            self._schedule(rng.randint(1, f.max_delay_ms), "deliver", (dst, None, actor, message))

    def _send_inproc(self, node: SimNode, actor: str, message: Any) -> None:
        """Election <-> log: delayed, reordered, duplicated or lost (their cores
        must cope with any of it)."""
        f, rng = self.faults, self.rng
        if rng.random() < f.inproc_drop:
            return
        copies = 2 if rng.random() < f.duplicate else 1
        for _ in range(copies):
            self._schedule(rng.randint(0, f.inproc_max_delay_ms), "deliver",
                           (node.id, node.incarnation, actor, message))

    def _send_pipe(self, node: SimNode, src: str, dst: str, message: Any) -> None:
        """One of a node's FIFO pipes: delayed, never reordered or lost — but
        independent of its other pipes."""
        at = self._pipe_time((node.id, src, dst), 0, self.faults.inproc_max_delay_ms)
        self._schedule(at - self.now, "deliver", (node.id, node.incarnation, dst, message))

    def _pipe_time(self, key: tuple, low: int, high: int) -> int:
        """When the next message on FIFO pipe ``key`` arrives: a random delay, but
        never before the one sent ahead of it."""
        at = max(self.now + self.rng.randint(low, high), self._pipes.get(key, 0))
        self._pipes[key] = at
        return at

    # -------------------------------------------------------------- the end
    def heal_and_settle(self, settle_ms: int = 3000) -> None:
        """Stop the chaos, heal every partition, resume and restart every node, let it
        converge. (Clocks keep their drift, offsets and past jumps.)"""
        self.heal(settle_ms)
        self.run(self.now + settle_ms, chaos=False)

    def heal(self, settle_ms: int) -> None:
        """The start of :meth:`heal_and_settle`: everything healed, the faults calm,
        clients told to stop retrying ``settle_ms - 500`` ms from now."""
        if self.trace:
            self.trace.healed_all(self.now)
        self.partitioned.clear()
        self.cut.clear()
        self.cut_off.clear()
        for node in self.nodes.values():
            self.resume(node)
            if not node.up:
                node.start()
                self.deliver_queued(node)
        for lock_client in self.lock_clients:
            lock_client.wake()
        self.faults = self.faults.calm()
        # Clients still retrying stop half a second before the end, so the last of
        # their writes can commit before convergence is judged.
        self.clients_stop_at = self.now + settle_ms - 500

    def describe(self) -> str:
        """Each node's log and election views, one line each (for failure reports)."""
        lines = []
        for node in self.nodes.values():
            log, el = node.log, node.election
            lines.append(
                f"  node {node.id}{'' if node.up else ' (down)'}: log {log.role} term "
                f"{log.term} leader {log.leader} base {log.base_index} last ({log.last_index}, "
                f"{log.last_term}) commit {log.commit_index} applied "
                f"{node.store.applied_index} | election {el.role} term {el.term} leader "
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
