"""Peer links: how one actor talks to the same-named actor on the other nodes.

Each such actor binds a ROUTER at its own endpoint (what peers send it arrives
there) and keeps one DEALER per peer, connected to that peer's ROUTER, with our
node id as its routing id (what it sends leaves there). Replies travel the same
way as requests, so a link has no request/response coupling to get stuck in.

The network is treated as lossy on purpose: a send that would block (peer down,
queue full) is dropped, because the protocol above retransmits, and a backlog of
stale votes and appends delivered after a reconnect helps no one.

Every incoming message is checked at the edge: the routing id must name a member,
the frame must decode into a protocol message, and the sender the message claims
must be the member it came from. Anything else is dropped and counted.

A peer that comes back (restarted) is reconnected to at once: ZeroMQ retries a
lost peer with a backoff that reaches ``RECONNECT_MAX_MS``, so after a few seconds
down, our link to it would stay dead up to a second after it is back. Its hello
arriving on our ROUTER while our sends to it have failed for ``DOWN_FOR_MS`` is
the sign: we reconnect the DEALER then, so a restarted follower hears its leader
within a round trip. (Sends also fail when a live peer's queue is full; that
passes within moments, and a reconnect would only throw the queue away.)

Every 250 ms each link also sends a ``hello`` carrying the fingerprint of this
node's member list, and nothing else from a peer is accepted until its hello has
shown the same fingerprint. A peer whose fingerprint differs has another idea of
who is in the ensemble — a misconfiguration under which a "majority" means
nothing — so it is refused (counted, and reported once: :meth:`take_mismatched`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import zmq

from zkactors.core.messages import from_wire, sender_of, to_wire
from zkactors.protocol import pack, unpack

RECONNECT_MS = 100
RECONNECT_MAX_MS = 1000
#: ZMTP heartbeats on every link: a PING this often, and a link that has heard
#: nothing for HEARTBEAT_TIMEOUT_MS after one is closed and connected afresh.
#: Without them a connection that stopped carrying traffic without closing (a
#: peer killed behind a partition, its RST dropped; a half-open connection after
#: a long cut) looks healthy to ZeroMQ until TCP gives up, minutes later.
HEARTBEAT_IVL_MS = 250
HEARTBEAT_TIMEOUT_MS = 1500
#: A connect that has not completed in this long is given up and retried (after
#: ``RECONNECT_MS``). Without it ZeroMQ leaves the attempt to the kernel, which
#: resends a SYN that a partition dropped after 1, 2, 4, … 64 s: once a
#: heartbeat has closed a link across a cut, the link stayed down for up to two
#: minutes after the cut healed, and a node heard no one and was heard by no one
#: (the "silent nodes" of session 7's chaos soaks).
CONNECT_TIMEOUT_MS = 500
HELLO_EVERY_MS = 250
DOWN_FOR_MS = 500
_HELLO = b"hello"


class PeerLinks:
    def __init__(self, context: zmq.Context, node_id: int, endpoint: str,
                 peers: dict[int, str], fingerprint: str = "", hwm: int = 10_000) -> None:
        self.node_id = node_id
        self.fingerprint = fingerprint.encode()
        self._hello_due = 0
        #: Peers whose member list differs from ours (refused), and the newly found
        #: ones not yet reported by the owner (see :meth:`take_mismatched`).
        self.refused: set[int] = set()
        #: Peers whose hello showed our fingerprint: the only ones we listen to.
        self.verified: set[int] = set()
        self._newly_refused: list[int] = []
        self.router = context.socket(zmq.ROUTER)
        self.router.linger = 0
        self.router.rcvhwm = hwm
        # A peer that connects again takes its routing id over from its old
        # connection. Without this the ROUTER keeps the old one — dead, maybe,
        # with nothing to tell it so (we never send on it: replies go through
        # our own DEALER) — and refuses the new one: a restarted peer, whose
        # old connection's FIN a partition dropped, could never be heard again.
        self.router.router_handover = 1
        self.router.heartbeat_ivl = HEARTBEAT_IVL_MS
        self.router.heartbeat_timeout = HEARTBEAT_TIMEOUT_MS
        self.router.bind(endpoint)
        self.dealers: dict[int, zmq.Socket] = {}
        self.endpoints = dict(peers)
        #: Peers our last send to failed (no connection, or queue full), with the
        #: time (of a tick) since which they have; and how often we reconnected
        #: to one because it spoke to us meanwhile.
        self.unreachable: set[int] = set()
        self._unreachable_since: dict[int, int] = {}
        self._now_ms = 0
        self.reconnects = 0
        for peer_id, peer_endpoint in peers.items():
            dealer = context.socket(zmq.DEALER)
            dealer.linger = 0
            dealer.sndhwm = hwm
            dealer.immediate = True  # never queue for a peer that isn't connected
            dealer.reconnect_ivl = RECONNECT_MS
            dealer.reconnect_ivl_max = RECONNECT_MAX_MS
            dealer.heartbeat_ivl = HEARTBEAT_IVL_MS
            dealer.heartbeat_timeout = HEARTBEAT_TIMEOUT_MS
            dealer.connect_timeout = CONNECT_TIMEOUT_MS
            dealer.routing_id = str(node_id).encode()
            dealer.connect(peer_endpoint)
            self.dealers[peer_id] = dealer
        self.members = {str(p).encode(): p for p in peers}
        self.rejected: Counter[str] = Counter()
        self.dropped = 0

    def send(self, peer_id: int, message: Any) -> None:
        try:
            self.dealers[peer_id].send(pack(to_wire(message)), zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            self.unreachable.add(peer_id)
        else:
            self.unreachable.discard(peer_id)

    def receive(self, limit: int) -> list[Any]:
        """Up to ``limit`` valid messages waiting on the ROUTER."""
        received = []
        for _ in range(limit):
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            peer = self.members.get(frames[0])
            if peer is None:
                self.rejected["unknown_peer"] += 1
                continue
            if len(frames) == 3 and frames[1] == _HELLO:
                self._on_hello(peer, frames[2])
                continue
            if peer not in self.verified:
                self.rejected["config_mismatch" if peer in self.refused else "unverified"] += 1
                continue
            if len(frames) != 2:
                self.rejected["bad_frame"] += 1
                continue
            try:
                message = from_wire(unpack(frames[1]))
            except Exception:  # noqa: BLE001 - msgpack raises many types; all mean "bad"
                self.rejected["bad_message"] += 1
                continue
            if sender_of(message) != peer:
                self.rejected["wrong_sender"] += 1
                continue
            received.append(message)
        return received

    def maintain(self, now_ms: int) -> None:
        """Call every tick: sends the periodic hellos."""
        self._now_ms = now_ms
        since = self._unreachable_since
        for peer in self.unreachable:
            since.setdefault(peer, now_ms)
        for peer in [p for p in since if p not in self.unreachable]:
            del since[peer]
        if now_ms < self._hello_due:
            return
        self._hello_due = now_ms + HELLO_EVERY_MS
        for peer, dealer in self.dealers.items():
            try:
                dealer.send_multipart([_HELLO, self.fingerprint], zmq.NOBLOCK)
            except zmq.Again:
                self.unreachable.add(peer)
            else:
                self.unreachable.discard(peer)

    def _on_hello(self, peer: int, fingerprint: bytes) -> None:
        down_since = self._unreachable_since.get(peer)
        if peer in self.unreachable and down_since is not None \
                and self._now_ms - down_since >= DOWN_FOR_MS:
            # It speaks to us, yet our link to it has been down a while: ZeroMQ
            # is waiting out its reconnect backoff. Reconnect now (nothing is
            # queued on a link that is down: the DEALERs are ``immediate``).
            self.unreachable.discard(peer)
            del self._unreachable_since[peer]
            self.reconnects += 1
            dealer = self.dealers[peer]
            dealer.disconnect(self.endpoints[peer])
            dealer.connect(self.endpoints[peer])
        if fingerprint == self.fingerprint:
            self.verified.add(peer)
            self.refused.discard(peer)
        else:
            self.verified.discard(peer)
            if peer not in self.refused:
                self.refused.add(peer)
                self._newly_refused.append(peer)

    def counters(self) -> dict[str, int]:
        return {**self.rejected, **({"send_dropped": self.dropped} if self.dropped else {}),
                **({"reconnected": self.reconnects} if self.reconnects else {})}

    def take_mismatched(self) -> list[int]:
        found, self._newly_refused = self._newly_refused, []
        return found

    def close(self) -> None:
        self.router.close(linger=0)
        for dealer in self.dealers.values():
            dealer.close(linger=0)
