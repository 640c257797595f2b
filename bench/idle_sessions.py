"""What idle sessions cost the ensemble: N replicated sessions, each holding one
ephemeral node and pinging like the client library does with a session open (at a
third of the session timeout), spread over the members; the nodes' CPU over a quiet stretch, and whether every session
survived it.

    python bench/idle_sessions.py --sessions 10000 --seconds 60

It starts its own 3-node ensemble (real ``zknode`` processes, fsync on, in a
temporary directory). The sessions are held by ``--procs`` worker processes
speaking the wire protocol directly (the client library's threads would cost
more than what is measured): each opens its session and creates its ephemeral
node through the leader, then keeps one connection to its assigned member and
pings it. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import zmq

from tests.integration.cluster import Ensemble
from zkactors.client import Client
from zkactors.protocol import PROTOCOL_VERSION, pack, unpack


def call(sock: zmq.Socket, rid: int, op: str, *args: object) -> list:
    sock.send(pack([[rid, op, *args]]))
    if not sock.poll(30_000):
        raise TimeoutError(f"no answer to {op}")
    return unpack(sock.recv())[0]


def hold(leader: str, members: list[str], first: int, count: int, timeout_ms: int,
         ping_every: float, seconds: float, ready: multiprocessing.Event, go: multiprocessing.Event,
         out: multiprocessing.Queue) -> None:
    context = zmq.Context()
    context.max_sockets = count + 100
    writer = context.socket(zmq.DEALER)
    writer.linger = 0
    writer.connect(leader)
    idle, failures = [], 0
    last_ping = time.monotonic()
    for i in range(first, first + count):
        if time.monotonic() - last_ping > 1.0:
            # Those set up already keep their sessions alive while the rest open.
            last_ping = time.monotonic()
            for sock in idle:
                sock.send(pack([[5, "ping"]]))
        session_id = secrets.randbits(62) + 1
        call(writer, 1, "hello", PROTOCOL_VERSION, f"idle-{i}", session_id)
        reply = call(writer, 2, "session", timeout_ms, 1, 1)
        if reply[1] != 0:
            raise SystemExit(f"session open failed: {reply}")
        # flags 5: ephemeral (4), with its parent made if missing (1)
        reply = call(writer, 3, "create", f"/idle/s{i}", b"", 5, 2, 1)
        if reply[1] != 0:
            raise SystemExit(f"create failed: {reply}")
        sock = context.socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(members[i % len(members)])
        sock.send(pack([[1, "hello", PROTOCOL_VERSION, f"idle-{i}", session_id]]))
        idle.append(sock)
    # The writer's connection goes quietly (no bye: a bye would drop nothing
    # here, but keep it simple: the node forgets idle connections by itself).
    writer.close()
    for sock in idle:  # the hellos' answers (and any pings' so far)
        if not sock.poll(30_000):
            failures += 1
        while sock.poll(0):
            sock.recv()
    ready.set()
    go.wait()
    ended = time.monotonic() + seconds
    rid = 10
    while time.monotonic() < ended:
        started = time.monotonic()
        rid += 1
        for sock in idle:
            sock.send(pack([[rid, "ping"]]))
        for sock in idle:
            while sock.poll(0):
                reply = unpack(sock.recv())[0]
                if reply[1] != 0:
                    failures += 1
        time.sleep(max(0.0, ping_every - (time.monotonic() - started)))
    out.put(failures)
    for sock in idle:
        sock.close()
    context.term()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--timeout-ms", type=int, default=10_000)
    args = parser.parse_args()
    # As the client library pings an idle connection with a session open.
    ping_every = args.timeout_ms / 3000
    directory = Path(tempfile.mkdtemp(prefix="idle-sessions-"))
    ensemble = Ensemble(directory, extra="\n[limits]\nmax_clients = 20000\n").start()
    try:
        leader = ensemble.wait_for_leader()
        members = [node.client_endpoint for node in ensemble.nodes.values()]
        ready_events, go = [], multiprocessing.Event()
        out: multiprocessing.Queue = multiprocessing.Queue()
        per = args.sessions // args.procs
        workers = []
        began = time.monotonic()
        for k in range(args.procs):
            ready = multiprocessing.Event()
            ready_events.append(ready)
            worker = multiprocessing.Process(target=hold, args=(
                ensemble.nodes[leader].client_endpoint, members, k * per, per,
                args.timeout_ms, ping_every, args.seconds, ready, go, out))
            worker.start()
            workers.append(worker)
        for ready, worker in zip(ready_events, workers, strict=True):
            while not ready.wait(1):
                if not worker.is_alive():
                    raise SystemExit(f"a session holder died (exit {worker.exitcode})")
        opened_in = time.monotonic() - began
        pids = {n: node.proc.pid for n, node in ensemble.nodes.items()}
        before = {n: cpu_seconds(pid) for n, pid in pids.items()}
        go.set()
        started = time.monotonic()
        for worker in workers:
            worker.join(args.seconds + 120)
        wall = time.monotonic() - started
        cpu = {n: round((cpu_seconds(pid) - before[n]) / wall, 4) for n, pid in pids.items()}
        failures = sum(out.get(timeout=10) for _ in workers)
        with Client(ensemble.hosts, session=False) as client:
            remaining = len(client.get_children("/idle"))
            status = client.server_status()
    finally:
        ensemble.stop()
    print(json.dumps({"sessions": per * args.procs, "seconds": round(wall, 1),
                      "opened_in_s": round(opened_in, 1), "node_cpu_fraction": cpu,
                      "ping_failures": failures, "ephemerals_left": remaining,
                      "sessions_left": status.get("sessions"),
                      "command": " ".join(sys.argv)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
