"""The client's session core: which node it talks to, and every request's fate —
without sockets, threads or clocks.

A pure state machine like the server's cores: the agent thread
(:mod:`zkactors.client.agent`) feeds it what happened — requests taken, replies,
the TCP link dropping or being refused, ticks with the time — and carries out the
effects it returns: :class:`Connect`, :class:`Close`, :class:`Send`,
:class:`StateChanged`, :class:`Attached`, :class:`Settle`. So the unit tests drive
it through whole outages without a socket (``tests/unit/test_client_session.py``).

Connection states:

* connecting — a socket to one endpoint, ``hello`` sent, waiting for the answer;
  no answer within ``connect_timeout`` (or the link refused) means the next endpoint.
* connected — requests flow, at most the node's ``max_inflight`` at a time; pings
  keep the line proven when idle. Silence for ``connect_timeout`` while something
  is outstanding means the node is gone: SUSPENDED, next endpoint.
* backing off — every endpoint failed in turn: no socket at all until the next
  round, after an exponentially growing, jittered pause (``reconnect_base`` doubling
  up to ``reconnect_max``). A client whose whole ensemble is down thus costs a few
  wake-ups a second and holds no sockets between rounds, instead of opening
  thousands a second; the jitter keeps many clients from coming back in step.
  Losing the node one was connected to is not a round: the next endpoint is tried
  at once, so failover never waits on the backoff.

Requests that were sent but not answered when a connection is lost are sent
again, to whichever node the session reaches next, in the order they were first
taken — writes included: each write carries this client's id and its own sequence
number, and the ensemble applies a write at most once however often it arrives
(:mod:`zkactors.core.dedup`), giving a copy the reply the first one got. The same
holds for a write that a leader drops when it loses leadership. (Against a node
that does not deduplicate, an unanswered write fails with ``ConnectionLoss``: the
session never guesses success.) A connection suspended for longer than the session
timeout becomes LOST and every waiting request fails; reconnecting goes on.

FIFO order: whatever sends a request back (a lost connection, NOT_LEADER, a retry
delay, throttling) puts it back by the order it was taken in, and nothing taken
after a request that waits out a retry delay is sent before it. The ensemble backs
this up: it applies a tagged write only after every earlier one of the same client
(:meth:`zkactors.core.dedup.ClientTable.in_order`), refusing one that overtook
another with NOT_READY, which lands it back here, in order.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from zkactors.errors import (
    Code,
    ConnectionClosedError,
    ConnectionLoss,
    NotReadyError,
    OperationTimeoutError,
    SessionExpiredError,
    error_for,
)
from zkactors.protocol import (
    FLAG_EPHEMERAL,
    OP_BYE,
    OP_CREATE,
    OP_HELLO,
    OP_MULTI,
    OP_PING,
    OP_SESSION,
    PROTOCOL_VERSION,
    WRITE_OPS,
    pack,
    pack_batch,
)
from zkactors.wire import MAX_REPLIES_PER_CLIENT

CONNECTED = "CONNECTED"
SUSPENDED = "SUSPENDED"
LOST = "LOST"

#: The fine tick while something is in progress (connecting, requests out).
TICK_S = 0.05
#: Pause before resending a request refused for want of a leader.
RETRY_DELAY_S = 0.05
#: The first pause after every endpoint failed in turn, and the longest one.
RECONNECT_BASE_S = 0.1
RECONNECT_MAX_S = 2.0
#: Requests per frame at most, so one huge burst doesn't become one huge message.
MAX_FRAME_REQUESTS = 256


class ZkFuture(Future):
    """A ``concurrent.futures.Future`` with kazoo's ``IAsyncResult`` spelling too."""

    #: The zxid the node reported with the reply (its applied zxid then).
    zxid = 0

    def get(self, timeout: float | None = None) -> Any:
        return self.result(timeout)

    def get_nowait(self) -> Any:
        return self.result(0)


