"""The live view's poller (zkactors.runtime.live) without a node: members that
refuse connections show as down, and polling runs only while someone watches."""

from __future__ import annotations

import socket
import time

import pytest

from zkactors.runtime.live import LiveView

pytestmark = pytest.mark.timeout(60)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _next(watcher, kind: str, within: float = 10.0) -> dict:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        message = watcher.get(timeout=max(0.01, deadline - time.monotonic()))
        if message["type"] == kind:
            return message
    raise AssertionError(f"no {kind} message within {within} s")


def test_members_nobody_answers_for_are_down_and_polling_stops_when_nobody_watches():
    members = {1: f"tcp://127.0.0.1:{_closed_port()}", 2: f"tcp://127.0.0.1:{_closed_port()}"}
    view = LiveView(members, node_id=1, idle_stop_s=0.2)
    try:
        assert not view.polling
        watcher = view.subscribe()
        state = _next(watcher, "state")
        assert [(m["node"], m["role"]) for m in state["members"]] == [(1, "down"), (2, "down")]
        assert state["leader"] is None
        assert view.polling
        view.unsubscribe(watcher)
        view._thread.join(10)  # the poller ends on its own once nobody watches
        assert not view.polling
        # A new watcher starts it again, and first gets what is known.
        again = view.subscribe()
        assert _next(again, "state")["members"][0]["role"] == "down"
        view.unsubscribe(again)
    finally:
        view.close()
