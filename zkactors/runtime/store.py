"""Store actor: owns the znode tree; drives :class:`StoreCore`; takes snapshots.

Committed entries and reads arrive on one inbox, in order, so a read that follows
a client's acknowledged write always sees it. Every ``snapshot_every`` applied
entries it has a snapshot of the state machine (tree and dedup table) written by
a forked child, and when that is durable tells the log actor, which may then drop
the log before it. A snapshot installed from
the leader (a follower too far behind) replaces the tree here, before any later
entry is applied.
"""

from __future__ import annotations

import gc
from typing import Any

from zkactors.core.replog import Committed, Entry
from zkactors.core.sessions import EXPIRY_CHECK_MS, TXN_SESSION_EXPIRE, ExpiryTracker
from zkactors.core.store import StoreCore
from zkactors.engine.state import load_snapshot, save_snapshot
from zkactors.engine.storage import SnapshotFiles
from zkactors.runtime.actor import Actor, now_ms
from zkactors.runtime.forked import ForkedJob
from zkactors.runtime.heap import HeapFreezer
from zkactors.runtime.mail import (
    Commits,
    Events,
    Leading,
    Reads,
    Replies,
    Restore,
    SessionsEnded,
    SnapshotSaved,
    Touched,
    Writes,
)

#: How much lower the snapshot writer runs than the node (nice 10: about a tenth of
#: a busy node's share of a contended core; on an idle one, all of it).
SNAPSHOT_NICE = 10
#: Change events sent to the watch actor in one message at most (about).
EVENTS_PER_MESSAGE = 4096


