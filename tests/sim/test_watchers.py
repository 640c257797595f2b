"""The simulator's watchers (zkactors.sim.watchers): the shipped client's watch
protocol, run against every node's watch core through crashes and failovers.

The checks themselves run at the end of every seed (zkactors.sim.run); these
tests make sure the seeds really put the protocol through its paces, and that
the checks catch what they are for."""

import pytest

from zkactors.client.watchstream import EventType
from zkactors.sim.cluster import Simulation
from zkactors.sim.invariants import InvariantViolation
from zkactors.sim.run import run_seed

pytestmark = pytest.mark.timeout(300)


def test_the_default_seeds_fail_watchers_over_and_resume_them(default_runs):
    runs = default_runs[:20]
    assert sum(r["watch_events"] for r in runs) > 1000
    # Two watchers per run attach once each; more means they failed over.
    assert sum(r["watch_attaches"] > 2 for r in runs) >= 10
    assert sum(r["watch_resumes"] for r in runs) > 40
    assert sum(r["watch_compacted"] for r in runs) >= 1


def settled(seed: int) -> Simulation:
    sim = Simulation(seed)
    sim.run(1500)
    sim.heal_and_settle(2000)
    return sim


def test_a_watcher_missing_an_event_is_caught():
    sim = settled(2)
    watcher = next(w for w in sim.watchers.watchers if w.delivered)
    sim.watchers.check()
    lost = next(i for i, e in enumerate(watcher.delivered) if e.type != EventType.COMPACTED
                and e.zxid <= (watcher.stream.synced or 0))
    del watcher.delivered[lost]
    with pytest.raises(InvariantViolation, match="never handed"):
        sim.watchers.check()


def test_a_watcher_handed_an_event_twice_is_caught():
    sim = settled(2)
    watcher = next(w for w in sim.watchers.watchers if w.delivered)
    watcher.delivered.append(watcher.delivered[-1])
    with pytest.raises(InvariantViolation, match="twice"):
        sim.watchers.check()


def test_a_seed_with_watchers_replays_exactly():
    assert run_seed(11) == run_seed(11)