@dataclass(slots=True)
class Request:
    rid: int
    op: str
    packed: bytes  # the request alone, msgpack-encoded; frames are built by pack_batch
    future: ZkFuture
    transform: Callable[[Any], Any]
    deadline: float
    path: str | None = None
    attempts: int = 0
    #: A write's arguments: it is packed when sent, with its dedup tag.
    args: list | None = None
    #: A write's sequence number (0 until the session takes it), kept across resends.
    seq: int = 0
    #: The order in which the session took it: requests are (re)sent in this order.
    order: int = 0
    #: Settled by the session (its :class:`Settle` may not be carried out yet).
    settled: bool = False

    def done(self) -> bool:
        """Settled here, or cancelled (or otherwise finished) by the caller."""
        return self.settled or self.future.done()


def _by_order(request: Request) -> int:
    return request.order


def _identity(value: Any) -> Any:
    return value


#: Codes with which a request is sent again rather than settled.
_RETRIED = frozenset({Code.NOT_LEADER, Code.NOT_READY, Code.CONNECTION_LOSS,
                      Code.THROTTLED, Code.NO_HELLO})


def _is_ephemeral(request: Request) -> bool:
    """An ephemeral create, alone or in a multi: it needs a session."""
    args = request.args
    if request.op == OP_CREATE:
        return bool(args) and len(args) > 2 and type(args[2]) is int \
            and bool(args[2] & FLAG_EPHEMERAL)
    if request.op == OP_MULTI and args:
        return any(isinstance(op, list) and len(op) == 4 and op[0] == "create"
                   and type(op[3]) is int and bool(op[3] & FLAG_EPHEMERAL) for op in args[0])
    return False


# ------------------------------------------------------------------ effects
@dataclass(slots=True, frozen=True)
class Connect:
    """Open a socket to ``endpoint`` (none is open when this comes)."""

    endpoint: str


@dataclass(slots=True, frozen=True)
class Close:
    """Close the socket; ``linger``: give what was just sent (a bye) a moment to leave."""

    linger: bool = False


@dataclass(slots=True, frozen=True)
class Send:
    frame: bytes


@dataclass(slots=True, frozen=True)
class StateChanged:
    state: str


@dataclass(slots=True, frozen=True)
class Attached:
    """A hello was answered or the connection lost: the watch receiver follows."""


@dataclass(slots=True, frozen=True)
class Settle:
    """Resolve the request's future with ``value``, or fail it with ``error``."""

    request: Request
    value: Any = None
    error: BaseException | None = None
    zxid: int = 0


Effect = Connect | Close | Send | StateChanged | Attached | Settle


