"""A million znodes (issue #13, part 3): what a big tree costs a 3-node ensemble.

    python bench/scale.py --znodes 1000000 --json bench/results/scale-1m.json

What it owns: one 3-node ensemble of real ``zknode`` processes on free loopback
ports in a temporary directory (fsync on, snapshot settings printed), the load
generator processes it starts to fill the tree, and the clean-up of both: every
process it starts is stopped by its PID when it ends, on failure and on Ctrl-C
or SIGTERM too. It never touches another ensemble, and every wait has a deadline.

What it measures, in this order:

1. **fill** — ``--znodes`` znodes of ``--value-size`` bytes in a tree of fan-out
   ``--fanout`` under ``/scale`` (level 1: ``fanout`` nodes, level 2: ``fanout²``,
   level 3: the rest; parents before children), created with pipelined
   ``Client.create_async`` from ``--procs`` worker processes, each keeping
   ``--window`` creates in flight: time and rate.
2. **memory** — each node's VmRSS and VmHWM (peak) from ``/proc/PID/status``.
3. **writes during a snapshot** — an open-loop load of ``set``s at ``--rate``
   per second (latency counted from when each write was due, so a stall is not
   hidden by the load waiting for it), run across the members' next snapshots.
   A member's snapshot starts right after its store applies index ``its last
   snapshot + snapshot_every`` (the leader's first acknowledgement at or past
   that index marks it); its temporary file and its final file are watched in
   its ``snap`` directory. Writes whose life overlaps the window from the first
   member's start to the last member's file are "during", the others
   "outside"; p50/p99/max of each.
4. **snapshot size** — each node's newest snapshot file.
5. **cold start** — a follower stopped (SIGTERM) and started again: seconds from
   the process start until its status says it serves reads, is caught up, and
   has applied what the leader had committed; the node's log says how much of
   that was loading the snapshot and its log.
6. **wiped follower** — the other follower stopped, its data directory deleted,
   started again: seconds until caught up likewise (its log must show the
   leader's snapshot installed).
7. **consistency** — every node's tree digest at the same zxid, and its znode
   count, after each restart.

Prints progress on stderr and one JSON object on stdout (and to ``--json``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.integration.cluster import Ensemble, NodeProcess
from zkactors.cli.zkctl_status import ask
from zkactors.client import Client

ROOT = "/scale"
LOAD = "/scale-load"
LOAD_KEYS = 100
TARGETS = {"rss_per_node_bytes": 1 << 30, "cold_start_s": 10.0, "write_p99_during_snapshot_ms": 50.0,
           "wiped_follower_rejoin_s": 30.0}
_SNAP_RE = re.compile(r"^snap-(\d{20})-(\d+)\.snap(\.tmp|\.install\.tmp)?$")


def say(*parts: object) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ the tree
def level_sizes(znodes: int, fanout: int) -> list[int]:
    """How many znodes at each depth below ``/scale``: ``fanout**k`` at depth k
    until the count is reached (the last level partly filled, its parents taken
    in order)."""
    sizes, remaining, k = [], znodes, 1
    while remaining > 0:
        size = min(fanout ** k, remaining)
        sizes.append(size)
        remaining -= size
        k += 1
    return sizes


def znode_path(level: int, i: int, fanout: int) -> str:
    """The ``i``-th znode of depth ``level`` (1-based): its parent is the
    ``i // fanout``-th of the level above."""
    names = []
    for _ in range(level):
        i, digit = divmod(i, fanout)
        names.append(f"n{digit:02d}")
    return ROOT + "/" + "/".join(reversed(names))


def znode_value(level: int, i: int, size: int) -> bytes:
    return (b"%d:%d:" % (level, i)).ljust(size, b"v")[:size]


def fill_range(hosts: str, level: int, start: int, stop: int, fanout: int, value_size: int,
               window: int) -> tuple[int, float]:
    """Create znodes ``start..stop-1`` of ``level`` with at most ``window`` in
    flight; return (created, seconds). Runs in a worker process."""
    began = time.monotonic()
    in_flight: deque = deque()
    created = 0
    with Client(hosts, request_timeout=60.0, name=f"scale-fill-{os.getpid()}",
                session=False) as client:
        for i in range(start, stop):
            in_flight.append(client.create_async(znode_path(level, i, fanout),
                                                 znode_value(level, i, value_size)))
            if len(in_flight) >= window:
                in_flight.popleft().get(timeout=90.0)
                created += 1
        while in_flight:
            in_flight.popleft().get(timeout=90.0)
            created += 1
    return created, time.monotonic() - began


