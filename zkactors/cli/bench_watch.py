"""``zkctl bench --workloads notify,fanout``: how fast changes reach watchers.

* ``notify`` — a writer connected to the leader sets one key ``--notify-sets``
  times; a watcher connected to a follower (``add_watch``) gets each change. Per
  set: set sent → callback, and set acknowledged → callback, p50/p99. (The same
  shape as the anchors' W5, so the figures compare with ZooKeeper's and etcd's.)
* ``fanout`` — ``--watchers`` client sessions, each with its own connection and
  persistent watch on one key, spread over ``--watch-procs`` processes and over
  the members; one set, and the time until the first, the median and the last
  watcher's callback ran. ``--fanout-rounds`` sets, each measured.

* ``fanout-sub`` — the same with bare SUB sockets (``--watchers`` of them, one
  poller thread per process): what the nodes' PUB fan-out costs, without the
  client library's threads per session. On this 2-core machine a thousand full
  sessions (four threads each) starve the nodes themselves; this shape does not.

Times come from ``time.monotonic()``, one clock for every process on the machine.
"""

from __future__ import annotations

import multiprocessing
import statistics
import threading
import time
from typing import Any

NOTIFY_KEY = "/bench/notify"
FANOUT_KEY = "/bench/fanout"


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _pct(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else \
        float("nan")


def bench_notify(leader: str, follower: str, sets: int) -> dict[str, Any]:
    from zkactors.client import Client

    with Client(leader, name="bench-notify-writer", session=False) as writer, \
            Client(follower, name="bench-notify-watcher", session=False) as watcher:
        writer.ensure_path("/bench")
        if writer.exists(NOTIFY_KEY) is None:
            writer.create(NOTIFY_KEY, b"0")
        arrived: dict[int, float] = {}
        changed = threading.Condition()

        def on_event(event: Any) -> None:
            with changed:
                arrived[event.version] = time.monotonic()
                changed.notify_all()

        watcher.add_watch(NOTIFY_KEY, on_event)
        # A new subscription holds events until its barrier and first resume;
        # measure the steady state after it, as users see it.
        warmup_until = time.monotonic() + 1.0
        while time.monotonic() < warmup_until:
            writer.set(NOTIFY_KEY, b"warm-up")
        from_send, from_ack, missed = [], [], 0
        for i in range(sets):
            sent = time.monotonic()
            version = writer.set(NOTIFY_KEY, b"%d" % i).version
            acked = time.monotonic()
            with changed:
                if not changed.wait_for(lambda v=version: v in arrived, timeout=2.0):
                    missed += 1
                    continue
                at = arrived[version]
            from_send.append(at - sent)
            from_ack.append(at - acked)
    return {
        "workload": "notify", "sets": sets, "missed": missed,
        "send_to_notify_p50_ms": _ms(_pct(from_send, 0.5)),
        "send_to_notify_p99_ms": _ms(_pct(from_send, 0.99)),
        "ack_to_notify_p50_ms": _ms(_pct(from_ack, 0.5)),
        "ack_to_notify_p99_ms": _ms(_pct(from_ack, 0.99)),
        # Negative: the watcher heard before the writer's reply arrived.
        "ack_to_notify_min_ms": _ms(min(from_ack)) if from_ack else float("nan"),
        "shape": "writer at the leader, watcher (add_watch) at a follower, sequential sets",
    }


def _fanout_worker(endpoints: list[str], count: int, first: int, ready: Any, done: Any,
                   results: Any) -> None:
    import resource

    import zmq

    from zkactors.client import Client
    from zkactors.logsetup import configure_logging

    configure_logging("warning")  # stdout is the parent's report
    # Hundreds of sessions in one process: each has several sockets (and their
    # file descriptors); lift the per-process limits that a normal client never
    # comes near.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    zmq.Context.instance().set(zmq.MAX_SOCKETS, 16 * count + 64)
    times: list[tuple[int, float]] = []
    lock = threading.Lock()

    def on_event(event: Any) -> None:
        at = time.monotonic()
        with lock:
            times.append((event.version, at))

    clients = []
    try:
        for i in range(count):
            endpoint = endpoints[(first + i) % len(endpoints)]
            client = Client(endpoint, name=f"bench-fan-{first + i}", connect_timeout=5.0,
                            session=False)
            client.start(timeout=30)
            client.add_watch(FANOUT_KEY, on_event)
            clients.append(client)
        ready.put(("ok", len(clients)))
        done.wait(600)
        with lock:
            results.put(list(times))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the run
        ready.put(("failed", repr(exc)))
    finally:
        for client in clients:
            client.stop()


def bench_fanout(leader: str, endpoints: list[str], watchers: int, procs: int,
                 rounds: int, worker: Any = _fanout_worker) -> dict[str, Any]:
    from zkactors.client import Client

    context = multiprocessing.get_context("spawn")
    ready, results, done = context.Queue(), context.Queue(), context.Event()
    per_proc = [watchers // procs + (1 if p < watchers % procs else 0) for p in range(procs)]
    workers, first = [], 0
    for count in per_proc:
        process = context.Process(target=worker,
                                  args=(endpoints, count, first, ready, done, results))
        process.start()
        workers.append(process)
        first += count
    try:
        with Client(leader, name="bench-fan-writer", session=False) as writer:
            writer.ensure_path("/bench")
            if writer.exists(FANOUT_KEY) is None:
                writer.create(FANOUT_KEY, b"0")
            for _ in workers:
                outcome, detail = ready.get(timeout=600)
                if outcome != "ok":
                    raise RuntimeError(f"a fan-out worker failed: {detail}")
            time.sleep(1.0)  # let the last subscriptions settle (the anchors do too)
            sets = []
            for i in range(rounds):
                sent = time.monotonic()
                version = writer.set(FANOUT_KEY, b"fan%d" % i).version
                sets.append((version, sent, time.monotonic()))
                time.sleep(2.0)  # every watcher is notified long before this
        done.set()
        heard: list[tuple[int, float]] = []
        for _ in workers:
            heard.extend(results.get(timeout=600))
    finally:
        done.set()
        for process in workers:
            process.join(120)
    measured = []
    for version, sent, acked in sets:
        got = sorted(at for v, at in heard if v == version)
        measured.append({
            "notified": len(got), "ack_ms": _ms(acked - sent),
            "send_to_first_ms": _ms(got[0] - sent) if got else None,
            "send_to_median_ms": _ms(statistics.median(got) - sent) if got else None,
            "send_to_all_ms": _ms(got[-1] - sent) if len(got) == watchers else None,
        })
    complete = [r["send_to_all_ms"] for r in measured if r["send_to_all_ms"] is not None]
    return {
        "workload": "fanout", "watchers": watchers, "procs": procs, "rounds": measured,
        "send_to_all_median_ms": statistics.median(complete) if complete else None,
        "shape": f"{watchers} sessions (own connection + add_watch each) over {procs} "
                 f"processes and every member, one set per round",
    }


def _sub_worker(endpoints: list[str], count: int, first: int, ready: Any, done: Any,
                results: Any) -> None:
    """``count`` SUB sockets on the members' watch endpoints, one thread polling."""
    import zmq

    from zkactors.protocol import unpack

    context = zmq.Context.instance()
    context.set(zmq.MAX_SOCKETS, count + 64)
    socks = []
    try:
        poller = zmq.Poller()
        for i in range(count):
            sub = context.socket(zmq.SUB)
            sub.linger = 0
            sub.subscribe(FANOUT_KEY.encode())
            sub.connect(endpoints[(first + i) % len(endpoints)])
            poller.register(sub, zmq.POLLIN)
            socks.append(sub)
        ready.put(("ok", count))
        times: list[tuple[int, float]] = []
        while not done.is_set():
            for sock, _ in poller.poll(50):
                at = time.monotonic()
                while True:
                    try:
                        _, body = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    times.append((unpack(body)[3], at))
        results.put(times)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the run
        ready.put(("failed", repr(exc)))
    finally:
        for sub in socks:
            sub.close()


def bench_fanout_sub(leader: str, watch_endpoints: list[str], watchers: int, procs: int,
                     rounds: int) -> dict[str, Any]:
    result = bench_fanout(leader, watch_endpoints, watchers, procs, rounds, worker=_sub_worker)
    result.update(workload="fanout-sub",
                  shape=f"{watchers} bare SUB sockets over {procs} processes (one poller "
                        f"thread each) and every member's watch endpoint, one set per round")
    return result
