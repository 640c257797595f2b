"""The verdict on a chaos run: what was recorded, checked against what must hold.

* The register history (sets, compare-and-sets, linearizable gets) is
  linearizable, key by key (:mod:`zkactors.chaos.linearizability`); for an
  anomaly, the smallest sub-history that still shows it is kept.
* Plain gets keep each client's order: monotonic reads, its own writes seen
  (:mod:`zkactors.chaos.sessions`).
* Every acknowledged sequential create is on every node, and no two creates
  were given the same path.
* Every node, caught up, holds the same tree: the same digest at the same zxid
  (``zkctl status``), and the same values for the registers.
* No node died on its own: a process that ended without the nemesis killing it
  (an assertion in a library, an unhandled error) is an anomaly, with its exit
  status and the last line of its log.

Besides anomalies it reports figures: operations by outcome, faults by kind, and
for each fault how long writes stopped succeeding after it healed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from typing import TYPE_CHECKING, Any

from zkactors.chaos.history import Event, Operation, pair_operations
from zkactors.chaos.linearizability import UNKNOWN, VIOLATION, shrink
from zkactors.chaos.linearizability import check as check_linearizable
from zkactors.chaos.sessions import check_sessions
from zkactors.chaos.workload import ROOT, key_path
from zkactors.client import Client

EVENT_FIELDS = ("process", "type", "f", "key", "value", "time", "zxid", "linearizable")

if TYPE_CHECKING:
    from zkactors.chaos.ensemble import ChaosEnsemble
    from zkactors.chaos.nemesis import Fault


def operations_of(events: list[dict[str, Any]]) -> list[Operation]:
    """The recorder's events as paired operations."""
    return pair_operations([Event(**{k: e.get(k) for k in EVENT_FIELDS}) for e in events])


def judge(operations: list[Operation], ensemble: ChaosEnsemble, keys: list[str],
          final: list[dict[str, Any]], faults: list[Fault] | None = None) -> dict[str, Any]:
    anomalies: list[str] = []
    registers = [op for op in operations if op.f != "create"
                 and (op.f != "read" or op.linearizable)]
    result = check_linearizable(registers, initial=("", 0))
    smallest: dict[str, list] = {}
    for key, outcome in result.keys.items():
        if outcome.verdict == VIOLATION:
            ops = [op for op in registers if op.key == key]
            smallest[key] = [str(op) for op in shrink(ops, initial=("", 0))]
            anomalies.append(outcome.describe())
        elif outcome.verdict == UNKNOWN:
            anomalies.append(outcome.describe())  # not a pass: said so
    plain = [op for op in operations if op.f != "create"]
    anomalies.extend(check_sessions(plain))
    anomalies.extend(_creates_everywhere(operations, ensemble))
    anomalies.extend(_same_everywhere(ensemble, keys, final))
    anomalies.extend(f"node {c['node']} died on its own (exit {c['exit']}): {c['last_line']}"
                     for c in ensemble.crashes)
    outcomes = Counter(op.outcome for op in operations)
    return {
        "ok": not anomalies,
        "anomalies": anomalies,
        "smallest_histories": smallest,
        "operations": len(operations),
        "outcomes": dict(outcomes),
        "crashes": len(ensemble.crashes),
        "faults_by_kind": dict(Counter(f.kind for f in faults or [])),
        "recovery_seconds": _recovery(operations, faults or []),
        "availability_by_kind": _availability(operations, faults or []),
    }


def _node_client(ensemble: ChaosEnsemble, node: int) -> Client:
    client = Client(ensemble.endpoint(node), request_timeout=10.0, session=False)
    client.start(timeout=15)
    return client


def _creates_everywhere(operations: list, ensemble: ChaosEnsemble) -> list[str]:
    acked = [op.output for op in operations if op.f == "create" and op.outcome == "ok"]
    problems = []
    duplicates = [path for path, n in Counter(acked).items() if n > 1]
    if duplicates:
        problems.append(f"one sequential path given to two creates: {duplicates[:5]}")
    for node in ensemble.nodes:
        client = _node_client(ensemble, node)
        try:
            client.sync(f"{ROOT}/q")
            children = set(client.get_children(f"{ROOT}/q")) if client.exists(f"{ROOT}/q") \
                else set()
        finally:
            client.stop()
        missing = [path for path in acked if path.rsplit("/", 1)[1] not in children]
        if missing:
            problems.append(f"node {node} lacks {len(missing)} acknowledged creates, e.g. "
                            f"{missing[:3]}")
    return problems


def _same_everywhere(ensemble: ChaosEnsemble, keys: list[str],
                     final: list[dict[str, Any]]) -> list[str]:
    problems = []
    digests = {(s.get("applied_zxid"), s.get("digest")) for s in final}
    if len(digests) != 1:
        problems.append(f"nodes differ at the end: (applied zxid, digest) per node "
                        f"{[(s.get('node'), s.get('applied_zxid'), s.get('digest')) for s in final]}")
    values = {}
    for node in ensemble.nodes:
        client = _node_client(ensemble, node)
        try:
            client.sync("/")
            values[node] = [client.get(key_path(k))[0] for k in keys]
        finally:
            client.stop()
    if len({tuple(v) for v in values.values()}) != 1:
        problems.append(f"registers differ between nodes at the end: {values}")
    return problems


def _recovery(operations: list, faults: list[Fault]) -> list[float | None]:
    """For each fault: seconds from its healing to the first write that succeeded
    after it (None if none did)."""
    writes = sorted(op.complete for op in operations
                    if op.outcome == "ok" and op.f in ("write", "cas", "create")
                    and op.complete is not None)
    out: list[float | None] = []
    for fault in faults:
        if fault.end is None:
            out.append(None)
            continue
        after = next((t for t in writes if t >= fault.end), None)
        out.append(None if after is None else round(after - fault.end, 3))
    return out


def _availability(operations: list, faults: list[Fault]) -> dict[str, float]:
    """Per fault kind: successful operations per second while such faults were on,
    as a share of the rate while no fault was (1.0: unaffected)."""
    done = sorted(op.complete for op in operations
                  if op.outcome == "ok" and op.complete is not None)
    if not done or not faults:
        return {}
    spans = [(f.start, f.end) for f in faults if f.end is not None]
    start, end = done[0], done[-1]

    def during(a: float, b: float) -> int:
        return bisect_left(done, b) - bisect_left(done, a)

    faulty = sum(b - a for a, b in spans)
    calm_time = max(1e-9, (end - start) - faulty)
    calm_rate = (len(done) - sum(during(a, b) for a, b in spans)) / calm_time
    shares: dict[str, list[float]] = {}
    for fault in faults:
        if fault.end is None or fault.end <= fault.start:
            continue
        rate = during(fault.start, fault.end) / (fault.end - fault.start)
        shares.setdefault(fault.kind, []).append(rate / calm_rate if calm_rate else 0.0)
    return {kind: round(sum(v) / len(v), 3) for kind, v in sorted(shares.items())}
