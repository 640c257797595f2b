"""One simulated run: chaos, then heal and settle, then the end-of-run checks."""
from __future__ import annotations

import random
from typing import Any

from zkactors.core.messages import LEADER
from zkactors.sim.cluster import LivenessFailure, Simulation
from zkactors.sim.faults import Faults

__all__ = ["LivenessFailure", "run_seed", "run_swarm_seed"]


def run_seed(seed: int, nodes: int = 3, chaos_ms: int = 3000,
             settle_ms: int = 3000, faults: Faults | None = None,
             strict_replies: bool = True) -> dict[str, Any]:
    sim = Simulation(seed, nodes=nodes, faults=faults, strict_replies=strict_replies)
    sim.run(chaos_ms)
    sim.heal_and_settle(settle_ms)
    # Safety first: every acknowledged write is on a majority of disks...
    sim.checker.acknowledged_writes_durable()
    applied = {node.id: node.store.applied_index for node in sim.nodes.values()}
    leaders = [n for n in sim.nodes.values() if n.log.role == LEADER]
    top = max(n.log.term for n in sim.nodes.values())
    if not (len(leaders) == 1 and leaders[0].log.term == top
            and leaders[0].log.commit_index == leaders[0].log.last_index
            and set(applied.values()) == {leaders[0].log.commit_index}):
        # ...then liveness: healed, calm and all up, the ensemble must elect a leader
        # that commits its whole log, and every node must apply all of it...
        raise LivenessFailure(f"seed {seed}: no convergence {settle_ms} ms after healing: "
                              f"applied {applied}\n{sim.describe()}")
    # ...and then every node's tree has every acknowledged write, identically.
    sim.checker.acknowledged_writes_survive()
    sim.checker.replicas_identical()
    sim.checker.at_most_once()
    sim.checker.fifo_order()
    return {
        "seed": seed,
        "writes_acked": len(sim.acked),
        "leaders": len(sim.checker.leaders),
        "events": sim.checker.checks,
        "applied_index": next(iter(applied.values())),
        "session_expiries": sim.sessions.expiries,
        **sim.clock_stats(),
        **sim.stats,
    }


def run_swarm_seed(seed: int, chaos_ms: int = 3000, settle_ms: int = 5000) -> dict[str, Any]:
    """A run whose fault mix, batch sizes, timeouts and ensemble size (3 or 5) are
    drawn from the seed too (swarm testing; see Faults.swarm)."""
    rng = random.Random(f"swarm-{seed}")
    faults = Faults.swarm(rng)
    nodes = faults.nodes_hint or rng.choice((3, 3, 5))
    result = run_seed(seed, nodes=nodes, chaos_ms=chaos_ms, settle_ms=settle_ms, faults=faults)
    return {**result, "nodes": nodes}
