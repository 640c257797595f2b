"""zkactors client library: ``from zkactors.client import Client``.

The names below load on first use (PEP 562), so that importing one pure
submodule — :mod:`zkactors.client.watchstream`, which the simulator runs — does
not import ZeroMQ and the client's threads with it.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "ZkFuture": "zkactors.client.agent",
    "Client": "zkactors.client.api",
    "KazooState": "zkactors.client.api",
    "ZnodeStat": "zkactors.client.api",
    "parse_connect_string": "zkactors.client.api",
    "parse_hosts": "zkactors.client.api",
    "ChildrenWatch": "zkactors.client.watches",
    "DataWatch": "zkactors.client.watches",
    "EventType": "zkactors.client.watchstream",
    "WatchedEvent": "zkactors.client.watchstream",
}

__all__ = ["ChildrenWatch", "Client", "DataWatch", "EventType", "KazooState",
           "WatchedEvent", "ZkFuture", "ZnodeStat", "parse_connect_string", "parse_hosts"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'zkactors.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
