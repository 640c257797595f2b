"""Safety invariants of the simulated ensemble, checked after every event.

* Election safety: at most one leader per term.
* Log matching: two logs with an entry of the same index and term are identical
  up to that index.
* Leader completeness: a leader of term T holds every entry committed in a term
  before T. (Not every entry committed before it *in time*: a candidate that was
  paused can win an old term after later terms committed more — Raft allows that,
  and that leader can't append anywhere. An entry's commit term is taken as the
  lowest term of any node at the moment its core released it as committed: never
  below the term that really committed it, so the check never cries wolf.)
* State machine safety: no two nodes apply different entries at one index.
* (At the end) every acknowledged write is present on every node, and every
  node's tree is identical — data, zxids *and* the ctime/mtime stamps, which come
  from the proposing leader's wall clock and so may go backwards, but must be the
  same everywhere (a node that stamped its own clock would fork the state).

An entry is compared by (term, time stamp, txn), so log matching and state machine
safety cover the replicated time stamp too.

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
    return (entry.term, entry.time_ms, repr(entry.txn))


class Checker:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.leaders: dict[int, int] = {}  # term -> node id
        #: The one history every node must apply: index -> _key(entry).
        self.applied_history: dict[int, tuple] = {}
        #: index -> (_key(entry), the term it was committed in, or a later one).
        self.commit_terms: dict[int, tuple[tuple, int]] = {}
        self.checks = 0
        # Per node: the entry objects already hashed, and the running hash of each
        # prefix, so log matching costs O(new entries) per check, not O(log).
        self._hashed: dict[int, list] = {}
        self._chain: dict[int, list[int]] = {}
        self._fingerprint: list[tuple[int, int, int]] | None = None

    def fail(self, what: str) -> None:
        raise InvariantViolation(f"seed {self.sim.seed} at t={self.sim.now} ms: {what}")

    def became_leader(self, node: SimNode, term: int) -> None:
        other = self.leaders.setdefault(term, node.id)
        if other != node.id:
            self.fail(f"election safety: nodes {other} and {node.id} both lead term {term}")
        entries = node.log.entries
        for index, (key, commit_term) in self.commit_terms.items():
            if commit_term < term and (index > len(entries)
                                       or _key(entries[index - 1]) != key):
                self.fail(f"leader completeness: node {node.id}, leader of term {term}, "
                          f"lacks entry {index} committed in term {commit_term}")

    def committed(self, node: SimNode, committed: list[Committed]) -> None:
        """``node``'s core just released these as committed (it has not applied them
        yet: that waits for the fsync of the Ready that carries them)."""
        term = node.log.term
        commit_terms = self.commit_terms
        for item in committed:
            entry = item.entry
            if entry is None:
                continue
            known = commit_terms.get(entry.index)
            if known is None:
                commit_terms[entry.index] = (_key(entry), term)
            elif term < known[1]:
                commit_terms[entry.index] = (known[0], term)

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
        # Most events (ticks, idle chaos steps) change no log: if every running node's
        # log has the length and the very last Entry object it had at the last check,
        # nothing changed (entries are never mutated, and the old last entries are
        # kept alive in self._hashed, so their ids cannot be reused).
        up = [n for n in self.sim.nodes.values() if n.up]
        fingerprint = [(n.id, len(n.log.entries), id(n.log.entries[-1]) if n.log.entries
                        else 0) for n in up]
        if fingerprint == self._fingerprint:
            return
        self._fingerprint = fingerprint
        logs = [(n.id, n.log.entries, self._prefix_hashes(n.id, n.log.entries)) for n in up]
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

    def acknowledged_writes_durable(self) -> None:
        """Every acknowledged write is in the fsynced log of a majority, for good: a
        committed entry is never truncated (whatever the nodes' trees show yet)."""
        majority = len(self.sim.members) // 2 + 1
        on_disk = [{e.txn[1] for e in node.disk.entries if e.txn and e.txn[0] == "create"}
                   for node in self.sim.nodes.values()]
        for path, zxid in self.sim.acked.items():
            holders = sum(path in paths for paths in on_disk)
            if holders < majority:
                self.fail(f"acknowledged write {path} (zxid {zxid:#x}) is on the disks of "
                          f"only {holders} of {len(on_disk)} nodes")

    def replicas_identical(self) -> None:
        nodes = list(self.sim.nodes.values())
        first = nodes[0].store.tree.snapshot()
        for node in nodes[1:]:
            if node.store.tree.snapshot() != first:
                self.fail(f"state divergence: node {node.id}'s tree differs from node "
                          f"{nodes[0].id}'s after healing")
