"""The chaos checkers on hand-written and generated histories (issue #15).

Known-good and known-bad histories written by hand, the JSONL form, and
properties over histories generated from a random sequential execution of the
register model whose operations' intervals are widened around their
linearization points: always linearizable — and never, once one read is made to
report a version no state ever had.
"""

from __future__ import annotations

import io
import random
import time

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from zkactors.chaos.history import (
    Event,
    HistoryError,
    Operation,
    pair_operations,
    read_history,
    write_history,
)
from zkactors.chaos.linearizability import OK, UNKNOWN, VIOLATION, check, shrink
from zkactors.chaos.sessions import check_sessions

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


# --- linearizability: hand-written histories ----------------------------------------

def verdict(ops, initial=None, **kw):
    return check(ops, initial, **kw).verdict


def test_stale_read_after_a_completed_write_is_not_linearizable():
    ops = [created(0, value="a"), write(0, "b", 2.0, 3.0), read(1, ("a", 0), 4.0, 5.0)]
    result = check(ops)
    assert not result.ok and result.verdict == VIOLATION
    (bad,) = result.violations
    assert bad.key == "/k" and bad.stuck in ops[1:]
    assert "NOT linearizable" in bad.describe()


def test_read_concurrent_with_a_write_may_see_either_value():
    before = [created(0, value="a"), write(0, "b", 2.0, 5.0)]
    assert verdict(before + [read(1, ("a", 0), 3.0, 4.0)]) == OK
    assert verdict(before + [read(1, ("b", 1), 3.0, 4.0)]) == OK
    # ...but not the old value after having seen the new one.
    assert verdict(before + [read(1, ("b", 1), 3.0, 4.0), read(2, ("a", 0), 4.5, 4.8)]) \
        == VIOLATION


def test_info_write_may_show_up_later_or_never():
    base = [created(0, value="a"), write(0, "b", 2.0, None, outcome="info")]
    assert verdict(base + [read(1, ("a", 0), 10.0, 11.0)]) == OK
    assert verdict(base + [read(1, ("b", 1), 10.0, 11.0)]) == OK
    assert verdict(base + [read(1, ("b", 1), 10.0, 11.0), read(1, ("a", 0), 12.0, 13.0)]) \
        == VIOLATION


def test_info_write_cannot_take_effect_before_its_invoke():
    ops = [created(0, value="a"), read(1, ("b", 1), 2.0, 3.0),
           write(0, "b", 4.0, None, outcome="info")]
    assert verdict(ops) == VIOLATION


def test_cas_succeeding_on_a_wrong_version_is_not_linearizable():
    ops = [created(0, value="a"), write(0, "b", 2.0, 3.0), cas(1, 0, "c", 4.0, 5.0)]
    assert verdict(ops) == VIOLATION
    assert verdict(ops[:2] + [cas(1, 1, "c", 4.0, 5.0), read(2, ("c", 2), 6.0, 7.0)]) == OK


def test_cas_any_version_and_failed_cas_are_understood():
    ops = [created(0, value="a"), cas(1, -1, "b", 2.0, 3.0),
           cas(2, 0, "x", 4.0, 5.0, outcome="fail"), read(0, ("b", 1), 6.0, 7.0)]
    assert verdict(ops) == OK


def test_read_of_a_value_never_written_is_not_linearizable():
    ops = [created(0, value="a"), write(0, "b", 2.0, 3.0), read(1, ("zzz", 1), 2.5, 4.0)]
    assert verdict(ops) == VIOLATION


def test_failed_operations_never_happened():
    ops = [created(0, value="a"), write(1, "b", 1.0, 2.0, outcome="fail"),
           read(2, ("a", 0), 3.0, 4.0)]
    assert verdict(ops) == OK
    assert verdict(ops[:2] + [read(2, ("b", 1), 3.0, 4.0)]) == VIOLATION


def test_plain_reads_are_left_to_the_session_checker():
    ops = [created(0, value="a"), write(0, "b", 2.0, 3.0),
           read(1, ("a", 0), 4.0, 5.0, linearizable=False)]
    assert verdict(ops) == OK


def test_write_and_read_of_an_absent_node_follow_the_model():
    assert verdict([read(0, None, 0.0, 1.0)]) == OK
    assert verdict([write(0, "a", 0.0, 1.0)]) == VIOLATION
    assert verdict([created(0), created(1, invoke=2.0, complete=3.0)]) == VIOLATION


def test_initial_state_is_a_parameter_per_key():
    ops = [read(0, ("a", 4), 0.0, 1.0, key="/x"), read(0, None, 2.0, 3.0, key="/y")]
    assert verdict(ops) == VIOLATION
    assert verdict(ops, {"/x": ("a", 4)}) == OK
    assert verdict(ops, ("a", 4)) == VIOLATION


