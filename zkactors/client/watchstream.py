"""The client's watch protocol as a pure state machine: which watches exist,
which prefixes to subscribe, the received events not yet confirmed, when to
ask a node ``evcount``/``events``, and which event goes to which watch, when.

No sockets, threads or clock: :class:`~zkactors.client.watches.WatchService`
runs it over a SUB socket, unit tests drive it directly, and the simulator
(:mod:`zkactors.sim.watchers`) runs it against every node's watch core through
crashes and failovers. The wire side is :mod:`zkactors.core.watches`.

The Clone pattern, as done here
-------------------------------

``synced`` (S) is the zxid through which every event of the watch set has been
received. Events received over PUB with ``zxid > S`` sit in a bounded log (so a
duplicate is recognised by ``(zxid, type, path, version)``) until a check confirms them.
The stream is in one of two modes:

* **live**: the SUB connection is settled, so events are dispatched as they
  arrive (this is what keeps notification latency low). At each heartbeat
  ``(A, L)`` from the node: nothing published since S (``L <= S``) -> ``S = A``;
  unless the stream can vouch for itself (see "How a client detects" in
  :mod:`zkactors.core.watches`), an ``evcount`` over ``(S, A]`` compared with
  what arrived. A
  mismatch means the node dropped messages for us -> resume. Drops are
  usually caught sooner: each event carries the node's sequence number for
  every subscribed prefix it matches, and a number that is not the last one
  seen on this connection plus one puts the stream back in **syncing** before
  that event is dispatched, with a resume asked at once.
* **syncing**: after a (re)connection of the SUB (a failover, a restarted node),
  a new prefix subscription, a count mismatch, a sequence gap, or a backlog
  overflow. Events are held in the log, not dispatched. After a (re)connection
  or a new subscription the stream first waits for its **barrier**: the shell
  subscribes a one-off topic after all its subscriptions, and the node answers
  on it once they are all in place, with the covering prefix's sequence number
  (so the numbers are checked from that exact point). Then the stream
  asks ``events`` since S, pages while ``more``, merges the answer with the log
  (dropping what was already dispatched), dispatches in zxid order, and goes live
  once a resume completed with nothing dropped since it was asked.

Installing a watch: the watch is registered *pending* first (the log keeps
everything after the stream's position at that moment), then the read is sent
(carrying at least that zxid, so the read is not older), and on the reply the
watch is activated at a start zxid: queued events at or below it are dropped,
later ones delivered. ``add_watch``, ``get_children`` and ``exists`` of a missing
node use the reply's zxid, which is the state the read itself saw (the node says
so per reply, not per frame); ``get``/``exists`` of an existing node use the
node's ``mzxid`` (exact for data events).

``compacted``: the node no longer holds the events since S. Every active watch
then receives one ``WatchedEvent`` of type ``COMPACTED`` (``zxid`` = the node's
history horizon H): "events up to H may be missing; re-read your nodes". The
stream continues from H, so events after H arrive exactly once, in order. A
one-shot watch fires (once) with COMPACTED, like ZooKeeper fires watches on
session events. ``DataWatch`` and ``ChildrenWatch`` re-read on it.

Limits, stated honestly: a dropped message is seen at the next message of the
same prefix, so each watch gets its events in zxid order. Messages dropped at the
very end of a burst have no next message: the heartbeat check finds them, and if
meanwhile events of *another* watch of this client (another prefix) were
dispatched, the found ones are delivered after those (counted as ``late`` and
logged as ``watch_events_late``) — never lost, never twice. Memory is bounded: the log
by ``max_log`` events, the callback backlog by ``max_backlog`` (beyond it the
stream stops taking PUB events and catches up by resume when the callbacks have
caught up, or gets ``COMPACTED``), plus one resume page.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from zkactors.protocol import OP_EVENT_COUNT, OP_EVENTS
from zkactors.wire import Event, ResumeAnswer, matches


class EventType:
    """Event types, with kazoo's names; ``COMPACTED`` is ours (see the module doc)."""

    CREATED = "CREATED"
    DELETED = "DELETED"
    CHANGED = "CHANGED"
    CHILD = "CHILD"
    COMPACTED = "COMPACTED"


