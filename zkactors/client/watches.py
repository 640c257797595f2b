"""Client-side watches: one-shot and persistent watches over the nodes' PUB streams,
with gaps closed by resume so that a persistent watcher sees every event for its
paths exactly once, in zxid order.

What this module owns
---------------------

* :class:`WatchedEvent` / :class:`EventType` — what a callback receives (kazoo's
  names, plus ``zxid`` and ``version``).
* :class:`WatchStream` — the **pure** state machine (no sockets, threads or
  clock): which watches exist, which prefixes to subscribe, the log of received
  events not yet confirmed, when to ask a node ``evcount``/``events``, and which
  event goes to which watch, when. Unit-tested without sockets.
* :class:`WatchService` — the imperative shell: its SUB socket, run by the
  process's :class:`~zkactors.client.watch_hub.WatchHub` thread, and a dispatch
  thread of its own that runs user callbacks.
* :class:`DataWatch` / :class:`ChildrenWatch` — kazoo-style recipes built on the
  public client API only.

It never touches the agent's DEALER socket: history queries go through the
ordinary request path (``Client._call``), so they are retried and failed over
like any read.

Why the SUB socket is not in the agent's poller: the agent is the hot path for
every request; events and heartbeats would compete with replies there, and the
gap-detection logic would grow the agent. Why not a receiver thread per session
either: see :mod:`zkactors.client.watch_hub`. The hub runs the service's
``_hub_*`` methods, which follow the agent by two plain attributes it sets at
each hello (``watch_endpoint`` and ``hellos``; the agent rings the hub then),
and the service talks to nodes only through ``Client._call``.

The Clone pattern, as done here
-------------------------------

``synced`` (S) is the zxid through which every event of the watch set has been
received. Events received over PUB with ``zxid > S`` sit in a bounded log (so a
duplicate is recognised by ``(zxid, type, path)``) until a check confirms them.
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

import abc
import bisect
import itertools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import zmq

from zkactors.client.watch_hub import DRAIN_BATCH, WatchHub
from zkactors.errors import NoNodeError, ZkactorsError
from zkactors.logsetup import get_logger
from zkactors.protocol import MAX_PATH_BYTES_LIMIT, OP_EVENT_COUNT, OP_EVENTS, unpack
from zkactors.wire import (
    BARRIER,
    BARRIER_PREFIX,
    CONTROL_TOPIC,
    HEARTBEAT,
    Event,
    ResumeAnswer,
    matches,
    validate_path,
)


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


def _key(event: Event) -> tuple[int, str, str]:
    # One transaction never fires the same (type, path) twice (see tree.py).
    return (event.zxid, event.type, event.path)


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
        self._keys: dict[tuple[int, str, str], _Entry] = {}
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


# ------------------------------------------------------------------- the shell


def _reachable(endpoint: str, via: str) -> str:
    """A node may bind its PUB on a wildcard; connect to the host we reach it by."""
    scheme, _, rest = endpoint.partition("://")
    host, _, port = rest.rpartition(":")
    if host in ("*", "0.0.0.0", "[::]", "::"):
        via_host = via.partition("://")[2].rpartition(":")[0] or "127.0.0.1"
        return f"{scheme}://{via_host}:{port}"
    return endpoint


class WatchService:
    """Runs a :class:`WatchStream` for one client: a SUB socket run by the
    process's watch hub, and a dispatch thread running callbacks. Started on the
    first watch.

    ``max_backlog``: callbacks queued at most before the stream stops taking
    events and catches up by resume; ``silence_s``: with no heartbeat this long
    from the node we are attached to, reattach.
    """

    def __init__(self, client: Any, max_backlog: int = 10_000, max_log: int = 50_000,
                 silence_s: float = 3.0) -> None:
        self.client = client
        #: The client's chroot comes off every event's path, here and only here.
        self._unchroot = client.unchroot if getattr(client, "chroot", "") else None
        self.stream = WatchStream(max_log)
        self.lock = threading.Lock()
        self.max_backlog = max(1, max_backlog)
        self.silence_s = silence_s
        self.backlog = 0
        self.log = get_logger(actor="client-watches", client=client.name)
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        #: Deliveries not yet handed to the callback thread (guarded by lock).
        self._outbox: list[tuple[Watch, WatchedEvent]] = []
        self._deliveries: queue.SimpleQueue = queue.SimpleQueue()
        self._start_lock = threading.Lock()
        self._stopping = threading.Event()
        self._hub: WatchHub | None = None
        self._dispatcher: threading.Thread | None = None
        #: Set once the hub has let go of this service (its SUB socket closed).
        self._closed = threading.Event()
        # The rest is the hub thread's alone.
        self._sub: zmq.Socket | None = None
        self._subscribed: set[str] = set()
        self._attached: tuple[str, int] | None = None
        self._last_heard = time.monotonic()
        self._late_logged = 0
        self._barrier_ids = itertools.count(1)
        self._barrier_topic: bytes | None = None
        self._barrier_wanted = False

    # ------------------------------------------------------------ lifecycle
    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._hub is not None:
                return
            if self._stopping.is_set():
                raise RuntimeError("watch service stopped")
            self._dispatcher = threading.Thread(
                target=self._dispatch, daemon=True,
                name=f"zkactors-client-watch-callbacks-{self.client.name}")
            self._dispatcher.start()
            self._hub = WatchHub.instance()
        self._ring()

    def stop(self) -> None:
        self._stopping.set()
        with self._start_lock:
            hub, dispatcher = self._hub, self._dispatcher
        if hub is None:
            return
        self._ring()
        self._closed.wait(5.0)
        self._deliveries.put(None)
        if dispatcher is not threading.current_thread():
            dispatcher.join(5.0)

    def _ring(self) -> None:
        """Have the hub look at this service soon (any thread)."""
        hub = self._hub
        if hub is not None:
            hub.ring(self)

    # ------------------------------------------------------------ watches
    def read_floor(self) -> int:
        return self.stream.read_floor

    @property
    def dispatched_zxid(self) -> int:
        return self.stream.dispatched_zxid

    def install(self, watch: Watch, read: Callable[[int], Any] | None = None,
                start_of: Callable[[Any, int], int] | None = None,
                timeout: float = 15.0) -> Any:
        """Register ``watch``; if ``read`` is given (``read(min_zxid) -> ZkFuture``),
        send it once subscribed and activate the watch at ``start_of(result,
        reply_zxid)``. Returns the read's result. A failed read removes the watch."""
        # Checked here, before the path becomes a subscription topic: the node
        # checks it too, but only after the subscription went out (and libzmq
        # crashes on closing a SUB socket with a topic of a few hundred KB).
        validate_path(watch.path, MAX_PATH_BYTES_LIMIT)
        self._ensure_started()
        with self.lock:
            step = self.stream.add(watch, self.client.last_zxid)
            self._apply(step)
            floor = self.stream.read_floor
        if step.subscribe:
            # Clone pattern: the subscription goes out before the read.
            applied = threading.Event()
            self._inbox.put(("subscribed", applied))
            self._ring()
            applied.wait(2.0)
        if read is None:
            return None
        try:
            future = read(floor)
            result = future.result(timeout)
        except BaseException:
            self.remove(watch)
            raise
        start = start_of(result, getattr(future, "zxid", 0)) if start_of else future.zxid
        with self.lock:
            self._apply(self.stream.activate(watch.wid, start))
        return result

    def remove(self, watch: Watch) -> None:
        with self.lock:
            self._apply(self.stream.remove(watch.wid))

    def holds(self, watch: Watch) -> bool:
        """Whether ``watch`` is still registered (not removed, not fired once)."""
        with self.lock:
            return self.stream.watches.get(watch.wid) is watch

    def find(self, path: str, callback: Callable) -> list[Watch]:
        with self.lock:
            return self.stream.find(path, callback)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {**self.stream.stats(), "backlog": self.backlog,
                    "attached": bool(self._subscribed)}

    # ------------------------------------------------------------ effects
    def _apply(self, step: Step) -> None:
        """Carry out a step (the lock is held, so deliveries keep stream order)."""
        if step.deliveries:
            # Handed to the callback thread by the hub only, in order: on the
            # hub's thread at the end of its round (so the callback threads of
            # a fan-out wake after the hub let go of the GIL, not while it works),
            # from any other thread at the hub's next round.
            self._outbox.extend(step.deliveries)
            hub = self._hub
            if hub is not None and threading.current_thread() is hub:
                hub.flush_later(self)
            else:
                self._ring()
            self.backlog += len(step.deliveries)
            if self.backlog > self.max_backlog and not self.stream.paused:
                self.stream.pause()
                self.log.info("watch_backlog_full", backlog=self.backlog)
            if step.barrier:
                self._barrier_wanted = True
            if self.stream.late > self._late_logged:
                self.log.warning("watch_events_late", late=self.stream.late - self._late_logged)
                self._late_logged = self.stream.late
        for query in step.queries:
            self._send(query)

    def _send(self, query: Query) -> None:
        try:
            future = self.client._call(query.op, query.args(), ResumeAnswer.from_wire, None)
        except Exception:  # noqa: BLE001 - client stopping: asked again at a heartbeat
            self.stream.on_query_failed(query.qid)
            return
        future.add_done_callback(lambda f, qid=query.qid: self._query_done(qid, f))

    def _query_done(self, qid: int, future: Any) -> None:
        # On the agent thread: hand over, never work here.
        self._inbox.put(("answer", qid, future))
        self._ring()

    # ------------------------------------------------- on the hub's thread
    def _hub_round(self) -> bool:
        """Follow the agent, take answers, keep subscriptions in step. Returns
        False once this service is done (stopped, or its client is)."""
        agent = self.client._agent
        if self._stopping.is_set() or agent is None:
            self._hub_close()
            return False
        now = time.monotonic()
        endpoint = agent.watch_endpoint if agent.connected else ""
        target = (endpoint, agent.hellos) if endpoint else None
        if target is not None and (target != self._attached
                                   or now - self._last_heard > self.silence_s):
            if self._attached is not None and target == self._attached:
                self.log.info("watch_node_silent", endpoint=endpoint)
            self._attach(_reachable(endpoint, agent.endpoints[agent.endpoint_index]))
            self._attached, self._last_heard = target, now
        self._drain_inbox()
        self._sync_subscriptions()
        if self.stream.paused:
            with self.lock:
                if self.stream.paused and self.backlog <= self.max_backlog // 2:
                    self.stream.unpause()
        return True

    def _hub_readable(self) -> bool:
        """The SUB socket is readable. Returns whether a round is wanted."""
        if self._drain_sub():
            self._last_heard = time.monotonic()
        return self._barrier_wanted

    def _hub_flush(self) -> None:
        with self.lock:
            items, self._outbox = self._outbox, []
        put = self._deliveries.put
        for item in items:
            put(item)

    def _hub_close(self) -> None:
        if self._sub is not None:
            self._hub.unwatch_socket(self._sub)
            self._sub.close(linger=0)
            self._sub = None
        self._closed.set()

    def _attach(self, endpoint: str) -> None:
        if self._sub is not None:
            self._hub.unwatch_socket(self._sub)
            self._sub.close(linger=0)
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.linger = 0
        sub.rcvhwm = 200_000
        sub.subscribe(CONTROL_TOPIC)
        with self.lock:
            prefixes = set(self.stream.prefixes)
            self.stream.on_reconnect()
        for prefix in prefixes:
            sub.subscribe(prefix.encode())
        sub.connect(endpoint)
        self._sub, self._subscribed = sub, prefixes
        self._barrier_topic = None
        self._hub.watch_socket(sub, self)
        self.log.info("watch_attached", endpoint=endpoint)

    def _sync_subscriptions(self) -> None:
        if self._sub is None:
            return
        with self.lock:
            wanted = self.stream.prefixes.keys() - self._subscribed
            unwanted = self._subscribed - self.stream.prefixes.keys()
            barrier = bool(wanted) or self._barrier_wanted or self.stream.awaiting == PENDING
            self._barrier_wanted = False
            cover = self.stream.cover_prefix() if barrier else ""
        for prefix in wanted:
            self._sub.subscribe(prefix.encode())
        for prefix in unwanted:
            self._sub.unsubscribe(prefix.encode())
        self._subscribed |= wanted
        self._subscribed -= unwanted
        if barrier:
            self._send_barrier(cover)

    def _send_barrier(self, cover: str) -> None:
        """Subscribe a fresh barrier topic, after every subscription sent so far:
        the node answers on it once they are all in place (core.watches)."""
        if self._barrier_topic is not None:
            self._sub.unsubscribe(self._barrier_topic)
        token = f"{self.client.name}.{next(self._barrier_ids)}".replace("/", "_")
        topic = BARRIER_PREFIX + token.encode() + b"/" + cover.encode()
        with self.lock:
            self.stream.expect_barrier(token)
        self._sub.subscribe(topic)
        self._barrier_topic = topic

    def _drain_inbox(self) -> None:
        while True:
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return
            if item[0] == "subscribed":
                self._sync_subscriptions()
                item[1].set()
                continue
            _, qid, future = item
            error = future.exception()
            with self.lock:
                if error is not None:
                    self.stream.on_query_failed(qid)
                    continue
                self._apply(self.stream.on_answer(qid, future.result()))

    def _drain_sub(self) -> bool:
        sub = self._sub
        messages = []
        for _ in range(DRAIN_BATCH):
            if not sub.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                break
            messages.append(sub.recv_multipart(zmq.NOBLOCK))
        stream = self.stream
        with self.lock:
            for frames in messages:
                try:
                    topic, body = frames
                    data = unpack(body)
                    if topic.startswith(BARRIER_PREFIX):
                        if data[0] == BARRIER:
                            sub.unsubscribe(topic)
                            if topic == self._barrier_topic:
                                self._barrier_topic = None
                            token, _, prefix = topic[len(BARRIER_PREFIX):].decode(
                                "utf-8", "surrogateescape").partition("/")
                            self._apply(stream.on_barrier(token, data[1], prefix, data[4]))
                    elif topic == CONTROL_TOPIC:
                        if data[0] == HEARTBEAT:
                            n_last = data[3] if len(data) > 3 else 0
                            self._apply(stream.on_heartbeat(data[1], data[2], n_last))
                    else:
                        seqs = data[4] if len(data) > 4 and isinstance(data[4], dict) else None
                        self._apply(stream.on_event(Event(*data[:4]), seqs))
                except (ValueError, TypeError, IndexError):
                    continue  # not a message we understand
        return bool(messages)

    # ------------------------------------------------------------ callbacks
    def _dispatch(self) -> None:
        while True:
            item = self._deliveries.get()
            if item is None:
                return
            watch, event = item
            if self._unchroot is not None:
                event = event._replace(path=self._unchroot(event.path))
            try:
                watch.callback(event)
            except Exception:  # a callback's bug must not stop the others
                self.log.exception("watch_callback_failed", path=event.path, type=event.type,
                                   zxid=event.zxid)
            with self.lock:
                self.backlog -= 1
                resume = self.stream.paused and self.backlog == self.max_backlog // 2
            if resume:
                self._ring()


