"""The log core: orders client writes into log entries and decides what is committed.

Pure: no sockets, no disk, no clock. The driver feeds it proposals (with the time
it read off its clock), persists the entries it hands back, tells it how far the
log is durable, and forwards the committed entries it returns to the store.

An entry is ``(index, term, time_ms, txn)``; ``txn`` is the znode operation as the
tree's :meth:`~zkactors.core.tree.Tree.apply` takes it. The entry's zxid is
``term << 32 | index``.

Commit rule: an index is committed once a majority of members hold it durably.
With one member that is "once our own fsync has returned"; the quorum arithmetic is
written for any ensemble size so that replication only has to feed in the
followers' acknowledgements.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    term: int
    time_ms: int
    txn: list

    def to_record(self) -> list:
        """The entry as stored in the WAL (the index is the WAL's own)."""
        return [self.term, self.time_ms, self.txn]


@dataclass(frozen=True, slots=True)
class Committed:
    """What the store may now act on, in order: a committed entry (with the client
    to answer; ``ident`` is None after replay), or a client's read that had to wait
    for that client's earlier writes (``entry`` is None, ``read`` is ``[op, args]``).
    """

    entry: Entry | None
    ident: bytes | None
    rid: int
    read: list | None = None


def quorum_index(match_indexes: list[int]) -> int:
    """The highest index held by a majority: the median, rounded toward the smaller."""
    ordered = sorted(match_indexes, reverse=True)
    return ordered[len(ordered) // 2]


class LogCore:
    """The leader's side of the log (a single-member ensemble is its own leader)."""

    def __init__(self, node_id: int, member_ids: list[int], term: int, last_index: int) -> None:
        if node_id not in member_ids:
            raise ValueError(f"node {node_id} is not a member of {member_ids}")
        self.node_id = node_id
        self.term = term
        self.last_index = last_index
        # Everything replayed from the WAL was acknowledged or may have been: it is
        # committed by definition on a single node.
        self.commit_index = last_index
        self.match_index = {member: 0 for member in member_ids}
        self.match_index[node_id] = last_index
        self._waiting: deque[Committed] = deque()

    def propose(self, requests: list[list], now_ms: int) -> list[Entry]:
        """Take client requests ``[ident, rid, txn, read]`` in arrival order.

        A write (``txn``) becomes a new entry to persist. A read (``read`` =
        ``[op, args]``, ``txn`` None) is one the gateway held back because the same
        client has writes in flight: it queues behind them, so that client's reads
        and writes take effect in the order it sent them (ZooKeeper's FIFO client
        order). Call :meth:`persisted` afterwards, even if no entry was made.
        """
        entries = []
        for ident, rid, txn, read in requests:
            if txn is None:
                self._waiting.append(Committed(None, ident, rid, read))
                continue
            self.last_index += 1
            entry = Entry(self.last_index, self.term, now_ms, txn)
            entries.append(entry)
            self._waiting.append(Committed(entry, ident, rid))
        return entries

    def persisted(self, member_id: int, index: int) -> list[Committed]:
        """``member_id`` holds the log up to ``index`` durably; return, in order, the
        entries now committed and the reads no longer waiting behind anything."""
        # A member can't hold more than we have proposed; never let a confused
        # acknowledgement commit entries that don't exist.
        index = min(index, self.last_index)
        if index > self.match_index.get(member_id, index):
            self.match_index[member_id] = index
        self.commit_index = max(self.commit_index, quorum_index(list(self.match_index.values())))
        released = []
        waiting = self._waiting
        while waiting and (waiting[0].entry is None
                           or waiting[0].entry.index <= self.commit_index):
            released.append(waiting.popleft())
        return released

    @property
    def pending(self) -> int:
        """Entries proposed but not yet committed."""
        return len(self._waiting)
