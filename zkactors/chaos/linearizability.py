"""Linearizability of versioned registers, one key at a time, and a shrinker.

Owns the rule: a key's history is linearizable if its operations can be put in
one order that respects real time (an operation that completed before another
was invoked comes first) and that the register model accepts (Herlihy & Wing
1990). The search is Wing & Gong's (1993): repeatedly take an operation that no
pending completion forbids, apply it to the model, and backtrack when some
operation's completion is reached before it could be placed; with Lowe's
memoization (2017): a (set of operations placed, model state) pair already
explored is not explored again. The history is an entry list of calls and
returns sorted by time, from which placed operations are lifted out and put back
on backtracking, as Porcupine does; Knossos implements the same search. Written
here from the papers, not copied.

Keys are independent registers, so each key is checked alone (P-compositionality,
Horn & Kroening 2015): far smaller searches than the whole history at once.

The register model. State is None (no node) or ``(value, version)``.
``create(v)`` needs None and gives ``(v, 0)``; ``write(v)`` needs a node and gives
``(v, version + 1)`` (its output is not checked); ``cas((ev, v))`` needs
``version == ev`` (or ``ev == -1``, ZooKeeper's "any version") and gives
``(v, ev + 1)``; a ``read`` must return the state, ``(value, version)`` or None.

Which operations count. A ``fail`` did not take effect: dropped (as Knossos
does), a cas refused with BadVersion included — it says nothing either way. An
``info`` write, cas or create may have taken effect at any time after its invoke,
or never: the search may place it anywhere after its invoke or leave it out. An
``info`` read observed nothing: dropped. Only linearizable reads
(``linearizable=True``, sync + get) are checked; plain reads are the session
checker's (``sessions``). Ties in time count as concurrent.

Shortcuts beyond Lowe's cache, each sound because versions only go up (there is
no delete in this model): a placement that leaves an ok operation needing an
older version is cut at once; values no read saw are one value to the cache; and
unknown-outcome writes of such values are counted, not told apart, while unknown
cas-of-a-version and creates are not recorded at all (see ``_interchangeable``).
A brute-force checker in the tests agrees with this one on small histories.

The search is bounded (``max_states`` explored per key); when the budget is spent
the key's verdict is ``unknown``, never a guess. No sockets, threads, clock or disk.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from zkactors.chaos.history import Operation

OK = "ok"
VIOLATION = "violation"
UNKNOWN = "unknown"

DEFAULT_MAX_STATES = 1_000_000

State = tuple[Any, int] | None


@dataclass(frozen=True, slots=True)
class KeyResult:
    """The verdict for one key.

    ``checked`` are the key's operations the search considered (after dropping
    failed operations, info reads and plain reads). For a violation, ``linearized``
    is the longest order the search could build and ``stuck`` an operation whose
    completion came before it could be placed after that order; ``shrink`` gives a
    smaller history that shows the same kind of anomaly.
    """

    key: str
    verdict: str
    checked: tuple[Operation, ...]
    explored: int
    linearized: tuple[Operation, ...] = ()
    stuck: Operation | None = None

    @property
    def ok(self) -> bool:
        return self.verdict == OK

    def describe(self) -> str:
        if self.verdict == OK:
            return f"{self.key}: linearizable ({len(self.checked)} operations)"
        if self.verdict == UNKNOWN:
            return (f"{self.key}: unknown (search budget spent after {self.explored} "
                    f"states, {len(self.checked)} operations)")
        lines = [(f"{self.key}: NOT linearizable ({len(self.checked)} operations); "
                  f"longest order found ({len(self.linearized)}):")]
        lines += [f"  {op}" for op in self.linearized]
        lines.append(f"then could not place, before it completed: {self.stuck}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Result:
    """Verdicts for every key; ``ok`` only if every key is certainly linearizable."""

    keys: dict[str, KeyResult] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(k.verdict == OK for k in self.keys.values())

    @property
    def verdict(self) -> str:
        verdicts = {k.verdict for k in self.keys.values()}
        return VIOLATION if VIOLATION in verdicts else UNKNOWN if UNKNOWN in verdicts else OK

    @property
    def violations(self) -> list[KeyResult]:
        return [k for k in self.keys.values() if k.verdict == VIOLATION]

    @property
    def unknown(self) -> list[KeyResult]:
        return [k for k in self.keys.values() if k.verdict == UNKNOWN]


def check(operations: Iterable[Operation],
          initial: State | Mapping[str, State] = None,
          max_states: int = DEFAULT_MAX_STATES) -> Result:
    """Check every key's operations against a register starting at ``initial``.

    ``initial`` is one state for every key, or a mapping key -> state (absent keys
    start as None). ``max_states`` bounds each key's search.
    """
    by_key: dict[str, list[Operation]] = {}
    for op in operations:
        by_key.setdefault(op.key, []).append(op)
    return Result({key: check_key(ops, _initial_for(initial, key), max_states)
                   for key, ops in sorted(by_key.items())})


def check_key(operations: Iterable[Operation], initial: State = None,
              max_states: int = DEFAULT_MAX_STATES) -> KeyResult:
    """Check one key's operations (all must share a key) as one register."""
    given = list(operations)
    keys = {op.key for op in given}
    if len(keys) > 1:
        raise ValueError(f"check_key given operations on several keys: {sorted(keys)}")
    key = keys.pop() if keys else ""
    return _search(key, [op for op in given if _counts(op)], _state(initial), max_states)


