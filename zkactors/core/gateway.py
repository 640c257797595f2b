"""The gateway core: client sessions, request validation, routing, flow control.

The rule it keeps is ZooKeeper's client contract (Programmer's Guide, "ZooKeeper
consistency guarantees"): a client's requests take effect in the order it sent
them (a read behind its own pending writes waits for them: it goes through the
log), and a node answers reads only while it knows a live leader and has caught
up with it, so no client ever reads a state older than one it has seen (Raft
thesis §6.4 on reads that stay linearizable without the log).

Pure: the driver hands it each client frame (with the ROUTER identity of the
connection and the current time) and the replies coming back from the other
actors; it says where each request goes and what to send to whom. No socket, no
clock, no tree.

What it guarantees:

* every frame is either routed, answered with a typed error, or — when it cannot
  even be parsed into a request id — dropped and counted; nothing reaches a core
  unvalidated;
* a client says ``hello`` (with the protocol version) before anything else, so
  that versions can't silently mismatch;
* at most ``max_inflight`` requests per connection are outstanding inside the
  node, and at most ``max_clients`` sessions exist; idle sessions expire;
* a problem is logged once per client and kind (the driver logs what
  :attr:`GatewayCore.first_seen` reports), counted always.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from zkactors.core.dedup import tag
from zkactors.core.sessions import TXN_SESSION_CLOSE, TXN_SESSION_OPEN
from zkactors.core.tree import TXN_MULTI, validate_path
from zkactors.errors import (
    BadArgumentsError,
    Code,
    NoHelloError,
    NotReadyError,
    ProtocolVersionError,
    SessionExpiredError,
    ThrottledError,
    ZookeeperError,
)
from zkactors.protocol import (
    FLAG_EPHEMERAL,
    FLAG_MAKEPATH,
    FLAG_SEQUENCE,
    MAX_MULTI_OPS,
    MAX_WATCH_PATHS,
    OP_BYE,
    OP_CREATE,
    OP_DELETE,
    OP_END_SESSION,
    OP_HELLO,
    OP_MULTI,
    OP_PING,
    OP_SESSION,
    OP_SESSIONS,
    OP_SET,
    OP_STATUS,
    OP_SYNC,
    PROTOCOL_VERSION,
    REQUEST_ARGS,
    WATCH_OPS,
    WRITE_OPS,
    FrameError,
    decode_frame,
    decode_request,
)

#: What each kind of multi operation takes (see protocol.OP_MULTI).
_MULTI_ARGS: dict[str, tuple[type, ...]] = {
    "create": (str, bytes, int), "set": (str, bytes, int), "delete": (str, int),
    "check": (str, int),
}

#: Ended sessions remembered at most (oldest forgotten first): a client of one
#: that was forgotten is only told later, by its first ephemeral create.
MAX_ENDED = 100_000

ROUTE_LOG = "log"
ROUTE_STORE = "store"
ROUTE_REPLY = "reply"
ROUTE_WATCH = "watch"


@dataclass(slots=True)
class Session:
    name: str
    inflight: int
    last_seen_ms: int
    #: Requests sent through the log and not yet answered (writes, and reads held
    #: behind them). While there are any, this client's reads go through the log
    #: too, so they can neither overtake its writes nor its earlier held reads.
    log_inflight: int = 0
    #: The id the client gave in hello (0: none); its tagged writes apply at most once.
    client_id: int = 0


class GatewayCore:
    def __init__(
        self,
        node_id: int,
        max_data_bytes: int,
        max_path_bytes: int,
        max_inflight: int,
        max_clients: int,
        session_timeout_ms: int,
        identity: dict[str, Any] | None = None,
        min_session_timeout_ms: int = 1_000,
        max_session_timeout_ms: int = 60_000,
    ) -> None:
        self.node_id = node_id
        self.max_data_bytes = max_data_bytes
        self.max_path_bytes = max_path_bytes
        self.max_inflight = max_inflight
        self.max_clients = max_clients
        self.session_timeout_ms = session_timeout_ms
        self.min_session_timeout_ms = min_session_timeout_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        #: Client sessions (ids) heard from since :meth:`take_touched`: the leader's
        #: expiry tracker learns from these that they are alive.
        self.touched: set[int] = set()
        #: Sessions that ended (closed or expired), newest last, at most
        #: MAX_ENDED: their clients get SESSION_EXPIRED until they start a new one.
        self.ended: dict[int, None] = {}        #: Fixed facts about this node added to every status reply (role, endpoint).
        self.identity = dict(identity or {})
        self.sessions: dict[bytes, Session] = {}
        #: Status and sessions questions on their way through the store: the
        #: reply gets the gateway's own fields added (see on_replies).
        self._status_waiting: dict[tuple[bytes, int], str] = {}
        #: Reads are served only while a live leader is known (the election actor
        #: says so): a node cut off from the ensemble must not serve stale data.
        self.serving_reads = False
        #: ... and only once this node has applied what the leader had committed
        #: when it joined it (after a restart, a new leader …); the log says when,
        #: and up to which index: every read carries it, and the store answers it
        #: only once it has applied that far (it hears of commits on another pipe).
        self.caught_up = False
        self.read_floor = 0
        self._peer_counters: dict[str, dict[str, int]] = {}
        self.counters: Counter[str] = Counter()
        self._reported: set[tuple[bytes, str]] = set()
        #: Problems seen for the first time since the last call to :meth:`take_first_seen`.
        self.first_seen: list[tuple[bytes, str, str]] = []

    # ---------------------------------------------------------------- requests
    def on_frame(self, ident: bytes, frame: bytes, now_ms: int, writes: list, reads: list,
                 replies: list, watch_queries: list | None = None) -> None:
        """Route every request of one client frame.

        Appends what goes to the log (writes, and reads that must wait behind the
        same client's writes; see zkactors.runtime.mail.Writes) to ``writes``, reads ``[ident, rid,
        op, args]`` for the store to ``reads``, history queries ``[ident, rid, op,
        args]`` for the watch actor to ``watch_queries`` (without that list they
        are refused as unimplemented), and answers given at once ``[ident, rid,
        code, result, False]`` to ``replies``. The caller owns the lists, so one
        batch of frames becomes one message per actor.
        """
        try:
            requests = decode_frame(frame)
        except FrameError as err:
            self._problem(ident, "bad_frame", str(err))
            return
        session = self.sessions.get(ident)
        if session is not None:
            session.last_seen_ms = now_ms
            if session.client_id:
                self.touched.add(session.client_id)
        for request in requests:
            routed = self._route(ident, request, session, now_ms)
            if routed is None:
                continue
            kind, item = routed
            if kind is ROUTE_LOG:
                writes.append(item)
            elif kind is ROUTE_STORE:
                reads.append(item)
            elif kind is ROUTE_WATCH:
                if watch_queries is None:
                    replies.append([ident, item[1], int(Code.UNIMPLEMENTED),
                                    "no watch history here", False])
                    continue
                watch_queries.append(item)
            else:
                replies.append(item)
            if kind is not ROUTE_REPLY:
                session.inflight += 1
            elif item[2] == 0 and session is None:
                session = self.sessions.get(ident)  # hello just opened it

    def _route(self, ident: bytes, request: Any, session: Session | None,
               now_ms: int) -> tuple[str, list] | None:
        try:
            rid, op, args = decode_request(request)
        except FrameError as err:
            self._problem(ident, "bad_frame", str(err))
            return None
        except ZookeeperError as err:
            self._problem(ident, err.code.name.lower(), str(err))
            return ROUTE_REPLY, [ident, err.rid, int(err.code), str(err), False]  # type: ignore[attr-defined]
        if op == OP_HELLO:
            return ROUTE_REPLY, [ident, *self._hello(ident, rid, args, now_ms), False]
        if session is None:
            err = NoHelloError("no hello on record for this connection: send hello first")
            return ROUTE_REPLY, [ident, rid, int(err.code), str(err), False]
        if session.client_id in self.ended and op != OP_BYE:
            err = SessionExpiredError(f"session {session.client_id:#x} has ended (expired or "
                                      "closed): start a new one")
            return ROUTE_REPLY, [ident, rid, int(err.code), str(err), False]
        if op == OP_PING:
            if not self.serving_reads:
                # A session client takes this for a lost connection (SUSPENDED) and
                # looks for a node that serves, as ZooKeeper's clients do when
                # their server loses its leader. (Not logged: every client pings.)
                return ROUTE_REPLY, [ident, rid, int(Code.NOT_READY),
                                     "no live leader known here; try another node", False]
            return ROUTE_REPLY, [ident, rid, 0, None, False]
        if op == OP_BYE:
            # Requests still in flight are answered anyway; the session just goes.
            del self.sessions[ident]
            return ROUTE_REPLY, [ident, rid, 0, None, False]
        if session.inflight >= self.max_inflight:
            err = ThrottledError(f"more than {self.max_inflight} requests in flight")
            self._problem(ident, "throttled", str(err))
            return ROUTE_REPLY, [ident, rid, int(err.code), str(err), False]
        if op in WATCH_OPS:
            try:
                self._check_watch_query(args)
            except ZookeeperError as err:
                self._problem(ident, err.code.name.lower(), str(err))
                return ROUTE_REPLY, [ident, rid, int(err.code), str(err), False]
            return ROUTE_WATCH, [ident, rid, op, args]
        if op in (OP_STATUS, OP_SESSIONS):
            # The store knows the applied state first-hand; the reply is completed
            # with the gateway's own fields on its way back (see on_replies).
            self._status_waiting[(ident, rid)] = op
            return ROUTE_STORE, [ident, rid, op, list(args) if op == OP_STATUS else []]
        try:
            if op in WRITE_OPS:
                txn = self._txn(op, args, session.client_id)
                if len(args) > len(REQUEST_ARGS[op]):
                    txn = self._tag(session, args[-2], args[-1], txn)
                session.log_inflight += 1
                return ROUTE_LOG, [ident, rid, txn, None]
            validate_path(args[0], self.max_path_bytes)
            if not self.serving_reads:
                raise NotReadyError("no live leader known here; try another node")
            if not self.caught_up:
                raise NotReadyError("still catching up with the leader; try another node")
            if session.log_inflight or op == OP_SYNC:
                # (A sync always goes through the log: it needs the leader's
                # read index.)
                session.log_inflight += 1
                return ROUTE_LOG, [ident, rid, None, [op, args]]
            return ROUTE_STORE, [ident, rid, op, args, self.read_floor]
        except NotReadyError as err:
            # Not the client's fault: every client meets it during an election or
            # a catch-up, and moves on. Counted, never logged (a soak's node log
            # had 892 warnings of it).
            self.counters["not_ready"] += 1
            return ROUTE_REPLY, [ident, rid, int(err.code), str(err), False]
        except ZookeeperError as err:
            self._problem(ident, err.code.name.lower(), str(err))
            return ROUTE_REPLY, [ident, rid, int(err.code), str(err), False]

    def _check_watch_query(self, args: list) -> None:
        paths = args[0]
        if not paths or len(paths) > MAX_WATCH_PATHS:
            raise BadArgumentsError(f"between 1 and {MAX_WATCH_PATHS} [path, recursive] "
                                    f"pairs, got {len(paths)}")
        for pair in paths:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
                    and isinstance(pair[1], bool)):
                raise BadArgumentsError("each watched path is a [path, recursive] pair")
            validate_path(pair[0], self.max_path_bytes)
        for zxid in args[1:]:
            if not 0 <= zxid < 2**64:
                raise BadArgumentsError(f"zxid {zxid} out of range")

    def _hello(self, ident: bytes, rid: int, args: list, now_ms: int) -> tuple[int, int, Any]:
        version, name = args[:2]
        client_id = args[2] if len(args) > 2 else 0
        if version != PROTOCOL_VERSION:
            err = ProtocolVersionError(
                f"client speaks protocol {version}, node speaks {PROTOCOL_VERSION}"
            )
            self._problem(ident, "protocol_version", str(err))
            return rid, int(err.code), str(err)
        if not 0 <= client_id < 2**63:
            err = BadArgumentsError(f"client_id {client_id} is not in [0, 2**63) (0: none)")
            self._problem(ident, "bad_arguments", str(err))
            return rid, int(err.code), str(err)
        session = self.sessions.get(ident)
        if session is None:
            if len(self.sessions) >= self.max_clients:
                err = ThrottledError(f"node has its maximum of {self.max_clients} clients")
                self._problem(ident, "too_many_clients", str(err))
                return rid, int(err.code), str(err)
            self.sessions[ident] = Session(name[:200], 0, now_ms, client_id=client_id)
        else:
            session.last_seen_ms = now_ms
            # Hello again with a new id: the client started a new session (its
            # last one ended); its writes are deduplicated under the new id.
            session.client_id = client_id
        if client_id:
            # A client (re)connecting is alive: the leader hears of it too. (The
            # requests sharing this frame found no session to touch yet.)
            self.touched.add(client_id)
        return rid, int(Code.OK), {
            "protocol": PROTOCOL_VERSION,
            "node": self.node_id,
            "max_inflight": self.max_inflight,
            "max_data_bytes": self.max_data_bytes,
            "session_timeout_ms": self.session_timeout_ms,
            # The session timeouts this ensemble grants: a client asks within them.
            "session_bounds_ms": [self.min_session_timeout_ms, self.max_session_timeout_ms],
            "dedup": True,
            # Whether this node knows a live leader, so can keep a session alive
            # (its touches reach the leader): a session client stays connected
            # only to one that does. (One still catching up can: it only
            # refuses reads for a moment.)
            "serving": self.serving_reads,
            # Where this node publishes changes: a client subscribes there.
            "watch": self.identity.get("watch_endpoint", ""),
        }

    def _txn(self, op: str, args: list, client_id: int) -> list:
        """Validate a write and turn it into the txn the log stores."""
        if op == OP_CREATE:
            path, data, flags = args[:3]
            if flags & ~(FLAG_MAKEPATH | FLAG_SEQUENCE | FLAG_EPHEMERAL):
                raise BadArgumentsError(f"unknown create flags {flags:#x}", path)
            validate_path(path, self.max_path_bytes, sequence=bool(flags & FLAG_SEQUENCE))
            self._check_size(path, data)
            if flags & FLAG_EPHEMERAL:
                if not client_id:
                    raise BadArgumentsError("an ephemeral node needs a session (the client "
                                            "gives its id at hello)", path)
                return [OP_CREATE, path, data, flags, client_id]
            return [OP_CREATE, path, data, flags]
        if op == OP_SESSION:
            (timeout_ms,) = args[:1]
            low, high = self.min_session_timeout_ms, self.max_session_timeout_ms
            if not client_id:
                raise BadArgumentsError("a session needs the client's id, given at hello")
            if not low <= timeout_ms <= high:
                raise BadArgumentsError(f"session timeout {timeout_ms} ms is outside this "
                                        f"ensemble's bounds, {low}..{high} ms")
            return [TXN_SESSION_OPEN, client_id, timeout_ms]
        if op == OP_END_SESSION:
            if not client_id:
                raise BadArgumentsError("no session to end: the client gave no id at hello")
            return [TXN_SESSION_CLOSE, client_id]
        if op == OP_MULTI:
            return [TXN_MULTI, self._multi(args[0], client_id)]
        if op == OP_SET:
            path, data, version = args[:3]
            validate_path(path, self.max_path_bytes)
            self._check_size(path, data)
            self._check_version(path, version)
            return [OP_SET, path, data, version]
        if op == OP_DELETE:
            path, version, recursive = args[:3]
            validate_path(path, self.max_path_bytes)
            self._check_version(path, version)
            return [OP_DELETE, path, version, recursive]
        raise BadArgumentsError(f"not a write: {op!r}")  # pragma: no cover

    def _multi(self, ops: list, client_id: int) -> list:
        """Each operation of a multi checked as if it came alone."""
        if not ops or len(ops) > MAX_MULTI_OPS:
            raise BadArgumentsError(f"a multi holds 1..{MAX_MULTI_OPS} operations, "
                                    f"not {len(ops)}")
        txns = []
        for i, item in enumerate(ops):
            if not isinstance(item, list) or not item or item[0] not in _MULTI_ARGS:
                raise BadArgumentsError(f"multi operation {i}: not one of "
                                        f"{', '.join(sorted(_MULTI_ARGS))}")
            kind, args = item[0], item[1:]
            types = _MULTI_ARGS[kind]
            if len(args) != len(types) or not all(
                    isinstance(a, t) and not (t is int and isinstance(a, bool))
                    for a, t in zip(args, types, strict=True)):
                raise BadArgumentsError(f"multi operation {i} ({kind}) takes "
                                        f"{', '.join(t.__name__ for t in types)}")
            if kind == "check":
                validate_path(args[0], self.max_path_bytes)
                self._check_version(args[0], args[1])
                txns.append(["check", args[0], args[1]])
            elif kind == "delete":
                txns.append(self._txn(OP_DELETE, [*args, False], client_id))
            else:
                txns.append(self._txn(kind, args, client_id))
        return txns

    @staticmethod
    def _tag(session: Session, seq: int, ack_below: int, txn: list) -> list:
        """A write tagged for deduplication, if the client gave an id at hello."""
        if not (0 <= seq < 2**63 and 0 <= ack_below < 2**63):
            raise BadArgumentsError(f"seq {seq} / ack_below {ack_below} out of range",
                                    txn[1])
        if not session.client_id:
            return txn  # nothing to deduplicate by
        return tag(session.client_id, seq, ack_below, txn)

    def _check_size(self, path: str, data: bytes) -> None:
        if len(data) > self.max_data_bytes:
            raise BadArgumentsError(
                f"value of {len(data)} bytes exceeds max_data_bytes={self.max_data_bytes}", path
            )

    @staticmethod
    def _check_version(path: str, version: int) -> None:
        if not -1 <= version < 2**31:
            raise BadArgumentsError(f"version {version} out of range", path)

    # ----------------------------------------------------------------- replies
    def on_replies(self, replies: list[list]) -> None:
        """Requests answered by another actor leave the in-flight count; status
        replies get the gateway's fields added."""
        sessions = self.sessions
        for reply in replies:
            session = sessions.get(reply[0])
            if session is not None and session.inflight > 0:
                session.inflight -= 1
                if reply[4]:
                    session.log_inflight -= 1
            if self._status_waiting and (reply[0], reply[1]) in self._status_waiting:
                op = self._status_waiting.pop((reply[0], reply[1]))
                if reply[2] == 0:
                    reply[3] = self.status(reply[3]) if op == OP_STATUS else {
                        "node": self.node_id, "sessions": reply[3],
                        "connected": sorted({s.client_id for s in sessions.values()
                                             if s.client_id})}

    @property
    def serving(self) -> bool:
        """A live leader is known here, and this node has caught up with it."""
        return self.serving_reads and self.caught_up

    def on_role(self, role: str, term: int, leader: int, leader_endpoint: str,
                caught_up: bool = True, read_floor: int = 0) -> None:
        """The log actor's role changed, or it caught up with its leader (shown in
        status; leader used for redirects; reads served only once caught up, and
        from no state older than ``read_floor``)."""
        self.identity.update(role=role, term=term, leader=leader,
                             leader_endpoint=leader_endpoint)
        self.caught_up = caught_up
        self.read_floor = read_floor

    def on_sessions_ended(self, session_ids: list[int]) -> None:
        """Sessions closed or expired (applied here): their clients are told."""
        ended = self.ended
        for session_id in session_ids:
            ended[session_id] = None
        while len(ended) > MAX_ENDED:
            del ended[next(iter(ended))]

    def take_touched(self) -> list[int]:
        touched, self.touched = self.touched, set()
        return sorted(touched)

    def on_peer_counters(self, actor: str, counters: dict[str, int]) -> None:
        """Peer messages an actor dropped at the edge (unknown sender, malformed,
        forged, another ensemble's config …), for status."""
        self._peer_counters[actor] = counters

    def status(self, store_status: dict[str, Any]) -> dict[str, Any]:
        applied_index = store_status.get("applied_index", 0)
        commit_index = store_status.get("commit_index", 0)
        return {
            "node": self.node_id,
            **store_status,
            **self.identity,
            "serving_reads": self.serving,
            "caught_up": self.caught_up,
            "lag": max(0, commit_index - applied_index),
            "clients": len(self.sessions),
            "errors": dict(self.counters),
            "peer_rejected": {f"{actor}.{reason}": count
                              for actor, counters in sorted(self._peer_counters.items())
                              for reason, count in counters.items()},
        }

    # -------------------------------------------------------------------- time
    def tick(self, now_ms: int) -> list[bytes]:
        """Expire idle sessions with nothing in flight; returns the expired idents."""
        horizon = now_ms - self.session_timeout_ms
        expired = [
            ident
            for ident, session in self.sessions.items()
            if session.last_seen_ms < horizon and session.inflight == 0
        ]
        for ident in expired:
            del self.sessions[ident]
        return expired

    # ---------------------------------------------------------------- problems
    def on_bad_frame(self, ident: bytes, detail: str) -> None:
        """A message the driver could not even split into one frame: dropped, counted."""
        self._problem(ident, "bad_frame", detail)

    def _problem(self, ident: bytes, kind: str, detail: str) -> None:
        self.counters[kind] += 1
        key = (ident, kind)
        if key not in self._reported and len(self._reported) < 100_000:
            self._reported.add(key)
            self.first_seen.append((ident, kind, detail))

    def take_first_seen(self) -> list[tuple[bytes, str, str]]:
        seen, self.first_seen = self.first_seen, []
        return seen