def test_keys_are_checked_independently():
    ops = [created(0, "/a", "x"), created(1, "/b", "y"),
           write(0, "x2", 2.0, 3.0, key="/a"), read(1, ("y", 0), 4.0, 5.0, key="/b"),
           read(1, ("x", 0), 6.0, 7.0, key="/a")]
    result = check(ops)
    assert result.keys["/b"].ok and [k.key for k in result.violations] == ["/a"]
    plain_only = check([read(0, ("x", 9), 0.0, 1.0, key="/c", linearizable=False)])
    assert plain_only.keys["/c"].key == "/c" and plain_only.ok


def test_search_budget_spent_is_reported_as_unknown_not_guessed():
    ops = [created(0, value="v")]
    ops += [write(p, f"w{p}", 1.0, 2.0 + p) for p in range(1, 9)]
    ops += [read(9, ("nope", 99), 20.0, 21.0)]
    result = check(ops, max_states=50)
    assert result.verdict == UNKNOWN and not result.ok
    assert "budget spent" in result.unknown[0].describe()
    assert check(ops).verdict == VIOLATION


def test_shrink_stale_read_to_the_writes_it_is_about():
    ops = [created(0, value="a")]
    ops += [read(p, ("a", 0), 1.0 + p / 10, 1.5 + p / 10) for p in range(1, 5)]
    ops += [write(0, "b", 2.0, 3.0), read(1, ("b", 1), 3.5, 3.8),
            read(2, ("a", 0), 4.0, 5.0), write(3, "c", 6.0, 7.0), read(4, ("c", 2), 8.0, 9.0)]
    small = shrink(ops)
    assert len(small) <= 3
    assert verdict(small) == VIOLATION
    assert read(2, ("a", 0), 4.0, 5.0) in small


def test_shrink_keeps_what_shows_the_anomaly_whatever_the_rest_did():
    # Dropping the create would make "set of a node never created" and dropping the
    # write of b "a read of a value never written": artefacts, not the anomaly.
    # Removed writes count as unknown, so neither is what shrink reports.
    ops = [created(0, value="a"), write(1, "b", 2.0, 3.0), write(2, "c", 4.0, 5.0),
           read(3, ("c", 2), 6.0, 7.0), read(4, ("b", 1), 8.0, 9.0)]
    small = shrink(ops)
    assert len(small) == 2 and ops[4] in small and ops[0] not in small
    # e.g. the read of c then the read of b: the version went back.
    assert small[0] in (ops[2], ops[3])


