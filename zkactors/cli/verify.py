"""``zkctl verify DATA_DIR``: check a stopped node's data dir without starting it.

It reads what a start reads — the term and vote (``raft-state``), every snapshot
(``snap/``) and the write-ahead log (``wal/``) — with the readers the node uses
(:mod:`zkactors.storage`), then runs the node's own recovery
(:func:`zkactors.engine.state.recover`) on what it read: newest snapshot into a
scratch store, the log after it. It never changes a file: nothing is repaired,
deleted, preallocated or created (a start would cut a torn WAL tail and delete
leftover temporary snapshot files; here they are reported).

A running node holds an exclusive ``flock`` on ``wal/LOCK``; verify takes a
shared one for as long as it reads, so it refuses a data dir whose node is
running, and a node started meanwhile fails to open its WAL rather than change
files under it.

What it reports is a list of *problems* (each names a file: the node would refuse
to start, or would drop something at start) and *notes* (what a start would tidy
up, and nothing is lost by it). Sound means no problems.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from typing import Any

import msgpack

from zkactors.core.store import StoreCore
from zkactors.core.tree import Tree
from zkactors.engine.records import RecordError, decode_record
from zkactors.engine.state import RecoveryError, recover
from zkactors.errors import DataInconsistency
from zkactors.protocol import unpack
from zkactors.storage.snapshot import (
    Snapshot,
    SnapshotError,
    read_snapshot_file,
    snapshot_files,
)
from zkactors.storage.stable import STATE_FILE, StableStore, StableStoreError
from zkactors.storage.wal import ReadOnlyWal

WAL_DIR = "wal"
SNAP_DIR = "snap"
LOCK_FILE = "LOCK"
#: What a payload that passed its CRC may still fail with when decoded.
_DECODE_ERRORS = (ValueError, TypeError, DataInconsistency, msgpack.UnpackException)


class NotVerifiable(Exception):
    """The data dir cannot be checked at all (missing, not a data dir, in use):
    a usage error, one line."""


@dataclass
class Report:
    data_dir: str
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, what)
    notes: list[tuple[str, str]] = field(default_factory=list)
    #: What was found, for the summary: term, vote, snapshots, log range.
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def sound(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [f"{path}: {what}" for path, what in self.problems]
        out += [f"note: {path}: {what}" for path, what in self.notes]
        facts = self.facts
        snaps = facts.get("snapshots", [])
        newest = (f", newest through index {snaps[-1][0]} term {snaps[-1][1]}"
                  if snaps else "")
        log = facts.get("log")
        described = (f"term {facts.get('term', '?')}, voted for {facts.get('voted_for', '?')}; "
                     f"{len(snaps)} snapshot{'s' if len(snaps) != 1 else ''}{newest}; "
                     + (f"log {log[0]}-{log[1]}" if log and log[1] >= log[0] else "log empty"))
        verdict = ("sound" if self.sound else
                   f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}")
        out.append(f"{self.data_dir}: {verdict} ({described})")
        return out

    def record(self) -> dict[str, Any]:
        return {"data_dir": self.data_dir, "sound": self.sound,
                "problems": [{"path": p, "problem": w} for p, w in self.problems],
                "notes": [{"path": p, "note": w} for p, w in self.notes],
                "term": self.facts.get("term"), "voted_for": self.facts.get("voted_for"),
                "snapshots": [{"index": i, "term": t} for i, t in self.facts.get("snapshots", [])],
                "log": self.facts.get("log")}


def verify(data_dir: str) -> Report:
    """Check ``data_dir`` (a node's ``[node] data_dir``); :class:`NotVerifiable`
    if it is not there, is not a node's data dir, or its node is running."""
    if not os.path.isdir(data_dir):
        raise NotVerifiable(f"{data_dir}: no such directory")
    wal_dir = os.path.join(data_dir, WAL_DIR)
    if not os.path.isdir(wal_dir):
        raise NotVerifiable(f"{data_dir}: not a node's data dir (it has no {WAL_DIR}/)")
    lock = _lock_shared(os.path.join(wal_dir, LOCK_FILE), data_dir)
    try:
        return _verify(data_dir, wal_dir)
    finally:
        if lock is not None:
            os.close(lock)


def _lock_shared(path: str, data_dir: str) -> int | None:
    """A shared flock on the WAL's LOCK (not created if absent: never written)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise NotVerifiable(f"{data_dir}: its node is running (it holds {path}); stop it "
                            "first") from None
    return fd


def _verify(data_dir: str, wal_dir: str) -> Report:
    report = Report(data_dir)
    problem = report.problems.append
    state_ok = _check_term_file(data_dir, report)
    newest_ok, snaps = _check_snapshots(os.path.join(data_dir, SNAP_DIR), report)

    log = ReadOnlyWal(wal_dir)
    for finding in log.findings:
        problem((finding.path, f"offset {finding.offset}: {finding.reason}"))
    report.notes += log.notes
    wal_ok = not any(not f.repairable for f in log.findings)
    if wal_ok:
        wal_ok = _check_records(log, report)
    report.facts["log"] = (log.first_index, log.last_index)

    if state_ok and newest_ok and wal_ok:
        # What the node does at start, on what was read: the newest snapshot into a
        # scratch store, then the log after it (which must continue from it).
        newest = snaps[-1][2] if snaps else None
        try:
            recover(log, StableStore(data_dir), _NewestSnapshot(newest), StoreCore(Tree()))
        except (RecoveryError, SnapshotError, *_DECODE_ERRORS) as err:
            problem((wal_dir, f"the node could not start from this: {err}"))
    elif not newest_ok and wal_ok and len(snaps) > 1:
        _older_fallback(snaps, log, report)
    return report


def _check_term_file(data_dir: str, report: Report) -> bool:
    path = os.path.join(data_dir, STATE_FILE)
    if not os.path.exists(path):
        report.notes.append((path, ("absent: the node starts at term 0 with no vote "
                                   "(fine for a node that never voted)")))
        report.facts.update(term=0, voted_for=0)
        return True
    try:
        term, voted_for = StableStore(data_dir).load()
    except StableStoreError as err:
        report.problems.append((path, str(err).removeprefix(f"{path}: ")))
        return False
    except (*_DECODE_ERRORS,) as err:
        report.problems.append((path, (f"checksum matches but the contents do not decode "
                                      f"({type(err).__name__}: {err})")))
        return False
    if type(term) is not int or type(voted_for) is not int or term < 0 or voted_for < 0:
        report.problems.append((path, f"not a term and a vote: {[term, voted_for]!r:.80}"))
        return False
    report.facts.update(term=term, voted_for=voted_for)
    return True


def _check_snapshots(snap_dir: str, report: Report) -> tuple[bool, list[tuple[int, int, str]]]:
    """Every snapshot file: header, CRCs, a payload that loads into a store.
    Returns whether the newest is sound (vacuously, if there is none), and all
    of them (index, term, path), oldest first, with ``ok`` noted in facts."""
    if not os.path.isdir(snap_dir):
        report.facts["snapshots"] = []
        return True, []
    snaps, temps = snapshot_files(snap_dir)
    for temp in temps:
        report.notes.append((temp, ("a snapshot write a crash interrupted (never used; the "
                                   "node deletes it when it starts)")))
    good = []
    ok = True
    for index, term, path in snaps:
        ok = _check_snapshot(path, report) is not None
        if ok:
            good.append((index, term))
    report.facts["snapshots"] = [(i, t) for i, t, _ in snaps]
    report.facts["good_snapshots"] = good
    return ok, snaps  # ``ok`` is the newest's, checked last


def _check_snapshot(path: str, report: Report) -> Snapshot | None:
    try:
        snapshot = read_snapshot_file(path)
    except SnapshotError as err:
        reason = getattr(err, "reason", None) or str(err)
        report.problems.append((path, reason))
        return None
    try:
        StoreCore(Tree()).restore_state(unpack(snapshot.payload), snapshot.meta.index,
                                        snapshot.meta.term)
    except _DECODE_ERRORS as err:
        report.problems.append((path, (f"checksums match but the payload does not load "
                                      f"({type(err).__name__}: {err})")))
        return None
    return snapshot


def _check_records(log: ReadOnlyWal, report: Report) -> bool:
    """Every record decodes as a log entry, and terms never go down along the log
    nor past the current term."""
    last_term = 0
    current = report.facts.get("term", 0)
    for index, payload in log.replay():
        try:
            term = decode_record(index, payload).term
        except RecordError as err:
            report.problems.append((log.path_of(index), str(err)))
            return False
        if term < last_term:
            report.problems.append((log.path_of(index), (f"record {index} has term {term}, "
                                                        f"older than the {last_term} before it")))
            return False
        last_term = term
    if last_term > current:
        report.problems.append((log.directory, (f"the log's last term {last_term} is newer "
                                               f"than the saved term {current}")))
        return False
    return True


def _older_fallback(snaps: list[tuple[int, int, str]], log: ReadOnlyWal,
                    report: Report) -> None:
    """The newest snapshot is bad: say whether an older one and the log still
    cover everything (the node never falls back on its own: see
    :meth:`zkactors.storage.snapshot.SnapshotStore.latest`)."""
    good = report.facts.get("good_snapshots", [])
    for index, term in reversed(good):
        if log.first_index <= index + 1 and log.last_index >= snaps[-1][0]:
            report.notes.append((snaps[-1][2], (f"the log still holds every entry after the "
                                               f"older snapshot through index {index} term "
                                               f"{term}: moving this file aside lets the node "
                                               "start from that one")))
            return


class _NewestSnapshot:
    """The newest snapshot, read as :func:`recover` asks for it, from one path."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def latest(self) -> Snapshot | None:
        return None if self.path is None else read_snapshot_file(self.path)
