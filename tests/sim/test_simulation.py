"""The deterministic simulator over the real cores: safety under chaos, many seeds."""

import pytest

from zkactors.sim.cluster import Faults, Simulation
from zkactors.sim.invariants import InvariantViolation
from zkactors.sim.run import run_seed

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("block", range(10))
def test_500_seeds_of_three_nodes_keep_every_invariant(block):
    for seed in range(block * 50, block * 50 + 50):
        result = run_seed(seed, nodes=3)
        assert result["leaders"] >= 1


@pytest.mark.parametrize("block", range(2))
def test_five_node_ensembles_keep_every_invariant(block):
    for seed in range(10_000 + block * 20, 10_000 + block * 20 + 20):
        run_seed(seed, nodes=5)


def test_a_seed_replays_exactly():
    assert run_seed(7) == run_seed(7)


def test_writes_are_acknowledged_under_chaos():
    acked = sum(run_seed(seed)["writes_acked"] for seed in range(20))
    assert acked > 1000  # the chaos leaves room for progress: not a vacuous pass


def test_the_checker_catches_two_leaders_in_one_term():
    sim = Simulation(1)
    sim.run(500)
    leader = next(n for n in sim.nodes.values() if n.log.role == "leader")
    other = next(n for n in sim.nodes.values() if n is not leader)
    with pytest.raises(InvariantViolation, match="election safety"):
        sim.checker.became_leader(other, leader.log.term)


def test_the_checker_catches_diverging_logs():
    sim = Simulation(2, faults=Faults(crash=0, partition=0))
    sim.run(1500)
    a, b = sorted((n for n in sim.nodes.values() if n.up), key=lambda n: -len(n.log.entries))[:2]
    assert len(b.log.entries) > 2
    index = min(len(a.log.entries), len(b.log.entries))
    sim.checker.check()
    # Rewrite b's entry at `index` as a buggy core could: same term, other content.
    theirs = a.log.entries[index - 1]
    del b.log.entries[index - 1:]
    b.log.entries.append(type(theirs)(index, theirs.term, theirs.time_ms,
                                      ["create", "/forged", b"", 0]))
    with pytest.raises(InvariantViolation, match="log matching"):
        sim.checker.check()
