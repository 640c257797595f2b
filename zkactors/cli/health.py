"""``zkctl health``: every node's ``/health`` (its ``[admin] http`` endpoint),
asked all at once, each for at most a second.

A node without an admin endpoint, or one that does not answer, is reported as
not serving, with the reason; the command succeeds only if every node serves.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from zkactors.cli.zkctl_status import ask_all
from zkactors.config import NodeConfig

#: The longest a node's endpoint is given to answer.
NODE_TIMEOUT_S = 1.0


def ask(config: NodeConfig, timeout: float) -> dict[str, Any]:
    row: dict[str, Any] = {"node": config.node_id, "serving": False, "reason": "",
                           "url": ""}
    if not config.admin.http:
        row["reason"] = f"no [admin] http in {config.path}"
        return row
    row["url"] = url = f"http://{config.admin.http}/health"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as err:  # 503: not serving, and why
        try:
            answer = json.loads(err.read())
        except ValueError:
            answer = {"serving": False, "reason": f"HTTP {err.code}"}
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        row["reason"] = f"no answer: {reason}"
        return row
    if not isinstance(answer, dict):
        row["reason"] = "not a zkactors health answer"
        return row
    row["serving"] = answer.get("serving") is True
    row["reason"] = str(answer.get("reason", ""))
    return row


def health(configs: list[NodeConfig], timeout: float) -> list[dict[str, Any]]:
    """One row per node (node, serving, reason, url), in node order."""
    per_node = min(timeout, NODE_TIMEOUT_S)
    rows = ask_all(lambda config: ask(config, per_node), configs, per_node + 1.0)
    return [row if row is not None else
            {"node": config.node_id, "serving": False, "url": f"http://{config.admin.http}",
             "reason": f"no answer within {per_node} s"}
            for row, config in zip(rows, configs, strict=True)]


def health_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'node':>4}  {'serving':<7}  {'reason':<32} url"]
    for row in rows:
        lines.append(f"{row['node']:>4}  {'yes' if row['serving'] else 'no':<7}  "
                     f"{row['reason']:<32} {row['url']}")
    return lines
