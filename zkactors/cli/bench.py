"""``zkctl bench``: latency and throughput of a running ensemble.

Workloads:

* ``seq``   — one :class:`~zkactors.client.Client`, sequential ``set`` of one key:
  what a user's blocking call costs, p50/p99.
* ``write`` — ``--clients`` connections, each keeping ``--inflight`` ``set``
  requests in flight, for ``--seconds``: replicated, fsynced write throughput.
* ``read``  — the same with ``get``.
* ``notify``, ``fanout`` — watch notification latency and fan-out (see
  :mod:`zkactors.cli.bench_watch`); not in the default set.

The pipelined workloads speak the wire protocol directly from ``--procs`` worker
processes (each one thread polling its share of the connections), because the
benchmark shares the machine's cores with the node: a lean load generator leaves
more of them to the thing being measured. Each connection says ``hello`` like any
client and gets the same validation, flow control and replies.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from typing import Any

from zkactors.cli import bench_watch
from zkactors.protocol import (
    OP_BYE,
    OP_GET,
    OP_HELLO,
    OP_SET,
    PROTOCOL_VERSION,
    pack,
    pack_batch,
    unpack,
)

WORKLOADS = ("seq", "write", "read", "notify", "fanout", "fanout-sub")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workloads", default="seq,write,read",
                   help="comma-separated, from: " + ",".join(WORKLOADS))
    p.add_argument("--clients", type=int, default=32, help="connections (default 32)")
    p.add_argument("--inflight", type=int, default=8, help="requests in flight each (default 8)")
    p.add_argument("--seconds", type=float, default=5.0, help="per pipelined workload")
    p.add_argument("--procs", type=int, default=2, help="load generator processes (default 2)")
    p.add_argument("--value-size", type=int, default=100, help="bytes per value (default 100)")
    p.add_argument("--seq-ops", type=int, default=2000, help="operations in 'seq'")
    p.add_argument("--notify-sets", type=int, default=200, help="sets in 'notify'")
    p.add_argument("--watchers", type=int, default=1000, help="sessions in 'fanout'")
    p.add_argument("--watch-procs", type=int, default=4,
                   help="processes holding the 'fanout' sessions (default 4)")
    p.add_argument("--fanout-rounds", type=int, default=3, help="sets in 'fanout'")
    p.add_argument("--json", action="store_true", help="print results as JSON")


def percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cmd_bench(args: argparse.Namespace) -> int:
    from zkactors.cli.zkctl import hosts_of
    from zkactors.cli.zkctl_status import status

    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        print(f"zkctl: unknown workload(s) {unknown}; choose from {WORKLOADS}", file=sys.stderr)
        return 2
    hosts = hosts_of(args)
    rows = status(args.conf, args.hosts, args.timeout)
    leaders = [row["endpoint"] for row in rows if row["role"] == "leader"]
    target = leaders[0] if leaders else hosts.split(",")[0]
    others = [row["endpoint"] for row in rows
              if row["role"] == "follower" and row.get("endpoint")] or [target]
    value = b"x" * args.value_size
    results = []
    for workload in workloads:
        if workload == "seq":
            results.append(bench_sequential(target, value, args.seq_ops))
        elif workload == "notify":
            results.append(bench_watch.bench_notify(target, others[0], args.notify_sets))
        elif workload == "fanout":
            members = [row["endpoint"] for row in rows if row.get("endpoint")] or [target]
            results.append(bench_watch.bench_fanout(target, members, args.watchers,
                                                    args.watch_procs, args.fanout_rounds))
        elif workload == "fanout-sub":
            publishers = [row["watch_endpoint"] for row in rows if row.get("watch_endpoint")]
            results.append(bench_watch.bench_fanout_sub(target, publishers, args.watchers,
                                                        args.watch_procs, args.fanout_rounds))
        else:
            results.append(bench_pipelined(target, workload, value, args.clients,
                                           args.inflight, args.seconds, args.procs))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"target {target}, value {args.value_size} B")
    print(f"{'workload':<8} {'ops':>8} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8}  shape")
    for r in results:
        if r["workload"] == "notify":
            print(f"notify   {r['sets']:>8} sets: ack->notify p50 {r['ack_to_notify_p50_ms']} "
                  f"p99 {r['ack_to_notify_p99_ms']} ms; send->notify p50 "
                  f"{r['send_to_notify_p50_ms']} p99 {r['send_to_notify_p99_ms']} ms; "
                  f"missed {r['missed']}")
        elif r["workload"] in ("fanout", "fanout-sub"):
            print(f"{r['workload']:<10} {r['watchers']:>6} watchers: send->all per round "
                  f"{[x['send_to_all_ms'] for x in r['rounds']]} ms, median "
                  f"{r['send_to_all_median_ms']} ms")
        else:
            print(f"{r['workload']:<8} {r['ops']:>8} {r['ops_per_s']:>9.0f} "
                  f"{r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f}  {r['shape']}")
    return 0


def bench_sequential(endpoint: str, value: bytes, ops: int) -> dict[str, Any]:
    from zkactors.client import Client

    with Client(endpoint, name="bench-seq", session=False) as client:
        client.ensure_path("/bench")
        path = "/bench/seq"
        if client.exists(path) is None:
            client.create(path, value)
        for _ in range(min(200, ops)):  # warm up the connection and the node
            client.set(path, value)
        latencies = []
        started = time.perf_counter()
        for _ in range(ops):
            t0 = time.perf_counter()
            client.set(path, value)
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
    return _summary("seq", latencies, elapsed, "1 client, sequential set via Client")


def bench_pipelined(endpoint: str, workload: str, value: bytes, clients: int, inflight: int,
                    seconds: float, procs: int) -> dict[str, Any]:
    from zkactors.client import Client

    procs = max(1, min(procs, clients))
    with Client(endpoint, name="bench-setup", session=False) as client:
        client.ensure_path("/bench")
        for i in range(clients):
            path = f"/bench/c{i}"
            if client.exists(path) is None:
                client.create(path, value)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Barrier(procs + 1)
    results = ctx.Queue()
    shares = [list(range(i, clients, procs)) for i in range(procs)]
    workers = [ctx.Process(target=_worker, daemon=True,
                           args=(endpoint, workload, value, share, inflight, seconds,
                                 ready, results))
               for share in shares]
    for w in workers:
        w.start()
    ready.wait(timeout=60)
    outcomes = [results.get(timeout=seconds + 60) for _ in workers]
    for w in workers:
        w.join(10)
    errors = [o["error"] for o in outcomes if o.get("error")]
    if errors:
        raise RuntimeError(f"bench worker failed: {errors[0]}")
    latencies = [x for o in outcomes for x in o["latencies"]]
    elapsed = max(o["elapsed"] for o in outcomes)
    ops = sum(o["ops"] for o in outcomes)
    failed = sum(o["failed"] for o in outcomes)
    summary = _summary(workload, latencies, elapsed,
                       f"{clients} conns x {inflight} in flight, {procs} procs", ops=ops)
    summary["failed"] = failed
    return summary


def _worker(endpoint: str, workload: str, value: bytes, conns: list[int], inflight: int,
            seconds: float, ready: Any, results: Any) -> None:
    import zmq

    try:
        ctx = zmq.Context()
        sockets = []
        for i in conns:
            s = ctx.socket(zmq.DEALER)
            s.linger = 0
            s.connect(endpoint)
            s.send(pack([[0, OP_HELLO, PROTOCOL_VERSION, f"bench-{i}"]]))
            if not s.poll(10_000):
                raise RuntimeError("no hello reply")
            [[_, code, result, _]] = unpack(s.recv())
            if code != 0:
                raise RuntimeError(f"hello refused: {result}")
            sockets.append((s, f"/bench/c{i}"))
        poller = zmq.Poller()
        for s, _ in sockets:
            poller.register(s, zmq.POLLIN)
        paths = dict(sockets)

        def request(rid: int, path: str) -> bytes:
            if workload == "write":
                return pack([rid, OP_SET, path, value, -1])
            return pack([rid, OP_GET, path])

        ready.wait(timeout=60)
        sent_at: dict[int, float] = {}
        latencies: list[float] = []
        ops = failed = 0
        next_rid = 1
        started = time.perf_counter()
        end = started + seconds
        for s, path in sockets:
            batch = []
            for _ in range(inflight):
                sent_at[next_rid] = started
                batch.append(request(next_rid, path))
                next_rid += 1
            s.send(pack_batch(batch))
        drain_deadline = end + 10
        while sent_at and time.perf_counter() < drain_deadline:
            for s, _ in poller.poll(100):
                while True:
                    try:
                        replies = unpack(s.recv(zmq.NOBLOCK))
                    except zmq.Again:
                        break
                    now = time.perf_counter()
                    batch = []
                    for rid, code, _, _ in replies:
                        t0 = sent_at.pop(rid, None)
                        if t0 is None:
                            continue
                        if code == 0:
                            ops += 1
                            latencies.append(now - t0)
                        else:
                            failed += 1
                        if now < end:
                            sent_at[next_rid] = now
                            batch.append(request(next_rid, paths[s]))
                            next_rid += 1
                    if batch:
                        s.send(pack_batch(batch))
        elapsed = time.perf_counter() - started
        for s, _ in sockets:  # end the sessions now rather than at their timeout
            s.send(pack([[0, OP_BYE]]))
        results.put({"ops": ops, "failed": failed + len(sent_at), "elapsed": elapsed,
                     "latencies": latencies})
        ctx.destroy(linger=200)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        results.put({"error": repr(exc)})


def _summary(workload: str, latencies: list[float], elapsed: float, shape: str,
             ops: int | None = None) -> dict[str, Any]:
    ops = len(latencies) if ops is None else ops
    return {
        "workload": workload,
        "ops": ops,
        "seconds": round(elapsed, 3),
        "ops_per_s": round(ops / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3) if latencies else float("nan"),
        "shape": shape,
    }
