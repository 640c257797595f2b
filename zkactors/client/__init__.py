"""zkactors client library: ``from zkactors.client import Client``."""

from zkactors.client.agent import ZkFuture
from zkactors.client.api import (
           Client,
           KazooState,
           ZnodeStat,
           parse_connect_string,
           parse_hosts,
)
from zkactors.client.watches import ChildrenWatch, DataWatch, EventType, WatchedEvent

__all__ = ["ChildrenWatch", "Client", "DataWatch", "EventType", "KazooState",
           "WatchedEvent", "ZkFuture", "ZnodeStat", "parse_connect_string", "parse_hosts"]
