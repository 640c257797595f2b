"""Peer links: how one actor talks to the same-named actor on the other nodes.

Each such actor binds a ROUTER at its own endpoint (what peers send it arrives
there) and keeps one DEALER per peer, connected to that peer's ROUTER (what it
sends leaves there). Each connection's routing id names our node and is never
reused (``<node>:<incarnation>:<count>``): a peer's ROUTER may still hold an old
connection of ours that died without its FIN arriving, and under the same id it
could refuse the new one. Replies travel the same way as requests, so a link has
no request/response coupling to get stuck in.

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

A hello also carries a sequence number, and echoes the last one heard from the
peer it goes to. That echo is the only proof that our DEALER's connection still
carries traffic: TCP alone can look healthy for minutes after it stopped (a peer
killed behind a partition, its RST dropped; a half-open connection after a long
cut). A link whose echo has not moved for ``LINK_SILENT_MS`` is replaced: the
DEALER connects afresh, under a new routing id. This is done here, not with ZMTP heartbeats:
libzmq 4.3.5 aborts the whole process when a heartbeat timer fires on a
connection that has already failed a read (``Assertion failed: !_io_error
(stream_engine_base.cpp:310)``), which under chaos killed a node every minute or
two.
"""

from __future__ import annotations

import secrets
from collections import Counter
from typing import Any

import zmq

from zkactors.core.messages import from_wire, sender_of, to_wire
from zkactors.protocol import pack, unpack

RECONNECT_MS = 100
RECONNECT_MAX_MS = 1000
#: A link whose peer has not echoed one of our hellos for this long is replaced
#: (see the module docstring). Six hellos' worth: a link is not thrown away over
#: one late tick, and a dead one is found well within a failover.
LINK_SILENT_MS = 1500
#: A connect that has not completed in this long is given up and retried (after
#: ``RECONNECT_MS``). Without it ZeroMQ leaves the attempt to the kernel, which
#: resends a SYN that a partition dropped after 1, 2, 4, … 64 s: a link
#: connected afresh during a long cut stayed down for up to a minute after the
#: cut healed.
CONNECT_TIMEOUT_MS = 500
HELLO_EVERY_MS = 250
DOWN_FOR_MS = 500
_HELLO = b"hello"


def _keepalive(sock: zmq.Socket) -> None:
    """Kernel keepalive probes on an idle connection after 5 s, every second; 3
    unanswered close it."""
    sock.tcp_keepalive = 1
    sock.tcp_keepalive_idle = 5
    sock.tcp_keepalive_intvl = 1
    sock.tcp_keepalive_cnt = 3


