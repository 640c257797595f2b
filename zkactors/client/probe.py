"""Asking nodes how they are, briefly and all at once: for ``zkctl status``, the
chaos harness and a node's live view of its ensemble.

Each node is asked by its own short-lived :class:`~zkactors.client.Client` on a
thread of its own, all started together, each bounded by its timeout: a dead node
costs that long once, not once per node. Before a client is started, a plain TCP
connect tells a refused endpoint (no process listening) at once, so such a node
is reported down without a client.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ask_all(ask: Callable[[T], R], items: list[T], within: float) -> list[R | None]:
    """``ask(item)`` for every item at once, each on a thread of its own; the
    answers in order, None for one not back ``within`` seconds (a thread still
    asking is left to finish on its own: daemon, and bounded by its own timeouts)."""
    answers: list[R | None] = [None] * len(items)

    def run(i: int, item: T) -> None:
        answers[i] = ask(item)

    threads = [threading.Thread(target=run, args=(i, item), daemon=True)
               for i, item in enumerate(items)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + within
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return answers


def refused(endpoint: str, timeout: float) -> str | None:
    """Why nothing can be listening at ``endpoint`` (``tcp://HOST:PORT``), or None
    if something accepted a connection — or might: a timeout proves nothing."""
    host, _, port = endpoint.removeprefix("tcp://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except TimeoutError:
        return None
    except OSError as err:
        return err.strerror or str(err)


def all_refused(endpoints: list[str], timeout: float) -> str | None:
    """If every endpoint refuses (checked all at once), a one-line reason; else None."""
    reasons: list[str | None] = [None] * len(endpoints)

    def probe(i: int, endpoint: str) -> None:
        reasons[i] = refused(endpoint, timeout)

    threads = [threading.Thread(target=probe, args=(i, endpoint), daemon=True)
               for i, endpoint in enumerate(endpoints)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 1.0)
    if all(reasons):
        return "; ".join(f"{endpoint}: {reason}"
                         for endpoint, reason in zip(endpoints, reasons, strict=True))
    return None


def ask(endpoint: str, timeout: float, digest: bool = False) -> dict[str, Any]:
    """One node's status (with its tree digest if ``digest``), or a ``down`` row
    saying why."""
    from zkactors.client import Client

    started = time.monotonic()
    reason = refused(endpoint, timeout)
    if reason is not None:
        return {"role": "down", "error": reason}
    client = Client(endpoint, request_timeout=timeout, connect_timeout=timeout,
                    name="zkctl-status", session=False)
    try:
        client.start(timeout=timeout)
        client.request_timeout = max(0.05, timeout - (time.monotonic() - started))
        return client.server_status(digest=digest)
    except Exception as err:  # noqa: BLE001 - whatever it is, the node is reported down
        return {"role": "down", "error": f"{type(err).__name__}: {err}"}
    finally:
        client.stop()


