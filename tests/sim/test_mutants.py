"""The simulator kills known-bad changes: each mutant (zkactors.sim.mutants) must
make some swarm run fail within 600 seeds — and that seed must pass without it."""

import pytest

from zkactors.sim.mutants import MUTANTS, applied, hunt
from zkactors.sim.run import run_swarm_seed

pytestmark = pytest.mark.timeout(600)

SEEDS = range(600)
#: The seed that killed each mutant first when ``python -m zkactors.sim.mutants``
#: last ran (TESTING.md's table): tried first, so the suite finds the kill in one
#: run rather than scanning up to it. A change to the simulator's use of
#: randomness moves the kill seeds; a stale hint only costs the scan.
KILLED_BY = {
    "figure-8": 3, "vote-up-to-date": 1, "higher-term-step-down": 64,
    "conflict-truncation": 0, "commit-beyond-verified": 3, "leader-caught-up-at-once": 1,
    "follower-caught-up-on-an-append": 7,
    "read-ids-reused": 168, "fifo-order": 1, "dedup-lookup": 0,
    "ack-before-fsync": 4, "commit-hint-uncommitted": 0, "install-keeps-old-log": 115,
    "install-acked-before-durable": 12, "check-quorum": 12, "gateway-catching-up": 1,
    "store-read-floor": 1, "session-no-grace": 3, "session-touch-dropped": 3,
    "session-stall-counted": 525, "ephemerals-outlive-session": 3,
    "ephemeral-owner-lost": 3, "watch-restart-keeps-numbers": 16,
    "watch-resume-redelivers": 0,
}


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_the_simulator_kills_the_mutant(mutant):
    seed, _ = hunt(mutant, SEEDS, try_first=KILLED_BY.get(mutant.name))
    assert seed is not None, f"survived {len(SEEDS)} seeds: {mutant.breaks}"


def test_every_mutant_has_a_hint():
    assert set(KILLED_BY) == {m.name for m in MUTANTS}


def test_a_mutant_is_put_back_after_its_run():
    mutant = next(m for m in MUTANTS if m.name == "fifo-order")
    with applied(mutant):
        from zkactors.core.dedup import ClientTable
        assert ClientTable().in_order(1, 9, 1)  # the mutant: anything goes
    assert not ClientTable().in_order(1, 9, 1)
    run_swarm_seed(1)  # and the shipped code passes the seed that killed it
