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
ready sockets. Each session still has its own SUB connection to its own node
(so the nodes fan out per session, as they should), its own stream state, and
its own callback thread, so a slow callback in one session never holds up
another's.

Threading rules: the hub thread alone touches the SUB sockets and calls the
services' ``_hub_*`` methods. Other threads reach a service only through
:meth:`WatchHub.ring`, which queues it for a look at the next round.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from typing import Any

import zmq

from zkactors.logsetup import get_logger

#: How often the hub looks at every service even if nothing rang: the silence
#: check (a node that stopped sending heartbeats) needs no finer clock.
SWEEP_S = 0.5
_hub_ids = itertools.count(1)


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
        context = zmq.Context.instance()
        address = f"inproc://zkactors-watch-hub-{next(_hub_ids)}"
        self._pipe = context.socket(zmq.PAIR)
        self._pipe.linger = 0
        self._pipe.bind(address)
        self._bell = context.socket(zmq.PAIR)
        self._bell.linger = 0
        self._bell.connect(address)
        self._bell_lock = threading.Lock()
        self._rung: set[Any] = set()
        self._rung_lock = threading.Lock()
        self.poller = zmq.Poller()
        self.poller.register(self._pipe, zmq.POLLIN)
        #: Hub thread only: the services it runs, and which owns which socket.
        self._services: set[Any] = set()
        self._by_socket: dict[zmq.Socket, Any] = {}
        self.log = get_logger(actor="client-watch-hub")

    # ------------------------------------------------------ any thread
    def ring(self, service: Any) -> None:
        """Have the hub look at ``service`` (its inbox, agent, subscriptions)."""
        with self._rung_lock:
            self._rung.add(service)
        with self._bell_lock, contextlib.suppress(zmq.Again):
            # One pending ring is as good as many.
            self._bell.send(b"", zmq.NOBLOCK)

    # ------------------------------------------------------ hub thread
    def watch_socket(self, sock: zmq.Socket, service: Any) -> None:
        self.poller.register(sock, zmq.POLLIN)
        self._by_socket[sock] = service

    def unwatch_socket(self, sock: zmq.Socket) -> None:
        if self._by_socket.pop(sock, None) is not None:
            self.poller.unregister(sock)

    def run(self) -> None:
        next_sweep = time.monotonic() + SWEEP_S
        while True:
            timeout_ms = max(0, int((next_sweep - time.monotonic()) * 1000))
            look: set[Any] = set()
            for sock, _ in self.poller.poll(timeout_ms):
                if sock is self._pipe:
                    while True:
                        try:
                            self._pipe.recv(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                    with self._rung_lock:
                        rung, self._rung = self._rung, set()
                    look |= rung
                    continue
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
