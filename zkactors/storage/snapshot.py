"""Durable point-in-time snapshots of the replicated state machine.

What it owns
------------
One directory of snapshot files. A snapshot is an opaque payload (the
caller's serialised znode tree and client-dedup table; never interpreted
here) plus the metadata Raft needs about it: ``index`` (the last log index it
includes), ``term`` (that entry's term) and ``members`` (the configuration at
that index). The store writes snapshots made locally (:meth:`SnapshotStore.save`)
and snapshots received from a leader chunk by chunk
(:meth:`SnapshotStore.begin_install`), loads the newest one
(:meth:`SnapshotStore.latest`, or just its metadata with
:meth:`SnapshotStore.latest_meta`), and serves a snapshot's raw file bytes for
sending to a lagging follower (:meth:`SnapshotStore.open_reader`). It never
goes backwards: a snapshot older than the newest one held is refused.

Single-threaded, and one store per directory: opening a store deletes leftover
temporary files, which would break another store's save in progress.

On-disk format
--------------
A snapshot is named ``snap-%020d-%d.snap`` after its index and term. All
integers are little-endian::

    offset  size
    0       8           magic b"ZKSNAP\\0\\0"
    8       4           u32 format version (1)
    12      4           u32 meta_len
    16      8           u64 payload_len
    24      4           u32 payload_crc   zlib.crc32 of the payload
    28      4           u32 header_crc    zlib.crc32 of bytes 0-27, then the meta
    32      meta_len    meta: msgpack array [index, term, [member ids...]]
    ...     payload_len payload

The file is exactly ``32 + meta_len + payload_len`` bytes long. Between them
the two CRCs cover every byte of the file (``header_crc`` covers
``payload_crc``); they are split so the metadata can be read and trusted
without reading the payload, which may be up to a GiB. The index and term in
the metadata must agree with the file name.

Durability
----------
A snapshot is written to a temporary file in the same directory
(``<final name>.tmp``, or ``<final name>.install.tmp`` for an
:class:`Installer`), fsynced, renamed over its final name (atomic: a crash
leaves the old state or the new one) and the directory is fsynced; only then
does :meth:`SnapshotStore.save` return, and only then may the caller compact
the WAL up to the snapshot's index. Snapshots beyond the ``keep`` newest are
deleted afterwards. ``fsync=False`` skips every fsync (tests and benchmarks
only).
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import msgpack

from zkactors.storage.fileio import ShortReadError, fsync_dir, pread_exact, write_all

__all__ = [
    "DEFAULT_MAX_BYTES",
    "CorruptSnapshotError",
    "Installer",
    "Snapshot",
    "SnapshotError",
    "SnapshotMeta",
    "SnapshotReader",
    "SnapshotStore",
    "SnapshotTooLargeError",
    "decode_snapshot",
    "encode_snapshot",
    "read_snapshot_file",
    "snapshot_files",
    "snapshot_name",
]

DEFAULT_MAX_BYTES = 1 << 30

_MAGIC = b"ZKSNAP\0\0"
_VERSION = 1
_PREFIX = struct.Struct("<8sIIQI")  # magic, version, meta_len, payload_len, payload_crc
_CRC = struct.Struct("<I")
_FIXED_SIZE = _PREFIX.size + _CRC.size  # 32
# The metadata is three small values; a bigger length field is damage, and
# bounding it keeps a bad header from making us allocate or read a lot.
_MAX_META = 1 << 20
_U64_LIMIT = 1 << 64  # msgpack's and the 20-digit file name's limit
_NAME_RE = re.compile(r"^snap-(\d{20})-(\d+)\.snap$")
_TEMP_RE = re.compile(r"^snap-\d{20}-\d+\.snap(?:\.install)?\.tmp$")
_SAVE_SUFFIX = ".tmp"
_INSTALL_SUFFIX = ".install.tmp"
_NO_FALLBACK = (
    "refusing to fall back to an older snapshot: the WAL may already be compacted "
    "past it, so starting from it would silently lose acknowledged writes"
)


class SnapshotError(Exception):
    """A snapshot cannot be written, read or installed."""


class CorruptSnapshotError(SnapshotError):
    """A snapshot file (or one being received) fails its checks; names the file."""

    def __init__(self, path: str, reason: str, hint: str = "") -> None:
        self.path = path
        self.reason = reason
        message = f"corrupt snapshot {path}: {reason}"
        if hint:
            message += f"; {hint}"
        super().__init__(message)


class SnapshotTooLargeError(SnapshotError, ValueError):
    """A payload is larger than the store's ``max_bytes``."""


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """What a snapshot covers, and where its file is.

    ``size`` is the size of the whole file: the bytes that
    :class:`SnapshotReader` serves and an :class:`Installer` receives.
    """

    index: int
    term: int
    members: tuple[int, ...]
    size: int
    path: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta
    payload: bytes


