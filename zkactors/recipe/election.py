"""``Election``: kazoo's leader election — the contender holding a
:class:`~zkactors.recipe.lock.Lock` on the election's path is the leader, and
runs the function it was given; when it returns (or its session ends) the next
contender in line takes over."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from zkactors.recipe.lock import CancelledError, Lock

if TYPE_CHECKING:
    from zkactors.client.api import Client


class Election:
    def __init__(self, client: Client, path: str, identifier: str | None = None) -> None:
        self.lock = Lock(client, path, identifier)

    def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Wait to be elected, then run ``func``; the leadership ends when it
        returns. Returns its result (None if :meth:`cancel` ended the wait)."""
        if not callable(func):
            raise TypeError("func must be callable")
        try:
            with self.lock:
                return func(*args, **kwargs)
        except CancelledError:
            return None

    @property
    def token(self) -> int | None:
        """The fencing token of this contender's term as leader (see Lock)."""
        return self.lock.token

    def cancel(self) -> None:
        self.lock.cancel()

    def contenders(self) -> list[str]:
        """Every contender's identifier, the leader first."""
        return self.lock.contenders()
