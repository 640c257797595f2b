"""In-memory twins of the storage a replica uses, for the simulator.

:class:`MemoryDisk` holds a node's log, term/vote and snapshots with the same
contract as the files (:mod:`zkactors.engine.storage`) — and the same formats:
log records are the bytes the WAL would hold, snapshots the bytes of a snapshot
file (:func:`~zkactors.storage.snapshot.encode_snapshot`), so a restart decodes
them as a real node does.

What a crash keeps is explicit. Appends and term/vote saves are *pending* until
the simulator completes the fsync they asked for (:meth:`MemoryDisk.complete_sync`,
after a simulated delay during which the node's log takes no input, as the log
actor's thread is blocked in ``fdatasync``); :meth:`MemoryDisk.crash` drops what
is still pending. Truncation, compaction, reset and snapshots are durable at once,
as the real ones are when they return.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Self

from zkactors.storage.snapshot import (
    CorruptSnapshotError,
    Snapshot,
    SnapshotError,
    SnapshotMeta,
    decode_snapshot,
    encode_snapshot,
)

#: Snapshots kept, as SnapshotStore's default ``keep``.
KEEP_SNAPSHOTS = 2


class MemoryLog:
    """The WAL's twin: records numbered from ``first_index``."""

    def __init__(self, disk: MemoryDisk) -> None:
        self._disk = disk
        self._first = 1
        self._records: list[bytes] = []
        #: What survives a crash: (first index, records).
        self._durable: tuple[int, list[bytes]] = (1, [])

    @property
    def first_index(self) -> int:
        return self._first

    @property
    def last_index(self) -> int:
        return self._first + len(self._records) - 1

    def append_many(self, payloads: Iterable[bytes]) -> int:
        self._records.extend(bytes(p) for p in payloads)
        return self.last_index

    def sync(self) -> None:
        self._disk.request_sync()

    def truncate_after(self, index: int) -> None:
        if index >= self.last_index:
            return
        if index < self._first - 1:
            raise ValueError(f"cannot truncate after {index}: the log starts at {self._first}")
        del self._records[index - self._first + 1:]
        self._make_durable()  # (the WAL syncs what it buffered, then cuts, durably)

    def compact_before(self, index: int) -> None:
        drop = min(max(0, index - self._first), len(self._records))
        del self._records[:drop]
        self._first += drop
        first, durable = self._durable
        drop = min(max(0, index - first), len(durable))
        self._durable = (first + drop, durable[drop:])

    def reset(self, next_index: int) -> None:
        if next_index <= self.last_index:
            raise ValueError(f"reset({next_index}) must move past last_index {self.last_index}")
        self._first, self._records = next_index, []
        self._make_durable()

    def replay(self, from_index: int = 1) -> Iterator[tuple[int, bytes]]:
        """The durable records from ``from_index`` (as the WAL replays synced ones)."""
        first, records = self._durable
        start = max(from_index, first)
        for position in range(start - first, len(records)):
            yield first + position, records[position]

    # ------------------------------------------------------------ the disk's side
    def _make_durable(self) -> None:
        self._durable = (self._first, list(self._records))

    def _crash(self) -> None:
        self._first, records = self._durable
        self._records = list(records)

    def durable_record(self, index: int) -> bytes | None:
        first, records = self._durable
        position = index - first
        return records[position] if 0 <= position < len(records) else None


class MemoryTerms:
    """The term/vote file's twin."""

    def __init__(self, disk: MemoryDisk) -> None:
        self._disk = disk
        self._live = self._durable = (0, 0)
        #: Not fsynced, but a process crash keeps what the kernel was given: the
        #: latest hint survives (the boldest case for the restart that reads it).
        self._commit_hint = 0

    def load(self) -> tuple[int, int]:
        return self._durable

    def load_commit_hint(self) -> int:
        return self._commit_hint

    def save_commit_hint(self, index: int) -> None:
        self._commit_hint = index

    def save(self, term: int, voted_for: int) -> None:
        self._live = (term, voted_for)
        self._disk.request_sync()

    def _make_durable(self) -> None:
        self._durable = self._live

    def _crash(self) -> None:
        self._live = self._durable