_WIRE_TYPES = {"created": EventType.CREATED, "deleted": EventType.DELETED,
               "changed": EventType.CHANGED, "child": EventType.CHILD}
#: One-shot watch kinds (ZooKeeper's): a data watch (get, exists) fires on the
#: node's create/change/delete; a child watch (get_children) on a child change or
#: the node's delete.
DATA_KINDS = frozenset({"created", "changed", "deleted"})
CHILD_KINDS = frozenset({"child", "deleted"})


class WatchedEvent(NamedTuple):
    """What a watch callback receives: kazoo's ``(type, state, path)`` plus the
    change's ``zxid`` and the node's version after it (cversion for CHILD, -1 for
    DELETED)."""

    type: str
    state: str
    path: str
    zxid: int
    version: int = -1


_watch_ids = itertools.count(1)


@dataclass(eq=False, slots=True)
class Watch:
    """One registered watch. ``start`` is None while its install read is out."""

    path: str
    recursive: bool
    callback: Callable[[WatchedEvent], Any]
    kinds: frozenset[str] | None = None  # None: every type
    once: bool = False
    start: int | None = None
    wid: int = field(default_factory=lambda: next(_watch_ids))
    #: A compacted answer moved the stream past events this pending watch needed.
    compacted_at: int = 0

    def wants(self, event: Event) -> bool:
        return self.kinds is None or event.type in self.kinds


@dataclass(frozen=True, slots=True)
class Query:
    """A history query to send: ``events`` (resume) or ``evcount`` (count)."""

    qid: int
    op: str
    entries: tuple[tuple[str, bool], ...]
    since: int
    until: int
    gen: int

    def args(self) -> list:
        paths = [[p, r] for p, r in self.entries]
        if self.op == OP_EVENTS:
            return [paths, self.since]
        return [paths, self.since, self.until]


@dataclass(slots=True)
class Step:
    """What the stream wants done, in order: deliveries to run, queries to send,
    prefixes to (un)subscribe."""

    deliveries: list[tuple[Watch, WatchedEvent]] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    subscribe: list[str] = field(default_factory=list)
    unsubscribe: list[str] = field(default_factory=list)
    #: Send a new barrier: the one awaited has not come back.
    barrier: bool = False


class _Entry:
    """A received (or resumed) event in the log; ``dispatched`` once handed to the
    watches active at that time."""

    __slots__ = ("dispatched", "event")

    def __init__(self, event: Event, dispatched: bool) -> None:
        self.event = event
        self.dispatched = dispatched


def _key(event: Event) -> tuple[int, str, str, int]:
    # One transaction can fire the same (type, path) more than once — a session's
    # end deleting two children of /lock, a multi creating two — but each with
    # the version it leaves (cversion, version), so with it the key is unique.
    # (Without it, the second CHILD event of an expiry was taken for a duplicate
    # and never delivered: found by the simulator's watchers, seed 497.)
    return (event.zxid, event.type, event.path, event.version)


LIVE = "live"
SYNCING = "syncing"
#: ``WatchStream.awaiting`` before the shell has sent the barrier it needs.
PENDING = ""
#: At most this many [path, recursive] pairs per query (the protocol's limit);
#: beyond it the stream asks about everything and filters locally.
MAX_QUERY_ENTRIES = 1000


