"""The replica driver: carries out what the replicated log's core decides, in the
order the protocol requires. The log actor and the simulator both run it.

Every input — client requests from the gateway, peer messages, the election
actor's word, the store's "snapshot saved", time — goes to
:class:`~zkactors.core.replog.ReplicatedLog`, and the
:class:`~zkactors.core.replog.Ready` values it returns are carried out together
(:meth:`Replica.carry_out`), in this order:

1. a leader's appends leave at once, so followers fsync while it does;
2. snapshot chunks: a leader reads what followers need, a follower writes what
   it got (and tells the core, whose answer joins this batch);
3. the log: a snapshot install restarts it, or it is truncated; entries are
   appended; the term and vote are saved;
4. one fsync for all of it (group commit), then the core hears what is durable;
5. only now every other message (votes and acknowledgements promise what is on
   disk), the committed entries to the store — a snapshot install before the
   entries after it — the refused requests back to their clients, and the role
   to the election actor and the gateway.

Nothing is acknowledged, to a client or to a leader, before it is on disk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from zkactors.core.messages import (
    Campaign,
    InstallSnapshot,
    LeaderLost,
    LeaderSeen,
    RoleChanged,
    StepDown,
)
from zkactors.core.replog import (
    Committed,
    Entry,
    Ready,
    ReplicatedLog,
    may_send_before_persist,
)
from zkactors.engine.records import decode_record, encode_record
from zkactors.engine.storage import LogStore, SnapshotFiles, SnapshotInstall, TermStore
from zkactors.storage.snapshot import SnapshotError, SnapshotMeta

#: How often, at most, the election actor hears that only our log end moved.
LOG_END_REPORT_MS = 50
#: Snapshot bytes per InstallSnapshot message.
SNAPSHOT_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Propose:
    """Client requests ``[ident, rid, txn, read]`` from the gateway, in arrival order."""

    requests: list


@dataclass(frozen=True, slots=True)
class Compact:
    """The store saved a snapshot through ``index``: the log before it may go."""

    index: int


class Outputs(Protocol):
    """Where a replica's effects go: sockets in the log actor, events in the simulator."""

    def send(self, peer: int, message: Any) -> None:
        """A message to a peer's log actor."""

    def commit(self, committed: list[Committed], commit_index: int, term: int) -> None:
        """Committed entries (and reads released behind them) for the store, in order."""

    def restore(self, index: int, term: int) -> None:
        """The store must load the snapshot just installed through ``index``."""

    def refuse(self, failed: list[tuple[bytes, int, int, str]]) -> None:
        """Requests the core refused: ``(ident, rid, code, text)``."""

    def tell_election(self, role: RoleChanged) -> None:
        """The election actor's view of the log (role, term, leader, log end)."""

    def tell_gateway(self, role: RoleChanged) -> None:
        """The gateway's: role, leader, and whether (from where) reads may be served."""


class _Quiet:
    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def encode_entry(entry: Entry) -> bytes:
    """An entry as the log store keeps it (zkactors.engine.records)."""
    return encode_record(entry)


def decode_entries(log: LogStore, after: int = 0) -> list[Entry]:
    """The log store's durable entries after index ``after``; RecordError at the
    first record that is not one this version reads."""
    return [decode_record(index, payload)
            for index, payload in log.replay(max(after + 1, log.first_index))]