def test_shrink_of_a_long_generated_history_with_one_stale_read():
    ops = simulate(random.Random(5), 400, 5, ("/k",), info_rate=0.05)
    reads = [i for i, o in enumerate(ops) if o.f == "read" and o.output]
    i = reads[len(reads) // 2]
    older = [o.output for o in ops[:i] if o.f == "read" and o.output
             and o.output[1] < ops[i].output[1] - 3]
    ops[i] = read(ops[i].process, older[-1], ops[i].invoke, ops[i].complete)
    small = shrink(ops)
    assert 2 <= len(small) <= 3 and ops[i] in small
    assert verdict(small) == VIOLATION


def test_shrink_refuses_a_linearizable_history():
    with pytest.raises(ValueError, match="nothing to shrink"):
        shrink([created(0)])


# --- linearizability: generated histories -------------------------------------------

def simulate(rng, n_ops, processes, keys=("/k",), info_rate=0.0, plain_rate=0.0):
    """A history of ``processes`` clients, each one operation at a time, that took
    effect at a random point inside each interval, in the order of those points.

    Returns the operations in invoke order. Every value written is unique.
    """
    free = [0.0] * processes
    plans = []
    for _ in range(n_ops):
        p = min(range(processes), key=lambda q: (free[q], rng.random()))
        invoke = free[p] + rng.random() * 0.2
        complete = invoke + rng.random() * 2.0
        point = rng.uniform(invoke, complete)
        free[p] = complete
        f = rng.choice(["read", "read", "write", "cas", "create"])
        plans.append((point, p, f, rng.choice(keys), invoke, complete))
    state = {}
    ops = []
    for n, (_, p, f, key, invoke, complete) in enumerate(sorted(plans)):
        now = state.get(key)
        outcome, inp, out = "ok", None, None
        effect = now
        if f == "read":
            out = now
        elif f == "write":
            inp = f"w{n}"
            if now is None:
                outcome = "fail"
            else:
                effect = (inp, now[1] + 1)
                out = effect[1]
        elif f == "cas":
            version = now[1] if now else 0
            inp = (rng.choice([version, version, version + 1, -1]), f"c{n}")
            if now is None or inp[0] not in (-1, now[1]):
                outcome = "fail"
            else:
                effect = (inp[1], now[1] + 1)
                out = effect[1]
        else:
            inp = f"n{n}"
            if now is None:
                effect, out = (inp, 0), key
            else:
                outcome = "fail"
        if f != "read" and outcome == "ok" and rng.random() < info_rate:
            outcome, out = "info", None
            if rng.random() < 0.5:
                effect = now  # lost before it took effect
        elif f != "read" and outcome == "fail" and rng.random() < info_rate:
            outcome = "info"  # e.g. a timeout; it never took effect
        state[key] = effect
        ops.append(op(p, f, key, inp, out, invoke, complete, outcome=outcome,
                      linearizable=rng.random() >= plain_rate))
    ops.sort(key=lambda o: o.invoke)
    return ops


histories = st.builds(
    lambda seed, n, procs, nkeys, info: simulate(
        random.Random(seed), n, procs, tuple(f"/k{i}" for i in range(nkeys)), info, 0.2),
    st.integers(0, 2**32), st.integers(1, 60), st.integers(1, 6), st.integers(1, 2),
    st.sampled_from([0.0, 0.1, 0.3, 0.6]))


@settings(max_examples=300, deadline=None)
@given(histories)
def test_generated_histories_are_linearizable(ops):
    result = check(ops)
    assert result.ok, "\n".join(k.describe() for k in result.violations)


@settings(max_examples=300, deadline=None)
@given(histories, st.data())
def test_generated_history_with_an_impossible_read_is_not_linearizable(ops, data):
    reads = [i for i, o in enumerate(ops)
             if o.f == "read" and o.outcome == "ok" and o.linearizable]
    if not reads:
        return
    i = data.draw(st.sampled_from(reads))
    old = ops[i].output
    # No state ever had this: versions stay below the number of operations, and no
    # value "never" was written.
    bad = data.draw(st.sampled_from(
        [("never", 0 if old is None else old[1]), (None if old is None else old[0], 10**6)]))
    broken = list(ops)
    broken[i] = op(ops[i].process, "read", ops[i].key, None, bad, ops[i].invoke, ops[i].complete)
    assert check(broken).verdict == VIOLATION


def brute_force_linearizable(ops, initial=None):
    """The definition, with no cleverness: some order of all ok operations and any
    of the info ones, each placed after everything that completed before its
    invoke, that the register model accepts. Exponential; for a handful of ops."""
    ops = [o for o in ops if o.outcome != "fail" and (o.f != "read" or
                                                     (o.outcome == "ok" and o.linearizable))]

    def apply(o, state):
        if o.f == "read":
            return o.output == state, state
        if o.f == "create":
            return state is None, (o.input, 0)
        if state is None:
            return False, None
        if o.f == "cas" and o.input[0] not in (-1, state[1]):
            return False, None
        return True, (o.input[1] if o.f == "cas" else o.input, state[1] + 1)

    def search(left, state):
        if all(o.outcome == "info" for o in left):
            return True
        deadline = min(o.complete for o in left if o.complete is not None)
        for o in left:
            if o.invoke <= deadline:
                allowed, after = apply(o, state)
                if allowed and search([x for x in left if x is not o], after):
                    return True
        return False

    return search(ops, initial)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 9), st.integers(1, 4),
       st.sampled_from([0.0, 0.3, 0.6]), st.data())
def test_checker_agrees_with_brute_force_on_small_histories(seed, n, procs, info, data):
    ops = simulate(random.Random(seed), n, procs, ("/k",), info)
    reads = [i for i, o in enumerate(ops) if o.f == "read" and o.outcome == "ok"]
    if reads and data.draw(st.booleans()):
        # Make one read see some state the history might or might not have had.
        i = data.draw(st.sampled_from(reads))
        values = sorted({o.input for o in ops if o.f in ("write", "create")}
                        | {o.input[1] for o in ops if o.f == "cas"})
        seen = data.draw(st.none() | st.tuples(st.sampled_from(values or ["x"]),
                                               st.integers(0, 3)))
        o = ops[i]
        ops[i] = op(o.process, "read", o.key, None, seen, o.invoke, o.complete)
    expected = brute_force_linearizable(ops)
    event("linearizable" if expected else "not linearizable")
    assert check(ops).ok == expected


def test_many_unknown_outcomes_stay_linearizable_over_fixed_seeds():
    # The cache's shortcuts for info operations (counted stand-ins, unrecorded
    # cas) are only sound if argued right: a cas of any version (-1) once slipped
    # through as "unrecorded" and made seed 71 a false violation.
    for seed in range(600):
        rng = random.Random(seed)
        ops = simulate(rng, rng.randint(5, 60), rng.randint(2, 8), ("/k",),
                       info_rate=rng.choice([0.2, 0.4, 0.6]))
        result = check(ops)
        assert result.ok, f"seed {seed}: " + "\n".join(k.describe() for k in result.violations)


