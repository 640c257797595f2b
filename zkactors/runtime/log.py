"""Log actor: owns the WAL, the term/vote file and the replication links, and
runs the :class:`~zkactors.engine.replica.Replica` over them.

Every batch of inputs — client writes from the gateway, appends and votes from
peers, campaign/follow/step-down from the election actor — goes to the replica
as one batch, which carries out what the core decides in the order the protocol
requires (one fsync for the batch; nothing acknowledged before it is on disk).
This actor is only the sockets: it decodes inputs and is the replica's
:class:`~zkactors.engine.replica.Outputs`.
"""

from __future__ import annotations

from typing import Any

from zkactors.core.messages import LEADER, RoleChanged, SessionTouch
from zkactors.core.replog import Committed, ReplicatedLog
from zkactors.core.sessions import touch_route
from zkactors.engine.replica import Compact, Propose, Replica
from zkactors.engine.storage import SnapshotFiles
from zkactors.errors import Code
from zkactors.runtime.actor import Actor, now_ms, wall_ms
from zkactors.runtime.heap import HeapFreezer
from zkactors.runtime.mail import (
    Commits,
    Leading,
    Local,
    PeerCounters,
    Replies,
    Restore,
    Role,
    SnapshotSaved,
    Touched,
    Writes,
)
from zkactors.runtime.transport import PeerLinks
from zkactors.storage.stable import StableStore
from zkactors.storage.wal import WriteAheadLog

#: How often the actors refresh what the admin endpoint reports.
METRICS_EVERY_MS = 100


class LogActor(Actor):
    talks_to = ("store", "gateway", "election")

    def __init__(self, *args: Any, core: ReplicatedLog, wal: WriteAheadLog,
                 stable: StableStore, peer_endpoints: dict[int, str],
                 client_endpoints: dict[int, str], fingerprint: str = "",
                 snapshots: SnapshotFiles | None = None, log_retain_entries: int = 0,
                 **kwargs: Any) -> None:
        super().__init__("log", *args, tick_ms=10, **kwargs)
        self.core = core
        self.client_endpoints = client_endpoints
        self.replica = Replica(core, wal, stable, snapshots, _Outputs(self),
                               log_retain_entries=log_retain_entries, logger=self.log)
        peers = {m: e for m, e in peer_endpoints.items() if m != self.node_id}
        self.links = PeerLinks(self.context, self.node_id, peer_endpoints[self.node_id], peers,
                               fingerprint)
        self.add_socket(self.links.router)
        self._extra.extend(self.links.dealers.values())
        #: The log held in memory grows with every entry appended: freeze it as it
        #: does (see :mod:`zkactors.runtime.heap`).
        self.freezer = HeapFreezer()
        self._persisted_seen = core.persisted_index
        self._report_due = 0
        #: This actor's state for the admin endpoint, replaced whole on ticks.
        self.metrics: dict[str, Any] = {}
        self._metrics_due = 0

    def setup(self) -> None:
        self.replica.start(now_ms())

    # ------------------------------------------------------------------ inputs
    def on_inbox(self, messages: list[Any]) -> None:
        inputs: list[Any] = []
        for message in messages:
            if isinstance(message, Writes):
                inputs.append(Propose(message.requests))
            elif isinstance(message, SnapshotSaved):
                inputs.append(Compact(message.index))
            elif isinstance(message, Touched):
                self._touch(message.session_ids)
            elif isinstance(message, Local) and not isinstance(message.message, RoleChanged):
                inputs.append(message.message)
            else:
                raise TypeError(f"log got {message!r:.80}")
        self._after(self.replica.handle(inputs, now_ms(), wall_ms()))

    def on_socket(self, sock: Any) -> None:
        messages = self.links.receive(self.max_batch)
        if any(type(m) is SessionTouch for m in messages):
            for touch in [m for m in messages if type(m) is SessionTouch]:
                if all(type(i) is int for i in touch.ids):
                    self._touch(touch.ids)
            messages = [m for m in messages if type(m) is not SessionTouch]
        self._after(self.replica.handle(messages, now_ms()))

    def _touch(self, ids: list[int]) -> None:
        """Sessions heard from, here or at a follower: to the leader's store (its
        expiry tracker), over the peer link if the leader is another node."""
        core = self.core
        route = touch_route(core.role == LEADER, core.leader, self.node_id)
        if route == "store":
            self.send("store", Touched(ids))
        elif route is not None:
            self.links.send(route, SessionTouch(self.node_id, ids))

    def on_tick(self, now: int) -> None:
        self.links.maintain(now)
        if now >= self._report_due:  # peer counters for status, about once a second
            self._report_due = now + 1000
            self.send("gateway", PeerCounters(self.actor_name, self.links.counters()))
        for peer in self.links.take_mismatched():
            self.log.error("peer_config_mismatch", peer=peer,
                           detail="its [member.N] sections differ from ours; refusing it")
        self.replica.tick(now)
        if now >= self._metrics_due:
            self._metrics_due = now + METRICS_EVERY_MS
            self.metrics = self._metrics()

    def _metrics(self) -> dict[str, Any]:
        core = self.core
        last = core.last_index
        lag = {peer: max(0, last - progress.match_index)
               for peer, progress in core.progress.items()} if core.role == LEADER else {}
        return {"last": last, "persisted": core.persisted_index, "commit": core.commit_index,
                "snapshot": core.base_index, "term": core.term, "role": core.role, "lag": lag}

    def _after(self, persisted: Any) -> None:
        if persisted is not None:
            # (A truncated tail moves it back: that is no growth.)
            self.freezer.grew(max(0, persisted.index - self._persisted_seen))
            self._persisted_seen = persisted.index


