"""The nemesis: faults injected on a seeded schedule, each healed before the next.

Kinds (leaders are the victims most of the time, as Jepsen's do):

* ``partition-leader`` — the leader cut off from every peer; clients still reach it.
* ``isolate`` — one node cut off from every peer.
* ``bridge`` — the nodes split in two halves but for one node that sees both.
* ``oneway-leader`` — the leader's packets to its peers are dropped; theirs arrive.
* ``loss`` — a share of the packets on one link is dropped, both ways.
* ``delay`` — what a node says to its peers, and they to it, arrives 25 to 200 ms
  late, plus a jitter of up to half that (through the relays of
  :mod:`zkactors.chaos.relay`; order kept, as TCP keeps it).
* ``kill`` — kill -9, restarted when the fault ends.
* ``pause`` — SIGSTOP, SIGCONT when it ends.
* ``disk-full`` — the node's data dir's filesystem filled to the last byte; the
  space given back when it ends (the node stops itself and waits, then starts
  afresh on its own).

Each fault is recorded with its start and end (monotonic seconds) for the report.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from zkactors.chaos.ensemble import ChaosEnsemble

KINDS = ("partition-leader", "isolate", "bridge", "oneway-leader", "loss", "delay", "kill",
         "pause", "disk-full")


@dataclass
class Fault:
    kind: str
    nodes: list[int]
    detail: str
    start: float
    end: float | None = None


@dataclass
class Nemesis:
    ensemble: ChaosEnsemble
    seed: int
    find_leader: Callable[[], int | None]
    #: How long a fault lasts, and the calm between two (seconds).
    duration: tuple[float, float] = (1.0, 3.5)
    calm: tuple[float, float] = (0.5, 2.0)
    kinds: tuple[str, ...] = KINDS
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"nemesis-{self.seed}")

    def run(self, stop: threading.Event) -> None:
        """Inject faults until ``stop``; the last one is healed before returning."""
        while not stop.wait(self.rng.uniform(*self.calm)):
            self.ensemble.reap_crashed()
            fault = self.inject(self.rng.choice(self.kinds))
            stop.wait(self.rng.uniform(*self.duration))
            self.heal(fault)
            self.ensemble.reap_crashed()

    def _victim(self) -> int:
        """The leader most of the time, else any node."""
        nodes = self.ensemble.nodes
        leader = self.find_leader() if self.rng.random() < 0.8 else None
        return leader if leader in nodes else self.rng.choice(nodes)

    def inject(self, kind: str) -> Fault:
        ens, net, rng = self.ensemble, self.ensemble.network, self.rng
        nodes = ens.nodes
        if kind in ("partition-leader", "isolate"):
            victim = self._victim() if kind == "partition-leader" else rng.choice(nodes)
            for peer in nodes:
                if peer != victim:
                    net.cut(victim, peer)
            fault = Fault(kind, [victim], f"node {victim} cut off from its peers", 0)
        elif kind == "bridge":
            middle = self._victim()
            others = [n for n in nodes if n != middle]
            rng.shuffle(others)
            left, right = others[:len(others) // 2], others[len(others) // 2:]
            for a in left:
                for b in right:
                    net.cut(a, b)
            fault = Fault(kind, [middle], f"{left} | {right}, node {middle} sees both", 0)
        elif kind == "oneway-leader":
            victim = self._victim()
            for peer in nodes:
                if peer != victim:
                    net.drop_to(victim, peer)
            fault = Fault(kind, [victim], f"node {victim}'s packets to its peers dropped", 0)
        elif kind == "loss":
            a, b = rng.sample(nodes, 2)
            percent = rng.choice((20, 40, 60))
            net.drop_to(a, b, percent)
            net.drop_to(b, a, percent)
            fault = Fault(kind, [a, b], f"{percent}% loss between {a} and {b}", 0)
        elif kind == "delay":
            if ens.relays is None:
                raise ValueError("delay faults need the ensemble's relays (relay=True)")
            victim = self._victim()
            delay_ms = rng.choice((25, 50, 100, 200))
            for peer in nodes:
                if peer != victim:
                    ens.relays.delay(victim, peer, delay_ms, delay_ms / 2)
                    ens.relays.delay(peer, victim, delay_ms, delay_ms / 2)
            fault = Fault(kind, [victim],
                          f"node {victim}'s links delayed {delay_ms} ms + up to {delay_ms // 2}", 0)
        elif kind == "kill":
            victim = self._victim()
            ens.kill(victim)
            fault = Fault(kind, [victim], f"node {victim} killed (-9)", 0)
        elif kind == "pause":
            victim = self._victim()
            ens.pause(victim)
            fault = Fault(kind, [victim], f"node {victim} stopped (SIGSTOP)", 0)
        elif kind == "disk-full":
            victim = self._victim()
            ens.fill_disk(victim)
            fault = Fault(kind, [victim], f"node {victim}'s disk full", 0)
        else:
            raise ValueError(f"unknown fault kind {kind!r}")
        fault.start = time.monotonic()
        self.faults.append(fault)
        return fault

    def heal(self, fault: Fault) -> None:
        ens = self.ensemble
        if fault.kind == "kill":
            ens.start(fault.nodes[0])
        elif fault.kind == "pause":
            ens.resume(fault.nodes[0])
        elif fault.kind == "disk-full":
            ens.free_disk(fault.nodes[0])
        elif fault.kind == "delay":
            ens.relays.clear()
        else:
            ens.network.heal()
        fault.end = time.monotonic()

    def heal_all(self) -> None:
        """Everything back: rules gone, every node running."""
        ens = self.ensemble
        ens.reap_crashed()
        ens.network.heal()
        if ens.relays is not None:
            ens.relays.clear()
        for node in ens.nodes:
            if ens.disk_mib:
                ens.free_disk(node)
            ens.resume(node)
            if not ens.running(node):
                ens.start(node)
        for fault in self.faults:
            if fault.end is None:
                fault.end = time.monotonic()
