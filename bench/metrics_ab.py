"""Does recording metrics cost the write path anything? An A/B in one run.

Rounds alternate a fresh 3-node ensemble (real ``zknode`` processes, fsync on)
without an admin endpoint ("off": the gateway records nothing) and with one
("on": requests, latency and bytes recorded, and every node's ``/metrics``
scraped once a second during the run, as Prometheus would). Each round runs
``zkctl bench --workloads seq,write``; the medians per mode are printed and the
raw results written as JSON.

    python bench/metrics_ab.py --rounds 5 --out bench/results/metrics-ab.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.integration.cluster import ZKCTL, Ensemble


def scrape_until(urls: list[str], stop: threading.Event, counts: list[int]) -> None:
    while not stop.wait(1.0):
        for url in urls:
            try:
                with urllib.request.urlopen(url + "/metrics", timeout=2) as response:
                    response.read()
                counts[0] += 1
            except OSError:
                counts[1] += 1


def one_round(mode: str, seconds: float, seq_ops: int) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"metrics-ab-{mode}-") as directory:
        ensemble = Ensemble(Path(directory), admin=(mode == "on")).start()
        stop, counts = threading.Event(), [0, 0]
        scraper = None
        try:
            if mode == "on":
                urls = [node.admin_url for node in ensemble.nodes.values()]
                scraper = threading.Thread(target=scrape_until, args=(urls, stop, counts))
                scraper.start()
            out = subprocess.run(
                [*ZKCTL, "--conf", directory, "bench", "--workloads", "seq,write",
                 "--seconds", str(seconds), "--seq-ops", str(seq_ops), "--json"],
                capture_output=True, text=True, timeout=300, check=True)
        finally:
            stop.set()
            if scraper is not None:
                scraper.join()
            ensemble.stop()
    results = {r["workload"]: r for r in json.loads(out.stdout)}
    return {"mode": mode, "scrapes": counts[0], "scrape_errors": counts[1],
            "seq_p50_ms": results["seq"]["p50_ms"], "seq_p99_ms": results["seq"]["p99_ms"],
            "write_ops_per_s": results["write"]["ops_per_s"],
            "write_p99_ms": results["write"]["p99_ms"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per mode")
    parser.add_argument("--seconds", type=float, default=5.0, help="the write workload's length")
    parser.add_argument("--seq-ops", type=int, default=2000)
    parser.add_argument("--out", type=Path, help="where to write the raw results (JSON)")
    args = parser.parse_args()
    runs = []
    for round_ in range(args.rounds):
        # Alternate which mode goes first, so a drift in the machine favours neither.
        for mode in (("off", "on") if round_ % 2 == 0 else ("on", "off")):
            runs.append(one_round(mode, args.seconds, args.seq_ops))
            print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for mode in ("off", "on"):
        mine = [r for r in runs if r["mode"] == mode]
        summary[mode] = {key: statistics.median(r[key] for r in mine)
                         for key in ("seq_p50_ms", "seq_p99_ms", "write_ops_per_s",
                                     "write_p99_ms")}
    off, on = summary["off"], summary["on"]
    summary["on_vs_off"] = {
        "write_ops_per_s": round(on["write_ops_per_s"] / off["write_ops_per_s"] - 1, 4),
        "seq_p50_ms": round(on["seq_p50_ms"] / off["seq_p50_ms"] - 1, 4),
    }
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"command": " ".join(sys.argv), "runs": runs,
                                        "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
