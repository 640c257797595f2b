"""``python -m zkactors.sim --seeds N``: run many seeded simulations; a failure
prints the one command that replays it."""

from __future__ import annotations

import argparse
import sys
import time

from zkactors.sim.faults import STRESS, Faults
from zkactors.sim.run import run_seed, run_swarm_seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zkactors.sim", description=__doc__)
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds (default 100)")
    parser.add_argument("--first", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--seed", type=int, help="run just this seed (a replay)")
    parser.add_argument("--nodes", type=int, default=3, help="ensemble size (default 3)")
    parser.add_argument("--ms", type=int, default=3000, help="simulated ms of chaos per seed")
    parser.add_argument("--perfect-clocks", action="store_true",
                        help="no drift, clock jumps, wall steps or pauses (the old model)")
    parser.add_argument("--stress", action="store_true",
                        help="slower network and disks, more duplicates and snapshots")
    parser.add_argument("--swarm", action="store_true",
                        help="each seed draws its own fault mix, batch sizes, timeouts and "
                             "ensemble size (swarm testing)")
    parser.add_argument("--count-lost-replies", action="store_true",
                        help="count a lost reply instead of failing on it")
    args = parser.parse_args(argv)
    options = {}
    if args.perfect_clocks:
        options.update(drift=0, clock_jump=0, wall_step=0, pause=0)
    if args.stress:
        options.update(STRESS)
    faults = Faults(**options) if options else None
    flag = (" --perfect-clocks" if args.perfect_clocks else "") + \
        (" --stress" if args.stress else "") + (" --swarm" if args.swarm else "") + \
        (" --count-lost-replies" if args.count_lost_replies else "")
    seeds = [args.seed] if args.seed is not None else range(args.first, args.first + args.seeds)
    started = time.monotonic()
    totals = {"writes_acked": 0, "leaders": 0, "events": 0, "clock_jumps": 0,
              "wall_steps": 0, "pauses": 0, "snapshots_taken": 0, "compactions": 0,
              "snapshots_installed": 0, "snapshot_chunks": 0, "syncs_ok": 0,
              "syncs_failed": 0, "reads_checked": 0, "retries": 0, "unknown_outcome_retries": 0, "timeouts": 0,
              "duplicates_suppressed": 0, "forgotten": 0, "lost_replies": 0,
              "crashes_of_all": 0, "out_of_order_refused": 0, "reads_refused": 0}
    for seed in seeds:
        try:
            if args.swarm:
                result = run_swarm_seed(seed, chaos_ms=args.ms)
            else:
                result = run_seed(seed, nodes=args.nodes, chaos_ms=args.ms, faults=faults,
                                  strict_replies=not args.count_lost_replies)
        except Exception as err:  # noqa: BLE001 - a crash of a core is a failure too
            print(f"FAILED: {type(err).__name__}: {err}")
            print(f"replay: python -m zkactors.sim --seed {seed} --nodes {args.nodes} "
                  f"--ms {args.ms}{flag}")
            return 1
        for key in totals:
            totals[key] += result[key]
    print(f"{len(seeds)} seeds passed in {time.monotonic() - started:.1f} s "
          f"({args.nodes} nodes, {args.ms} ms of chaos each): {totals}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
