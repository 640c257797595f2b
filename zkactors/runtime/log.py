"""Log actor: owns the write-ahead log; drives :class:`LogCore`.

Group commit: everything waiting in the inbox is drained, appended to the WAL and
covered by one fsync; only then are the entries committed and handed to the store
(which answers the clients). Nothing is acknowledged before it is on disk.
"""

from __future__ import annotations

from typing import Any

from zkactors.core.replog import LogCore
from zkactors.protocol import MSG_COMMIT, MSG_WRITE, pack
from zkactors.runtime.actor import Actor, wall_ms
from zkactors.storage.wal import WriteAheadLog


class LogActor(Actor):
    talks_to = ("store",)

    def __init__(self, *args: Any, core: LogCore, wal: WriteAheadLog, **kwargs: Any) -> None:
        super().__init__("log", *args, **kwargs)
        self.core = core
        self.wal = wal

    def on_inbox(self, messages: list[list]) -> None:
        core = self.core
        now = wall_ms()
        entries = []
        for message in messages:
            if message[0] != MSG_WRITE:
                raise RuntimeError(f"log got unknown message kind {message[0]!r}")
            entries.extend(core.propose(message[1], now))
        if entries:
            self.wal.append_many(pack(entry.to_record()) for entry in entries)
            self.wal.sync()
        released = core.persisted(self.node_id, self.wal.last_index)
        if released:
            self.send("store", [MSG_COMMIT, core.commit_index, core.term, [
                [c.ident, c.rid, c.read] if c.entry is None else
                [c.ident, c.rid, c.entry.index, c.entry.term, c.entry.time_ms, c.entry.txn]
                for c in released
            ]])
