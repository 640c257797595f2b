"""``python -m zkactors.chaos``: a Jepsen-style run on this machine (needs root).

    python -m zkactors.chaos --seconds 60 --nodes 3 --seed 1 --out chaos-runs

Prints the summary as JSON and leaves, under ``--out/run-<id>/``, the history
(``history.jsonl``), the summary (``summary.json``), the plot (``report.svg``) and
each node's log. Exit 0 when no anomaly was found, 1 when one was, 2 when the run
could not be made (no root, no ``nft``: run ``bin/install-system-deps``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from zkactors.chaos.nemesis import KINDS
from zkactors.chaos.run import RunConfig, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zkactors.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long faults go on")
    parser.add_argument("--nodes", type=int, default=3, choices=(3, 5))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--keys", type=int, default=3)
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help=f"fault kinds, comma-separated (default: all of {', '.join(KINDS)})")
    parser.add_argument("--out", type=Path, default=Path("chaos-runs"))
    args = parser.parse_args(argv)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        parser.error(f"--kinds: unknown {', '.join(unknown) or '(none given)'}")
    if args.seconds <= 0 or args.clients < 1 or args.keys < 1:
        parser.error("--seconds, --clients and --keys must be positive")
    config = RunConfig(seconds=args.seconds, nodes=args.nodes, seed=args.seed,
                       clients=args.clients, keys=args.keys, kinds=kinds, out=args.out)
    try:
        summary = run(config)
    except RuntimeError as err:
        print(f"chaos: {err}", file=sys.stderr)
        return 2
    json.dump(summary, sys.stdout, indent=1)
    print()
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
