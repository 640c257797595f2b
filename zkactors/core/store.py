"""The store core: the znode tree as a state machine, and the reads served from it.

The rule is Raft's State Machine Safety (§5.4.3; Figure 2, "Rules for Servers":
apply ``log[lastApplied]`` while ``commitIndex > lastApplied``): committed
entries are applied strictly in index order, each exactly once, so every
member's tree passes through the same states. Entries out of order are a bug,
and it raises rather than fork the state machine.

Pure: it applies committed log entries in index order and answers reads; the
driver moves the messages. Each applied entry yields the reply for the client that
sent it (if it is still waiting) and the change events for the watch actor.

A txn that fails (NoNode, BadVersion …) still consumes its index, exactly as a
ZooKeeper error txn consumes a zxid: every member applies the same entries and
reaches the same failure, so the trees stay identical.
"""

from __future__ import annotations

from typing import Any

from zkactors.core.dedup import FORGOTTEN, OUT_OF_ORDER, ClientTable, is_tagged
from zkactors.core.replog import NOOP, Committed
from zkactors.core.sessions import (
    SESSION_TXNS,
    TXN_SESSION_CLOSE,
    TXN_SESSION_EXPIRE,
    TXN_SESSION_OPEN,
)
from zkactors.core.tree import TXN_MULTI, Event, MultiError, Tree
from zkactors.errors import (
    BadArgumentsError,
    Code,
    DataInconsistency,
    SessionExpiredError,
    UnimplementedError,
    ZookeeperError,
)
from zkactors.protocol import (
    OP_BACKUP,
    OP_CHILDREN,
    OP_EXISTS,
    OP_GET,
    OP_SESSIONS,
    OP_STATUS,
    OP_SYNC,
    make_zxid,
    pack,
    zxid_term,
)

#: Format of :meth:`StoreCore.snapshot_state` (2 added the session table; a
#: version 1 state still loads, with no sessions).
SNAPSHOT_VERSION = "zkactors-state-2"
_OLD_SNAPSHOT_VERSION = "zkactors-state-1"

_BEHIND = "this node has not caught up with what the client has seen; try another"

#: One reply to route back to a client: [ident, rid, code, result, via_log, zxid]
#: (via_log: the request came through the log — an entry, or a read held behind the
#: client's writes — so the gateway can tell when a client has nothing left in the
#: log; zxid: the state it saw — a write's own zxid, or what was applied when a read
#: ran — so a client installing a watch by a read knows exactly where it stands).
Reply = list


