"""Small file primitives the storage modules share: whole reads and writes at an
offset (the system calls may do less than asked), and fsync of a directory (so a
file created, renamed or deleted in it survives a crash)."""

from __future__ import annotations

import os


class ShortReadError(EOFError):
    """The file ended before the bytes asked for."""


def pread_exact(fd: int, n: int, offset: int) -> bytes:
    """Exactly ``n`` bytes at ``offset``, or :class:`ShortReadError`."""
    data = os.pread(fd, n, offset)
    if len(data) == n:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = os.pread(fd, n - got, offset + got)
        if not more:
            raise ShortReadError(f"wanted {n} bytes at offset {offset}, the file ended")
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` at the file position.

    A write to a regular file writes everything unless the disk is full or a
    signal interrupts it; loop anyway rather than trust that."""
    view = memoryview(data)
    done = 0
    while done < view.nbytes:
        done += os.write(fd, view[done:])


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (as :func:`write_all`, positioned)."""
    view = memoryview(data)
    done = 0
    while done < view.nbytes:
        done += os.pwrite(fd, view[done:], offset + done)


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