def shrink(operations: Iterable[Operation],
           initial: State | Mapping[str, State] = None,
           max_states: int = DEFAULT_MAX_STATES) -> list[Operation]:
    """A small sub-history of one key that no behaviour of the rest can explain.

    Takes the first key (in key order) that is not linearizable and removes whole
    operations — chunks first, then one at a time — keeping each removal after
    which what is left is still a definite violation, until no single removal
    keeps it one (1-minimal, not necessarily the global minimum).

    A removed write, cas or create is not assumed away: it is checked as if its
    outcome were unknown (it may have taken effect any time after its invoke, or
    never); removed reads constrain nothing and go. So the kept operations show
    the anomaly whatever the others did — a stale read shrinks to the newer
    write and the read (and the write it saw, if that one's order matters), not
    to "a read of a value never written" or "a set of a node never created",
    which are only artefacts of dropping the rest. A check that runs out of
    budget counts as not shown, so the result is always a definite violation.
    Raises ValueError if no key is found non-linearizable.
    """
    result = check(operations, initial, max_states)
    if not result.violations:
        raise ValueError(f"nothing to shrink: history is {result.verdict}")
    failing = result.violations[0]
    start = _initial_for(initial, failing.key)
    everything = list(failing.checked)

    def violates(kept: list[Operation]) -> bool:
        keep = {id(op) for op in kept}
        rest = [_unknown(op) for op in everything if id(op) not in keep and op.f != "read"]
        return check_key(kept + rest, start, max_states).verdict == VIOLATION

    ops = _near(everything, failing.stuck, violates)
    chunk = len(ops) // 2
    while chunk >= 1:
        i = 0
        while i < len(ops):
            candidate = ops[:i] + ops[i + chunk:]
            if candidate and violates(candidate):
                ops = candidate
            else:
                i += chunk
        chunk //= 2
    changed = True
    while changed:
        changed = False
        for i in range(len(ops)):
            candidate = ops[:i] + ops[i + 1:]
            if candidate and violates(candidate):
                ops, changed = candidate, True
                break
    return ops


def _near(ops: list[Operation], stuck: Operation | None,
          violates: Callable[[list[Operation]], bool]) -> list[Operation]:
    """The fewest operations invoked last before ``stuck`` completed that still
    show the violation, trying 8, 16, 32, ...; all of ``ops`` if none do.

    Removal one by one from thousands of operations is slow, and the search got
    stuck right where the anomaly is: look there first.
    """
    if stuck is None or stuck.complete is None:
        return ops
    before = sorted((op for op in ops if op.invoke <= stuck.complete),
                    key=lambda op: op.invoke)
    size = 8
    while size < len(before):
        if violates(before[-size:]):
            return before[-size:]
        size *= 2
    return before if violates(before) else ops


def _unknown(op: Operation) -> Operation:
    return dataclasses.replace(op, outcome="info", output=None, complete=None)


def _initial_for(initial: State | Mapping[str, State], key: str) -> State:
    if isinstance(initial, Mapping):
        return _state(initial.get(key))
    return _state(initial)


def _state(state: Any) -> State:
    if state is None:
        return None
    value, version = state
    return (value, version)


def _counts(op: Operation) -> bool:
    if op.outcome == "fail":
        return False
    if op.f == "read":
        return op.outcome == "ok" and op.linearizable
    return True


