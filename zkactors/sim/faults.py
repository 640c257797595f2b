"""The simulator's fault model: what can go wrong, how often, and swarm testing.

A :class:`Faults` holds the probabilities and ranges of every fault kind the
simulator injects (:mod:`zkactors.sim.cluster`), the clients' load and patience,
and the log core's batching. The defaults are one balanced mix;
:meth:`Faults.swarm` draws a different mix per seed — including profiles that
hunt where Raft's classic mistakes show — and :meth:`Faults.calm` switches every
fault off for the final settling.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

#: ``--stress``: messages up to 40 ms late, fsyncs up to 15 ms, 10% duplicates, and
#: five times as many snapshots (Faults(**STRESS)).
STRESS = {"max_delay_ms": 40, "duplicate": 0.1, "fsync_ms": (1, 15), "snapshot": 0.02}


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
    #: Per ms: every node crashes at once (a power cut), each restarting later.
    crash_all: float = 0.0003
    #: Per ms: the leader (if there is one) crashes — leaders come and go fast.
    crash_leader: float = 0.0
    #: The chance that a node just elected leader crashes within ``young_ms``
    #: (while it is still bringing its followers up to date).
    crash_young_leader: float = 0.0
    young_ms: tuple[int, int] = (1, 30)
    #: The chance that a leader dies the moment its commit index moves, before
    #: anything it would do next leaves the process (FoundationDB's "buggify":
    #: a fault placed where it hurts most).
    crash_on_commit: float = 0.0
    #: The chance that a node just elected leader is cut off from every peer at
    #: once (clients still reach it), healed after ``heal_after_ms``: what it
    #: appends then is on its disk alone.
    isolate_new_leader: float = 0.0
    #: The chance that a node dies while an fsync it started is still running.
    crash_in_fsync: float = 0.0
    restart_after_ms: tuple[int, int] = (50, 1500)
    partition: float = 0.002
    #: Per ms: a one-way cut — every message into (or out of) one node is lost,
    #: its leader most of the time — healed like a partition.
    oneway: float = 0.0005
    oneway_ms: tuple[int, int] = (1500, 3000)
    #: ... of which this share cut what the node hears, not what it says.
    oneway_inbound: float = 0.5
    heal_after_ms: tuple[int, int] = (100, 2000)
    write: float = 0.25
    read: float = 0.1
    #: Per ms: a client sends ``sync`` + ``get`` to a random node.
    sync: float = 0.03
    #: A client that hears nothing about its write for this long tries elsewhere.
    client_timeout_ms: int = 300
    #: Clients that pipeline (zkactors.sim.pipelined): how many, their windows, how
    #: often each writes and reads (per ms), and the chance that one of them
    #: resends in any order rather than in the order it first sent.
    pipelined: int = 2
    window: tuple[int, int] = (1, 16)
    pipelined_write: float = 0.15
    pipelined_read: float = 0.03
    careless: float = 0.5
    #: Per ms: one node snapshots its applied state and then compacts its log,
    #: keeping ``retain_entries`` entries before it (drawn per node and start).
    snapshot: float = 0.004
    retain_entries: tuple[int, int] = (0, 20)
    #: InstallSnapshot chunk size (per run), in bytes.
    chunk_bytes: tuple[int, int] = (1024, 8192)
    #: For swarm runs: the ensemble size this fault mix was drawn for (0: any).
    nodes_hint: int = 0
    #: The log core's appends: entries per message, messages in flight per follower.
    log_batch: int = 16
    log_inflight: int = 4
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
    #: Clients with sessions contending for one lock (zkactors.sim.sessions), their
    #: session timeouts, and their own pauses (per ms: one of them freezes for
    #: ``client_pause_ms``; with ``client_clock_stops`` its clock stands still).
    lock_clients: int = 3
    #: Clients holding a recursive watch (zkactors.sim.watchers), attached to
    #: nodes in turn, on these paths in turn. They draw from a random stream of
    #: their own, so they never change the run they watch.
    watchers: int = 2
    #: Hold peer messages that reach a node while it is down and deliver them
    #: after it restarts. More than the real transport allows (its DEALERs are
    #: ``immediate``, and TCP never carries an old connection's bytes into a new
    #: one), on purpose: the cores must not trust that a message was sent after
    #: its receiver started. It caught a catch-up rule that did (cb83b27).
    deliver_after_restart: bool = True
    watch_paths: tuple[str, ...] = ("/", "/q")
    session_timeout_ms: tuple[int, int] = (200, 800)
    #: How long a lock client waits between releasing the lock and asking again.
    lock_idle_ms: tuple[int, int] = (5, 200)
    client_pause: float = 0.001
    client_pause_ms: tuple[int, int] = (100, 2500)
    client_clock_stops: float = 0.5
    #: A client that just took the lock freezes at once, with this probability:
    #: the case fencing tokens exist for, made common whatever else the run does
    #: (the per-ms pauses above find a holder only as often as one is holding).
    holder_pause: float = 0.1

    @classmethod
    def swarm(cls, rng: random.Random) -> Faults:
        """A random mix of fault kinds and rates, batch sizes and timeouts (swarm
        testing): each run stresses some things hard and leaves others out, so
        that schedules the defaults make rare — an older-term entry travelling
        alone, a leader cut off one way — come up. Half of the runs hunt where
        the classic Raft mistakes show: short-lived leaders, crashes in the middle
        of an fsync, leaders that can talk but not hear."""
        hunt = rng.random()
        if hunt < 1 / 6:
            return cls.young_leaders(rng)
        if hunt < 2 / 6:
            return cls.torn_fsyncs(rng)
        if hunt < 3 / 6:
            return cls.deaf_leaders(rng)

        def pick(*choices: Any) -> Any:
            return rng.choice(choices)
        # Entries per append and appends in flight: one at a time makes schedules
        # such as an older-term entry travelling alone likely.
        batch, inflight = pick((1, 1), (1, 1), (1, 2), (4, 4), (16, 4), (16, 1))
        delay, fsync = pick(2, 12, 40), pick((1, 2), (1, 4), (1, 15))
        # Roughly what replication carries (entries per ms; reordered pipelined
        # appends get refused and resent, hence the halving): the clients offer at
        # most a third of it, or nothing would ever settle.
        capacity = batch * inflight / (2 * delay + fsync[1]) / (2 if inflight > 1 else 1)
        budget = capacity / 3
        pipelined = pick(0, 1, 2, 3)
        window = pick((1, 2), (1, 16), (8, 32)) if capacity > 0.2 else (1, 2)
        # A client that times out resends what it had in flight, each copy a new
        # entry: timeouts short against what replication carries feed on
        # themselves (a metastable overload) and nothing ever settles.
        timeout = max(pick(100, 300, 1000), 4 * (2 * delay + fsync[1]),
                      int((8 + pipelined * window[1]) / capacity))
        return cls(
            drop=pick(0, 0.01, 0.02, 0.08), duplicate=pick(0, 0.02, 0.1),
            max_delay_ms=delay, inproc_drop=pick(0, 0.005, 0.03),
            inproc_max_delay_ms=pick(0, 2, 8), fsync_ms=fsync,
            crash=pick(0, 0.001, 0.002, 0.005), crash_all=pick(0, 0, 0.0003, 0.001),
            restart_after_ms=pick((50, 1500), (10, 200)),
            partition=pick(0, 0.002, 0.005), oneway=pick(0, 0.001, 0.003),
            isolate_new_leader=pick(0, 0.2, 0.5), crash_on_commit=pick(0, 0.1, 0.3),
            heal_after_ms=pick((100, 2000), (300, 1200)),
            write=min(pick(0.05, 0.25, 0.5), budget / 2), read=pick(0.02, 0.1),
            sync=pick(0, 0.03, 0.1),
            client_timeout_ms=timeout, pipelined=pipelined, window=window,
            pipelined_write=min(pick(0.05, 0.15, 0.4), budget / 2 / max(1, pipelined)),
            pipelined_read=pick(0, 0.03, 0.1), careless=pick(0, 0.5, 1),
            snapshot=pick(0, 0.004, 0.02), retain_entries=pick((0, 0), (0, 20)),
            chunk_bytes=pick((1024, 8192), (512, 2048)),
            log_batch=batch, log_inflight=inflight,
            drift=pick(0, 0.05), clock_jump=pick(0, 0.001, 0.003),
            wall_step=pick(0, 0.001), pause=pick(0, 0.001, 0.003),
            pause_clock_stops=pick(0.3, 0.8),
            # Each lock client writes twice a cycle: only where replication has room.
            lock_clients=pick(0, 2, 4) if capacity > 0.1 else pick(0, 1),
            lock_idle_ms=(5, 200) if capacity > 0.1 else (500, 1500),
            session_timeout_ms=pick((400, 1500), (200, 400)),
            client_pause=pick(0, 0.0005, 0.002))

    @classmethod
    def young_leaders(cls, rng: random.Random) -> Faults:
        """Leaders that are cut off or die as soon as they are elected, or the moment
        they commit, replicating one entry per append: Raft's Figure 8 — an entry
        of an older term re-replicated alone — comes up within a few runs."""
        return cls(
            log_batch=1, log_inflight=1, isolate_new_leader=rng.choice((0.3, 0.5)),
            crash_on_commit=rng.choice((0.2, 0.3)), heal_after_ms=(100, 800),
            restart_after_ms=(50, 600), write=0.05, pipelined=0, crash=0, crash_all=0,
            partition=0, oneway=0, snapshot=0, max_delay_ms=2, fsync_ms=(1, 4),
            client_timeout_ms=1000, nodes_hint=rng.choice((3, 5)))

    @classmethod
    def deaf_leaders(cls, rng: random.Random) -> Faults:
        """Leaders that still reach their followers but hear nothing back, for
        seconds: unless they step down (check-quorum), their heartbeats keep the
        followers from electing anyone else."""
        return cls(
            oneway=rng.choice((0.002, 0.004)), oneway_inbound=0.9, crash=0, crash_all=0,
            partition=0, pause=0, clock_jump=0, drop=rng.choice((0, 0.01)),
            nodes_hint=rng.choice((3, 5)))

    @classmethod
    def torn_fsyncs(cls, rng: random.Random) -> Faults:
        """Slow disks and nodes that die in the middle of an fsync, leaders dying
        the moment they commit: what a node promised before its fsync completed
        is lost, and whoever counted on it finds out."""
        return cls(
            fsync_ms=(5, 30), crash_in_fsync=rng.choice((0.05, 0.1)),
            crash_on_commit=rng.choice((0.1, 0.2)), restart_after_ms=(10, 300),
            crash=0.002, crash_all=0, partition=0, oneway=0, write=0.1, pipelined=1,
            pipelined_write=0.03, window=(1, 4), client_timeout_ms=1000,
            log_batch=rng.choice((1, 16)), log_inflight=rng.choice((1, 4)),
            nodes_hint=rng.choice((3, 5)))

    def calm(self) -> Faults:
        """The same network and disks with every fault switched off (drift stays:
        it is the hardware, not an event)."""
        return replace(self, drop=0, duplicate=0, inproc_drop=0, crash=0, crash_all=0,
                       crash_leader=0, crash_young_leader=0, crash_on_commit=0,
                       isolate_new_leader=0, crash_in_fsync=0,
                       partition=0, oneway=0, write=0, read=0, sync=0, pipelined_write=0,
                       pipelined_read=0, clock_jump=0, wall_step=0, pause=0,
                       client_pause=0, holder_pause=0)
