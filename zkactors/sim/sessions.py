"""Simulated clients with sessions, contending for one lock, as recipe.lock does.

Each :class:`LockClient` opens a session (a committed ``session_open``), pings
the node it is connected to every third of its timeout, and loops: create an
ephemeral sequential node under ``/lock``, read its ``czxid`` (the fencing token,
``Lock.token``), list the children, and hold the lock once its node is the
lowest — else look again a little later. While it holds the lock it acts on a
shared :class:`Resource` now and then, with its token, and after a while releases
it (deletes its node). It does one request at a time besides its pings, tags its
writes (session id, seq) and resends one whose outcome is unknown with the same
seq, moves to the leader a NOT_LEADER answer names, and to another node when a
node stays silent.

Like a careful kazoo user, it acts only while it is sure of its session: while
its last answered request was *sent* less than two thirds of its timeout ago (by
its own clock). The leader cannot have expired it before a full timeout after
that request reached a node (its clock runs at most ``drift`` fast). A client
*pauses* too (a GC stall, a SIGSTOP); if its clock stood still meanwhile (a
suspended VM) it wakes believing it is safe and acts — exactly the case the
fencing token is for: the resource refuses a token older than one it has seen.

A ``SESSION_EXPIRED`` answer is LOST: the client's hold (if any) ends, and it
carries on under a new session id, as the client library does.

What the checks (:mod:`zkactors.sim.invariants`) get from here: every hold
(who, session, token, from, to), every ephemeral node a client was told it
created and has not asked to delete, and every ping a node's gateway took.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zkactors.errors import Code
from zkactors.protocol import (
    FLAG_EPHEMERAL,
    FLAG_MAKEPATH,
    FLAG_SEQUENCE,
    OP_CHILDREN,
    OP_CREATE,
    OP_DELETE,
    OP_EXISTS,
    OP_PING,
    OP_SESSION,
)

if TYPE_CHECKING:
    from zkactors.sim.cluster import Simulation

LOCK_DIR = "/lock"
#: Answers after which the request goes again (a write with the same seq).
_AGAIN = frozenset((int(Code.NOT_LEADER), int(Code.CONNECTION_LOSS), int(Code.NOT_READY)))


@dataclass
class Hold:
    """One holder's time with the lock, in simulated (global) time."""

    client: int
    session: int
    token: int
    start: int
    end: int | None = None  # None: still holding
    why_ended: str = ""
    #: The client's clock stood still in a pause during it (it may act late).
    clock_stopped: bool = False


@dataclass
class Resource:
    """What the lock protects: accepts an action only with a token at least as new
    as any it has seen (the fencing check a real resource would make)."""

    newest: int = 0
    accepted: list[tuple[int, int, int]] = field(default_factory=list)  # (time, client, token)
    refused: int = 0

    def act(self, now: int, client: int, token: int) -> bool:
        if token < self.newest:
            self.refused += 1
            return False
        self.newest = token
        self.accepted.append((now, client, token))
        return True


@dataclass
class _Request:
    kind: str  # "open", "create", "token", "children", "release"
    body: list  # [op, *args] (a write's seq and ack_below are added when sent)
    seq: int = 0  # a write's
    rid: int = 0
    sent_local: int = 0  # the client's clock when last sent
    sent_at: int = 0  # simulated time when last sent
    due: int = 0  # when to send (again)
    attempts: int = 0


