"""The actor driver: one thread, its sockets, a poll loop, and a clean death.

An actor owns an inbox (a PULL socket bound at ``inproc://<node>-<name>``) and
PUSH sockets to the inboxes of the actors it talks to; subclasses may add sockets
of their own (the gateway's client ROUTER, the watch PUB). The loop polls, drains
what is ready in batches (so one hop carries many requests), hands each batch to
the actor's pure core, and carries out the effects in order.

If an actor raises, it logs why and sets the supervisor's ``failed`` event: the
supervisor then stops the whole node, so a node is never half alive.
"""

from __future__ import annotations

import abc
import threading
import time
from typing import Any

import zmq

from zkactors.logsetup import get_logger
from zkactors.runtime import mail

#: How long an idle actor sleeps in poll before checking for shutdown.
IDLE_POLL_MS = 50
#: A send to another actor that cannot complete in this time means that actor is
#: dead or wedged; the sender then fails, and with it the node, rather than hang.
SEND_TIMEOUT_MS = 1000


def inbox_address(node_id: int, actor: str) -> str:
    return f"inproc://zk{node_id}-{actor}"


def now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Actor(threading.Thread, metaclass=abc.ABCMeta):
    """Base driver. Subclasses implement :meth:`setup`, :meth:`on_inbox` and may
    override :meth:`on_socket` and :meth:`on_tick`."""

    #: Names of the actors this one sends to.
    talks_to: tuple[str, ...] = ()
    #: Inbox messages taken in one batch at most (0: ``max_batch``).
    inbox_batch: int = 0

    def __init__(self, name: str, node_id: int, context: zmq.Context,
                 stopping: threading.Event, failed: threading.Event,
                 max_batch: int = 1024, tick_ms: int = IDLE_POLL_MS) -> None:
        super().__init__(name=f"zk{node_id}-{name}", daemon=True)
        self.actor_name = name
        self.node_id = node_id
        self.context = context
        self.stopping = stopping
        self.failed = failed
        self.max_batch = max_batch
        self.tick_ms = tick_ms
        self.log = get_logger(node=node_id, actor=name)
        self.inbox = context.socket(zmq.PULL)
        self.inbox.linger = 0
        self.inbox.bind(inbox_address(node_id, name))
        self.outboxes: dict[str, zmq.Socket] = {}
        self.poller = zmq.Poller()
        self.poller.register(self.inbox, zmq.POLLIN)
        self._extra: list[zmq.Socket] = []
        self.error: BaseException | None = None

    # ------------------------------------------------------------ wiring
    def connect_outboxes(self) -> None:
        """Connect to the other actors' inboxes (after every actor has bound)."""
        for peer in self.talks_to:
            sock = self.context.socket(zmq.PUSH)
            sock.linger = 0
            sock.sndtimeo = SEND_TIMEOUT_MS
            sock.connect(inbox_address(self.node_id, peer))
            self.outboxes[peer] = sock

    def add_socket(self, sock: zmq.Socket) -> None:
        self._extra.append(sock)
        self.poller.register(sock, zmq.POLLIN)

    def send(self, actor: str, message: Any) -> None:
        """``message``, one of zkactors.runtime.mail's records, to ``actor``."""
        # Once the node is stopping, the receiver may be gone: never block on it.
        shutting_down = self.stopping.is_set() or self.failed.is_set()
        try:
            self.outboxes[actor].send(mail.encode(message), zmq.NOBLOCK if shutting_down else 0)
        except zmq.Again:
            if self.stopping.is_set() or self.failed.is_set():
                return  # the receiver already left during shutdown
            raise RuntimeError(f"{actor} actor did not take a message in "
                               f"{SEND_TIMEOUT_MS} ms") from None

    # ------------------------------------------------------------ the loop
    def run(self) -> None:
        try:
            self.setup()
            self.log.debug("actor_started")
            next_tick = now_ms() + self.tick_ms
            while not self.stopping.is_set() and not self.failed.is_set():
                timeout = max(0, next_tick - now_ms())
                for sock, _ in self.poller.poll(timeout):
                    if sock is self.inbox:
                        self._drain_inbox()
                    else:
                        self.on_socket(sock)
                current = now_ms()
                if current >= next_tick:
                    self.on_tick(current)
                    next_tick = current + self.tick_ms
        except BaseException as exc:
            self.error = exc
            self.log.exception("actor_crashed", error=repr(exc))
            self.failed.set()
        finally:
            self.teardown()
            self.close_sockets()

    def _drain_inbox(self) -> None:
        messages = []
        for _ in range(self.inbox_batch or self.max_batch):
            try:
                messages.append(mail.decode(self.inbox.recv(zmq.NOBLOCK)))
            except zmq.Again:
                break
        if messages:
            self.on_inbox(messages)

    def close_sockets(self) -> None:
        for sock in [self.inbox, *self.outboxes.values(), *self._extra]:
            sock.close(linger=0)

    # ------------------------------------------------------------ hooks
    def setup(self) -> None:
        """Open what the actor owns besides its inbox (runs on the actor's thread)."""

    def teardown(self) -> None:
        """Release what the actor owns besides its sockets, however it ends."""

    @abc.abstractmethod
    def on_inbox(self, messages: list[Any]) -> None:
        """Messages from other actors (zkactors.runtime.mail records), in arrival
        order."""

    def on_socket(self, sock: zmq.Socket) -> None:
        """A socket added with :meth:`add_socket` is readable."""

    def on_tick(self, now: int) -> None:
        """Called about every ``tick_ms`` with the monotonic time in ms."""

    def status(self) -> dict[str, Any]:
        return {}
