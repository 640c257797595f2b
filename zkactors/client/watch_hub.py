"""The watch hub: one thread per process that owns every session's SUB socket.

What this module owns
---------------------

* :class:`WatchHub` — a process-wide thread with one poller over the SUB socket
  of every :class:`~zkactors.client.watches.WatchService` in the process, and a
  doorbell that services (and the threads working for them) ring when they need
  the hub to look at them.

Why one thread for all sessions rather than a receiver thread per session: a
process that holds a thousand watching sessions (a fan-out, a pool of workers
each watching its configuration) would otherwise wake a thousand receiver
threads for every event, each a GIL hand-off and a context switch, and those
wake-ups, not the work, were most of the cost. The hub wakes once for many
ready sockets. It waits with the OS's selector (epoll on Linux) on each SUB
socket's ``ZMQ_FD`` rather than with ``zmq.Poller``: a zmq poll looks at every
registered socket on every call (150 µs for 250 sockets here, called many times
during one fan-out), a selector only at the ready ones. Each session still has
its own SUB connection to its own node
(so the nodes fan out per session, as they should), its own stream state, and
its own callback thread, so a slow callback in one session never holds up
another's.

Threading rules: the hub thread alone touches the SUB sockets and calls the
services' ``_hub_*`` methods. Other threads reach a service only through
:meth:`WatchHub.ring`, which queues it for a look at the next round.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from typing import Any

import zmq

from zkactors.logsetup import get_logger

#: How often the hub looks at every service even if nothing rang: the silence
#: check (a node that stopped sending heartbeats) needs no finer clock.
SWEEP_S = 0.5
#: Messages taken from one socket before the hub moves on to the others.
DRAIN_BATCH = 2_000


class WatchHub(threading.Thread):
    """See the module docstring. Use :meth:`instance`."""

    _instance: WatchHub | None = None
    _instance_lock = threading.Lock()

    @classmethod
    def instance(cls) -> WatchHub:
        """The process's hub, started on first use."""
        with cls._instance_lock:
            if cls._instance is None or not cls._instance.is_alive():
                cls._instance = cls()
                cls._instance.start()
            return cls._instance

    def __init__(self) -> None:
        super().__init__(name="zkactors-client-watch-hub", daemon=True)
        # The doorbell: a byte on a local socket pair wakes the selector.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._rung: set[Any] = set()
        self._rung_lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        #: Hub thread only: the services it runs, each SUB socket's owner, and
        #: the sockets with messages left after a batch.
        self._services: set[Any] = set()
        self._by_socket: dict[zmq.Socket, Any] = {}
        self._unfinished: set[zmq.Socket] = set()
        self._to_flush: set[Any] = set()
        self.log = get_logger(actor="client-watch-hub")

    # ------------------------------------------------------ any thread
    def ring(self, service: Any) -> None:
        """Have the hub look at ``service`` (its inbox, agent, subscriptions)."""
        with self._rung_lock:
            self._rung.add(service)
        with contextlib.suppress(BlockingIOError):
            # A full pipe already holds a ring: one pending is as good as many.
            self._wake_w.send(b"\0")

    # ------------------------------------------------------ hub thread
    def watch_socket(self, sock: zmq.Socket, service: Any) -> None:
        self._selector.register(sock.getsockopt(zmq.FD), selectors.EVENT_READ, sock)
        self._by_socket[sock] = service
        # ZMQ_FD signals changes, not readiness: what is queued already may never
        # signal again, so look now.
        self._unfinished.add(sock)

    def flush_later(self, service: Any) -> None:
        """Hand ``service``'s new deliveries to its callback thread at the end of
        this round: waking callback threads while the hub still works would
        make each of them fight the hub for the GIL."""
        self._to_flush.add(service)

    def unwatch_socket(self, sock: zmq.Socket) -> None:
        if self._by_socket.pop(sock, None) is not None:
            self._selector.unregister(sock.getsockopt(zmq.FD))
            self._unfinished.discard(sock)

    def run(self) -> None:
        next_sweep = time.monotonic() + SWEEP_S
        while True:
            timeout = 0.0 if self._unfinished else max(0.0, next_sweep - time.monotonic())
            look: set[Any] = set()
            readable = set(self._unfinished)
            self._unfinished.clear()
            for key, _ in self._selector.select(timeout):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        while self._wake_r.recv(4096):
                            pass
                    with self._rung_lock:
                        rung, self._rung = self._rung, set()
                    look |= rung
                else:
                    readable.add(key.data)
            for sock in readable:
                service = self._by_socket.get(sock)
                if service is not None and self._guarded(service, service._hub_readable):
                    look.add(service)
            now = time.monotonic()
            if now >= next_sweep:
                look |= self._services
                next_sweep = now + SWEEP_S
            for service in look:
                self._services.add(service)
                if not self._guarded(service, service._hub_round):
                    self._services.discard(service)
            # Reading ZMQ_EVENTS (as any recv or subscribe does) consumes the fd's
            # signal; messages still queued after that must be found by asking.
            flush, self._to_flush = self._to_flush | look, set()
            for service in flush:
                self._guarded(service, service._hub_flush)
            touched = readable | {service._sub for service in look}
            for sock in touched:
                if sock in self._by_socket and sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    self._unfinished.add(sock)

    def _guarded(self, service: Any, method: Any) -> bool:
        """Run one service's step; a bug there stops that service's watches,
        never the hub (and so never another session's)."""
        try:
            return method()
        except Exception as exc:  # logged; that service closes, the rest go on
            self.log.exception("watch_service_crashed", client=service.client.name,
                               error=repr(exc))
            with contextlib.suppress(Exception):
                service._hub_close()
            self._services.discard(service)
            return False
