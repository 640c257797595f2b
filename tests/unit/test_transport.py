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
from zkactors.runtime.transport import PeerLinks, _member_of

pytestmark = pytest.mark.timeout(30)
FINGERPRINT = "members-1-2"
#: A hello's sequence frames: its number, and the number of ours it echoes.
HELLO_SEQUENCE = [(1).to_bytes(8, "big"), (0).to_bytes(8, "big")]


def receive_until(links: PeerLinks, peer: PeerLinks, what: str, condition,
                  timeout: float = 5.0) -> list:
    """Receive on ``links`` (both sides sending their hellos, and ``peer``
    reading what it is sent, as a live node does) until ``condition(received)``;
    fail after ``timeout``."""
    received: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for side in (links, peer):
            side.maintain(int(time.monotonic() * 1000))
        received.extend(links.receive(100))
        peer.receive(100)
        if condition(received):
            return received
        time.sleep(0.01)
    raise AssertionError(f"{what}: not within {timeout} s (got {received})")


def tick_through(links: PeerLinks, start: int, end: int) -> None:
    """Call ``links.maintain`` every 100 ms of (made-up) time from start to end,
    as a running actor does."""
    for now in range(start, end + 1, 100):
        links.maintain(now)


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
        # Twice LINK_SILENT_MS of both sides echoing each other's hellos: no
        # link is replaced.
        quiet_until = time.monotonic() + 2 * transport.LINK_SILENT_MS / 1000
        receive_until(a, b, "time passing", lambda _: time.monotonic() > quiet_until)
        assert a.reconnects == 0 and not a.unreachable
        assert a.replaced == 0 and b.replaced == 0
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
        a._on_hello(2, fingerprint, HELLO_SEQUENCE)
        a.maintain(1_000 + transport.DOWN_FOR_MS - 1)
        a._on_hello(2, fingerprint, HELLO_SEQUENCE)
        assert a.reconnects == 0
        a.maintain(1_000 + transport.DOWN_FOR_MS)
        a._on_hello(2, fingerprint, HELLO_SEQUENCE)
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
        # b's hellos stop echoing a's, so a replaces its link.
        receive_until(b, a, "b hears a again", heard_now, timeout=10.0)
        assert proxy.accepted >= 2
        assert a.counters()["links_replaced"] >= 1
    finally:
        a.close()
        b.close()
        proxy.close()


def test_a_hello_from_an_older_peer_echoing_nothing_counts_as_proof(context):
    """Nodes of the version before echoes send three-frame hellos: hearing one
    must keep the link, or a rolling upgrade would churn every link."""
    a_end, b_end = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    a = PeerLinks(context, 1, a_end, {2: b_end}, FINGERPRINT)
    try:
        fingerprint = FINGERPRINT.encode()
        a.maintain(1_000)
        for now in range(1_000, 1_000 + 4 * transport.LINK_SILENT_MS, 250):
            a.maintain(now)
            a._on_hello(2, fingerprint, [])
        assert a.replaced == 0 and 2 in a.verified
        last = 1_000 + 4 * transport.LINK_SILENT_MS
        tick_through(a, last, last + transport.LINK_SILENT_MS)  # then it falls silent
        assert a.replaced == 1
    finally:
        a.close()


def test_an_echo_that_changes_at_all_is_proof_even_a_smaller_one(context):
    """After *we* restart, our hello numbers start from 1 again: the peer's echo
    goes down, and must still count as our link working."""
    a_end, b_end = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    a = PeerLinks(context, 1, a_end, {2: b_end}, FINGERPRINT)
    try:
        fingerprint = FINGERPRINT.encode()
        a.maintain(1_000)
        echoes = [5_000, 5_001, 1, 2, 3, 4, 5, 6, 7, 8]
        now = 1_000
        for echo in echoes:
            tick_through(a, now, now + transport.LINK_SILENT_MS // 2)
            now += transport.LINK_SILENT_MS // 2
            a._on_hello(2, fingerprint, [(1).to_bytes(8, "big"), echo.to_bytes(8, "big")])
        assert a.replaced == 0
        tick_through(a, now, now + transport.LINK_SILENT_MS)
        assert a.replaced == 1  # and an echo that stops changing proves nothing
    finally:
        a.close()


def test_a_node_that_was_not_running_judges_its_links_afresh(context):
    """After a SIGSTOP (or a starved CPU), the echoes waiting for us are as old as
    our last hellos: replacing every link on that account would only throw away
    what is queued on working links."""
    a_end, b_end = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    a = PeerLinks(context, 1, a_end, {2: b_end}, FINGERPRINT)
    try:
        a.maintain(1_000)
        resumed = 1_000 + 10 * transport.LINK_SILENT_MS  # ten silences later
        a.maintain(resumed)
        assert a.replaced == 0
        tick_through(a, resumed, resumed + transport.LINK_SILENT_MS)  # then one, running
        assert a.replaced == 1
    finally:
        a.close()


def test_a_routing_id_names_its_member_before_the_first_colon():
    members = {1, 2, 3}
    assert _member_of(b"2:5f3a09c1:7", members) == 2
    assert _member_of(b"3", members) == 3  # a node of the version before
    for junk in (b"4:ab:1", b"x:1", b"", b":1", b"99999999999:1", b"\xff"):
        assert _member_of(junk, members) is None


def test_every_connection_has_a_routing_id_of_its_own_so_the_old_cannot_block_the_new(
        context):
    """A peer's ROUTER may still hold our old connection (dead behind a partition,
    its FIN lost) when we connect again: under the same routing id, the new
    one could be refused. Under a new one it is simply another connection."""
    a_end, b_end = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    a = PeerLinks(context, 1, a_end, {2: b_end}, FINGERPRINT)
    b = PeerLinks(context, 2, b_end, {1: a_end}, FINGERPRINT)
    # An old connection of a's that b's ROUTER still holds, under the routing id
    # a's next connection would have had, were ids per node.
    stale = context.socket(zmq.DEALER)
    stale.linger = 0
    try:
        first = a.dealers[2].routing_id
        stale.routing_id = first
        stale.connect(b_end)
        a._reconnect(2)
        assert a.dealers[2].routing_id != first
        assert a.dealers[2].routing_id.startswith(b"1:")
        beat = Heartbeat(1, 1, 9)

        def heard(received: list) -> bool:
            a.send(2, beat)
            return beat in received

        receive_until(b, a, "b hears a on its new connection", heard)
    finally:
        stale.close()
        a.close()
        b.close()