def _member_of(routing_id: bytes, members: set[int]) -> int | None:
    """The member a peer connection's routing id names (``"3:…"``, or ``"3"`` from
    a node of an older version), or None."""
    head = routing_id.split(b":", 1)[0]
    if not head.isdigit() or len(head) > 9:
        return None
    member = int(head)
    return member if member in members else None


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
        # Each of our connections carries a routing id of its own (see
        # ``_connect``), so a peer's new connection never competes with its old
        # one for an id. Handover stays for ZeroMQ's own reconnects, which reuse
        # the id: the new connection takes it from the old, maybe dead, one.
        self.router.router_handover = 1
        # We never send on the ROUTER (replies go through our DEALERs), so a
        # connection whose peer died behind a partition would sit there for ever:
        # TCP keepalive has the kernel find and close it.
        _keepalive(self.router)
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
        #: Our hello round's number; per peer, the last number it sent us (echoed
        #: back in our hellos to it), the last of ours it echoed, and when that
        #: echo last changed (or the link was last made afresh).
        self._hello_seq = 0
        self._heard_seq: dict[int, int] = {}
        self._echoed: dict[int, int] = {}
        self._proven_at: dict[int, int | None] = dict.fromkeys(peers)
        #: How often a link was replaced because its echo stood still.
        self.replaced = 0
        self._incarnation = secrets.token_hex(4)
        self._connections = 0
        for peer_id in peers:
            dealer = context.socket(zmq.DEALER)
            dealer.linger = 0
            dealer.sndhwm = hwm
            dealer.immediate = True  # never queue for a peer that isn't connected
            dealer.reconnect_ivl = RECONNECT_MS
            dealer.reconnect_ivl_max = RECONNECT_MAX_MS
            dealer.connect_timeout = CONNECT_TIMEOUT_MS
            _keepalive(dealer)
            self.dealers[peer_id] = dealer
            self._connect(peer_id)
        self.members = set(peers)
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
            peer = _member_of(frames[0], self.members)
            if peer is None:
                self.rejected["unknown_peer"] += 1
                continue
            if len(frames) in (3, 5) and frames[1] == _HELLO:
                self._on_hello(peer, frames[2], frames[3:])
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
        """Call every tick: sends the periodic hellos, and replaces a link whose
        peer has stopped echoing them."""
        if self._now_ms and now_ms - self._now_ms >= LINK_SILENT_MS // 2:
            # We did not run for a while (SIGSTOP, a VM's pause, a starved CPU):
            # our peers' echoes are as old as our last hellos, which proves
            # nothing about the links. Judge them afresh from now.
            for peer in self._proven_at:
                self._proven_at[peer] = now_ms
        self._now_ms = now_ms
        since = self._unreachable_since
        for peer in self.unreachable:
            since.setdefault(peer, now_ms)
        for peer in [p for p in since if p not in self.unreachable]:
            del since[peer]
        for peer, proven_at in self._proven_at.items():
            if proven_at is None:
                self._proven_at[peer] = now_ms  # (the first tick starts the clock)
            elif now_ms - proven_at >= LINK_SILENT_MS:
                self.replaced += 1
                self._reconnect(peer)
        if now_ms < self._hello_due:
            return
        self._hello_due = now_ms + HELLO_EVERY_MS
        self._hello_seq += 1
        ours = self._hello_seq.to_bytes(8, "big")
        for peer, dealer in self.dealers.items():
            echo = self._heard_seq.get(peer, 0).to_bytes(8, "big")
            try:
                dealer.send_multipart([_HELLO, self.fingerprint, ours, echo], zmq.NOBLOCK)
            except zmq.Again:
                self.unreachable.add(peer)
            else:
                self.unreachable.discard(peer)

    def _reconnect(self, peer: int) -> None:
        """Drop our connection to ``peer`` and connect afresh (nothing is queued
        on a link that is down: the DEALERs are ``immediate``)."""
        self.unreachable.discard(peer)
        self._unreachable_since.pop(peer, None)
        self._proven_at[peer] = self._now_ms
        self.dealers[peer].disconnect(self.endpoints[peer])
        self._connect(peer)

    def _connect(self, peer: int) -> None:
        """Connect our DEALER to ``peer`` under a routing id no connection of ours
        used before: ``<node id>:<this process's incarnation>:<count>``. The peer
        knows us by the part before the first colon."""
        self._connections += 1
        dealer = self.dealers[peer]
        dealer.routing_id = f"{self.node_id}:{self._incarnation}:{self._connections}".encode()
        dealer.connect(self.endpoints[peer])

    def _on_hello(self, peer: int, fingerprint: bytes, sequence: list[bytes]) -> None:
        if len(sequence) == 2:
            self._heard_seq[peer] = int.from_bytes(sequence[0], "big")
            echoed = int.from_bytes(sequence[1], "big")
            # Any change proves a fresh hello got through; not only a higher
            # number: a peer that restarted counts its own hellos from 1 again.
            if echoed != self._echoed.get(peer, 0):
                self._echoed[peer] = echoed
                self._proven_at[peer] = self._now_ms
        else:
            # A peer of an older version, whose hellos echo nothing: hearing it
            # is the best proof there is.
            self._proven_at[peer] = self._now_ms
        down_since = self._unreachable_since.get(peer)
        if peer in self.unreachable and down_since is not None \
                and self._now_ms - down_since >= DOWN_FOR_MS:
            # It speaks to us, yet our link to it has been down a while: ZeroMQ
            # is waiting out its reconnect backoff. Reconnect now.
            self.reconnects += 1
            self._reconnect(peer)
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
                **({"reconnected": self.reconnects} if self.reconnects else {}),
                **({"links_replaced": self.replaced} if self.replaced else {})}

    def take_mismatched(self) -> list[int]:
        found, self._newly_refused = self._newly_refused, []
        return found

    def close(self) -> None:
        self.router.close(linger=0)
        for dealer in self.dealers.values():
            dealer.close(linger=0)