def fill(hosts: str, znodes: int, fanout: int, value_size: int, procs: int, window: int,
         pool: Any) -> dict[str, Any]:
    """The whole tree, level by level (a level only once the one above is done)."""
    began = time.monotonic()
    with Client(hosts, session=False) as client:
        client.create(ROOT, b"")
    per_level = []
    for level, size in enumerate(level_sizes(znodes, fanout), start=1):
        level_began = time.monotonic()
        chunks = min(procs, max(1, size // window))
        bounds = [size * k // chunks for k in range(chunks + 1)]
        jobs = [pool.apply_async(fill_range, (hosts, level, bounds[k], bounds[k + 1], fanout,
                                              value_size, window))
                for k in range(chunks)]
        # A generous deadline: far slower than this is a broken ensemble.
        deadline = time.monotonic() + 120.0 + size / 500.0
        created = sum(job.get(max(1.0, deadline - time.monotonic()))[0] for job in jobs)
        if created != size:
            raise RuntimeError(f"level {level}: {created} of {size} created")
        seconds = time.monotonic() - level_began
        per_level.append({"level": level, "znodes": size, "seconds": round(seconds, 2),
                          "per_s": round(size / seconds)})
        say(f"level {level}: {size:,} znodes in {seconds:.1f} s ({size / seconds:,.0f}/s)")
    seconds = time.monotonic() - began
    return {"seconds": round(seconds, 2), "per_s": round(znodes / seconds), "levels": per_level}


# ------------------------------------------------------------ node's-eye view
def stalls(node: NodeProcess) -> dict[str, Any]:
    """What held the node so far, from its admin endpoint: its garbage-collection
    pauses per generation (how many, their total seconds, how many over 100 ms),
    and the gaps between its election actor's ticks ("ticks": how many, how many
    over 100 ms and over 300 ms, the election timeout)."""
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    with urlopen(node.admin_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    pauses: dict[str, Any] = {}
    ticks: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "zkactors_election_tick_gap_seconds":
            for sample in family.samples:
                if sample.name.endswith("_count"):
                    ticks["count"] = int(sample.value)
                elif sample.labels.get("le") in ("0.1", "0.3"):
                    ticks["upto_" + sample.labels["le"]] = int(sample.value)
            continue
        if family.name != "zkactors_gc_pause_seconds":
            continue
        for sample in family.samples:
            gen = pauses.setdefault(sample.labels["generation"], {})
            if sample.name.endswith("_count"):
                gen["count"] = int(sample.value)
            elif sample.name.endswith("_sum"):
                gen["seconds"] = round(sample.value, 3)
            elif sample.labels.get("le") == "0.1":
                gen["upto_100ms"] = int(sample.value)
    for gen in pauses.values():
        gen["over_100ms"] = gen.get("count", 0) - gen.pop("upto_100ms", 0)
    count = ticks.get("count", 0)
    return {"gc": pauses, "ticks": {"count": count,
                                    "over_100ms": count - ticks.get("upto_0.1", 0),
                                    "over_300ms": count - ticks.get("upto_0.3", 0)}}


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a process, in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key.lower()] = int(value.split()[0]) * 1024
    return out


def status(node: NodeProcess, timeout: float = 1.0, digest: bool = False) -> dict[str, Any]:
    """The node's status row (``role`` ``down`` if it does not answer)."""
    return ask(node.client_endpoint, timeout, digest=digest)


def wait_until(condition, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def leader_of(ensemble: Ensemble, timeout: float = 30.0) -> int:
    def find() -> int | None:
        for node_id, node in ensemble.nodes.items():
            if (node.proc is not None and node.proc.poll() is None
                    and status(node).get("role") == "leader"):
                return node_id
        return None

    return wait_until(find, timeout, "a leader")


def log_events(node: NodeProcess, names: set[str], since: int = 0) -> list[dict[str, Any]]:
    """The node's structlog lines (from byte ``since``) whose event is in ``names``,
    each with ``t`` (its timestamp as seconds since the epoch)."""
    out = []
    with open(node.log_path, "rb") as f:
        f.seek(since)
        for line in f:
            if not line.startswith(b"{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") in names:
                record["t"] = datetime.fromisoformat(record["timestamp"]).timestamp()
                out.append(record)
    return out


def snapshot_files(node: NodeProcess) -> list[tuple[int, str, int]]:
    """(index, name, bytes) of the node's finished snapshot files, oldest first."""
    directory = node.data_dir / "snap"
    out = []
    for entry in os.scandir(directory) if directory.exists() else []:
        m = _SNAP_RE.match(entry.name)
        if m and not m.group(3):
            out.append((int(m.group(1)), entry.name, entry.stat().st_size))
    return sorted(out)


def wait_converged(ensemble: Ensemble, timeout: float) -> list[dict[str, Any]]:
    """Wait until every node has applied the same index, the leader's commit index."""
    def converged() -> list[dict[str, Any]] | None:
        rows = [status(node, timeout=10.0) for node in ensemble.nodes.values()]
        leaders = [r for r in rows if r.get("role") == "leader"]
        applied = {r.get("applied_index") for r in rows}
        if len(leaders) == 1 and applied == {leaders[0]["commit_index"]}:
            return rows
        return None

    return wait_until(converged, timeout, "every node to apply the leader's commit index",
                      interval=0.2)


def converged_digests(ensemble: Ensemble, timeout: float) -> list[dict[str, Any]]:
    """Wait until every node reports the same digest at the same zxid; the rows."""
    def same() -> list[dict[str, Any]] | None:
        rows = [status(node, timeout=max(30.0, timeout / 2), digest=True)
                for node in ensemble.nodes.values()]
        if any(r.get("role") == "down" for r in rows):
            return None
        if len({(r["digest_zxid"], r["digest"]) for r in rows}) == 1:
            return rows
        return None

    rows = wait_until(same, timeout, "equal digests on every node", interval=0.5)
    return [{"node": r["node"], "role": r["role"], "znodes": r["znodes"],
             "applied_index": r["applied_index"], "digest": f"{r['digest']:016x}"} for r in rows]


def percentiles(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))], 2)

    return {"count": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99),
            "max_ms": round(ordered[-1], 2)}


