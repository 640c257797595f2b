"""``Lock``: kazoo's lock recipe — with a fencing token kazoo does not have.

Each contender creates an ephemeral sequential node under the lock's path; the
one with the lowest sequence number holds the lock. The others each watch the
node just ahead of theirs (not the holder's: no herd wakes when the holder
leaves), and look again when it goes. A holder whose process dies or whose
session expires loses its node, and so the lock, within its session timeout.

**Fencing.** A lock alone cannot protect a resource from a holder that paused
(a GC, a frozen VM) past its session timeout and then carries on: it still
believes it holds the lock while another does (Kleppmann, "How to do distributed
locking"). So each acquisition comes with ``lock.token``: the zxid of the
transaction that created its node. Holders acquire in the order their nodes were
created, so tokens strictly increase from one holder to the next; a resource that
remembers the highest token it has seen refuses any request with a lower one.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING, Self

from zkactors.errors import NoNodeError, ZkactorsError

if TYPE_CHECKING:
    from zkactors.client.api import Client

#: The part of a contender's node name between its id and its sequence number:
#: an exclusive (write) contender's, and a shared (read) one's (kazoo's names).
LOCK_MARK = "__lock__"
READ_MARK = "__rlock__"


class LockTimeout(ZkactorsError):
    """The lock was not acquired within the timeout given (kazoo's name)."""


class CancelledError(ZkactorsError):
    """``cancel()`` ended a waiting ``acquire()``."""


def sequence_of(name: str) -> int:
    """The sequence number at the end of a contender's node name."""
    return int(name[-10:])


class Lock:
    """A mutual-exclusion lock on ``path`` (kazoo's ``Lock``); ``identifier`` is
    stored in the contender's node, for :meth:`contenders`."""

    #: This contender's mark, and the marks of the earlier contenders it waits for.
    node_mark = LOCK_MARK
    blocked_by: tuple[str, ...] = (LOCK_MARK, READ_MARK)

    def __init__(self, client: Client, path: str, identifier: str | None = None) -> None:
        self.client = client
        self.path = path.rstrip("/") or "/"
        self.identifier = identifier or ""
        self.prefix = uuid.uuid4().hex + self.node_mark
        self.node: str | None = None
        self.is_acquired = False
        #: The fencing token of the current acquisition (see the module's doc).
        self.token: int | None = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()  # one acquire at a time per Lock object

    # ------------------------------------------------------------ acquire
    def acquire(self, blocking: bool = True, timeout: float | None = None,
                ephemeral: bool = True) -> bool:
        """Take the lock. ``blocking=False``: True or False at once. With a
        ``timeout``: LockTimeout if not taken in time. The node is removed
        again whenever the lock was not taken."""
        deadline = None if timeout is None else time.monotonic() + timeout
        waited = self._lock.acquire(False) if not blocking else \
            self._lock.acquire(True, -1 if timeout is None else timeout)
        if not waited:
            return False
        try:
            self._cancelled.clear()
            if self.is_acquired:
                return True
            taken = self._take(blocking, deadline, ephemeral)
        except BaseException:
            self._delete_node()
            raise
        finally:
            self._lock.release()
        if not taken:
            self._delete_node()
            if blocking:
                raise LockTimeout(f"lock {self.path} not acquired within {timeout} s")
        return taken

    def _take(self, blocking: bool, deadline: float | None, ephemeral: bool) -> bool:
        client = self.client
        names = None
        if self.node is None:
            # makepath: the lock's directory too, in the same write, if missing.
            created = client.create(f"{self.path}/{self.prefix}", self.identifier.encode(),
                                    sequence=True, ephemeral=ephemeral, makepath=True)
            self.node = created.rsplit("/", 1)[1]
            # Both reads at once (they are answered in order, on one connection):
            # our node's czxid — the transaction that created it, read back rather
            # than taken from the create's reply, since a retried create is
            # answered later, with a later zxid — and the contenders.
            stat_future = client.exists_async(created)
            names_future = client.get_children_async(self.path)
            stat = client._wait(stat_future)
            if stat is None:
                raise NoNodeError("our lock node is gone: the session ended", created)
            self.token = stat.czxid
            names = self._contenders_in_order(client._wait(names_future))
        for _ in range(1_000_000):  # each pass: someone ahead of us left
            if self._cancelled.is_set():
                raise CancelledError(f"acquire of {self.path} cancelled")
            ahead = self._ahead(names)
            names = None
            if ahead is None:
                self.is_acquired = True
                return True
            if not blocking:
                return False
            gone = threading.Event()
            if client.exists(f"{self.path}/{ahead}",
                             watch=lambda _, gone=gone: gone.set()) is None:
                continue  # left between the listing and the watch
            while not gone.wait(0.1):
                if self._cancelled.is_set():
                    raise CancelledError(f"acquire of {self.path} cancelled")
                if deadline is not None and time.monotonic() > deadline:
                    return False
        raise RuntimeError("lock acquire: too many rounds")  # pragma: no cover

    def _ahead(self, names: list[str] | None = None) -> str | None:
        """The contender just ahead of us, or None if we are first. NoNodeError
        if our node is gone (our session ended)."""
        if names is None:
            names = self._sorted_contenders()
        if self.node not in names:
            raise NoNodeError(f"our lock node {self.path}/{self.node} is gone: the "
                              "session ended", f"{self.path}/{self.node}")
        blocking = [name for name in names[:names.index(self.node)]
                    if any(mark in name for mark in self.blocked_by)]
        return blocking[-1] if blocking else None

    def _sorted_contenders(self) -> list[str]:
        return self._contenders_in_order(self.client.get_children(self.path))

    @staticmethod
    def _contenders_in_order(children: list[str]) -> list[str]:
        return sorted((n for n in children if LOCK_MARK in n or READ_MARK in n),
                      key=sequence_of)

    # ------------------------------------------------------------ release
    def release(self) -> bool:
        """Give the lock up (delete our node). True if it was held."""
        with self._lock:
            held = self.is_acquired
            self._delete_node()
            return held

    def _delete_node(self) -> None:
        node, self.node = self.node, None
        self.is_acquired = False
        if node is not None:
            try:
                self.client.delete(f"{self.path}/{node}")
            except NoNodeError:
                pass  # gone with our session already

    def cancel(self) -> None:
        """End a waiting :meth:`acquire` (it raises CancelledError)."""
        self._cancelled.set()

    def contenders(self) -> list[str]:
        """The identifiers of every contender, the holder first."""
        result = []
        for name in self._sorted_contenders():
            try:
                data, _ = self.client.get(f"{self.path}/{name}")
            except NoNodeError:
                continue
            result.append(data.decode("utf-8", "replace"))
        return result

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class WriteLock(Lock):
    """The exclusive side of a read/write lock (kazoo's ``WriteLock``): it waits
    for every earlier contender, readers and writers."""


class ReadLock(Lock):
    """The shared side (kazoo's ``ReadLock``): held together with other readers,
    it waits only for earlier writers."""

    node_mark = READ_MARK
    blocked_by = (LOCK_MARK,)
