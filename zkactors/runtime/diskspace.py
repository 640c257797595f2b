"""A full disk: recognising it, and waiting for space to come back.

When the WAL, the term file or a snapshot cannot be written for want of space,
the actor that tried dies and the node stops, as for any I/O failure: after a
failed write or fsync the state of the files is unknown (the kernel may have
dropped dirty pages), and nothing that was not durable has been acknowledged.
What differs is what comes next: instead of exiting, ``zknode`` waits — saying
why once in its log — until the data dir's filesystem has room again, then
starts afresh in the same process (``exec``: same PID, state rebuilt from disk
exactly as after a crash, which the simulator proves safe). Meanwhile the node
answers every client request on its client endpoint with a clear refusal
(NOT_READY: no space left on which data dir) — the client library tries another
node, and a client that can reach no other is told why — and serves nothing else.
"""

from __future__ import annotations

import errno
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from zkactors.errors import Code
from zkactors.protocol import FrameError, decode_frame, pack

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


def wait_for_space(directory: str, needed: int, stopping: threading.Event, log: Any,
                   refuse: Callable[[float], None] | None = None) -> bool:
    """Block until ``directory``'s filesystem has ``needed`` bytes free (True) or a
    stop is requested (False). Logs once when it starts waiting and once when
    space is back — not on every look. ``refuse(seconds)``, if given, answers
    clients for up to that long between looks."""
    free = free_bytes(directory)
    if free >= needed:
        return True
    log.error("disk_full", data_dir=directory, free_bytes=free, needed_bytes=needed,
              action="stopped: nothing unsynced was acknowledged; restarts by itself "
                     "once there is room")
    while not stopping.is_set():
        if refuse is not None:
            refuse(POLL_S)
        elif stopping.wait(POLL_S):
            break
        free = free_bytes(directory)
        if free >= needed:
            log.info("disk_space_back", data_dir=directory, free_bytes=free)
            return True
    return False


class Refuser:
    """The client endpoint of a node waiting for disk space: every request is
    answered NOT_READY with ``reason`` (hello included: there is nothing to connect
    to), so that clients move on at once and a client with nowhere else to go is
    told why. Closed (and the port freed) before the node starts again."""

    def __init__(self, endpoint: str, reason: str) -> None:
        self.reason = reason
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.router.linger = 0
        try:
            self.router.bind(endpoint)
        except zmq.ZMQError:
            self.close()
            raise

    def __call__(self, seconds: float) -> None:
        """Answer what arrives within ``seconds``."""
        router = self.router
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not router.poll(int(left * 1000) + 1):
                return
            ident, frame = router.recv_multipart()[:2]
            try:
                requests = decode_frame(frame)
            except FrameError:
                continue
            replies = []
            for request in requests:
                rid = request[0] if isinstance(request, list) and request and \
                    type(request[0]) is int else None
                if rid is not None:
                    replies.append([rid, int(Code.NOT_READY), self.reason, 0])
            if replies:
                router.send_multipart([ident, pack(replies)])

    def close(self) -> None:
        self.router.close(linger=0)
        self.context.term()


def space_needed(wal_segment_bytes: int) -> int:
    """Room enough to start and take writes again: a new WAL segment and as much
    again for snapshots and the term file."""
    return 2 * wal_segment_bytes + (1 << 20)
