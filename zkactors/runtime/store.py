"""Store actor: owns the znode tree; drives :class:`StoreCore`.

Committed entries and reads arrive on one inbox, in order, so a read that follows
a client's acknowledged write always sees it.
"""

from __future__ import annotations

from typing import Any

from zkactors.core.replog import Committed, Entry
from zkactors.core.store import StoreCore
from zkactors.protocol import MSG_COMMIT, MSG_EVENTS, MSG_READ, MSG_REPLY
from zkactors.runtime.actor import Actor, now_ms


class StoreActor(Actor):
    talks_to = ("gateway", "watch")

    def __init__(self, *args: Any, core: StoreCore, **kwargs: Any) -> None:
        super().__init__("store", *args, **kwargs)
        self.core = core
        self._told_watch = core.applied_zxid

    def on_inbox(self, messages: list[list]) -> None:
        core = self.core
        replies: list[list] = []
        events = []
        for message in messages:
            kind = message[0]
            if kind == MSG_COMMIT:
                _, commit_index, term, items = message
                committed = [
                    Committed(None, item[0], item[1], item[2]) if len(item) == 3 else
                    Committed(Entry(*item[2:]), item[0], item[1])
                    for item in items
                ]
                applied_replies, applied_events = core.apply(committed, commit_index, term)
                replies.extend(applied_replies)
                events.extend(applied_events)
            elif kind == MSG_READ:
                replies.extend(core.read(message[1], now_ms()))
            else:
                raise RuntimeError(f"store got unknown message kind {kind!r}")
        if replies:
            self.send("gateway", [MSG_REPLY, core.applied_zxid, replies])
        if events or core.applied_zxid != self._told_watch:
            # The watch actor learns the applied zxid even when nothing fired (no-ops,
            # failed txns): its heartbeat vouches for quiet stretches too.
            self._told_watch = core.applied_zxid
            self.send("watch", [MSG_EVENTS, [[e.type, e.path, e.zxid, e.version]
                                             for e in events], core.applied_zxid])

    def on_tick(self, now: int) -> None:
        expired = self.core.tick(now)
        if expired:
            self.send("gateway", [MSG_REPLY, self.core.applied_zxid, expired])
