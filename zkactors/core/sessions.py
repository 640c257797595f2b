"""Client sessions: their log transactions, and the leader's expiry tracker.

The rule: a session ends only by a committed transaction, so every member
deletes its ephemeral nodes at the same zxid; only the leader proposes expiry,
and only of a session no member has heard from for its whole timeout (ZooKeeper
Programmer's Guide, "ZooKeeper Sessions"; the leader's SessionTracker).

A session is what an ephemeral znode belongs to. Its life is replicated like any
write, so every member agrees on it:

* ``["session_open", id, timeout_ms]`` — a client opens (or re-opens, after a
  restart of nothing but its connection) the session ``id``, with the timeout
  the gateway negotiated. Applying it records the session; opening one that is
  open already only updates its timeout.
* ``["session_close", id]`` — the client ended it (``Client.stop()``): its
  ephemeral nodes are deleted in the same transaction.
* ``["session_expire", [id, ...]]`` — the leader found them silent for longer
  than their timeout: the same, for each still open. **Expiry is a committed
  transaction**, so every node deletes the same ephemerals at the same zxid,
  and a session that expired stays expired (a client hearing SESSION_EXPIRED
  starts a new one).

Which sessions are alive is known only where their clients are connected — any
node. Each gateway reports the sessions it heard from (requests and pings) to the
leader (through the log actors' peer links), and the leader's
:class:`ExpiryTracker` turns silence into expiry proposals. It is pure: touches,
ticks and leadership come in, ids to expire go out.

A new leader knows nothing of when sessions were last heard from, so it gives
every session a full timeout from the moment it took over (ZooKeeper does the
same): a leader change never expires a healthy session, and a dead client's
session goes at most one timeout (plus the election) later than it would have.
For the same reason, time the tracker could not watch does not count against
anyone: a leader whose process stalled (a pause, a machine suspended, a clock
that leapt) finds, on its first check after it, that nothing was heard for the
whole stall — its own fault, not the sessions'. Beyond ``stall_ms`` a gap
between two checks is forgiven.

The touches' route (:func:`touch_route`) is decided here too, so that the
runtime and the simulator carry them the same way.
"""

from __future__ import annotations

import heapq

TXN_SESSION_OPEN = "session_open"
TXN_SESSION_CLOSE = "session_close"
TXN_SESSION_EXPIRE = "session_expire"
SESSION_TXNS = frozenset({TXN_SESSION_OPEN, TXN_SESSION_CLOSE, TXN_SESSION_EXPIRE})
#: An expiry proposed but not applied this long after (lost in a leader change
#: that left us leader, say) is proposed again.
REPROPOSE_MS = 5_000
#: How often each gateway reports the sessions it heard from: well under the
#: shortest session timeout allowed ([session] min_timeout_ms, 1 s by default).
TOUCH_EVERY_MS = 100
#: How often the leader looks for sessions silent past their timeout.
EXPIRY_CHECK_MS = 100
#: A gap between two checks longer than this was a stall of ours: the rest of
#: it is not counted as the sessions' silence.
STALL_MS = 3 * EXPIRY_CHECK_MS


def touch_route(role_is_leader: bool, leader: int, node_id: int) -> str | int | None:
    """Where a node's log actor sends the sessions its gateway heard from: its own
    store if it leads ("store"), else the leader it knows (a peer id), else nowhere
    (None: during an election they are dropped — the next leader gives every
    session a full timeout anyway)."""
    if role_is_leader:
        return "store"
    if leader and leader != node_id:
        return leader
    return None


class ExpiryTracker:
    """The leader's view of when each open session was last heard from.

    ``sessions`` is the replicated table (id -> timeout_ms), read when needed:
    the tracker never keeps a session the table no longer has. Times are the
    caller's monotonic milliseconds.

    A check looks only at the sessions whose deadline may have passed (a heap
    of deadlines; a touch only notes the time, and a session found touched
    since its deadline was pushed goes back with its new one): a leader with
    10,000 idle sessions does not walk them all ten times a second."""

    def __init__(self, stall_ms: int | None = STALL_MS) -> None:
        #: Gaps between checks beyond this are forgiven (None: never; for tests
        #: that step time by hand).
        self.stall_ms = stall_ms
        self._last_check: int | None = None
        self.leading = False
        #: Session id -> when it was last heard from (or when we took over).
        self.last_heard: dict[int, int] = {}
        #: Ids proposed for expiry and not yet gone from the table, with when:
        #: not proposed again before REPROPOSE_MS.
        self.proposed: dict[int, int] = {}
        #: (when to look at it next, id); stale entries are fixed when popped.
        self._due: list[tuple[int, int]] = []

    def lead(self, sessions: dict[int, int], now_ms: int) -> None:
        """This node became leader: every session gets a full timeout from now."""
        self.leading = True
        self._last_check = now_ms
        self.last_heard = dict.fromkeys(sessions, now_ms)
        self.proposed = {}
        self._due = [(now_ms + timeout, session_id)
                     for session_id, timeout in sessions.items()]
        heapq.heapify(self._due)

    def follow(self) -> None:
        """No longer leader: whoever leads now tracks sessions."""
        self.leading = False
        self.last_heard = {}
        self.proposed = {}
        self._due = []

    def touch(self, ids: list[int], now_ms: int) -> None:
        """Heard from these clients. Only open sessions are tracked (every one
        is, from :meth:`lead` or :meth:`opened` on): gateways report every client
        id they hear, and most clients never open a session."""
        if not self.leading:
            return
        last_heard = self.last_heard
        for session_id in ids:
            if session_id in last_heard:
                last_heard[session_id] = now_ms

    def opened(self, session_id: int, now_ms: int) -> None:
        """A session was opened (applied): it starts with a full timeout."""
        if self.leading:
            self.last_heard[session_id] = now_ms
            self.proposed.pop(session_id, None)
            heapq.heappush(self._due, (now_ms, session_id))  # its deadline set when seen

    def expired(self, sessions: dict[int, int], now_ms: int) -> list[int]:
        """Sessions silent for longer than their timeout, not proposed lately
        (sorted). Forgets what the table no longer holds."""
        if not self.leading:
            return []
        self._forgive_stall(now_ms)
        due, heap = [], self._due
        last_heard, proposed = self.last_heard, self.proposed
        while heap and heap[0][0] <= now_ms:
            _, session_id = heapq.heappop(heap)
            timeout = sessions.get(session_id)
            if timeout is None:  # closed or expired meanwhile
                last_heard.pop(session_id, None)
                proposed.pop(session_id, None)
                continue
            deadline = last_heard.setdefault(session_id, now_ms) + timeout
            if now_ms <= deadline:  # heard from since: look again at its deadline
                heapq.heappush(heap, (deadline + 1, session_id))
                continue
            asked = proposed.get(session_id)
            if asked is not None and now_ms - asked <= REPROPOSE_MS:
                heapq.heappush(heap, (asked + REPROPOSE_MS + 1, session_id))
                continue
            due.append(session_id)
            proposed[session_id] = now_ms
            heapq.heappush(heap, (now_ms + REPROPOSE_MS + 1, session_id))
        return sorted(set(due))

    def _forgive_stall(self, now_ms: int) -> None:
        """If we were not looking for longer than ``stall_ms``, move every session's
        last-heard time on by the excess: what a stalled leader did not hear
        says nothing about the clients."""
        last, self._last_check = self._last_check, now_ms
        if self.stall_ms is None or last is None:
            return
        excess = now_ms - last - self.stall_ms
        if excess > 0:
            last_heard = self.last_heard
            for session_id in last_heard:
                last_heard[session_id] += excess
