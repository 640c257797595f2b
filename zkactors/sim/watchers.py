"""Watches in the simulator: every node's watch core, and the client's watch
protocol following it through crashes and failovers.

Every node runs :class:`~zkactors.core.watches.WatchCore` as its watch actor does
(zkactors/runtime/watch.py): given the events its store fired, ticked for
heartbeats, started over when a snapshot replaces its tree. A
:class:`SimWatcher` runs the shipped client's pure
:class:`~zkactors.client.watchstream.WatchStream` behind a shell that does what
:class:`~zkactors.client.watches.WatchService` does over ZeroMQ:

* it attaches to one node: subscribes its prefixes, then a one-off barrier
  topic, which the node answers once every subscription before it is in place;
* it carries out the stream's steps: ``events`` and ``evcount`` queries go to
  the node it is attached to, answered by that node's watch core;
* when it has heard nothing (not even a heartbeat) for ``silence_ms``, it
  attaches to the next node that is up — as the client library does when its
  node dies — and the stream resumes from ``synced``: zxids name log entries,
  the same on every node, so the position carries over.

Messages between a watcher and a node take the simulated network's delay, in
order per connection; a node that crashes takes its queue with it. (PUB/SUB
drops for slow subscribers are not simulated: the sequence-number and count
checks are unit-tested in tests/unit/test_client_watches.py.)

:class:`WatchChecker` holds both sides to the promise (README, "Watches"): every
node fires the same events for the same zxid — they applied the same entry to
the same tree — and a watcher is handed exactly the events of its watch, each
once, in zxid order, missing none but those a ``COMPACTED`` notice owns up to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zkactors.client.watchstream import (
    LIVE,
    PENDING,
    EventType,
    Step,
    Watch,
    WatchedEvent,
    WatchStream,
)
from zkactors.core.watches import WatchCore
from zkactors.protocol import OP_EVENTS, zxid_index, zxid_term
from zkactors.sim.invariants import InvariantViolation, LivenessFailure
from zkactors.wire import BARRIER_PREFIX, CONTROL_TOPIC, Event, matches

if TYPE_CHECKING:
    from zkactors.sim.cluster import SimNode, Simulation

#: The nodes' watch beat: fast while events flow, slower when idle (simulated ms;
#: the shipped defaults are 100 and 1,000 ms with a 3 s silence, against a slower
#: election than the simulator's).
HEARTBEAT_MS = 50
IDLE_HEARTBEAT_MS = 200
#: A watcher that hears nothing from its node this long attaches to another.
SILENCE_MS = 3 * IDLE_HEARTBEAT_MS
#: The history each node keeps (events, bytes).
HISTORY_EVENTS = 10_000
HISTORY_BYTES = 1 << 20

_WIRE = {EventType.CREATED: "created", EventType.DELETED: "deleted",
         EventType.CHANGED: "changed", EventType.CHILD: "child"}


def zxid_text(zxid: int) -> str:
    """A zxid as the trace writes log positions: ``index@term``."""
    return f"{zxid_index(zxid)}@{zxid_term(zxid)}"


def new_watch_core(start_zxid: int) -> WatchCore:
    return WatchCore(HISTORY_EVENTS, HISTORY_BYTES, HEARTBEAT_MS, start_zxid=start_zxid,
                     idle_heartbeat_ms=IDLE_HEARTBEAT_MS)


class SimWatcher:
    """One client's recursive watch on ``path``, and the connection that feeds it."""

    def __init__(self, sim: Simulation, name: str, path: str, node_id: int) -> None:
        self.sim = sim
        self.name = name
        self.path = path
        self.stream = WatchStream()
        #: What the watch's callback was handed, in order.
        self.delivered: list[WatchedEvent] = []
        self.watch = Watch(path, True, self.delivered.append)
        self.node = 0
        #: Bumped at each attach: messages of an older connection are void.
        self.conn = 0
        self.last_heard = sim.now
        self._barriers = 0
        #: Topics this connection sent, and those in place at the node.
        self._subscribed: set[bytes] = set()
        self.at_node: set[bytes] = set()
        self._barrier_topic: bytes | None = None
        self._arrive_at = 0  # FIFO: nothing overtakes what was sent before it
        self.attaches = 0
        self.attach(node_id)
        node = sim.nodes[node_id]
        # As Client.add_watch: register it pending, read, activate it at the read's
        # zxid (here the read answers at once: the node's state now).
        self._carry_out(self.stream.add(self.watch, node.store.applied_zxid))
        self._carry_out(self.stream.activate(self.watch.wid, node.store.applied_zxid))
        self.started_at = node.store.applied_zxid

    # ----------------------------------------------------------- connection
    def attach(self, node_id: int) -> None:
        self.node, self.conn = node_id, self.conn + 1
        self.attaches += 1
        self.last_heard = self.sim.now
        self._subscribed, self.at_node, self._barrier_topic = set(), set(), None
        self.stream.on_reconnect()
        self._to_node(("subscribe", CONTROL_TOPIC))
        self._sync_subscriptions()

    def _sync_subscriptions(self, barrier_wanted: bool = False) -> None:
        """Subscribe what the stream wants, then — if anything new was subscribed,
        or the stream waits for one — a fresh barrier after it."""
        wanted = {p.encode() for p in self.stream.prefixes} - self._subscribed
        for topic in sorted(wanted):
            self._to_node(("subscribe", topic))
        self._subscribed |= wanted
        if (wanted or barrier_wanted or self.stream.awaiting == PENDING) and self.stream.watches:
            if self._barrier_topic is not None:
                self._to_node(("unsubscribe", self._barrier_topic))
            self._barriers += 1
            token = f"{self.name}.{self._barriers}"
            cover = self.stream.cover_prefix()
            self.stream.expect_barrier(token)
            self._barrier_topic = BARRIER_PREFIX + token.encode() + b"/" + cover.encode()
            self._to_node(("subscribe", self._barrier_topic))
            self.note(f"subscribes {', '.join(sorted(self.stream.prefixes))}, then barrier "
                      f"{token}")

    def _to_node(self, message: tuple) -> None:
        sim = self.sim
        node = sim.nodes[self.node]
        sim.schedule_watch(self._delay(), "to_watch",
                           (node.id, node.incarnation, self, self.conn, message))

    def _delay(self) -> int:
        sim = self.sim
        at = max(self._arrive_at, sim.now + sim.watch_rng.randint(1, sim.faults.max_delay_ms))
        self._arrive_at = at
        return at - sim.now

    def from_node(self, conn: int, kind: str, body: Any) -> None:
        """A message from the attached node: a PUB message ``(topic, body)`` or a
        query's answer ``(qid, answer)``, as WatchService reads them."""
        if conn != self.conn:
            return
        self.last_heard = self.sim.now
        stream = self.stream
        was_live = stream.mode == LIVE
        if kind == "answer":
            qid, answer = body
            self.note(f"gets {_answer_text(answer)}")
            step = stream.on_answer(qid, answer)
        elif body[0] == CONTROL_TOPIC:
            _, applied, last_event, n_last = body[1]
            synced = stream.synced
            step = stream.on_heartbeat(applied, last_event, n_last)
            if stream.synced != synced and last_event > (synced or 0):
                self.note(f"heartbeat at {zxid_text(applied)}: every event through it is "
                          f"in hand (synced {zxid_text(stream.synced)})")
        elif body[0].startswith(BARRIER_PREFIX):
            token, _, prefix = body[0][len(BARRIER_PREFIX):].partition(b"/")
            _, applied, _, _, seq = body[1]
            self.note(f"barrier {token.decode()} answered: its subscriptions are in place "
                      f"at {zxid_text(applied)}")
            step = stream.on_barrier(token.decode(), applied, prefix.decode(), seq)
        else:
            type_, path, zxid, version, seqs = body[1]
            step = stream.on_event(Event(type_, path, zxid, version), seqs)
        self._carry_out(step)
        if stream.mode == LIVE and not was_live:
            self.note(f"is live: events through {zxid_text(stream.synced)} are all in hand")

    def check_silence(self) -> None:
        sim = self.sim
        if sim.now - self.last_heard < SILENCE_MS:
            return
        up = [n for n in sim.members if sim.nodes[n].up]
        if not up:
            self.last_heard = sim.now  # nobody to go to: try again later
            return
        later = [n for n in up if n > self.node]
        target = (later or up)[0]
        self.note(f"heard nothing from n{self.node} for {sim.now - self.last_heard} ms: "
                  f"attaches to n{target}")
        self.attach(target)

    # ---------------------------------------------------------------- steps
    def _carry_out(self, step: Step) -> None:
        for watch, event in step.deliveries:
            self.note(f"is handed {event.type} {event.path} at {zxid_text(event.zxid)}")
            watch.callback(event)
        for query in step.queries:
            since = zxid_text(query.since)
            what = (f"asks for the events since {since}" if query.op == OP_EVENTS else
                    f"asks how many events in ({since}, {zxid_text(query.until)}]")
            self.note(what)
            self._to_node(("query", query))
        if step.subscribe or step.barrier:
            self._sync_subscriptions(barrier_wanted=step.barrier)

    def note(self, text: str) -> None:
        trace = self.sim.trace
        if trace and trace.clients:  # (watchers are clients: shown with --clients)
            trace.note(self.sim.now, self.node, f"watcher {self.name} {text}")


