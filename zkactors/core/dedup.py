"""At-most-once writes: the replicated table of each client's recent write results.

A client that loses its connection (or whose leader steps down) while a write is
in flight cannot know whether the write was committed. It sends it again — to the
same node or another — and this table makes that safe (Raft thesis §6.3): a write
tagged with ``(client id, sequence number)`` is applied once; a copy applied later
gets the reply the first one got, without touching the tree.

The table is part of the replicated state machine: every member builds it from
the same committed entries in the same order, so it must depend on nothing else —
no clock, no configuration. Its limits are therefore constants of the protocol,
not settings: two members with different limits would answer a retry differently
and their trees would fork.

Bounded memory:

* each write carries the client's ``ack_below``: every one of its writes with a
  lower sequence number has been answered, so their replies are dropped;
* at most :data:`MAX_REPLIES_PER_CLIENT` replies per client (a client that never
  advances ``ack_below`` loses its oldest first);
* at most :data:`MAX_CLIENTS` clients, least recently writing evicted first.

Whatever was dropped is remembered as a floor: a retry of a sequence number below
a client's floor whose reply is gone is refused with an error, never applied a
second time. (An evicted client is forgotten entirely; with 10,000 more recent
writers in between, its retry would be applied again — the one case the bound
costs, and it needs a retry older than thousands of other clients' writes.)

FIFO client order: the same table keeps the highest sequence number applied for
each client, and a write is applied only *in order* (:meth:`ClientTable.in_order`):
right after that one, or once the client says every earlier write is settled
(``ack_below`` = its seq). Anything else — a write that overtook an earlier one
still in flight, say after a leader change — is refused, unrecorded, with
:data:`OUT_OF_ORDER`, and the client library sends it again after the earlier
ones. So however a client's pipelined writes travel, they take effect in the
order it sent them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from zkactors.wire import MAX_REPLIES_PER_CLIENT

#: The txn a tagged write is stored as: ``[TXN_TAGGED, client_id, seq, ack_below, txn]``.
TXN_TAGGED = "tagged"

MAX_CLIENTS = 10_000

FORGOTTEN = "a retry of a write whose outcome is no longer remembered; not applied again"
OUT_OF_ORDER = "an earlier write of this client has not been applied yet; send this one after it"


def tag(client_id: int, seq: int, ack_below: int, txn: list) -> list:
    """Wrap a write's txn with the client's identity, for deduplication."""
    return [TXN_TAGGED, client_id, seq, ack_below, txn]


def is_tagged(txn: list) -> bool:
    return bool(txn) and txn[0] == TXN_TAGGED


@dataclass(slots=True)
class ClientRecord:
    #: seq -> [code, result] of writes applied and not yet acknowledged by the client.
    replies: dict[int, list] = field(default_factory=dict)
    #: Every seq below this has been answered or forgotten.
    floor: int = 0
    #: The highest seq applied: the next in order is this + 1.
    last_seq: int = 0


class ClientTable:
    """The per-client reply cache of the state machine. Deterministic."""

    def __init__(self) -> None:
        self._clients: OrderedDict[int, ClientRecord] = OrderedDict()

    def __len__(self) -> int:
        return len(self._clients)

    def lookup(self, client_id: int, seq: int) -> list | None:
        """The reply ``[code, result]`` a copy of this write must get, or None if it
        has not been applied (apply it, then :meth:`record`).

        A seq below the client's floor whose reply is gone answers
        ``[None, FORGOTTEN]``: the caller refuses it."""
        record = self._clients.get(client_id)
        if record is None:
            return None
        reply = record.replies.get(seq)
        if reply is not None:
            return reply
        if seq < record.floor:
            return [None, FORGOTTEN]
        return None

    def in_order(self, client_id: int, seq: int, ack_below: int) -> bool:
        """Whether a write not applied yet (:meth:`lookup` gave None) may be applied
        now without overtaking an earlier write of the same client: it is the next
        after the last one applied, or every earlier one is settled (answered or
        given up by the client, so never to be applied: see the floor)."""
        record = self._clients.get(client_id)
        last_seq = record.last_seq if record is not None else 0
        return seq <= last_seq + 1 or seq <= ack_below

    def record(self, client_id: int, seq: int, ack_below: int, code: int, result: Any) -> None:
        """Remember the reply of a write just applied; forget what the client has seen."""
        clients = self._clients
        record = clients.get(client_id)
        if record is None:
            record = clients[client_id] = ClientRecord()
            if len(clients) > MAX_CLIENTS:
                clients.popitem(last=False)
        else:
            clients.move_to_end(client_id)
        # This write itself is unanswered, so a well-behaved ack_below never passes
        # it; a client that claims otherwise only loses its own replies.
        self._advance_floor(record, min(ack_below, seq))
        record.last_seq = max(record.last_seq, seq)
        if seq >= record.floor:
            record.replies[seq] = [code, result]
        if len(record.replies) > MAX_REPLIES_PER_CLIENT:
            self._advance_floor(record, min(record.replies) + 1)

    @staticmethod
    def _advance_floor(record: ClientRecord, floor: int) -> None:
        if floor <= record.floor:
            return
        record.floor = floor
        if record.replies:
            record.replies = {s: r for s, r in record.replies.items() if s >= floor}

    # ------------------------------------------------------------ snapshots
    def to_list(self) -> list:
        """A msgpack-friendly copy, in eviction order (for snapshots)."""
        return [[client_id, record.floor, [[s, *r] for s, r in record.replies.items()],
                 record.last_seq]
                for client_id, record in self._clients.items()]

    @classmethod
    def from_list(cls, items: list) -> ClientTable:
        table = cls()
        for client_id, floor, replies, *rest in items:
            replies = {seq: [code, result] for seq, code, result in replies}
            # (Snapshots from before last_seq was kept: the newest reply's seq.)
            last_seq = rest[0] if rest else max(replies, default=floor - 1 if floor else 0)
            table._clients[client_id] = ClientRecord(replies, floor, last_seq)
        return table
