"""Lock and session figures for zkactors, the same workloads as the anchors'
``lock_zk.py`` (ZooKeeper + kazoo) so the two can be run side by side:

* one client: Lock acquire + release, 500 cycles (cycles/s, p50, p99);
* 8 sessions contending for one Lock, 50 acquisitions each (acquisitions/s,
  hand-off from one release to the next holder p50/p99, overlapping holders);
* a client killed with -9 while holding an ephemeral node, session timeout 4 s:
  seconds from the kill until a watcher sees the node deleted.

    python bench/lock_bench.py --hosts 127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from zkactors.client import Client


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))], 2)


def one_client(hosts: str, cycles: int = 500) -> dict:
    with Client(hosts) as client:
        lock = client.Lock("/bench/lock1", "me")
        latencies = []
        for _ in range(cycles):
            began = time.perf_counter()
            lock.acquire()
            lock.release()
            latencies.append((time.perf_counter() - began) * 1000)
    return {"cycles_per_s": round(cycles / (sum(latencies) / 1000), 1),
            "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99)}


def contended(hosts: str, threads: int = 8, each: int = 50) -> dict:
    clients = [Client(hosts) for _ in range(threads)]
    for client in clients:
        client.start()
    holder: list = [None]
    overlaps, handoffs, last_release = [0], [], [None]
    mutex = threading.Lock()

    def work(k: int) -> None:
        lock = clients[k].Lock("/bench/lock2", str(k))
        for _ in range(each):
            lock.acquire()
            now = time.perf_counter()
            with mutex:
                if holder[0] is not None:
                    overlaps[0] += 1
                holder[0] = k
                if last_release[0] is not None:
                    handoffs.append((now - last_release[0]) * 1000)
                holder[0] = None
                last_release[0] = time.perf_counter()
            lock.release()

    began = time.perf_counter()
    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    for client in clients:
        client.stop()
    return {"acquisitions_per_s": round(threads * each / elapsed, 1),
            "handoff_p50_ms": percentile(handoffs, 0.5),
            "handoff_p99_ms": percentile(handoffs, 0.99), "violations": overlaps[0]}


def expiry(hosts: str, timeout: float = 4.0) -> dict:
    code = f"""
import sys, time
sys.path.insert(0, {str(REPO)!r})
from zkactors.client import Client
client = Client({hosts!r}, timeout={timeout}); client.start()
client.create('/bench/eph', b'x', ephemeral=True, makepath=True)
print('ready', flush=True); time.sleep(60)
"""
    with Client(hosts) as watcher:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()
        gone = threading.Event()
        watcher.exists("/bench/eph", watch=lambda event: gone.set())
        began = time.perf_counter()
        proc.kill()
        proc.wait()
        gone.wait(30)
        elapsed = time.perf_counter() - began
    return {"session_timeout_s": timeout, "kill_to_ephemeral_gone_s": round(elapsed, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="127.0.0.1:2181,127.0.0.1:2182,127.0.0.1:2183")
    args = parser.parse_args()
    print(json.dumps({"zkactors_one_client": one_client(args.hosts),
                      "zkactors_contended_8": contended(args.hosts),
                      "zkactors_expiry": expiry(args.hosts)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
