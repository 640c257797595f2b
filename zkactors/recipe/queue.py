"""``Queue`` and ``LockingQueue``: kazoo's distributed queues.

``Queue``: each item a sequential node (``entry-PPP-NNNNNNNNNN``: priority, then
arrival), taken by deleting it — whoever deletes it got it, so no item is ever
handed out twice, but one a consumer dies holding is lost.

``LockingQueue``: a consumer first *locks* an item (an ephemeral node under
``taken/``), works on it, then :meth:`~LockingQueue.consume`-s it (the item and
its lock deleted in one transaction) — or, if it dies, its lock goes with its
session and the item is there for the next consumer.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING

from zkactors.errors import NodeExistsError, NoNodeError
from zkactors.recipe.waiting import deadline_after, wait_before

if TYPE_CHECKING:
    from zkactors.client.api import Client

ENTRY = "entry-"


def _entry_name(priority: int) -> str:
    if not isinstance(priority, int) or not 0 <= priority <= 999:
        raise ValueError(f"priority must be an int in 0..999, not {priority!r}")
    return f"{ENTRY}{priority:03d}-"


class Queue:
    """Lower priority numbers first, then first come first served."""

    def __init__(self, client: Client, path: str) -> None:
        self.client = client
        self.path = path

    def put(self, value: bytes, priority: int = 100) -> None:
        if not isinstance(value, bytes):
            raise TypeError(f"value must be bytes, not {type(value).__name__}")
        self.client.create(f"{self.path}/{_entry_name(priority)}", value, sequence=True,
                           makepath=True)

    def _entries(self) -> list[str]:
        try:
            return sorted(c for c in self.client.get_children(self.path) if c.startswith(ENTRY))
        except NoNodeError:
            return []

    def get(self) -> bytes | None:
        """The next item, taken off the queue; None if it is empty."""
        for name in self._entries():
            path = f"{self.path}/{name}"
            try:
                value, stat = self.client.get(path)
                self.client.delete(path, version=stat.version)
            except NoNodeError:
                continue  # another consumer took it first
            return value
        return None

    def __len__(self) -> int:
        return len(self._entries())


class LockingQueue:
    """Items stay queued while a consumer works on them (see the module's doc)."""

    def __init__(self, client: Client, path: str) -> None:
        self.client = client
        self.path = path
        self.entries = f"{path}/entries"
        self.taken = f"{path}/taken"
        self.id = uuid.uuid4().hex.encode()
        self.processing: str | None = None

    def put(self, value: bytes, priority: int = 100) -> None:
        if not isinstance(value, bytes):
            raise TypeError(f"value must be bytes, not {type(value).__name__}")
        self.client.create(f"{self.entries}/{_entry_name(priority)}", value, sequence=True,
                           makepath=True)

    def put_all(self, values: list[bytes], priority: int = 100) -> None:
        """Several items, queued together (one transaction)."""
        self.client.ensure_path(self.entries)
        tx = self.client.transaction()
        for value in values:
            if not isinstance(value, bytes):
                raise TypeError(f"value must be bytes, not {type(value).__name__}")
            tx.create(f"{self.entries}/{_entry_name(priority)}", value, sequence=True)
        results = tx.commit()
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise failed[0]

    def get(self, timeout: float | None = None) -> bytes | None:
        """Lock the next free item and return its value (it stays queued until
        :meth:`consume`); wait up to ``timeout`` (None: as long as it takes)
        for one; None if none came."""
        if self.processing is not None:
            raise ValueError("consume() or release() the item held first")
        self.client.ensure_path(self.entries)
        self.client.ensure_path(self.taken)
        deadline = deadline_after(timeout)
        for _ in range(1_000_000):
            changed = threading.Event()
            names = sorted(self.client.get_children(
                self.entries, watch=lambda _, c=changed: c.set()))
            taken = set(self.client.get_children(self.taken))
            for name in names:
                if name in taken:
                    continue
                try:
                    self.client.create(f"{self.taken}/{name}", self.id, ephemeral=True)
                except NodeExistsError:
                    continue  # another consumer locked it first
                try:
                    value, _ = self.client.get(f"{self.entries}/{name}")
                except NoNodeError:  # consumed meanwhile by a previous holder
                    self.client.delete(f"{self.taken}/{name}")
                    continue
                self.processing = name
                return value
            if deadline is not None and time.monotonic() >= deadline:
                return None
            # (At most a second at a time: a lock freed by a session's end
            # changes taken/, not entries/, which is what is watched.)
            wait_before(changed, deadline_after(1.0) if deadline is None
                        else min(deadline, time.monotonic() + 1.0))
        raise RuntimeError("locking queue get: too many rounds")  # pragma: no cover

    def consume(self) -> bool:
        """Done with the item held: it leaves the queue, with its lock (one
        transaction). True if one was held."""
        if self.processing is None:
            return False
        name, self.processing = self.processing, None
        tx = self.client.transaction()
        tx.delete(f"{self.entries}/{name}")
        tx.delete(f"{self.taken}/{name}")
        return all(result is True for result in tx.commit())

    def release(self) -> bool:
        """Give the item held back to the queue, unprocessed."""
        if self.processing is None:
            return False
        name, self.processing = self.processing, None
        try:
            self.client.delete(f"{self.taken}/{name}")
        except NoNodeError:
            return False
        return True

    def holds_lock(self) -> bool:
        if self.processing is None:
            return False
        try:
            data, _ = self.client.get(f"{self.taken}/{self.processing}")
        except NoNodeError:
            return False
        return data == self.id

    def __len__(self) -> int:
        try:
            return len(self.client.get_children(self.entries))
        except NoNodeError:
            return 0
