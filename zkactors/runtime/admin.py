"""The node's admin HTTP endpoint (``[admin] http``): ``/metrics`` and ``/health``.

* ``/metrics``: Prometheus' text format, built by prometheus-client from the
  numbers the actors keep (:mod:`zkactors.runtime.metrics`), only when scraped.
* ``/health``: ``200 serving`` when the node serves reads (a live leader is
  known and the node has caught up with it), ``503`` with the reason otherwise
  (``no live leader known``, ``catching up``, ``an actor died``). JSON with
  ``?format=json`` or an ``Accept: application/json`` header.

Its own thread and standard-library HTTP server: a scrape never runs on an actor's
thread, so it can never hold up a write. It listens on the address given (loopback
in the shipped configs); it has no authentication, so expose it with care.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry, generate_latest

from zkactors.runtime.metrics import NodeCollector

if TYPE_CHECKING:
    from zkactors.runtime.node import Node

#: The classic text format, which every Prometheus reads (newer prometheus-client
#: releases announce "version=1.0.0" for the same text; older servers balk at it).
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class AdminServer:
    """Binds at construction (so a busy port fails the node's start), serves on
    a daemon thread after :meth:`start`, and stops with :meth:`close`."""

    def __init__(self, node: Node, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(NodeCollector(node))
        handler = type("Handler", (_Handler,), {"node": node, "registry": self.registry})
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


class _Handler(BaseHTTPRequestHandler):
    node: Node
    registry: CollectorRegistry
    server_version = "zkactors-admin"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/metrics":
            self._send(200, METRICS_CONTENT_TYPE, generate_latest(self.registry))
        elif url.path == "/health":
            self._health(parse_qs(url.query))
        else:
            self._send(404, "text/plain; charset=utf-8",
                       b"not found: try /metrics or /health\n")

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
