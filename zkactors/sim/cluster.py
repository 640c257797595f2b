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

Snapshots: each node's :class:`Disk` holds one durable snapshot (index, term and
the file bytes: a CRC and the msgpack of ``StoreCore.snapshot_state()``). Nodes
snapshot their applied state at random moments; once that is durable (a simulated
fsync later) the log is compacted, keeping a random 0-20 entries, so lagging
followers often need the leader's snapshot: the driver reads it in small chunks
(``Ready.snapshot_sends``) and a follower stores the chunks it gets
(``Ready.snapshot_chunk``) and, once the last is in, makes it durable together with
the log restart it implies (``Ready.restore``) and loads it into its store before
any later entry. A restart is snapshot + the disk's entries after it, as
``zkactors/runtime/node.py`` does.

Clients: a few simulated clients each write one request at a time, tagged with
(client id, seq) for at-most-once application (``zkactors.core.dedup``), and retry
a write whose outcome is unknown (NOT_LEADER, CONNECTION_LOSS, no answer in time)
at another node with the same seq. Others propose ``sync`` + ``get`` at any node
and check that the get sees every write acknowledged before the sync was proposed.

Everything random comes from one ``random.Random(seed)``, so a seed replays
exactly. :mod:`zkactors.sim.invariants` is checked after every event.
"""

from __future__ import annotations

import heapq
import random
import zlib
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from zkactors.core.dedup import FORGOTTEN, tag
from zkactors.core.election import ElectionCore, Send, ToLog
from zkactors.core.messages import (
    LEADER,
    Campaign,
    InstallSnapshot,
    LeaderLost,
    LeaderSeen,
    RoleChanged,
    StepDown,
)
from zkactors.core.replog import Entry, Ready, ReplicatedLog, may_send_before_persist
from zkactors.core.store import StoreCore
from zkactors.core.tree import Tree
from zkactors.errors import Code
from zkactors.protocol import pack, unpack
from zkactors.sim.clock import EPOCH_MS, NodeClock
from zkactors.sim.invariants import Checker

#: Events addressed to one node, and where their payload names it: a paused node
#: takes none of them until it resumes.
_NODE_EVENTS = frozenset(("tick", "deliver", "fsynced", "snapshotted"))

#: Answers after which a client does not know whether its write took effect.
RETRY_CODES = frozenset((int(Code.NOT_LEADER), int(Code.CONNECTION_LOSS), int(Code.NOT_READY)))
#: ``--stress``: messages up to 40 ms late, fsyncs up to 15 ms, 10% duplicates, and
#: five times as many snapshots (Faults(**STRESS)).
STRESS = {"max_delay_ms": 40, "duplicate": 0.1, "fsync_ms": (1, 15), "snapshot": 0.02}
#: A transfer takes at most about this many chunks, however small the chunk size.
MAX_CHUNKS = 24


def snapshot_file(state: list) -> bytes:
    """The bytes of a snapshot file: a CRC of the payload, then the payload."""
    payload = pack(state)
    return zlib.crc32(payload).to_bytes(4, "big") + payload


def read_snapshot_file(data: bytes) -> list | None:
    """The state in a snapshot file, or None if it is torn or spliced."""
    payload = data[4:]
    if len(data) < 4 or zlib.crc32(payload) != int.from_bytes(data[:4], "big"):
        return None
    return unpack(payload)


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
    #: Per ms: a client proposes ``sync`` + ``get`` at a random node.
    sync: float = 0.03
    #: A client that hears nothing about its write for this long tries elsewhere.
    client_timeout_ms: int = 300
    #: Per ms: one node snapshots its applied state (durable after ``snapshot_fsync_ms``)
    #: and then compacts its log, keeping ``retain_entries`` entries before it.
    snapshot: float = 0.004
    snapshot_fsync_ms: tuple[int, int] = (1, 8)
    retain_entries: tuple[int, int] = (0, 20)
    #: InstallSnapshot chunk size (per run), in bytes (but see MAX_CHUNKS).
    chunk_bytes: tuple[int, int] = (64, 512)
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
                       write=0, read=0, sync=0, clock_jump=0, wall_step=0, pause=0)


@dataclass
class Disk:
    """What survives a crash: the last fsynced term, vote, log (the WAL: entries
    ``wal_base + 1`` on) and the newest snapshot (index, term, file bytes)."""

    term: int = 0
    voted_for: int = 0
    entries: list[Entry] = field(default_factory=list)
    wal_base: int = 0
    snapshot: tuple[int, int, bytes] | None = None

    @property
    def last_index(self) -> int:
        return self.wal_base + len(self.entries)

    @property
    def snapshot_index(self) -> int:
        return self.snapshot[0] if self.snapshot else 0

    def append(self, entry: Entry) -> None:
        position = entry.index - self.wal_base - 1
        if position < 0:
            return  # covered by the snapshot already
        if position > len(self.entries):
            raise AssertionError(f"WAL gap: appending {entry.index} after {self.last_index}")
        del self.entries[position:]
        self.entries.append(entry)

    def truncate_after(self, index: int) -> None:
        if index < self.wal_base:
            raise AssertionError(f"truncating the WAL after {index}, below its start "
                                 f"{self.wal_base + 1}")
        del self.entries[index - self.wal_base:]

    def compact_through(self, index: int) -> None:
        """Drop the entries up to ``index`` (the WAL then starts after it)."""
        if index <= self.wal_base:
            return
        del self.entries[:index - self.wal_base]
        self.wal_base = index

    def restart_after(self, index: int) -> None:
        """A snapshot through ``index`` replaced the log: the WAL continues after it."""
        self.entries = []
        self.wal_base = index

    def entry_at(self, index: int) -> Entry | None:
        position = index - self.wal_base - 1
        return self.entries[position] if 0 <= position < len(self.entries) else None


@dataclass
class SimClient:
    """A client writing one request at a time, each with the next seq."""

    id: int
    seq: int = 0
    #: The write in flight: seq, txn, rid of its latest attempt, retry time, hint.
    op: dict | None = None


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
        """Boot from disk as zkactors/runtime/node.py does: the newest snapshot into
        the store, then the log's entries after it."""
        sim = self.sim
        self.up = True
        self.incarnation += 1
        now = self.mono()
        disk = self.disk
        self.store = StoreCore(Tree())
        base = (0, 0)
        if disk.snapshot is not None:
            index, term, data = disk.snapshot
            base = (index, term)
            state = read_snapshot_file(data)
            if state is None:
                raise AssertionError(f"node {self.id}: durable snapshot {index} is corrupt")
            self.store.restore_state(state, index, term)
            sim.checker.state_at(self, "restarted from its snapshot")
        if disk.last_index < base[0]:
            disk.restart_after(base[0])  # the WAL continues after the snapshot
        entries = [e for e in disk.entries if e.index > base[0]]
        if entries and entries[0].index != base[0] + 1:
            raise AssertionError(f"node {self.id}: the WAL starts at {entries[0].index} but "
                                 f"the snapshot ends at {base[0]}")
        self.election = ElectionCore(self.id, self.members, sim.heartbeat_ms,
                                     sim.election_timeout_ms, sim.rng.random, now)
        self.log = ReplicatedLog(self.id, self.members, disk.term, disk.voted_for,
                                 entries, max_batch=16, max_inflight=4,
                                 retransmit_ms=4 * sim.heartbeat_ms, snapshot=base)
        #: Readies in the order the core produced them; the head may be fsyncing.
        self.pending: deque[Ready] = deque()
        self.fsyncing = False
        #: Follower: the leader's snapshot being received, (index, term, bytes so far)
        #: — a temporary file, gone with the process — and the ones fully received
        #: whose install (a Ready.restore) waits for its turn to reach the disk.
        self.receiving: tuple[int, int, bytes] | None = None
        self.installing: list[tuple[tuple[int, int], bytes]] = []
        # The election actor starts knowing what the log knows, as the runtime does.
        sim.handle_election(self, self.election.on_role(self.log.role_changed(), now))

    def crash(self) -> None:
        self.up = False
        self.incarnation += 1  # fsyncs and messages of the old incarnation are void
        self.sim.resume(self)  # a paused process can be killed too; the machine runs on