# --------------------------------------------------- writes across a snapshot
@dataclass
class SnapshotWatch:
    """Polls a directory for the snapshot at or past ``index``: when its
    temporary file and its final file first show (monotonic seconds)."""

    directory: Path
    index: int
    tmp_seen: float | None = None
    done_seen: float | None = None
    done_name: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set() and self.done_seen is None:
            now = time.monotonic()
            try:
                names = os.listdir(self.directory)
            except FileNotFoundError:
                names = []
            for name in names:
                m = _SNAP_RE.match(name)
                if m is None or int(m.group(1)) < self.index:
                    continue
                if m.group(3) == ".tmp" and self.tmp_seen is None:
                    self.tmp_seen = now
                elif not m.group(3):
                    self.done_seen, self.done_name = now, name
                    if self.tmp_seen is None:
                        self.tmp_seen = now
            time.sleep(0.005)


def top_up(hosts: str, count: int, value_size: int, window: int = 512) -> None:
    """``count`` pipelined sets of the load keys (to bring the log near a snapshot)."""
    value = b"t" * value_size
    in_flight: deque = deque()
    with Client(hosts, request_timeout=60.0, session=False) as client:
        for i in range(count):
            in_flight.append(client.set_async(f"{LOAD}/k{i % LOAD_KEYS:03d}", value))
            if len(in_flight) >= window:
                in_flight.popleft().get(timeout=90.0)
        while in_flight:
            in_flight.popleft().get(timeout=90.0)


