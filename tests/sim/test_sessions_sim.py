"""The simulator's clients with sessions: a lock taken and released under chaos,
holders paused past their timeout, and the session checks of
zkactors.sim.session_checks (their teeth are shown by the session mutants in
test_mutants.py)."""

import pytest

from zkactors.sim.cluster import Simulation
from zkactors.sim.faults import Faults
from zkactors.sim.invariants import InvariantViolation
from zkactors.sim.sessions import Hold

pytestmark = pytest.mark.timeout(300)


def test_sessions_expire_locks_move_and_stale_holders_are_fenced_under_chaos(default_runs):
    totals: dict[str, int] = {}
    for result in default_runs:
        for key in ("lock_acquisitions", "sessions_lost", "session_expiries", "fenced",
                    "stale_holders", "client_pauses", "sessions_opened"):
            totals[key] = totals.get(key, 0) + result[key]
    # Not a vacuous pass: the lock changes hands hundreds of times, sessions of
    # paused clients expire, and the lock is taken while a holder paused with its
    # clock stopped still believes it holds it: fencing's case, which the checks
    # must judge. (Whether that holder then acts before its hold ends, and is
    # refused by the resource — "fenced" — is up to the chaos: 0 to 19 times in a
    # block of 40 seeds.) Expiries, too, are up to the chaos: 3 to 14 per block of
    # 40 seeds as the simulator stood on 2026-12-01.
    assert totals["lock_acquisitions"] > 800, totals
    assert totals["session_expiries"] >= 3 and totals["sessions_lost"] >= 3, totals
    assert totals["stale_holders"] >= 1, totals


def test_a_holder_paused_past_its_timeout_loses_its_session_and_the_lock():
    sim = Simulation(5, faults=Faults(crash=0, crash_all=0, partition=0, oneway=0, pause=0,
                                      clock_jump=0, client_pause=0, lock_clients=2,
                                      session_timeout_ms=(300, 300)))
    holder = None
    for until in range(100, 3000, 10):
        sim.run(until)
        holder = next((c for c in sim.lock_clients if c.hold is not None), None)
        if holder is not None:
            break
    assert holder is not None, "nobody took the lock"
    session, hold = holder.session, holder.hold
    acquisitions = sim.stats["lock_acquisitions"]
    holder.pause(1500, clock_stops=True)
    sim.run(sim.now + 1500)
    assert session in sim.sessions.ended_at  # expired, by a committed transaction
    assert sim.stats["lock_acquisitions"] > acquisitions  # the other client took it
    # It wakes believing it still holds the lock (its clock stood still). Its
    # hold ends — when its time is up, or when its next ping hears
    # SESSION_EXPIRED, whichever comes first — and it carries on under a new
    # session (whatever it did meanwhile the resource judged by its token).
    sim.run(sim.now + 1000)
    assert hold.end is not None and hold.why_ended in ("lost", "released")
    assert holder.session != session


def test_the_lock_check_fails_two_live_holders_and_a_token_going_back():
    sim = Simulation(1, faults=Faults(lock_clients=0))
    check = sim.sessions
    check.acquired(Hold(client=0, session=11, token=5, start=0))
    with pytest.raises(InvariantViolation, match="two lock holders overlap"):
        check.acquired(Hold(client=1, session=12, token=7, start=1))
    sim = Simulation(1, faults=Faults(lock_clients=0))
    check = sim.sessions
    check.acquired(Hold(client=0, session=11, token=5, start=0, end=3))
    with pytest.raises(InvariantViolation, match="fencing tokens strictly increase"):
        check.acquired(Hold(client=1, session=12, token=4, start=4))


def test_a_holder_whose_session_ended_may_overlap_only_a_live_one():
    sim = Simulation(1, faults=Faults(lock_clients=0))
    check = sim.sessions
    check.acquired(Hold(client=0, session=11, token=5, start=0))
    check.ended_at[11] = 2  # its session expired while it believed it held the lock
    check.acquired(Hold(client=1, session=12, token=9, start=3))  # fine: fencing's case
