"""The engine: the replica driver's order of effects, and the in-memory storage
twins — which must behave as the real files do, crash included."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from zkactors.core.messages import (
    AppendEntries,
    AppendResponse,
    Campaign,
    InstallSnapshot,
    RequestVote,
    RoleChanged,
    VoteResponse,
)
from zkactors.core.replog import Committed, Entry, ReplicatedLog
from zkactors.core.store import StoreCore
from zkactors.core.tree import Tree
from zkactors.engine.memory import MemoryDisk
from zkactors.engine.replica import Propose, Replica, decode_entries, encode_entry
from zkactors.engine.state import recover, save_snapshot
from zkactors.storage.snapshot import (
    CorruptSnapshotError,
    SnapshotStore,
    encode_snapshot,
)
from zkactors.storage.stable import StableStore
from zkactors.storage.wal import WriteAheadLog

pytestmark = pytest.mark.timeout(60)


def entry(index: int, term: int = 1) -> Entry:
    return Entry(index, term, 0, ["create", f"/e{index}", b"", 0])


# ------------------------------------------------------------- memory twins


def test_appends_and_votes_survive_a_crash_only_once_their_fsync_completed():
    disk = MemoryDisk()
    disk.log.append_many([encode_entry(entry(1)), encode_entry(entry(2))])
    disk.terms.save(3, 2)
    disk.log.sync()
    assert disk.sync_pending
    disk.complete_sync()
    disk.log.append_many([encode_entry(entry(3))])
    disk.terms.save(4, 0)
    disk.log.sync()
    disk.crash()  # before the second fsync completed
    assert [e.index for e in decode_entries(disk.log)] == [1, 2]
    assert disk.log.last_index == 2 and disk.terms.load() == (3, 2)


def test_truncation_reset_and_compaction_are_durable_at_once_like_the_wal():
    disk = MemoryDisk()
    disk.log.append_many(encode_entry(entry(i)) for i in range(1, 6))
    disk.log.truncate_after(3)  # (the WAL syncs what it buffered, then cuts)
    disk.crash()
    assert disk.log.last_index == 3
    disk.log.compact_before(3)
    disk.crash()
    assert disk.log.first_index == 3 and [e.index for e in decode_entries(disk.log)] == [3]
    disk.log.reset(10)
    disk.crash()
    assert (disk.log.first_index, disk.log.last_index) == (10, 9)


def test_memory_snapshots_keep_the_file_format_and_the_rules_of_the_real_store():
    disk = MemoryDisk()
    meta = disk.snapshots.save(5, 2, b"payload", [1, 2, 3])
    assert disk.snapshots.files[(5, 2)] == encode_snapshot(5, 2, [1, 2, 3], b"payload")
    assert (meta.index, meta.term, meta.members) == (5, 2, (1, 2, 3))
    with pytest.raises(ValueError):
        disk.snapshots.save(4, 2, b"older", [1, 2, 3])  # never backwards
    install = disk.snapshots.begin_install(9, 3)
    data = encode_snapshot(9, 3, [1, 2, 3], b"newer")
    install.write(0, data[:10])
    with pytest.raises(ValueError):
        install.write(20, data[20:])  # out of order: refused, nothing changed
    install.write(10, data[10:])
    install.finish()
    assert disk.snapshots.latest().payload == b"newer"
    spliced = disk.snapshots.begin_install(12, 3)
    spliced.write(0, encode_snapshot(11, 3, [1, 2, 3], b"x"))
    with pytest.raises(CorruptSnapshotError):
        spliced.finish()
    disk.snapshots.save(20, 3, b"a", [1])
    assert sorted(disk.snapshots.files) == [(9, 3), (20, 3)]  # the newest two kept


# ------------------------------------------------------------ the driver


class Recorder:
    """Outputs that write down, in one list with the disk's fsyncs, what happens."""

    def __init__(self, trace: list) -> None:
        self.trace = trace
        self.committed: list[Committed] = []

    def send(self, peer: int, message: Any) -> None:
        self.trace.append(("send", type(message).__name__))

    def commit(self, committed: list[Committed], commit_index: int, term: int) -> None:
        self.trace.append(("commit", [c.entry.index for c in committed if c.entry]))
        self.committed.extend(committed)

    def restore(self, index: int, term: int) -> None:
        self.trace.append(("restore", index))

    def refuse(self, failed: list) -> None:
        self.trace.append(("refuse", [f[1] for f in failed]))

    def tell_election(self, role: RoleChanged) -> None:
        self.trace.append(("election", role.role))

    def tell_gateway(self, role: RoleChanged) -> None:
        self.trace.append(("gateway", role.role))