class LockClient:
    def __init__(self, sim: Simulation, index: int, timeout_ms: int) -> None:
        self.sim = sim
        self.index = index
        self.base = (1000 + index) << 20
        self.generation = 0
        self.session = 0  # the session id (also the client id at hello)
        self.session_open = False
        self.timeout_ms = timeout_ms
        self.node = sim.rng.choice(sim.members)
        self.conn = 0
        self.seq = 0
        self.request: _Request | None = None
        self.ping_rid = 0
        self.ping_sent_local = 0
        self.next_ping_local = 0
        self.last_ok_local: int | None = None  # when the last answered request was sent
        #: The client's clock lags simulated time by what its frozen pauses took.
        self.clock_lag = 0
        self.paused_until = 0
        self.pause_started = 0
        self.pause_freezes = False
        self.my_node: str | None = None
        self.token = 0
        self.hold: Hold | None = None
        self.idle_until = 0
        self.answer_zxid = 0
        self.hold_until = 0
        self._renew()

    # ------------------------------------------------------------ the clock
    def local(self) -> int:
        return self.sim.now - self.clock_lag

    def safe(self) -> bool:
        """Sure of its session: its last answered request was sent less than two
        thirds of a timeout ago, by its own clock."""
        return self.last_ok_local is not None and \
            self.local() - self.last_ok_local < 2 * self.timeout_ms // 3

    # --------------------------------------------------------- the session
    def _renew(self) -> None:
        """A new session (at start, and after LOST)."""
        self.generation += 1
        self.session = self.base + self.generation
        self.session_open = False
        self.sim.sessions.session_of(self.session, self.timeout_ms, self.index)
        self.seq = 0
        self.my_node = None
        self.last_ok_local = None
        self._write("open", [OP_SESSION, self.timeout_ms])

    def lost(self) -> None:
        self._end_hold("lost")
        self.sim.stats["sessions_lost"] += 1
        self._renew()

    # ------------------------------------------------------------ requests
    def _write(self, kind: str, body: list) -> None:
        self.seq += 1
        self.request = _Request(kind, body, seq=self.seq, due=self.sim.now)

    def _read(self, kind: str, body: list) -> None:
        self.request = _Request(kind, body, due=self.sim.now)

    def _send(self, request: _Request) -> None:
        sim = self.sim
        request.attempts += 1
        request.rid = sim.next_rid()
        request.sent_local, request.sent_at = self.local(), sim.now
        request.due = sim.now + sim.faults.client_timeout_ms  # then: silence
        wire = [request.rid, *request.body]
        if request.seq:
            wire += [request.seq, request.seq]  # one at a time: all below settled
        sim.lock_frame(self, [wire])

    def _ping(self) -> None:
        sim = self.sim
        self.ping_rid = sim.next_rid()
        self.ping_sent_local = self.local()
        self.next_ping_local = self.local() + self.timeout_ms // 3
        sim.lock_frame(self, [[self.ping_rid, OP_PING]])

    def _move(self, node: int = 0) -> None:
        """A new connection: to ``node``, or to another node at random."""
        sim = self.sim
        others = [n for n in sim.members if n != self.node]
        self.node = node or sim.rng.choice(others)
        self.conn += 1
        self.ping_rid = 0
        if self.request is not None:
            self.request.due = sim.now

    # ---------------------------------------------------------------- steps
    def wake(self) -> None:
        """End a pause now (the final heal)."""
        self.paused_until = min(self.paused_until, self.sim.now)

    def pause(self, duration: int, clock_stops: bool) -> None:
        if self.paused_until <= self.sim.now:
            self.paused_until = self.sim.now + duration
            self.pause_started = self.sim.now
            self.pause_freezes = clock_stops
            self.sim.stats["client_pauses"] += 1

    def step(self) -> None:
        sim = self.sim
        now = sim.now
        if self.paused_until:
            if now < self.paused_until:
                return
            if self.pause_freezes:  # its clock stood still: it never noticed
                self.clock_lag += now - self.pause_started
                if self.hold is not None:
                    self.hold.clock_stopped = True
            self.paused_until = 0
        if self.ping_rid and self.local() - self.ping_sent_local > self.timeout_ms // 3:
            self._move()  # no answer to a ping in a third of the timeout
        if not self.ping_rid and self.local() >= self.next_ping_local:
            self._ping()
        if self.hold is not None:
            self._while_holding()
        request = self.request
        if request is not None and request.seq and now >= sim.clients_stop_at:
            request = None  # no more writes: the ensemble is settling
        if request is not None:
            if now >= request.due:
                if request.attempts and request.rid and \
                        now - request.sent_at >= sim.faults.client_timeout_ms:
                    self._move()  # silence: try another node
                self._send(request)
        elif now >= self.idle_until and self.session_open and self.my_node is None and \
                self.hold is None and now < sim.clients_stop_at:
            self._write("create", [OP_CREATE, f"{LOCK_DIR}/n-", b"",
                                   FLAG_MAKEPATH | FLAG_SEQUENCE | FLAG_EPHEMERAL])

    def _while_holding(self) -> None:
        sim, hold = self.sim, self.hold
        if not self.safe():
            # Not sure of its session any more: it stops acting and lets go.
            self._release("unsure of its session")
            return
        if self.local() >= self.hold_until or sim.now >= sim.clients_stop_at:
            self._release("released")
            return
        if sim.rng.random() < 0.2 and not sim.resource.act(sim.now, self.index, hold.token):
            sim.stats["fenced"] += 1

    def _release(self, why: str) -> None:
        self._end_hold(why)
        if self.my_node is not None and self.request is None:
            # From now on its node may go at any moment: no longer expected.
            self.sim.ephemeral_released(self, self.my_node)
            self._write("release", [OP_DELETE, self.my_node, -1, False])

    def _end_hold(self, why: str) -> None:
        if self.hold is not None:
            self.hold.end = self.sim.now
            self.hold.why_ended = why
            self.hold = None

    # -------------------------------------------------------------- answers
    def on_reply(self, conn: int, rid: int, code: int, result: Any, leader: int,
                 zxid: int) -> None:
        if conn != self.conn:
            return  # an old connection's: dropped with it
        if rid == self.ping_rid:
            self.ping_rid = 0
            if code == Code.OK:
                self._ok(self.ping_sent_local)
            elif code == Code.SESSION_EXPIRED:
                self.lost()
            else:
                self._move()  # this node cannot vouch for us: another
            return
        request = self.request
        if request is None or rid != request.rid:
            return
        if code == Code.SESSION_EXPIRED:
            self.request = None
            self.lost()
            return
        if code in _AGAIN:
            if code == Code.NOT_LEADER and leader and leader != self.node:
                self._move(leader)
            elif code != Code.NOT_LEADER:
                self._move()
            request.due = self.sim.now + self.sim.rng.randint(2, 20)
            request.rid = 0
            return
        self._ok(request.sent_local)
        self.request = None
        self.answer_zxid = zxid
        getattr(self, f"_on_{request.kind}")(code, result)

    def _ok(self, sent_local: int) -> None:
        if self.last_ok_local is None or sent_local > self.last_ok_local:
            self.last_ok_local = sent_local

    def _on_open(self, code: int, result: Any) -> None:
        if code == Code.OK:
            self.session_open = True
            self.sim.stats["sessions_opened"] += 1
        else:
            self._write("open", [OP_SESSION, self.timeout_ms])

    def _on_create(self, code: int, result: Any) -> None:
        if code != Code.OK:
            self.idle_until = self.sim.now + self.sim.rng.randint(5, 50)
            return
        self.my_node = result
        self.sim.ephemeral_acked(self, result, self.answer_zxid)
        self._read("token", [OP_EXISTS, result])

    def _on_token(self, code: int, result: Any) -> None:
        if code != Code.OK or result is None:
            self._gone()
            return
        self.token = result[0]  # czxid: the fencing token
        self._read("children", [OP_CHILDREN, LOCK_DIR])

    def _on_children(self, code: int, result: Any) -> None:
        sim = self.sim
        name = self.my_node.rsplit("/", 1)[1] if self.my_node else None
        if code != Code.OK or name not in result:
            self._gone()
            return
        if min(result, key=lambda n: n.rsplit("-", 1)[1]) == name:
            if sim.now >= sim.clients_stop_at or not self.safe():
                self._release("gave up")
                return
            self.hold = Hold(self.index, self.session, self.token, sim.now)
            # (By its own clock: one that stood still in a pause holds on after it.)
            self.hold_until = self.local() + sim.rng.randint(5, 120)
            sim.lock_acquired(self.hold)
        else:
            self._read("children", [OP_CHILDREN, LOCK_DIR])
            self.request.due = sim.now + sim.rng.randint(5, 30)

    def _on_release(self, code: int, result: Any) -> None:
        self.my_node = None
        self.idle_until = self.sim.now + self.sim.rng.randint(*self.sim.faults.lock_idle_ms)
        if self.sim.rng.random() < 0.2:
            self._move()  # and now and then it is moved (a load balancer)

    def _gone(self) -> None:
        """Its node is not there (its session must have ended): start again."""
        self._end_hold("its node was gone")
        self.sim.ephemeral_released(self, self.my_node)
        self.my_node = None
        self.idle_until = self.sim.now
