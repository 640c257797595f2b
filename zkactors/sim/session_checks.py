"""What the simulator checks about sessions, ephemeral nodes and the lock.

* **No healthy session expires.** When a session's expiry is applied, the
  leader that proposed it must not have been able to hear from its client: no
  ping of that client was taken, within the session's timeout (less what the
  relay and the leader's clock may take), by a node that followed that leader
  in its term, and stayed up, running, linked to it and following it from the
  ping until the proposal — nor by any node before that leader took over (it
  owes every session a full timeout from then).
* **Ephemerals go exactly when their session does.** On every node, after every
  apply: every owner of an ephemeral node is an open session; and each node a
  client was told it created (and has not asked to delete) exists exactly while
  its session is open there.
* **Two holders of the lock never overlap** — unless one of them holds it from a
  session that had already ended (a client paused past its timeout, which wakes
  believing it still holds the lock): then only the fencing token protects the
  resource, and tokens granted to live sessions strictly increase.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zkactors.core.sessions import (
    TOUCH_EVERY_MS,
    TXN_SESSION_CLOSE,
    TXN_SESSION_EXPIRE,
)
from zkactors.sim.sessions import Hold

if TYPE_CHECKING:
    from zkactors.core.replog import Committed
    from zkactors.sim.cluster import SimNode, Simulation


class SessionChecker:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        #: Session id -> when its end (close or expiry) was first applied anywhere.
        self.ended_at: dict[int, int] = {}
        #: Session id -> its client's timeout (ms) and the client's index.
        self.clients: dict[int, tuple[int, int]] = {}
        #: Session id -> the pings nodes took from its client: (time, node id, the
        #: leader and term that node's log followed then).
        self.pings: dict[int, list[tuple[int, int, int, int]]] = {}
        #: Node pair -> when a partition or cut between them last began.
        self.cut_at: dict[frozenset[int], int] = {}
        #: Node id -> (term, time) of the leadership it holds or last held.
        self.leading_since: dict[int, tuple[int, int]] = {}
        #: Session id -> why expiring it would be wrong (if it commits).
        self.suspect: dict[int, str] = {}
        #: Ephemeral path -> (session, zxid it was created at) while expected.
        self.expected: dict[str, tuple[int, int]] = {}
        self.holds: list[Hold] = []
        self.last_live_token = 0
        self.expiries = 0
        self.healthy_checked = 0

    def fail(self, what: str) -> None:
        self.sim.checker.fail(what)

    # ------------------------------------------------------------- inputs
    def session_of(self, session: int, timeout_ms: int, client: int) -> None:
        self.clients[session] = (timeout_ms, client)

    def ping_taken(self, session: int, node: SimNode) -> None:
        pings = self.pings.setdefault(session, [])
        pings.append((self.sim.now, node.id, node.log.leader, node.log.term))
        if len(pings) > 8:
            del pings[0]

    def became_leader(self, node_id: int, term: int) -> None:
        """(Told again whenever the leader's role details change: the first time
        in a term counts.)"""
        if self.leading_since.get(node_id, (None, 0))[0] != term:
            self.leading_since[node_id] = (term, self.sim.now)

    def link_cut(self, a: int, b: int) -> None:
        self.cut_at[frozenset((a, b))] = self.sim.now

    def expiry_proposed(self, leader: SimNode, session_ids: list[int]) -> None:
        """``leader``'s store proposes these expiries now."""
        for session_id in session_ids:
            why = self._heard_lately(leader, session_id)
            if why:
                self.suspect[session_id] = why

    def _heard_lately(self, leader: SimNode, session_id: int) -> str:
        known = self.clients.get(session_id)
        if known is None:
            return ""
        timeout, client = known
        sim = self.sim
        f = sim.faults
        # A ping's touch reaches the leader's tracker within ``relay``: the
        # gateway's report period (on a drifting clock), the pipes and the link,
        # a tick. From then on the leader has heard from the client, and may not
        # expire it for its timeout (on a clock at most ``drift`` fast, less what
        # the tracker counts of a stall of its own before forgiving it).
        relay = int(TOUCH_EVERY_MS * (1 + f.drift)) + 2 * f.inproc_max_delay_ms + \
            f.max_delay_ms + 2 * sim.tick_ms
        window = int(timeout / (1 + f.drift)) - sim.expiry_stall_ms - sim.tick_ms
        now = sim.now
        term = leader.log.term
        since = self.leading_since.get(leader.id, (0, 0))
        for at, node_id, followed, followed_term in reversed(self.pings.get(session_id, [])):
            if now - at >= window:
                break
            if since[0] == term and since[1] > at:
                return (f"a new leader gives every session a full timeout: node "
                        f"{leader.id}, leader of term {term} since t={since[1]}, proposed "
                        f"expiring session {session_id:#x} (client {client}, timeout "
                        f"{timeout} ms) at t={now}, but node {node_id} took its ping at "
                        f"t={at}, before that leader took over")
            if now - at < relay:
                continue  # its touch may be on its way still
            node = sim.nodes[node_id]
            if (followed, followed_term) != (leader.id, term) or \
                    (node.log.leader, node.log.term) != (leader.id, term):
                continue  # the node did not follow this leader all along
            if not node.up or node_id in sim.paused or node.disturbed_at >= at:
                continue  # its gateway's report may have died with it
            if node_id != leader.id:
                pair = frozenset((node_id, leader.id))
                if pair in sim.partitioned or (node_id, leader.id) in sim.cut or \
                        (leader.id, node_id) in sim.cut or self.cut_at.get(pair, -1) >= at:
                    continue
            self.healthy_checked += 1
            return (f"no healthy session expires: node {leader.id} (leading term "
                    f"{term}) proposed expiring session {session_id:#x} (client "
                    f"{client}, timeout {timeout} ms) at t={now}, but node {node_id} "
                    f"took its ping at t={at}, {now - at} ms before, and has followed "
                    f"that leader and stayed linked to it since")
        return ""

    # ------------------------------------------------------------- applies
    def applied(self, node: SimNode, committed: list[Committed]) -> None:
        now = self.sim.now
        for item in committed:
            txn = item.entry.txn if item.entry is not None else None
            if not isinstance(txn, list) or not txn:
                continue
            if txn[0] == TXN_SESSION_EXPIRE and isinstance(txn[1], list):
                ended = txn[1]
            elif txn[0] == TXN_SESSION_CLOSE:
                ended = [txn[1]]
            else:
                continue
            for session_id in ended:
                if session_id in self.ended_at:
                    continue
                self.ended_at[session_id] = now
                if txn[0] == TXN_SESSION_EXPIRE:
                    self.expiries += 1
                    why = self.suspect.pop(session_id, None)
                    if why:
                        self.fail(why)
        store = node.store
        sessions = store.sessions
        for owner in store.tree.owners():
            if owner not in sessions:
                self.fail(f"ephemerals go with their session: node {node.id} has "
                          f"ephemeral nodes of session {owner:#x}, which is not open "
                          f"there (applied {store.applied_index})")
        zxid = store.applied_zxid
        for path, (session_id, created) in self.expected.items():
            if created > zxid:
                continue
            exists = store.tree.exists(path) is not None
            if exists != (session_id in sessions):
                self.fail(f"ephemerals go exactly with their session: on node {node.id} "
                          f"(applied zxid {zxid:#x}) {path} of session {session_id:#x} "
                          f"{'exists' if exists else 'is gone'} while the session is "
                          f"{'closed' if exists else 'open'}")

    def ephemeral_acked(self, session: int, path: str, zxid: int) -> None:
        self.expected[path] = (session, zxid)

    def ephemeral_released(self, path: str | None) -> None:
        if path is not None:
            self.expected.pop(path, None)

    # ----------------------------------------------------------------- lock
    def acquired(self, hold: Hold) -> None:
        ended = self.ended_at
        live = hold.session not in ended
        for other in self.holds:
            if other.end is not None or other.client == hold.client:
                continue
            if other.session in ended:
                # Fencing's case: the other still believes it holds the lock, but
                # its session is over; only its token keeps it off the resource.
                self.sim.stats["stale_holders"] += 1
            elif live:
                self.fail(f"two lock holders overlap: client {hold.client} (session "
                          f"{hold.session:#x}, token {hold.token:#x}) acquired the lock "
                          f"while client {other.client} (session {other.session:#x}, "
                          f"token {other.token:#x}, holding since t={other.start}) still "
                          f"holds it, and both sessions are open")
        if live:
            if hold.token <= self.last_live_token:
                self.fail(f"fencing tokens strictly increase: client {hold.client} got "
                          f"token {hold.token:#x} after {self.last_live_token:#x}")
            self.last_live_token = hold.token
        self.holds = [h for h in self.holds if h.end is None]
        self.holds.append(hold)
        self.sim.stats["lock_acquisitions"] += 1