class StoreCore:
    def __init__(self, tree: Tree, applied_index: int = 0, applied_term: int = 0,
                 term: int = 0, clients: ClientTable | None = None) -> None:
        self.tree = tree
        #: Replies of clients' recent tagged writes, so a retried write applies once.
        self.clients = clients if clients is not None else ClientTable()
        #: The open sessions (id -> timeout in ms): replicated, see core.sessions.
        self.sessions: dict[int, int] = {}
        #: Sessions opened by the entries applied since the last
        #: :meth:`take_opened` (for the leader's expiry tracker).
        self.opened_sessions: list[int] = []
        #: ... and ended (closed or expired), for the gateway: :meth:`take_ended`.
        self.ended_sessions: list[int] = []
        self.duplicate_writes = 0  # retried copies answered from the table (for status)
        self.applied_index = applied_index
        self.applied_zxid = make_zxid(applied_term, applied_index)
        self.commit_index = applied_index
        self.term = max(term, applied_term)
        #: Reads waiting for this node to apply the zxid their client has seen:
        #: (deadline_ms, [ident, rid, op, args(, read_floor)], via_log), in arrival
        #: order.
        self._parked: list[tuple[int, list, bool]] = []
        self.max_parked = 10_000
        self.max_wait_ms = 2_000
        self._restored_through = 0
        #: (applied zxid, tree digest at it): see :meth:`digest`.
        self._digest: tuple[int, int] | None = None

    def apply(self, committed: list[Committed], commit_index: int,
              term: int, now_ms: int = 0) -> tuple[list[Reply], list[Event]]:
        """Apply committed entries in order; return client replies and change events.

        ``commit_index`` and ``term`` are the log's, as of this batch (for status).
        A read released in order behind its client's writes is answered here — or,
        if its client has seen a zxid not applied here yet (a follower's reads),
        it waits like any other (:meth:`read`), from ``now_ms``."""
        self.term = term
        replies: list[Reply] = []
        events: list[Event] = []
        for item in committed:
            entry = item.entry
            if entry is None:  # a read that waited for this client's earlier writes
                self._read_one_of(replies, [item.ident, item.rid, *item.read], now_ms,
                                  via_log=True)
                continue
            if entry.index <= self._restored_through:
                continue  # covered by a snapshot loaded ahead of its turn
            if entry.index != self.applied_index + 1:
                # The log actor hands over entries strictly in order; anything else is
                # a bug that would silently fork the state machine.
                raise RuntimeError(
                    f"apply out of order: applied {self.applied_index}, got {entry.index}"
                )
            zxid = make_zxid(entry.term, entry.index)
            if entry.txn == NOOP:  # a new leader's first entry: nothing to apply
                self.applied_index, self.applied_zxid = entry.index, zxid
                continue
            txn = entry.txn
            if is_tagged(txn):
                _, client_id, seq, ack_below, txn = txn
                cached = self.clients.lookup(client_id, seq)
                if cached is None and not self.clients.in_order(client_id, seq, ack_below):
                    # It overtook an earlier write of its client (a leader change
                    # reordered them): not applied, not remembered; sent again.
                    code, result = Code.NOT_READY, OUT_OF_ORDER
                elif cached is None:
                    code, result = self._apply_txn(txn, zxid, entry.time_ms, events)
                    self.clients.record(client_id, seq, ack_below, int(code), result)
                elif cached[0] is None:
                    code, result = Code.RUNTIME_INCONSISTENCY, FORGOTTEN
                else:  # a retry of a write already applied: its first reply again
                    code, result = cached
                    self.duplicate_writes += 1
            else:
                code, result = self._apply_txn(txn, zxid, entry.time_ms, events)
            self.applied_index = entry.index
            self.applied_zxid = zxid
            if item.ident is not None:
                replies.append([item.ident, item.rid, int(code), result, True, zxid])
            if self._parked:
                # At once, not at the end of the batch: a waiting read must not see
                # its client's later writes.
                replies.extend(self._release_parked())
        self.commit_index = max(self.commit_index, commit_index, self.applied_index)
        return replies, events

    # ---------------------------------------------------------------- snapshots
    def snapshot_state(self) -> list:
        """The replicated state as plain data: the tree and the dedup table (both
        change only by applying entries, so together with the applied index they
        are everything a member needs to resume from this point)."""
        return [SNAPSHOT_VERSION, self.tree.snapshot(), self.clients.to_list(),
                sorted([session_id, timeout] for session_id, timeout in self.sessions.items())]

    def restore_state(self, state: Any, index: int, term: int) -> None:
        """Replace the state with a snapshot taken at (index, term)."""
        if not (isinstance(state, list) and (
                (len(state) == 4 and state[0] == SNAPSHOT_VERSION)
                or (len(state) == 3 and state[0] == _OLD_SNAPSHOT_VERSION))):
            raise DataInconsistency("not a zkactors state snapshot")
        sessions = state[3] if len(state) == 4 else []
        if not isinstance(sessions, list) or not all(
                isinstance(s, list) and len(s) == 2 and all(type(v) is int for v in s)
                for s in sessions):
            raise DataInconsistency("malformed session table in snapshot")
        tree = self.tree
        self.tree = Tree.restore(state[1], tree.max_data_bytes, tree.max_path_bytes)
        self.clients = ClientTable.from_list(state[2])
        self.sessions = {session_id: timeout for session_id, timeout in sessions}
        self.applied_index = index
        self.applied_zxid = make_zxid(term, index)
        self.commit_index = max(self.commit_index, index)
        # The entries up to here may still be on their way (a restore can jump to
        # a newer snapshot installed meanwhile): they are covered, not reapplied.
        self._restored_through = index
        self._digest = None

    def _apply_txn(self, txn: list, zxid: int, time_ms: int,
                   events: list[Event]) -> tuple[int, Any]:
        try:
            if txn and txn[0] in SESSION_TXNS:
                return int(Code.OK), self._apply_session_txn(txn, zxid, events)
            if txn and txn[0] == TXN_MULTI:
                return int(Code.OK), self._apply_multi(txn, zxid, time_ms, events)
            self._check_owner(txn)
            result, changed = self.tree.apply(txn, zxid, time_ms)
        except ZookeeperError as err:
            return int(err.code), str(err)
        events.extend(changed)
        return int(Code.OK), result

    def _check_owner(self, txn: Any) -> None:
        """An ephemeral create needs its session open (expired or closed: no)."""
        if isinstance(txn, list) and len(txn) == 5 and txn[0] == "create" \
                and txn[4] not in self.sessions:
            raise SessionExpiredError(f"session {txn[4]:#x} is not open (expired or "
                                      "closed): no ephemeral node for it", txn[1])

    def _apply_multi(self, txn: list, zxid: int, time_ms: int, events: list[Event]) -> list:
        """``["multi", [txn, ...]]``, all or nothing at one zxid. The reply is
        ``["ok", [result, ...]]`` or ``["failed", index, code, message]`` (a
        multi that fails still succeeds as a request: the client shows kazoo's
        per-operation results)."""
        if len(txn) != 2:
            raise BadArgumentsError(f"a multi txn has 2 fields, got {len(txn)}")
        try:
            results, changed = self.tree.apply_multi(txn[1], zxid, time_ms, self._check_owner)
        except MultiError as err:
            return ["failed", err.index, int(err.error.code), str(err.error)]
        events.extend(changed)
        return ["ok", results]

    def take_opened(self) -> list[int]:
        opened, self.opened_sessions = self.opened_sessions, []
        return opened

    def take_ended(self) -> list[int]:
        ended, self.ended_sessions = self.ended_sessions, []
        return ended

    def _apply_session_txn(self, txn: list, zxid: int, events: list[Event]) -> Any:
        """Open, close or expire sessions (see core.sessions); ending one deletes
        its ephemeral nodes here, in the same transaction."""
        op = txn[0]
        if op == TXN_SESSION_OPEN and len(txn) == 3 and _session_id(txn[1]) \
                and type(txn[2]) is int and txn[2] > 0:
            self.sessions[txn[1]] = txn[2]
            self.opened_sessions.append(txn[1])
            return txn[2]
        if op == TXN_SESSION_CLOSE and len(txn) == 2 and _session_id(txn[1]):
            ended = [txn[1]] if txn[1] in self.sessions else []
        elif op == TXN_SESSION_EXPIRE and len(txn) == 2 and isinstance(txn[1], list) \
                and all(_session_id(s) for s in txn[1]):
            # (Each once: a repeated id must not be ended twice.)
            ended = [s for s in dict.fromkeys(txn[1]) if s in self.sessions]
        else:
            raise BadArgumentsError(f"malformed session txn {txn!r:.100}")
        for session_id in ended:
            del self.sessions[session_id]
            events.extend(self.tree.delete_ephemerals(session_id, zxid))
        self.ended_sessions.extend(ended)
        return ended

    def read(self, requests: list[list], now_ms: int = 0) -> list[Reply]:
        """Answer ``[ident, rid, op, args]`` or ``[ident, rid, op, args, read_floor]``
        reads from the current tree.

        A read waits (at most ``max_wait_ms``, at most ``max_parked`` of them) while
        this node has not applied the zxid its ``args`` end with (the newest its
        client has seen) or the log index ``read_floor`` (the one the node caught
        up to: the gateway may hear of it before the commits reach us)."""
        replies: list[Reply] = []
        for request in requests:
            self._read_one_of(replies, request, now_ms, via_log=False)
        return replies

    def _read_one_of(self, replies: list[Reply], request: list, now_ms: int,
                     via_log: bool) -> None:
        """Answer ``request`` into ``replies``, or park it until this node is not
        behind it."""
        if not self._behind(request):
            replies.append(self._answer(*request[:4], via_log))
        elif len(self._parked) >= self.max_parked:
            replies.append([request[0], request[1], int(Code.NOT_READY),
                            "too many reads waiting to catch up here", via_log,
                            self.applied_zxid])
        else:
            self._parked.append((now_ms + self.max_wait_ms, request, via_log))

    def _behind(self, request: list) -> bool:
        args = request[3]
        return (len(args) > 1 and args[-1] > self.applied_zxid) or \
            (len(request) > 4 and request[4] > self.applied_index)

    def _answer(self, ident: bytes, rid: int, op: str, args: list,
                via_log: bool = False) -> Reply:
        try:
            return [ident, rid, 0, self._read_one(op, args), via_log, self.applied_zxid]
        except ZookeeperError as err:
            return [ident, rid, int(err.code), str(err), via_log, self.applied_zxid]

    def _release_parked(self) -> list[Reply]:
        """Reads whose zxid has now been applied, in arrival order (a client's later
        reads never carry an older zxid, so its order is kept)."""
        ready, waiting = [], []
        for parked in self._parked:
            (waiting if self._behind(parked[1]) else ready).append(parked)
        self._parked = waiting
        return [self._answer(*request[:4], via_log) for _, request, via_log in ready]

    def tick(self, now_ms: int) -> list[Reply]:
        """Reads that waited too long: NOT_READY, so the client tries another node."""
        if not self._parked or self._parked[0][0] > now_ms:
            return []
        expired = [p for p in self._parked if p[0] <= now_ms]
        self._parked = [p for p in self._parked if p[0] > now_ms]
        return [[request[0], request[1], int(Code.NOT_READY), _BEHIND, via_log,
                 self.applied_zxid] for _, request, via_log in expired]

    def _read_one(self, op: str, args: list) -> Any:
        path = args[0] if args else "/"
        if op == OP_GET:
            data, stat = self.tree.get(path)
            return [data, stat.to_list()]
        if op == OP_EXISTS:
            stat = self.tree.exists(path)
            return None if stat is None else stat.to_list()
        if op == OP_CHILDREN:
            return self.tree.get_children(path)
        if op == OP_STATUS:
            return self.status(digest=bool(args and args[0] is True))
        if op == OP_SESSIONS:
            held = self.tree.owners()
            return [[session_id, timeout, held.get(session_id, 0)]
                    for session_id, timeout in sorted(self.sessions.items())]
        if op == OP_SYNC:
            # One node: everything committed is applied by the time a read is served.
            return self.applied_zxid
        if op == OP_BACKUP:
            if path != "/":
                raise BadArgumentsError("a backup is of the whole tree: ask for '/'", path)
            return [self.applied_index, zxid_term(self.applied_zxid),
                    pack(self.snapshot_state())]
        raise UnimplementedError(f"not a read: {op!r}")

    def status(self, digest: bool = False) -> dict[str, int | None]:
        """The applied state in numbers; with ``digest``, also the tree's digest and
        the applied zxid it belongs to (see :meth:`digest`)."""
        status: dict[str, int | None] = {
            "term": self.term,
            "applied_zxid": self.applied_zxid,
            "applied_index": self.applied_index,
            "commit_index": self.commit_index,
            "znodes": len(self.tree),
            "sessions": len(self.sessions),
            "dedup_clients": len(self.clients),
            "duplicate_writes": self.duplicate_writes,
        }
        if digest:
            status["digest_zxid"], status["digest"] = self.digest()
        return status

    def digest(self) -> tuple[int, int]:
        """``(applied zxid, tree digest at it)``: two members that applied the same
        zxid must report the same digest.

        :meth:`Tree.digest` walks the whole tree (a 100k-node tree: ~0.25 s on
        this store's thread, which also applies writes), so it is computed only
        when a status request asks for it — status is polled (``zkctl up``, client
        tools), and most pollers want only the indexes — and then kept for its
        applied zxid: asking again before anything else is applied costs nothing.
        The tree changes only by applying an entry, which moves ``applied_zxid``,
        or by a snapshot restore, which drops the cached digest.
        """
        if self._digest is None or self._digest[0] != self.applied_zxid:
            self._digest = (self.applied_zxid, self.tree.digest())
        return self._digest


def _session_id(value: object) -> bool:
    return type(value) is int and 0 < value < 2**63
