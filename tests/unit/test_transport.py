"""Peer links (``zkactors.runtime.transport``) on real ZeroMQ sockets over loopback:
what a peer must hear, and when a link is taken back up."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest
import zmq

from tests.integration.cluster import free_port
from zkactors.core.messages import Heartbeat
from zkactors.runtime import transport
from zkactors.runtime.transport import PeerLinks

pytestmark = pytest.mark.timeout(30)
FINGERPRINT = "members-1-2"


def receive_until(links: PeerLinks, peer: PeerLinks, what: str, condition,
                  timeout: float = 5.0) -> list:
    """Receive on ``links`` (both sides sending their hellos) until
    ``condition(received)``; fail after ``timeout``."""
    received: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for side in (links, peer):
            side.maintain(int(time.monotonic() * 1000))
        received.extend(links.receive(100))
        if condition(received):
            return received
        time.sleep(0.01)
    raise AssertionError(f"{what}: not within {timeout} s (got {received})")


@pytest.fixture
def context():
    ctx = zmq.Context()
    yield ctx
    ctx.term()


def test_a_restarted_peer_is_reconnected_to_as_soon_as_it_speaks(context, monkeypatch):
    a_end, b_end = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    b = PeerLinks(context, 2, b_end, {1: a_end}, FINGERPRINT)  # (bound before a connects)
    # a's link to b with a backoff so long that, left to ZeroMQ, it would stay
    # down all test once b is gone.
    monkeypatch.setattr(transport, "RECONNECT_MS", 60_000)
    monkeypatch.setattr(transport, "RECONNECT_MAX_MS", 60_000)
    a = PeerLinks(context, 1, a_end, {2: b_end}, FINGERPRINT)
    try:
        receive_until(b, a, "b hears a's hello", lambda _: 1 in b.verified)
        b.close()  # b "crashes"
        time.sleep(0.2)  # the link notices; no condition to wait on but the OS's
        a.send(2, Heartbeat(1, 1, 0))
        assert 2 in a.unreachable
        b = PeerLinks(context, 2, b_end, {1: a_end}, FINGERPRINT)  # b restarted
        # (a reconnects once its sends have failed for DOWN_FOR_MS, b speaking.)
        receive_until(a, b, "a hears b's hello", lambda _: a.reconnects == 1)
        beat = Heartbeat(1, 1, 7)

        def heard(received: list) -> bool:
            a.send(2, beat)
            return beat in received

        receive_until(b, a, "b hears a's heartbeat", heard)
        assert a.counters()["reconnected"] == 1
    finally:
        a.close()
        b.close()


def test_a_peer_that_never_left_is_not_reconnected(context):
    # (Nor one whose queue was full for a moment: see DOWN_FOR_MS.)
    a_end, b_end = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    a = PeerLinks(context, 1, a_end, {2: b_end}, FINGERPRINT)
    b = PeerLinks(context, 2, b_end, {1: a_end}, FINGERPRINT)
    try:
        def heard(received: list) -> bool:
            a.send(2, Heartbeat(1, 1, 0))
            return bool(received)

        receive_until(b, a, "b hears a", heard)
        receive_until(a, b, "a hears b's hellos", lambda _: 2 in a.verified)
        assert a.reconnects == 0 and not a.unreachable
    finally:
        a.close()
        b.close()


def test_a_link_down_only_a_moment_is_left_to_zeromq(context):
    """A send fails for a moment also when a live peer's queue is full: a hello
    then must not make us throw the queue away. Only a link down for
    DOWN_FOR_MS is reconnected."""
    a_end, b_end = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    a = PeerLinks(context, 1, a_end, {2: b_end}, FINGERPRINT)
    try:
        fingerprint = FINGERPRINT.encode()
        a.unreachable.add(2)  # (as a failed send leaves it)
        a.maintain(1_000)
        a._on_hello(2, fingerprint)
        a.maintain(1_000 + transport.DOWN_FOR_MS - 1)
        a._on_hello(2, fingerprint)
        assert a.reconnects == 0
        a.maintain(1_000 + transport.DOWN_FOR_MS)
        a._on_hello(2, fingerprint)
        assert a.reconnects == 1 and 2 not in a.unreachable
    finally:
        a.close()


class FreezingProxy:
    """A loopback TCP proxy to ``target`` whose open connections can be frozen:
    they stay open but carry nothing more (a half-open connection after a
    partition); connections made afterwards carry traffic again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.generation = 0
        self.accepted = 0
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                inner, _ = self.server.accept()
            except OSError:
                return
            outer = socket.create_connection(("127.0.0.1", self.target_port))
            self.accepted += 1
            self.sockets += [inner, outer]
            for a, b in ((inner, outer), (outer, inner)):
                threading.Thread(target=self._pump, args=(a, b, self.generation),
                                 daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, generation: int) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if generation != self.generation:
                    return  # frozen: hold the connection open, carry nothing
                sink.sendall(data)

    def freeze(self) -> None:
        self.generation += 1

    def close(self) -> None:
        self.server.close()
        for sock in self.sockets:
            sock.close()


def test_a_link_that_silently_stops_carrying_traffic_is_replaced(context):
    a_end, b_port = f"tcp://127.0.0.1:{free_port()}", free_port()
    proxy = FreezingProxy(b_port)
    a = PeerLinks(context, 1, a_end, {2: f"tcp://127.0.0.1:{proxy.port}"}, FINGERPRINT)
    b = PeerLinks(context, 2, f"tcp://127.0.0.1:{b_port}", {1: a_end}, FINGERPRINT)
    try:
        seq = iter(range(1, 10**6))

        def heard_now(received: list) -> bool:
            a.send(2, Heartbeat(1, 1, next(seq)))
            return any(isinstance(m, Heartbeat) and m.commit_index > marker for m in received)

        marker = 0
        receive_until(b, a, "b hears a", heard_now)
        proxy.freeze()  # a's connection stays open but goes nowhere
        marker = 10**6  # only what a says from now on counts
        seq = iter(range(10**6 + 1, 2 * 10**6))
        # ZMTP heartbeats find the silent link and a new connection is made.
        receive_until(b, a, "b hears a again", heard_now, timeout=10.0)
        assert proxy.accepted >= 2
    finally:
        a.close()
        b.close()
        proxy.close()
