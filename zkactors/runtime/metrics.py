"""The node's metrics: what the actors count, and how it becomes Prometheus text.

Recording must never slow the write path, so nothing here takes a lock or
allocates per request. Each number has one writer, the actor thread that owns
it: the gateway counts requests and bytes in plain dicts and lists
(:class:`RequestMetrics`, timed once per batch, not per request), the WAL times
its fsyncs (:class:`Histogram`), and the log, store, election and watch actors
publish a small dict of their state on their own ticks (``actor.metrics``,
replaced whole, never mutated). The admin endpoint's thread reads all of these
only when scraped, through :class:`NodeCollector`, using copies that are atomic
under the GIL (``dict(d)``, ``list(l)``), and builds prometheus-client's metric
families from them. A scrape thus sees each number as of at most one tick ago.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from zkactors.errors import Code
from zkactors.stats import Histogram

if TYPE_CHECKING:  # (the node imports this module, not the other way round)
    from zkactors.runtime.node import Node

#: Request latency buckets, seconds: sub-millisecond reads to multi-second stalls.
REQUEST_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Requests timed at most at once; past it, the oldest timings are forgotten
#: (their requests still count once answered, untimed).
MAX_TIMED = 1_000_000


_OUTCOMES = {int(code): "ok" if code == Code.OK else code.name.lower() for code in Code}


class RequestMetrics:
    """Client requests by operation and outcome, their latency inside the node
    (arrival at the gateway to the reply leaving it), and client bytes in and
    out. Written by the gateway's thread only."""

    def __init__(self) -> None:
        #: (op, outcome) -> requests answered.
        self.answered: dict[tuple[str, str], int] = {}
        self.latency: dict[str, Histogram] = {}
        #: (ident, rid) -> (op, when it arrived, perf_counter seconds).
        self._started: dict[tuple[bytes, int], tuple[str, float]] = {}
        self.bytes_in = 0
        self.bytes_out = 0

    def started(self, ident: bytes, rid: int, op: str, now: float) -> None:
        started = self._started
        if len(started) >= MAX_TIMED:
            started.clear()
        started[(ident, rid)] = (op, now)

    def answered_one(self, ident: bytes, rid: int, code: int, now: float) -> None:
        timing = self._started.pop((ident, rid), None)
        if timing is None:
            return  # answered by the gateway itself (hello, ping, a refusal)
        op, began = timing
        key = (op, _OUTCOMES.get(code, str(code)))
        answered = self.answered
        answered[key] = answered.get(key, 0) + 1
        histogram = self.latency.get(op)
        if histogram is None:
            histogram = self.latency[op] = Histogram(REQUEST_BUCKETS)
        histogram.observe(now - began)