class Session:
    """One client's connection and requests. Every input takes ``now`` (monotonic
    seconds); effects pile up in :attr:`effects` until :meth:`take_effects`."""

    def __init__(self, endpoints: list[str], *, client_id: int, name: str,
                 connect_timeout: float, session_timeout: float,
                 rng: random.Random | None = None,
                 reconnect_base: float = RECONNECT_BASE_S,
                 reconnect_max: float = RECONNECT_MAX_S,
                 open_session: bool = False) -> None:
        if not endpoints:
            raise ValueError("a session needs at least one endpoint")
        self.endpoints = list(endpoints)
        #: Who we are to the ensemble: the dedup id of our writes and, once
        #: opened, the id of our replicated session (ephemeral nodes' owner).
        self.client_id = client_id
        self.name = name
        self.connect_timeout = connect_timeout
        self.session_timeout = session_timeout
        #: Whether to open a replicated session (zkactors.core.sessions) first
        #: thing, and start a new one whenever the ensemble says it ended.
        self.open_session = open_session
        #: The session's id once the ensemble has opened it (None before, and
        #: from its end until the next one opens).
        self.session_id: int | None = None
        #: Why the ensemble refused to open our session, if it did (then no new
        #: one is tried: ephemeral creates fail with this).
        self.session_error: Exception | None = None
        #: The session's opening is queued or in flight.
        self.session_pending = False
        #: The session timeouts the ensemble grants (from hello): ours is asked
        #: for within them, as ZooKeeper negotiates it.
        self.session_bounds_ms: tuple[int, int] | None = None
        #: The timeout the ensemble granted our open session (ms), if one is open.
        self.granted_timeout_ms: int | None = None
        self.rng = rng or random.Random()
        self.reconnect_base = reconnect_base
        self.reconnect_max = max(reconnect_max, reconnect_base)
        self.effects: list[Effect] = []

        self.rids = itertools.count(1)
        self.write_seqs = itertools.count(1)
        self.taken = itertools.count(1)
        #: Writes taken and not yet settled, by seq (ascending): the first one's seq
        #: is the ack_below each write carries.
        self.open_writes: dict[int, Request] = {}
        self.inflight: dict[int, Request] = {}
        self.waiting: deque[Request] = deque()
        #: Requests to send again later (no leader known yet), with when.
        self.delayed: list[tuple[float, Request]] = []

        self.endpoint_index = -1
        #: Counts the sockets opened: replies read from one given up are dropped.
        self.generation = 0
        self.socket_open = False
        self.connected = False
        self.state: str | None = None
        self.hello_rid = 0
        self.hello_sent_at = 0.0
        #: Whether a bye went out on the open socket (close it gently).
        self.bye_sent = False
        self.suspended_since: float | None = None
        self.last_recv = 0.0
        self.ping_rid = 0
        self.ping_sent_at = 0.0
        #: Attempts failed in a row since the last hello answered; every
        #: ``len(endpoints)`` of them is a round, followed by a backoff.
        self.failed_attempts = 0
        #: When to connect again, while backing off (no socket open then).
        self.reconnect_at: float | None = None
        #: Endpoint to move to once what is in flight here is answered.
        self.redirect_to: int | None = None
        #: When each endpoint last failed us.
        self.failed_at: dict[str, float] = {}

        # What the node said at hello.
        self.max_inflight = 64
        #: Whether the connected node deduplicates writes.
        self.dedup = False
        self.node_id: int | None = None
        #: The connected node's PUB endpoint, and a count of hellos answered: the
        #: watch receiver (zkactors.client.watches) follows the session by these.
        self.watch_endpoint = ""
        self.hellos = 0
        #: Why the last node refused our hello (wrong protocol, full), if it did.
        self.hello_error: Exception | None = None
        self.last_zxid = 0

    def take_effects(self) -> list[Effect]:
        effects, self.effects = self.effects, []
        return effects

    @property
    def endpoint(self) -> str:
        return self.endpoints[self.endpoint_index]

    # ------------------------------------------------------------ inputs
    def start(self, now: float) -> None:
        self._connect_next(now)

    def _take_session_open(self) -> None:
        """Queue the session's opening ahead of everything taken after it: FIFO
        order then puts it before the ephemeral create that asked for it."""
        rid = next(self.rids)
        self.session_pending = True
        self._take(Request(rid, OP_SESSION, b"", ZkFuture(), _identity, float("inf"), None,
                           args=[max(1, int(self.session_timeout * 1000))]))

    def take(self, request: Request) -> None:
        """A request from the caller: numbered, and queued to be sent. The first
        ephemeral create opens the session first (sessions are opened when
        needed: a session is a write, which only the leader takes, and a client
        that only reads should stay on the node it chose)."""
        if self.open_session and self.session_id is None and _is_ephemeral(request):
            if self.session_error is not None:
                self._settle(request, error=self.session_error)
                return
            if not self.session_pending:
                self._take_session_open()
        self._take(request)

    def _take(self, request: Request) -> None:
        request.order = next(self.taken)
        if request.op in WRITE_OPS:
            request.seq = next(self.write_seqs)
            self.open_writes[request.seq] = request
        self.waiting.append(request)

    def flush(self) -> None:
        """Send what waits, as far as the window allows (after taking requests)."""
        self._send_waiting()

    def on_frame_replies(self, replies: list, now: float) -> None:
        """One frame's replies, each ``[rid, code, result, zxid]``, from the open socket."""
        self.last_recv = now
        generation = self.generation
        for rid, code, result, zxid in replies:
            self._on_reply(rid, code, result, zxid, now)
            if self.generation != generation or not self.socket_open:
                return  # the rest belonged to a connection given up meanwhile

    def after_replies(self, now: float) -> None:
        """Everything readable was read: move on if redirected, send what waits."""
        if self.redirect_to is not None and not self.inflight and self.socket_open:
            # Everything sent here is answered: move to the node we were sent to,
            # ending our session here first.
            self._say_bye()
            self.endpoint_index = self.redirect_to - 1
            self.redirect_to = None
            self._connect_next(now)
        self._send_waiting()

    def on_link_down(self, now: float) -> None:
        """The TCP connection dropped, or was refused before getting through:
        this node is not answering now; don't wait out ``connect_timeout``."""
        if self.socket_open:
            self._lose_connection(now)

    def tick(self, now: float) -> None:
        if self.delayed and any(due <= now for due, _ in self.delayed):
            self._requeue([r for due, r in self.delayed if due <= now])
            self.delayed = [(due, r) for due, r in self.delayed if due > now]
            self._send_waiting()
        self._expire_requests(now)
        if self.reconnect_at is not None:
            if now >= self.reconnect_at:
                self.reconnect_at = None
                self._connect_next(now)
        elif not self.connected:
            if self.hello_rid == 0 or now - self.hello_sent_at > self.connect_timeout:
                self._lose_connection(now)
        else:
            # A request waiting through connect_timeout of silence, or a ping
            # unanswered that long, means the node is gone. An idle line is proven
            # by a ping once silent for connect_timeout (ZooKeeper's clients ping
            # at a third of the session timeout; this is a little keener).
            silent = now - self.last_recv
            if (self.inflight and silent > self.connect_timeout) or \
                    (self.ping_rid and now - self.ping_sent_at > self.connect_timeout):
                self._lose_connection(now)
            elif silent > self.ping_after and not self.ping_rid:
                self.ping_rid = next(self.rids)
                self.ping_sent_at = now
                self.effects.append(Send(pack([[self.ping_rid, OP_PING]])))
        if (self.suspended_since is not None and self.state != LOST
                and now - self.suspended_since > self.session_timeout):
            self._set_state(LOST)
            self.fail_all(ConnectionLoss("no node reachable within the session timeout"))
            if self.open_session:
                # As kazoo: the session is taken for expired (its ephemerals for
                # gone); the next connection starts a new one.
                self._renew_session()

    def next_wakeup(self, now: float) -> float:
        """When :meth:`tick` must run next. Busy: soon. Idle (connected, nothing
        in flight or waiting): only when a ping falls due or goes unanswered.
        Connecting: when the hello's answer is overdue (the link being refused
        wakes the agent anyway). Backing off with nothing to do: when the pause
        ends. And in any case when the session would be lost. A process may hold hundreds of idle sessions (watchers); each tick
        is a thread wake-up, and under the GIL they add up."""
        if self.inflight or self.waiting or self.delayed:
            return now + TICK_S
        if self.reconnect_at is not None:
            wake = self.reconnect_at
        elif not self.connected:
            if not self.hello_rid:
                return now + TICK_S
            wake = self.hello_sent_at + self.connect_timeout + TICK_S
        elif self.ping_rid:
            wake = self.ping_sent_at + self.connect_timeout + TICK_S
        else:
            wake = self.last_recv + self.ping_after + TICK_S
        if self.suspended_since is not None and self.state != LOST:
            wake = min(wake, self.suspended_since + self.session_timeout + TICK_S)
        return max(now, wake)

    def stop(self) -> None:
        """End the session: a bye to the node, the socket closed, every request failed."""
        self._say_bye()
        self._close()
        self.fail_all(ConnectionClosedError("client stopped"))

    def fail_all(self, error: Exception) -> None:
        for request in [*self.inflight.values(), *self.waiting, *(r for _, r in self.delayed)]:
            self._settle(request, error=error)
        self.inflight.clear()
        self.waiting.clear()
        self.delayed.clear()

    # ------------------------------------------------------------ connection
    def _connect_next(self, now: float) -> None:
        """Open a socket to the next endpoint and say hello."""
        self._close()
        self.endpoint_index = (self.endpoint_index + 1) % len(self.endpoints)
        self.effects.append(Connect(self.endpoint))
        self.generation += 1
        self.socket_open = True
        self.connected = False
        self.hello_rid = next(self.rids)
        self.hello_sent_at = now
        self.effects.append(Send(pack([[self.hello_rid, OP_HELLO, PROTOCOL_VERSION,
                                        self.name, self.client_id]])))

    def _close(self) -> None:
        if self.socket_open:
            self.effects.append(Close(linger=self.bye_sent))
            self.socket_open = False
            self.bye_sent = False

    def _say_bye(self) -> None:
        """Let the node drop our session now rather than at its expiry."""
        if self.connected and self.socket_open:
            self.effects.append(Send(pack([[next(self.rids), OP_BYE]])))
            self.bye_sent = True

    def _lose_connection(self, now: float) -> None:
        """The node went silent or refused us: reroute what was in flight, and try
        the next endpoint — at once, or after a pause if a whole round failed."""
        self.failed_at[self.endpoint] = now
        if self.suspended_since is None:
            self.suspended_since = now
        if self.connected or self.state == CONNECTED:
            # (Not connected but CONNECTED: a hello again, on a line we held,
            # was refused.)
            self._set_state(SUSPENDED)
            self.connected = False
            self.effects.append(Attached())
        resend = []
        for request in self.inflight.values():
            if request.op in WRITE_OPS and not self.dedup:
                self._settle(request, error=ConnectionLoss(
                    "connection lost before the write was acknowledged; "
                    "it may or may not have been applied", request.path))
            else:
                resend.append(request)
        self.inflight.clear()
        self._requeue(resend)
        self.ping_rid = 0
        self.hello_rid = 0
        self.failed_attempts += 1
        if self.redirect_to is not None:
            self.endpoint_index = self.redirect_to - 1
            self.redirect_to = None
        elif self.failed_attempts % len(self.endpoints) == 0:
            self._close()
            self.reconnect_at = now + self._backoff()
            return
        self._connect_next(now)

    def _backoff(self) -> float:
        """The pause after a round in which every endpoint failed: doubling per
        round up to the cap, then "equal jitter" (half fixed, half random), so a
        crowd of clients spreads out but none waits longer than the cap."""
        rounds = self.failed_attempts // len(self.endpoints)
        pause = min(self.reconnect_max, self.reconnect_base * 2 ** min(rounds - 1, 30))
        return pause / 2 + self.rng.uniform(0, pause / 2)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.effects.append(StateChanged(state))

    # ------------------------------------------------------------- sending
    def _requeue(self, requests: list[Request]) -> None:
        """Put requests back to be sent again, where they belong among those
        waiting: by the order they were taken in (FIFO client order)."""
        if not requests:
            return
        back = sorted(requests, key=_by_order)
        waiting = self.waiting
        if not waiting or waiting[0].order > back[-1].order:
            waiting.extendleft(reversed(back))  # the usual case: all older than what waits
        else:
            self.waiting = deque(heapq.merge(back, waiting, key=_by_order))

    def _ack_below(self) -> int:
        """The lowest seq of our writes not yet settled (all below it are)."""
        open_writes = self.open_writes
        while open_writes:
            seq, request = next(iter(open_writes.items()))
            if not request.done():
                return seq
            del open_writes[seq]
        return 0  # nothing open (not reached while a write is being sent)

    def _send_waiting(self) -> None:
        if not self.connected or self.redirect_to is not None:
            return
        batch = []
        ack_below = None
        # Nothing may overtake a request waiting out a retry delay.
        hold = min((r.order for _, r in self.delayed), default=None)
        while self.waiting and len(self.inflight) < self.max_inflight:
            request = self.waiting[0]
            if request.done():  # cancelled by the caller meanwhile
                self.waiting.popleft()
                continue
            if hold is not None and request.order > hold:
                break
            if request.seq:
                if ack_below is None:
                    ack_below = self._ack_below()
                if request.seq >= ack_below + MAX_REPLIES_PER_CLIENT:
                    # The ensemble keeps at most that many of our replies: wait for
                    # the oldest open write (being retried) before going further,
                    # or its retry could find its outcome forgotten.
                    break
            self.waiting.popleft()
            request.attempts += 1
            self.inflight[request.rid] = request
            if request.op == OP_SESSION:
                request.args = [self.negotiated_timeout_ms()]
            if request.seq:
                batch.append(pack([request.rid, request.op, *request.args,
                                   request.seq, ack_below]))
            else:
                batch.append(request.packed)
            if len(batch) >= MAX_FRAME_REQUESTS:
                self.effects.append(Send(pack_batch(batch)))
                batch = []
        if batch:
            self.effects.append(Send(pack_batch(batch)))

    # ------------------------------------------------------------ receiving
    def _on_reply(self, rid: int, code: int, result: Any, zxid: int, now: float) -> None:
        self.last_zxid = max(self.last_zxid, zxid)
        if rid == self.hello_rid:
            self._on_hello(code, result, now)
        elif rid == self.ping_rid:
            self.ping_rid = 0
            if code == Code.SESSION_EXPIRED:
                self._session_ended(None, now)
            elif code == Code.NOT_READY and self.open_session:
                # The node lost its leader: for a session, as good as gone.
                self._lose_connection(now)
        else:
            request = self.inflight.pop(rid, None)
            if request is not None:
                self._resolve(request, code, result, zxid, now)

    def _on_hello(self, code: int, result: Any, now: float) -> None:
        self.hello_rid = 0
        if code != Code.OK:
            # A node that refuses us (wrong protocol, full) is a failed attempt.
            self.hello_error = error_for(code, result)
            self._lose_connection(now)
            return
        if self.open_session and result.get("serving") is False:
            # It answers, but knows no live leader (cut off, electing, catching
            # up): a session held there could not be kept alive, so it counts
            # as a failed attempt, as a node that did not answer at all.
            self.hello_error = NotReadyError(
                f"node {result.get('node')} serves no one now: it knows no live leader "
                "or is still catching up")
            self._lose_connection(now)
            return
        self.connected = True
        self.failed_attempts = 0
        self.suspended_since = None
        self.max_inflight = max(1, int(result.get("max_inflight", 64)))
        self.dedup = bool(result.get("dedup", False))
        self.node_id = result.get("node")
        self.watch_endpoint = result.get("watch") or ""
        bounds = result.get("session_bounds_ms")
        if isinstance(bounds, list) and len(bounds) == 2 and all(type(b) is int for b in bounds):
            self.session_bounds_ms = (bounds[0], bounds[1])
        self.hellos += 1
        self._set_state(CONNECTED)
        self.effects.append(Attached())

    def _resolve(self, request: Request, code: int, result: Any, zxid: int,
                 now: float) -> None:
        if request.op == OP_SESSION and code not in _RETRIED:
            self.session_pending = False
        if code == Code.OK:
            if request.op == OP_SESSION:
                self.session_id = self.client_id
                self.granted_timeout_ms = result if type(result) is int and result > 0 \
                    else self.negotiated_timeout_ms()
            try:
                value = request.transform(result)
            except Exception as exc:  # noqa: BLE001 - a malformed reply fails its request only
                self._settle(request, error=exc, zxid=zxid)
                return
            self._settle(request, value, zxid=zxid)
            return
        if code == Code.NO_HELLO and request.attempts < 3:
            # The node forgot our idle connection: say hello again, then resend.
            self._requeue([request])
            self._rehello(now)
            return
        if code == Code.SESSION_EXPIRED and self.open_session:
            if self.session_id is None and self.session_error is not None:
                # There is no session to lose: the ensemble refused to open one.
                self._settle(request, error=self.session_error, zxid=zxid)
                return
            self._session_ended(request, now)
            return
        if request.op == OP_SESSION and code not in _RETRIED:
            self.session_error = error_for(code, result)
        if code == Code.THROTTLED and request.attempts < 10:
            self._requeue([request])
            return
        if code == Code.NOT_LEADER and isinstance(result, str) and result.startswith("tcp://") \
                and result != self.endpoint \
                and now - self.failed_at.get(result, -1e9) > self.connect_timeout:
            # (A leader we just lost is no redirect: the node naming it hasn't
            # noticed yet. That case falls through to waiting for a new one.)
            # Never proposed here: safe to send again, to the leader it names (a
            # member's own word, so followed even if it wasn't in our host list).
            if result not in self.endpoints:
                self.endpoints.append(result)
            self._requeue([request])
            self.redirect_to = self.endpoints.index(result)
            return
        if code == Code.CONNECTION_LOSS and request.op in WRITE_OPS and self.dedup:
            # A leader dropped it on losing leadership, maybe after proposing it: the
            # next leader applies a copy only if the first never committed.
            code = Code.NOT_LEADER
        if code in (Code.NOT_LEADER, Code.NOT_READY):
            # No leader known here (an election may be running): wait a little, and
            # every third time try another node.
            self.delayed.append((now + RETRY_DELAY_S, request))
            if request.attempts % 3 == 0 and len(self.endpoints) > 1:
                self.redirect_to = (self.endpoint_index + 1) % len(self.endpoints)
            return
        self._settle(request, error=error_for(code, result, request.path), zxid=zxid)

    @property
    def ping_after(self) -> float:
        """How long an idle line stays silent before a ping. With a session open:
        a third of its timeout (ZooKeeper's rhythm: the leader hears of us three
        times per timeout). Without: ``connect_timeout`` (or less), which is
        what proves an idle node still there."""
        if self.session_id is not None and self.granted_timeout_ms:
            return self.granted_timeout_ms / 3000
        return min(self.connect_timeout, self.session_timeout / 3)

    def negotiated_timeout_ms(self) -> int:
        """Our session timeout, within the bounds the ensemble grants."""
        wanted = max(1, int(self.session_timeout * 1000))
        if self.session_bounds_ms is None:
            return wanted
        low, high = self.session_bounds_ms
        return min(max(wanted, low), high)

    def _session_ended(self, request: Request | None, now: float) -> None:
        """The ensemble says our session ended (it expired, or was closed): as
        kazoo, LOST — every waiting request fails — then a new session, under a
        new id (so also a fresh dedup sequence), on the same connection."""
        if not self.open_session:
            return
        error = SessionExpiredError("the session expired: its ephemeral nodes are gone; "
                                    "a new session is being opened")
        if request is not None:
            self._settle(request, error=error)
        self._set_state(LOST)
        self.fail_all(error)
        self._renew_session()
        if self.connected:
            self._rehello(now)

    def _renew_session(self) -> None:
        """A new id (and with it a fresh dedup sequence); the next ephemeral
        create opens a session under it."""
        self.session_id = None
        self.session_pending = False
        self.open_writes.clear()
        self.client_id = self.rng.getrandbits(63) or 1
        self.write_seqs = itertools.count(1)

    def _rehello(self, now: float) -> None:
        if self.connected:
            self.connected = False
            self.hello_rid = next(self.rids)
            self.hello_sent_at = now
            self.effects.append(Send(pack([[self.hello_rid, OP_HELLO, PROTOCOL_VERSION,
                                            self.name, self.client_id]])))

    def _settle(self, request: Request, value: Any = None,
                error: BaseException | None = None, zxid: int = 0) -> None:
        if request.done():
            return
        request.settled = True
        self.effects.append(Settle(request, value, error, zxid))

    # ----------------------------------------------------------------- time
    def _expire_requests(self, now: float) -> None:
        for rid in [rid for rid, r in self.inflight.items() if r.deadline < now]:
            request = self.inflight.pop(rid)
            self._settle(request, error=OperationTimeoutError(
                f"no reply from node {self.node_id} in time", request.path))
        if any(r.deadline < now for _, r in self.delayed):
            for _, request in self.delayed:
                if request.deadline < now:
                    self._settle(request, error=OperationTimeoutError(
                        "no leader available in time", request.path))
            self.delayed = [(due, r) for due, r in self.delayed if r.deadline >= now]
        if self.waiting and any(r.deadline < now for r in self.waiting):
            kept = deque()
            for request in self.waiting:
                if request.deadline < now:
                    self._settle(request, error=OperationTimeoutError(
                        "not connected in time", request.path))
                else:
                    kept.append(request)
            self.waiting = kept
