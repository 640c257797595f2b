"""One simulated run: chaos, then heal and settle, then the end-of-run checks."""

from __future__ import annotations

from typing import Any

from zkactors.sim.cluster import Simulation


def run_seed(seed: int, nodes: int = 3, chaos_ms: int = 3000,
             settle_ms: int = 3000) -> dict[str, Any]:
    sim = Simulation(seed, nodes=nodes)
    sim.run(chaos_ms)
    sim.heal_and_settle(settle_ms)
    sim.checker.acknowledged_writes_survive()
    applied = {node.id: node.store.applied_index for node in sim.nodes.values()}
    if len(set(applied.values())) != 1:
        raise AssertionError(f"seed {seed}: nodes did not converge after healing: {applied}")
    return {
        "seed": seed,
        "writes_acked": len(sim.acked),
        "leaders": len(sim.checker.leaders),
        "events": sim.checker.checks,
        "applied_index": next(iter(applied.values())),
    }
