"""``python -m zkactors.sim --seeds N``: run many seeded simulations; a failure
prints the one command that replays it.

``python -m zkactors.sim --seed N --trace [--until leader|leader-change|crash|
commit I|ms T]``: tell one run as a timeline, a line per event in the lane of
its node (zkactors.sim.trace)."""

from __future__ import annotations

import argparse
import sys
import time

from zkactors.sim.faults import STRESS, Faults
from zkactors.sim.run import UNTIL, run_seed, run_swarm_seed, trace_seed


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
    parser.add_argument("--trace", action="store_true",
                        help="tell the run of --seed as a timeline, one event per line")
    parser.add_argument("--until", nargs="+", metavar="WHAT",
                        help="with --trace, stop once this holds: leader, leader-change, "
                             "crash, commit INDEX or ms TIME")
    parser.add_argument("--every-message", action="store_true",
                        help="with --trace, show routine heartbeats and acks too")
    parser.add_argument("--clients", action="store_true",
                        help="with --trace, show clients' requests and answers too")
    args = parser.parse_args(argv)
    if args.trace or args.until or args.every_message or args.clients:
        return _trace(parser, args, argv)
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


def _trace(parser: argparse.ArgumentParser, args: argparse.Namespace,
           argv: list[str] | None) -> int:
    if not args.trace or args.seed is None or args.swarm:
        parser.error("--until, --every-message and --clients go with --trace, and --trace "
                     "with one --seed (not --swarm)")
    until = None
    if args.until:
        name, *rest = args.until
        if name not in UNTIL or len(rest) != int(UNTIL[name][0]) or \
                (rest and not rest[0].isdigit()):
            parser.error(f"--until takes one of: leader, leader-change, crash, commit "
                         f"INDEX, ms TIME (got {' '.join(args.until)!r})")
        until = (name, int(rest[0]) if rest else 0)
    options = {}
    if args.perfect_clocks:
        options.update(drift=0, clock_jump=0, wall_step=0, pause=0)
    if args.stress:
        options.update(STRESS)
    words = sys.argv[1:] if argv is None else argv
    try:
        trace_seed(args.seed, print, nodes=args.nodes, chaos_ms=args.ms,
                   faults=Faults(**options) if options else None, until=until,
                   every_message=args.every_message, clients=args.clients,
                   command="python -m zkactors.sim " + " ".join(words))
    except Exception as err:  # noqa: BLE001 - the trace so far shows how it came to this
        print(f"FAILED: {type(err).__name__}: {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
