"""A segmented, durable write-ahead log of opaque records.

What it owns
------------
One directory holding ``wal-<first index>.log`` segment files and a ``LOCK``
file. Records are opaque byte strings numbered by consecutive indices starting
at 1. A record is durable only once :meth:`WriteAheadLog.sync` has returned;
:meth:`~WriteAheadLog.append` merely buffers it in memory. The caller does group
commit (append everything that arrived, then one ``sync()``), so this class is
single-threaded and does no locking of its own beyond an exclusive ``flock`` on
``LOCK`` that stops two logs from being opened on one directory.

On-disk format
--------------
A segment is named ``wal-%020d.log`` after the index of its first record; the
index of every other record is implicit (first index + position in the file).
Segments carry no file header. Each record is::

    u32 length    little-endian; len(payload) + 1, so a valid record never has
                  a zero length field, even with an empty payload
    u32 crc       zlib.crc32 over the record's index as a little-endian u64,
                  then the payload (so a record that ends up at the wrong
                  position, or in the wrong file, fails its check)
    payload       length - 1 bytes

Records are packed back to back from offset 0. Segments are preallocated to
``segment_bytes`` with ``posix_fallocate``, so the file size never changes
while records are appended and ``fdatasync`` has no file size to flush (ext4
and xfs still convert "unwritten" extents on first write; zero-filling the
segment instead would avoid that but measured no faster); the
unused tail of a segment is zeros, and an all-zero header marks the end of the
data. A record that does not fit in the rest of the current segment starts a
new one; a record larger than ``segment_bytes`` gets a segment sized to fit it.

Crash recovery: torn tail versus corruption
-------------------------------------------
Opening the log reads and CRC-checks every record of every segment. A *bad
record* is one whose header runs past the end of the file, whose payload runs
past the end of the file, whose CRC does not match, or whose header has a zero
length field but is not all zeros (or is all zeros but followed by non-zero
data). The rule, like etcd's, is that only a torn *end* is repaired:

* a bad record in the **last** segment that is followed only by zero bytes
  (nothing non-zero after the end of the bad record, as far as its own header
  claims it extends, clamped to the end of the file) is a write torn by a
  crash. It was never synced, so it is dropped: the file is cut back to the
  record's start with ``ftruncate`` and re-preallocated (an atomic way of
  zeroing the tail; overwriting with zeros could itself be torn and leave a
  zero header followed by stale data), the bytes discarded (from the record's
  start to the last non-zero byte of the file) are counted in
  :attr:`WriteAheadLog.repaired_bytes`, and nothing is logged;
* any other bad record, that is, one in an earlier segment or one followed by
  non-zero data, is corruption of data that may have been acknowledged, and
  :class:`CorruptWalError` names the file and the byte offset of the record.
  So is a segment whose first index does not continue the previous one,
  except an empty last segment after a gap: that is an interrupted
  :meth:`WriteAheadLog.reset`, finished by deleting the segments before it.

Limits of the rule: a bit flip in the very last synced record (or in a length
field making it point into the zero tail) looks exactly like a torn write and
is repaired, losing that record; and if a crash persisted the pages of an
unsynced batch out of order, so that a torn record is followed by intact later
records of the same batch, the log refuses to open (it fails safe).

Segment creation and deletion are made durable by fsyncing the directory, and
are ordered so that a crash at any point leaves a contiguous log: a new
segment is created only after the previous one's data is synced (so a sync()
that crosses a segment boundary costs one fdatasync per segment), truncation
deletes the newest segments first and compaction the oldest first.
``fsync=False`` skips every fsync and fdatasync (tests and benchmarks only).
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import os
import re
import struct
import time
import zlib
from array import array
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from zkactors.stats import FSYNC_BUCKETS, Histogram
from zkactors.storage.fileio import ShortReadError, fsync_dir, pread_exact, pwrite_all

__all__ = ["CorruptWalError", "ReadOnlyWal", "WalError", "WalFinding", "WriteAheadLog",
           "segment_name"]

_HEADER = struct.Struct("<II")  # length (+1 biased), crc
_INDEX = struct.Struct("<Q")
_HEADER_SIZE = _HEADER.size
_MAX_PAYLOAD = 0xFFFFFFFF - 1  # so that len + 1 still fits the u32 length field
_SEGMENT_RE = re.compile(r"^wal-(\d{20})\.log$")
_LOCK_NAME = "LOCK"
# replay() reads this many bytes of records per pread; big enough to amortise
# the syscall, small enough not to matter for memory.
_READ_CHUNK = 1 << 20
_CLOSED = "WAL is closed"


class WalError(Exception):
    """The write-ahead log cannot be used (I/O failure, locked directory, ...)."""


class CorruptWalError(WalError):
    """A record that was (or may have been) acknowledged is damaged."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        super().__init__(f"corrupt WAL record in {path} at offset {offset}: {reason}")