# ------------------------------------------------------------------ recipes
def _arity(func: Callable) -> int:
    import inspect

    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 2
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return 3
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])


class _RefreshingWatch(abc.ABC):
    """A persistent watch that re-reads the node on the events it cares about and
    calls ``func`` when what it read differs from the last call (or after a
    COMPACTED signal); ``func`` returning ``False`` ends it. Subclasses say what
    to read and how to call.

    As in kazoo, it starts at once if given ``func``; without, the instance is a
    decorator: ``@DataWatch(client, path)`` (or ``@client.DataWatch(path)``)
    starts it with the decorated function and gives that function back."""

    #: The event type that cannot change what this watch reads.
    ignored_type = ""

    def __init__(self, client: Any, path: str, func: Callable[..., Any] | None = None) -> None:
        self._client = client
        self._path = path
        self._func = func
        self._lock = threading.Lock()
        self._last: Any = object()
        self._stopped = False
        if func is not None:
            self._start()

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator use: start watching with ``func``; return ``func``."""
        if self._func is not None:
            raise ZkactorsError(f"this {type(self).__name__} already has a function")
        self._func = func
        self._start()
        return func

    @property
    def stopped(self) -> bool:
        """True once ``func`` returned False (or, for ChildrenWatch, the node went)."""
        return self._stopped

    def _start(self) -> None:
        self._client.add_watch(self._path, self._on_event)
        self._refresh(None)

    def _on_event(self, event: WatchedEvent) -> None:
        if event.type != self.ignored_type:
            self._refresh(event)

    def _refresh(self, event: WatchedEvent | None) -> None:
        with self._lock:
            if self._stopped:
                return
            read = self._read(event)
            if read is None:
                self._stop()
                return
            seen, call = read
            compacted = event is not None and event.type == EventType.COMPACTED
            if seen == self._last and not compacted:
                return
            self._last = seen
            if call() is False:
                self._stop()

    def _stop(self) -> None:
        self._stopped = True
        self._client.remove_watch(self._path, self._on_event)

    @abc.abstractmethod
    def _read(self, event: WatchedEvent | None) -> tuple[Any, Callable[[], Any]] | None:
        """(what identifies the state read, the call of ``func`` for it), or None
        to stop without calling."""


class DataWatch(_RefreshingWatch):
    """kazoo's ``DataWatch``: ``func(data, stat)`` (or ``func(data, stat, event)``,
    ``event`` None the first time) now and after every change of the node's data
    or existence; ``(None, None)`` while it does not exist, and it goes on
    watching for the node to appear. Returning ``False`` stops the watch.

    Built on a persistent watch, so no change slips between two notifications;
    ``func`` is called only when the node's stat differs from the last call (or
    after a COMPACTED signal).
    """

    ignored_type = EventType.CHILD

    def _read(self, event: WatchedEvent | None) -> tuple[Any, Callable[[], Any]]:
        try:
            data, stat = self._client.get(self._path)
        except NoNodeError:
            data, stat = None, None
        args = (data, stat, event) if _arity(self._func) >= 3 else (data, stat)
        return (None if stat is None else (stat.czxid, stat.mzxid)), lambda: self._func(*args)


class ChildrenWatch(_RefreshingWatch):
    """kazoo's ``ChildrenWatch``: ``func(children)`` (``func(children, event)``
    with ``send_event``, ``event`` None the first time) now and after every
    change of the node's children. Returning ``False`` stops the watch. As in
    kazoo the node must exist: if it does not, or once it is deleted, the watch
    stops without calling ``func``."""

    ignored_type = EventType.CHANGED

    def __init__(self, client: Any, path: str, func: Callable[..., Any] | None = None,
                 send_event: bool = False) -> None:
        self._send_event = send_event
        super().__init__(client, path, func)

    def _read(self, event: WatchedEvent | None) -> tuple[Any, Callable[[], Any]] | None:
        try:
            children = self._client.get_children(self._path)
        except NoNodeError:
            return None
        args = (children, event) if self._send_event else (children,)
        return children, lambda: self._func(*args)
