"""The client agent: the thread that owns the client's sockets and runs its session.

Shaped like the ZeroMQ Guide's Clone client: the API object lives in the caller's
thread and hands requests over (a queue, plus a doorbell on an inproc PAIR pipe);
the agent alone touches the DEALER socket. What to do — which node, when to give
up on it, when to try again, what to resend, which request a reply settles — is
decided by the pure :class:`~zkactors.client.session.Session`; this thread only
feeds it what the sockets and the clock say and carries out its effects.

Sockets: the pipe, and at most one DEALER with its monitor (which reports the
TCP link dropping or being refused, so a dead node is news at once rather than
after ``connect_timeout`` of silence). Between reconnect rounds no DEALER is open
at all. Everything the agent opened is closed when it ends, however it ends.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import random
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import InvalidStateError

import zmq
from zmq.utils.monitor import recv_monitor_message

from zkactors.client.session import (
    CONNECTED,
    LOST,
    RECONNECT_MAX_S,
    SUSPENDED,
    Attached,
    Close,
    Connect,
    Request,
    Send,
    Session,
    Settle,
    StateChanged,
    ZkFuture,
)
from zkactors.logsetup import get_logger
from zkactors.protocol import unpack

__all__ = ["CONNECTED", "LOST", "SUSPENDED", "Agent", "Request", "ZkFuture"]

_pipe_ids = itertools.count(1)
#: Frames read from the DEALER per wake-up at most, so the pipe gets its turn.
_MAX_FRAMES_PER_DRAIN = 10_000


class Agent(threading.Thread):
    def __init__(self, endpoints: list[str], context: zmq.Context, requests: queue.SimpleQueue,
                 on_state: Callable[[str], None], connect_timeout: float,
                 session_timeout: float, name: str,
                 reconnect_max: float = RECONNECT_MAX_S, open_session: bool = False) -> None:
        super().__init__(name=f"zkactors-client-agent-{name}", daemon=True)
        self.context = context
        self.requests = requests
        self.on_state = on_state
        self.client_name = name
        #: Who we are to the ensemble's dedup table: random, so two clients (or two
        #: runs of one program) never share it.
        client_id = secrets.randbits(63) or 1
        self.session = Session(endpoints, client_id=client_id, name=name,
                               connect_timeout=connect_timeout,
                               session_timeout=session_timeout,
                               rng=random.Random(client_id),
                               reconnect_max=reconnect_max, open_session=open_session)
        self.pipe_address = f"inproc://zkactors-client-{next(_pipe_ids)}"
        self.pipe = context.socket(zmq.PAIR)
        self.pipe.linger = 0
        self.pipe.bind(self.pipe_address)
        self.stopping = threading.Event()
        #: Called (on this thread) after each hello answered and each connection
        #: lost, so the watch receiver can follow without polling us.
        self.on_attach: Callable[[], None] | None = None
        self.log = get_logger(actor="client-agent", client=name)
        self.dealer: zmq.Socket | None = None
        self.monitor: zmq.Socket | None = None
        self._poller = zmq.Poller()
        self._poller.register(self.pipe, zmq.POLLIN)

    # What the API object and the watch receiver read (the session's, read-only).
    @property
    def rids(self) -> itertools.count:
        return self.session.rids

    @property
    def client_id(self) -> int:
        return self.session.client_id

    @property
    def connected(self) -> bool:
        return self.session.connected

    @property
    def endpoints(self) -> list[str]:
        return self.session.endpoints

    @property
    def endpoint_index(self) -> int:
        return self.session.endpoint_index

    @property
    def watch_endpoint(self) -> str:
        return self.session.watch_endpoint

    @property
    def hellos(self) -> int:
        return self.session.hellos

    @property
    def node_id(self) -> int | None:
        return self.session.node_id

    @property
    def last_zxid(self) -> int:
        return self.session.last_zxid

    @property
    def hello_error(self) -> Exception | None:
        return self.session.hello_error

    # ---------------------------------------------------------------- thread
    def run(self) -> None:
        session = self.session
        try:
            session.start(time.monotonic())
            self._carry_out()
            next_tick = session.next_wakeup(time.monotonic())
            while not self.stopping.is_set():
                timeout_ms = max(0, int((next_tick - time.monotonic()) * 1000) + 1)
                for sock, _ in self._poller.poll(timeout_ms):
                    if sock is self.pipe:
                        self._drain_pipe()
                    elif sock is self.dealer:
                        self._drain_dealer()
                    elif sock is self.monitor:
                        self._on_monitor_event()
                    # (else: a socket closed while handling an earlier one)
                now = time.monotonic()
                if now >= next_tick:
                    session.tick(now)
                    self._carry_out()
                next_tick = session.next_wakeup(now)
        except Exception as exc:
            # A bug here must not leave callers waiting for replies that can't come.
            self.log.exception("client_agent_crashed", error=repr(exc))
            with contextlib.suppress(Exception):
                self.on_state(LOST)
        finally:
            self._finish()

    def _finish(self) -> None:
        """Fail what is left, say bye, and close every socket this agent opened."""
        try:
            self._take_requests()
            self.session.stop()
            self._carry_out()
        except Exception as exc:  # still close the sockets below
            self.log.exception("client_agent_stop_failed", error=repr(exc))
        self._close_dealer(linger=False)
        self.pipe.close(linger=0)

    def _take_requests(self) -> None:
        requests, take = self.requests, self.session.take
        while True:
            try:
                take(requests.get_nowait())
            except queue.Empty:
                return

    def _drain_pipe(self) -> None:
        pipe = self.pipe
        while True:
            try:
                pipe.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        self._take_requests()
        self.session.flush()
        self._carry_out()

    def _drain_dealer(self) -> None:
        dealer, session = self.dealer, self.session
        now = time.monotonic()
        for _ in range(_MAX_FRAMES_PER_DRAIN):
            try:
                frame = dealer.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                replies = unpack_replies(frame)
            except (ValueError, TypeError):
                continue  # not a reply we understand; its request will time out
            session.on_frame_replies(replies, now)
            self._carry_out()
            if self.dealer is not dealer:
                break  # the session gave this connection up
        session.after_replies(now)
        self._carry_out()

    def _on_monitor_event(self) -> None:
        monitor = self.monitor
        while monitor is self.monitor and monitor.poll(0):
            event = recv_monitor_message(monitor)["event"]
            if event in (zmq.EVENT_DISCONNECTED, zmq.EVENT_CONNECT_RETRIED):
                self.session.on_link_down(time.monotonic())
                self._carry_out()

    # ---------------------------------------------------------------- effects
    def _carry_out(self) -> None:
        for effect in self.session.take_effects():
            if isinstance(effect, Send):
                self.dealer.send(effect.frame)
            elif isinstance(effect, Settle):
                _settle(effect)
            elif isinstance(effect, Connect):
                self._open_dealer(effect.endpoint)
            elif isinstance(effect, Close):
                self._close_dealer(effect.linger)
            elif isinstance(effect, StateChanged):
                self.on_state(effect.state)
            elif isinstance(effect, Attached):
                self._notify_attach()

    def _open_dealer(self, endpoint: str) -> None:
        dealer = self.context.socket(zmq.DEALER)
        try:
            dealer.linger = 0
            dealer.sndhwm = 100_000
            dealer.rcvhwm = 100_000
            # The monitor is how a refused or dropped link becomes news at once.
            monitor = dealer.get_monitor_socket(zmq.EVENT_DISCONNECTED |
                                                zmq.EVENT_CONNECT_RETRIED)
        except BaseException:
            dealer.close(linger=0)
            raise
        self.dealer, self.monitor = dealer, monitor
        self._poller.register(dealer, zmq.POLLIN)
        self._poller.register(monitor, zmq.POLLIN)
        dealer.connect(endpoint)

    def _close_dealer(self, linger: bool) -> None:
        dealer, monitor = self.dealer, self.monitor
        if dealer is None:
            return
        self.dealer = self.monitor = None
        self._poller.unregister(dealer)
        self._poller.unregister(monitor)
        with contextlib.suppress(zmq.ZMQError):
            dealer.disable_monitor()
        monitor.close(linger=0)
        dealer.close(linger=100 if linger else 0)  # lets a bye leave

    def _notify_attach(self) -> None:
        if self.on_attach is not None:
            try:
                self.on_attach()
            except Exception:  # the watch side's trouble must not stop the agent
                self.log.exception("on_attach_failed")


def _settle(effect: Settle) -> None:
    future = effect.request.future
    if future.done():  # cancelled by the caller meanwhile
        return
    future.zxid = effect.zxid
    with contextlib.suppress(InvalidStateError):  # (a race with the caller's cancel)
        if effect.error is not None:
            future.set_exception(effect.error)
        else:
            future.set_result(effect.value)


def unpack_replies(frame: bytes) -> list:
    """A frame of replies, each ``[rid, code, result, zxid]``; ValueError otherwise."""
    replies = unpack(frame)
    if not isinstance(replies, list) or not all(
            isinstance(reply, list) and len(reply) == 4 for reply in replies):
        raise ValueError("not a list of replies")
    return replies
