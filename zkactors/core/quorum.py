"""Quorum arithmetic, the one place it is done.

Raft needs a majority for everything that must survive a minority's failure: a
leader is elected by a majority's votes (§5.2), an entry is committed once a
majority holds it (§5.3), and a leader still leads while a majority answers it
(check-quorum; ReadIndex, thesis §6.4). Any two majorities share a member, which
is why a committed entry is in every later leader's log.
"""

from __future__ import annotations

from collections.abc import Iterable


def majority(members: int) -> int:
    """How many of ``members`` make a majority: more than half."""
    return members // 2 + 1


def quorum_index(indexes: Iterable[int]) -> int:
    """The highest index that a majority of the given members have reached (one
    index per member): the median, rounded toward the smaller."""
    ordered = sorted(indexes, reverse=True)
    return ordered[len(ordered) // 2]
