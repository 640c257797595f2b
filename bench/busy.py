"""Does a busy machine cost the ensemble its leader? (issue #13, part 4)

A 3-node ensemble of its own (``bench/localensemble.py``), ``--hogs`` CPU-bound
processes competing with it for the cores, and a moderate write load (``--rate``
sets per second, paced) for ``--seconds``. Counted from the nodes' own logs:
leaderships taken after the first (``role`` events naming the node leader) and
campaigns (``candidate``). Then, still busy, ``--kills`` times: the leader is
killed (-9) while a writer sets in a loop, and the time from the kill to the
first acknowledged write sent after it is taken (as the anchors' W4 does); the
node is restarted and the ensemble given time to settle before the next.

    python bench/busy.py --hogs 3 --seconds 600 --rate 200 --kills 5 --json out.json

Only processes this script starts are stopped, by their PIDs.
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.localensemble import Ensemble, wait_for
from zkactors.client import Client

STORAGE = "snapshot_every = 100000\nlog_retain_entries = 10000"
HOG = "while True:\n    pass\n"


def role_events(ensemble: Ensemble) -> list[dict]:
    events = []
    for node in (1, 2, 3):
        for line in ensemble.log_path(node).read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "role" and event.get("actor") == "gateway":
                events.append(event | {"node": node})
    return events


def leaderships(events: list[dict]) -> set[tuple[int, int]]:
    return {(e["node"], e["term"]) for e in events if e.get("role") == "leader"}


def paced_writes(hosts: str, rate: float, stop: threading.Event) -> dict:
    latencies, failures = [], 0
    with Client(hosts, session=False, request_timeout=10) as client:
        client.create("/busy", b"")
        period = 1.0 / rate
        due = time.monotonic()
        while not stop.is_set():
            due += period
            began = time.perf_counter()
            try:
                client.set("/busy", b"x" * 100)
                latencies.append((time.perf_counter() - began) * 1000)
            except Exception:  # noqa: BLE001 - counted: the point is how many fail
                failures += 1
            pause = due - time.monotonic()
            if pause > 0:
                stop.wait(pause)
            else:
                due = time.monotonic()  # behind: don't burst to catch up
    latencies.sort()

    def pick(q: float) -> float | None:
        return round(latencies[int(q * (len(latencies) - 1))], 2) if latencies else None

    return {"writes_ok": len(latencies), "writes_failed": failures,
            "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": pick(1.0)}


def failover(ensemble: Ensemble) -> float:
    """Kill the leader while a client sets in a loop; seconds from the kill to the
    first acknowledged set sent after it."""
    leader = wait_for(ensemble.leader, 30, "a leader", interval=0.1)
    with Client(ensemble.hosts, session=False, request_timeout=10) as client:
        client.set("/busy", b"before")
        ensemble.kill(leader)
        killed = time.monotonic()
        deadline, took, failed = killed + 30, None, 0
        while took is None and time.monotonic() < deadline:
            try:
                client.set("/busy", b"after")
                took = time.monotonic() - killed
            except Exception:  # noqa: BLE001 - retried until the deadline
                failed += 1
        if took is None:
            raise TimeoutError(f"no write acknowledged within 30 s of the kill ({failed} failed)")
    ensemble.start(leader)
    wait_for(lambda: ensemble.status(leader).get("serving_reads"), 30, "the node back",
             interval=0.1)
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hogs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="zk-busy-"))
    ensemble = Ensemble(directory, STORAGE)
    hogs: list[subprocess.Popen] = []
    try:
        for node in (1, 2, 3):
            ensemble.start(node)
        wait_for(ensemble.leader, 30, "a leader", interval=0.1)
        first = leaderships(role_events(ensemble))
        hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(args.hogs)]
        stop = threading.Event()
        result: dict = {}
        writer = threading.Thread(
            target=lambda: result.update(paced_writes(ensemble.hosts, args.rate, stop)))
        writer.start()
        stop.wait(args.seconds)
        stop.set()
        writer.join(60)
        events = role_events(ensemble)
        steady = {
            "leader_changes": len(leaderships(events) - first),
            "campaigns": sum(1 for e in events if e.get("role") == "candidate"),
            **result,
        }
        print(json.dumps(steady), flush=True)
        took = []
        for _ in range(args.kills):
            took.append(round(failover(ensemble), 3))
            print(json.dumps({"failover_s": took[-1]}), flush=True)
            time.sleep(2)  # settle (the restarted node catches up) before the next kill
        summary = {
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                     capture_output=True, text=True,
                                     check=False).stdout.strip(),
            "cpus": os.cpu_count(), "hogs": args.hogs, "seconds": args.seconds,
            "rate": args.rate, **steady, "failover_s": took,
            "median_failover_s": round(statistics.median(took), 3) if took else None,
        }
        print(json.dumps(summary))
        if args.json:
            args.json.write_text(json.dumps(summary, indent=1) + "\n")
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(10)
        ensemble.close()
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