class WatchStream:
    """The pure watch state machine; see the module docstring.

    Not thread-safe: the shell serialises calls with a lock.
    """

    def __init__(self, max_log: int = 50_000, barrier_patience: int = 3,
                 state: str = "CONNECTED") -> None:
        self.max_log = max_log
        #: Heartbeats to wait for an awaited barrier before sending another.
        self.barrier_patience = barrier_patience
        self.state = state
        self.watches: dict[int, Watch] = {}
        self._exact: dict[str, list[Watch]] = {}
        self._recursive: dict[str, list[Watch]] = {}
        self.entries: dict[tuple[str, bool], int] = {}
        self.prefixes: dict[str, int] = {}
        self.synced: int | None = None
        self.mode = SYNCING
        #: The barrier this stream waits for before it may resume: None (none),
        #: PENDING (the shell is about to send one) or the token sent.
        self.awaiting: str | None = PENDING
        self.beats_waited = 0
        self.gen = 0
        self.query: Query | None = None
        self._qids = itertools.count(1)
        self._log: list[_Entry] = []
        self._log_zxids: list[int] = []
        self._keys: dict[tuple[int, str, str, int], _Entry] = {}
        #: wid -> the stream's position when that pending watch was registered.
        self._floors: dict[int, int] = {}
        self.dispatched_zxid = 0
        #: Subscribed prefix -> the sequence number of the last event received
        #: for it on this connection (see :mod:`zkactors.core.watches`).
        self._seqs: dict[str, int] = {}
        #: Prefix -> zxid of the first message of its unbroken run of numbers.
        self._run_start: dict[str, int] = {}
        #: The latest zxid received on this connection, and how many messages
        #: with it: compared with a heartbeat's (L, n).
        self._last_received = 0
        self._received_at_last = 0
        self.gaps = 0
        self.paused = False
        #: Events were dropped since the current resume was asked.
        self.lossy = False
        self.late = 0
        self.compactions = 0
        self.resumes = 0
        self.counts = 0

    # ------------------------------------------------------------- watches
    @property
    def read_floor(self) -> int:
        """The oldest zxid a read installing a watch may see (and, for ordering,
        any read after a delivered event)."""
        return max(self.synced or 0, self.dispatched_zxid)

    def add(self, watch: Watch, current_zxid: int) -> Step:
        """Register ``watch``: pending if ``watch.start`` is None (activate it
        after its read), else active from ``start`` (history replayed by resume)."""
        step = Step()
        if self.synced is None:
            self.synced = current_zxid
            self._resync(settle=True)
        self.watches[watch.wid] = watch
        index = self._recursive if watch.recursive else self._exact
        index.setdefault(watch.path, []).append(watch)
        entry = (watch.path, watch.recursive)
        if entry not in self.entries:
            self.gen += 1  # a query in flight does not cover this path
        self.entries[entry] = self.entries.get(entry, 0) + 1
        count = self.prefixes.get(watch.path, 0)
        self.prefixes[watch.path] = count + 1
        if count == 0:
            covered = any(watch.path.startswith(p) for p, n in self.prefixes.items()
                          if n and p != watch.path)
            step.subscribe.append(watch.path)
            if not covered:
                # The new subscription takes a moment to reach the publisher.
                self._resync(settle=True)
        if watch.start is None:
            self._floors[watch.wid] = self.synced
        elif watch.start < self.synced:
            # Replay from an older zxid: everyone else already has up to synced.
            for other in self.watches.values():
                if other is not watch and other.start is not None:
                    other.start = max(other.start, self.synced)
            self.synced = watch.start
            self._resync(settle=self.mode == SYNCING)
        else:
            self._deliver_backlog(watch, step)
        return step

    def activate(self, wid: int, start: int) -> Step:
        """The install read of a pending watch answered: events after ``start`` are its."""
        step = Step()
        watch = self.watches.get(wid)
        if watch is None:
            return step
        watch.start = start
        self._floors.pop(wid, None)
        if watch.compacted_at > start:
            self._deliver(watch, WatchedEvent(EventType.COMPACTED, self.state, watch.path,
                                              watch.compacted_at), step)
        if wid in self.watches:
            self._deliver_backlog(watch, step)
        self._trim()
        return step

    def remove(self, wid: int) -> Step:
        step = Step()
        watch = self.watches.pop(wid, None)
        if watch is None:
            return step
        self._floors.pop(wid, None)
        index = self._recursive if watch.recursive else self._exact
        same = index.get(watch.path, [])
        if watch in same:
            same.remove(watch)
        if not same:
            index.pop(watch.path, None)
        entry = (watch.path, watch.recursive)
        self.entries[entry] -= 1
        if not self.entries[entry]:
            del self.entries[entry]
        self.prefixes[watch.path] -= 1
        if not self.prefixes[watch.path]:
            del self.prefixes[watch.path]
            self._seqs.pop(watch.path, None)
            self._run_start.pop(watch.path, None)
            step.unsubscribe.append(watch.path)
        if not self.watches:
            # Nothing to follow: forget the position (a stale one would make the
            # next watch resume from far back).
            self.synced = None
            self.query = None
            self._log.clear()
            self._log_zxids.clear()
            self._keys.clear()
            self._resync(settle=True)
        return step

    def holds(self, watch: Watch) -> bool:
        """Whether ``watch`` is still registered (not removed, not fired once)."""
        with self.lock:
            return self.stream.watches.get(watch.wid) is watch

    def find(self, path: str, callback: Callable) -> list[Watch]:
        return [w for w in self.watches.values() if w.path == path and w.callback == callback
                and not w.once]

    # ---------------------------------------------------------- matching
    def _matching(self, path: str) -> list[Watch]:
        found = list(self._exact.get(path, ()))
        recursive = self._recursive
        if recursive:
            found.extend(recursive.get(path, ()))
            ancestor = path
            while ancestor != "/":
                ancestor = ancestor.rsplit("/", 1)[0] or "/"
                found.extend(recursive.get(ancestor, ()))
        return found

    def _relevant(self, path: str) -> bool:
        if path in self._exact or path in self._recursive:
            return True
        return bool(self._recursive) and any(
            matches(p, True, path) for p in self._recursive)

    # ------------------------------------------------------------- inputs
    def on_event(self, event: Event, seqs: dict[str, int] | None = None) -> Step:
        """An event from the SUB socket, with the node's sequence numbers of the
        subscribed prefixes it matches."""
        step = Step()
        if event.zxid == self._last_received:
            self._received_at_last += 1
        elif event.zxid > self._last_received:
            self._last_received, self._received_at_last = event.zxid, 1
        if seqs and self._missed_some(seqs, event.zxid):
            # The node dropped messages for us: hold this one and what follows
            # until a resume has filled the gap, so nothing is dispatched out of
            # zxid order.
            self.gaps += 1
            self.lossy = True
            if self.mode == LIVE:
                self._resync()
            if self.query is None and not self.paused and self.awaiting is None \
                    and self.synced is not None and self.watches:
                self._ask(OP_EVENTS, step)
        if self.synced is None or event.zxid <= self.synced or not self._relevant(event.path):
            return step
        key = _key(event)
        if key in self._keys:
            return step  # a duplicate (a new connection replaying what we have)
        if self.paused or len(self._log) >= self.max_log:
            self.lossy = True
            if self.mode == LIVE:
                self._resync()
            return step
        entry = _Entry(event, False)
        self._insert(entry)
        if self.mode == LIVE:
            self._dispatch(entry, step)
        return step

    def _missed_some(self, seqs: dict[str, int], zxid: int) -> bool:
        missed = False
        known = self._seqs
        for prefix, seq in seqs.items():
            if prefix in self.prefixes:
                last = known.get(prefix)
                if last is None or seq != last + 1:
                    self._run_start[prefix] = zxid
                    missed = missed or last is not None
                known[prefix] = seq
        return missed

    def _received_everything(self, last_event: int, n_last: int) -> bool:
        """Whether nothing up to the heartbeat can have been dropped (step 2 of
        the check in :mod:`zkactors.core.watches`)."""
        if n_last <= 0 or self._last_received != last_event \
                or self._received_at_last != n_last:
            return False
        cover = self.cover_prefix()
        if not cover:
            return False
        start = self._run_start.get(cover)
        return start is not None and start <= self.synced

    def on_heartbeat(self, applied: int, last_event: int, n_last: int = 0) -> Step:
        step = Step()
        if self.synced is None or not self.watches:
            return step
        if self.mode == SYNCING:
            if self.awaiting is not None:
                self.beats_waited += 1
                if self.beats_waited >= self.barrier_patience:
                    self.beats_waited = 0
                    step.barrier = True  # lost (dropped with a full queue): again
                return step
            if self.query is None and not self.paused:
                self._ask(OP_EVENTS, step)
            return step
        if applied <= self.synced or self.query is not None:
            return step
        if last_event <= self.synced:
            # Nothing at all happened in (synced, applied]: no question needed.
            self.synced = applied
            self._trim()
            return step
        if self._received_everything(last_event, n_last):
            self._confirm(applied, step)
            return step
        entries = self._query_entries()
        if entries is None:  # too many paths to count: ask for the events
            self._ask(OP_EVENTS, step)
        else:
            self._ask(OP_EVENT_COUNT, step, until=applied)
        return step

    def cover_prefix(self) -> str:
        """The subscribed prefix every other one starts with ("" if none does)."""
        cover = min(self.prefixes, key=len, default="")
        if cover and all(p.startswith(cover) for p in self.prefixes):
            return cover
        return ""

    def expect_barrier(self, token: str) -> None:
        """The shell subscribed barrier ``token`` after all its subscriptions."""
        if self.awaiting is not None:
            self.awaiting, self.beats_waited = token, 0

    def on_barrier(self, token: str, applied: int, prefix: str, seq: int | None) -> Step:
        """Barrier ``token`` came back: the node has every subscription sent
        before it; ``seq`` is ``prefix``'s sequence number at that moment."""
        step = Step()
        if prefix and seq is not None and prefix in self.prefixes:
            known = self._seqs.get(prefix)
            if known is not None and known != seq:
                # Messages between the last one we got and the barrier were dropped.
                self.gaps += 1
                self.lossy = True
                if self.mode == LIVE:
                    self._resync()
            if known != seq:  # a new run of numbers starts here
                self._run_start[prefix] = applied
            self._seqs[prefix] = seq
        if token == self.awaiting:
            self.awaiting = None
        # (An older token settles nothing: a later subscription is on its way.)
        if self.mode == SYNCING and self.awaiting is None and self.synced is not None and self.watches \
                and self.query is None and not self.paused:
            self._ask(OP_EVENTS, step)
        return step

    def on_answer(self, qid: int, answer: ResumeAnswer) -> Step:
        step = Step()
        query = self.query
        if query is None or query.qid != qid:
            return step
        self.query = None
        if query.gen != self.gen or self.synced is None:
            return step  # asked about another watch set or position: ask again later
        if answer.compacted:
            if query.op == OP_EVENT_COUNT:
                self._resync()
                self._ask(OP_EVENTS, step)
            else:
                self._compacted(answer.horizon_zxid, step)
            return step
        if answer.upto_zxid < query.since:
            return step  # that node is behind us: ask again at the next heartbeat
        if query.op == OP_EVENT_COUNT:
            self.counts += 1
            received = self._count(query)
            if received == answer.count:
                self._confirm(answer.upto_zxid, step)
            else:
                self._resync()
                self._ask(OP_EVENTS, step)
            return step
        self.resumes += 1
        self._merge(query, answer, step)
        if answer.more:
            if not self.paused:
                self._ask(OP_EVENTS, step)
        elif self.mode == SYNCING:
            if self.lossy or self.paused:
                if not self.paused:
                    self._ask(OP_EVENTS, step)
            elif self.awaiting is None:  # else the barrier's arrival asks again
                self._go_live(step)
        return step

    def on_query_failed(self, qid: int) -> None:
        if self.query is not None and self.query.qid == qid:
            self.query = None  # asked again at the next heartbeat

    def on_reconnect(self) -> None:
        """The SUB socket was connected anew (another node, or the same one back)."""
        self.gen += 1
        self.query = None
        self._seqs.clear()  # numbers of another connection (or another node)
        self._run_start.clear()
        self._last_received = self._received_at_last = 0
        self._resync(settle=True)

    def pause(self) -> None:
        """The callbacks are behind: stop taking events (catch up by resume later)."""
        self.paused = True
        if self.mode == LIVE:
            self._resync()

    def unpause(self) -> None:
        self.paused = False

    # ------------------------------------------------------------ helpers
    def _resync(self, settle: bool = False) -> None:
        """Hold events until a resume; with ``settle``, also until a barrier
        shows this stream's subscriptions are in place at the node."""
        if settle:
            self.awaiting, self.beats_waited = PENDING, 0
        self.mode = SYNCING
        if self.query is not None and self.query.op == OP_EVENT_COUNT:
            self.query = None

    def _query_entries(self) -> tuple[tuple[str, bool], ...] | None:
        if len(self.entries) > MAX_QUERY_ENTRIES:
            return None
        return tuple(self.entries)

    def _ask(self, op: str, step: Step, until: int = 0) -> None:
        entries = self._query_entries()
        if entries is None:
            entries = (("/", True),)
        query = Query(next(self._qids), op, entries, self.synced, until, self.gen)
        if op == OP_EVENTS:
            self.lossy = False
        self.query = query
        step.queries.append(query)

    def _insert(self, entry: _Entry) -> None:
        zxid = entry.event.zxid
        if not self._log_zxids or zxid >= self._log_zxids[-1]:
            self._log.append(entry)
            self._log_zxids.append(zxid)
        else:
            i = bisect.bisect_right(self._log_zxids, zxid)
            self._log.insert(i, entry)
            self._log_zxids.insert(i, zxid)
        self._keys[_key(entry.event)] = entry

    def _trim(self) -> None:
        """Forget logged events no one can need: confirmed, and older than any
        pending watch's floor."""
        if self.synced is None:
            return
        cut = min(self._floors.values(), default=self.synced)
        cut = min(cut, self.synced)
        n = bisect.bisect_right(self._log_zxids, cut)
        if not n:
            return
        keys = self._keys
        for entry in self._log[:n]:  # all dispatched: cut <= synced
            keys.pop(_key(entry.event), None)
        del self._log[:n]
        del self._log_zxids[:n]

    def _deliver(self, watch: Watch, event: WatchedEvent, step: Step) -> None:
        step.deliveries.append((watch, event))
        if watch.once:
            step.unsubscribe.extend(self.remove(watch.wid).unsubscribe)

    def _dispatch(self, entry: _Entry, step: Step) -> None:
        entry.dispatched = True
        event = entry.event
        if event.zxid < self.dispatched_zxid:
            self.late += 1
        self.dispatched_zxid = max(self.dispatched_zxid, event.zxid)
        watched = None
        for watch in self._matching(event.path):
            if watch.start is None or event.zxid <= watch.start or not watch.wants(event):
                continue
            if watched is None:
                watched = WatchedEvent(_WIRE_TYPES.get(event.type, event.type), self.state,
                                       event.path, event.zxid, event.version)
            self._deliver(watch, watched, step)

    def _deliver_backlog(self, watch: Watch, step: Step) -> None:
        """Hand a newly active watch what was already dispatched after its start."""
        for entry in list(self._log):
            event = entry.event
            if (entry.dispatched and event.zxid > watch.start and watch.wants(event)
                    and matches(watch.path, watch.recursive, event.path)):
                self._deliver(watch, WatchedEvent(_WIRE_TYPES.get(event.type, event.type),
                                                  self.state, event.path, event.zxid,
                                                  event.version), step)
                if watch.wid not in self.watches:
                    return

    def _count(self, query: Query) -> int:
        lo = bisect.bisect_right(self._log_zxids, query.since)
        hi = bisect.bisect_right(self._log_zxids, query.until)
        entries = query.entries
        return sum(1 for entry in self._log[lo:hi]
                   if any(matches(p, r, entry.event.path) for p, r in entries))

    def _confirm(self, upto: int, step: Step) -> None:
        """Everything through ``upto`` is known received: dispatch what is held."""
        hi = bisect.bisect_right(self._log_zxids, upto)
        for entry in self._log[:hi]:
            if not entry.dispatched:
                self._dispatch(entry, step)
        if self.synced is None:
            return  # the last watch was a one-shot that just fired
        self.synced = max(self.synced, upto)
        self._trim()

    def _merge(self, query: Query, answer: ResumeAnswer, step: Step) -> None:
        """Merge a resume answer over (since, upto] with the log, dispatching in
        zxid order what was not dispatched yet."""
        upto = answer.upto_zxid
        lo = bisect.bisect_right(self._log_zxids, query.since)
        hi = bisect.bisect_right(self._log_zxids, upto)
        segment = self._log[lo:hi]
        merged: list[_Entry] = []
        answered = set()
        for event in answer.events:
            key = _key(event)
            answered.add(key)
            entry = self._keys.get(key)
            if entry is None:
                entry = _Entry(event, False)
                self._keys[key] = entry
            merged.append(entry)
        # Anything logged that the answer lacks (a watch removed meanwhile) goes
        # after the answer's events of its zxid; sort is stable.
        merged.extend(e for e in segment if _key(e.event) not in answered)
        merged.sort(key=lambda e: e.event.zxid)
        for entry in merged:
            if not entry.dispatched:
                self._dispatch(entry, step)
        if self.synced is None:
            return  # a one-shot watch fired and was the last: nothing to follow
        self._log[lo:hi] = merged
        self._log_zxids[lo:hi] = [e.event.zxid for e in merged]
        self.synced = max(self.synced, upto)
        self._trim()

    def _go_live(self, step: Step) -> None:
        self.mode = LIVE
        for entry in list(self._log):
            if self.synced is None:
                return
            if not entry.dispatched:
                self._dispatch(entry, step)

    def _compacted(self, horizon: int, step: Step) -> None:
        """Events in (synced, horizon] may be gone: say so, continue from horizon."""
        self.compactions += 1
        for watch in list(self.watches.values()):
            if watch.start is None:
                watch.compacted_at = max(watch.compacted_at, horizon)
            elif watch.start < horizon and watch.wid in self.watches:
                self._deliver(watch, WatchedEvent(EventType.COMPACTED, self.state, watch.path,
                                                  horizon), step)
        if self.synced is None:
            return
        self.synced = max(self.synced, horizon)
        self.dispatched_zxid = max(self.dispatched_zxid, horizon)
        # Held events at or below the horizon: the re-read covers them.
        n = bisect.bisect_right(self._log_zxids, horizon)
        for entry in self._log[:n]:
            self._keys.pop(_key(entry.event), None)
        del self._log[:n]
        del self._log_zxids[:n]
        self._floors = {wid: max(f, horizon) for wid, f in self._floors.items()}
        if self.watches and not self.paused:
            self._ask(OP_EVENTS, step)

    def stats(self) -> dict[str, Any]:
        return {"mode": self.mode, "synced": self.synced, "watches": len(self.watches),
                "log": len(self._log), "late": self.late, "compactions": self.compactions,
                "resumes": self.resumes, "counts": self.counts, "gaps": self.gaps,
                "dispatched_zxid": self.dispatched_zxid}
