"""``Barrier``: kazoo's barrier — clients :meth:`wait` while the barrier's node
exists; whoever holds it :meth:`remove`-s it to let them all through."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from zkactors.errors import NodeExistsError, NoNodeError

if TYPE_CHECKING:
    from zkactors.client.api import Client


class Barrier:
    def __init__(self, client: Client, path: str) -> None:
        self.client = client
        self.path = path

    def create(self) -> None:
        """Raise the barrier (fine if it is up already)."""
        try:
            self.client.create(self.path, b"", makepath=True)
        except NodeExistsError:
            pass

    def remove(self) -> bool:
        """Lower it; True if it was up."""
        try:
            self.client.delete(self.path)
        except NoNodeError:
            return False
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Until the barrier is down: True; False if ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for _ in range(1_000_000):
            changed = threading.Event()
            if self.client.exists(self.path, watch=lambda _, c=changed: c.set()) is None:
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            if not changed.wait(left):
                return False
        raise RuntimeError("barrier wait: too many rounds")  # pragma: no cover
