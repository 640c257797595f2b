"""``Client``: the zkactors client library's API object, shaped like kazoo's KazooClient.

It lives in the caller's thread and may be shared between threads. Every call is
an ``*_async`` call returning a :class:`ZkFuture`; the plain call waits on it.
Requests travel to the :class:`~zkactors.client.agent.Agent` thread, which owns
the sockets; connection-state changes reach listeners on a separate dispatch
thread, so a slow listener never stalls the socket loop. Watches (one-shot
``watch=`` on get/exists/get_children, persistent ``add_watch``) are run by a
:class:`~zkactors.client.watches.WatchService`, started with the first watch.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Self

import zmq

from zkactors.client.agent import CONNECTED, LOST, SUSPENDED, Agent, Request, ZkFuture
from zkactors.client.session import RECONNECT_MAX_S
from zkactors.client.transaction import TransactionRequest
from zkactors.client.watches import ChildrenWatch, DataWatch, WatchService
from zkactors.client.watchstream import CHILD_KINDS, DATA_KINDS, Watch, WatchedEvent
from zkactors.errors import (
    BadArgumentsError,
    ConnectionClosedError,
    NodeExistsError,
    NoNodeError,
)
from zkactors.logsetup import get_logger
from zkactors.protocol import (
    FLAG_EPHEMERAL,
    FLAG_MAKEPATH,
    FLAG_SEQUENCE,
    OP_CHILDREN,
    OP_CREATE,
    OP_DELETE,
    OP_END_SESSION,
    OP_EXISTS,
    OP_GET,
    OP_SESSIONS,
    OP_SET,
    OP_STATUS,
    OP_SYNC,
    READ_OPS,
    WRITE_OPS,
    encode_request,
)
from zkactors.retry import Retry
from zkactors.wire import Stat, validate_path

ZnodeStat = Stat


class KazooState:
    """Connection states, with kazoo's names."""

    CONNECTED = CONNECTED
    SUSPENDED = SUSPENDED
    LOST = LOST


def parse_connect_string(hosts: str) -> tuple[list[str], str]:
    """kazoo's connect string -> ``(ZeroMQ endpoints, chroot)``:
    ``"127.0.0.1:2181,tcp://127.0.0.1:2182/app"`` -> ``(["tcp://127.0.0.1:2181",
    "tcp://127.0.0.1:2182"], "/app")``; the chroot is ``""`` when there is none
    (a bare ``/`` is none too, as in ZooKeeper).

    Each item is ``HOST:PORT`` or ``tcp://HOST:PORT``; the chroot, if any, follows
    the last one and is a valid znode path (no trailing ``/``, no ``//``). Anything
    else is refused here, up front, with a one-line ValueError naming it."""
    if not isinstance(hosts, str):
        raise TypeError(f"hosts must be a string like '127.0.0.1:2181', not {hosts!r}")
    items = [item.strip() for item in hosts.split(",")]
    items = [item for item in items if item]
    chroot = ""
    if items:
        scheme = "tcp://" if items[-1].startswith("tcp://") else ""
        rest = items[-1].removeprefix(scheme)
        if "/" in rest and "://" not in rest:
            address, _, path = rest.partition("/")
            items[-1], chroot = scheme + address, _check_chroot("/" + path)
    endpoints = []
    for item in items:
        address = item.removeprefix("tcp://")
        host, _, port = address.rpartition(":")
        if "://" in address or not host or "/" in host or not port.isdigit() \
                or not 0 < int(port) < 65536:
            hint = " (a chroot goes after the last host only)" if "/" in port else ""
            raise ValueError(f"hosts: {item!r} is not HOST:PORT or tcp://HOST:PORT{hint}")
        endpoints.append(f"tcp://{address}")
    if not endpoints:
        raise ValueError(f"hosts: no endpoints in {hosts!r}")
    return endpoints, chroot


def _check_chroot(chroot: str) -> str:
    if chroot == "/":
        return ""
    try:
        return validate_path(chroot)
    except BadArgumentsError as exc:
        raise ValueError(f"hosts: chroot {chroot!r} is not a valid znode path: "
                         f"{exc.message}") from None


def parse_hosts(hosts: str) -> list[str]:
    """``"tcp://127.0.0.1:2181,127.0.0.1:2182"`` -> a list of ZeroMQ endpoints,
    checked as :func:`parse_connect_string` does. For callers that have no use
    for a chroot: one is refused (only :class:`Client` takes it)."""
    endpoints, chroot = parse_connect_string(hosts)
    if chroot:
        raise ValueError(f"hosts: {hosts.strip()!r}: a chroot suffix is not supported here "
                         "(only Client takes one)")
    return endpoints


