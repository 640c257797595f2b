"""Log actor: owns the WAL, the term/vote file and the replication links; drives
:class:`~zkactors.core.replog.ReplicatedLog`.

Every batch of inputs — client writes from the gateway, appends and votes from
peers, campaign/follow/step-down from the election actor — goes through the core,
and the Readies it returns are carried out in the order the core requires:
truncate and append to the WAL and save the term and vote, fsync once for all of
them (group commit), and only then send the messages, hand committed entries to
the store and answer the requests the core refused. Nothing is acknowledged — to
a client or to a leader — before it is on disk.
"""

from __future__ import annotations

import gc
from typing import Any

from zkactors.core.messages import (
    Campaign,
    InstallSnapshot,
    LeaderLost,
    LeaderSeen,
    StepDown,
    from_wire,
    to_wire,
)
from zkactors.core.replog import Ready, ReplicatedLog, may_send_before_persist
from zkactors.errors import Code
from zkactors.protocol import (
    MSG_COMMIT,
    MSG_LOCAL,
    MSG_PEERS,
    MSG_REPLY,
    MSG_RESTORE,
    MSG_ROLE,
    MSG_SNAPSHOT,
    MSG_WRITE,
    pack,
)
from zkactors.runtime.actor import Actor, now_ms, wall_ms
from zkactors.runtime.transport import PeerLinks
from zkactors.storage.snapshot import Installer, SnapshotError, SnapshotStore
from zkactors.storage.stable import StableStore
from zkactors.storage.wal import WriteAheadLog

#: Entries appended between two gc.freeze() calls (see LogActor._maybe_freeze).
FREEZE_EVERY = 20_000
#: How often, at most, the election actor hears that only our log end moved.
LOG_END_REPORT_MS = 50
#: Snapshot bytes per InstallSnapshot message.
SNAPSHOT_CHUNK_BYTES = 1 << 20


