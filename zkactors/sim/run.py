"""One simulated run: chaos, then heal and settle, then the end-of-run checks."""
from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from zkactors.core.messages import LEADER
from zkactors.sim.cluster import LivenessFailure, Simulation
from zkactors.sim.faults import Faults
from zkactors.sim.trace import Tracer

__all__ = ["LivenessFailure", "end_of_run_checks", "run_seed", "run_swarm_seed",
           "trace_seed"]


def run_seed(seed: int, nodes: int = 3, chaos_ms: int = 3000,
             settle_ms: int = 3000, faults: Faults | None = None,
             strict_replies: bool = True) -> dict[str, Any]:
    sim = Simulation(seed, nodes=nodes, faults=faults, strict_replies=strict_replies)
    sim.run(chaos_ms)
    sim.heal_and_settle(settle_ms)
    return end_of_run_checks(sim, settle_ms)


def end_of_run_checks(sim: Simulation, settle_ms: int) -> dict[str, Any]:
    """After the chaos and the settling: safety, then liveness, then the trees;
    returns the run's figures."""
    seed = sim.seed
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
    sim.watchers.check()
    sim.watchers.caught_up()
    return {
        "seed": seed,
        "writes_acked": len(sim.acked),
        "leaders": len(sim.checker.leaders),
        "events": sim.checker.checks,
        "applied_index": next(iter(applied.values())),
        "session_expiries": sim.sessions.expiries,
        **sim.watchers.stats(),
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


#: ``--until`` conditions: name -> (takes a number, test on the simulation).
UNTIL: dict[str, tuple[bool, Callable[[Simulation, int], bool]]] = {
    "leader": (False, lambda sim, _: any(
        n.up and n.log.role == LEADER for n in sim.nodes.values())),
    "leader-change": (False, lambda sim, _: len(sim.checker.leaders) >= 2),
    "commit": (True, lambda sim, index: any(
        n.up and n.log.commit_index >= index for n in sim.nodes.values())),
    "crash": (False, lambda sim, _: any(n.incarnation > 1 or not n.up
                                        for n in sim.nodes.values())),
    "ms": (True, lambda sim, ms: sim.now >= ms),
}


def trace_seed(seed: int, write: Callable[[str], None], nodes: int = 3,
               chaos_ms: int = 3000, settle_ms: int = 3000, faults: Faults | None = None,
               until: tuple[str, int] | None = None, every_message: bool = False,
               clients: bool = False, command: str = "") -> dict[str, Any] | None:
    """The run :func:`run_seed` makes, told line by line to ``write``, stopped at
    the end of the millisecond in which ``until`` first holds (see :data:`UNTIL`):
    then None. Run to its end, it returns what :func:`run_seed` returns (the
    end-of-run checks passed)."""
    tracer = Tracer(list(range(1, nodes + 1)), write, every_message, clients)
    left_out = [what for what, shown in (("routine heartbeats and acks", every_message),
                                         ("clients", clients)) if not shown]
    tracer.header(command or f"python -m zkactors.sim --seed {seed} --trace",
                  f"seed {seed}, {nodes} nodes, {chaos_ms} ms of chaos then {settle_ms} ms "
                  f"healed{'; left out: ' + ' and '.join(left_out) if left_out else ''}")
    sim = Simulation(seed, nodes=nodes, faults=faults, trace=tracer)
    test = None
    if until is not None:
        name, number = until
        test = UNTIL[name][1]

    def advance(end: int, chaos: bool) -> bool:
        # One millisecond at a time: run() takes every event up to its bound, in
        # the same order as one long call would.
        while sim.now < end:
            sim.run(sim.now + 1, chaos=chaos)
            if test is not None and test(sim, number):
                tracer.note(sim.now, None, f"stops: {until[0]}"
                                           f"{' ' + str(number) if UNTIL[until[0]][0] else ''}")
                tracer.close()
                return True
        return False

    if advance(chaos_ms, True):
        return None
    sim.heal(settle_ms)
    if advance(sim.now + settle_ms, False):
        return None
    result = end_of_run_checks(sim, settle_ms)
    tracer.note(sim.now, None, "end of the run: every check passed")
    tracer.close()
    return result