def _identity(value: Any) -> Any:
    return value


def _stat(value: list) -> Stat:
    return Stat.from_list(value)


def _stat_or_none(value: list | None) -> Stat | None:
    return None if value is None else Stat.from_list(value)


def _data_and_stat(value: list) -> tuple[bytes, Stat]:
    return value[0], Stat.from_list(value[1])


def _none(_: Any) -> None:
    return None


def _copy_outcome(source: ZkFuture, target: ZkFuture) -> None:
    error = source.exception()
    if error is None:
        target.set_result(source.result())
    else:
        target.set_exception(error)


_client_ids = itertools.count(1)


class Client:
    """A connection to a zkactors ensemble.

    ``hosts``: comma-separated endpoints (``tcp://`` may be omitted), optionally
    followed by a chroot as in kazoo (``"h1:2181,h2:2181/app"``): every path is
    then relative to ``/app`` (which must exist: ``ensure_path("/")`` creates it);
    ``timeout``: session timeout in seconds — suspended longer than this, the
    connection is LOST and waiting requests fail; ``request_timeout``: the longest
    any single request may take; ``connect_timeout``: how long a silent node is
    given before the client moves to the next endpoint; ``watch_backlog``: watch
    callbacks queued at most before the client stops taking events and catches up
    by resume instead (see :mod:`zkactors.client.watches`); ``reconnect_max``: the
    longest pause between rounds of reconnect attempts when every node is away
    (see :mod:`zkactors.client.session`); ``command_retry``: the policy of
    :meth:`retry`, a :class:`~zkactors.retry.Retry` or its keyword arguments
    (kazoo's default: retry without limit, pauses up to 60 s).
    """

    def __init__(self, hosts: str = "tcp://127.0.0.1:2181", timeout: float = 10.0,
                 request_timeout: float = 10.0, connect_timeout: float = 1.5,
                 name: str | None = None, watch_backlog: int = 10_000,
                 reconnect_max: float = RECONNECT_MAX_S,
                 command_retry: Retry | dict[str, Any] | None = None,
                 session: bool = True) -> None:
        self.hosts, self.chroot = parse_connect_string(hosts)
        #: Whether this client opens a replicated session (as every ZooKeeper
        #: client does): what its ephemeral nodes belong to. Tools that only look
        #: (zkctl) pass False and cost the ensemble no session writes.
        self.session = session
        self._retry = command_retry if isinstance(command_retry, Retry) \
            else Retry(**{"max_tries": -1, **(command_retry or {})})
        self.timeout = timeout
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        if not reconnect_max > 0:
            raise ValueError(f"reconnect_max must be more than 0 s, not {reconnect_max!r}")
        self.reconnect_max = reconnect_max
        self.name = name or f"{os.getpid()}-{next(_client_ids)}"
        self.log = get_logger(actor="client", client=self.name)
        self.state = LOST
        self._listeners: list[Callable[[str], Any]] = []
        self._connected = threading.Event()
        self._agent: Agent | None = None
        self._doorbell: zmq.Socket | None = None
        self._doorbell_lock = threading.Lock()
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._dispatcher: threading.Thread | None = None
        self.watch_backlog = watch_backlog
        self._watches = WatchService(self, max_backlog=watch_backlog)

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 15.0) -> None:
        """Connect; raise ``TimeoutError`` if no node answers within ``timeout``."""
        if self._agent is not None:
            return
        context = zmq.Context.instance()
        if self._watches.stream.watches or self._watches._stopping.is_set():
            self._watches = WatchService(self, max_backlog=self.watch_backlog)
        self._dispatcher = threading.Thread(target=self._dispatch, daemon=True,
                                            name=f"zkactors-client-events-{self.name}")
        self._dispatcher.start()
        self._agent = Agent(self.hosts, context, self._requests, self._on_state,
                            self.connect_timeout, self.timeout, self.name,
                            reconnect_max=self.reconnect_max, open_session=self.session)
        self._agent.on_attach = self._ring_watches
        self._doorbell = context.socket(zmq.PAIR)
        self._doorbell.linger = 0
        self._doorbell.connect(self._agent.pipe_address)
        self._agent.start()
        if not self._connected.wait(timeout):
            refused = self._agent.hello_error
            self.stop()
            if refused is not None:
                raise refused
            raise TimeoutError(f"no zkactors node answered at {','.join(self.hosts)} "
                               f"within {timeout} s")

    def stop(self) -> None:
        """End the session (its ephemeral nodes go at once) and disconnect;
        requests still waiting fail with ``ConnectionClosedError``."""
        if self._agent is None:
            return
        if self._agent.session.session_id is not None and self.connected:
            try:
                # Briefly: a node that cannot commit it now lets the session
                # expire instead, which ends it just the same, later.
                self._call(OP_END_SESSION, [], _none, None).result(
                    min(2.0, self.request_timeout))
            except Exception as err:  # noqa: BLE001 - stopping regardless
                self.log.info("session_end_not_confirmed", error=repr(err))
        self._watches.stop()  # before the agent: it sends through it
        agent, self._agent = self._agent, None
        agent.stopping.set()
        with self._doorbell_lock, contextlib.suppress(zmq.Again):
            self._doorbell.send(b"", zmq.NOBLOCK)  # an idle agent sleeps long
        agent.join(5.0)
        with self._doorbell_lock:
            self._doorbell.close(linger=0)
            self._doorbell = None
        self._on_state(LOST)
        self._events.put(None)
        if self._dispatcher is not threading.current_thread():
            self._dispatcher.join(5.0)

    close = stop

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        return self.state == CONNECTED

    @property
    def last_zxid(self) -> int:
        """The newest zxid this client has seen in any reply or watch event."""
        seen = self._agent.last_zxid if self._agent else 0
        return max(seen, self._watches.dispatched_zxid)

    @property
    def node_id(self) -> int | None:
        """The node currently serving this client."""
        return self._agent.node_id if self._agent else None

    def _ring_watches(self) -> None:
        # On the agent thread: the watch receiver follows the agent's connection.
        self._watches._ring()

    # ------------------------------------------------------------ listeners
    def add_listener(self, listener: Callable[[str], Any]) -> None:
        """Call ``listener(state)`` on every connection state change (dispatch thread)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[str], Any]) -> None:
        self._listeners.remove(listener)

    def _on_state(self, state: str) -> None:
        # Runs on the agent thread: record and hand over, never call user code here.
        if state == self.state:
            return
        self.state = state
        if state == CONNECTED:
            self._connected.set()
        else:
            self._connected.clear()
        self._events.put(state)

    def _dispatch(self) -> None:
        while True:
            state = self._events.get()
            if state is None:
                return
            for listener in list(self._listeners):
                try:
                    listener(state)
                except Exception:  # a listener's bug must not stop the others
                    self.log.exception("listener_failed", state=state)

    # ------------------------------------------------------------- chroot
    def _full(self, path: str, trailing: bool = False) -> str:
        """The node's path for the caller's ``path``: under the chroot, if any
        (``"/"`` is the chroot itself; with ``trailing``, as a sequential create's
        prefix, ``"/"`` stays a prefix). Anything not starting with ``/`` goes as
        it is, for the node to refuse."""
        chroot = self.chroot
        if not chroot or not isinstance(path, str) or not path.startswith("/"):
            return path
        return chroot if path == "/" and not trailing else chroot + path

    def unchroot(self, path: str) -> str:
        """A node's path as this client's caller sees it: without the chroot."""
        chroot = self.chroot
        if not chroot or not isinstance(path, str):
            return path
        if path == chroot:
            return "/"
        return path[len(chroot):] if path.startswith(chroot + "/") else path

    # ------------------------------------------------------------- requests
    def _call(self, op: str, args: list, transform: Callable[[Any], Any],
              path: str | None, min_zxid: int = 0) -> ZkFuture:
        agent = self._agent
        if agent is None:
            raise ConnectionClosedError("client is not started")
        rid = next(agent.rids)
        if op in READ_OPS:
            # Never read older than what this client has seen (on any node), watch
            # events included: notified of a change, a read shows it.
            seen = max(agent.last_zxid, self._watches.dispatched_zxid, min_zxid)
            if seen:
                args = [*args, seen]
        future = ZkFuture()
        # A write is packed by the agent when it sends it, with its dedup tag.
        packed = b"" if op in WRITE_OPS else encode_request(rid, op, *args)
        request = Request(rid, op, packed, future, transform,
                          time.monotonic() + self.request_timeout, path, args=args)
        self._requests.put(request)
        with self._doorbell_lock:
            if self._doorbell is None:
                raise ConnectionClosedError("client is not started")
            # One pending ring wakes the agent as well as many; and an agent that
            # died must not block the caller here (its future times out instead).
            with contextlib.suppress(zmq.Again):
                self._doorbell.send(b"", zmq.NOBLOCK)
        return future

    def _wait(self, future: ZkFuture) -> Any:
        # The agent fails every request by its deadline; the margin covers a dead agent.
        return future.result(self.request_timeout + 5.0)

    def create_async(self, path: str, value: bytes = b"", makepath: bool = False,
                     sequence: bool = False, ephemeral: bool = False) -> ZkFuture:
        _check_bytes(value)
        if ephemeral and not self.session:
            raise BadArgumentsError("this client has no session (Client(session=False)): "
                                    "it cannot own an ephemeral node", path)
        flags = (FLAG_MAKEPATH if makepath else 0) | (FLAG_SEQUENCE if sequence else 0) \
            | (FLAG_EPHEMERAL if ephemeral else 0)
        return self._call(OP_CREATE, [self._full(path, trailing=sequence), value, flags],
                          self.unchroot if self.chroot else _identity, path)

    def create(self, path: str, value: bytes = b"", makepath: bool = False,
               sequence: bool = False, ephemeral: bool = False) -> str:
        """Create a znode; return its path (with the suffix, if ``sequence``).
        ``ephemeral``: owned by this client's session, deleted when it ends
        (closed by :meth:`stop`, or expired); it may not have children."""
        return self._wait(self.create_async(path, value, makepath, sequence, ephemeral))

    # kazoo's recipe accessors: client.Lock(path, ...), client.Counter(path), …
    def Lock(self, path: str, identifier: str | None = None) -> Any:
        from zkactors.recipe import Lock

        return Lock(self, path, identifier)

    def ReadLock(self, path: str, identifier: str | None = None) -> Any:
        from zkactors.recipe import ReadLock

        return ReadLock(self, path, identifier)

    def WriteLock(self, path: str, identifier: str | None = None) -> Any:
        from zkactors.recipe import WriteLock

        return WriteLock(self, path, identifier)

    def Semaphore(self, path: str, identifier: str | None = None,
                  max_leases: int = 1) -> Any:
        from zkactors.recipe import Semaphore

        return Semaphore(self, path, identifier, max_leases)

    def Election(self, path: str, identifier: str | None = None) -> Any:
        from zkactors.recipe import Election

        return Election(self, path, identifier)

    def Barrier(self, path: str) -> Any:
        from zkactors.recipe import Barrier

        return Barrier(self, path)

    def DoubleBarrier(self, path: str, num_clients: int,
                      identifier: str | None = None) -> Any:
        from zkactors.recipe import DoubleBarrier

        return DoubleBarrier(self, path, num_clients, identifier)

    def Queue(self, path: str) -> Any:
        from zkactors.recipe import Queue

        return Queue(self, path)

    def LockingQueue(self, path: str) -> Any:
        from zkactors.recipe import LockingQueue

        return LockingQueue(self, path)

    def Counter(self, path: str, default: float = 0) -> Any:
        from zkactors.recipe import Counter

        return Counter(self, path, default)

    def Party(self, path: str, identifier: str | None = None) -> Any:
        from zkactors.recipe import Party

        return Party(self, path, identifier)

    def ShallowParty(self, path: str, identifier: str | None = None) -> Any:
        from zkactors.recipe import ShallowParty

        return ShallowParty(self, path, identifier)

    def transaction(self) -> TransactionRequest:
        """Several writes and checks, committed as one (see
        :mod:`zkactors.client.transaction`)."""
        return TransactionRequest(self)

    @property
    def client_id(self) -> tuple[int, bytes] | None:
        """kazoo's ``(session id, password)`` once the session is open, else
        None. (No password: a session is resumed by its id alone.)"""
        agent = self._agent
        session_id = agent.session.session_id if agent is not None else None
        return None if session_id is None else (session_id, b"")

    def get_async(self, path: str, min_zxid: int = 0, linearizable: bool = False) -> ZkFuture:
        path, shown = self._full(path), path
        if not linearizable:
            return self._call(OP_GET, [path], _data_and_stat, shown, min_zxid)
        # A sync first (the leader's read index, applied here), then a read that
        # may not be older than what the sync reached — on whichever node answers.
        outer = ZkFuture()

        def synced(inner: ZkFuture) -> None:
            error = inner.exception()
            if error is not None:
                outer.set_exception(error)
                return
            read = self._call(OP_GET, [path], _data_and_stat, shown,
                              max(min_zxid, inner.result()))
            read.add_done_callback(lambda f: _copy_outcome(f, outer))

        self._call(OP_SYNC, [path], _identity, shown).add_done_callback(synced)
        return outer

    def get(self, path: str, watch: Callable[[WatchedEvent], Any] | None = None,
            linearizable: bool = False) -> tuple[bytes, Stat]:
        """Return ``(value, stat)``; ``NoNodeError`` if it does not exist (and then
        no watch is left). ``watch(event)`` is called once, on the next change or
        delete of the node (ZooKeeper's data watch).

        By default the connected node answers: perhaps a little behind the leader,
        never behind what this client has seen. ``linearizable=True`` reflects
        every write acknowledged to anyone before the call: it costs a sync (a
        round of the leader's heartbeats) first."""
        if linearizable:
            if watch is not None:
                raise ValueError("a linearizable get cannot set a watch; sync() first")
            return self._wait(self.get_async(path, linearizable=True))
        if watch is None:
            return self._wait(self.get_async(path))
        return self._watches.install(
            Watch(self._full(path), False, watch, DATA_KINDS, once=True),
            lambda floor: self.get_async(path, floor),
            # mzxid is exact: no change or delete of the node lies between it and the read.
            lambda result, _: result[1].mzxid, self.request_timeout + 5.0)

    def set_async(self, path: str, value: bytes, version: int = -1) -> ZkFuture:
        _check_bytes(value)
        return self._call(OP_SET, [self._full(path), value, version], _stat, path)

    def set(self, path: str, value: bytes, version: int = -1) -> Stat:
        """Replace the value (only at ``version`` unless it is -1); return the new stat."""
        return self._wait(self.set_async(path, value, version))

    def delete_async(self, path: str, version: int = -1, recursive: bool = False) -> ZkFuture:
        future = self._call(OP_DELETE, [self._full(path), version, bool(recursive)], _none, path)
        if not recursive:
            return future
        outer = ZkFuture()

        def done(inner: ZkFuture) -> None:
            error = inner.exception()
            if isinstance(error, NoNodeError):
                outer.set_result(True)  # kazoo: nothing to delete is fine
            else:
                _copy_outcome(inner, outer)

        future.add_done_callback(done)
        return outer

    def delete(self, path: str, version: int = -1, recursive: bool = False) -> bool | None:
        """Delete a znode (``NoNodeError`` if it does not exist); with ``recursive``
        its whole subtree, atomically — and, as kazoo's does, return True at once
        if there is no such node."""
        return self._wait(self.delete_async(path, version, recursive))

    def exists_async(self, path: str, min_zxid: int = 0) -> ZkFuture:
        return self._call(OP_EXISTS, [self._full(path)], _stat_or_none, path, min_zxid)

    def exists(self, path: str, watch: Callable[[WatchedEvent], Any] | None = None
               ) -> Stat | None:
        """The node's stat, or None. ``watch(event)`` is called once, on the node's
        next create, change or delete (set whether the node exists or not)."""
        if watch is None:
            return self._wait(self.exists_async(path))
        return self._watches.install(
            Watch(self._full(path), False, watch, DATA_KINDS, once=True),
            lambda floor: self.exists_async(path, floor),
            lambda stat, zxid: zxid if stat is None else stat.mzxid,
            self.request_timeout + 5.0)

    def get_children_async(self, path: str, min_zxid: int = 0) -> ZkFuture:
        return self._call(OP_CHILDREN, [self._full(path)], _identity, path, min_zxid)

    def get_children(self, path: str, watch: Callable[[WatchedEvent], Any] | None = None
                     ) -> list[str]:
        """Child names, sorted. ``watch(event)`` is called once, on the next child
        create or delete (CHILD) or the node's own delete (DELETED); a child's data
        change does not fire it. ``NoNodeError`` (and no watch) if it is absent."""
        if watch is None:
            return self._wait(self.get_children_async(path))
        return self._watches.install(
            Watch(self._full(path), False, watch, CHILD_KINDS, once=True),
            lambda floor: self.get_children_async(path, floor),
            lambda _, zxid: zxid, self.request_timeout + 5.0)

    # ------------------------------------------------------------- watches
    def add_watch(self, path: str, callback: Callable[[WatchedEvent], Any],
                  recursive: bool = False, since: int | None = None) -> Watch:
        """A persistent watch: ``callback(event)`` for every change of ``path`` (its
        data, existence and children) — with ``recursive``, of every node under it
        too — exactly once each, in zxid order, until :meth:`remove_watch`.

        It sees every change after it is established (when this returns), or every
        change after zxid ``since`` if given (older than the nodes' history: a
        COMPACTED event first). Returns the watch's handle.
        """
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        watch = Watch(self._full(path), bool(recursive), callback, None, once=False,
                      start=since)
        if since is not None:
            self._watches.install(watch)
        else:
            # Any read establishes the watch at the zxid the node answers with.
            self._watches.install(watch, lambda floor: self.exists_async(path, floor),
                                  lambda _, zxid: zxid, self.request_timeout + 5.0)
        return watch

    def remove_watch(self, path: str, callback: Callable[[WatchedEvent], Any] | Watch
                     ) -> bool:
        """Remove the persistent watch(es) on ``path`` with this callback (or this
        handle); True if there was one."""
        if isinstance(callback, Watch):
            found = [callback] if callback.path == self._full(path) \
                and self._watches.holds(callback) else []
        else:
            found = self._watches.find(self._full(path), callback)
        for watch in found:
            self._watches.remove(watch)
        return bool(found)

    def DataWatch(self, path: str, func: Callable[..., Any] | None = None
                  ) -> DataWatch:
        """kazoo's ``client.DataWatch``: ``func(data, stat)`` (or ``(data, stat,
        event)``) now and on every change; also a decorator,
        ``@client.DataWatch("/p")``. See :class:`~zkactors.client.watches.DataWatch`."""
        return DataWatch(self, path, func)

    def ChildrenWatch(self, path: str, func: Callable[..., Any] | None = None,
                      send_event: bool = False) -> ChildrenWatch:
        """kazoo's ``client.ChildrenWatch``: ``func(children)`` now and on every
        change of the children; also a decorator. See
        :class:`~zkactors.client.watches.ChildrenWatch`."""
        return ChildrenWatch(self, path, func, send_event=send_event)

    def watch_stats(self) -> dict[str, Any]:
        """The watch machinery's counters: mode, synced zxid, resumes, compactions…"""
        return self._watches.stats()

    def sync_async(self, path: str = "/") -> ZkFuture:
        return self._call(OP_SYNC, [self._full(path)], lambda _: path, path)

    def sync(self, path: str = "/") -> str:
        """Returns (with the path, as kazoo does) once the connected node has applied
        every write committed anywhere before the call, and every request this
        client sent before it: ZooKeeper's sync, done with Raft's ReadIndex (the
        leader confirms it still leads with a round of acknowledgements). A read
        sent after it sees at least that state."""
        return self._wait(self.sync_async(path))

    def ensure_path_async(self, path: str) -> ZkFuture:
        outer = ZkFuture()

        def done(inner: ZkFuture) -> None:
            error = inner.exception()
            if error is None or isinstance(error, NodeExistsError):
                outer.set_result(True)
            else:
                outer.set_exception(error)

        self.create_async(path, b"", makepath=True).add_done_callback(done)
        return outer

    def ensure_path(self, path: str) -> bool:
        """Create ``path`` and any missing ancestors; fine if it already exists."""
        return self._wait(self.ensure_path_async(path))

    def retry(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``func(*args, **kwargs)``, run again on ``ConnectionLoss``, timeouts and
        session expiry as ``command_retry`` says (kazoo's ``client.retry``); see
        :mod:`zkactors.retry`."""
        return self._retry.copy()(func, *args, **kwargs)

    def server_status(self, digest: bool = False) -> dict[str, Any]:
        """The connected node's status (role, term, commit index, applied zxid, …);
        with ``digest``, also ``digest`` (the tree's, see
        :meth:`zkactors.core.tree.Tree.digest`) and ``digest_zxid`` (the applied
        zxid it is of). The digest walks the node's whole tree: ask for it when
        you compare nodes, not when you poll."""
        return self._wait(self._call(OP_STATUS, [True] if digest else [], _identity, None))

    def server_sessions(self) -> dict[str, Any]:
        """The open sessions as the connected node has applied them (``[id,
        timeout_ms, ephemerals]`` each) and the ids of clients connected to it."""
        return self._wait(self._call(OP_SESSIONS, [], _identity, None))


def _check_bytes(value: Any) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"value must be bytes, not {type(value).__name__}")