def snapshot_name(index: int, term: int) -> str:
    """File name of the snapshot whose last included entry is ``(index, term)``."""
    return f"snap-{index:020d}-{term}.snap"


def encode_snapshot(index: int, term: int, members: Sequence[int], payload: bytes) -> bytes:
    """The bytes of a snapshot file, exactly as :meth:`SnapshotStore.save` writes
    them and an :class:`Installer` receives them (for stores kept in memory)."""
    head = _encode_head(index, term, _check_meta(index, term, members), len(payload),
                        zlib.crc32(payload))
    return head + payload


def decode_snapshot(data: bytes, where: str = "<memory>") -> Snapshot:
    """Verify the bytes of a whole snapshot file (every check :meth:`SnapshotStore.
    latest` makes); :class:`CorruptSnapshotError` naming ``where`` if one fails."""
    try:
        if len(data) < _FIXED_SIZE:
            raise _Invalid(f"{len(data)} bytes, shorter than the {_FIXED_SIZE}-byte header")
        head = _parse_fixed(data[:_FIXED_SIZE])
        if len(data) != head.total:
            raise _Invalid(f"{len(data)} bytes, the header declares {head.total}")
        index, term, members = _parse_meta(head, data[_FIXED_SIZE:head.head_size])
        payload = data[head.head_size:]
        if zlib.crc32(payload) != head.payload_crc:
            raise _Invalid("payload checksum mismatch")
    except _Invalid as exc:
        raise CorruptSnapshotError(where, str(exc)) from None
    return Snapshot(SnapshotMeta(index, term, members, len(data), where), payload)


class _Invalid(Exception):
    """Why some snapshot bytes fail their checks; the caller adds the file name."""


@dataclass(frozen=True, slots=True)
class _Head:
    """The fixed 32-byte header, parsed but with its header_crc not yet checked."""

    prefix: bytes  # bytes 0-27, the start of what header_crc covers
    meta_len: int
    payload_len: int
    payload_crc: int
    header_crc: int

    @property
    def head_size(self) -> int:
        return _FIXED_SIZE + self.meta_len

    @property
    def total(self) -> int:
        return _FIXED_SIZE + self.meta_len + self.payload_len