class TracedDisk(MemoryDisk):
    def __init__(self, trace: list) -> None:
        super().__init__()
        self.trace = trace

    def request_sync(self) -> None:
        self.trace.append(("fsync",))
        super().request_sync()


def replica(node_id: int = 2, term: int = 1) -> tuple[Replica, list]:
    trace: list = []
    disk = TracedDisk(trace)
    core = ReplicatedLog(node_id, [1, 2, 3], term=term)
    return Replica(core, disk.log, disk.terms, disk.snapshots, Recorder(trace)), trace


def test_a_follower_acknowledges_an_append_only_after_its_fsync():
    node, trace = replica()
    durable = node.handle([AppendEntries(1, 1, 0, 0, [[1, 0, ["noop"]]], 0)], now_ms=0)
    assert trace.index(("fsync",)) < trace.index(("send", "AppendResponse"))
    # The log actor learns what became durable (it moves the log out of the
    # garbage collector's sight every so many entries).
    assert durable is not None and durable.index == 1


def test_a_vote_leaves_only_after_the_term_and_vote_are_saved():
    node, trace = replica()
    node.handle([RequestVote(2, 3, 0, 0)], now_ms=0)
    assert trace.index(("fsync",)) < trace.index(("send", "VoteResponse"))
    assert node.terms._live == (2, 3)


def test_a_leaders_appends_leave_before_its_own_fsync_and_acks_after():
    node, trace = replica(node_id=1, term=0)
    node.handle([Campaign(1)], now_ms=0)
    node.handle([VoteResponse(1, 2, True)], now_ms=0)  # leader: its no-op goes out
    node.handle([AppendResponse(1, 2, True, 1, 0, 0)], now_ms=0)
    assert ("commit", [1]) in trace
    trace.clear()
    node.handle([Propose([[b"c", 7, ["create", "/a", b"", 0], None]])], now_ms=1)
    assert trace[:2] == [("send", "AppendEntries"), ("fsync",)]
    node.handle([AppendResponse(1, 2, True, 2, 0, 0)], now_ms=2)
    # Committed (its own fsync and node 2's): handed to the store, in log order.
    assert trace[-1] == ("commit", [2])


# --------------------------------------------------- real files and twins agree


def drive(log: Any, terms: Any, snapshots: Any) -> list:
    """The same inputs through a replica over the given storage; what came out."""
    trace: list = []
    core = ReplicatedLog(1, [1, 2, 3])
    outputs = Recorder(trace)
    node = Replica(core, log, terms, snapshots, outputs)
    node.handle([Campaign(1)], 0)
    node.handle([VoteResponse(1, 2, True)], 0)
    for rid in range(1, 6):
        node.handle([Propose([[b"c", rid, ["create", f"/n{rid}", b"", 0], None]])], rid)
    node.handle([AppendResponse(1, 2, True, 6, 0, 0)], 10)
    store = StoreCore(Tree())
    store.apply(outputs.committed, core.commit_index, core.term)
    assert store.applied_index == 6
    save_snapshot(store, snapshots, [1, 2, 3])
    node.compact(store.applied_index)
    return trace


