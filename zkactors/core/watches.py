"""The watch core: what each applied change publishes, and the recent-event history
that lets a client close any gap in its PUB/SUB stream.

The rule follows ZooKeeper's watches (Programmer's Guide, "ZooKeeper Watches"):
a client sees events in the order of the changes (zxid order), each once. Here
the watches are persistent and recursive, as ZooKeeper 3.6's ``addWatch``
(ZOOKEEPER-1416), and over PUB/SUB a message can be lost. So a gap must always
be detectable (sequence numbers, heartbeats), and the history lets a client
close it, or says plainly that it cannot (``compacted``). (ZooKeeper also
promises the event before a read that shows the change. This client promises
the converse, README "Notified, then read": after an event, reads are at least
that new.)

Pure, like every core: the watch actor's driver hands it the change events the
store applied (:meth:`WatchCore.on_events`), the current time
(:meth:`WatchCore.tick`) and clients' resume queries (:meth:`WatchCore.resume`,
:meth:`WatchCore.count`); the core answers with what to publish or reply. It
never touches a socket, a thread, a clock or a disk, so the simulator can run it.

What this module owns
---------------------

* The **bounded history** of recent events, oldest evicted first, bounded by
  both a count (``max_events``) and an estimated size (``max_bytes``, at
  :data:`EVENT_OVERHEAD_BYTES` plus the UTF-8 path length per event — roughly the
  packed wire size; CPython's heap use per event is a small multiple of it).
  Memory stays bounded however events arrive, even when a single transaction
  (a recursive delete) fires more events than the history can hold.
* ``horizon_zxid``: history is *complete after* the horizon. Every event with
  ``zxid > horizon_zxid`` that this core was given is still in the history, so a
  query ``since >= horizon_zxid`` is answered exactly; anything older may have
  been evicted, so such a query gets an explicit ``compacted`` answer — never
  silence. The horizon only moves forward. Events of one zxid are evicted
  together (once one of them is gone, the rest can never be part of an exact
  answer), so every stored event has ``zxid > horizon_zxid``.
* The **per-prefix sequence numbers** that let a subscriber see a dropped
  message at the next one (below), kept for the prefixes subscribed right now.
* **When to beat**: every ``heartbeat_ms`` while events flow, every
  ``idle_heartbeat_ms`` otherwise (a node with a thousand idle watchers should
  not wake each of them ten times a second).
* **Barriers**: the exact point from which a new subscriber receives its
  prefixes' messages (below).
* The **matching rules** (:func:`matches`), shared with the client library so
  server-side resume and client-side dispatch can never disagree.
* The **wire shapes** below.

Wire shapes (all msgpack-friendly lists)
----------------------------------------

Change event, published with the znode path (UTF-8) as the topic frame::

    topic = path.encode()     body = [type, path, zxid, version, seqs]

``type`` is ``"created"``, ``"deleted"``, ``"changed"`` or ``"child"`` (the
path of a ``"child"`` event is the *parent* whose children changed). Several
events can share one zxid (a create fires ``"created"`` for the node and
``"child"`` for its parent); they are published in the order the tree fired them.

``seqs`` maps each subscribed prefix that the topic starts with (as the SUB
sockets sent it, decoded) to that prefix's sequence number: how many events
matching it this node has published, counted from an arbitrary start. The
driver tells the core of subscriptions (:meth:`WatchCore.on_subscription`, from
an XPUB socket). A subscriber holding prefix ``p`` that gets ``seqs[p] !=
last + 1`` knows the node dropped messages for it (its high-water mark) *before
dispatching the message in hand*, so events stay in zxid order; the heartbeat
check below still catches drops at the end of a burst. A prefix unsubscribed by
everyone loses its counter; subscribed again, it restarts at the count of all
events published so far, which is at least any number it handed out before, so
a stale ``last`` can never make a gap look like continuity.

Heartbeat, published on :data:`CONTROL_TOPIC` at most every ``heartbeat_ms``::

    topic = b"\\x00ctl"       body = ["heartbeat", applied_zxid, last_event_zxid, n_last]

``n_last`` is how many events this node published with zxid ``last_event_zxid``.

Barrier, published once on the topic a subscriber just subscribed, when that
topic is ``BARRIER_PREFIX + token + b"/" + prefix``::

    topic = that topic        body = ["barrier", A, L, n, seq]

``A``, ``L``, ``n`` are a heartbeat's; ``seq`` is ``prefix``'s sequence number
now (None if nobody subscribed it). Only the one subscriber gets it, and since a
SUB sends its subscriptions in order, when it arrives every subscription that
subscriber sent before it is in place at the node: from here on it receives
every message of its prefixes unless the node drops some, which their numbers
(continuing from ``seq``) will show. This is the subscriber's exact "settled"
point, the ZeroMQ Guide's Clone pattern without guessing with timers.

Resume answer (:meth:`ResumeAnswer.to_wire`), one of::

    ["events", upto_zxid, more, [[type, path, zxid, version], ...]]
    ["count", upto_zxid, count]
    ["compacted", horizon_zxid, applied_zxid]

Why the control topic is ``b"\\x00ctl"``: ZeroMQ SUB filtering is a byte-prefix
match on the first frame. Every znode topic starts with ``b"/"``, so no path
subscription (not even ``"/"``, "everything") can ever receive a heartbeat, and
a subscriber with the empty subscription can still tell a heartbeat apart by its
first byte. NUL can never appear in a znode path either.

Guarantees of a heartbeat ``["heartbeat", A, L, n]`` from a node
-------------------------------------------------------------

* It is published on the same PUB socket *after* every event with ``zxid <= A``
  (ZeroMQ keeps per-connection order), so when a client reads it, every event
  ``<= A`` of its subscription has either arrived already or was dropped.
* No event exists with ``L < zxid <= A``: ``L`` is the latest event this node
  published (or, before it published any, the zxid it started from — events
  before a restart are unknown to it, so it must not vouch for them).
* ``n`` events with zxid ``L`` were published (0 before the first event).

How a client detects (and closes) a gap
---------------------------------------

PUB/SUB drops messages for slow subscribers (high-water mark), around
reconnects, and while a new subscription is still on its way to the publisher.
A client only sees events for its own prefixes, so it cannot compare counters
with the node directly. Instead it keeps ``synced``: the zxid through which it
is known to hold every event of its watch set (the ``upto_zxid`` of its last
resume answer, or the zxid of the read that installed the watch), and, for
events received over PUB with ``zxid > synced``, how many there were. On each
heartbeat ``(A, L)`` with ``A > synced``:

1. if ``L <= synced``: nothing at all happened in ``(synced, A]``; set
   ``synced = A``, no query needed (the common case on a quiet cluster);
2. if one of the client's prefixes covers all the others (every message it
   receives matches it), that prefix's sequence numbers have run unbroken since
   a message at or below ``synced``, and the client received all ``n`` messages
   of zxid ``L``: nothing was dropped (a drop is seen at the next message of the
   covering prefix, and the ``n`` messages of ``L`` are the last ones
   published); set ``synced = A``, no query needed (the common case for a
   watcher of one key or one subtree: a thousand such watchers do not ask a
   thousand questions after every burst);
3. else ask ``count(paths, since=synced, until_zxid=A)``: a tiny answer with the
   number of matching events in ``(synced, upto]``. If it equals the number the
   client received in that range, nothing was lost: ``synced = upto``;
4. else (or on ``compacted``, a reconnect or a failover) ask
   ``resume(paths, since=synced)``, page while ``more``, deliver what it had not
   received, and set ``synced`` to the last ``upto_zxid``. A ``compacted`` answer
   means "re-read your nodes, then resume from the read's zxid".

Counting works because a node publishes each event once, in zxid order: what a
client received is a sub-multiset of the true events, equal in size only if
equal. Zxids are the same on every node (they name log entries), so ``synced``
carries over a failover. An answer's ``upto_zxid`` below the client's ``since``
means the node it asked is behind: ask again later or elsewhere. A client that
hears no heartbeat for a few intervals treats the node as gone.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from zkactors.wire import (
    BARRIER,
    BARRIER_PREFIX,
    CONTROL_TOPIC,
    HEARTBEAT,
    Event,
    ResumeAnswer,
    ResumeKind,
    matches,
)

#: Estimated bytes per history entry on top of its UTF-8 path: about the packed
#: size of ``[type, path, zxid, version]``.
EVENT_OVERHEAD_BYTES = 40
DEFAULT_MAX_RESUME_EVENTS = 10_000
#: Beats at the fast interval after the last event: the one that confirms a
#: burst's end promptly, and one more. Every beat wakes every subscriber, so a
#: node with a thousand watchers must not beat fast for long after one change.
BUSY_BEATS = 2


@dataclass(frozen=True, slots=True)
class Publish:
    """One message for the PUB socket: ``[topic, pack(body)]``."""

    topic: bytes
    body: list


def event_size(event: Event) -> int:
    """The history's size estimate for one event."""
    return len(event.path.encode("utf-8")) + EVENT_OVERHEAD_BYTES