class NodeCollector(Collector):
    """Builds the metric families of one node from its actors, when scraped."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Any]:
        node = self.node
        actors = {actor.actor_name: actor for actor in node.actors}
        gateway = actors.get("gateway")
        yield from self._requests(gateway)
        yield from self._replication(actors.get("log"), actors.get("store"), gateway)
        yield from self._storage(node)
        yield from self._elections(actors.get("election"), gateway)
        yield from self._watches(actors.get("watch"))
        serving = GaugeMetricFamily("zkactors_serving",
                                    "1 when this node serves reads (see /health)")
        serving.add_metric([], 1.0 if node.health()[0] else 0.0)
        yield serving

    # ------------------------------------------------------------- families
    def _requests(self, gateway: Any) -> Iterator[Any]:
        requests = CounterMetricFamily(
            "zkactors_requests", "Client requests answered, by operation and outcome",
            labels=["op", "outcome"])
        latency = HistogramMetricFamily(
            "zkactors_request_duration_seconds",
            "Time from a request's arrival at the gateway to its reply leaving",
            labels=["op"])
        bytes_in = CounterMetricFamily("zkactors_client_received_bytes",
                                       "Bytes of client request frames received")
        bytes_out = CounterMetricFamily("zkactors_client_sent_bytes",
                                        "Bytes of reply frames sent to clients")
        connections = GaugeMetricFamily("zkactors_client_sessions",
                                        "Client sessions (connections that said hello)")
        problems = CounterMetricFamily(
            "zkactors_client_problems",
            "Client requests refused or frames dropped at the gateway, by kind",
            labels=["kind"])
        metrics = getattr(gateway, "request_metrics", None)
        if metrics is not None:
            for (op, outcome), count in dict(metrics.answered).items():
                requests.add_metric([op, outcome], count)
            for op, histogram in dict(metrics.latency).items():
                latency.add_metric([op], histogram.cumulative(), histogram.total)
            bytes_in.add_metric([], metrics.bytes_in)
            bytes_out.add_metric([], metrics.bytes_out)
        if gateway is not None:
            connections.add_metric([], len(gateway.core.sessions))
            for kind, count in dict(gateway.core.counters).items():
                problems.add_metric([kind], count)
        yield from (requests, latency, bytes_in, bytes_out, connections, problems)

    def _replication(self, log: Any, store: Any, gateway: Any) -> Iterator[Any]:
        state = getattr(log, "metrics", None) or {}
        applied = getattr(store, "metrics", None) or {}
        indexes = GaugeMetricFamily("zkactors_log_index",
                                    "Raft log positions on this node", labels=["kind"])
        for kind in ("last", "persisted", "commit"):
            if kind in state:
                indexes.add_metric([kind], state[kind])
        if "applied" in applied:
            indexes.add_metric(["applied"], applied["applied"])
        if "snapshot" in state:
            indexes.add_metric(["snapshot"], state["snapshot"])
        term = GaugeMetricFamily("zkactors_term", "The current term (epoch)")
        role = GaugeMetricFamily("zkactors_role", "1 for this node's current role",
                                 labels=["role"])
        if "term" in state:
            term.add_metric([], state["term"])
            for name in ("leader", "candidate", "follower"):
                role.add_metric([name], 1.0 if state["role"] == name else 0.0)
        lag = GaugeMetricFamily(
            "zkactors_follower_lag_entries",
            "On the leader: entries each follower is known to be missing", labels=["peer"])
        for peer, behind in sorted(state.get("lag", {}).items()):
            lag.add_metric([str(peer)], behind)
        znodes = GaugeMetricFamily("zkactors_znodes", "Znodes in this node's tree")
        if "znodes" in applied:
            znodes.add_metric([], applied["znodes"])
        yield from (indexes, term, role, lag, znodes)

    def _storage(self, node: Node) -> Iterator[Any]:
        fsync = HistogramMetricFamily("zkactors_fsync_duration_seconds",
                                      "Time the WAL spent in each fsync")
        wal = node.wal
        if wal is not None:
            histogram = wal.sync_times
            fsync.add_metric([], histogram.cumulative(), histogram.total)
        yield fsync
        pauses = HistogramMetricFamily(
            "zkactors_gc_pause_seconds",
            "Time each garbage collection held the node (every thread), by generation",
            labels=["generation"])
        for generation, histogram in node.collections.pauses.items():
            pauses.add_metric([str(generation)], histogram.cumulative(), histogram.total)
        yield pauses

    def _elections(self, election: Any, gateway: Any) -> Iterator[Any]:
        campaigns = CounterMetricFamily(
            "zkactors_elections", "Elections this node started (campaigns)")
        campaigns.add_metric([], getattr(election, "campaigns", 0))
        changes = CounterMetricFamily(
            "zkactors_leader_changes", "Times this node saw a new leader take over")
        changes.add_metric([], getattr(gateway, "leader_changes", 0))
        gaps = HistogramMetricFamily(
            "zkactors_election_tick_gap_seconds",
            "Time between two ticks of the election actor, which sends the heartbeats: "
            "a gap near election_timeout_ms costs a leader its term")
        histogram = getattr(election, "tick_gaps", None)
        if histogram is not None:
            gaps.add_metric([], histogram.cumulative(), histogram.total)
        yield from (campaigns, changes, gaps)

    def _watches(self, watch: Any) -> Iterator[Any]:
        stats = getattr(watch, "metrics", None) or {}
        prefixes = GaugeMetricFamily(
            "zkactors_watch_subscribed_prefixes",
            "Path prefixes with at least one subscriber on this node's PUB socket")
        published = CounterMetricFamily("zkactors_watch_events",
                                        "Watch events published")
        history = GaugeMetricFamily("zkactors_watch_history_events",
                                    "Events kept for clients resuming after a gap")
        if stats:
            prefixes.add_metric([], stats["subscribed_prefixes"])
            published.add_metric([], stats["published"])
            history.add_metric([], stats["history_events"])
        yield from (prefixes, published, history)
