"""What a replica keeps on disk, as interfaces: the log, the term and vote, the
snapshots.

The real implementations are :class:`~zkactors.storage.wal.WriteAheadLog`,
:class:`~zkactors.storage.stable.StableStore` and
:class:`~zkactors.storage.snapshot.SnapshotStore`; the in-memory twins in
:mod:`zkactors.engine.memory` behave the same — including what a crash keeps —
for the simulator. The contract the engine relies on:

* :meth:`LogStore.append_many` only buffers; records are durable once
  :meth:`LogStore.sync` returns. Truncation, compaction and reset are durable
  when they return.
* :meth:`TermStore.save` is durable when it returns. The commit hint is not
  (:meth:`TermStore.save_commit_hint`): what it says is committed is, whenever
  it reaches the disk, so an old or missing one is only a slower restart.
* A snapshot is durable once :meth:`SnapshotFiles.save` or
  :meth:`SnapshotInstall.finish` returns; neither ever goes backwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol, Self

from zkactors.storage.snapshot import Snapshot, SnapshotMeta


class LogStore(Protocol):
    """Log records (opaque bytes) numbered from ``first_index``."""

    @property
    def first_index(self) -> int: ...

    @property
    def last_index(self) -> int: ...

    def append_many(self, payloads: Iterable[bytes]) -> int: ...

    def sync(self) -> None: ...

    def truncate_after(self, index: int) -> None: ...

    def compact_before(self, index: int) -> None: ...

    def reset(self, next_index: int) -> None: ...

    def replay(self, from_index: int = 1) -> Iterator[tuple[int, bytes]]: ...


class TermStore(Protocol):
    """The current term and the vote cast in it; and a hint of the commit index."""

    def load(self) -> tuple[int, int]: ...

    def save(self, term: int, voted_for: int) -> None: ...

    def load_commit_hint(self) -> int: ...

    def save_commit_hint(self, index: int) -> None: ...


class SnapshotChunks(Protocol):
    """The raw bytes of one snapshot file, for sending to a follower."""

    def read(self, offset: int, length: int) -> bytes: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class SnapshotInstall(Protocol):
    """A leader's snapshot being received, chunk by chunk, in order."""

    index: int
    term: int

    @property
    def offset(self) -> int: ...

    def write(self, offset: int, data: bytes) -> None: ...

    def finish(self) -> SnapshotMeta: ...

    def abort(self) -> None: ...


class SnapshotFiles(Protocol):
    """The snapshots of the state machine: the newest is what a restart loads."""

    def save(self, index: int, term: int, payload: bytes,
             members: Sequence[int]) -> SnapshotMeta: ...

    def begin_install(self, index: int, term: int) -> SnapshotInstall: ...

    def latest_meta(self) -> SnapshotMeta | None: ...

    def latest(self) -> Snapshot | None: ...

    def load(self, index: int, term: int) -> Snapshot | None: ...

    def open_reader(self, meta: SnapshotMeta) -> SnapshotChunks: ...