def test_history_survives_jsonl_and_pairing_unchanged():
    ops = simulate(random.Random(7), 300, 5, ("/a", "/b"), info_rate=0.1, plain_rate=0.3)
    ops = [o for o in ops if o.outcome != "info"]  # info completions need a time
    buf = io.StringIO()
    write_history(buf, to_events(ops))
    buf.seek(0)
    paired = pair_operations(read_history(buf))
    assert sorted(paired, key=lambda o: o.invoke) == ops


def test_two_thousand_operations_five_processes_check_quickly():
    ops = simulate(random.Random(15), 2000, 5, ("/k",), info_rate=0.02)
    start = time.monotonic()
    result = check(ops)
    took = time.monotonic() - start
    assert result.ok
    assert took < 20, f"took {took:.1f} s"


def test_ten_processes_with_many_unknown_outcomes_check_quickly():
    # Every fifth write, cas or create times out; half of those took effect anyway.
    ops = simulate(random.Random(16), 2000, 10, ("/k",), info_rate=0.2)
    start = time.monotonic()
    result = check(ops)
    took = time.monotonic() - start
    assert result.ok
    assert took < 20, f"took {took:.1f} s"


# --- sessions: plain reads ------------------------------------------------------------

def test_clean_session_history_passes():
    ops = simulate(random.Random(3), 300, 4, ("/a", "/b"), plain_rate=1.0)
    stamped = []
    done = sorted(ops, key=lambda o: (o.complete is None, o.complete or 0))
    for zxid, o in enumerate(done, start=1):
        stamped.append(op(o.process, o.f, o.key, o.input, o.output, o.invoke, o.complete,
                          outcome=o.outcome, zxid=zxid, linearizable=False))
    assert check_sessions(stamped) == []


def test_zxid_going_backwards_is_a_monotonic_reads_violation():
    ops = [read(0, ("a", 0), 0.0, 1.0, zxid=0x105, linearizable=False),
           read(0, ("a", 0), 2.0, 3.0, key="/j", zxid=0x103, linearizable=False),
           read(1, ("a", 0), 2.0, 3.0, zxid=0x101, linearizable=False)]
    (found,) = check_sessions(ops)
    assert "p0" in found and "went backwards" in found
    assert "0x103 < 0x105" in found and "2.000000" in found and "0.000000" in found


def test_read_older_than_own_write_is_a_read_your_writes_violation():
    ops = [created(0, value="a", zxid=1), write(0, "b", 2.0, 3.0, zxid=2),
           read(0, ("a", 0), 4.0, 5.0, linearizable=False)]
    (found,) = check_sessions(ops)
    assert "p0 key /k: read-your-writes" in found and "version 0" in found
    assert "write /k 'b'" in found
    # Another process may see the old version: that is a plain read's right.
    assert check_sessions(ops[:2] + [read(1, ("a", 0), 4.0, 5.0, linearizable=False)]) == []


def test_read_of_no_node_after_own_create_is_a_violation():
    ops = [created(0), read(0, None, 2.0, 3.0, linearizable=False)]
    (found,) = check_sessions(ops)
    assert "saw no node" in found


def test_versions_seen_never_go_back_within_a_process():
    ops = [read(0, ("b", 3), 0.0, 1.0, linearizable=False),
           read(0, ("a", 2), 2.0, 3.0, linearizable=False)]
    (found,) = check_sessions(ops)
    assert "monotonic versions" in found


def test_write_version_is_known_from_cas_or_reply_and_bounded_otherwise():
    assert check_sessions([cas(0, 4, "x", 0.0, 1.0),
                           read(0, ("old", 4), 2.0, 3.0, linearizable=False)])
    assert check_sessions([write(0, "x", 0.0, 1.0, output=7),
                           read(0, ("old", 6), 2.0, 3.0, linearizable=False)])
    # Unknown version: only "newer than what this process had read" is certain.
    assert check_sessions([read(0, ("a", 5), 0.0, 0.5, linearizable=False),
                           write(0, "x", 1.0, 2.0),
                           read(0, ("x", 6), 2.0, 3.0, linearizable=False)]) == []
    assert check_sessions([read(0, ("a", 5), 0.0, 0.5, linearizable=False),
                           write(0, "x", 1.0, 2.0),
                           read(0, ("a", 5), 2.0, 3.0, linearizable=False)])


def test_failed_and_unknown_writes_set_no_expectation():
    ops = [created(0, value="a"), write(0, "b", 2.0, 3.0, outcome="fail"),
           write(0, "c", 4.0, None, outcome="info"),
           read(0, ("a", 0), 5.0, 6.0, linearizable=False)]
    assert check_sessions(ops) == []