class SnapshotStore:
    """The snapshots of one node, in one directory. Not thread-safe."""

    def __init__(
        self,
        directory: str,
        keep: int = 2,
        max_bytes: int = DEFAULT_MAX_BYTES,
        fsync: bool = True,
    ) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.directory = os.path.abspath(directory)
        self.keep = keep
        self.max_bytes = max_bytes
        self.fsync = fsync
        self._installer: Installer | None = None
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, exist_ok=True)
            self._fsync_dir(os.path.dirname(self.directory))  # so the new directory survives a crash
        for name in os.listdir(self.directory):
            if _TEMP_RE.match(name):
                # A save or install that a crash interrupted: never renamed,
                # so never reported durable. Not fsyncing the directory after
                # removal is fine; if the unlink is lost, the next open redoes it.
                _unlink_quietly(os.path.join(self.directory, name))

    # ------------------------------------------------------------------ writing

    def save(self, index: int, term: int, payload: bytes, members: Sequence[int]) -> SnapshotMeta:
        """Durably store a snapshot; when this returns, the WAL may be compacted up to ``index``.

        ``index`` must be newer than the newest snapshot held, or equal to it
        with the same term (an idempotent overwrite). Raises ValueError
        otherwise, and :class:`SnapshotTooLargeError` for a payload larger than
        ``max_bytes``.
        """
        members_t = _check_meta(index, term, members)
        view = memoryview(payload).cast("B")
        if view.nbytes > self.max_bytes:
            raise SnapshotTooLargeError(
                f"snapshot payload of {view.nbytes} bytes exceeds max_bytes={self.max_bytes}"
            )
        self._check_not_backwards(index, term)
        head = _encode_head(index, term, members_t, view.nbytes, zlib.crc32(view))
        final = self._path(index, term)
        tmp = final + _SAVE_SUFFIX
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            try:
                write_all(fd, head)
                write_all(fd, view)  # separately: joining would copy a payload of up to a GiB
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            self._publish(tmp, final)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return SnapshotMeta(index, term, members_t, len(head) + view.nbytes, final)

    def begin_install(self, index: int, term: int) -> Installer:
        """Start receiving the raw bytes of a leader's snapshot at ``(index, term)``.

        Same never-backwards rule as :meth:`save` (checked again by
        :meth:`Installer.finish`). An install still in progress is aborted:
        a follower receives one snapshot at a time, and a new one supersedes it.
        """
        _check_meta(index, term, ())
        self._check_not_backwards(index, term)
        if self._installer is not None:
            # Before opening the new temp file, which may have the same name.
            self._installer._abort(f"superseded by begin_install({index}, {term})")
        final = self._path(index, term)
        tmp = final + _INSTALL_SUFFIX
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._installer = Installer(self, index, term, final, tmp, fd)
        return self._installer

    # ------------------------------------------------------------------ reading

    def latest_meta(self) -> SnapshotMeta | None:
        """Metadata of the newest snapshot, reading only its header; None if there is none.

        The header is verified (magic, version, length, header CRC, agreement
        with the file name) but the payload is not read; :meth:`latest` checks
        it. Raises :class:`CorruptSnapshotError` if the newest header is bad,
        for the reason given in :meth:`latest`.
        """
        with self._open(self._newest()) as found:
            return None if found is None else found[2]

    def latest(self) -> Snapshot | None:
        """Load and fully verify the newest snapshot; None if there is none.

        If the newest snapshot is damaged this raises
        :class:`CorruptSnapshotError` naming the file rather than falling back
        to an older one: the WAL may already have been compacted past that
        older snapshot, and the entries in between were acknowledged to
        clients, so starting from it would lose them without a word. An
        operator can decide (for instance, knowing the WAL or a peer still
        covers the gap) to move the bad file aside.
        """
        return self._load(self._newest())

    def load(self, index: int, term: int) -> Snapshot | None:
        """Load and fully verify the snapshot through ``(index, term)``, if it is
        still held (the ``keep`` newest are); None if it is not."""
        path = self._path(index, term)
        return self._load((index, term, path)) if os.path.exists(path) else None

    def _load(self, which: tuple[int, int, str] | None) -> Snapshot | None:
        with self._open(which) as found:
            if found is None:
                return None
            fd, path, meta, head = found
            if head.payload_len > self.max_bytes:
                raise SnapshotTooLargeError(
                    f"snapshot {path} has a payload of {head.payload_len} bytes, more than "
                    f"max_bytes={self.max_bytes}; raise the limit to load it"
                )
            payload = _pread_exact(fd, head.payload_len, head.head_size)
            if zlib.crc32(payload) != head.payload_crc:
                raise _Invalid("payload checksum mismatch")
        return Snapshot(meta, payload)

    @contextlib.contextmanager
    def _open(self, which: tuple[int, int, str] | None
              ) -> Iterator[tuple[int, str, SnapshotMeta, _Head] | None]:
        """A snapshot's file ``(index, term, path)``, open, with its verified header
        (None for None). An :class:`_Invalid` raised here or in the ``with`` body
        becomes :class:`CorruptSnapshotError`, with no fallback (see :meth:`latest`)."""
        if which is None:
            yield None
            return
        index, term, path = which
        fd = os.open(path, os.O_RDONLY)
        try:
            meta, head = _read_head(fd, path, index, term)
            yield fd, path, meta, head
        except _Invalid as exc:
            raise CorruptSnapshotError(path, str(exc), _NO_FALLBACK) from None
        finally:
            os.close(fd)

    def open_reader(self, meta: SnapshotMeta) -> SnapshotReader:
        """Open the snapshot described by ``meta`` to read its raw file bytes.

        The header is verified; the payload is not, because the receiving
        :class:`Installer` checks the same CRC over the bytes it gets. The
        reader keeps the file open, so a snapshot pruned meanwhile stays
        readable until the reader is closed.
        """
        try:
            fd = os.open(meta.path, os.O_RDONLY)
        except FileNotFoundError:
            raise SnapshotError(f"snapshot {meta.path} no longer exists (pruned by a newer one?)") from None
        try:
            current, _ = _read_head(fd, meta.path, meta.index, meta.term)
        except _Invalid as exc:
            os.close(fd)
            raise CorruptSnapshotError(meta.path, str(exc)) from None
        except BaseException:
            os.close(fd)
            raise
        return SnapshotReader(fd, current)

    def open_chunks(self, meta: SnapshotMeta, chunk_bytes: int) -> Iterator[tuple[int, bytes]]:
        """``(offset, data)`` chunks of the raw snapshot file, to feed :meth:`Installer.write`.

        The file is opened now, not at the first ``next()``, and closed when
        the iterator is exhausted or discarded.
        """
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be positive")
        reader = self.open_reader(meta)
        return _drain(reader, chunk_bytes)

    # ------------------------------------------------------------------ internals

    def _path(self, index: int, term: int) -> str:
        return os.path.join(self.directory, snapshot_name(index, term))

    def _list(self) -> list[tuple[int, int, str]]:
        """(index, term, path) of every snapshot file, oldest first."""
        return sorted(
            (int(m.group(1)), int(m.group(2)), os.path.join(self.directory, name))
            for name in os.listdir(self.directory)
            if (m := _NAME_RE.match(name))
        )

    def _newest(self) -> tuple[int, int, str] | None:
        snaps = self._list()
        return snaps[-1] if snaps else None

    def _check_not_backwards(self, index: int, term: int) -> None:
        newest = self._newest()
        if newest is None:
            return
        n_index, n_term, path = newest
        if index < n_index:
            raise ValueError(
                f"snapshot at index {index} would go backwards: {path} is at index {n_index}"
            )
        if index == n_index and term != n_term:
            # Committed entries never change term; this is a caller bug.
            raise ValueError(f"snapshot at index {index} has term {term}, but {path} has term {n_term}")
        if term < n_term:
            # Terms never decrease along a log.
            raise ValueError(f"snapshot at index {index} has term {term}, older than {path}")

    def _publish(self, tmp: str, final: str) -> None:
        """Atomically make the synced ``tmp`` the snapshot ``final``, durably; then prune."""
        os.replace(tmp, final)
        self._fsync_dir()
        # Deletions need no fsync: an old snapshot that reappears after a crash
        # is never the newest, and the next save prunes it again.
        for _, _, path in self._list()[:-self.keep]:
            _unlink_quietly(path)

    def _fsync_dir(self, directory: str | None = None) -> None:
        if self.fsync:
            fsync_dir(directory or self.directory)