def writes_across_snapshot(ensemble: Ensemble, leader: int, snapshot_every: int, rate: float,
                           value_size: int, before_s: float, after_s: float,
                           timeout: float) -> dict[str, Any]:
    """An open-loop load of sets at ``rate``/s across the members' next snapshots.

    Each member snapshots once it has applied ``snapshot_every`` entries past its
    own last snapshot (whose index names its newest file), so the members reach
    their thresholds a few hundred entries apart: each is watched for its own.
    """
    node = ensemble.nodes[leader]
    thresholds = {}
    for n, member in ensemble.nodes.items():
        files = snapshot_files(member)
        thresholds[n] = (files[-1][0] if files else 0) + snapshot_every
    threshold = thresholds[leader]
    applied = status(node)["applied_index"]
    margin = int(rate * before_s)
    first = min(thresholds.values())
    if first - applied > margin:
        count = first - applied - margin
        say(f"top-up: {count:,} sets to bring the leader to {margin} entries short of "
            f"the first member's next snapshot (thresholds {thresholds})")
        top_up(node.client_endpoint, count, value_size)
    watches = {n: SnapshotWatch(member.data_dir / "snap", thresholds[n])
               for n, member in ensemble.nodes.items()}
    watch = watches[leader]
    watchers = [threading.Thread(target=w.run, daemon=True) for w in watches.values()]
    records: list[list[float]] = []  # [due, acked (0: not yet), index]
    lock = threading.Lock()
    failures: list[str] = []
    value = b"w" * value_size
    interval = 1.0 / rate
    log_offset = node.log_path.stat().st_size
    with Client(node.client_endpoint, request_timeout=60.0, session=False) as client:
        for watcher in watchers:
            watcher.start()
        began = time.monotonic()
        deadline = began + timeout
        ends: float | None = None
        i = 0
        while True:
            due = began + i * interval
            now = time.monotonic()
            if ends is None and all(w.done_seen is not None for w in watches.values()):
                ends = max(w.done_seen for w in watches.values()) + after_s
            if (ends is not None and due > ends) or now > deadline:
                break
            if due > now:
                time.sleep(due - now)
            record = [due, 0.0, 0]
            with lock:
                records.append(record)

            def done(future, record=record) -> None:
                acked = time.monotonic()
                try:
                    stat = future.result()
                except Exception as err:  # noqa: BLE001 - counted and reported
                    failures.append(repr(err))
                    return
                record[1], record[2] = acked, stat.mzxid & 0xFFFFFFFF

            client.set_async(f"{LOAD}/k{i % LOAD_KEYS:03d}", value).add_done_callback(done)
            i += 1
        wait_until(lambda: sum(1 for r in records if r[1]) + len(failures) >= len(records),
                   90.0, "the last writes' acknowledgements")
    for w in watches.values():
        w.stop.set()
    for watcher in watchers:
        watcher.join(5)
    if any(w.done_seen is None for w in watches.values()):
        raise TimeoutError(f"no snapshot past {thresholds} on every node within {timeout} s")
    acked = [r for r in records if r[1]]

    def began(n: int) -> float:
        # A member applies its threshold about when the leader acknowledges it
        # (the leader's own store snapshots right after replying to that batch).
        # An acknowledgement held up by a leader change comes later than that:
        # no snapshot begins after its temporary file shows.
        past = [r[1] for r in acked if r[2] >= thresholds[n]]
        return min(min(past), watches[n].tmp_seen) if past else watches[n].tmp_seen

    starts = {n: began(n) for n in watches}
    started = min(starts.values())
    ended = max(w.done_seen for w in watches.values())
    during = [(r[1] - r[0]) * 1000 for r in acked if r[0] < ended and r[1] > started]
    outside = [(r[1] - r[0]) * 1000 for r in acked if not (r[0] < ended and r[1] > started)]
    # Worst latency of the writes due in each 100 ms around the snapshot (ms
    # from its start): where the stall is.
    timeline: dict[int, float] = {}
    for r in acked:
        offset = int((r[0] - started) * 10) * 100
        if -1000 <= offset <= (ended - started) * 1000 + 1000:
            timeline[offset] = max(timeline.get(offset, 0.0), round((r[1] - r[0]) * 1000, 1))
    saved = [e for e in log_events(node, {"snapshot_saved"}, log_offset)
             if e.get("index", 0) >= threshold]
    return {
        "rate_per_s": rate,
        "writes": len(records),
        "failed": len(failures),
        "failures": failures[:5],
        "snapshot_index": saved[0]["index"] if saved else None,
        "snapshot_bytes": saved[0]["bytes"] if saved else None,
        "thresholds": thresholds,
        # The leader's: from its threshold's acknowledgement to the final file's
        # rename; serialising (until the temporary file shows) and writing.
        "snapshot_seconds": round(watch.done_seen - starts[leader], 3),
        "snapshot_serialise_seconds": round(watch.tmp_seen - starts[leader], 3),
        "snapshot_file_write_seconds": round(watch.done_seen - watch.tmp_seen, 3),
        # From the first member's start until the last member's file is in place.
        "window_seconds": round(ended - started, 3),
        "members_at_s": {n: {"began": round(starts[n] - started, 3),
                             "tmp": round(w.tmp_seen - started, 3),
                             "done": round(w.done_seen - started, 3)}
                         for n, w in watches.items()},
        "during_snapshot": percentiles(during),
        "outside_snapshot": percentiles(outside),
        "all": percentiles(during + outside),
        "worst_by_100ms_from_snapshot_start": dict(sorted(timeline.items())),
    }


