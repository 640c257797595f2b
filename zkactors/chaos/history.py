"""The history of a chaos run: one event per line, and operations paired from them.

Owns the record the harness writes and the checkers read, in Jepsen's shape: every
client operation is two events, an ``invoke`` and its completion — ``ok`` (it took
effect), ``fail`` (it certainly did not) or ``info`` (unknown: a lost connection or
a timeout, so it may take effect at any time after its invoke, or never). A
process (one client) has at most one operation outstanding at a time; a history
that breaks this is malformed and refused, never guessed at.

``value`` by operation, as written in the JSONL file:

- ``write``: the value written (str). On an ``ok`` completion it may carry the
  version the write produced (int), which the session checker uses; anything else
  there means "not known".
- ``cas``: ``[expected_version, new_value]`` on invoke; on an ``ok`` completion,
  optionally the produced version (int), as for write.
- ``read``: nothing on invoke; on completion ``[value, version]``, or ``null`` if the
  node did not exist.
- ``create``: the data on invoke; on completion the path created.

``time`` is monotonic seconds; ``zxid`` is the zxid the reply came from (the
server's, as in the reply header — not a node's mzxid), when known, on the
completion. ``linearizable`` marks a sync + get read (on its invoke, its
completion, or both); plain gets leave it false.

Reads and writes a file only through the path or file object it is given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

EVENT_TYPES = ("invoke", "ok", "fail", "info")
FUNCTIONS = ("read", "write", "cas", "create")
FIELDS = ("process", "type", "f", "key", "value", "time", "zxid", "linearizable")


class HistoryError(ValueError):
    """A malformed history: a bad line, or events that cannot be paired."""


@dataclass(frozen=True, slots=True)
class Event:
    """One line of a history: an invocation or a completion."""

    process: int
    type: str
    f: str
    key: str
    value: Any = None
    time: float = 0.0
    zxid: int | None = None
    linearizable: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    """An invocation paired with its completion.

    ``input`` is the invoke's value (for cas a tuple ``(expected_version,
    new_value)``); ``output`` the completion's (for a read a tuple ``(value,
    version)`` or None). ``complete`` is None when the outcome is ``info``: the
    operation may take effect at any time after ``invoke``, up to the end of the
    history, or never.
    """

    process: int
    f: str
    key: str
    input: Any
    output: Any
    outcome: str
    invoke: float
    complete: float | None
    zxid: int | None = None
    linearizable: bool = False

    def __str__(self) -> str:
        end = "?" if self.complete is None else f"{self.complete:.6f}"
        if self.f == "read":
            what = f"read {self.key} -> {_show(self.output)}"
        elif self.f == "cas":
            what = f"cas {self.key} {_show(self.input)}"
        else:
            what = f"{self.f} {self.key} {_show(self.input)}"
        zxid = "" if self.zxid is None else f" zxid={self.zxid:#x}"
        return (f"p{self.process} {what} {self.outcome} "
                f"[{self.invoke:.6f}, {end}]{zxid}")


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(repr(v) for v in value) + ")"
    return repr(value)


def write_history(path_or_file: str | Path | IO[str], events: Iterable[Event]) -> None:
    """Write ``events`` as JSON lines, one event per line, in the given order."""
    if isinstance(path_or_file, (str, Path)):
        with open(path_or_file, "w", encoding="utf-8") as out:
            write_history(out, events)
        return
    for event in events:
        path_or_file.write(json.dumps(asdict(event), separators=(",", ":")) + "\n")


def read_history(path_or_file: str | Path | IO[str]) -> list[Event]:
    """Read a JSONL history; a bad line raises HistoryError naming its line number."""
    if isinstance(path_or_file, (str, Path)):
        with open(path_or_file, encoding="utf-8") as src:
            return read_history(src)
    events = []
    for number, line in enumerate(path_or_file, start=1):
        if not line.strip():
            continue
        try:
            events.append(_event_from(json.loads(line)))
        except (ValueError, TypeError) as exc:  # json's errors and ours
            raise HistoryError(f"history line {number}: {exc}") from None
    return events


def _event_from(raw: Any) -> Event:
    if not isinstance(raw, dict):
        raise HistoryError("not a JSON object")
    missing = [name for name in ("process", "type", "f", "key", "time") if name not in raw]
    if missing:
        raise HistoryError(f"missing {', '.join(missing)}")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise HistoryError(f"unknown field(s) {', '.join(unknown)}")
    process, type_, f, key, time = (raw[n] for n in ("process", "type", "f", "key", "time"))
    zxid = raw.get("zxid")
    if not isinstance(process, int) or isinstance(process, bool):
        raise HistoryError(f"process must be an int, not {process!r}")
    if type_ not in EVENT_TYPES:
        raise HistoryError(f"type must be one of {', '.join(EVENT_TYPES)}, not {type_!r}")
    if f not in FUNCTIONS:
        raise HistoryError(f"f must be one of {', '.join(FUNCTIONS)}, not {f!r}")
    if not isinstance(key, str):
        raise HistoryError(f"key must be a string, not {key!r}")
    if not isinstance(time, (int, float)) or isinstance(time, bool):
        raise HistoryError(f"time must be a number, not {time!r}")
    if zxid is not None and (not isinstance(zxid, int) or isinstance(zxid, bool)):
        raise HistoryError(f"zxid must be an int or null, not {zxid!r}")
    linearizable = raw.get("linearizable", False)
    if not isinstance(linearizable, bool):
        raise HistoryError(f"linearizable must be true or false, not {linearizable!r}")
    return Event(process, type_, f, key, raw.get("value"), float(time), zxid, linearizable)


def pair_operations(events: Iterable[Event]) -> list[Operation]:
    """Pair each invoke with its process's next completion, in invoke order.

    An invoke left without a completion at the end of the history becomes an
    ``info`` operation. Raises HistoryError (a ValueError) for a second invoke while one is
    outstanding, a completion with nothing outstanding, or a completion whose
    ``f`` or ``key`` differs from its invoke.
    """
    pending: dict[int, tuple[int, Event]] = {}
    slots: list[Operation | None] = []
    for event in events:
        if event.type == "invoke":
            if event.process in pending:
                _, first = pending[event.process]
                raise HistoryError(
                    f"process {event.process} invokes {event.f} {event.key} at "
                    f"{event.time} while its {first.f} {first.key} invoked at "
                    f"{first.time} is outstanding")
            pending[event.process] = (len(slots), event)
            slots.append(None)
            continue
        if event.process not in pending:
            raise HistoryError(
                f"process {event.process} completes {event.f} {event.key} "
                f"({event.type}) at {event.time} with nothing outstanding")
        slot, invoke = pending.pop(event.process)
        if (invoke.f, invoke.key) != (event.f, event.key):
            raise HistoryError(
                f"process {event.process} completes {event.f} {event.key} at "
                f"{event.time} but invoked {invoke.f} {invoke.key} at {invoke.time}")
        if event.time < invoke.time:
            raise HistoryError(
                f"process {event.process} completes {event.f} {event.key} at "
                f"{event.time}, before its invoke at {invoke.time}")
        slots[slot] = _operation(invoke, event)
    for slot, invoke in pending.values():
        slots[slot] = _operation(invoke, None)
    return [op for op in slots if op is not None]


def _operation(invoke: Event, done: Event | None) -> Operation:
    outcome = "info" if done is None else done.type
    output = None if done is None or outcome == "info" else _tuple(done.value)
    return Operation(
        process=invoke.process,
        f=invoke.f,
        key=invoke.key,
        input=_tuple(invoke.value),
        output=output,
        outcome=outcome,
        invoke=invoke.time,
        complete=None if outcome == "info" else done.time,
        zxid=None if done is None else done.zxid,
        linearizable=invoke.linearizable or (done is not None and done.linearizable),
    )


def _tuple(value: Any) -> Any:
    """JSON gives lists; operations hold tuples so they compare and hash."""
    return tuple(value) if isinstance(value, list) else value