class StoreActor(Actor):
    talks_to = ("gateway", "watch", "log")
    #: Each commit message holds up to max_batch entries; a log committed all at
    #: once (a restart) arrives as many of them. Decoded together they would be
    #: a heap too big to collect without stalling the node; a few at a time, the
    #: freezer keeps up (see zkactors.runtime.heap).
    inbox_batch = 16

    def __init__(self, *args: Any, core: StoreCore, snapshots: SnapshotFiles | None = None,
                 snapshot_every: int = 0, members: list[int] | None = None,
                 snapshot_at: int | None = None, **kwargs: Any) -> None:
        super().__init__("store", *args, **kwargs)
        self.core = core
        self.snapshots = snapshots
        self.snapshot_every = snapshot_every if snapshots is not None else 0
        self.members = members or []
        #: The index of the newest snapshot: the next is due snapshot_every after.
        self._snapshot_at = core.applied_index if snapshot_at is None else snapshot_at
        self._told_watch = core.applied_zxid
        self._watch_pending = False
        #: This actor's state for the admin endpoint, replaced whole on ticks.
        self.metrics: dict[str, int] = {}
        #: Runs while this node leads: silent sessions become expiry proposals.
        self.expiry = ExpiryTracker()
        self._expiry_due = 0
        #: The snapshot being written by a forked child, if one is.
        self._saving: ForkedJob | None = None
        self._saving_index = 0
        self._saving_since = 0
        #: What applies make (znodes, dedup records, the watch history they feed)
        #: is long-lived: freeze it as it grows (see :mod:`zkactors.runtime.heap`).
        self.freezer = HeapFreezer()

    def on_inbox(self, messages: list[Any]) -> None:
        core = self.core
        replies: list[list] = []
        events = []
        restarted = False
        for message in messages:
            if isinstance(message, Commits):
                items = message.items
                committed = [
                    Committed(None, item[0], item[1], item[2]) if len(item) == 3 else
                    Committed(Entry(*item[2:]), item[0], item[1])
                    for item in items
                ]
                applied_replies, applied_events = core.apply(committed, message.commit_index,
                                                             message.term, now_ms())
                replies.extend(applied_replies)
                events.extend(applied_events)
                self.freezer.grew(len(items))
                if len(events) >= EVENTS_PER_MESSAGE:
                    # (A long log applied at once: the watch actor takes it in
                    # parts, as the store does.)
                    self._tell_watch(events)
                    events = []
            elif isinstance(message, Reads):
                replies.extend(core.read(message.requests, now_ms()))
            elif isinstance(message, Restore):
                self._restore(message.index, message.term)
                events = []  # superseded by the snapshot
                restarted = True
            elif isinstance(message, Touched):
                self.expiry.touch(message.session_ids, now_ms())
            elif isinstance(message, Leading):
                if message.leading:
                    self.expiry.lead(core.sessions, now_ms())
                else:
                    self.expiry.follow()
            else:
                raise TypeError(f"store got {message!r:.80}")
        opened, ended = core.take_opened(), core.take_ended()
        for session_id in opened:
            self.expiry.opened(session_id, now_ms())
        if ended:
            self.send("gateway", SessionsEnded(ended))
        if replies:
            self.send("gateway", Replies(core.applied_zxid, replies))
        if events or restarted:
            self._tell_watch(events, restarted)
        elif core.applied_zxid != self._told_watch:
            # Nothing fired (no-ops, failed txns), but the watch actor's heartbeat
            # vouches for quiet stretches too: it hears of them by the next tick.
            self._watch_pending = True
        self._maybe_snapshot()

    def _maybe_snapshot(self) -> None:
        if self.snapshot_every and self._saving is None and \
                self.core.applied_index - self._snapshot_at >= self.snapshot_every:
            self._take_snapshot()

    def _tell_watch(self, events: list, restarted: bool = False) -> None:
        self._told_watch = self.core.applied_zxid
        self._watch_pending = False
        self.send("watch", Events([[e.type, e.path, e.zxid, e.version] for e in events],
                                  self._told_watch, restarted))

    def _take_snapshot(self) -> None:
        """Snapshot what is applied now, in a forked child (:mod:`forked`): at a
        million znodes the work takes seconds of interpreter time, which here
        would stop every thread of the node, heartbeats included."""
        core, snapshots, members = self.core, self.snapshots, self.members
        index = core.applied_index
        self._snapshot_at = index

        def save() -> str:  # (runs in the child)
            try:
                meta = save_snapshot(core, snapshots, members)
            except ValueError as err:
                # A newer snapshot is already there (installed from the leader).
                return f"skipped {err}"
            return f"saved {meta.term} {meta.size}"

        # Niced: on a busy machine the nodes' own threads come first (three
        # members snapshot at about the same index, on as few as two cores).
        self._saving = ForkedJob.start(save, nice=SNAPSHOT_NICE)
        self._saving_index = index
        self._saving_since = now_ms()

    def _check_snapshot(self) -> None:
        outcome = self._saving.poll()
        if outcome is None:
            return
        job, index, self._saving = self._saving, self._saving_index, None
        error = job.error()
        if error is not None:
            # As when the store wrote snapshots itself: the node stops, and a
            # full disk is told apart by its errno (see diskspace).
            raise error
        seconds = round((now_ms() - self._saving_since) / 1000, 3)
        if outcome.startswith("ok skipped "):
            self.log.info("snapshot_skipped", index=index, reason=outcome[11:])
            return
        _, _, term, size = outcome.split(" ")
        self.log.info("snapshot_saved", index=index, term=int(term), bytes=int(size),
                      seconds=seconds)
        self.send("log", SnapshotSaved(index))

    def _restore(self, index: int, term: int) -> None:
        if self._saving is not None:
            # A snapshot of the tree being replaced: moot, and it must not land
            # after the one installed (it would be refused anyway, as older).
            self._saving.stop()
            self._saving = None
        load_snapshot(self.core, self.snapshots, index, term)
        # Long-lived, like the state loaded at start: keep full collections off
        # it (a collection walking a million objects holds the lock ~1 s).
        gc.freeze()
        self._snapshot_at = index
        self.log.info("snapshot_restored", index=index, term=term, znodes=len(self.core.tree))

    def teardown(self) -> None:
        if self._saving is not None:  # a snapshot half written is never published
            self._saving.stop()
            self._saving = None

    def on_tick(self, now: int) -> None:
        if self._saving is not None:
            self._check_snapshot()
            self._maybe_snapshot()  # (what was applied while it was written)
        self.metrics = {"applied": self.core.applied_index, "znodes": len(self.core.tree),
                        "sessions": len(self.core.sessions)}
        if self.expiry.leading and now >= self._expiry_due:
            self._expiry_due = now + EXPIRY_CHECK_MS
            due = self.expiry.expired(self.core.sessions, now)
            if due:
                # A write of the node's own, through the log like any other: the
                # expiry is a committed transaction. (No client waits for its reply.)
                self.log.info("sessions_expiring", sessions=[f"{s:#x}" for s in due])
                self.send("log", Writes([[b"", 0, [TXN_SESSION_EXPIRE, due], None]]))
        if self._watch_pending:
            self._tell_watch([])
        expired = self.core.tick(now)
        if expired:
            self.send("gateway", Replies(self.core.applied_zxid, expired))
