"""The simulator kills known-bad changes: each mutant (zkactors.sim.mutants) must
make some swarm run fail within 200 seeds — and that seed must pass without it."""

import pytest

from zkactors.sim.mutants import MUTANTS, applied, hunt
from zkactors.sim.run import run_swarm_seed

pytestmark = pytest.mark.timeout(600)

SEEDS = range(200)


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_the_simulator_kills_the_mutant(mutant):
    seed, _ = hunt(mutant, SEEDS)
    assert seed is not None, f"survived {len(SEEDS)} seeds: {mutant.breaks}"


def test_a_mutant_is_put_back_after_its_run():
    mutant = next(m for m in MUTANTS if m.name == "fifo-order")
    with applied(mutant):
        from zkactors.core.dedup import ClientTable
        assert ClientTable().in_order(1, 9, 1)  # the mutant: anything goes
    assert not ClientTable().in_order(1, 9, 1)
    run_swarm_seed(1)  # and the shipped code passes the seed that killed it