class MemoryChunks:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, offset: int, length: int) -> bytes:
        return self._data[offset:offset + length]

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MemoryInstall:
    """A leader's snapshot being received: the bytes must come in order."""

    def __init__(self, snapshots: MemorySnapshots, index: int, term: int) -> None:
        self.index = index
        self.term = term
        self._snapshots = snapshots
        self._data = bytearray()
        self._closed = False

    @property
    def offset(self) -> int:
        return len(self._data)

    def write(self, offset: int, data: bytes) -> None:
        if self._closed:
            raise ValueError(f"snapshot installer for index {self.index} is closed")
        if offset != len(self._data):
            raise ValueError(f"snapshot chunk at offset {offset} is not contiguous: "
                             f"expected {len(self._data)}")
        self._data += data

    def finish(self) -> SnapshotMeta:
        if self._closed:
            raise ValueError(f"snapshot installer for index {self.index} is closed")
        self.abort()
        data = bytes(self._data)
        where = f"<install {self.index}/{self.term}>"
        meta = decode_snapshot(data, where).meta
        if (meta.index, meta.term) != (self.index, self.term):
            raise CorruptSnapshotError(where, f"header says index {meta.index} term "
                                              f"{meta.term}")
        return self._snapshots._publish(meta.index, meta.term, data)

    def abort(self) -> None:
        self._closed = True
        if self._snapshots._installer is self:
            self._snapshots._installer = None


class MemorySnapshots:
    """The snapshot directory's twin: files by (index, term), newest kept."""

    def __init__(self) -> None:
        self.files: dict[tuple[int, int], bytes] = {}
        self._installer: MemoryInstall | None = None

    def save(self, index: int, term: int, payload: bytes,
             members: Sequence[int]) -> SnapshotMeta:
        self._check_not_backwards(index, term)
        return self._publish(index, term, encode_snapshot(index, term, members, payload))

    def begin_install(self, index: int, term: int) -> MemoryInstall:
        self._check_not_backwards(index, term)
        if self._installer is not None:
            self._installer.abort()
        self._installer = MemoryInstall(self, index, term)
        return self._installer

    def latest_meta(self) -> SnapshotMeta | None:
        latest = self.latest()
        return None if latest is None else latest.meta

    def latest(self) -> Snapshot | None:
        if not self.files:
            return None
        key = max(self.files)
        return decode_snapshot(self.files[key], self._where(*key))

    def load(self, index: int, term: int) -> Snapshot | None:
        data = self.files.get((index, term))
        return None if data is None else decode_snapshot(data, self._where(index, term))

    def open_reader(self, meta: SnapshotMeta) -> MemoryChunks:
        data = self.files.get((meta.index, meta.term))
        if data is None:
            raise SnapshotError(f"snapshot {meta.path} no longer exists (pruned by a newer one?)")
        return MemoryChunks(data)

    @property
    def newest_index(self) -> int:
        return max(self.files)[0] if self.files else 0

    # ---------------------------------------------------------------- internals
    @staticmethod
    def _where(index: int, term: int) -> str:
        return f"<memory snapshot {index}/{term}>"

    def _check_not_backwards(self, index: int, term: int) -> None:
        if self.files:
            newest = max(self.files)
            if index < newest[0] or (index == newest[0] and term != newest[1]):
                raise ValueError(f"snapshot ({index}, {term}) is older than the newest "
                                 f"held, {newest}")

    def _publish(self, index: int, term: int, data: bytes) -> SnapshotMeta:
        self._check_not_backwards(index, term)
        self.files[(index, term)] = data
        for old in sorted(self.files)[:-KEEP_SNAPSHOTS]:
            del self.files[old]
        snapshot = decode_snapshot(data, self._where(index, term))
        return snapshot.meta

    def _crash(self) -> None:
        self._installer = None  # its temporary file is deleted on the next open


class MemoryDisk:
    """One node's disk: log, term/vote and snapshots, and the fsync in flight."""

    def __init__(self) -> None:
        self.log = MemoryLog(self)
        self.terms = MemoryTerms(self)
        self.snapshots = MemorySnapshots()
        #: An fsync was asked for and has not completed: what it covers is lost
        #: by a crash, and nothing that depends on it may leave the node.
        self.sync_pending = False

    def request_sync(self) -> None:
        self.sync_pending = True

    def complete_sync(self) -> None:
        self.log._make_durable()
        self.terms._make_durable()
        self.sync_pending = False

    def crash(self) -> None:
        """The process died: whatever was not yet durable is gone."""
        self.log._crash()
        self.terms._crash()
        self.snapshots._crash()
        self.sync_pending = False
