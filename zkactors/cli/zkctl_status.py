"""How ``zkctl`` reaches nodes: ``status``/``leader`` ask every node at once,
briefly; any command first checks that some endpoint accepts a connection.

For ``status`` each node gets its own short-lived :class:`~zkactors.client.Client`
on its own thread, all started together, each with at most :data:`NODE_TIMEOUT_S`
(or the smaller ``--timeout``) to connect and answer: a dead node costs that long
once, not once per node. Every client started here is stopped before its thread
ends.

Before a client is started, a plain TCP connect tells a refused endpoint (no
process listening) at once: such a node is reported down without a client, and a
command whose every endpoint refuses fails in one line without waiting out its
timeout. (A client on endpoints that all refuse would keep re-dialling, with
backoff, until its start timed out.)
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from zkactors.config import load_ensemble

NODE_TIMEOUT_S = 1.0
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


def targets(conf_dir: str, hosts: str | None) -> list[tuple[int | None, str]]:
    """``(node id or None, client endpoint)`` for each node to ask."""
    if hosts:
        return [(None, h.strip()) for h in hosts.split(",") if h.strip()]
    return [(cfg.node_id, cfg.me.client) for cfg in load_ensemble(conf_dir)]


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


def status(conf_dir: str, hosts: str | None, timeout: float,
           digest: bool = False) -> list[dict[str, Any]]:
    """One row per node, in the order of ``--hosts`` or the conf dir: node, role,
    term, commit_index, applied_zxid, lag, clients, endpoint (and ``error`` for a
    node that is down). With ``digest``: ``digest``, the node's tree digest as 16
    hex digits, and ``digest_zxid``, the applied zxid it is of (None and 0 for a
    node that is down) — nodes at the same zxid must show the same digest."""
    per_node = min(timeout, NODE_TIMEOUT_S)
    nodes = targets(conf_dir, hosts)
    # Connect, ask, stop: a client's stop is quick, but is given a little room.
    answers = ask_all(lambda node: ask(node[1], per_node, digest), nodes, per_node + 2.0)
    rows = []
    for (node_id, endpoint), answer in zip(nodes, answers, strict=True):
        if answer is None:
            answer = {"role": "down", "error": f"no answer within {per_node} s"}
        if answer["role"] == "down":
            answer = {"node": node_id, "role": "down", "term": 0, "commit_index": 0,
                      "applied_zxid": 0, "lag": 0, "clients": 0, "endpoint": endpoint,
                      "error": answer["error"]}
            if digest:
                answer.update(digest=None, digest_zxid=0)
        elif digest:
            answer["digest"] = f"{answer['digest']:016x}"
        rows.append(answer)
    return rows


def sessions(conf_dir: str, hosts: str | None, timeout: float) -> list[dict[str, Any]]:
    """One row per open session: id, timeout_ms, ephemerals, and the nodes its
    client is connected to — every node asked at once, the session table taken
    from the node that has applied the most."""
    from zkactors.client import Client

    per_node = min(timeout, NODE_TIMEOUT_S)

    def one(endpoint: str) -> tuple[dict[str, Any], int] | None:
        if refused(endpoint, per_node) is not None:
            return None
        client = Client(endpoint, request_timeout=per_node, connect_timeout=per_node,
                        name="zkctl-sessions", session=False)
        try:
            client.start(timeout=per_node)
            return client.server_sessions(), client.last_zxid
        except Exception:  # noqa: BLE001 - a node that does not answer is left out
            return None
        finally:
            client.stop()

    answers = ask_all(lambda node: one(node[1]), targets(conf_dir, hosts), per_node + 2.0)
    answered = [a for a in answers if a is not None]
    if not answered:
        raise TimeoutError(f"no node answered within {per_node} s")
    table = max(answered, key=lambda a: a[1])[0]["sessions"]
    where: dict[int, list[int]] = {}
    for answer, _ in answered:
        for session_id in answer["connected"]:
            where.setdefault(session_id, []).append(answer["node"])
    return [{"session": session_id, "timeout_ms": timeout_ms, "ephemerals": held,
             "nodes": sorted(where.get(session_id, []))}
            for session_id, timeout_ms, held in table]