class Simulation:
    def __init__(self, seed: int, nodes: int = 3, faults: Faults | None = None,
                 heartbeat_ms: int = 20, election_timeout_ms: int = 150,
                 tick_ms: int = 5, strict_replies: bool = True) -> None:
        self.seed = seed
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
        #: Paused nodes: node id -> the time it resumes.
        self.paused: dict[int, int] = {}
        self.pauses = 0
        self.checker = Checker(self)
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
        #: ("sync"|"get", pair), pair = {path, floor, proposed, node, sync_ok}.
        self._inflight: dict[int, tuple] = {}
        self.clients = [SimClient(i) for i in range(1, 9)]
        #: Clients give up retrying from then on (set near the end of the settling).
        self.clients_stop_at = 1 << 62
        self.chunk_bytes = self.rng.randint(*self.faults.chunk_bytes)
        self.stats = dict.fromkeys((
            "snapshots_taken", "snapshots_installed", "snapshot_chunks", "snapshot_missing",
            "compactions",
            "syncs_ok", "syncs_failed", "reads_checked", "retries", "unknown_outcome_retries",
            "timeouts",
            "duplicates_suppressed", "forgotten", "lost_replies"), 0)
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
        elif isinstance(message, LeaderLost):
            self.handle_ready(node, node.log.leader_lost(message, now))
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
        if ready.restore is not None:
            # The received snapshot becomes the node's snapshot, and the log restarts
            # after it (its entries did not match) or keeps what follows it.
            index, term = ready.restore
            key, data = node.installing.pop(0)
            if key != ready.restore or index < disk.snapshot_index:
                raise AssertionError(f"node {node.id}: installing {ready.restore}, but the "
                                     f"next snapshot received is {key} and the one on "
                                     f"disk ends at {disk.snapshot_index}")
            disk.snapshot = (index, term, data)
            if ready.truncate_after is not None or disk.last_index < index:
                disk.restart_after(index)
            else:
                disk.compact_through(index)
        elif ready.truncate_after is not None:
            disk.truncate_after(ready.truncate_after)
        for entry in ready.entries:
            disk.append(entry)
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
            client = rng.choice(self.clients)
            if client.op is None:
                self._client_write(client)
        if self.now < self.clients_stop_at:
            for client in self.clients:
                if client.op is not None and client.op["retry_at"] <= self.now:
                    self._send_write(client)
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

    # ------------------------------------------------------------ snapshots
    def _take_snapshot(self, node: SimNode) -> None:
        """``node`` snapshots its store's applied state; durable a while later."""
        if not node.up or node.id in self.paused:
            return
        store = node.store
        index = store.applied_index
        if index <= max(node.disk.snapshot_index, node.log.base_index):
            return
        data = snapshot_file(store.snapshot_state())
        self.checker.state_at(node, "took a snapshot", data)
        self._schedule(self.rng.randint(*self.faults.snapshot_fsync_ms), "snapshotted",
                       (node.id, node.incarnation, index, store.applied_zxid >> 32, data))

    def _on_snapshotted(self, payload: tuple) -> None:
        node_id, incarnation, index, term, data = payload
        node = self.nodes[node_id]
        if not node.up or incarnation != node.incarnation:
            return  # the crash came first: the temporary file is gone
        disk = node.disk
        if index <= disk.snapshot_index:
            return  # a newer one is there already (installed from the leader)
        disk.snapshot = (index, term, data)
        self.stats["snapshots_taken"] += 1
        # As the log actor does on the store's word: compact, keeping a few entries.
        old = node.log.base_index
        base = node.log.compact(index - self.rng.randint(*self.faults.retain_entries))
        if base > old:
            disk.compact_through(base)
            self.stats["compactions"] += 1

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

    def _snapshot_sends(self, node: SimNode, ready: Ready) -> None:
        """Leader: read the chunks of the newest durable snapshot the core asks for."""
        for peer, offset in ready.snapshot_sends:
            if node.disk.snapshot is None:
                # (Its base came from a snapshot it installed whose Ready is not on
                # disk yet.) As the log actor does: skip; the core sends again later.
                self.stats["snapshot_missing"] += 1
                continue
            index, term, data = node.disk.snapshot
            size = max(self.chunk_bytes, -(-len(data) // MAX_CHUNKS))
            chunk = data[offset:offset + size]
            ready.messages.append((peer, InstallSnapshot(
                node.log.term, node.id, index, term, offset, chunk,
                offset + len(chunk) >= len(data))))
            self.stats["snapshot_chunks"] += 1

    def _store_chunk(self, node: SimNode, chunk: InstallSnapshot) -> Ready:
        """Follower: write a chunk to the temporary file (contiguous offsets; offset 0
        starts over), as the log actor's installer does."""
        log = node.log
        if chunk.offset == 0:
            node.receiving = (chunk.index, chunk.last_term, b"")
        receiving = node.receiving
        if receiving is None or receiving[:2] != (chunk.index, chunk.last_term):
            return log.snapshot_chunk_stored(chunk, 0, False)  # start over
        data = receiving[2]
        if chunk.offset != len(data):
            return log.snapshot_chunk_stored(chunk, len(data), False)  # out of order
        data += chunk.data
        node.receiving = (chunk.index, chunk.last_term, data)
        if not chunk.done:
            return log.snapshot_chunk_stored(chunk, len(data), False)
        node.receiving = None
        if read_snapshot_file(data) is None:
            return log.snapshot_chunk_stored(chunk, 0, False)  # spliced: start over
        ready = log.snapshot_chunk_stored(chunk, len(data), True)
        if ready.restore is not None:
            node.installing.append((ready.restore, data))
            self.stats["snapshots_installed"] += 1
        return ready

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
            txn = ["create", "/q/n-", data, 3]
        elif kind < 0.6:  # a create of its own path: a duplicate would fail
            txn = ["create", f"/k{client.id}-{seq}", data, 0]
        elif kind < 0.7:
            txn = ["create", f"/r{rng.randint(0, 3)}", data, 0]
        else:  # overwrite a shared key, for the reads to check
            txn = ["set", f"/r{rng.randint(0, 3)}", data, -1]
        client.op = {"seq": seq, "txn": txn, "rid": 0, "retry_at": self.now, "hint": 0,
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
        txn = tag(client.id, op["seq"], op["seq"], op["txn"])
        ready = node.log.propose([[f"c{client.id}".encode(), self._rid, txn, None]],
                                 node.mono(), node.wall())
        for entry in ready.entries:  # a leader took it: it owes this client an answer
            self.proposed[(node.id, node.incarnation, entry.index, entry.term)] = self._rid
        self.handle_ready(node, ready)

    def _client_read(self) -> None:
        node = self.nodes[self.rng.choice(self.members)]
        if node.up and node.id not in self.paused and self._acked_paths:
            path = self.rng.choice(self._acked_paths)
            node.store.read([[b"reader", 0, "exists", [path]]], node.mono())

    def _client_sync(self, node: SimNode | None = None, path: str | None = None) -> dict | None:
        """``sync`` then ``get`` in one proposal at a random node: the get must see
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
        ident = f"s{self._rid}".encode()
        self.handle_ready(node, node.log.propose([
            [ident, self._rid - 1, None, ["sync", [path]]],
            [ident, self._rid, None, ["get", [path]]]], node.mono(), node.wall()))
        return pair

    def _on_reply(self, node: SimNode, rid: int, code: int, result: Any) -> None:
        """A request's answer, handed back at the node it was sent to."""
        waiting = self._inflight.get(rid)
        if waiting is None:
            return  # an attempt the client gave up on, or a reply nobody waits for
        kind = waiting[0]
        if kind == "write":
            self._write_answered(node, rid, waiting[1], waiting[2], code, result)
            return
        del self._inflight[rid]
        pair = waiting[1]
        pair[kind] = code
        if kind == "sync":
            pair["sync_ok"] = code == 0
            self.stats["syncs_ok" if code == 0 else "syncs_failed"] += 1
        elif pair["sync_ok"]:
            self.stats["reads_checked"] += 1
            self.checker.linearizable_read(pair, code, result)

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
        self._enqueue(node, ready)
        self._pump(node)

    def _enqueue(self, node: SimNode, ready: Ready) -> None:
        if ready.role is not None and ready.role.role == LEADER:
            self.checker.became_leader(node, ready.role.term)
        if ready.committed:
            self.checker.committed(node, ready.committed)
            self._answers_owed(node, ready)
        if ready.snapshot_sends:  # as the log actor does, first thing
            self._snapshot_sends(node, ready)
        # One node's Readies complete in the order they were made, as in the log
        # actor, which fsyncs each before it takes the next input: a Ready that needs
        # no disk still waits for the fsync ahead of it, since it may rest on it.
        node.pending.append(ready)

    def _pump(self, node: SimNode) -> None:
        while node.pending and not node.fsyncing:
            ready = node.pending[0]
            if ready.snapshot_chunk is not None:
                # Everything before it is on disk: write the chunk, tell the core,
                # and carry out what that says after this Ready.
                chunk, ready.snapshot_chunk = ready.snapshot_chunk, None
                stored = self._store_chunk(node, chunk)
                if stored:
                    self._enqueue(node, stored)
            early = [m for m in ready.messages if may_send_before_persist(m[1])]
            if early:  # as the log actor does: a leader's appends don't wait
                for peer, message in early:
                    self._send_peer(node.id, peer, "log", message)
                ready.messages = [m for m in ready.messages if not may_send_before_persist(m[1])]
            if ready.hard_state is not None or ready.truncate_after is not None \
                    or ready.entries or ready.restore is not None:
                node.fsyncing = True
                self._schedule(self.rng.randint(*self.faults.fsync_ms), "fsynced",
                               (node.id, node.incarnation))
                return
            node.pending.popleft()
            self._after_persist(node, ready)

    def _after_persist(self, node: SimNode, ready: Ready) -> None:
        for peer, message in ready.messages:
            self._send_peer(node.id, peer, "log", message)
        store = node.store
        if ready.restore is not None:
            # Before any later entry, the store loads the snapshot just installed.
            index, term, data = node.disk.snapshot
            if (index, term) != ready.restore:
                raise AssertionError(f"node {node.id}: restoring {ready.restore}, but the "
                                     f"snapshot on disk is {(index, term)}")
            store.restore_state(read_snapshot_file(data), index, term)
            self.checker.state_at(node, "installed the leader's snapshot")
        if ready.committed:
            duplicates = store.duplicate_writes
            replies, _ = store.apply(ready.committed, node.log.commit_index, node.log.term)
            self.stats["duplicates_suppressed"] += store.duplicate_writes - duplicates
            self.checker.applied(node, ready.committed)
            if store.applied_index in self.checker.digests:
                self.checker.state_at(node, "applied")
            for reply in replies:
                self._on_reply(node, reply[1], reply[2], reply[3])
        for _ident, rid, code, _text in ready.failed:
            self._on_reply(node, rid, code, None)
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
        # Clients still retrying stop half a second before the end, so the last of
        # their writes can commit before convergence is judged.
        self.clients_stop_at = self.now + settle_ms - 500
        self.run(self.now + settle_ms, chaos=False)

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
