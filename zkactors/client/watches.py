"""Client-side watches: one-shot and persistent watches over the nodes' PUB streams,
with gaps closed by resume so that a persistent watcher sees every event for its
paths exactly once, in zxid order.

What this module owns
---------------------

* :class:`WatchedEvent` / :class:`EventType` — what a callback receives (kazoo's
  names, plus ``zxid`` and ``version``), defined with the stream.
* :class:`~zkactors.client.watchstream.WatchStream` — the **pure** state machine,
  in its own module (no sockets, threads or clock), re-exported here.
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

The protocol itself (the Clone pattern, live and syncing modes, barriers,
``compacted``) is :mod:`zkactors.client.watchstream`'s.
"""

from __future__ import annotations

import abc
import itertools
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from zkactors.client.watch_hub import DRAIN_BATCH, WatchHub
from zkactors.client.watchstream import (
    PENDING,
    EventType,
    Query,
    Step,
    Watch,
    WatchedEvent,
    WatchStream,
)
from zkactors.errors import NoNodeError, ZkactorsError
from zkactors.logsetup import get_logger
from zkactors.protocol import MAX_PATH_BYTES_LIMIT, unpack
from zkactors.wire import (
    BARRIER,
    BARRIER_PREFIX,
    CONTROL_TOPIC,
    HEARTBEAT,
    Event,
    ResumeAnswer,
    validate_path,
)

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
