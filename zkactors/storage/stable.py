"""The durable term and vote: Raft's "stable store", one small file.

Written by replacing the file atomically (write a temporary file, fsync it,
rename it over the old one, fsync the directory), so a crash leaves either the
old or the new state, never a mix. It changes only on elections, so three
fsyncs per change are cheap enough.

Beside it, a hint of the commit index (etcd keeps the commit in its HardState
too): what this node last knew committed and had on disk. A restart applies its
own log up to there at once, before it hears any leader. It is written in place
and never fsynced, many times a second: a hint that is old, missing or torn (its
checksum fails) only means a slower restart, never a wrong one, since whatever
it names was committed when it was written, and committed entries are never
taken back.
"""

from __future__ import annotations

import os
import zlib

import msgpack

STATE_FILE = "raft-state"
COMMIT_HINT_FILE = "commit-hint"
#: A commit hint on disk: crc32 (4 bytes) and the index (8), little-endian.
_HINT_BYTES = 12


class StableStoreError(Exception):
    """The state file exists but cannot be trusted; the message names it."""


class StableStore:
    def __init__(self, directory: str, fsync: bool = True) -> None:
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.path = os.path.join(directory, STATE_FILE)
        self.fsync = fsync
        self.hint_path = os.path.join(directory, COMMIT_HINT_FILE)
        self._hint_fd = -1

    def load(self) -> tuple[int, int]:
        """(term, voted_for); (0, 0) when nothing was ever saved."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return 0, 0
        if len(raw) < 4 or zlib.crc32(raw[4:]) != int.from_bytes(raw[:4], "little"):
            raise StableStoreError(f"{self.path}: checksum mismatch; refusing to guess "
                                   "the term and vote")
        term, voted_for = msgpack.unpackb(raw[4:])
        return term, voted_for

    def save(self, term: int, voted_for: int) -> None:
        body = msgpack.packb([term, voted_for])
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(zlib.crc32(body).to_bytes(4, "little") + body)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.path)
        if self.fsync:
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def load_commit_hint(self) -> int:
        """The commit index last hinted; 0 if none, or if the file is torn."""
        try:
            with open(self.hint_path, "rb") as f:
                raw = f.read(_HINT_BYTES)
        except FileNotFoundError:
            return 0
        if len(raw) != _HINT_BYTES or zlib.crc32(raw[4:]) != int.from_bytes(raw[:4], "little"):
            return 0
        return int.from_bytes(raw[4:], "little")

    def save_commit_hint(self, index: int) -> None:
        """One 12-byte write in place; not fsynced (see the module's doc)."""
        if self._hint_fd < 0:
            self._hint_fd = os.open(self.hint_path, os.O_WRONLY | os.O_CREAT, 0o644)
        body = index.to_bytes(8, "little")
        os.pwrite(self._hint_fd, zlib.crc32(body).to_bytes(4, "little") + body, 0)

    def close(self) -> None:
        if self._hint_fd >= 0:
            os.close(self._hint_fd)
            self._hint_fd = -1
