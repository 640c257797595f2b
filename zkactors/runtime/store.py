"""Store actor: owns the znode tree; drives :class:`StoreCore`; takes snapshots.

Committed entries and reads arrive on one inbox, in order, so a read that follows
a client's acknowledged write always sees it. Every ``snapshot_every`` applied
entries it writes a snapshot of the state machine (tree and dedup table) and tells
the log actor, which may then drop the log before it. A snapshot installed from
the leader (a follower too far behind) replaces the tree here, before any later
entry is applied.
"""

from __future__ import annotations

from typing import Any

from zkactors.core.replog import Committed, Entry
from zkactors.core.sessions import EXPIRY_CHECK_MS, TXN_SESSION_EXPIRE, ExpiryTracker
from zkactors.core.store import StoreCore
from zkactors.engine.state import load_snapshot, save_snapshot
from zkactors.engine.storage import SnapshotFiles
from zkactors.protocol import (
    MSG_COMMIT,
    MSG_ENDED,
    MSG_EVENTS,
    MSG_LEADING,
    MSG_READ,
    MSG_REPLY,
    MSG_RESTORE,
    MSG_SNAPSHOT,
    MSG_TOUCH,
    MSG_WRITE,
)
from zkactors.runtime.actor import Actor, now_ms


class StoreActor(Actor):
    talks_to = ("gateway", "watch", "log")

    def __init__(self, *args: Any, core: StoreCore, snapshots: SnapshotFiles | None = None,
                 snapshot_every: int = 0, members: list[int] | None = None,
                 **kwargs: Any) -> None:
        super().__init__("store", *args, **kwargs)
        self.core = core
        self.snapshots = snapshots
        self.snapshot_every = snapshot_every if snapshots is not None else 0
        self.members = members or []
        self._snapshot_at = core.applied_index
        self._told_watch = core.applied_zxid
        self._watch_pending = False
        #: This actor's state for the admin endpoint, replaced whole on ticks.
        self.metrics: dict[str, int] = {}
        #: Runs while this node leads: silent sessions become expiry proposals.
        self.expiry = ExpiryTracker()
        self._expiry_due = 0

    def on_inbox(self, messages: list[list]) -> None:
        core = self.core
        replies: list[list] = []
        events = []
        restarted = False
        for message in messages:
            kind = message[0]
            if kind == MSG_COMMIT:
                _, commit_index, term, items = message
                committed = [
                    Committed(None, item[0], item[1], item[2]) if len(item) == 3 else
                    Committed(Entry(*item[2:]), item[0], item[1])
                    for item in items
                ]
                applied_replies, applied_events = core.apply(committed, commit_index, term,
                                                             now_ms())
                replies.extend(applied_replies)
                events.extend(applied_events)
            elif kind == MSG_READ:
                replies.extend(core.read(message[1], now_ms()))
            elif kind == MSG_RESTORE:
                self._restore(message[1], message[2])
                events = []  # superseded by the snapshot
                restarted = True
            elif kind == MSG_TOUCH:
                self.expiry.touch(message[1], now_ms())
            elif kind == MSG_LEADING:
                if message[1]:
                    self.expiry.lead(core.sessions, now_ms())
                else:
                    self.expiry.follow()
            else:
                raise RuntimeError(f"store got unknown message kind {kind!r}")
        opened, ended = core.take_opened(), core.take_ended()
        for session_id in opened:
            self.expiry.opened(session_id, now_ms())
        if ended:
            self.send("gateway", [MSG_ENDED, ended])
        if replies:
            self.send("gateway", [MSG_REPLY, core.applied_zxid, replies])
        if events or restarted:
            self._tell_watch(events, restarted)
        elif core.applied_zxid != self._told_watch:
            # Nothing fired (no-ops, failed txns), but the watch actor's heartbeat
            # vouches for quiet stretches too: it hears of them by the next tick.
            self._watch_pending = True
        if self.snapshot_every and core.applied_index - self._snapshot_at >= self.snapshot_every:
            self._take_snapshot()

    def _tell_watch(self, events: list, restarted: bool = False) -> None:
        self._told_watch = self.core.applied_zxid
        self._watch_pending = False
        self.send("watch", [MSG_EVENTS, [[e.type, e.path, e.zxid, e.version]
                                         for e in events], self._told_watch, restarted])

    def _take_snapshot(self) -> None:
        index = self.core.applied_index
        self._snapshot_at = index
        try:
            meta = save_snapshot(self.core, self.snapshots, self.members)
        except ValueError as err:
            # A newer snapshot is already there (installed from the leader).
            self.log.info("snapshot_skipped", index=index, reason=str(err))
            return
        self.log.info("snapshot_saved", index=index, term=meta.term, bytes=meta.size)
        self.send("log", [MSG_SNAPSHOT, index])

    def _restore(self, index: int, term: int) -> None:
        load_snapshot(self.core, self.snapshots, index, term)
        self._snapshot_at = index
        self.log.info("snapshot_restored", index=index, term=term, znodes=len(self.core.tree))

    def on_tick(self, now: int) -> None:
        self.metrics = {"applied": self.core.applied_index, "znodes": len(self.core.tree),
                        "sessions": len(self.core.sessions)}
        if self.expiry.leading and now >= self._expiry_due:
            self._expiry_due = now + EXPIRY_CHECK_MS
            due = self.expiry.expired(self.core.sessions, now)
            if due:
                # A write of the node's own, through the log like any other: the
                # expiry is a committed transaction. (No client waits for its reply.)
                self.log.info("sessions_expiring", sessions=[f"{s:#x}" for s in due])
                self.send("log", [MSG_WRITE, [[b"", 0, [TXN_SESSION_EXPIRE, due], None]]])
        if self._watch_pending:
            self._tell_watch([])
        expired = self.core.tick(now)
        if expired:
            self.send("gateway", [MSG_REPLY, self.core.applied_zxid, expired])