class Replica:
    """One member's log, driven: the core, its storage, and where effects go."""

    def __init__(self, core: ReplicatedLog, log: LogStore, terms: TermStore,
                 snapshots: SnapshotFiles | None, outputs: Outputs, *,
                 log_retain_entries: int = 0, chunk_bytes: int = SNAPSHOT_CHUNK_BYTES,
                 observe: Callable[[Ready], None] | None = None,
                 logger: Any = None) -> None:
        self.core = core
        self.log = log
        self.terms = terms
        self.snapshots = snapshots
        self.outputs = outputs
        self.log_retain_entries = log_retain_entries
        self.chunk_bytes = chunk_bytes
        #: Called with every Ready before it is carried out (the simulator's checks).
        self.observe = observe
        self.logger = logger if logger is not None else _Quiet()
        #: Follower: the snapshot being received from the leader.
        self._installer: SnapshotInstall | None = None
        self._told_gateway: tuple | None = None
        self._told_election: tuple | None = None
        self._election_told_at = 0
        self._log_end_pending = False
        #: The commit hint last written (see :meth:`_hint_commit`).
        self._hinted = core.handed_index

    # ------------------------------------------------------------------ inputs
    def start(self, now_ms: int) -> None:
        """Tell the election actor and the gateway where we stand from the start."""
        self.carry_out([Ready(role=self.core.role_changed())], now_ms)

    def step(self, message: Any, now_ms: int, wall_ms: int | None = None) -> Ready | None:
        """One input to the core; its Ready is carried out with the batch's."""
        core = self.core
        if isinstance(message, Propose):
            return core.propose(message.requests, now_ms, wall_ms)
        if isinstance(message, Compact):
            self.compact(message.index)
            return None
        if isinstance(message, Campaign):
            return core.campaign(message, now_ms)
        if isinstance(message, LeaderSeen):
            return core.leader_seen(message, now_ms)
        if isinstance(message, LeaderLost):
            return core.leader_lost(message, now_ms)
        if isinstance(message, StepDown):
            return core.step_down(message, now_ms)
        return core.on_message(message, now_ms)

    def handle(self, messages: list, now_ms: int, wall_ms: int | None = None) -> Entry | None:
        """A batch of inputs, carried out together (one fsync for all of it).
        Returns the last entry made durable, if any (see :meth:`carry_out`)."""
        readies = []
        for message in messages:
            ready = self.step(message, now_ms, wall_ms)
            if ready is not None:
                readies.append(ready)
        return self.carry_out(readies, now_ms)

    def tick(self, now_ms: int) -> None:
        self.carry_out([self.core.tick(now_ms)], now_ms)
        if self._log_end_pending and now_ms - self._election_told_at >= LOG_END_REPORT_MS:
            self._tell_election(self.core.role_changed(), now_ms)
        self._hint_commit()

    def _hint_commit(self) -> None:
        """Note how far this node's log is committed *and on its disk*, for its
        next start to apply at once (see :func:`zkactors.engine.state.recover`).
        On ticks, not per batch: off the write path, and a hint a few ms old only
        leaves a few more entries for the leader to confirm. (The handed index,
        not the commit index: committed entries queued behind a read that waits
        for a leadership check are not the store's yet.)"""
        core = self.core
        hint = min(core.handed_index, core.persisted_index)
        if hint > self._hinted:
            self.terms.save_commit_hint(hint)
            self._hinted = hint

    # --------------------------------------------------------------- snapshots
    def compact(self, snapshot_index: int) -> int | None:
        """The store saved a snapshot through ``snapshot_index``: drop the log
        before it but for the last ``log_retain_entries``. Returns the new base
        if it moved."""
        old = self.core.base_index
        base = self.core.compact(snapshot_index - self.log_retain_entries)
        if base <= old:
            return None
        self.log.compact_before(base + 1)
        self.logger.info("log_compacted", base=base, wal_first=self.log.first_index)
        return base

    def _snapshot_chunks(self, readies: list[Ready]) -> None:
        """Leader: read the chunks followers need. Follower: write the chunks the
        leader sent (durable before the acknowledgement goes back)."""
        for ready in list(readies):
            for peer, offset in ready.snapshot_sends:
                meta = self.snapshots.latest_meta() if self.snapshots is not None else None
                if meta is None:
                    # (Our base came from a snapshot whose install is not on disk
                    # yet.) Skipped: the core sends again on its next tick.
                    self.logger.error("snapshot_missing", peer=peer, base=self.core.base_index)
                    continue
                with self.snapshots.open_reader(meta) as reader:
                    data = reader.read(offset, self.chunk_bytes)
                ready.messages.append((peer, InstallSnapshot(
                    self.core.term, self.core.node_id, meta.index, meta.term, offset, data,
                    offset + len(data) >= meta.size)))
            chunk = ready.snapshot_chunk
            if chunk is not None:
                readies.append(self._store_chunk(chunk))

    def _store_chunk(self, chunk: InstallSnapshot) -> Ready:
        installer = self._installer
        if chunk.offset == 0:
            held = self.snapshots.latest_meta()
            if held is not None and (held.index, held.term) > (chunk.index, chunk.last_term):
                return self._adopt_held(chunk, held)
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
            self.logger.error("snapshot_install_failed", index=chunk.index, error=str(err))
            self._installer = None
            return self.core.snapshot_chunk_stored(chunk, 0, False)
        self._installer = None
        self.logger.info("snapshot_installed", index=chunk.index, term=chunk.last_term)
        return self.core.snapshot_chunk_stored(chunk, installer.offset, True)

    def _adopt_held(self, chunk: InstallSnapshot, held: SnapshotMeta) -> Ready:
        """The leader sends a snapshot older than one we hold already: an install
        that completed after our core had moved on to a new term (it ignored it).
        What a snapshot holds is committed, so the newer one serves as well: it
        is installed instead, and the leader told so. (Installing the older one
        is refused by the snapshot store: snapshots never go backwards.)"""
        self.logger.info("snapshot_adopted", index=held.index, term=held.term,
                         offered=chunk.index)
        newer = InstallSnapshot(chunk.term, chunk.leader, held.index, held.term, 0, b"", True)
        return self.core.snapshot_chunk_stored(newer, held.size, True)

    def _restart_log_after(self, index: int) -> None:
        """A snapshot through ``index`` replaced our log: continue the log after it."""
        log = self.log
        if log.last_index > index:
            log.truncate_after(index)
        elif log.last_index < index:
            log.reset(index + 1)
        log.compact_before(index + 1)

    # ----------------------------------------------------------------- effects
    def carry_out(self, readies: list[Ready], now_ms: int) -> Entry | None:
        """Carry out ``readies`` in the protocol's order (see the module's doc).
        Returns the last entry made durable, if any."""
        readies = [r for r in readies if r]
        if not readies:
            self.core.check_invariants()
            return None
        if self.observe is not None:
            for ready in readies:
                self.observe(ready)
        if self.snapshots is not None:
            self._snapshot_chunks(readies)
        log, outputs = self.log, self.outputs
        hard_state = None
        last_entry = None
        # A leader's appends may go now, so followers fsync while we do.
        for ready in readies:
            early = [m for m in ready.messages if may_send_before_persist(m[1])]
            if early:
                for peer, message in early:
                    outputs.send(peer, message)
                ready.messages = [m for m in ready.messages if not may_send_before_persist(m[1])]
        for ready in readies:
            if ready.restore is not None:
                if ready.truncate_after is not None:  # our log did not match it
                    self._restart_log_after(ready.restore[0])
                else:  # the entries after it still match: keep them
                    log.compact_before(ready.restore[0] + 1)
            elif ready.truncate_after is not None:
                log.truncate_after(ready.truncate_after)
            if ready.entries:
                log.append_many(encode_entry(e) for e in ready.entries)
                last_entry = ready.entries[-1]
            if ready.hard_state is not None:
                hard_state = ready.hard_state
        if hard_state is not None:
            self.terms.save(*hard_state)
        if last_entry is not None:
            log.sync()
            persisted = self.core.persisted(last_entry.index, last_entry.term, now_ms)
            if persisted and self.observe is not None:
                self.observe(persisted)
            readies.append(persisted)
        # Everything the effects below promise is now durable.
        core = self.core
        committed, failed, role = [], [], None
        for ready in readies:
            for peer, message in ready.messages:
                outputs.send(peer, message)
            committed.extend(ready.committed)
            if ready.restore is not None:
                # In order: what was handed over before the snapshot, then the
                # snapshot, then anything after it.
                if committed:
                    outputs.commit(committed, core.commit_index, core.term)
                    committed = []
                outputs.restore(*ready.restore)
            failed.extend(ready.failed)
            role = ready.role or role
        if committed:
            outputs.commit(committed, core.commit_index, core.term)
        if failed:
            outputs.refuse(failed)
        if role is not None:
            self._report(role, now_ms)
        self.core.check_invariants()
        return last_entry

    def _report(self, role: RoleChanged, now_ms: int) -> None:
        news = (role.role, role.term, role.leader, role.caught_up, role.read_floor)
        if news != self._told_election or \
                now_ms - self._election_told_at >= LOG_END_REPORT_MS:
            self._tell_election(role, now_ms)
        else:
            # Only the log end moved: the election actor needs it for pre-votes,
            # not within the millisecond; at most every LOG_END_REPORT_MS.
            self._log_end_pending = True
        if news != self._told_gateway:  # (not every move of the log end)
            self._told_gateway = news
            self.outputs.tell_gateway(role)

    def _tell_election(self, role: RoleChanged, now_ms: int) -> None:
        self.outputs.tell_election(role)
        self._told_election = (role.role, role.term, role.leader, role.caught_up,
                               role.read_floor)
        self._election_told_at = now_ms
        self._log_end_pending = False
