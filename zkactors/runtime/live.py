"""The live view of the ensemble that a node's admin endpoint serves (``/ui``).

While somebody watches (an open ``/ui/events`` stream), a poller thread asks
every member for its status a few times a second — as ``zkctl status`` does,
each member its own short-lived client — and sends each watcher:

* ``state``: every member's role, term, commit and applied indexes, and how far
  it lags the leader's commit;
* ``change``: a leader change, with what the poller saw that explains it (the
  old leader stopped answering, or is answering as a follower);
* ``watch``: each change of the tree, from a client watching ``/`` recursively
  (it follows failover like any client).

The poller stops a few seconds after the last watcher leaves, and nothing here
runs on an actor's thread: watching costs the node a few status requests and
one watch, never a write's latency. What it shows is what the members answer,
so a member that is down, paused or cut off shows as ``down``.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from typing import Any

from zkactors.client.probe import ask, ask_all

#: How often members are asked, seconds.
POLL_S = 0.25
#: Each member's answer must come within this, seconds (a paused one: down).
ASK_TIMEOUT_S = 0.5
#: The poller stops this long after the last watcher left, seconds.
IDLE_STOP_S = 5.0
#: Leader changes and watch events kept for a watcher that arrives later.
KEEP_CHANGES = 50
KEEP_EVENTS = 50
#: Messages waiting for a slow watcher; beyond this it misses states, not changes.
WATCHER_QUEUE = 256


class LiveView:
    """One per admin endpoint. ``members``: node id -> client endpoint."""

    def __init__(self, members: dict[int, str], node_id: int,
                 idle_stop_s: float = IDLE_STOP_S) -> None:
        self.members = dict(sorted(members.items()))
        self.node_id = node_id
        self.idle_stop_s = idle_stop_s
        self._lock = threading.Lock()
        self._watchers: set[queue.Queue] = set()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._idle_since: float | None = None
        self.state: dict[str, Any] = {"members": [], "at": 0.0}
        self.changes: deque[dict[str, Any]] = deque(maxlen=KEEP_CHANGES)
        self.events: deque[dict[str, Any]] = deque(maxlen=KEEP_EVENTS)
        self._leader: tuple[int, int] | None = None  # (node, term) last seen leading
        self._seq = itertools.count(1)
        self._closed = False

    # ------------------------------------------------------------- watchers
    def subscribe(self) -> queue.Queue:
        """A queue of messages for one watcher, starting with what is known."""
        watcher: queue.Queue = queue.Queue(WATCHER_QUEUE)
        with self._lock:
            for change in self.changes:
                watcher.put_nowait({"type": "change", **change})
            for event in self.events:
                watcher.put_nowait({"type": "watch", **event})
            if self.state["members"]:
                watcher.put_nowait({"type": "state", **self.state})
            self._watchers.add(watcher)
            self._idle_since = None
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name=f"zk{self.node_id}-live")
                self._thread.start()
        return watcher

    def unsubscribe(self, watcher: queue.Queue) -> None:
        with self._lock:
            self._watchers.discard(watcher)
            if not self._watchers:
                self._idle_since = time.monotonic()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def polling(self) -> bool:
        """Whether the poller thread runs (someone watches, or did lately)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def close(self) -> None:
        self._closed = True
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(ASK_TIMEOUT_S + 5.0)

    def _publish(self, message: dict[str, Any]) -> None:
        with self._lock:
            watchers = list(self._watchers)
        for watcher in watchers:
            try:
                watcher.put_nowait(message)
            except queue.Full:
                pass  # a watcher that stopped reading; its stream ends on its own

    # ------------------------------------------------------------- polling
    def _run(self) -> None:
        watching = None
        try:
            while not self._stop.is_set():
                with self._lock:
                    idle = self._idle_since
                if idle is not None and time.monotonic() - idle > self.idle_stop_s:
                    return
                started = time.monotonic()
                self._poll()
                if watching is None:
                    watching = self._watch_tree()
                self._stop.wait(max(0.0, POLL_S - (time.monotonic() - started)))
        finally:
            if watching is not None:
                watching.stop()

    def _poll(self) -> None:
        ids = list(self.members)
        rows = ask_all(lambda m: ask(self.members[m], ASK_TIMEOUT_S), ids, ASK_TIMEOUT_S + 2.0)
        members = [_row(m, row) for m, row in zip(ids, rows, strict=True)]
        leaders = [m for m in members if m["role"] == "leader"]
        # The freshest leader: a deposed one may not know it yet.
        leader = max(leaders, key=lambda m: m["term"]) if leaders else None
        commit = leader["commit_index"] if leader else max(
            (m["commit_index"] for m in members), default=0)
        for m in members:
            m["behind"] = max(0, commit - m["applied_index"]) if m["role"] != "down" else None
        state = {"at": time.time(), "members": members,
                 "leader": leader["node"] if leader else None, "commit_index": commit}
        change = self._leader_change(leader, members)
        with self._lock:
            self.state = state
            if change is not None:
                self.changes.append(change)
        if change is not None:
            self._publish({"type": "change", **change})
        self._publish({"type": "state", **state})

    def _leader_change(self, leader: dict[str, Any] | None,
                       members: list[dict[str, Any]]) -> dict[str, Any] | None:
        now = (leader["node"], leader["term"]) if leader else None
        before = self._leader
        if now is None or now == before:
            return None
        self._leader = now
        if before is None:
            reason = "the leader when this view started"
        else:
            old = next((m for m in members if m["node"] == before[0]), None)
            if old is None or old["role"] == "down":
                reason = f"n{before[0]}, the leader of term {before[1]}, stopped answering"
            else:
                reason = (f"n{before[0]}, the leader of term {before[1]}, now answers as "
                          f"{old['role']} in term {old['term']}")
        return {"seq": next(self._seq), "at": time.time(), "leader": now[0], "term": now[1],
                "text": f"n{now[0]} leads term {now[1]}", "reason": reason}

    def _watch_tree(self) -> Any:
        """A client watching the whole tree; None if no member answers yet."""
        from zkactors.client import Client

        client = Client(",".join(self.members.values()), name=f"live-view-{self.node_id}",
                        session=False, connect_timeout=ASK_TIMEOUT_S)
        try:
            client.start(timeout=ASK_TIMEOUT_S * 2)
            client.add_watch("/", self._on_event, recursive=True)
        except Exception:  # noqa: BLE001 - nobody to watch yet: try on the next poll
            client.stop()
            return None
        return client

    def _on_event(self, event: Any) -> None:
        record = {"seq": next(self._seq), "at": time.time(), "kind": event.type,
                  "path": event.path, "zxid": event.zxid}
        with self._lock:
            self.events.append(record)
        self._publish({"type": "watch", **record})


def _row(node: int, answer: dict[str, Any] | None) -> dict[str, Any]:
    """What the page shows of one member's status answer."""
    if answer is None or answer.get("role", "down") == "down":
        error = (answer or {}).get("error", "no answer")
        return {"node": node, "role": "down", "term": 0, "commit_index": 0,
                "applied_index": 0, "error": error}
    return {"node": node, "role": answer.get("role", "?"), "term": answer.get("term", 0),
            "leader": answer.get("leader", 0),
            "commit_index": answer.get("commit_index", 0),
            "applied_index": answer.get("applied_index", 0),
            "serving_reads": answer.get("serving_reads", False),
            "clients": answer.get("clients", 0)}
