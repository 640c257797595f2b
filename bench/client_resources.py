"""What a client costs its process when the ensemble is away: CPU and file descriptors.

Two measurements, each printed as one JSON object on stdout:

* ``idle HOSTS --seconds S``: one client started against HOSTS (typically ports
  where nothing listens, i.e. a whole ensemble down) and left trying for S
  seconds. Reports the process's CPU time over those seconds (user + system, as
  a fraction of one core) and the open file descriptors sampled twice a second.
* ``failed-starts HOSTS --count N``: N clients in a row whose ``start()`` times
  out, each stopped; reports the descriptors and threads before (after one
  warm-up start, which creates the shared ZeroMQ context) and after, once
  they settle.

Run by ``tests/integration/test_client_resources.py`` (short) and for
BENCHMARKS.md (``--seconds 60``, ``--count 1000``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zkactors.client import Client


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def idle(hosts: str, seconds: float, connect_timeout: float) -> dict:
    client = Client(hosts, connect_timeout=connect_timeout, timeout=10.0)
    failure: list[BaseException] = []

    def start() -> None:
        try:
            client.start(timeout=seconds + 30)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failure.append(exc)

    starter = threading.Thread(target=start, daemon=True)
    starter.start()
    time.sleep(0.5)  # past the first round of attempts
    cpu0, wall0 = cpu_seconds(), time.monotonic()
    fds = []
    while time.monotonic() - wall0 < seconds:
        time.sleep(0.5)
        fds.append(open_fds())
    cpu, wall = cpu_seconds() - cpu0, time.monotonic() - wall0
    state = client.state
    client.stop()
    starter.join(5)
    return {"mode": "idle", "seconds": round(wall, 2), "cpu_seconds": round(cpu, 3),
            "cpu_fraction": round(cpu / wall, 5), "fds_min": min(fds), "fds_max": max(fds),
            "fds": fds, "state": state, "connected": not failure and state == "CONNECTED"}


def failed_starts(hosts: str, count: int, start_timeout: float) -> dict:
    def one() -> None:
        client = Client(hosts, connect_timeout=0.2)
        try:
            client.start(timeout=start_timeout)
        except TimeoutError:
            pass
        else:
            client.stop()
            raise SystemExit(f"a client connected to {hosts}: nothing may listen there")

    one()  # warm-up: the shared ZeroMQ context and its threads
    before_fds, before_threads = settled(open_fds), settled(threading.active_count)
    began = time.monotonic()
    for _ in range(count):
        one()
    elapsed = time.monotonic() - began
    after_fds, after_threads = settled(open_fds, target=before_fds), \
        settled(threading.active_count, target=before_threads)
    return {"mode": "failed-starts", "count": count, "seconds": round(elapsed, 2),
            "fds_before": before_fds, "fds_after": after_fds,
            "threads_before": before_threads, "threads_after": after_threads}


def settled(measure, target: int | None = None, timeout: float = 5.0) -> int:
    """``measure()`` once it reaches ``target`` (sockets close on libzmq's reaper
    thread, a moment after close()), or its value at the deadline."""
    deadline = time.monotonic() + timeout
    value = measure()
    while time.monotonic() < deadline and (target is None or value > target):
        time.sleep(0.05)
        value = measure()
        if target is None:
            break
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p_idle = sub.add_parser("idle")
    p_idle.add_argument("hosts")
    p_idle.add_argument("--seconds", type=float, default=60.0)
    p_idle.add_argument("--connect-timeout", type=float, default=1.5)
    p_starts = sub.add_parser("failed-starts")
    p_starts.add_argument("hosts")
    p_starts.add_argument("--count", type=int, default=1000)
    p_starts.add_argument("--start-timeout", type=float, default=0.01)
    args = parser.parse_args()
    if args.mode == "idle":
        result = idle(args.hosts, args.seconds, args.connect_timeout)
    else:
        result = failed_starts(args.hosts, args.count, args.start_timeout)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
