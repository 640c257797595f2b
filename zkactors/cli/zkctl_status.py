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

from typing import Any

from zkactors.client.probe import all_refused, ask, ask_all, refused  # noqa: F401 - re-exported
from zkactors.config import load_ensemble

NODE_TIMEOUT_S = 1.0


def targets(conf_dir: str, hosts: str | None) -> list[tuple[int | None, str]]:
    """``(node id or None, client endpoint)`` for each node to ask."""
    if hosts:
        return [(None, h.strip()) for h in hosts.split(",") if h.strip()]
    return [(cfg.node_id, cfg.me.client) for cfg in load_ensemble(conf_dir)]


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