def snapshot_files(directory: str) -> tuple[list[tuple[int, int, str]], list[str]]:
    """What a snapshot directory holds, without changing it: ``(index, term, path)``
    of every snapshot file, oldest first, and the paths of leftover temporary
    files (a save or install a crash interrupted; a store deletes them when it
    opens)."""
    names = sorted(os.listdir(directory))
    snaps = sorted((int(m.group(1)), int(m.group(2)), os.path.join(directory, name))
                   for name in names if (m := _NAME_RE.match(name)))
    temps = [os.path.join(directory, name) for name in names if _TEMP_RE.match(name)]
    return snaps, temps


def read_snapshot_file(path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Snapshot:
    """Load and fully verify one snapshot file (every check :meth:`SnapshotStore.
    latest` makes, the file name's index and term included) without a store, so
    without touching the directory; :class:`CorruptSnapshotError` naming it if a
    check fails."""
    m = _NAME_RE.match(os.path.basename(path))
    if m is None:
        raise CorruptSnapshotError(path, "not a snapshot file name (snap-INDEX-TERM.snap)")
    fd = os.open(path, os.O_RDONLY)
    try:
        meta, head = _read_head(fd, path, int(m.group(1)), int(m.group(2)))
        if head.payload_len > max_bytes:
            raise SnapshotTooLargeError(
                f"snapshot {path} has a payload of {head.payload_len} bytes, more than "
                f"max_bytes={max_bytes}")
        payload = _pread_exact(fd, head.payload_len, head.head_size)
        if zlib.crc32(payload) != head.payload_crc:
            raise _Invalid("payload checksum mismatch")
    except _Invalid as exc:
        raise CorruptSnapshotError(path, str(exc)) from None
    finally:
        os.close(fd)
    return Snapshot(meta, payload)


class SnapshotReader:
    """The raw bytes of one snapshot file, for shipping to a follower.

    Get one from :meth:`SnapshotStore.open_reader`; close it when done.
    """

    def __init__(self, fd: int, meta: SnapshotMeta) -> None:
        self._fd = fd
        #: The snapshot as read from the opened file (``size`` is the file's).
        self.meta = meta

    @property
    def size(self) -> int:
        return self.meta.size

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``; fewer only at the end of the file."""
        if self._fd < 0:
            raise ValueError("snapshot reader is closed")
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        try:
            return _pread_exact(self._fd, max(0, min(length, self.meta.size - offset)), offset)
        except _Invalid as exc:
            raise CorruptSnapshotError(self.meta.path, str(exc)) from None

    def chunks(self, chunk_bytes: int, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """``(offset, data)`` for the file from ``start`` on, ``chunk_bytes`` at a time."""
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be positive")
        offset = start
        while offset < self.meta.size:
            data = self.read(offset, chunk_bytes)
            yield offset, data
            offset += len(data)

    def close(self) -> None:
        """Release the file. Idempotent."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Installer:
    """Receives a leader's snapshot as raw file bytes and installs it atomically.

    Get one from :meth:`SnapshotStore.begin_install`. Bytes must arrive in
    order (:meth:`write` at :attr:`offset`); the header is checked as soon as
    it is complete, so a wrong or oversized snapshot is refused before it
    fills the disk. Any failed check aborts the install (the temporary file
    is deleted) and raises :class:`CorruptSnapshotError` (or
    :class:`SnapshotTooLargeError`); after that, and after :meth:`finish` or
    :meth:`abort`, the installer refuses further use.
    """

    def __init__(self, store: SnapshotStore, index: int, term: int, final: str, tmp: str, fd: int) -> None:
        self.index = index
        self.term = term
        self._store = store
        self._final = final
        self._tmp = tmp
        self._fd = fd
        self._offset = 0
        # Header and metadata bytes, kept until they are complete and parsed.
        self._head_buf = bytearray()
        self._head: _Head | None = None
        self._members: tuple[int, ...] | None = None  # set once the metadata is verified
        self._crc = 0  # running zlib.crc32 of the payload bytes received
        self._closed: str | None = None  # why no more use is allowed

    @property
    def offset(self) -> int:
        """Bytes received so far: the offset the next :meth:`write` must start at."""
        return self._offset

    def write(self, offset: int, data: bytes) -> None:
        """Append ``data``, which must start at :attr:`offset`.

        A non-contiguous ``offset`` (a gap, or a chunk sent again) raises
        ValueError and changes nothing, so the caller can answer with the
        offset it expects. Bad data raises :class:`CorruptSnapshotError` and
        aborts the install.
        """
        self._check_usable()
        if offset != self._offset:
            raise ValueError(f"snapshot chunk at offset {offset} is not contiguous: expected {self._offset}")
        view = memoryview(data).cast("B")
        try:
            self._absorb(view)
            write_all(self._fd, view)
        except _Invalid as exc:
            self._abort(f"aborted: {exc}")
            raise CorruptSnapshotError(self._tmp, str(exc)) from None
        except BaseException as exc:
            self._abort(f"aborted: {exc!r}")
            raise
        self._offset += view.nbytes

    def finish(self) -> SnapshotMeta:
        """Verify the whole file, then install it durably and prune older snapshots.

        Raises :class:`CorruptSnapshotError` (incomplete, or CRC mismatch) or
        ValueError (a snapshot at least as new was stored meanwhile); either
        way nothing is installed and the temporary file is gone.
        """
        self._check_usable()
        try:
            head = self._head
            if head is None or self._members is None or self._offset != head.total:
                expected = "an unknown number of" if head is None else str(head.total)
                raise _Invalid(f"incomplete: received {self._offset} of {expected} bytes")
            if self._crc != head.payload_crc:
                raise _Invalid("payload checksum mismatch")
            if self._store.fsync:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            self._store._check_not_backwards(self.index, self.term)
            self._store._publish(self._tmp, self._final)
        except _Invalid as exc:
            self._abort(f"aborted: {exc}")
            raise CorruptSnapshotError(self._tmp, str(exc)) from None
        except BaseException as exc:
            self._abort(f"aborted: {exc!r}")
            raise
        self._close("finished")
        return SnapshotMeta(self.index, self.term, self._members, head.total, self._final)

    def abort(self) -> None:
        """Give up: delete the temporary file. Idempotent; a no-op after :meth:`finish`."""
        if self._closed is None:
            self._abort("aborted")

    # ------------------------------------------------------------------ internals

    def _check_usable(self) -> None:
        if self._closed is not None:
            raise ValueError(f"snapshot installer for index {self.index} is closed ({self._closed})")

    def _close(self, why: str) -> None:
        self._closed = why
        if self._store._installer is self:
            self._store._installer = None

    def _abort(self, why: str) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        _unlink_quietly(self._tmp)
        self._close(why)

    def _absorb(self, view: memoryview) -> None:
        """Check ``view`` (the bytes at :attr:`offset`) before it is written; raise _Invalid."""
        end = self._offset + view.nbytes
        buf = self._head_buf
        if self._head is None:
            take = min(_FIXED_SIZE - len(buf), view.nbytes)
            buf += view[:take]
            view = view[take:]
            if len(buf) < _FIXED_SIZE:
                return
            self._head = _parse_fixed(bytes(buf))
        head = self._head
        if self._members is None:
            take = min(head.head_size - len(buf), view.nbytes)
            buf += view[:take]
            view = view[take:]
            if len(buf) < head.head_size:
                return
            index, term, self._members = _parse_meta(head, bytes(buf[_FIXED_SIZE:]))
            if (index, term) != (self.index, self.term):
                raise _Invalid(
                    f"received snapshot is at index {index} term {term}, "
                    f"expected index {self.index} term {self.term}"
                )
            # Checked once the header is verified (a flipped length bit is
            # damage, not size) but still before any payload reaches the disk.
            if head.payload_len > self._store.max_bytes:
                raise SnapshotTooLargeError(
                    f"snapshot being installed at {self._tmp} declares a payload of "
                    f"{head.payload_len} bytes, more than max_bytes={self._store.max_bytes}"
                )
            self._head_buf = bytearray()
        if end > head.total:
            raise _Invalid(f"data runs past the {head.total} bytes the header declares")
        self._crc = zlib.crc32(view, self._crc)


def _drain(reader: SnapshotReader, chunk_bytes: int) -> Iterator[tuple[int, bytes]]:
    with reader:
        yield from reader.chunks(chunk_bytes)


def _check_meta(index: int, term: int, members: Sequence[int]) -> tuple[int, ...]:
    """Validate snapshot metadata given by a caller; returns the members as a tuple."""
    for name, value in (("index", index), ("term", term)):
        if type(value) is not int or not 0 <= value < _U64_LIMIT:
            raise ValueError(f"snapshot {name} must be an int in [0, 2**64), not {value!r}")
    members_t = tuple(members)
    if not all(type(m) is int and 0 <= m < _U64_LIMIT for m in members_t):
        raise ValueError(f"snapshot members must be ints in [0, 2**64), not {members!r}")
    return members_t


def _encode_head(index: int, term: int, members: tuple[int, ...], payload_len: int, payload_crc: int) -> bytes:
    meta = msgpack.packb([index, term, list(members)])
    prefix = _PREFIX.pack(_MAGIC, _VERSION, len(meta), payload_len, payload_crc)
    return prefix + _CRC.pack(zlib.crc32(meta, zlib.crc32(prefix))) + meta


def _parse_fixed(fixed: bytes) -> _Head:
    magic, version, meta_len, payload_len, payload_crc = _PREFIX.unpack_from(fixed)
    if magic != _MAGIC:
        raise _Invalid(f"bad magic {magic!r}, not a zkactors snapshot")
    if version != _VERSION:
        raise _Invalid(f"unsupported format version {version} (this code reads version {_VERSION})")
    if meta_len > _MAX_META:
        raise _Invalid(f"metadata length {meta_len} exceeds {_MAX_META}")
    (header_crc,) = _CRC.unpack_from(fixed, _PREFIX.size)
    return _Head(fixed[:_PREFIX.size], meta_len, payload_len, payload_crc, header_crc)


def _parse_meta(head: _Head, meta: bytes) -> tuple[int, int, tuple[int, ...]]:
    """(index, term, members) from the metadata bytes, after checking header_crc."""
    if zlib.crc32(meta, zlib.crc32(head.prefix)) != head.header_crc:
        raise _Invalid("header checksum mismatch")
    try:
        index, term, members = msgpack.unpackb(meta)
        return index, term, _check_meta(index, term, members)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        # The checksum matched, so whoever wrote this wrote garbage.
        raise _Invalid(f"malformed metadata: {exc}") from None


def _read_head(fd: int, path: str, index: int, term: int) -> tuple[SnapshotMeta, _Head]:
    """Read and verify the header of the snapshot file ``path`` named for ``(index, term)``."""
    size = os.fstat(fd).st_size
    if size < _FIXED_SIZE:
        raise _Invalid(f"file is {size} bytes, shorter than the {_FIXED_SIZE}-byte header")
    head = _parse_fixed(_pread_exact(fd, _FIXED_SIZE, 0))
    if size < head.head_size:
        raise _Invalid(f"file is {size} bytes, shorter than its {head.head_size}-byte header")
    got_index, got_term, members = _parse_meta(head, _pread_exact(fd, head.meta_len, _FIXED_SIZE))
    if (got_index, got_term) != (index, term):
        raise _Invalid(f"header says index {got_index} term {got_term}, the file name index {index} term {term}")
    if size != head.total:
        what = "truncated" if size < head.total else "trailing data"
        raise _Invalid(f"{what}: file is {size} bytes, header declares {head.total}")
    return SnapshotMeta(index, term, members, size, path), head


def _pread_exact(fd: int, n: int, offset: int) -> bytes:
    try:
        return pread_exact(fd, n, offset)
    except ShortReadError:
        # The size was checked on open, so the file shrank under us.
        raise _Invalid(f"file ended early (wanted {n} bytes at offset {offset})") from None


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