# ----------------------------------------------------------------- restarts
def spot_check(node: NodeProcess, znodes: int, fanout: int, value_size: int,
               samples: int = 200) -> int:
    """Read ``samples`` znodes spread over the tree from ``node`` itself; the
    number whose value is not what the fill wrote."""
    sizes = level_sizes(znodes, fanout)
    wrong = 0
    with Client(node.client_endpoint, request_timeout=30.0, session=False) as client:
        for k in range(samples):
            level = 1 + k % len(sizes)
            i = (k * 7919) % sizes[level - 1]
            value, _ = client.get(znode_path(level, i, fanout))
            wrong += value != znode_value(level, i, value_size)
    return wrong


def restart_follower(ensemble: Ensemble, node_id: int, leader: int, wipe: bool,
                     timeout: float) -> dict[str, Any]:
    """Stop a follower (SIGTERM), optionally delete its data dir, start it; seconds
    from the process start until it serves reads caught up with the leader."""
    node, lead = ensemble.nodes[node_id], ensemble.nodes[leader]
    role = status(node, timeout=10.0).get("role")
    stop_began = time.monotonic()
    node.stop(timeout=30.0)
    stopped_in = time.monotonic() - stop_began
    if wipe:
        shutil.rmtree(node.data_dir)
    target = status(lead, timeout=10.0)["commit_index"]
    log_offset = node.log_path.stat().st_size
    wall0, t0 = time.time(), time.monotonic()
    node.start(wait=False)

    def caught_up() -> dict[str, Any] | None:
        if node.proc.poll() is not None:
            raise RuntimeError(f"node {node_id} exited with {node.proc.returncode}")
        row = status(node)
        if (row.get("serving_reads") and row.get("caught_up")
                and row.get("applied_index", 0) >= target):
            return row
        return None

    row = wait_until(caught_up, timeout, f"node {node_id} to serve, caught up")
    seconds = time.monotonic() - t0
    events = {e["event"]: round(e["t"] - wall0, 3)
              for e in log_events(node, {"state_loaded", "node_serving", "snapshot_installed",
                                         "snapshot_restored"}, log_offset)}
    loaded = log_events(node, {"state_loaded"}, log_offset)
    out = {"node": node_id, "role_when_stopped": role, "leader": leader,
           "seconds": round(seconds, 3), "stop_seconds": round(stopped_in, 3),
           "target_commit_index": target, "applied_index": row["applied_index"],
           "znodes": row["znodes"], "log_events_at_s": events,
           "memory": memory(node.pid)}
    if loaded:
        out["state_loaded"] = {k: loaded[0].get(k) for k in ("snapshot_index", "entries",
                                                              "seconds")}
    if wipe and "snapshot_installed" not in events:
        raise RuntimeError(f"node {node_id} caught up without a snapshot install: "
                           "the benchmark meant to measure one")
    return out


# --------------------------------------------------------------------- run
def ensemble_extra(snapshot_every: int, log_retain: int) -> str:
    return (f"[storage]\nfsync = true\nsnapshot_every = {snapshot_every}\n"
            f"log_retain_entries = {log_retain}\n\n[log]\nlevel = info\n")


