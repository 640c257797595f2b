"""The node's admin HTTP endpoint (``[admin] http``): ``/metrics``, ``/health``
and the live view of the ensemble, ``/ui``.

* ``/metrics``: Prometheus' text format, built by prometheus-client from the
  numbers the actors keep (:mod:`zkactors.runtime.metrics`), only when scraped.
* ``/health``: ``200 serving`` when the node serves reads (a live leader is
  known and the node has caught up with it), ``503`` with the reason otherwise
  (``no live leader known``, ``catching up``, ``an actor died``). JSON with
  ``?format=json`` or an ``Accept: application/json`` header.
* ``/ui``: a page showing every member, leader changes and watch events as they
  happen (zkactors.runtime.live_page); ``/ui/events`` is its stream
  (server-sent events, zkactors.runtime.live), ``/ui/state`` the latest state
  as JSON.

Its own thread and standard-library HTTP server: a scrape never runs on an actor's
thread, so it can never hold up a write. It listens on the address given (loopback
in the shipped configs); it has no authentication, so expose it with care.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, generate_latest

from zkactors.runtime.live import LiveView
from zkactors.runtime.live_page import PAGE
from zkactors.runtime.metrics import NodeCollector

if TYPE_CHECKING:
    from zkactors.runtime.node import Node

#: A live-view stream sends a comment this often when nothing happens, seconds,
#: so that a watcher that went away is noticed (the write fails).
KEEPALIVE_S = 10.0

#: The classic text format, which every Prometheus reads (newer prometheus-client
#: releases announce "version=1.0.0" for the same text; older servers balk at it).
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class AdminServer:
    """Binds at construction (so a busy port fails the node's start), serves on
    a daemon thread after :meth:`start`, and stops with :meth:`close`."""

    def __init__(self, node: Node, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(node))
        config = node.config
        self.live = LiveView({m.id: m.client for m in config.members}, config.node_id)
        handler = type("Handler", (_Handler,), {"node": node, "registry": self.registry,
                                                "live": self.live})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={
            "poll_interval": 0.2}, name=f"zk{node.config.node_id}-admin", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()
        self.live.close()


class _Handler(BaseHTTPRequestHandler):
    node: Node
    registry: CollectorRegistry
    live: LiveView
    server_version = "zkactors-admin"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/metrics":
            self._send(200, METRICS_CONTENT_TYPE, generate_latest(self.registry))
        elif url.path == "/health":
            self._health(parse_qs(url.query))
        elif url.path == "/ui":
            page = PAGE.replace("__NODE__", str(self.node.config.node_id))
            self._send(200, "text/html; charset=utf-8", page.encode())
        elif url.path == "/ui/events":
            self._live_stream()
        elif url.path == "/ui/state":
            self._send(200, "application/json", json.dumps(self.live.state).encode() + b"\n")
        else:
            self._send(404, "text/plain; charset=utf-8",
                       b"not found: try /metrics, /health or /ui\n")

    def _live_stream(self) -> None:
        """Server-sent events until the watcher goes away (or the node stops)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        watcher = self.live.subscribe()
        quiet_since = time.monotonic()
        try:
            while not self.live.closed:
                try:
                    message = watcher.get(timeout=1.0)
                except queue.Empty:
                    if time.monotonic() - quiet_since < KEEPALIVE_S:
                        continue
                    self.wfile.write(b": still here\n\n")
                else:
                    self.wfile.write(b"data: " + json.dumps(message).encode() + b"\n\n")
                self.wfile.flush()
                quiet_since = time.monotonic()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the watcher left
        finally:
            self.live.unsubscribe(watcher)

    def _health(self, query: dict[str, list[str]]) -> None:
        serving, reason = self.node.health()
        code = 200 if serving else 503
        wants_json = "json" in query.get("format", []) or \
            "application/json" in self.headers.get("Accept", "")
        if wants_json:
            body: dict[str, Any] = {"node": self.node.config.node_id, "serving": serving,
                                    "reason": reason}
            self._send(code, "application/json", json.dumps(body).encode() + b"\n")
        else:
            self._send(code, "text/plain; charset=utf-8", f"{reason}\n".encode())

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds would drown the node's own log