class LogActor(Actor):
    talks_to = ("store", "gateway", "election")

    def __init__(self, *args: Any, core: ReplicatedLog, wal: WriteAheadLog,
                 stable: StableStore, peer_endpoints: dict[int, str],
                 client_endpoints: dict[int, str], fingerprint: str = "",
                 snapshots: SnapshotStore | None = None, log_retain_entries: int = 0,
                 **kwargs: Any) -> None:
        super().__init__("log", *args, tick_ms=10, **kwargs)
        self.core = core
        self.wal = wal
        self.stable = stable
        self.snapshots = snapshots
        self.log_retain_entries = log_retain_entries
        #: Follower: the snapshot being received from the leader.
        self._installer: Installer | None = None
        self._told_gateway: tuple | None = None
        self._told_election: tuple | None = None
        self._election_told_at = 0
        self._log_end_pending = False
        self.client_endpoints = client_endpoints
        peers = {m: e for m, e in peer_endpoints.items() if m != self.node_id}
        self.links = PeerLinks(self.context, self.node_id, peer_endpoints[self.node_id], peers,
                               fingerprint)
        self.add_socket(self.links.router)
        self._extra.extend(self.links.dealers.values())
        self._frozen_at = 0
        self._report_due = 0

    def setup(self) -> None:
        # Tell the election actor (and the gateway) where we stand from the start.
        ready = Ready(role=self.core.role_changed())
        self._carry_out([ready])

    # ------------------------------------------------------------------ inputs
    def on_inbox(self, messages: list[list]) -> None:
        core = self.core
        readies = []
        for message in messages:
            kind = message[0]
            if kind == MSG_WRITE:
                readies.append(core.propose(message[1], now_ms(), wall_ms()))
            elif kind == MSG_SNAPSHOT:
                self._compact(message[1])
            elif kind == MSG_LOCAL:
                local = from_wire(message[1])
                if isinstance(local, Campaign):
                    readies.append(core.campaign(local, now_ms()))
                elif isinstance(local, LeaderSeen):
                    readies.append(core.leader_seen(local, now_ms()))
                elif isinstance(local, StepDown):
                    readies.append(core.step_down(local, now_ms()))
                elif isinstance(local, LeaderLost):
                    readies.append(core.leader_lost(local, now_ms()))
                else:
                    raise RuntimeError(f"log got {type(local).__name__} from its election actor")
            else:
                raise RuntimeError(f"log got unknown message kind {kind!r}")
        self._carry_out(readies)

    def on_socket(self, sock: Any) -> None:
        now = now_ms()
        self._carry_out([self.core.on_message(m, now)
                         for m in self.links.receive(self.max_batch)])

    def on_tick(self, now: int) -> None:
        self.links.maintain(now)
        if now >= self._report_due:  # peer counters for status, about once a second
            self._report_due = now + 1000
            self.send("gateway", [MSG_PEERS, self.actor_name, self.links.counters()])
        for peer in self.links.take_mismatched():
            self.log.error("peer_config_mismatch", peer=peer,
                           detail="its [member.N] sections differ from ours; refusing it")
        self._carry_out([self.core.tick(now)])
        if self._log_end_pending and now - self._election_told_at >= LOG_END_REPORT_MS:
            self._tell_election(self.core.role_changed(), now)

    # --------------------------------------------------------------- snapshots
    def _compact(self, snapshot_index: int) -> None:
        """The store saved a snapshot through ``snapshot_index``: drop the log
        before it, but for the last ``log_retain_entries``."""
        old = self.core.base_index
        base = self.core.compact(snapshot_index - self.log_retain_entries)
        if base > old:
            self.wal.compact_before(base + 1)
            self.log.info("log_compacted", base=base, wal_first=self.wal.first_index)

    def _snapshot_chunks(self, readies: list[Ready]) -> None:
        """Leader: read the chunks followers need. Follower: write the chunks the
        leader sent (fsynced before the acknowledgement goes back)."""
        for ready in list(readies):
            for peer, offset in ready.snapshot_sends:
                meta = self.snapshots.latest_meta() if self.snapshots else None
                if meta is None:
                    self.log.error("snapshot_missing", peer=peer, base=self.core.base_index)
                    continue
                with self.snapshots.open_reader(meta) as reader:
                    data = reader.read(offset, SNAPSHOT_CHUNK_BYTES)
                ready.messages.append((peer, InstallSnapshot(
                    self.core.term, self.node_id, meta.index, meta.term, offset, data,
                    offset + len(data) >= meta.size)))
            chunk = ready.snapshot_chunk
            if chunk is not None:
                readies.append(self._store_chunk(chunk))

    def _store_chunk(self, chunk: InstallSnapshot) -> Ready:
        installer = self._installer
        if chunk.offset == 0:
            installer = self._installer = self.snapshots.begin_install(chunk.index,
                                                                       chunk.last_term)
        if installer is None or installer.index != chunk.index:
            return self.core.snapshot_chunk_stored(chunk, 0, False)  # start over
        try:
            installer.write(chunk.offset, chunk.data)
            if not chunk.done:
                return self.core.snapshot_chunk_stored(chunk, installer.offset, False)
            installer.finish()
        except ValueError:  # out of order: say where we are
            return self.core.snapshot_chunk_stored(chunk, installer.offset, False)
        except SnapshotError as err:
            self.log.error("snapshot_install_failed", index=chunk.index, error=str(err))
            self._installer = None
            return self.core.snapshot_chunk_stored(chunk, 0, False)
        self._installer = None
        self.log.info("snapshot_installed", index=chunk.index, term=chunk.last_term)
        return self.core.snapshot_chunk_stored(chunk, installer.offset, True)

    def _restart_log_after(self, index: int) -> None:
        """A snapshot through ``index`` replaced our log: continue the WAL after it."""
        wal = self.wal
        if wal.last_index > index:
            wal.truncate_after(index)
        elif wal.last_index < index:
            wal.reset(index + 1)
        wal.compact_before(index + 1)

    # ----------------------------------------------------------------- effects
    def _carry_out(self, readies: list[Ready]) -> None:
        readies = [r for r in readies if r]
        if not readies:
            return
        if self.snapshots is not None:
            self._snapshot_chunks(readies)
        wal = self.wal
        hard_state = None
        last_entry = None
        # A leader's appends may go now, so followers fsync while we do.
        for ready in readies:
            early = [m for m in ready.messages if may_send_before_persist(m[1])]
            if early:
                for peer, message in early:
                    self.links.send(peer, message)
                ready.messages = [m for m in ready.messages if not may_send_before_persist(m[1])]
        for ready in readies:
            if ready.restore is not None:
                if ready.truncate_after is not None:  # our log did not match it
                    self._restart_log_after(ready.restore[0])
                else:  # the entries after it still match: keep them
                    wal.compact_before(ready.restore[0] + 1)
            elif ready.truncate_after is not None:
                wal.truncate_after(ready.truncate_after)
            if ready.entries:
                wal.append_many(pack(e.to_record()) for e in ready.entries)
                last_entry = ready.entries[-1]
            if ready.hard_state is not None:
                hard_state = ready.hard_state
        if hard_state is not None:
            self.stable.save(*hard_state)
        if last_entry is not None:
            wal.sync()
            self._maybe_freeze(last_entry.index)
            readies.append(self.core.persisted(last_entry.index, last_entry.term, now_ms()))
        # Everything the messages below promise is now durable.
        committed, failed, role = [], [], None
        for ready in readies:
            for peer, message in ready.messages:
                self.links.send(peer, message)
            committed.extend(ready.committed)
            if ready.restore is not None:
                # In order: what was handed over before the snapshot, then the
                # snapshot, then anything after it.
                self._hand_to_store(committed)
                committed = []
                self.send("store", [MSG_RESTORE, *ready.restore])
            failed.extend(ready.failed)
            role = ready.role or role
        self._hand_to_store(committed)
        if failed:
            self.send("gateway", [MSG_REPLY, 0, [
                [ident, rid, code, self._redirect(code, text), True]
                for ident, rid, code, text in failed
            ]])
        if role is not None:
            news = (role.role, role.term, role.leader, role.caught_up, role.read_floor)
            now = now_ms()
            if news != self._told_election or now - self._election_told_at >= LOG_END_REPORT_MS:
                self._tell_election(role, now)
            else:
                # Only the log end moved: the election actor needs it for pre-votes,
                # not within the millisecond; at most every LOG_END_REPORT_MS.
                self._log_end_pending = True
            if news != self._told_gateway:  # (not every move of the log end)
                self._told_gateway = news
                self.send("gateway", [MSG_ROLE, role.role, role.term, role.leader,
                                      self.client_endpoints.get(role.leader, ""),
                                      role.caught_up, role.read_floor])

    def _tell_election(self, role: Any, now: int) -> None:
        self.send("election", [MSG_LOCAL, to_wire(role)])
        self._told_election = (role.role, role.term, role.leader, role.caught_up,
                               role.read_floor)
        self._election_told_at = now
        self._log_end_pending = False

    def _hand_to_store(self, committed: list) -> None:
        if committed:
            self.send("store", [MSG_COMMIT, self.core.commit_index, self.core.term, [
                [c.ident, c.rid, c.read] if c.entry is None else
                [c.ident, c.rid, c.entry.index, c.entry.term, c.entry.time_ms, c.entry.txn]
                for c in committed
            ]])

    def _maybe_freeze(self, index: int) -> None:
        """Move the log held in memory out of the garbage collector's sight.

        The log keeps every entry since the last compaction (up to snapshot_every
        plus log_retain_entries of them), so a full collection walks hundreds of
        thousands of objects: long GIL-held pauses that can starve heartbeats
        and cost a leader its term. Frozen objects are still
        freed by reference counting; the collector just stops re-scanning them.
        """
        if index - self._frozen_at >= FREEZE_EVERY:
            gc.freeze()
            self._frozen_at = index

    def _redirect(self, code: int, text: str) -> str:
        """A NOT_LEADER reply carries the leader's client endpoint ("" if unknown),
        which the client library follows."""
        if code == Code.NOT_LEADER:
            return self.client_endpoints.get(self.core.leader, "")
        return text