_READ, _WRITE, _CAS, _CREATE = range(4)
_CODES = {"read": _READ, "write": _WRITE, "cas": _CAS, "create": _CREATE}


def _step(code: int, arg: Any, state: State) -> tuple[bool, State]:
    """The register model: may the operation happen in ``state``, and what follows."""
    if code == _READ:
        return arg == state, state
    if code == _WRITE:
        return (False, None) if state is None else (True, (arg, state[1] + 1))
    if code == _CAS:
        expected, value = arg
        if state is None or (expected != -1 and state[1] != expected):
            return False, None
        return True, (value, state[1] + 1)
    return (True, (arg, 0)) if state is None else (False, None)


def _search(key: str, ops: list[Operation], initial: State, max_states: int) -> KeyResult:
    n = len(ops)
    codes = [_CODES[op.f] for op in ops]
    reads = [_read_output(op) for op in ops if op.f == "read"]
    seen_values = {out[0] for out in reads if out is not None}
    args = [_read_output(op) if op.f == "read" else _unseen(op, seen_values) for op in ops]
    required = [op.outcome == "ok" for op in ops]
    stand_ins, unrecorded = _interchangeable(ops, args)
    # Entries 1..2n sorted by time, a call before a return at the same time (ties
    # are concurrent); entry 0 is the head. An info operation returns at infinity.
    points = []
    for i, op in enumerate(ops):
        points.append((op.invoke, 0, i))
        points.append((math.inf if op.complete is None else op.complete, 1, i))
    points.sort()
    size = 2 * n + 1
    is_call = [False] * size
    of = [-1] * size
    match = [0] * size
    call_at = [0] * n
    for entry, (_, kind, i) in enumerate(points, start=1):
        of[entry] = i
        if kind == 0:
            is_call[entry] = True
            call_at[i] = entry
        else:
            match[call_at[i]] = entry
    nxt = list(range(1, size + 1))
    nxt[-1] = -1
    prv = list(range(-1, size - 1))

    def lift(call: int) -> None:
        for e in (call, match[call]):
            after = nxt[e]
            nxt[prv[e]] = after
            if after != -1:
                prv[after] = prv[e]

    def unlift(call: int) -> None:
        for e in (match[call], call):
            nxt[prv[e]] = e
            if nxt[e] != -1:
                prv[nxt[e]] = e

    # How the cache records a placed operation: 0 by itself, 1 as a stand-in
    # (counted), 2 not at all (see _interchangeable).
    recorded = [0] * n
    for i in stand_ins:
        recorded[i] = 1
    for i in unrecorded:
        recorded[i] = 2
    stood_in = 0
    # Versions never go down, so an operation that must still happen at version r
    # (an ok read that saw r, an ok cas expecting r, an ok create or a read of no
    # node: -1) is dead once the state is past r: prune there, not at its return.
    need = [_needs(op) for op in ops]
    reqs = sorted({r for r in need if r is not None})
    rank = {r: j for j, r in enumerate(reqs)}
    need_at = [-1 if r is None else rank[r] for r in need]
    waiting = [0] * (len(reqs) + 1)  # one spare zero stops the scan below
    for j in need_at:
        if j >= 0:
            waiting[j] += 1
    low = 0  # index in reqs of the lowest version an unplaced operation needs
    left = sum(required)
    state = _unseen_state(initial, seen_values)
    # What has been placed, as the cache records it: the operations recorded one by
    # one; stand-ins only as a count. The cache keeps, per (placed, state), the
    # fewest stand-ins used: a node that used more has fewer left, so it can do
    # nothing the cached one could not.
    placed = 0
    explored = 0
    stack: list[tuple[int, State, int, int, int]] = []
    seen: dict[tuple[int, State], int] = {}
    best: tuple[tuple[Operation, ...], Operation | None] = ((), None)
    entry = nxt[0]
    # A stand-in is tried last from each search node, once the other candidates
    # have been: then the first path to a state tends to use the fewest, and the
    # cache is seldom beaten by a later, thriftier path (which re-explores).
    tried = False  # the stand-in was tried from this node
    deferred = 0  # the entry of the first stand-in met in this node's scan
    back = 0  # the return entry to go on from once the deferred stand-in is tried
    while left:
        if is_call[entry]:
            i = of[entry]
            how = recorded[i]
            if how == 1 and not back:
                if not tried and not deferred:
                    deferred = entry
                entry = nxt[entry]
                continue
            allowed, after = _step(codes[i], args[i], state)
            if allowed:
                now = placed | 1 << i if how == 0 else placed
                used = stood_in + (how == 1)
                j = need_at[i]
                if j >= 0:
                    waiting[j] -= 1
                floor = low
                while waiting[floor] == 0 and floor < len(reqs):
                    floor += 1
                dead = floor < len(reqs) and reqs[floor] < (-1 if after is None else after[1])
                if not dead and seen.get((now, after), used + 1) > used:
                    if explored >= max_states:
                        return KeyResult(key, UNKNOWN, tuple(ops), explored)
                    explored += 1
                    seen[now, after] = used
                    stack.append((entry, state, placed, low, 0 if back else deferred))
                    state, placed, low = after, now, floor
                    left -= required[i]
                    stood_in = used
                    lift(entry)
                    entry = nxt[0]
                    tried, deferred, back = False, 0, 0
                    continue
                if j >= 0:
                    waiting[j] += 1
            entry, back = (back, 0) if back else (nxt[entry], 0)
            continue
        if deferred and not tried:
            tried, back, entry, deferred = True, entry, deferred, 0
            continue
        # A return: its operation could not be placed before it. Backtrack.
        if best[1] is None or len(stack) > len(best[0]):
            best = (tuple(ops[of[e]] for e, *_ in stack), ops[of[entry]])
        if not stack:
            return KeyResult(key, VIOLATION, tuple(ops), explored, *best)
        entry, state, placed, low, deferred = stack.pop()
        i = of[entry]
        left += required[i]
        if need_at[i] >= 0:
            waiting[need_at[i]] += 1
        tried = recorded[i] == 1
        stood_in -= tried
        unlift(entry)
        entry = nxt[entry]
    return KeyResult(key, OK, tuple(ops), explored)


