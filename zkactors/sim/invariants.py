"""Safety invariants of the simulated ensemble, checked after every event.

* Election safety: at most one leader per term.
* Log matching: two logs with an entry of the same index and term are identical
  up to that index.
* Leader completeness: a new leader's log holds every entry committed before it.
* State machine safety: no two nodes apply different entries at one index.
* (At the end) every acknowledged write is present on every node.

A violation raises :class:`InvariantViolation` naming the invariant and the time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zkactors.core.replog import Committed

if TYPE_CHECKING:
    from zkactors.sim.cluster import SimNode, Simulation


class InvariantViolation(AssertionError):
    pass


def _key(entry) -> tuple:
    return (entry.term, repr(entry.txn))


class Checker:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.leaders: dict[int, int] = {}  # term -> node id
        #: The one history every node must apply: index -> (term, txn).
        self.applied_history: dict[int, tuple] = {}
        self.checks = 0
        # Per node: the entry objects already hashed, and the running hash of each
        # prefix, so log matching costs O(new entries) per check, not O(log).
        self._hashed: dict[int, list] = {}
        self._chain: dict[int, list[int]] = {}

    def fail(self, what: str) -> None:
        raise InvariantViolation(f"seed {self.sim.seed} at t={self.sim.now} ms: {what}")

    def became_leader(self, node: SimNode, term: int) -> None:
        other = self.leaders.setdefault(term, node.id)
        if other != node.id:
            self.fail(f"election safety: nodes {other} and {node.id} both lead term {term}")
        entries = node.log.entries
        for index, key in self.applied_history.items():
            if index > len(entries) or _key(entries[index - 1]) != key:
                self.fail(f"leader completeness: node {node.id}, leader of term {term}, "
                          f"lacks committed entry {index}")

    def applied(self, node: SimNode, committed: list[Committed]) -> None:
        for item in committed:
            entry = item.entry
            if entry is None:
                continue
            key = _key(entry)
            known = self.applied_history.setdefault(entry.index, key)
            if known != key:
                self.fail(f"state machine safety: node {node.id} applied {key} at index "
                          f"{entry.index}, another node applied {known}")

    def check(self) -> None:
        self.checks += 1
        logs = [(n.id, n.log.entries, self._prefix_hashes(n.id, n.log.entries))
                for n in self.sim.nodes.values() if n.up]
        for i, (a_id, a, a_chain) in enumerate(logs):
            for b_id, b, b_chain in logs[i + 1:]:
                # The highest index where both logs have the same term: the prefixes
                # up to it must be identical (for lower indexes it then follows).
                top = min(len(a), len(b))
                while top and a[top - 1].term != b[top - 1].term:
                    top -= 1
                if top and a_chain[top - 1] != b_chain[top - 1]:
                    self.fail(f"log matching: nodes {a_id} and {b_id} both have term "
                              f"{a[top - 1].term} at index {top} but different prefixes")

    def _prefix_hashes(self, node_id: int, entries: list) -> list[int]:
        hashed = self._hashed.setdefault(node_id, [])
        chain = self._chain.setdefault(node_id, [])
        keep = min(len(hashed), len(entries))
        while keep and hashed[keep - 1] is not entries[keep - 1]:
            keep -= 1  # truncated or rewritten since the last check
        del hashed[keep:], chain[keep:]
        previous = chain[-1] if chain else 0
        for entry in entries[keep:]:
            previous = hash((previous, _key(entry)))
            hashed.append(entry)
            chain.append(previous)
        return chain

    def acknowledged_writes_survive(self) -> None:
        for node in self.sim.nodes.values():
            for path, zxid in self.sim.acked.items():
                if node.store.tree.exists(path) is None:
                    self.fail(f"acknowledged write {path} (zxid {zxid:#x}) missing on node "
                              f"{node.id} after healing")