def _answer_text(answer: Any) -> str:
    if answer.compacted:
        return f"compacted: history starts after {zxid_text(answer.horizon_zxid)}"
    if answer.kind == "count":
        return f"a count of {answer.count} through {zxid_text(answer.upto_zxid)}"
    shown = ", ".join(f"{e.type} {e.path} at {zxid_text(e.zxid)}" for e in answer.events[:4])
    more = f", … {len(answer.events) - 4} more" if len(answer.events) > 4 else ""
    return (f"{len(answer.events)} event{'s' if len(answer.events) != 1 else ''} through "
            f"{zxid_text(answer.upto_zxid)}{': ' if shown else ''}{shown}{more}")


class Watchers:
    """The simulation's side of the watches: the nodes' watch actors, the
    watchers, and the checks."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.watchers: list[SimWatcher] = []
        #: zxid -> the events the first node to apply it fired; every other must match.
        self.fired_at: dict[int, tuple[Event, ...]] = {}

    def add(self, name: str, path: str, node_id: int) -> SimWatcher:
        watcher = SimWatcher(self.sim, name, path, node_id)
        self.watchers.append(watcher)
        return watcher

    # ------------------------------------------------------- the watch actor
    def started(self, node: SimNode, events: list[Event], applied_zxid: int) -> None:
        """A node (re)started: its new process knows no subscriptions (a watcher
        attached to it hears nothing until it attaches again), and its watch
        history refills from the log it replayed."""
        for watcher in self.watchers:
            if watcher.node == node.id:
                watcher.at_node.clear()
        self._check_same_events(node, events)
        node.watch.on_events(events, applied_zxid)

    def applied(self, node: SimNode, events: list[Event], applied_zxid: int) -> None:
        """The store applied a batch: check its events, publish them."""
        self._check_same_events(node, events)
        self.publish(node, node.watch.on_events(events, applied_zxid))

    def tick(self, node: SimNode, now: int) -> None:
        self.publish(node, node.watch.tick(now))
        # Any node's tick will do for the watchers' clocks: theirs may be down.
        for watcher in self.watchers:
            watcher.check_silence()

    def publish(self, node: SimNode, publishes: list) -> None:
        if not publishes or not self.watchers:
            return
        for watcher in self.watchers:
            if watcher.node != node.id:
                continue
            for item in publishes:
                # A SUB filters by byte prefix of the topic, as ZeroMQ does.
                if any(item.topic.startswith(t) for t in watcher.at_node):
                    self.sim.schedule_watch(watcher._delay(), "to_watcher",
                                            (watcher, watcher.conn, "pub",
                                             (item.topic, item.body)))

    def on_to_watch(self, node: SimNode, watcher: SimWatcher, conn: int, message: tuple) -> None:
        """A watcher's subscription or query reaches the node's watch actor."""
        if conn != watcher.conn:
            return
        if message[0] == "unsubscribe":
            watcher.at_node.discard(message[1])
            node.watch.on_subscription(message[1], False)
            return
        if message[0] == "subscribe":
            topic = message[1]
            watcher.at_node.add(topic)
            # (A barrier is answered at once, on its topic: only this watcher's.)
            for item in node.watch.on_subscription(topic, True):
                self.sim.schedule_watch(watcher._delay(), "to_watcher",
                                        (watcher, conn, "pub", (item.topic, item.body)))
            return
        query = message[1]
        if query.op == OP_EVENTS:
            answer = node.watch.resume(list(query.entries), query.since)
        else:
            answer = node.watch.count(list(query.entries), query.since, query.until)
        self.sim.schedule_watch(watcher._delay(), "to_watcher",
                                (watcher, conn, "answer", (query.qid, answer)))

    # ------------------------------------------------------------ the checks
    def _check_same_events(self, node: SimNode, events: list[Event]) -> None:
        by_zxid: dict[int, list[Event]] = {}
        for event in events:
            by_zxid.setdefault(event.zxid, []).append(event)
        for zxid, fired in by_zxid.items():
            first = self.fired_at.setdefault(zxid, tuple(fired))
            if first != tuple(fired):
                raise InvariantViolation(
                    f"seed {self.sim.seed} at t={self.sim.now} ms: node {node.id} fired "
                    f"{fired} at zxid {zxid_text(zxid)}, another node fired {list(first)}")

    def check(self) -> None:
        """Each watcher was handed its watch's events once each, in zxid order,
        nothing else, and every one through the position it confirmed — except
        those at or below the zxid of a ``COMPACTED`` notice it was handed
        ("events up to here may be missing; re-read")."""
        for watcher in self.watchers:
            expected = self.expected(watcher.path, watcher.started_at)
            position = {event: i for i, event in enumerate(expected)}
            handed, compacted, last = set(), 0, -1
            for event in watcher.delivered:
                if event.type == EventType.COMPACTED:
                    compacted = max(compacted, event.zxid)
                    continue
                key = (_WIRE.get(event.type, event.type), event.path, event.zxid, event.version)
                i = position.get(key)
                if i is None or i <= last:
                    what = ("twice" if key in handed else "out of zxid order" if i is not None
                            else "though no node fired it")
                    raise InvariantViolation(
                        f"seed {self.sim.seed} at t={self.sim.now} ms: watcher {watcher.name} "
                        f"(on {watcher.path}) was handed {key} {what}")
                handed.add(key)
                last = i
            synced = watcher.stream.synced or 0
            for key in expected:
                if key[2] > synced:
                    break
                if key not in handed and key[2] > compacted:
                    raise InvariantViolation(
                        f"seed {self.sim.seed} at t={self.sim.now} ms: watcher {watcher.name} "
                        f"(on {watcher.path}) confirmed {zxid_text(synced)} but was never "
                        f"handed {key}, and no COMPACTED notice covers it")

    def caught_up(self) -> None:
        """After the settling, healed and calm: each watcher holds every event
        through what every node applied (else it lost its way)."""
        applied = min(node.store.applied_zxid for node in self.sim.nodes.values())
        for watcher in self.watchers:
            if (watcher.stream.synced or 0) < applied:
                raise LivenessFailure(
                    f"seed {self.sim.seed}: watcher {watcher.name} (on {watcher.path}, "
                    f"attached to n{watcher.node}) is synced through "
                    f"{zxid_text(watcher.stream.synced or 0)}, every node applied "
                    f"{zxid_text(applied)}: {watcher.stream.stats()}")

    def stats(self) -> dict[str, int]:
        """What the watchers went through, for the run's figures."""
        streams = [w.stream for w in self.watchers]
        return {"watch_events": sum(len(w.delivered) for w in self.watchers),
                "watch_attaches": sum(w.attaches for w in self.watchers),
                "watch_resumes": sum(s.resumes for s in streams),
                "watch_compacted": sum(s.compactions for s in streams)}

    def expected(self, path: str, start: int) -> list[tuple]:
        """The events of a recursive watch on ``path`` that the nodes fired after ``start``."""
        return [(e.type, e.path, e.zxid, e.version)
                for zxid in sorted(z for z in self.fired_at if z > start)
                for e in self.fired_at[zxid] if matches(path, True, e.path)]
