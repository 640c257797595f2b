"""Session guarantees per client: what plain (non-linearizable) reads must still obey.

Owns two rules from ZooKeeper's client guarantees, checked per process over its
``ok`` operations in completion order (one outstanding operation per process, so
this is also the order it issued them):

- Monotonic reads / FIFO order: the zxid a process's answers come from never goes
  backwards. An operation without a zxid is skipped; the zxid must be the one the
  server answered from (the reply's), not a node's mzxid.
- Read-your-writes and monotonic versions per key: a read of a key sees a version
  at least as new as any this process has already written or read there. What is
  known of each version comes only from the process's own history: a read's
  version; a create's 0 (when the path created is the key itself); a cas's
  ``expected + 1``; a write's version when its completion carries it (an int),
  else at least one more than the newest the process knew of, and at least 1.

Sound, not complete: only definite violations are reported, and only under the
workload's assumptions — versions start at 0, every change adds one, and nothing
deletes the keys (a delete and re-create would reset the version). Anomalies
between processes are the linearizability checker's business. Pure: no sockets,
threads, clock or disk.
"""

from __future__ import annotations

from collections.abc import Iterable

from zkactors.chaos.history import Operation


def check_sessions(operations: Iterable[Operation]) -> list[str]:
    """Readable violations, one string each, naming process, key, both operations."""
    by_process: dict[int, list[Operation]] = {}
    for op in operations:
        if op.outcome == "ok":
            by_process.setdefault(op.process, []).append(op)
    violations: list[str] = []
    for process, ops in sorted(by_process.items()):
        ops.sort(key=lambda op: op.complete)
        violations += _monotonic_zxids(process, ops)
        violations += _versions(process, ops)
    return violations


def _monotonic_zxids(process: int, ops: list[Operation]) -> list[str]:
    found = []
    newest: Operation | None = None
    for op in ops:
        if op.zxid is None:
            continue
        if newest is not None and op.zxid < newest.zxid:
            found.append(
                f"p{process} key {op.key}: zxid went backwards, {op.zxid:#x} < "
                f"{newest.zxid:#x}: {op} completed after {newest}")
        if newest is None or op.zxid > newest.zxid:
            newest = op
    return found


def _versions(process: int, ops: list[Operation]) -> list[str]:
    found = []
    # key -> (the newest version this process knows exists, the operation that showed it)
    known: dict[str, tuple[int, Operation]] = {}
    for op in ops:
        floor, source = known.get(op.key, (None, None))
        produced: int | None = None
        if op.f == "read":
            seen = None if op.output is None else op.output[1]
            if floor is not None and (seen is None or seen < floor):
                what = "read-your-writes" if source.f != "read" else "monotonic versions"
                saw = "no node" if seen is None else f"version {seen}"
                found.append(
                    f"p{process} key {op.key}: {what}: {op} saw {saw} after "
                    f"{source} showed version {floor} or newer")
            produced = seen
        elif op.f == "create":
            produced = 0 if op.output == op.key else None
        elif op.f == "cas" and op.input[0] != -1:
            produced = op.input[0] + 1
        elif op.f in ("write", "cas"):
            if isinstance(op.output, int) and not isinstance(op.output, bool):
                produced = op.output
            else:
                produced = 1 if floor is None else max(floor + 1, 1)
        if produced is not None and (floor is None or produced > floor):
            known[op.key] = (produced, op)
    return found
