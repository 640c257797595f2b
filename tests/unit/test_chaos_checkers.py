"""The chaos checkers on hand-written and generated histories (issue #15).

Known-good and known-bad histories written by hand, the JSONL form, and
properties over histories generated from a random sequential execution of the
register model whose operations' intervals are widened around their
linearization points: always linearizable — and never, once one read is made to
report a version no state ever had.
"""

from __future__ import annotations

import io

import pytest

from zkactors.chaos.history import (
    Event,
    HistoryError,
    Operation,
    pair_operations,
    read_history,
    write_history,
)

pytestmark = pytest.mark.timeout(120)


def op(process, f, key, input=None, output=None, invoke=0.0, complete=1.0,
       outcome="ok", zxid=None, linearizable=True):
    if outcome == "info":
        complete = None
    return Operation(process, f, key, input, output, outcome, invoke, complete, zxid,
                     linearizable)


def created(process=0, key="/k", value="v0", invoke=0.0, complete=1.0, **kw):
    return op(process, "create", key, value, key, invoke, complete, **kw)


def write(process, value, invoke, complete, key="/k", **kw):
    return op(process, "write", key, value, kw.pop("output", None), invoke, complete, **kw)


def cas(process, expected, value, invoke, complete, key="/k", **kw):
    return op(process, "cas", key, (expected, value), kw.pop("output", None), invoke,
              complete, **kw)


def read(process, seen, invoke, complete, key="/k", **kw):
    return op(process, "read", key, None, seen, invoke, complete, **kw)


def to_events(operations, info_at=None):
    """The events a harness would have recorded for ``operations``, in time order."""
    events = []
    for o in operations:
        value = list(o.input) if isinstance(o.input, tuple) else o.input
        events.append((o.invoke, 0, Event(o.process, "invoke", o.f, o.key, value, o.invoke,
                                          None, o.linearizable)))
        done = o.complete if o.complete is not None else (info_at or {}).get(o, o.invoke)
        output = list(o.output) if isinstance(o.output, tuple) else o.output
        events.append((done, 1, Event(o.process, o.outcome, o.f, o.key, output, done,
                                      o.zxid, o.linearizable)))
    events.sort(key=lambda e: (e[0], e[1]))
    return [e for _, _, e in events]


# --- history: JSONL and pairing ---------------------------------------------------

def test_history_round_trips_through_jsonl_and_pairs_into_operations(tmp_path):
    ops = [
        created(0, value="a", invoke=0.0, complete=0.5, zxid=0x100000001),
        cas(1, 0, "b", 1.0, 2.0, output=1, zxid=0x100000002),
        read(0, ("b", 1), 1.5, 2.5, zxid=0x100000002),
        read(2, None, 0.1, 0.2, key="/other", linearizable=False),
        write(2, "c", 3.0, None, outcome="info"),
    ]
    events = to_events(ops, info_at={ops[4]: 4.0})
    path = tmp_path / "history.jsonl"
    write_history(path, events)
    assert read_history(path) == events
    assert pair_operations(read_history(path)) == sorted(ops, key=lambda o: o.invoke)


def test_history_writes_and_reads_file_objects():
    events = to_events([read(0, ("x", 3), 0.0, 1.0)])
    buf = io.StringIO()
    write_history(buf, events)
    assert len(buf.getvalue().splitlines()) == 2
    buf.seek(0)
    assert read_history(buf) == events


@pytest.mark.parametrize("line, says", [
    ('{"process": 0, "type": "invoke"', "line 2"),
    ('[1, 2]', "not a JSON object"),
    ('{"process": 0, "type": "ok", "f": "read", "time": 1}', "missing key"),
    ('{"process": 0, "type": "done", "f": "read", "key": "/k", "time": 1}', "type must be"),
    ('{"process": 0, "type": "ok", "f": "delete", "key": "/k", "time": 1}', "f must be"),
    ('{"process": "0", "type": "ok", "f": "read", "key": "/k", "time": 1}', "process must"),
    ('{"process": 0, "type": "ok", "f": "read", "key": "/k", "time": 1, "x": 1}', "unknown"),
])
def test_malformed_history_line_is_refused_naming_the_line(line, says):
    good = '{"process": 0, "type": "invoke", "f": "read", "key": "/k", "time": 0}\n'
    with pytest.raises(HistoryError, match="history line 2") as err:
        read_history(io.StringIO(good + line + "\n"))
    assert says in str(err.value)


def test_second_invoke_while_one_is_outstanding_is_malformed():
    events = [Event(0, "invoke", "write", "/k", "a", 0.0), Event(0, "invoke", "read", "/k", None, 1.0)]
    with pytest.raises(ValueError, match="process 0 invokes read /k at 1.0 while its write"):
        pair_operations(events)


def test_completion_without_invoke_or_for_another_operation_is_malformed():
    with pytest.raises(ValueError, match="nothing outstanding"):
        pair_operations([Event(3, "ok", "read", "/k", None, 1.0)])
    with pytest.raises(ValueError, match="but invoked write /k"):
        pair_operations([Event(3, "invoke", "write", "/k", "a", 0.0),
                         Event(3, "ok", "write", "/j", None, 1.0)])


def test_invoke_never_completed_becomes_an_info_operation():
    (o,) = pair_operations([Event(1, "invoke", "write", "/k", "a", 2.0)])
    assert (o.outcome, o.invoke, o.complete) == ("info", 2.0, None)
