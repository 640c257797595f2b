"""zkactors client library: ``from zkactors.client import Client``."""

from zkactors.client.agent import ZkFuture
from zkactors.client.api import Client, KazooState, ZnodeStat, parse_hosts

__all__ = ["Client", "KazooState", "ZkFuture", "ZnodeStat", "parse_hosts"]