def _needs(op: Operation) -> int | None:
    """The version an ok operation can only happen at (-1: no node), if any."""
    if op.outcome != "ok":
        return None
    if op.f == "read":
        return -1 if op.output is None else _read_output(op)[1]
    if op.f == "cas":
        return None if op.input[0] == -1 else op.input[0]
    return -1 if op.f == "create" else None


_UNSEEN = object()  # a value no read saw: states differing only in it are alike


def _unseen(op: Operation, seen_values: set[Any]) -> Any:
    """A write's argument with a value no read saw replaced by _UNSEEN."""
    if op.f == "cas":
        expected, value = op.input
        return (expected, value if value in seen_values else _UNSEEN)
    return op.input if op.input in seen_values else _UNSEEN


def _unseen_state(state: State, seen_values: set[Any]) -> State:
    if state is None or state[0] in seen_values:
        return state
    return (_UNSEEN, state[1])


def _interchangeable(ops: list[Operation], args: list[Any]) -> tuple[list[int], list[int]]:
    """Info operations the cache need not tell apart: (stand-ins, unrecorded).

    Stand-ins: info writes (and cas of any version, -1) of values no read saw.
    Each has the same effect and no completion to meet, so once invoked any one
    stands in for another; the search places the first unplaced one in the entry
    list only (the earliest invoked), and the cache counts how many are placed,
    not which. Without this, k of them make up to 2^k cache entries for one real
    state.

    Unrecorded: info cas of a given version, and info creates. Whether one was
    placed never changes what can follow, given the state: versions only go up,
    so a cas expecting a version the state has not reached cannot have been
    placed yet, and one expecting a version it has passed can never be placed
    again; a create needs no node, and after any create there always is one.
    """
    stand_ins, unrecorded = [], []
    for i, op in enumerate(ops):
        if op.outcome != "info" or op.f == "read":
            continue
        if op.f == "create" or op.f == "cas" and op.input[0] != -1:
            unrecorded.append(i)
        elif args[i] is _UNSEEN or op.f == "cas" and args[i][1] is _UNSEEN:
            stand_ins.append(i)  # a write, or a cas of any version: one and the same
    return stand_ins, unrecorded


def _read_output(op: Operation) -> State:
    out = op.output
    if out is None:
        return None
    if isinstance(out, (tuple, list)) and len(out) == 2:
        return (out[0], out[1])
    raise ValueError(f"read output must be [value, version] or null: {op}")
