"""The client agent: a thread that owns the client's sockets and its connection state.

Shaped like the ZeroMQ Guide's Clone client: the API object lives in the caller's
thread and hands requests over (a queue, plus a doorbell on an inproc PAIR pipe);
the agent alone touches the DEALER socket. Its states:

* CONNECTING — a DEALER to one endpoint, ``hello`` sent, waiting for the answer;
  no answer within ``connect_timeout`` means the next endpoint.
* CONNECTED — requests flow, at most the node's ``max_inflight`` at a time; pings
  keep the line proven when idle. Silence for ``connect_timeout`` while something
  is outstanding means the node is gone: SUSPENDED, next endpoint.

Requests that were sent but not answered when a connection is lost are sent
again, to whichever node the agent reaches next, in the order they were first
taken — writes included: each write
carries this client's id and its own sequence number, and the ensemble applies a
write at most once however often it arrives (:mod:`zkactors.core.dedup`), giving a
copy the reply the first one got. The same holds for a write that a leader drops
when it loses leadership. (Against a node that does not deduplicate, an
unanswered write fails with ``ConnectionLoss``: the agent never guesses success.)
A connection suspended for longer than the session timeout becomes LOST and every
waiting request fails; the agent goes on trying to reconnect.

FIFO order: whatever sends a request back (a lost connection, NOT_LEADER, a
retry delay, throttling) puts it back by the order it was taken in, and nothing
taken after a request that waits out a retry delay is sent before it. The
ensemble backs this up: it applies a tagged write only after every earlier one
of the same client (:meth:`zkactors.core.dedup.ClientTable.in_order`), refusing
one that overtook another with NOT_READY, which lands it back here, in order.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import queue
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from zkactors.core.dedup import MAX_REPLIES_PER_CLIENT
from zkactors.errors import (
    Code,
    ConnectionClosedError,
    ConnectionLoss,
    OperationTimeoutError,
    error_for,
)
from zkactors.logsetup import get_logger
from zkactors.protocol import (
    OP_BYE,
    OP_HELLO,
    OP_PING,
    PROTOCOL_VERSION,
    WRITE_OPS,
    pack,
    pack_batch,
    unpack,
)

CONNECTED = "CONNECTED"
SUSPENDED = "SUSPENDED"
LOST = "LOST"

_TICK_S = 0.05
#: Pause before resending a request refused for want of a leader.
RETRY_DELAY_S = 0.05
#: Requests per frame at most, so one huge burst doesn't become one huge message.
_MAX_FRAME_REQUESTS = 256
_pipe_ids = itertools.count(1)


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
    #: A write's sequence number (0 until the agent takes it), kept across resends.
    seq: int = 0
    #: The order in which the agent took it: requests are (re)sent in this order.
    order: int = 0


def _by_order(request: Request) -> int:
    return request.order


class Agent(threading.Thread):
    def __init__(self, endpoints: list[str], context: zmq.Context, requests: queue.SimpleQueue,
                 on_state: Callable[[str], None], connect_timeout: float,
                 session_timeout: float, name: str) -> None:
        super().__init__(name=f"zkactors-client-agent-{name}", daemon=True)
        self.endpoints = endpoints
        self.context = context
        self.requests = requests
        self.on_state = on_state
        self.connect_timeout = connect_timeout
        self.session_timeout = session_timeout
        self.client_name = name
        self.pipe_address = f"inproc://zkactors-client-{next(_pipe_ids)}"
        self.pipe = context.socket(zmq.PAIR)
        self.pipe.linger = 0
        self.pipe.bind(self.pipe_address)
        self.rids = itertools.count(1)
        #: Who we are to the ensemble's dedup table: random, so two clients (or two
        #: runs of one program) never share it.
        self.client_id = secrets.randbits(63) or 1
        self.write_seqs = itertools.count(1)
        self.taken = itertools.count(1)
        #: Writes taken and not yet settled, by seq (ascending): the first one's seq
        #: is the ack_below each write carries.
        self.open_writes: dict[int, Request] = {}
        #: Whether the connected node deduplicates writes (it says so at hello).
        self.dedup = False
        self.stopping = threading.Event()
        self.log = get_logger(actor="client-agent", client=name)

        self.dealer: zmq.Socket | None = None
        self.monitor: zmq.Socket | None = None
        self.endpoint_index = -1
        self.connected = False
        self.state: str | None = None
        self.hello_rid = 0
        self.hello_sent_at = 0.0
        self.suspended_since: float | None = None
        self.last_recv = 0.0
        self.ping_rid = 0
        self.ping_sent_at = 0.0
        self.max_inflight = 64
        self.node_id: int | None = None
        #: The connected node's PUB endpoint, and a count of hellos answered: the
        #: watch receiver (zkactors.client.watches) follows the agent by these.
        self.watch_endpoint = ""
        self.hellos = 0
        #: Called (on this thread) after each hello answered and each connection
        #: lost, so the watch receiver can follow without polling us.
        self.on_attach: Callable[[], None] | None = None
        #: Why the last node refused our hello (wrong protocol, full), if it did.
        self.hello_error: Exception | None = None
        self.last_zxid = 0
        self.inflight: dict[int, Request] = {}
        self.waiting: deque[Request] = deque()
        #: Requests to send again later (no leader known yet), with when.
        self.delayed: list[tuple[float, Request]] = []
        #: Endpoint to move to once what is in flight here is answered.
        self.redirect_to: int | None = None
        #: When each endpoint last failed us (monotonic seconds).
        self.failed_at: dict[str, float] = {}

    # ---------------------------------------------------------------- thread
    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.pipe, zmq.POLLIN)
        next_tick = time.monotonic()
        try:
            self._connect_next()
            poller.register(self.dealer, zmq.POLLIN)
            poller.register(self.monitor, zmq.POLLIN)
            while not self.stopping.is_set():
                timeout_ms = max(0, int((next_tick - time.monotonic()) * 1000))
                old, old_monitor = self.dealer, self.monitor
                for sock, _ in poller.poll(timeout_ms):
                    if sock is self.pipe:
                        self._drain_pipe()
                    elif sock is old:
                        self._drain_dealer()
                    elif sock is old_monitor:
                        self._on_monitor_event()
                now = time.monotonic()
                if now >= next_tick:
                    self._tick(now)
                    next_tick = self._next_tick(now)
                elif self._busy():
                    next_tick = min(next_tick, now + _TICK_S)
                if self.dealer is not old:  # moved to another node
                    poller.unregister(old)
                    poller.unregister(old_monitor)
                    old.disable_monitor()
                    old_monitor.close(linger=0)
                    old.close(linger=100)  # lets a bye leave
                    poller.register(self.dealer, zmq.POLLIN)
                    poller.register(self.monitor, zmq.POLLIN)
        except Exception as exc:
            # A bug here must not leave callers waiting for replies that can't come.
            self.log.exception("client_agent_crashed", error=repr(exc))
            self._set_state(LOST)
        finally:
            self._fail_all(ConnectionClosedError("client stopped"))
            if self.dealer is not None:
                self._say_bye()
                self.dealer.disable_monitor()
                self.monitor.close(linger=0)
                self.dealer.close(linger=100)
            self.pipe.close(linger=0)

    def _drain_pipe(self) -> None:
        pipe = self.pipe
        while True:
            try:
                pipe.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        requests = self.requests
        while not requests.empty():
            self._take(requests.get())
        self._send_waiting()

    def _take(self, request: Request) -> None:
        request.order = next(self.taken)
        if request.op in WRITE_OPS:
            request.seq = next(self.write_seqs)
            self.open_writes[request.seq] = request
        self.waiting.append(request)

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
            if not request.future.done():
                return seq
            del open_writes[seq]
        return 0  # nothing open (not reached while a write is being sent)

    # ------------------------------------------------------------ connection
    def _connect_next(self) -> None:
        """Open a DEALER to the next endpoint and say hello (the caller swaps sockets)."""
        self.endpoint_index = (self.endpoint_index + 1) % len(self.endpoints)
        dealer = self.context.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.sndhwm = 100_000
        dealer.rcvhwm = 100_000
        # The TCP connection dropping (a node killed or stopped) is news worth acting
        # on at once, rather than after connect_timeout of silence.
        self.monitor = dealer.get_monitor_socket(zmq.EVENT_DISCONNECTED |
                                                 zmq.EVENT_CONNECT_RETRIED)
        dealer.connect(self.endpoints[self.endpoint_index])
        self.dealer = dealer
        self.connected = False
        self.hello_rid = next(self.rids)
        self.hello_sent_at = time.monotonic()
        dealer.send(pack([[self.hello_rid, OP_HELLO, PROTOCOL_VERSION, self.client_name,
                           self.client_id]]))

    def _on_monitor_event(self) -> None:
        while self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)["event"]
            # Connected and dropped, or refused before we ever got through: either
            # way this node is not answering now; don't wait out connect_timeout.
            if (event == zmq.EVENT_DISCONNECTED and self.connected) or \
                    (event == zmq.EVENT_CONNECT_RETRIED and not self.connected):
                self._lose_connection(time.monotonic())
                return  # the monitor belonged to the socket just replaced

    def _say_bye(self) -> None:
        """Let the node drop our session now rather than at its expiry."""
        if self.connected:
            with contextlib.suppress(zmq.ZMQError):
                self.dealer.send(pack([[next(self.rids), OP_BYE]]), zmq.NOBLOCK)

    def _lose_connection(self, now: float) -> None:
        """The node went silent: reroute what was in flight and try the next endpoint."""
        self.failed_at[self.endpoints[self.endpoint_index]] = now
        if self.suspended_since is None:
            self.suspended_since = now
        if self.connected:
            self._set_state(SUSPENDED)
            self.connected = False
            self._notify_attach()
        resend = []
        for request in self.inflight.values():
            if request.op in WRITE_OPS and not self.dedup:
                request.future.set_exception(ConnectionLoss(
                    "connection lost before the write was acknowledged; "
                    "it may or may not have been applied", request.path))
            else:
                resend.append(request)
        self.inflight.clear()
        self._requeue(resend)
        self.ping_rid = 0
        if self.redirect_to is not None:
            self.endpoint_index = self.redirect_to - 1
            self.redirect_to = None
        self._connect_next()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.on_state(state)

    # ------------------------------------------------------------- sending
    def _send_waiting(self) -> None:
        if not self.connected or self.redirect_to is not None:
            return
        batch = []
        ack_below = None
        # Nothing may overtake a request waiting out a retry delay.
        hold = min((r.order for _, r in self.delayed), default=None)
        while self.waiting and len(self.inflight) < self.max_inflight:
            request = self.waiting[0]
            if request.future.done():  # cancelled by the caller meanwhile
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
            if request.seq:
                batch.append(pack([request.rid, request.op, *request.args,
                                   request.seq, ack_below]))
            else:
                batch.append(request.packed)
            if len(batch) >= _MAX_FRAME_REQUESTS:
                self.dealer.send(pack_batch(batch))
                batch = []
        if batch:
            self.dealer.send(pack_batch(batch))

    # ------------------------------------------------------------ receiving
    def _drain_dealer(self) -> None:
        dealer = self.dealer
        now = time.monotonic()
        for _ in range(10_000):
            try:
                frame = dealer.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            self.last_recv = now
            try:
                replies = unpack(frame)
                for rid, code, result, zxid in replies:
                    self._on_reply(rid, code, result, zxid)
            except (ValueError, TypeError):
                continue  # not a reply we understand; its request will time out
        if self.redirect_to is not None and not self.inflight:
            # Everything sent here is answered: move to the node we were sent to,
            # ending our session here first.
            self._say_bye()
            self.endpoint_index = self.redirect_to - 1
            self.redirect_to = None
            self._connect_next()
        self._send_waiting()

    def _on_reply(self, rid: int, code: int, result: Any, zxid: int) -> None:
        self.last_zxid = max(self.last_zxid, zxid)
        if rid == self.hello_rid:
            self._on_hello(code, result)
        elif rid == self.ping_rid:
            self.ping_rid = 0
        else:
            request = self.inflight.pop(rid, None)
            if request is not None:
                request.future.zxid = zxid
                self._resolve(request, code, result)

    def _on_hello(self, code: int, result: Any) -> None:
        self.hello_rid = 0
        if code != Code.OK:
            # A node that refuses us (wrong protocol, full): fail fast on the next tick.
            self.hello_sent_at = 0.0
            self.hello_error = error_for(code, result)
            return
        self.connected = True
        self.suspended_since = None
        self.max_inflight = max(1, int(result.get("max_inflight", 64)))
        self.dedup = bool(result.get("dedup", False))
        self.node_id = result.get("node")
        self.watch_endpoint = result.get("watch") or ""
        self.hellos += 1
        self._set_state(CONNECTED)
        self._notify_attach()

    def _notify_attach(self) -> None:
        if self.on_attach is not None:
            try:
                self.on_attach()
            except Exception:  # the watch side's trouble must not stop the agent
                self.log.exception("on_attach_failed")

    def _resolve(self, request: Request, code: int, result: Any) -> None:
        if code == Code.OK:
            try:
                value = request.transform(result)
            except Exception as exc:  # noqa: BLE001 - a malformed reply must not kill the agent
                request.future.set_exception(exc)
                return
            request.future.set_result(value)
            return
        if code == Code.SESSION_EXPIRED and request.attempts < 3:
            # The node forgot our idle session: say hello again, then resend.
            self._requeue([request])
            self._rehello()
            return
        if code == Code.THROTTLED and request.attempts < 10:
            self._requeue([request])
            return
        if code == Code.NOT_LEADER and isinstance(result, str) and result.startswith("tcp://") \
                and result != self.endpoints[self.endpoint_index] \
                and time.monotonic() - self.failed_at.get(result, -1e9) > self.connect_timeout:
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
            self.delayed.append((time.monotonic() + RETRY_DELAY_S, request))
            if request.attempts % 3 == 0 and len(self.endpoints) > 1:
                self.redirect_to = (self.endpoint_index + 1) % len(self.endpoints)
            return
        request.future.set_exception(error_for(code, result, request.path))

    def _rehello(self) -> None:
        if self.connected:
            self.connected = False
            self.hello_rid = next(self.rids)
            self.hello_sent_at = time.monotonic()
            self.dealer.send(pack([[self.hello_rid, OP_HELLO, PROTOCOL_VERSION,
                                    self.client_name, self.client_id]]))

    # ----------------------------------------------------------------- time
    def _tick(self, now: float) -> None:
        if self.delayed and any(due <= now for due, _ in self.delayed):
            self._requeue([r for due, r in self.delayed if due <= now])
            self.delayed = [(due, r) for due, r in self.delayed if due > now]
            self._send_waiting()
        self._expire_requests(now)
        if not self.connected:
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
            elif silent > self.connect_timeout and not self.ping_rid:
                self.ping_rid = next(self.rids)
                self.ping_sent_at = now
                self.dealer.send(pack([[self.ping_rid, OP_PING]]))
        if (self.suspended_since is not None and self.state != LOST
                and now - self.suspended_since > self.session_timeout):
            self._set_state(LOST)
            self._fail_all(ConnectionLoss("no node reachable within the session timeout"))

    def _next_tick(self, now: float) -> float:
        """When the tick must run next. Busy: soon. Idle (connected, nothing in
        flight or waiting): only when a ping falls due or goes unanswered. A
        process may hold hundreds of idle sessions (watchers); each tick is a
        thread wake-up, and under the GIL they add up."""
        if self._busy():
            return now + _TICK_S
        if self.ping_rid:
            return max(now, self.ping_sent_at + self.connect_timeout) + _TICK_S
        return max(now, self.last_recv + self.connect_timeout) + _TICK_S

    def _busy(self) -> bool:
        """Whether something needs the fine tick: a connection being made, or
        requests in flight, waiting or delayed."""
        return not self.connected or bool(self.inflight or self.waiting or self.delayed)

    def _expire_requests(self, now: float) -> None:
        for rid in [rid for rid, r in self.inflight.items() if r.deadline < now]:
            request = self.inflight.pop(rid)
            request.future.set_exception(OperationTimeoutError(
                f"no reply from node {self.node_id} in time", request.path))
        if any(r.deadline < now for _, r in self.delayed):
            for _, request in self.delayed:
                if request.deadline < now:
                    request.future.set_exception(
                        OperationTimeoutError("no leader available in time", request.path))
            self.delayed = [(due, r) for due, r in self.delayed if r.deadline >= now]
        if self.waiting and any(r.deadline < now for r in self.waiting):
            kept = deque()
            for request in self.waiting:
                if request.deadline < now:
                    request.future.set_exception(
                        OperationTimeoutError("not connected in time", request.path))
                else:
                    kept.append(request)
            self.waiting = kept

    def _fail_all(self, error: Exception) -> None:
        while True:
            try:
                self._take(self.requests.get_nowait())
            except queue.Empty:
                break
        for request in [*self.inflight.values(), *self.waiting, *(r for _, r in self.delayed)]:
            if not request.future.done():
                request.future.set_exception(error)
        self.inflight.clear()
        self.waiting.clear()
        self.delayed.clear()
