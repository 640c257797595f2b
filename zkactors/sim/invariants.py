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
* Snapshots: entries compacted away are covered by the snapshot, so the checks
  above look only at what each log still holds, plus: a log's base (index, term)
  is the committed entry there. Every store's state (tree digest and, for a
  snapshot taken, the snapshot bytes) at a given applied index is the same
  whether it got there by applying entries, by installing a leader's snapshot or
  by restarting from its own.
* Linearizable reads: a ``get`` behind a successful ``sync`` sees every write
  acknowledged (to any client) before the sync was proposed.
* At most once: a write answered twice (a retry) got the same answer both times;
  no sequential node's data ("client:seq") appears twice in the final tree.
* (At the end) every acknowledged write is present on every node, and every
  node's tree is identical — data, zxids *and* the ctime/mtime stamps, which come
  from the proposing leader's wall clock and so may go backwards, but must be the
  same everywhere (a node that stamped its own clock would fork the state).

An entry is compared by (term, time stamp, txn), so log matching and state machine
safety cover the replicated time stamp too.

A violation raises :class:`InvariantViolation` naming the invariant and the time.
"""

from __future__ import annotations

import itertools
import zlib
from typing import TYPE_CHECKING, Any

from zkactors.core.dedup import is_tagged
from zkactors.core.replog import Committed
from zkactors.errors import Code

if TYPE_CHECKING:
    from zkactors.sim.cluster import SimNode, Simulation


class InvariantViolation(AssertionError):
    pass


class LivenessFailure(AssertionError):
    """Safe, but stuck: no leader, or a node left behind, where one was due."""


def _key(entry) -> tuple:
    return (entry.term, entry.time_ms, repr(entry.txn))


_MASK = (1 << 64) - 1


class _Chain:
    """Running sums of one log's entry hashes: ``prefix(i) - prefix(j)`` fingerprints
    the entries j+1..i, for any j, i the log holds — so two logs with different bases
    compare on what they both hold. Recomputed only for entries new since last time."""

    __slots__ = ("base", "objs", "start", "sums")

    def __init__(self, base: int) -> None:
        self.base, self.start, self.objs, self.sums = base, 0, [], []

    def prefix(self, index: int) -> int:
        return self.start if index == self.base else self.sums[index - self.base - 1]

    def update(self, base: int, entries: list) -> None:
        shift = base - self.base
        if shift < 0 or shift > len(self.objs):
            self.base, self.start, self.objs, self.sums = base, 0, [], []
        elif shift:
            self.start = self.sums[shift - 1]
            del self.objs[:shift], self.sums[:shift]
            self.base = base
        objs, sums = self.objs, self.sums
        keep = min(len(objs), len(entries))
        while keep and objs[keep - 1] is not entries[keep - 1]:
            keep -= 1  # truncated or rewritten since the last check
        del objs[keep:], sums[keep:]
        total = sums[-1] if sums else self.start
        for entry in entries[keep:]:
            total = (total + hash((entry.index, _key(entry)))) & _MASK
            objs.append(entry)
            sums.append(total)


class Checker:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.leaders: dict[int, int] = {}  # term -> node id
        #: The one history every node must apply: index -> _key(entry).
        self.applied_history: dict[int, tuple] = {}
        #: index -> (_key(entry), the term it was committed in, or a later one).
        self.commit_terms: dict[int, tuple[tuple, int]] = {}
        self.checks = 0
        # Per node: the entry objects already hashed and their running sums, so log
        # matching costs O(new entries) per check, not O(log).
        self._chains: dict[int, _Chain] = {}
        self._fingerprint: list[tuple[int, int, int, int]] | None = None
        #: Applied index -> (tree digest, CRC of a snapshot's bytes taken there or None).
        self.digests: dict[int, tuple[int, int | None]] = {}
        #: (client, seq) -> the lowest index of an entry carrying that tagged write.
        self.first_index: dict[tuple[int, int], int] = {}

    def fail(self, what: str) -> None:
        raise InvariantViolation(f"seed {self.sim.seed} at t={self.sim.now} ms: {what}")

    def became_leader(self, node: SimNode, term: int) -> None:
        other = self.leaders.setdefault(term, node.id)
        if other != node.id:
            self.fail(f"election safety: nodes {other} and {node.id} both lead term {term}")
        log = node.log
        base = getattr(log, "base_index", 0)
        for index, (key, commit_term) in self.commit_terms.items():
            if commit_term >= term:
                continue
            if index < base:
                continue  # compacted: covered by its snapshot (whose base is checked)
            if index == base:
                if index and key[0] != log.base_term:
                    self.fail(f"leader completeness: node {node.id}, leader of term {term}, "
                              f"has base term {log.base_term} at {index}, committed "
                              f"{key[0]} in term {commit_term}")
                continue
            if index > base + len(log.entries) or \
                    _key(log.entries[index - base - 1]) != key:
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
            if is_tagged(entry.txn):
                write = (entry.txn[1], entry.txn[2])
                if entry.index < self.first_index.get(write, entry.index + 1):
                    self.first_index[write] = entry.index

    def applied_at_start(self, node: SimNode, entries: list) -> None:
        """A restart applied these from its own log (up to its commit hint): each
        must have been committed, as exactly this entry."""
        for entry in entries:
            known = self.commit_terms.get(entry.index)
            if known is None or known[0] != _key(entry):
                self.fail(f"commit hint: node {node.id} applied its entry {entry.index} "
                          f"at restart, but {'another' if known else 'no'} entry was "
                          f"committed there")
        self.applied(node, [Committed(entry, None, 0) for entry in entries])

    def check(self) -> None:
        self.checks += 1
        # Most events (ticks, idle chaos steps) change no log: if every running node's
        # log has the base, length and very last Entry object it had at the last check,
        # nothing changed (entries are never mutated, and the old last entries are
        # kept alive in self._chains, so their ids cannot be reused).
        up = [n for n in self.sim.nodes.values() if n.up]
        fingerprint = [(n.id, n.log.base_index, len(n.log.entries),
                        id(n.log.entries[-1]) if n.log.entries else 0) for n in up]
        if fingerprint == self._fingerprint:
            return
        self._fingerprint = fingerprint
        logs = []
        for node in up:
            log = node.log
            chain = self._chains.get(node.id)
            if chain is None:
                chain = self._chains[node.id] = _Chain(log.base_index)
            chain.update(log.base_index, log.entries)
            logs.append((node.id, log, chain))
            known = self.commit_terms.get(log.base_index)
            if known is not None and known[0][0] != log.base_term:
                self.fail(f"snapshot base: node {node.id}'s log starts after "
                          f"({log.base_index}, {log.base_term}) but the entry committed "
                          f"there has term {known[0][0]}")
        for i, (a_id, a, a_chain) in enumerate(logs):
            for b_id, b, b_chain in logs[i + 1:]:
                # The highest index both hold with the same term: what both hold up to
                # there must be identical (below, both are committed: checked above).
                low = max(a.base_index, b.base_index)
                top = min(a.last_index, b.last_index)
                while top > low and a.term_at(top) != b.term_at(top):
                    top -= 1
                if top > low and (a_chain.prefix(top) - a_chain.prefix(low)) & _MASK != \
                        (b_chain.prefix(top) - b_chain.prefix(low)) & _MASK:
                    self.fail(f"log matching: nodes {a_id} and {b_id} both have term "
                              f"{a.term_at(top)} at index {top} but different entries "
                              f"between {low + 1} and {top}")

    def state_at(self, node: SimNode, what: str, snapshot: bytes | None = None) -> None:
        """``node``'s store is at some applied index: the state there must be the same
        on every node, however it got there (applying, installing, restarting)."""
        store = node.store
        index = store.applied_index
        digest = store.tree.digest()
        crc = None if snapshot is None else zlib.crc32(snapshot)
        known = self.digests.get(index)
        if known is None:
            self.digests[index] = (digest, crc)
            return
        if known[0] != digest:
            self.fail(f"state at index {index}: node {node.id} {what} and has tree digest "
                      f"{digest:#x}, another node had {known[0]:#x} there")
        if crc is not None:
            if known[1] is None:
                self.digests[index] = (digest, crc)
            elif known[1] != crc:
                self.fail(f"snapshot at index {index}: node {node.id}'s differs from "
                          f"another node's")

    def read_your_writes(self, client: int, seen: int, zxid: int, code: int) -> None:
        """A read answered from the state at ``zxid``, sent when its client had seen
        ``seen``: no older (read-your-writes, monotonic reads)."""
        if code == 0 and zxid < seen:
            self.fail(f"read-your-writes: client {client} had seen zxid {seen:#x} but a "
                      f"read was answered from the state at {zxid:#x}")

    def fifo_order(self) -> None:
        """(At the end) each pipelined client's writes took effect in the order it
        sent them: its sequential nodes, in sequence order, hold increasing seqs."""
        tree = self.sim.nodes[self.sim.members[0]].store.tree
        for client in self.sim.pipelined:
            if tree.exists(client.path) is None:
                continue
            seqs = [int(tree.get(f"{client.path}/{name}")[0].split(b":")[1])
                    for name in sorted(tree.get_children(client.path))]
            for earlier, later in itertools.pairwise(seqs):
                if later <= earlier:
                    self.fail(f"FIFO client order: client {client.id}'s write {later} took "
                              f"effect after its write {earlier} (window {client.window}, "
                              f"{'in order' if client.in_order else 'careless'} resends)")

    def read_not_older(self, node: SimNode, applied_index: int, floor: int) -> None:
        """``node`` answered a read from its state at ``applied_index``: never older
        than what was committed anywhere before the node (re)started."""
        if applied_index < floor:
            self.fail(f"stale read: node {node.id} answered a read from its state at "
                      f"index {applied_index}, but index {floor} was committed before it "
                      f"started")

    def linearizable_read(self, pair: dict, code: int, result: Any) -> None:
        """A get behind a sync that succeeded at node ``pair['node']``."""
        floor, path = pair["floor"], pair["path"]
        where = f"node {pair['node']}, sync proposed at t={pair['proposed']}"
        if code == int(Code.NO_NODE):
            if floor:
                self.fail(f"linearizability: get {path} after sync ({where}) found no node, "
                          f"but a write to it was acknowledged before")
            return
        if code != 0:
            self.fail(f"linearizability: get {path} after a sync ({where}) failed: "
                      f"{code} {result}")
        mzxid = result[1][1]
        if floor and mzxid < floor:
            self.fail(f"linearizability: get {path} after sync ({where}) saw mzxid "
                      f"{mzxid:#x}, but a write acknowledged before had zxid {floor:#x}")

    def acknowledged_writes_survive(self) -> None:
        for node in self.sim.nodes.values():
            for path, zxid in self.sim.acked.items():
                if node.store.tree.exists(path) is None:
                    self.fail(f"acknowledged write {path} (zxid {zxid:#x}) missing on node "
                              f"{node.id} after healing")

    def acknowledged_writes_durable(self) -> None:
        """Every acknowledged write is durable on a majority, for good: in its fsynced
        log (the entry that first carried it), or in its snapshot."""
        from zkactors.sim.cluster import durable_entry
        majority = len(self.sim.members) // 2 + 1
        for write, (acked_at, path) in self.sim.acked_writes.items():
            index = self.first_index.get(write)
            if index is None:
                self.fail(f"acknowledged write {write} ({path}) was never applied")
            holders = 0
            for node in self.sim.nodes.values():
                disk = node.disk
                entry = durable_entry(disk, index)
                if disk.snapshots.newest_index >= index or (
                        entry is not None and is_tagged(entry.txn)
                        and (entry.txn[1], entry.txn[2]) == write):
                    holders += 1
            if holders < majority:
                self.fail(f"acknowledged write {write} ({path}, index {index}, acked at "
                          f"t={acked_at}) is on the disks of only {holders} nodes")

    def at_most_once(self) -> None:
        """Each write's data is "client:seq": no sequential node carries one twice, and
        every acknowledged create holds its own data."""
        for node in self.sim.nodes.values():
            tree = node.store.tree
            if tree.exists("/q") is None:
                continue
            seen: dict[bytes, str] = {}
            for name in tree.get_children("/q"):
                data = tree.get(f"/q/{name}")[0]
                if data in seen:
                    self.fail(f"at-most-once: write {data!r} applied twice on node "
                              f"{node.id}: /q/{seen[data]} and /q/{name}")
                seen[data] = name
        tree = self.sim.nodes[self.sim.members[0]].store.tree
        for (client, seq), (_, path) in self.sim.acked_writes.items():
            if path.startswith(("/q/", "/k")) and \
                    tree.get(path)[0] != f"{client}:{seq}".encode():
                self.fail(f"acknowledged write {client}:{seq} created {path}, which holds "
                          f"{tree.get(path)[0]!r}")

    def replicas_identical(self) -> None:
        nodes = list(self.sim.nodes.values())
        first = nodes[0].store.tree.snapshot()
        for node in nodes[1:]:
            if node.store.tree.snapshot() != first:
                self.fail(f"state divergence: node {node.id}'s tree differs from node "
                          f"{nodes[0].id}'s after healing")