def run(znodes: int, directory: Path, fanout: int = 100, value_size: int = 100,
        snapshot_every: int = 100_000, log_retain: int = 10_000, procs: int = 3,
        window: int = 512, rate: float = 500.0, before_s: float = 3.0,
        after_s: float = 3.0) -> dict[str, Any]:
    """The whole measurement on a fresh ensemble in ``directory``; every process it
    starts is stopped before it returns or raises."""
    settings = {"fsync": True, "snapshot_every": snapshot_every,
                "log_retain_entries": log_retain, "snapshot_keep": 2,
                "fanout": fanout, "value_size": value_size, "fill_procs": procs,
                "fill_window": window, "load_rate_per_s": rate}
    say("settings:", json.dumps(settings))
    ensemble = Ensemble(directory, extra=ensemble_extra(snapshot_every, log_retain), admin=True)
    ctx = multiprocessing.get_context("spawn")
    pool = None
    result: dict[str, Any] = {"znodes": znodes, "settings": settings,
                              "tree_levels": level_sizes(znodes, fanout)}
    phases: dict[str, str] = result.setdefault("phases_began_at", {})

    def phase(name: str) -> None:
        phases[name] = datetime.now().astimezone().isoformat(timespec="milliseconds")
        say(name)
    try:
        ensemble.start()
        leader = leader_of(ensemble)
        hosts = ",".join([ensemble.nodes[leader].client_endpoint]
                         + [n.client_endpoint for i, n in ensemble.nodes.items() if i != leader])
        result["pids"] = {n: node.pid for n, node in ensemble.nodes.items()}
        result["memory_empty"] = {n: memory(node.pid) for n, node in ensemble.nodes.items()}
        pool = ctx.Pool(procs)
        phase("fill")
        say(f"filling {znodes:,} znodes, leader is node {leader}")
        result["fill"] = fill(hosts, znodes, fanout, value_size, procs, window, pool)
        pool.close()
        pool.join()
        pool = None
        with Client(hosts, session=False) as client:
            client.create(LOAD, b"")
            for k in range(LOAD_KEYS):
                client.create(f"{LOAD}/k{k:03d}", b"")
        wait_converged(ensemble, timeout=300.0)
        result["memory_after_fill"] = {n: memory(node.pid) for n, node in ensemble.nodes.items()}
        say("memory after fill (MiB):", {n: m["vmrss"] >> 20
                                         for n, m in result["memory_after_fill"].items()})
        result["stalls_after_fill"] = {n: stalls(node) for n, node in ensemble.nodes.items()}
        say("stalls after fill:", json.dumps(result["stalls_after_fill"]))
        leader = leader_of(ensemble)
        result["leader"] = leader
        phase("writes_across_snapshot")
        result["writes"] = writes_across_snapshot(ensemble, leader, snapshot_every, rate,
                                                  value_size, before_s, after_s,
                                                  timeout=120.0 + znodes / 5000)
        say("writes:", json.dumps(result["writes"]))
        result["snapshots"] = {n: [{"index": i, "bytes": size} for i, _, size in snapshot_files(node)]
                               for n, node in ensemble.nodes.items()}
        result["snapshots_saved_by_the_leader_of_the_load"] = [
            {"index": e["index"], "bytes": e["bytes"]}
            for e in log_events(ensemble.nodes[leader], {"snapshot_saved"})]
        result["memory_after_snapshot"] = {n: memory(node.pid)
                                           for n, node in ensemble.nodes.items()}
        digest_timeout = 120.0 + znodes / 10_000
        phase("digests")
        result["digests_before_restarts"] = converged_digests(ensemble, digest_timeout)
        restart_timeout = 300.0 + znodes / 5000
        # Leaders may have changed since (a snapshot can cost one): a follower
        # is chosen by asking again just before each restart.
        leader = leader_of(ensemble)
        cold = next(n for n in ensemble.nodes if n != leader)
        phase(f"cold_start_node_{cold}")
        result["cold_start"] = restart_follower(ensemble, cold, leader, wipe=False,
                                                timeout=restart_timeout)
        say("cold start:", json.dumps(result["cold_start"]))
        result["cold_start"]["spot_check_wrong"] = spot_check(
            ensemble.nodes[cold], znodes, fanout, value_size)
        result["digests_after_cold_start"] = converged_digests(ensemble, digest_timeout)
        leader = leader_of(ensemble)
        wiped = next(n for n in ensemble.nodes if n not in (leader, cold))
        phase(f"wiped_follower_node_{wiped}")
        result["wiped_follower"] = restart_follower(ensemble, wiped, leader, wipe=True,
                                                    timeout=restart_timeout)
        say("wiped follower:", json.dumps(result["wiped_follower"]))
        result["wiped_follower"]["spot_check_wrong"] = spot_check(
            ensemble.nodes[wiped], znodes, fanout, value_size)
        result["digests_after_wiped_rejoin"] = converged_digests(ensemble, digest_timeout)
        phase("end")
        result["stalls_end"] = {n: stalls(node) for n, node in ensemble.nodes.items()}
        result["memory_end"] = {n: memory(node.pid) for n, node in ensemble.nodes.items()}
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        stop_all(ensemble)
    # Leader changes are not expected here (nothing is killed but followers):
    # any would say something held a node past its election timeout.
    became = {(n, e.get("term")): e["timestamp"] for n, node in ensemble.nodes.items()
              for e in reversed(log_events(node, {"role"})) if e.get("role") == "leader"}
    result["became_leader"] = [{"node": n, "term": term, "at": at}
                               for (n, term), at in sorted(became.items(), key=lambda x: x[1])]
    result["leader_lost"] = [
        {"node": n, "at": e["timestamp"]}
        for n, node in ensemble.nodes.items() for e in log_events(node, {"leader_lost"})]
    result["elections_by_phase"] = elections_by_phase(result["became_leader"], phases)
    result["targets"] = targets_met(result)
    return result