def test_the_twins_and_the_real_files_give_the_same_run_and_the_same_restart(tmp_path):
    disk = MemoryDisk()
    memory_trace = drive(disk.log, disk.terms, disk.snapshots)
    disk.complete_sync()
    wal = WriteAheadLog(str(tmp_path / "wal"))
    stable = StableStore(str(tmp_path))
    files = SnapshotStore(str(tmp_path / "snap"))
    file_trace = drive(wal, stable, files)
    assert memory_trace == file_trace
    wal.close()
    # Both restart to the same place: the snapshot in the store, the log after it.
    from_memory = recover(disk.log, disk.terms, disk.snapshots, StoreCore(Tree()))
    wal = WriteAheadLog(str(tmp_path / "wal"))
    from_files = recover(wal, StableStore(str(tmp_path)), SnapshotStore(str(tmp_path / "snap")),
                         StoreCore(Tree()))
    wal.close()
    assert from_memory == from_files
    assert from_memory.base[0] == 6 and from_memory.term == 1


def test_the_simulator_runs_the_shipped_driver_and_imports_no_runtime():
    code = ("import sys; import zkactors.sim.run; "
            "from zkactors.sim.cluster import Simulation; "
            "from zkactors.engine.replica import Replica; "
            "sim = Simulation(1); sim.run(200); "
            "assert all(type(n.replica) is Replica for n in sim.nodes.values()); "
            "bad = [m for m in sys.modules if m.startswith('zkactors.runtime') or m == 'zmq']; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_restore_overtaken_by_newer_installs_loads_the_newest_and_skips_what_it_covers():
    # Three installs landed while the store was busy with others: the first is
    # pruned. The store loads the newest, and the entries handed over before it
    # (covered by it) are skipped rather than applied out of order.
    from zkactors.engine.state import load_snapshot

    disk = MemoryDisk()
    source = StoreCore(Tree())
    for index in range(1, 10):
        source.apply([Committed(Entry(index, 1, 0, ["create", f"/n{index}", b"", 0]),
                                None, 0)], index, 1)
        if index in (5, 7, 9):
            save_snapshot(source, disk.snapshots, [1, 2, 3])
    assert disk.snapshots.load(5, 1) is None  # pruned: only the newest two kept
    store = StoreCore(Tree())
    load_snapshot(store, disk.snapshots, 5, 1)
    assert store.applied_index == 9 and store.tree.exists("/n9") is not None
    replies, events = store.apply([Committed(entry(6), None, 0)], 6, 1)
    assert (replies, events, store.applied_index) == ([], [], 9)
    store.apply([Committed(Entry(10, 1, 0, ["create", "/n10", b"", 0]), None, 0)], 10, 1)
    assert store.applied_index == 10


def test_a_snapshot_older_than_one_held_is_answered_with_the_held_one():
    """An install that completed after the core had moved to a new term stays on
    disk; a newer leader offering an older snapshot must not crash the log actor
    (snapshots never go backwards): the newer one, committed state too, is
    installed instead. (The simulator found this: swarm seed 20039.)"""
    node, trace = replica(term=5)
    node.snapshots.save(14, 4, b"state at 14", [1, 2, 3])
    node.handle([InstallSnapshot(5, 1, 8, 3, 0, b"the leader's state at 8", False)], now_ms=0)
    assert ("restore", 14) in trace and ("send", "InstallSnapshotResponse") in trace
    assert (node.core.base_index, node.core.base_term, node.core.commit_index) == (14, 4, 14)
    assert node.snapshots.latest_meta().index == 14


# ------------------------------------------------------------- commit hint

def _leader_with_commits(disk: MemoryDisk, writes: int) -> tuple[Replica, ReplicatedLog]:
    """A leader of 3 whose first ``writes`` proposals are committed (node 2 acked)."""
    core = ReplicatedLog(1, [1, 2, 3])
    node = Replica(core, disk.log, disk.terms, disk.snapshots, Recorder([]))
    node.handle([Campaign(1)], 0)
    disk.complete_sync()
    node.handle([VoteResponse(1, 2, True)], 0)
    for rid in range(1, writes + 1):
        node.handle([Propose([[b"c", rid, ["create", f"/n{rid}", b"", 0], None]])], rid)
    disk.complete_sync()
    node.handle([AppendResponse(1, 2, True, writes + 1, 0, 0)], 10)
    return node, core


def test_a_restart_applies_its_own_log_up_to_the_commit_hint_at_once():
    disk = MemoryDisk()
    node, core = _leader_with_commits(disk, 5)
    # Two more entries on disk, not committed: they must not be applied at restart.
    node.handle([Propose([[b"c", 6, ["create", "/n6", b"", 0], None]])], 11)
    node.handle([Propose([[b"c", 7, ["create", "/n7", b"", 0], None]])], 12)
    disk.complete_sync()
    assert (core.commit_index, core.last_index) == (6, 8)
    node.tick(20)  # the hint is written on ticks
    assert disk.terms.load_commit_hint() == 6
    disk.crash()
    store = StoreCore(Tree())
    recovered = recover(disk.log, disk.terms, disk.snapshots, store)
    assert recovered.commit == store.applied_index == 6  # the no-op and five creates
    assert store.tree.exists("/n5") is not None and store.tree.exists("/n6") is None
    # (the watch history refills from these: each create, and its parent's change)
    assert [e.path for e in recovered.events if e.path != "/"] == [f"/n{i}" for i in range(1, 6)]
    assert len(recovered.entries) == 8  # the whole log is still read
    # The log core starts with those as committed and handed to the store.
    restarted = ReplicatedLog(1, [1, 2, 3], recovered.term, recovered.voted_for,
                              recovered.entries, commit=recovered.commit)
    assert (restarted.commit_index, restarted.handed_index) == (6, 6)


def test_a_hint_ahead_of_the_log_on_disk_applies_only_what_is_there():
    disk = MemoryDisk()
    node, core = _leader_with_commits(disk, 3)
    node.tick(20)
    disk.terms.save_commit_hint(99)  # (as if entries after it were lost unsynced)
    store = StoreCore(Tree())
    recovered = recover(disk.log, disk.terms, disk.snapshots, store)
    assert recovered.commit == store.applied_index == core.last_index == 4


def test_the_hint_never_names_entries_not_yet_on_disk():
    disk = MemoryDisk()
    node, core = _leader_with_commits(disk, 2)
    node.tick(20)
    hinted = disk.terms.load_commit_hint()
    assert hinted == core.commit_index == 3
    # A fourth entry in the core's log that the driver has not synced yet (its
    # Ready is never carried out), and a commit that got ahead of that fsync.
    core.propose([[b"c", 9, ["create", "/late", b"", 0], None]], 25)
    assert (core.last_index, core.persisted_index) == (4, 3)
    core.handed_index = core.commit_index = 4
    node.tick(30)
    assert disk.terms.load_commit_hint() == hinted


@pytest.mark.parametrize(("poke", "words"), [
    (lambda core: setattr(core, "commit_index", core.last_index + 1), "commit"),
    (lambda core: setattr(core, "handed_index", core.commit_index + 1), "handed"),
    (lambda core: setattr(core, "persisted_index", core.last_index + 1), "persisted"),
    (lambda core: setattr(core.progress[3], "next_index", 0), "follower 3"),
])
def test_the_driver_stops_on_a_core_state_its_code_cannot_rely_on(poke, words):
    """ReplicatedLog.check_invariants, asked after every batch: a core in a state
    that breaks an order the code relies on stops the driver there."""
    disk = MemoryDisk()
    node, core = _leader_with_commits(disk, 2)
    node.tick(20)  # a healthy state passes
    poke(core)
    with pytest.raises(AssertionError, match=words):
        node.tick(30)
