"""A full disk: recognising it, and waiting for space to come back.

When the WAL, the term file or a snapshot cannot be written for want of space,
the actor that tried dies and the node stops, as for any I/O failure: after a
failed write or fsync the state of the files is unknown (the kernel may have
dropped dirty pages), and nothing that was not durable has been acknowledged.
What differs is what comes next: instead of exiting, ``zknode`` waits — saying
why once in its log — until the data dir's filesystem has room again, then
starts afresh in the same process (``exec``: same PID, state rebuilt from disk
exactly as after a crash, which the simulator proves safe). Meanwhile the node
serves nobody; its clients move to the other nodes.
"""

from __future__ import annotations

import errno
import shutil
import threading
from typing import Any

#: errno values that mean "no room": the device is full, or a quota is spent.
NO_SPACE = frozenset((errno.ENOSPC, errno.EDQUOT))
#: How often the free space is looked at while waiting.
POLL_S = 0.5


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an exception it was raised from, says the disk is full."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def free_bytes(directory: str) -> int:
    return shutil.disk_usage(directory).free


def wait_for_space(directory: str, needed: int, stopping: threading.Event, log: Any) -> bool:
    """Block until ``directory``'s filesystem has ``needed`` bytes free (True) or a
    stop is requested (False). Logs once when it starts waiting and once when
    space is back — not on every look."""
    free = free_bytes(directory)
    if free >= needed:
        return True
    log.error("disk_full", data_dir=directory, free_bytes=free, needed_bytes=needed,
              action="stopped: nothing unsynced was acknowledged; restarts by itself "
                     "once there is room")
    while not stopping.wait(POLL_S):
        free = free_bytes(directory)
        if free >= needed:
            log.info("disk_space_back", data_dir=directory, free_bytes=free)
            return True
    return False


def space_needed(wal_segment_bytes: int) -> int:
    """Room enough to start and take writes again: a new WAL segment and as much
    again for snapshots and the term file."""
    return 2 * wal_segment_bytes + (1 << 20)
