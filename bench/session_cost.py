"""What watching sessions cost the process that holds them.

    bin/zkctl up
    python bench/session_cost.py 250

Opens N client sessions in this one process (spread over the conf/ ensemble's
members), each with a persistent watch on /bench/fanout, then reports:

* idle: CPU of this process and of each node over 10 s with nothing happening
  (pings, heartbeats and timers only);
* per set (3 rounds): time from sending the set to the first, the median and the
  last callback, and this process's CPU time for the round divided by N.

Prints one JSON object. Times are time.monotonic(); CPU from /proc.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import threading
import time

import zmq

from zkactors.client import Client
from zkactors.logsetup import configure_logging

ENDPOINTS = ["tcp://127.0.0.1:2181", "tcp://127.0.0.1:2182", "tcp://127.0.0.1:2183"]
KEY = "/bench/fanout"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def node_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if b"zknode" in f.read():
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def main(sessions: int) -> dict:
    configure_logging("warning")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    zmq.Context.instance().set(zmq.MAX_SOCKETS, 16 * sessions + 64)
    with Client(ENDPOINTS[0]) as writer:
        writer.ensure_path("/bench")
        if writer.exists(KEY) is None:
            writer.create(KEY, b"0")
        heard: list[float] = []
        lock = threading.Lock()

        def on_event(_event: object) -> None:
            at = time.monotonic()
            with lock:
                heard.append(at)

        clients = []
        try:
            for i in range(sessions):
                client = Client(ENDPOINTS[i % len(ENDPOINTS)], connect_timeout=5.0)
                client.start(timeout=30)
                client.add_watch(KEY, on_event)
                clients.append(client)
            time.sleep(2.0)  # let the last subscriptions settle
            me, nodes = os.getpid(), node_pids()
            before = {pid: cpu_seconds(pid) for pid in [me, *nodes]}
            started = time.monotonic()
            time.sleep(10.0)
            took = time.monotonic() - started
            idle = {("self" if pid == me else f"node pid {pid}"):
                    round(100 * (cpu_seconds(pid) - cpu) / took, 1) for pid, cpu in before.items()}
            rounds = []
            for _ in range(3):
                with lock:
                    heard.clear()
                cpu0, sent = time.process_time(), time.monotonic()
                writer.set(KEY, b"x")
                deadline = time.monotonic() + 10
                while len(heard) < sessions and time.monotonic() < deadline:
                    time.sleep(0.001)
                cpu = time.process_time() - cpu0
                with lock:
                    got = sorted(heard)
                rounds.append({
                    "notified": len(got),
                    "send_to_first_ms": round((got[0] - sent) * 1000, 1) if got else None,
                    "send_to_median_ms": round((statistics.median(got) - sent) * 1000, 1)
                    if got else None,
                    "send_to_all_ms": round((got[-1] - sent) * 1000, 1)
                    if len(got) == sessions else None,
                    "cpu_us_per_session": round(cpu / sessions * 1e6),
                })
                time.sleep(1.0)
        finally:
            for client in clients:
                client.stop()
    return {"sessions": sessions, "threads_per_session_note": "agent, state events, callbacks",
            "idle_cpu_pct": idle, "rounds": rounds}


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 250), indent=2))
