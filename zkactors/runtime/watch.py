"""Watch actor: owns the PUB socket and publishes every applied change.

Each event is a two-frame message: the znode path (the topic, so a SUB socket can
filter by path prefix) and ``[type, path, zxid, version]``.
"""

from __future__ import annotations

from typing import Any

import zmq

from zkactors.protocol import pack
from zkactors.runtime.actor import Actor


class WatchActor(Actor):
    def __init__(self, *args: Any, endpoint: str, **kwargs: Any) -> None:
        super().__init__("watch", *args, **kwargs)
        self.pub = self.context.socket(zmq.PUB)
        self.pub.linger = 0
        self.pub.sndhwm = 100_000
        self.pub.bind(endpoint)
        self._extra.append(self.pub)
        self.published = 0

    def on_inbox(self, messages: list[list]) -> None:
        pub = self.pub
        for message in messages:
            if message[0] != "events":
                raise RuntimeError(f"watch got unknown message kind {message[0]!r}")
            for event in message[1]:
                pub.send_multipart([event[1].encode(), pack(event)])
                self.published += 1
