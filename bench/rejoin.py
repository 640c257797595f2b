"""How fast a restarted node serves again (issue #13, part 2).

A 3-node ensemble of its own (loopback, free ports, fsync on, snapshots off so
that the whole log is "since the last snapshot"), a writer making ``--writes``
sets over 1,000 keys, ``--window`` in flight (the leader batches what arrives
together into one log entry, so a small window gives about one entry per set); one node (a follower, or the leader as in
the anchors' W4) is killed with -9 halfway through, the writes go on, and once
they are done it is started again. Reported, from the moment its process starts:

* ``loaded_s`` — its state is loaded (log event ``state_loaded``, which also
  says how long the loading itself took: ``loading_took_s``);
* ``leader_known_s`` — it follows a leader (first ``role`` event naming one);
* ``caught_up_s`` — it says it serves reads and has applied the leader's commit
  at the restart (polled on its client port every 10 ms: the figure includes up
  to 10 ms of polling);

and the same for ``--runs`` restarts (each on a fresh ensemble). Medians printed.

    python bench/rejoin.py --writes 100000 --victim follower --runs 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.localensemble import Ensemble, wait_for
from zkactors.client import Client

KEYS = 1_000
VALUE = b"v" * 100


def write(hosts: str, count: int, window: int, on_half=None) -> None:
    """``count`` pipelined sets over :data:`KEYS` keys; ``on_half`` runs (on this
    thread) once half of them are acknowledged."""
    with Client(hosts, session=False, request_timeout=30) as client:
        for k in range(KEYS):
            client.create_async(f"/k{k}", VALUE)
        client.sync("/")
        inflight: list = []
        for i in range(count):
            inflight.append(client.set_async(f"/k{i % KEYS}", VALUE))
            if len(inflight) >= window:
                for future in inflight:
                    future.result(60)
                inflight = []
            if on_half is not None and i == count // 2:
                on_half()
                on_half = None
        for future in inflight:
            future.result(60)


def log_events(path: Path, since: float) -> list[dict]:
    events = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        stamp = event.get("timestamp")
        if not stamp:
            continue
        event["at"] = datetime.fromisoformat(stamp).timestamp()
        if event["at"] >= since:
            events.append(event)
    return events


def one_run(writes: int, victim_kind: str, window: int) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="zk-rejoin-"))
    ensemble = Ensemble(directory)
    try:
        for node in (1, 2, 3):
            ensemble.start(node)
        leader = wait_for(ensemble.leader, 30, "a leader", interval=0.1)
        victim = leader if victim_kind == "leader" else next(n for n in (1, 2, 3) if n != leader)
        killed_at: list[float] = []

        def kill() -> None:
            ensemble.kill(victim)
            killed_at.append(time.monotonic())

        writer = threading.Thread(target=write, args=(ensemble.hosts, writes, window),
                                  kwargs={"on_half": kill})
        writer.start()
        writer.join()
        others = [n for n in (1, 2, 3) if n != victim]
        target = max(ensemble.status(n).get("applied_zxid", 0) for n in others)
        down_s = time.monotonic() - killed_at[0]
        began_wall = ensemble.start(victim)
        began = time.monotonic()

        def caught_up() -> bool:
            row = ensemble.status(victim)
            return bool(row.get("serving_reads")) and row.get("applied_zxid", 0) >= target

        wait_for(caught_up, 60, "the restarted node to catch up")
        caught_up_s = time.monotonic() - began
        events = log_events(ensemble.log_path(victim), began_wall)
        loaded = next((e["at"] for e in events if e.get("event") == "state_loaded"), None)
        known = next((e["at"] for e in events
                      if e.get("event") == "role" and e.get("leader")), None)
        caught_up_logged = next((e["at"] for e in events
                                 if e.get("event") == "role" and e.get("caught_up")), None)
        loaded_event = next((e for e in events if e.get("event") == "state_loaded"), {})
        loaded_entries = loaded_event.get("entries")
        return {"victim": victim_kind, "writes": writes, "down_s": round(down_s, 2),
                "entries_at_restart": loaded_entries,
                "loaded_s": round(loaded - began_wall, 3) if loaded else None,
                "loading_took_s": loaded_event.get("seconds"),
                "leader_known_s": round(known - began_wall, 3) if known else None,
                "caught_up_logged_s": (round(caught_up_logged - began_wall, 3)
                                       if caught_up_logged else None),
                "caught_up_s": round(caught_up_s, 3)}
    finally:
        ensemble.close()
        shutil.rmtree(directory, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=100_000)
    parser.add_argument("--victim", choices=("follower", "leader"), default="follower")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=int, default=4,
                        help="sets in flight (small: about one log entry per set)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    runs = []
    for i in range(args.runs):
        runs.append(one_run(args.writes, args.victim, args.window))
        print(json.dumps(runs[-1]), flush=True)
    summary = {"commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                        capture_output=True, text=True,
                                        check=False).stdout.strip(),
               "cpus": os.cpu_count(), "runs": runs}
    for key in ("loaded_s", "leader_known_s", "caught_up_s"):
        values = [r[key] for r in runs if r[key] is not None]
        summary[f"median_{key}"] = round(statistics.median(values), 3) if values else None
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
