"""Coordination recipes on top of the client, with kazoo's names and semantics:
``Lock`` (with a fencing token) and ``Election``. Reachable as ``client.Lock(...)``
and ``client.Election(...)`` too."""

from zkactors.recipe.election import Election
from zkactors.recipe.lock import CancelledError, Lock, LockTimeout

__all__ = ["CancelledError", "Election", "Lock", "LockTimeout"]
