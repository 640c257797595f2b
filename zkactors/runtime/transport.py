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
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import zmq

from zkactors.core.messages import from_wire, sender_of, to_wire
from zkactors.protocol import pack, unpack

RECONNECT_MS = 100
RECONNECT_MAX_MS = 1000


class PeerLinks:
    def __init__(self, context: zmq.Context, node_id: int, endpoint: str,
                 peers: dict[int, str], hwm: int = 10_000) -> None:
        self.node_id = node_id
        self.router = context.socket(zmq.ROUTER)
        self.router.linger = 0
        self.router.rcvhwm = hwm
        self.router.bind(endpoint)
        self.dealers: dict[int, zmq.Socket] = {}
        for peer_id, peer_endpoint in peers.items():
            dealer = context.socket(zmq.DEALER)
            dealer.linger = 0
            dealer.sndhwm = hwm
            dealer.immediate = True  # never queue for a peer that isn't connected
            dealer.reconnect_ivl = RECONNECT_MS
            dealer.reconnect_ivl_max = RECONNECT_MAX_MS
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

    def close(self) -> None:
        self.router.close(linger=0)
        for dealer in self.dealers.values():
            dealer.close(linger=0)
