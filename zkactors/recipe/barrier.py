"""``Barrier``: kazoo's barrier — clients :meth:`wait` while the barrier's node
exists; whoever holds it :meth:`remove`-s it to let them all through. And
``DoubleBarrier``: all in before any starts, all out before any goes on."""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING

from zkactors.errors import NodeExistsError, NoNodeError
from zkactors.recipe.waiting import deadline_after, wait_before

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
        deadline = deadline_after(timeout)
        for _ in range(1_000_000):
            changed = threading.Event()
            if self.client.exists(self.path, watch=lambda _, c=changed: c.set()) is None:
                return True
            if not wait_before(changed, deadline):
                return False
        raise RuntimeError("barrier wait: too many rounds")  # pragma: no cover


class DoubleBarrier:
    """kazoo's double barrier: :meth:`enter` waits until ``num_clients`` have
    entered; :meth:`leave` waits until every one of them has left. Members are
    ephemeral nodes, so one that dies stops counting."""

    READY = "ready"

    def __init__(self, client: Client, path: str, num_clients: int,
                 identifier: str | None = None) -> None:
        if not isinstance(num_clients, int) or num_clients < 1:
            raise ValueError(f"num_clients must be a positive int, not {num_clients!r}")
        self.client = client
        self.path = path
        self.num_clients = num_clients
        self.identifier = identifier or ""
        self.node = f"{path}/{uuid.uuid4().hex}"
        self.participating = False

    def _members(self, watch: threading.Event | None = None) -> list[str]:
        children = self.client.get_children(
            self.path, watch=None if watch is None else (lambda _, w=watch: w.set()))
        return [child for child in children if child != self.READY]

    def enter(self, timeout: float | None = None) -> bool:
        """Join, and wait for the others: True once all are in, False on timeout."""
        deadline = deadline_after(timeout)
        self.client.create(self.node, self.identifier.encode(), ephemeral=True,
                           makepath=True)
        self.participating = True
        ready = f"{self.path}/{self.READY}"
        for _ in range(1_000_000):
            opened = threading.Event()
            if self.client.exists(ready, watch=lambda _, o=opened: o.set()) is not None:
                return True
            if len(self._members()) >= self.num_clients:
                try:
                    self.client.create(ready, b"")
                except NodeExistsError:
                    pass
                return True
            if not wait_before(opened, deadline):
                return False
        raise RuntimeError("double barrier enter: too many rounds")  # pragma: no cover

    def leave(self, timeout: float | None = None) -> bool:
        """Leave, and wait for the others to: True once all are out."""
        deadline = deadline_after(timeout)
        try:
            self.client.delete(self.node)
        except NoNodeError:
            pass
        self.participating = False
        for _ in range(1_000_000):
            changed = threading.Event()
            if not self._members(changed):
                try:
                    self.client.delete(f"{self.path}/{self.READY}")
                except NoNodeError:
                    pass
                return True
            if not wait_before(changed, deadline):
                return False
        raise RuntimeError("double barrier leave: too many rounds")  # pragma: no cover
