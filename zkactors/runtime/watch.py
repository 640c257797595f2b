"""Watch actor: owns the publishing socket; drives :class:`~zkactors.core.watches.WatchCore`.

Every change the store applies is published as a two-frame message: the znode
path (the topic, so a SUB socket can filter by path prefix) and ``[type, path,
zxid, version, seqs]``; a heartbeat goes out on the control topic every
``heartbeat_ms`` while busy, ``idle_heartbeat_ms`` otherwise. Clients'
``events`` / ``evcount`` queries reach it through the gateway and are answered
from the core's bounded history.

The socket is an XPUB, which is a PUB that also hands us the subscriptions it
receives: the core keeps a sequence counter per subscribed prefix (so a
subscriber notices a dropped message at the next one) and answers barrier
subscriptions. ``XPUB_VERBOSE`` passes every subscription, not only a topic's
first (a barrier topic is unique anyway); an unsubscription
still comes only when the topic's last subscriber leaves (or disconnects), which
is exactly when its counter may go.
"""

from __future__ import annotations

from typing import Any

import zmq

from zkactors.core.watches import WatchCore
from zkactors.errors import Code
from zkactors.protocol import OP_EVENTS, pack
from zkactors.runtime.actor import Actor
from zkactors.runtime.mail import Events, Replies, WatchQueries


class WatchActor(Actor):
    talks_to = ("gateway",)

    def __init__(self, *args: Any, endpoint: str, core: WatchCore, subscriber_queue: int = 100_000,
                 **kwargs: Any) -> None:
        super().__init__("watch", *args, tick_ms=min(50, core.heartbeat_ms), **kwargs)
        self.core = core
        self.pub = self.context.socket(zmq.XPUB)
        self.pub.linger = 0
        self.pub.setsockopt(zmq.XPUB_VERBOSE, 1)
        # Bounded per subscriber: a slow one loses messages (and closes the gap by
        # resume) rather than growing this node's memory.
        self.pub.sndhwm = subscriber_queue
        self.pub.bind(endpoint)
        self.add_socket(self.pub)
        #: The core's stats for the admin endpoint, replaced whole on ticks.
        self.metrics: dict[str, int] = {}

    def on_socket(self, sock: zmq.Socket) -> None:
        core = self.core
        for _ in range(self.max_batch):
            try:
                message = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            # b"\x01topic" subscribes, b"\x00topic" unsubscribes; a SUB never
            # sends anything else, and anything else is not ours to act on.
            if message[:1] in (b"\x00", b"\x01"):
                self._publish(core.on_subscription(message[1:], message[:1] == b"\x01"))

    def on_inbox(self, messages: list[Any]) -> None:
        core = self.core
        replies = []
        for message in messages:
            if isinstance(message, Events):
                if message.restarted:
                    core.restart_from(message.applied_zxid)
                self._publish(core.on_events(message.events, message.applied_zxid))
            elif isinstance(message, WatchQueries):
                for ident, rid, op, args in message.queries:
                    paths = [(path, recursive) for path, recursive in args[0]]
                    if op == OP_EVENTS:
                        answer = core.resume(paths, args[1])
                    else:
                        answer = core.count(paths, args[1], args[2])
                    replies.append([ident, rid, int(Code.OK), answer.to_wire(), False])
            else:
                raise TypeError(f"watch got {message!r:.80}")
        if replies:
            self.send("gateway", Replies(core.applied_zxid, replies))

    def on_tick(self, now: int) -> None:
        self._publish(self.core.tick(now))
        self.metrics = self.core.stats()

    def _publish(self, publishes: list) -> None:
        send = self.pub.send_multipart
        for item in publishes:
            send([item.topic, pack(item.body)])

    def status(self) -> dict[str, int]:
        return self.core.stats()
