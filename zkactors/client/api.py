"""``Client``: the zkactors client library's API object, shaped like kazoo's KazooClient.

It lives in the caller's thread and may be shared between threads. Every call is
an ``*_async`` call returning a :class:`ZkFuture`; the plain call waits on it.
Requests travel to the :class:`~zkactors.client.agent.Agent` thread, which owns
the sockets; connection-state changes reach listeners on a separate dispatch
thread, so a slow listener never stalls the socket loop.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Self

import zmq

from zkactors.client.agent import CONNECTED, LOST, SUSPENDED, Agent, Request, ZkFuture
from zkactors.core.tree import Stat
from zkactors.errors import ConnectionClosedError, NodeExistsError
from zkactors.logsetup import get_logger
from zkactors.protocol import (
    FLAG_MAKEPATH,
    FLAG_SEQUENCE,
    OP_CHILDREN,
    OP_CREATE,
    OP_DELETE,
    OP_EXISTS,
    OP_GET,
    OP_SET,
    OP_STATUS,
    OP_SYNC,
    READ_OPS,
    WRITE_OPS,
    encode_request,
)

ZnodeStat = Stat


class KazooState:
    """Connection states, with kazoo's names."""

    CONNECTED = CONNECTED
    SUSPENDED = SUSPENDED
    LOST = LOST


def parse_hosts(hosts: str) -> list[str]:
    """``"tcp://127.0.0.1:2181,127.0.0.1:2182"`` -> a list of ZeroMQ endpoints."""
    endpoints = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            continue
        endpoints.append(item if "://" in item else f"tcp://{item}")
    if not endpoints:
        raise ValueError(f"no endpoints in hosts={hosts!r}")
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


_client_ids = itertools.count(1)


class Client:
    """A connection to a zkactors ensemble.

    ``hosts``: comma-separated endpoints (``tcp://`` may be omitted);
    ``timeout``: session timeout in seconds — suspended longer than this, the
    connection is LOST and waiting requests fail; ``request_timeout``: the longest
    any single request may take; ``connect_timeout``: how long a silent node is
    given before the client moves to the next endpoint.
    """

    def __init__(self, hosts: str = "tcp://127.0.0.1:2181", timeout: float = 10.0,
                 request_timeout: float = 10.0, connect_timeout: float = 1.5,
                 name: str | None = None) -> None:
        self.hosts = parse_hosts(hosts)
        self.timeout = timeout
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
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

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 15.0) -> None:
        """Connect; raise ``TimeoutError`` if no node answers within ``timeout``."""
        if self._agent is not None:
            return
        context = zmq.Context.instance()
        self._dispatcher = threading.Thread(target=self._dispatch, daemon=True,
                                            name=f"zkactors-client-events-{self.name}")
        self._dispatcher.start()
        self._agent = Agent(self.hosts, context, self._requests, self._on_state,
                            self.connect_timeout, self.timeout, self.name)
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
        """Disconnect; requests still waiting fail with ``ConnectionClosedError``."""
        agent, self._agent = self._agent, None
        if agent is None:
            return
        agent.stopping.set()
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
        """The newest zxid this client has seen in any reply."""
        return self._agent.last_zxid if self._agent else 0

    @property
    def node_id(self) -> int | None:
        """The node currently serving this client."""
        return self._agent.node_id if self._agent else None

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

    # ------------------------------------------------------------- requests
    def _call(self, op: str, args: list, transform: Callable[[Any], Any],
              path: str | None) -> ZkFuture:
        agent = self._agent
        if agent is None:
            raise ConnectionClosedError("client is not started")
        rid = next(agent.rids)
        if op in READ_OPS and agent.last_zxid:
            # Never read older than what this client has seen (on any node).
            args = [*args, agent.last_zxid]
        future = ZkFuture()
        # A write is packed by the agent when it sends it, with its dedup tag.
        packed = b"" if op in WRITE_OPS else encode_request(rid, op, *args)
        request = Request(rid, op, packed, future, transform,
                          time.monotonic() + self.request_timeout, path, args=args)
        self._requests.put(request)
        with self._doorbell_lock:
            if self._doorbell is None:
                raise ConnectionClosedError("client is not started")
            self._doorbell.send(b"")
        return future

    def _wait(self, future: ZkFuture) -> Any:
        # The agent fails every request by its deadline; the margin covers a dead agent.
        return future.result(self.request_timeout + 5.0)

    def create_async(self, path: str, value: bytes = b"", makepath: bool = False,
                     sequence: bool = False) -> ZkFuture:
        _check_bytes(value)
        flags = (FLAG_MAKEPATH if makepath else 0) | (FLAG_SEQUENCE if sequence else 0)
        return self._call(OP_CREATE, [path, value, flags], _identity, path)

    def create(self, path: str, value: bytes = b"", makepath: bool = False,
               sequence: bool = False) -> str:
        """Create a znode; return its path (with the suffix, if ``sequence``)."""
        return self._wait(self.create_async(path, value, makepath, sequence))

    def get_async(self, path: str) -> ZkFuture:
        return self._call(OP_GET, [path], _data_and_stat, path)

    def get(self, path: str) -> tuple[bytes, Stat]:
        """Return ``(value, stat)``; ``NoNodeError`` if it does not exist."""
        return self._wait(self.get_async(path))

    def set_async(self, path: str, value: bytes, version: int = -1) -> ZkFuture:
        _check_bytes(value)
        return self._call(OP_SET, [path, value, version], _stat, path)

    def set(self, path: str, value: bytes, version: int = -1) -> Stat:
        """Replace the value (only at ``version`` unless it is -1); return the new stat."""
        return self._wait(self.set_async(path, value, version))

    def delete_async(self, path: str, version: int = -1, recursive: bool = False) -> ZkFuture:
        return self._call(OP_DELETE, [path, version, bool(recursive)], _none, path)

    def delete(self, path: str, version: int = -1, recursive: bool = False) -> None:
        """Delete a znode; with ``recursive`` its whole subtree, atomically."""
        return self._wait(self.delete_async(path, version, recursive))

    def exists_async(self, path: str) -> ZkFuture:
        return self._call(OP_EXISTS, [path], _stat_or_none, path)

    def exists(self, path: str) -> Stat | None:
        return self._wait(self.exists_async(path))

    def get_children_async(self, path: str) -> ZkFuture:
        return self._call(OP_CHILDREN, [path], _identity, path)

    def get_children(self, path: str) -> list[str]:
        """Child names, sorted."""
        return self._wait(self.get_children_async(path))

    def sync_async(self, path: str = "/") -> ZkFuture:
        return self._call(OP_SYNC, [path], lambda _: path, path)

    def sync(self, path: str = "/") -> str:
        """Returns (with the path, as kazoo does) once the connected node has applied
        every request this client sent before it. It does not yet wait for the node
        to catch up with the leader: a follower may still be behind other clients'
        writes (ZooKeeper's sync does that; it is planned with issue #4)."""
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

    def server_status(self) -> dict[str, Any]:
        """The connected node's status (role, term, commit index, applied zxid, …)."""
        return self._wait(self._call(OP_STATUS, [], _identity, None))


def _check_bytes(value: Any) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"value must be bytes, not {type(value).__name__}")
