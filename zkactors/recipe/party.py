"""``Party`` and ``ShallowParty``: kazoo's group membership — each member is an
ephemeral node under the party's path, so a member whose process dies or whose
session expires leaves the party by itself. ``Party`` keeps a member's
identifier in its node's data; ``ShallowParty`` in the node's name (one listing
shows everyone, no reads per member)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

from zkactors.errors import NodeExistsError, NoNodeError

if TYPE_CHECKING:
    from zkactors.client.api import Client


class Party:
    def __init__(self, client: Client, path: str, identifier: str | None = None) -> None:
        self.client = client
        self.path = path
        self.data = (identifier or "").encode()
        self.node = self._node_name(identifier or "")
        self.create_path = f"{path}/{self.node}"
        self.participating = False

    def _node_name(self, identifier: str) -> str:
        return uuid.uuid4().hex

    def join(self) -> None:
        """Become a member (until :meth:`leave`, or the session ends)."""
        try:
            self.client.create(self.create_path, self.data, ephemeral=True, makepath=True)
        except NodeExistsError:
            pass  # joined already
        self.participating = True

    def leave(self) -> bool:
        """Stop being a member; True if we were one."""
        self.participating = False
        try:
            self.client.delete(self.create_path)
        except NoNodeError:
            return False
        return True

    def _children(self) -> list[str]:
        try:
            return self.client.get_children(self.path)
        except NoNodeError:
            return []

    def __iter__(self) -> Iterator[str]:
        for child in self._children():
            try:
                data, _ = self.client.get(f"{self.path}/{child}")
            except NoNodeError:
                continue  # left meanwhile
            yield data.decode("utf-8", "replace")

    def __len__(self) -> int:
        return len(self._children())


class ShallowParty(Party):
    def _node_name(self, identifier: str) -> str:
        return f"{uuid.uuid4().hex}-{identifier}"

    def __iter__(self) -> Iterator[str]:
        for child in self._children():
            yield child.split("-", 1)[1] if "-" in child else ""