class _Outputs:
    """Where the replica's effects go from a node: the peer links, and the store,
    gateway and election actors' inboxes."""

    def __init__(self, actor: LogActor) -> None:
        self.actor = actor
        self.leading = False

    def send(self, peer: int, message: Any) -> None:
        self.actor.links.send(peer, message)

    def commit(self, committed: list[Committed], commit_index: int, term: int) -> None:
        # In messages of at most max_batch: a node restarted on a long log has it
        # all committed at once, and one message of 100k entries would be decoded
        # and applied in one go, too big for the store to freeze as it grows
        # (see zkactors.runtime.heap).
        step = self.actor.max_batch
        for first in range(0, len(committed), step):
            self.actor.send("store", Commits(commit_index, term, [
                [c.ident, c.rid, c.read] if c.entry is None else
                [c.ident, c.rid, c.entry.index, c.entry.term, c.entry.time_ms, c.entry.txn]
                for c in committed[first:first + step]
            ]))

    def restore(self, index: int, term: int) -> None:
        self.actor.send("store", Restore(index, term))

    def refuse(self, failed: list[tuple[bytes, int, int, str]]) -> None:
        self.actor.send("gateway", Replies(0, [
            [ident, rid, code, self._redirect(code, text), True]
            for ident, rid, code, text in failed
        ]))

    def tell_election(self, role: RoleChanged) -> None:
        self.actor.send("election", Local(role))

    def tell_gateway(self, role: RoleChanged) -> None:
        leading = role.role == LEADER
        if leading != self.leading:
            # The store's expiry tracker runs while this node leads.
            self.leading = leading
            self.actor.send("store", Leading(leading, role.term))
        self.actor.send("gateway", Role(role.role, role.term, role.leader,
                                        self.actor.client_endpoints.get(role.leader, ""),
                                        role.caught_up, role.read_floor))

    def _redirect(self, code: int, text: str) -> str:
        """A NOT_LEADER reply carries the leader's client endpoint ("" if unknown),
        which the client library follows."""
        if code == Code.NOT_LEADER:
            return self.actor.client_endpoints.get(self.actor.core.leader, "")
        return text
