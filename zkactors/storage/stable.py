"""The durable term and vote: Raft's "stable store", one small file.

Written by replacing the file atomically (write a temporary file, fsync it,
rename it over the old one, fsync the directory), so a crash leaves either the
old or the new state, never a mix. It changes only on elections, so three
fsyncs per change are cheap enough.
"""

from __future__ import annotations

import os
import zlib

import msgpack

STATE_FILE = "raft-state"


class StableStoreError(Exception):
    """The state file exists but cannot be trusted; the message names it."""


class StableStore:
    def __init__(self, directory: str, fsync: bool = True) -> None:
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.path = os.path.join(directory, STATE_FILE)
        self.fsync = fsync

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