def segment_name(first_index: int) -> str:
    """File name of the segment whose first record has index ``first_index``."""
    return f"wal-{first_index:020d}.log"


class _Segment:
    """In-memory state of one segment file."""

    __slots__ = (
        "allocated",
        "durable_count",
        "durable_end",
        "end",
        "fd",
        "first",
        "offsets",
        "path",
        "pending",
        "size",
    )

    def __init__(self, first: int, path: str, size: int) -> None:
        self.first = first
        self.path = path
        self.size = size  # bytes this segment may hold (allocated on the next sync)
        self.allocated = 0  # bytes allocated on disk; 0: file not created yet
        self.fd = -1  # open only while this is the segment being appended to
        # Start offset of every record, synced or buffered. 8 bytes a record
        # buys O(1) seeks for replay(from_index) and truncate_after().
        self.offsets = array("Q")
        self.end = 0  # offset just past the last record, buffered ones included
        self.durable_end = 0
        self.durable_count = 0
        self.pending: list[bytes] = []  # header, payload, header, payload, ...


class WriteAheadLog:
    """A durable, append-only log of byte records with Raft-style truncation.

    Not thread-safe; one instance per directory (enforced with ``flock``).
    """

    def __init__(self, directory: str, segment_bytes: int = 64 << 20, fsync: bool = True) -> None:
        if segment_bytes < 1:
            raise ValueError("segment_bytes must be positive")
        self.directory = os.path.abspath(directory)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        #: Bytes of a torn last record discarded when the log was opened.
        self.repaired_bytes = 0
        #: How long each fdatasync of a sync took (for the node's metrics).
        self.sync_times = Histogram(FSYNC_BUCKETS)
        self._segments: list[_Segment] = []
        self._dirty: list[_Segment] = []  # segments with buffered records, in order
        self._next_index = 1
        # Why the log refuses further use (closed, or an I/O error left the
        # on-disk state unknown); None while usable.
        self._unusable: str | None = None
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, exist_ok=True)
            self._fsync_dir(os.path.dirname(self.directory))  # so the new directory survives a crash
        self._lock_fd = os.open(os.path.join(self.directory, _LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise WalError(f"WAL directory {self.directory} is in use by another WriteAheadLog") from None
            self._load()
        except BaseException:
            self._close_fds()
            raise

    # ------------------------------------------------------------------ state

    @property
    def first_index(self) -> int:
        """Index of the first record held (the next index if the log is empty)."""
        return self._segments[0].first

    @property
    def last_index(self) -> int:
        """Index of the last record appended, synced or not (first_index - 1 if empty)."""
        return self._next_index - 1

    # ------------------------------------------------------------------ writing

    def append(self, payload: bytes) -> int:
        """Buffer one record and return its index. Not durable until :meth:`sync`."""
        if self._unusable is not None:
            raise WalError(self._unusable)
        if type(payload) is not bytes:
            payload = bytes(payload)  # the caller may reuse a bytearray before sync()
        n = len(payload)
        if n > _MAX_PAYLOAD:
            raise ValueError(f"WAL record of {n} bytes is too large")
        index = self._next_index
        size = _HEADER_SIZE + n
        seg = self._segments[-1]
        if seg.end + size > seg.size:
            seg = self._roll(index, size)
        if not seg.pending:
            self._dirty.append(seg)
        seg.offsets.append(seg.end)
        seg.pending.append(_HEADER.pack(n + 1, zlib.crc32(payload, zlib.crc32(_INDEX.pack(index)))))
        seg.pending.append(payload)
        seg.end += size
        self._next_index = index + 1
        return index

    def append_many(self, payloads: Iterable[bytes]) -> int:
        """Buffer several records; returns the index of the last one (last_index if none)."""
        append = self.append
        for payload in payloads:
            append(payload)
        return self._next_index - 1

    def sync(self) -> None:
        """Write every buffered record and make it durable.

        One write and one fdatasync per segment touched (normally one). If it
        raises, the log is unusable: after a failed fsync the kernel may have
        dropped the dirty pages, so retrying could report success for lost
        data. Reopen the directory to recover from what is on disk.
        """
        if self._unusable is not None:
            raise WalError(self._unusable)
        if not self._dirty:
            return
        with self._guard("sync"):
            last = self._segments[-1]
            for seg in self._dirty:
                if seg.allocated == 0:
                    # Created only now, after the previous segment's data was
                    # synced: a crash can never leave a gap between segments.
                    self._create(seg)
                elif seg.allocated < seg.size:
                    self._allocate(seg)  # an empty segment grown for an oversized record
                pwrite_all(seg.fd, b"".join(seg.pending), seg.durable_end)
                if self.fsync:
                    began = time.perf_counter()
                    os.fdatasync(seg.fd)
                    self.sync_times.observe(time.perf_counter() - began)
                seg.pending = []
                seg.durable_end = seg.end
                seg.durable_count = len(seg.offsets)
                if seg is not last:
                    os.close(seg.fd)
                    seg.fd = -1
            self._dirty = []

    def truncate_after(self, index: int) -> None:
        """Durably drop every record with an index greater than ``index``.

        Buffered records are synced first, so there is one on-disk state to cut.
        """
        if self._unusable is not None:
            raise WalError(self._unusable)
        if index >= self.last_index:
            return
        if index < self.first_index - 1:
            raise ValueError(f"cannot truncate after {index}: the log starts at {self.first_index}")
        self.sync()
        with self._guard("truncate_after"):
            cut_at = index + 1
            firsts = [s.first for s in self._segments]
            keep = bisect.bisect_right(firsts, cut_at)  # segments[keep-1] holds cut_at
            # Later segments go first, newest first: whenever we crash, what is
            # left is a contiguous log that is a prefix of the old one.
            for seg in reversed(self._segments[keep:]):
                self._delete(seg)
            del self._segments[keep:]
            seg = self._segments[-1]
            k = cut_at - seg.first
            if seg.fd < 0:
                seg.fd = os.open(seg.path, os.O_RDWR)
            self._cut(seg, seg.offsets[k])
            del seg.offsets[k:]
            seg.durable_count = k
            self._next_index = cut_at

    def compact_before(self, index: int) -> None:
        """Delete whole segments whose records all have indices below ``index``.

        The segment being appended to is never deleted, so ``first_index`` may
        stay below ``index``; records below ``index`` that are still held are
        the caller's to ignore. Nor is a segment whose successor is not on disk
        yet: after a crash the oldest segment file left names where numbering
        continues, and without one the WAL would start again at 1.
        """
        if self._unusable is not None:
            raise WalError(self._unusable)
        segs = self._segments
        n = 0
        # Segments with buffered records are the newest ones, never deleted here.
        while (n < len(segs) - 1 and segs[n + 1].first <= index and not segs[n].pending
               and segs[n + 1].allocated):
            n += 1
        with self._guard("compact_before"):
            # Oldest first, so a crash leaves a contiguous suffix.
            for _ in range(n):
                self._delete(segs[0])
                del segs[0]

    def reset(self, next_index: int) -> None:
        """Drop every record and continue numbering at ``next_index`` (> last_index).

        For a follower that installs a snapshot beyond the end of its log. The
        new empty segment is created before the old ones are deleted; a crash
        in between is finished on the next open.
        """
        if self._unusable is not None:
            raise WalError(self._unusable)
        if next_index <= self.last_index:
            raise ValueError(f"reset({next_index}) must move past last_index {self.last_index}")
        self.sync()
        with self._guard("reset"):
            last = self._segments[-1]
            if not last.offsets and last.first == next_index:
                old = self._segments[:-1]
            else:
                new = _Segment(next_index, self._path(next_index), self.segment_bytes)
                self._create(new)
                old = self._segments
                self._segments = old + [new]
            for seg in old:
                self._delete(seg)
            self._segments = self._segments[len(old):]
            self._next_index = next_index

    # ------------------------------------------------------------------ reading

    def replay(self, from_index: int = 1) -> Iterator[tuple[int, bytes]]:
        """Yield ``(index, payload)`` for synced records with index >= ``from_index``.

        ``from_index`` below ``first_index`` starts at ``first_index``. Records
        not yet synced are not included; call :meth:`sync` first. Every record
        is CRC-checked again. Do not modify the log while iterating.
        """
        if self._unusable is not None:
            raise WalError(self._unusable)
        start = max(from_index, self.first_index)
        for seg in list(self._segments):
            count = seg.durable_count
            if seg.first + count <= start:
                continue
            yield from _read_records(seg, max(start - seg.first, 0), count)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Sync anything buffered, then release the files. Idempotent."""
        if self._unusable == _CLOSED:
            return
        try:
            if self._unusable is None:
                self.sync()
        finally:
            self._close_fds()
            self._unusable = _CLOSED

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _path(self, first_index: int) -> str:
        return os.path.join(self.directory, segment_name(first_index))

    @contextlib.contextmanager
    def _guard(self, what: str) -> Generator[None, None, None]:
        """Refuse all further use if the body fails: the on-disk state is then unknown."""
        try:
            yield
        except Exception as exc:
            self._unusable = f"WAL is unusable after {what} failed ({exc!r}); reopen it"
            raise WalError(self._unusable) from exc
        except BaseException:
            self._unusable = f"WAL is unusable: {what} was interrupted; reopen it"
            raise

    def _close_fds(self) -> None:
        for seg in self._segments:
            if seg.fd >= 0:
                os.close(seg.fd)
                seg.fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # also releases the flock
            self._lock_fd = -1

    def _fsync_dir(self, directory: str | None = None) -> None:
        if self.fsync:
            fsync_dir(directory or self.directory)

    def _create(self, seg: _Segment) -> None:
        seg.fd = os.open(seg.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        self._allocate(seg)
        self._fsync_dir()

    def _allocate(self, seg: _Segment) -> None:
        os.posix_fallocate(seg.fd, 0, seg.size)
        if self.fsync:
            os.fsync(seg.fd)  # the size is metadata: a full fsync, once per segment
        seg.allocated = seg.size

    def _delete(self, seg: _Segment) -> None:
        if seg.fd >= 0:
            os.close(seg.fd)
            seg.fd = -1
        os.unlink(seg.path)
        self._fsync_dir()

    def _cut(self, seg: _Segment, offset: int) -> None:
        """Durably zero ``seg`` from ``offset`` on, atomically with respect to crashes.

        ftruncate either happens or not; overwriting with zeros could tear and
        leave a zero header followed by stale records, which reads as corruption.
        """
        os.ftruncate(seg.fd, offset)
        if self.fsync:
            os.fsync(seg.fd)
        seg.size = max(seg.allocated, self.segment_bytes)
        self._allocate(seg)
        seg.end = seg.durable_end = offset

    def _roll(self, index: int, size: int) -> _Segment:
        """The segment to put a record of ``size`` bytes with ``index`` in."""
        seg = self._segments[-1]
        if not seg.offsets:
            # Empty (fresh, or truncated to nothing): grow it rather than leave
            # an empty segment behind, whose name would clash with the new one.
            seg.size = size
            return seg
        seg = _Segment(index, self._path(index), max(self.segment_bytes, size))
        self._segments.append(seg)
        return seg

    def _load(self) -> None:
        found = sorted(
            (int(m.group(1)), name)
            for name in os.listdir(self.directory)
            if (m := _SEGMENT_RE.match(name))
        )
        if not found:
            seg = _Segment(1, self._path(1), self.segment_bytes)
            self._create(seg)
            self._segments = [seg]
            return
        segs: list[_Segment] = []
        for i, (first, name) in enumerate(found):
            is_last = i == len(found) - 1
            seg = _Segment(first, os.path.join(self.directory, name), 0)
            self._scan(seg, is_last)
            if segs:
                expected = segs[-1].first + len(segs[-1].offsets)
                if first != expected:
                    if is_last and not seg.offsets and first > expected:
                        # reset() crashed after creating its new segment:
                        # finish it by deleting the old ones, oldest first.
                        for old in segs:
                            self._delete(old)
                        segs = []
                    else:
                        raise CorruptWalError(
                            seg.path, 0, f"segment starts at index {first}, expected {expected}"
                        )
            segs.append(seg)
        self._segments = segs
        last = segs[-1]
        if last.allocated < self.segment_bytes:
            # Shorter than a full segment (crash while creating it, or torn
            # tail cut off): preallocate again before appending to it.
            last.size = self.segment_bytes
            self._allocate(last)
        self._next_index = last.first + len(last.offsets)

    def _scan(self, seg: _Segment, is_last: bool) -> None:
        """Validate every record of ``seg``, fill in its offsets, repair a torn tail."""
        fd = os.open(seg.path, os.O_RDWR if is_last else os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            data = _pread_exact(fd, size, 0, seg.path)
            off, problem, torn = _check_records(data, seg.first, seg.offsets)
            if problem:
                if not is_last or not torn:
                    raise CorruptWalError(seg.path, off, problem)
                # Torn tail: never synced, so never acknowledged. Drop it.
                self.repaired_bytes += len(data.rstrip(b"\0")) - off
                seg.fd, fd = fd, -1
                seg.allocated = size
                self._cut(seg, off)
            seg.end = seg.durable_end = off
            seg.durable_count = len(seg.offsets)
            seg.allocated = seg.size = max(size, seg.allocated)
            if is_last and fd >= 0:
                seg.fd, fd = fd, -1  # the segment appends go to
        finally:
            if fd >= 0:
                os.close(fd)


def _check_records(data: bytes, first: int, offsets: array) -> tuple[int, str, bool]:
    """Check the records of a segment's bytes ``data`` whose first index is
    ``first``, appending the offset of each good one to ``offsets``.

    Returns ``(end, problem, torn)``: the offset past the last good record, why the
    record there is bad ("" if there is none: the rest is the zero tail), and
    whether only zero bytes follow the bad record (as far as its header claims
    it extends) — a torn write, if this is the last segment (see the module
    docstring). Changes nothing on disk."""
    size = len(data)
    view = memoryview(data)
    index = first
    off = 0
    problem = ""
    bad_end = 0  # end of the bad record, as far as its header claims
    while True:
        if off + _HEADER_SIZE > size:
            if data.count(0, off) != size - off:
                problem, bad_end = "record header runs past end of file", size
            break
        length, crc = _HEADER.unpack_from(data, off)
        if length == 0:
            if crc != 0 or data.count(0, off) != size - off:
                problem, bad_end = "zero-length record header followed by data", off + _HEADER_SIZE
            break
        end = off + _HEADER_SIZE + length - 1
        if end > size:
            problem, bad_end = "record runs past end of file", size
            break
        if zlib.crc32(view[off + _HEADER_SIZE:end], zlib.crc32(_INDEX.pack(index))) != crc:
            problem, bad_end = "crc mismatch", end
            break
        offsets.append(off)
        off = end
        index += 1
    torn = bool(problem) and data.count(0, bad_end) == size - bad_end
    return off, problem, torn


@dataclass(frozen=True, slots=True)
class WalFinding:
    """Something wrong in a WAL directory, as :class:`ReadOnlyWal` found it.

    ``repairable``: a torn last record, which opening the log drops (it was never
    synced if a crash tore it; but a damaged last record looks the same). Anything
    else makes opening the log fail with :class:`CorruptWalError`."""

    path: str
    offset: int
    reason: str
    repairable: bool = False


class ReadOnlyWal:
    """A WAL directory checked without being changed, for ``zkctl verify``.

    Every segment is read and checked as opening a :class:`WriteAheadLog` would
    (the same record checks and the same rules for a torn tail and for gaps
    between segments) but nothing is repaired, preallocated, deleted or created,
    and the ``LOCK`` is not taken (the caller checks it). What opening the log
    would refuse or repair is in :attr:`findings`; the records that check out are
    served by :meth:`replay`, so :func:`zkactors.engine.state.recover` can run on
    it (as a :class:`~zkactors.engine.storage.LogStore`; :meth:`reset` only
    changes this view, as a start would change the directory).
    """

    def __init__(self, directory: str) -> None:
        self.directory = os.path.abspath(directory)
        self.findings: list[WalFinding] = []
        #: ``(path, what)``: what opening the log would finish or tidy (not problems).
        self.notes: list[tuple[str, str]] = []
        self._segments: list[_Segment] = []
        self._next_index = 1
        found = sorted(
            (int(m.group(1)), name)
            for name in os.listdir(self.directory)
            if (m := _SEGMENT_RE.match(name))
        )
        segs: list[_Segment] = []
        for i, (first, name) in enumerate(found):
            is_last = i == len(found) - 1
            seg = _Segment(first, os.path.join(self.directory, name), 0)
            with open(seg.path, "rb") as f:
                data = f.read()
            off, problem, torn = _check_records(data, first, seg.offsets)
            if problem:
                repairable = is_last and torn
                if repairable:
                    problem += (f" (a torn last record, {len(data.rstrip(bytes(1))) - off} "
                                "bytes: the node drops it when it starts)")
                self.findings.append(WalFinding(seg.path, off, problem, repairable))
            seg.end = seg.durable_end = off
            seg.durable_count = len(seg.offsets)
            # (After a damaged segment, where the next should start is unknown.)
            if segs and not (self.findings and self.findings[-1].path == segs[-1].path):
                expected = segs[-1].first + len(segs[-1].offsets)
                if first != expected:
                    if is_last and not seg.offsets and first > expected:
                        self.notes.append((seg.path, ("an interrupted log reset; the node "
                                                     "finishes it (deletes the segments before it)")))
                        segs = []
                    else:
                        self.findings.append(WalFinding(
                            seg.path, 0, f"segment starts at index {first}, expected {expected}"))
            segs.append(seg)
        if not segs:
            segs = [_Segment(1, self._path(1), 0)]
        self._segments = segs
        self._next_index = segs[-1].first + len(segs[-1].offsets)

    def _path(self, first_index: int) -> str:
        return os.path.join(self.directory, segment_name(first_index))

    def path_of(self, index: int) -> str:
        """The segment file that holds record ``index``."""
        firsts = [seg.first for seg in self._segments]
        return self._segments[max(0, bisect.bisect_right(firsts, index) - 1)].path

    @property
    def first_index(self) -> int:
        return self._segments[0].first

    @property
    def last_index(self) -> int:
        return self._next_index - 1

    def replay(self, from_index: int = 1) -> Iterator[tuple[int, bytes]]:
        """``(index, payload)`` of the records that check out, from ``from_index``."""
        start = max(from_index, self.first_index)
        for seg in self._segments:
            if seg.first + seg.durable_count <= start:
                continue
            yield from _read_records(seg, max(start - seg.first, 0), seg.durable_count)

    def reset(self, next_index: int) -> None:
        """What a start does to a log that ends before the newest snapshot: drop
        it and continue at ``next_index``. In this view only."""
        self.notes.append((self.directory, (f"the log ends at {self.last_index}, before the "
                                           f"newest snapshot; the node continues it at "
                                           f"{next_index}")))
        self._segments = [_Segment(next_index, self._path(next_index), 0)]
        self._next_index = next_index

    def _read_only(self, *_: object) -> None:
        raise WalError(f"{self.directory} is open read-only")

    append_many = sync = truncate_after = compact_before = _read_only  # type: ignore[assignment]


def _read_records(seg: _Segment, k: int, count: int) -> Iterator[tuple[int, bytes]]:
    """Records ``k`` to ``count - 1`` of ``seg``, read in chunks and CRC-checked."""
    offsets = seg.offsets
    fd = os.open(seg.path, os.O_RDONLY)
    try:
        while k < count:
            start = offsets[k]
            # Records wholly inside the next chunk (at least one, however big).
            j = max(bisect.bisect_right(offsets, start + _READ_CHUNK, k + 1, count) - 1, k + 1)
            stop = offsets[j] if j < count else seg.durable_end
            buf = _pread_exact(fd, stop - start, start, seg.path)
            for i in range(k, j):
                rs = offsets[i] - start
                re_ = (offsets[i + 1] if i + 1 < count else seg.durable_end) - start
                length, crc = _HEADER.unpack_from(buf, rs)
                payload = buf[rs + _HEADER_SIZE:re_]
                index = seg.first + i
                if length != len(payload) + 1 or zlib.crc32(payload, zlib.crc32(_INDEX.pack(index))) != crc:
                    raise CorruptWalError(seg.path, offsets[i], "crc mismatch on replay")
                yield index, payload
            k = j
    finally:
        os.close(fd)


def _pread_exact(fd: int, n: int, offset: int, path: str) -> bytes:
    try:
        return pread_exact(fd, n, offset)
    except ShortReadError:
        raise WalError(f"{path} is shorter than expected (wanted {n} bytes at {offset})") \
            from None
