"""``Semaphore``: kazoo's — at most ``max_leases`` holders at once. Leases are
ephemeral nodes under ``path/leases``; a :class:`~zkactors.recipe.lock.Lock` on
``path/lock`` makes "count the leases, then take one" atomic, and a contender
waiting for a free lease waits holding that lock, so leases go in the order
contenders arrived."""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING, Self

from zkactors.errors import NodeExistsError, NoNodeError
from zkactors.recipe.lock import Lock, LockTimeout
from zkactors.recipe.waiting import deadline_after, wait_before

if TYPE_CHECKING:
    from zkactors.client.api import Client


class Semaphore:
    def __init__(self, client: Client, path: str, identifier: str | None = None,
                 max_leases: int = 1) -> None:
        if not isinstance(max_leases, int) or max_leases < 1:
            raise ValueError(f"max_leases must be a positive int, not {max_leases!r}")
        self.client = client
        self.path = path
        self.identifier = identifier or ""
        self.max_leases = max_leases
        self.lease_path = f"{path}/leases"
        self.node = f"{self.lease_path}/{uuid.uuid4().hex}"
        self.lock = Lock(client, f"{path}/lock", identifier)
        self.is_acquired = False

    def _check_max_leases(self) -> None:
        """Every user of one semaphore must agree on its size (as kazoo checks)."""
        try:
            self.client.create(self.path, str(self.max_leases).encode(), makepath=True)
        except NodeExistsError:
            data, _ = self.client.get(self.path)
            if data and data != str(self.max_leases).encode():
                raise ValueError(f"semaphore {self.path} has max_leases {data.decode()}, "
                                 f"not {self.max_leases}") from None

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a lease: True; False if not blocking and none is free, or none
        came free within ``timeout``."""
        if self.is_acquired:
            return True
        deadline = deadline_after(timeout)
        self._check_max_leases()
        try:
            if not self.lock.acquire(blocking, timeout):
                return False
        except LockTimeout:
            return False
        try:
            for _ in range(1_000_000):
                freed = threading.Event()
                try:
                    leases = self.client.get_children(
                        self.lease_path, watch=lambda _, f=freed: f.set())
                except NoNodeError:
                    self.client.ensure_path(self.lease_path)
                    continue
                if len(leases) < self.max_leases:
                    self.client.create(self.node, self.identifier.encode(), ephemeral=True)
                    self.is_acquired = True
                    return True
                if not blocking:
                    return False
                if not wait_before(freed, deadline):
                    return False
            raise RuntimeError("semaphore acquire: too many rounds")  # pragma: no cover
        finally:
            self.lock.release()

    def release(self) -> bool:
        """Give the lease back; True if one was held."""
        if not self.is_acquired:
            return False
        self.is_acquired = False
        try:
            self.client.delete(self.node)
        except NoNodeError:
            return False
        return True

    def lease_holders(self) -> list[str]:
        """The identifiers of those holding a lease now."""
        holders = []
        try:
            children = self.client.get_children(self.lease_path)
        except NoNodeError:
            return []
        for child in children:
            try:
                data, _ = self.client.get(f"{self.lease_path}/{child}")
            except NoNodeError:
                continue
            holders.append(data.decode("utf-8", "replace"))
        return holders

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
