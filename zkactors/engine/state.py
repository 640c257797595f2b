"""The state machine's side of the disk: booting from it, snapshotting to it,
loading a snapshot a leader sent. Shared by the node (:mod:`zkactors.runtime`)
and the simulator, so both start and snapshot the same way.

A snapshot's payload is the msgpack of
:meth:`~zkactors.core.store.StoreCore.snapshot_state` (the tree and the dedup
table); the snapshot file around it says which (index, term) it covers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zkactors.core.replog import Committed, Entry
from zkactors.core.store import StoreCore
from zkactors.engine.records import RecordError
from zkactors.engine.replica import decode_entries
from zkactors.engine.storage import LogStore, SnapshotFiles, TermStore
from zkactors.protocol import pack, unpack, zxid_term
from zkactors.storage.snapshot import SnapshotError, SnapshotMeta
from zkactors.wire import Event


class RecoveryError(Exception):
    """What is on disk cannot be started from; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class Recovered:
    """What a member starts from: its term and vote, the snapshot's (index, term)
    — already loaded into the store — the log entries after it, and how far the
    store has applied them (``commit``), with the change events that made."""

    term: int
    voted_for: int
    base: tuple[int, int]
    entries: list[Entry]
    commit: int = 0
    events: list[Event] = field(default_factory=list)


def recover(log: LogStore, terms: TermStore, snapshots: SnapshotFiles,
            store: StoreCore) -> Recovered:
    """Load the newest snapshot into ``store``, read the log after it, and apply
    the entries the commit hint says were committed.

    Only those: which of the rest are committed is known once a leader says so
    (a follower's tail may yet be replaced). Applying the committed prefix here,
    before the node has sockets or threads, spares it doing so once a leader is
    heard, all members at once after a whole-ensemble restart, while it should
    be answering heartbeats and clients."""
    term, voted_for = terms.load()
    try:
        snapshot = snapshots.latest()
    except SnapshotError as err:
        raise RecoveryError(str(err)) from None
    base = (0, 0)
    if snapshot is not None:
        base = (snapshot.meta.index, snapshot.meta.term)
        store.restore_state(unpack(snapshot.payload), *base)
        del snapshot  # the payload bytes: not needed past this point
    if log.last_index < base[0]:
        # A snapshot installed from the leader, then a crash before the log moved
        # past it: the log continues after the snapshot.
        log.reset(base[0] + 1)
    try:
        entries = decode_entries(log, after=base[0])
    except RecordError as err:
        raise RecoveryError(f"the write-ahead log in {getattr(log, 'directory', 'memory')}: "
                            f"{err}") from None
    if entries and entries[0].index != base[0] + 1:
        raise RecoveryError(f"the log starts at index {entries[0].index} but the newest "
                            f"snapshot ends at {base[0]}: entries in between are lost")
    # (The hint may be ahead of the log: entries written but not fsynced when
    # the process died. What is there up to it was committed.)
    commit = min(terms.load_commit_hint(), base[0] + len(entries))
    events: list[Event] = []
    if commit > base[0]:
        hinted = [Committed(entry, None, 0) for entry in entries[:commit - base[0]]]
        _, events = store.apply(hinted, commit, term)
    return Recovered(term, voted_for, base, entries, max(commit, base[0]), events)


def save_snapshot(store: StoreCore, snapshots: SnapshotFiles,
                  members: list[int]) -> SnapshotMeta:
    """Snapshot what ``store`` has applied. ValueError if a snapshot at least as new
    is there already (installed from the leader meanwhile)."""
    return snapshots.save(store.applied_index, zxid_term(store.applied_zxid),
                          pack(store.snapshot_state()), members)


def load_snapshot(store: StoreCore, snapshots: SnapshotFiles, index: int, term: int) -> None:
    """Replace ``store``'s state with the snapshot through ``(index, term)`` just
    installed. (Not necessarily the newest: a second install may have landed
    while the store was still busy; its turn comes after the entries between.)"""
    snapshot = snapshots.load(index, term)
    if snapshot is None:
        # Pruned: newer installs landed while the store was busy. The newest covers
        # everything this one did, and the entries handed over in between.
        snapshot = snapshots.latest()
        if snapshot is None or snapshot.meta.index < index:
            raise SnapshotError(f"installed snapshot {index}/{term} is no longer on disk")
    store.restore_state(unpack(snapshot.payload), snapshot.meta.index, snapshot.meta.term)