def elections_by_phase(became: list[dict[str, Any]], phases: dict[str, str]) -> dict[str, int]:
    """How many times a node became leader during each phase (the first
    election, before any phase, under "start")."""
    marks = sorted((datetime.fromisoformat(at).timestamp(), name) for name, at in phases.items())
    counts: dict[str, int] = {"start": 0, **{name: 0 for _, name in marks}}
    for row in became:
        when = datetime.fromisoformat(row["at"]).timestamp()
        current = "start"
        for began, name in marks:
            if when >= began:
                current = name
        counts[current] += 1
    return counts


def stop_all(ensemble: Ensemble) -> None:
    """Every node this run started, by its PID: SIGTERM, then SIGKILL if it hangs."""
    for node in ensemble.nodes.values():
        if node.proc is None or node.proc.poll() is not None:
            continue
        try:
            node.stop(timeout=30.0)
        except AssertionError:
            say(f"{node.config.stem} did not stop on SIGTERM within 30 s; killed")


def targets_met(result: dict[str, Any]) -> dict[str, Any]:
    """Each target of the issue: the figure, the target, met or not (None: not measured)."""
    out: dict[str, Any] = {}
    # The largest resident size sampled: after the fill, after the snapshot and
    # at the end (the restarted members included).
    rss = [m["vmrss"] for key in ("memory_after_fill", "memory_after_snapshot", "memory_end")
           for m in result.get(key, {}).values()]
    hwm = [m["vmhwm"] for key in ("memory_end", "memory_after_snapshot")
           for m in result.get(key, {}).values()]
    p99 = result.get("writes", {}).get("during_snapshot", {}).get("p99_ms")
    cold = result.get("cold_start", {}).get("seconds")
    wiped = result.get("wiped_follower", {}).get("seconds")
    for name, figure in (("rss_per_node_bytes", max(rss) if rss else None),
                         ("cold_start_s", cold), ("write_p99_during_snapshot_ms", p99),
                         ("wiped_follower_rejoin_s", wiped)):
        out[name] = {"figure": figure, "target": TARGETS[name],
                     "met": None if figure is None else figure <= TARGETS[name]}
    out["peak_rss_per_node_bytes"] = {"figure": max(hwm) if hwm else None,
                                      "target": TARGETS["rss_per_node_bytes"],
                                      "met": None if not hwm else max(hwm) <= TARGETS[
                                          "rss_per_node_bytes"]}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--znodes", type=int, default=1_000_000)
    parser.add_argument("--fanout", type=int, default=100)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--snapshot-every", type=int, default=100_000,
                        help="[storage] snapshot_every (default 100000, as conf/ ships)")
    parser.add_argument("--log-retain", type=int, default=10_000,
                        help="[storage] log_retain_entries (default 10000, as conf/ ships)")
    parser.add_argument("--procs", type=int, default=3, help="fill worker processes")
    parser.add_argument("--window", type=int, default=512, help="creates in flight per worker")
    parser.add_argument("--rate", type=float, default=500.0,
                        help="sets per second in the load across a snapshot")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--json", metavar="OUT", help="also write the JSON result here")
    args = parser.parse_args()

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    directory = Path(tempfile.mkdtemp(prefix="zk-scale-"))
    say(f"ensemble in {directory}")
    began = time.monotonic()
    try:
        result = run(args.znodes, directory, fanout=args.fanout, value_size=args.value_size,
                     snapshot_every=args.snapshot_every, log_retain=args.log_retain,
                     procs=args.procs, window=args.window, rate=args.rate)
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    result["wall_seconds"] = round(time.monotonic() - began, 1)
    result["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