def _as_event(event: Event | Sequence[Any]) -> Event:
    # The store actor ships events across inproc as [type, path, zxid, version].
    if isinstance(event, Event):
        return event
    return Event(*event)


class WatchCore:
    """Publishing, heartbeats and the bounded event history of one node."""

    def __init__(self, max_events: int, max_bytes: int, heartbeat_ms: int,
                 start_zxid: int = 0, idle_heartbeat_ms: int | None = None) -> None:
        """``start_zxid`` is the zxid the node's tree starts from (its restored
        snapshot/applied zxid): this core has not seen events up to it, so
        history is complete only after it. Passing 0 after a restart would make
        the core answer "nothing happened" for events it never saw.

        ``idle_heartbeat_ms`` (default: ``heartbeat_ms``) is the beat once
        :data:`BUSY_BEATS` beats have passed with no event published and no
        subscription change.
        """
        if max_events < 0 or max_bytes < 0:
            raise ValueError("max_events and max_bytes must be >= 0")
        if heartbeat_ms <= 0:
            raise ValueError("heartbeat_ms must be > 0")
        idle = heartbeat_ms if idle_heartbeat_ms is None else idle_heartbeat_ms
        if idle < heartbeat_ms:
            raise ValueError("idle_heartbeat_ms must be >= heartbeat_ms")
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.heartbeat_ms = heartbeat_ms
        self.idle_heartbeat_ms = idle
        self._now_ms: int | None = None
        self._busy_until_ms = 0
        #: When the first event since the last beat was published.
        self._first_event_ms: int | None = None
        #: Subscribed prefix -> sequence number of the last event matching it.
        self._seqs: dict[bytes, int] = {}
        #: The distinct lengths of those prefixes: an event's topic is checked
        #: against its own prefixes of these lengths only.
        self._seq_lengths: dict[int, int] = {}
        self.applied_zxid = start_zxid
        self.horizon_zxid = start_zxid
        # Before any event, vouch only for "nothing after start_zxid".
        self.last_event_zxid = start_zxid
        self.last_event_count = 0
        # The oldest zxid an incoming event may have: events at start_zxid were
        # applied before this core existed; later, a zxid may repeat (one
        # transaction's events can span batches) but never go back.
        self._min_zxid = start_zxid + 1
        # Parallel lists from _head on (a list, not a deque, so resume can
        # bisect by zxid); the evicted prefix is trimmed in amortized O(1).
        self._zxids: list[int] = []
        self._events: list[Any] = []  # Event, or None once evicted
        self._head = 0
        self._bytes = 0
        self._last_heartbeat_ms: int | None = None
        self.published = 0
        self.heartbeats = 0
        self.evicted = 0
        self.dropped_out_of_order = 0

    def restart_from(self, start_zxid: int) -> None:
        """The node's tree was replaced by a snapshot at ``start_zxid`` (a lagging
        follower installing the leader's): the events in between were never seen
        here, so the history starts over and older queries get ``compacted``."""
        self._zxids, self._events, self._head, self._bytes = [], [], 0, 0
        self.applied_zxid = self.horizon_zxid = self.last_event_zxid = start_zxid
        self.last_event_count = 0
        self._min_zxid = start_zxid + 1
        # Break every subscribed prefix's run of sequence numbers: a subscriber
        # whose numbers ran on unbroken would take it that it missed nothing and
        # never learn of the events the snapshot skipped. (Found by the
        # simulator's watchers: a live watcher on a follower that installed a
        # snapshot confirmed a position it had no events for.)
        for prefix in self._seqs:
            self._seqs[prefix] += 1

    # -- publishing ---------------------------------------------------------

    def on_events(self, events: Iterable[Event | Sequence[Any]], applied_zxid: int) -> list[Publish]:
        """Record a batch of applied events; return what to publish, in order.

        ``applied_zxid`` is the store's applied zxid after the batch; it may move
        with no events at all (no-op entries, failed transactions).

        An event older than the last one published can only come from a bug
        upstream; it is dropped (and counted) so the stream never goes back in
        time or repeats itself.
        """
        out: list[Publish] = []
        for raw in events:
            event = _as_event(raw)
            zxid = event.zxid
            if zxid < self._min_zxid:
                self.dropped_out_of_order += 1
                continue
            if zxid == self.last_event_zxid:
                self.last_event_count += 1
            else:
                self.last_event_count = 1
            self._min_zxid = self.last_event_zxid = zxid
            topic = event.path.encode("utf-8")
            out.append(Publish(topic, [event.type, event.path, zxid, event.version,
                                       self._next_seqs(topic)]))
            if zxid > self.horizon_zxid:
                self._zxids.append(zxid)
                self._events.append(event)
                self._bytes += event_size(event)
                self._evict()
        self.published += len(out)
        self.applied_zxid = max(self.applied_zxid, applied_zxid, self.last_event_zxid)
        if out:
            self._stay_busy()
        return out

    def _next_seqs(self, topic: bytes) -> dict[str, int]:
        seqs = self._seqs
        if not seqs:
            return {}
        out = {}
        for length in self._seq_lengths:
            if length <= len(topic):
                prefix = topic[:length]
                seq = seqs.get(prefix)
                if seq is not None:
                    seqs[prefix] = seq + 1
                    # Decoded for the wire; a prefix cut inside a multi-byte
                    # character keeps its bytes as surrogates, and the client
                    # decodes its own prefixes the same way.
                    out[prefix.decode("utf-8", "surrogateescape")] = seq + 1
        return out

    def on_subscription(self, topic: bytes, subscribed: bool) -> list[Publish]:
        """A SUB socket subscribed ``topic`` (or the last one unsubscribed it).

        ``/``-prefixed topics, and the empty one (every topic), get a sequence
        counter while anyone holds them; a barrier topic is answered at once.
        """
        if topic.startswith(BARRIER_PREFIX):
            if not subscribed:
                return []
            prefix = topic[len(BARRIER_PREFIX):].partition(b"/")[2]
            return [Publish(topic, [BARRIER, self.applied_zxid, self.last_event_zxid,
                                    self.last_event_count, self._seqs.get(prefix)])]
        if topic[:1] not in (b"/", b""):
            return []
        if subscribed:
            if topic not in self._seqs:
                self._seqs[topic] = self.published
                self._seq_lengths[len(topic)] = self._seq_lengths.get(len(topic), 0) + 1
        elif topic in self._seqs:
            del self._seqs[topic]
            left = self._seq_lengths[len(topic)] - 1
            if left:
                self._seq_lengths[len(topic)] = left
            else:
                del self._seq_lengths[len(topic)]
        return []

    def _stay_busy(self) -> None:
        if self._now_ms is not None:
            self._busy_until_ms = self._now_ms + BUSY_BEATS * self.heartbeat_ms
            if self._first_event_ms is None:
                self._first_event_ms = self._now_ms

    def _live_count(self) -> int:
        return len(self._zxids) - self._head

    def _evict(self) -> None:
        zxids = self._zxids
        while self._head < len(zxids) and (
            len(zxids) - self._head > self.max_events
            or self._bytes > self.max_bytes
            # The rest of an evicted zxid's events can't be part of an exact
            # answer any more, so they go too.
            or zxids[self._head] <= self.horizon_zxid
        ):
            head = self._head
            self.horizon_zxid = max(self.horizon_zxid, zxids[head])
            self._bytes -= event_size(self._events[head])
            self._events[head] = None  # let it go now, not at the next trim
            self._head = head + 1
            self.evicted += 1
        if self._head > 64 and self._head * 2 > len(zxids):
            del zxids[:self._head]
            del self._events[:self._head]
            self._head = 0

    def tick(self, now_ms: int) -> list[Publish]:
        """Return a heartbeat if the interval (see :meth:`interval_ms`) passed
        since the last one.

        The first tick beats at once, so a new subscriber learns the applied
        zxid quickly. If time goes backwards, beat and start counting again:
        a silent node looks dead to clients.
        """
        if self._now_ms is None:
            self._busy_until_ms = now_ms + BUSY_BEATS * self.heartbeat_ms
        self._now_ms = now_ms
        last = self._last_heartbeat_ms
        if last is not None and 0 <= now_ms - last < self.interval_ms():
            return []
        # Not right behind an event either: every subscriber of it is busy being
        # woken by it, and a beat now would wake them all a second time.
        first = self._first_event_ms
        if last is not None and first is not None and 0 <= now_ms - first < self.heartbeat_ms:
            return []
        self._first_event_ms = None
        self._last_heartbeat_ms = now_ms
        self.heartbeats += 1
        return [Publish(CONTROL_TOPIC, [HEARTBEAT, self.applied_zxid, self.last_event_zxid,
                                        self.last_event_count])]

    def interval_ms(self) -> int:
        """The beat now: fast while busy, slow when idle."""
        if self._now_ms is not None and self._now_ms < self._busy_until_ms:
            return self.heartbeat_ms
        return self.idle_heartbeat_ms

    def next_heartbeat_ms(self) -> int | None:
        """When the next heartbeat is due (None: at the first tick)."""
        if self._last_heartbeat_ms is None:
            return None
        due = self._last_heartbeat_ms + self.interval_ms()
        if self._first_event_ms is not None:
            due = max(due, self._first_event_ms + self.heartbeat_ms)
        return due

    # -- resume -------------------------------------------------------------

    def _range(self, since_zxid: int, until_zxid: int | None) -> tuple[int, int, int]:
        """History indexes [lo, hi) of events in (since, limit], and limit."""
        limit = self.applied_zxid if until_zxid is None else min(until_zxid, self.applied_zxid)
        zxids = self._zxids
        lo = bisect_right(zxids, since_zxid, self._head)
        hi = bisect_right(zxids, limit, lo) if limit > since_zxid else lo
        return lo, hi, limit

    def _compacted(self) -> ResumeAnswer:
        return ResumeAnswer(ResumeKind.COMPACTED, self.applied_zxid, horizon_zxid=self.horizon_zxid)

    def resume(self, paths: Sequence[tuple[str, bool]], since_zxid: int,
               max_resume_events: int = DEFAULT_MAX_RESUME_EVENTS,
               until_zxid: int | None = None) -> ResumeAnswer:
        """Events matching any ``(path, recursive)`` watch with ``zxid > since_zxid``.

        Answers through the applied zxid (or ``until_zxid`` if lower). At most
        ``max_resume_events`` events per answer, cut only between zxids — except
        that a single zxid with more matching events than that is sent whole,
        since a page must make progress. Paths are assumed validated (the
        gateway's job).
        """
        if max_resume_events < 1:
            raise ValueError("max_resume_events must be >= 1")
        if since_zxid < self.horizon_zxid:
            return self._compacted()
        lo, hi, limit = self._range(since_zxid, until_zxid)
        events = self._events
        out: list[Event] = []
        more = False
        for i in range(lo, hi):
            event = events[i]
            if not any(matches(p, r, event.path) for p, r in paths):
                continue
            if len(out) >= max_resume_events:
                if event.zxid != out[-1].zxid:
                    more = True
                    break
                # Full, and this event shares the last one's zxid: give back
                # that zxid's events rather than split them.
                k = len(out)
                while k and out[k - 1].zxid == event.zxid:
                    k -= 1
                if k:
                    del out[k:]
                    more = True
                    break
                # One zxid alone exceeds the limit: send it whole.
            out.append(event)
        upto = out[-1].zxid if more else limit
        return ResumeAnswer(ResumeKind.EVENTS, upto, tuple(out), more, len(out))

    def count(self, paths: Sequence[tuple[str, bool]], since_zxid: int,
              until_zxid: int | None = None) -> ResumeAnswer:
        """How many events :meth:`resume` would return (unpaged), without them.

        The cheap gap check: pass the heartbeat's applied zxid as ``until_zxid``
        and compare with what arrived over PUB (see the module docstring).
        """
        if since_zxid < self.horizon_zxid:
            return self._compacted()
        lo, hi, limit = self._range(since_zxid, until_zxid)
        events = self._events
        n = 0
        for i in range(lo, hi):
            path = events[i].path
            if any(matches(p, r, path) for p, r in paths):
                n += 1
        return ResumeAnswer(ResumeKind.COUNT, limit, count=n)

    # -- status -------------------------------------------------------------

    def history(self) -> list[Event]:
        """The events held, oldest first (for tests and debugging)."""
        return self._events[self._head:]

    def stats(self) -> dict[str, int]:
        return {
            "history_events": self._live_count(),
            "history_bytes": self._bytes,
            "horizon_zxid": self.horizon_zxid,
            "applied_zxid": self.applied_zxid,
            "last_event_zxid": self.last_event_zxid,
            "published": self.published,
            "heartbeats": self.heartbeats,
            "subscribed_prefixes": len(self._seqs),
            "evicted": self.evicted,
            "dropped_out_of_order": self.dropped_out_of_order,
        }
