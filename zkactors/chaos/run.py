"""One chaos run, start to verdict: build the network, start the ensemble, run the
clients and the nemesis, heal, let it settle, then check what was recorded.

The verdict's parts: the register history is linearizable per key (linearizable
reads, sets and compare-and-sets); plain reads keep each client's order; every
acknowledged sequential create is on every node; and every node, once caught up,
holds the same tree (the per-node digest). Everything made — namespaces, links,
processes — is removed at the end, also when the run is interrupted.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zkactors.chaos.ensemble import ChaosEnsemble
from zkactors.chaos.nemesis import KINDS, Nemesis
from zkactors.chaos.netns import Network, missing_tools
from zkactors.chaos.report import render
from zkactors.chaos.verdict import judge, operations_of
from zkactors.chaos.workload import Recorder, Worker, setup_keys
from zkactors.cli.zkctl_status import ask, ask_all

#: The nodes' timing: the defaults of conf/ (what users run).
NODE_CONFIG = """[timing]
heartbeat_ms = 50
election_timeout_ms = 300

[storage]
fsync = true
snapshot_every = 2000
log_retain_entries = 500
wal_segment_bytes = 4194304
"""
#: Each node's data dir: a tmpfs this big (room for a few WAL segments and
#: snapshots; the disk-full fault fills it).
DISK_MIB = 96


@dataclass
class RunConfig:
    seconds: float = 60.0
    nodes: int = 3
    seed: int = 0
    clients: int = 5
    keys: int = 3
    #: After the last fault is healed, the clients go on this long.
    settle_seconds: float = 3.0
    kinds: tuple[str, ...] = KINDS
    out: Path = field(default_factory=lambda: Path("chaos-runs"))
    subnet: str = ""


def statuses(ensemble: ChaosEnsemble, timeout: float = 0.5,
             digest: bool = False) -> list[dict[str, Any] | None]:
    endpoints = [ensemble.endpoint(n) for n in ensemble.nodes]
    return ask_all(lambda endpoint: ask(endpoint, timeout, digest), endpoints, timeout + 2.0)


def find_leader(ensemble: ChaosEnsemble) -> int | None:
    leaders = [s for s in statuses(ensemble) if s and s.get("role") == "leader"]
    if not leaders:
        return None
    return max(leaders, key=lambda s: s.get("term", 0)).get("node")


def wait_converged(ensemble: ChaosEnsemble, timeout: float,
                   digest: bool = False) -> list[dict[str, Any]]:
    """Until every node is up and has applied the same zxid, one of them leading
    (with each node's tree digest, if ``digest``)."""
    deadline = time.monotonic() + timeout
    last: list = []
    while time.monotonic() < deadline:
        last = statuses(ensemble, 2.0 if digest else 1.0, digest)
        if all(s and s.get("role") in ("leader", "follower") for s in last):
            zxids = {s.get("applied_zxid") for s in last}
            if len(zxids) == 1 and any(s["role"] == "leader" for s in last):
                return last
        time.sleep(0.2)
    raise RuntimeError(f"the ensemble did not converge within {timeout} s: {last}")


def run(config: RunConfig) -> dict[str, Any]:
    missing = missing_tools()
    if missing:
        raise RuntimeError(f"a chaos run needs {', '.join(missing)} (see bin/install-system-deps)")
    run_id = secrets.token_hex(3)
    workdir = config.out / f"run-{run_id}"
    workdir.mkdir(parents=True)
    subnet = config.subnet or f"10.213.{secrets.randbelow(200) + 20}.0/24"
    nodes = list(range(1, config.nodes + 1))
    with Network(run_id, nodes, subnet=subnet) as network:
        ensemble = ChaosEnsemble(network, workdir, NODE_CONFIG, disk_mib=DISK_MIB,
                                 relay="delay" in config.kinds)
        try:
            return _run(config, ensemble, workdir)
        finally:
            ensemble.close()


def _run(config: RunConfig, ensemble: ChaosEnsemble, workdir: Path) -> dict[str, Any]:
    ensemble.write_configs()
    ensemble.start_relays()
    for node in ensemble.nodes:
        ensemble.start(node)
    wait_converged(ensemble, 30)
    keys = [f"k{i}" for i in range(config.keys)]
    hosts = ensemble.hosts()
    setup_keys(hosts, keys)
    recorder = Recorder()
    workers = [Worker(i, hosts, keys, recorder, config.seed,
                      range(i, 10**9, config.clients)) for i in range(config.clients)]
    nemesis = Nemesis(ensemble, config.seed, lambda: find_leader(ensemble),
                      kinds=config.kinds)
    stop_faults, stop_clients = threading.Event(), threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop_clients,), daemon=True)
               for w in workers]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    chaos = threading.Thread(target=nemesis.run, args=(stop_faults,), daemon=True)
    chaos.start()
    try:
        stop_faults.wait(config.seconds)
    finally:
        stop_faults.set()
        chaos.join(timeout=30)
        nemesis.heal_all()
    time.sleep(config.settle_seconds)  # the clients go on against a healed ensemble
    stop_clients.set()
    for thread in threads:
        thread.join(timeout=30)
    for worker in workers:
        worker.close()
    try:
        final = wait_converged(ensemble, 60, digest=True)
    except RuntimeError:
        # Leave what the faults were, to tell why (the summary is never written).
        (workdir / "faults.json").write_text(json.dumps(
            [asdict(f) | {"start": round(f.start - started, 2),
                          "end": round((f.end or f.start) - started, 2)}
             for f in nemesis.faults], indent=1) + "\n")
        raise
    events = [{**e, "time": round(e["time"] - started, 6)} for e in recorder.events]
    for fault in nemesis.faults:  # (times from the start of the run, as the events')
        fault.start -= started
        fault.end = (fault.end or fault.start + started) - started
    operations = operations_of(events)
    verdict = judge(operations, ensemble, keys, final, nemesis.faults)
    summary = {
        "seed": config.seed, "nodes": config.nodes, "seconds": config.seconds,
        "clients": config.clients, "workdir": str(workdir),
        "elapsed": round(time.monotonic() - started, 1),
        "faults": [asdict(f) | {"start": round(f.start, 2), "end": round(f.end, 2)}
                   for f in nemesis.faults],
        **verdict,
    }
    (workdir / "history.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (workdir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (workdir / "report.svg").write_text(render(
        operations, summary["faults"],
        f"zkactors chaos run {workdir.name}: {config.nodes} nodes, seed {config.seed}, "
        f"{len(operations)} operations, {len(nemesis.faults)} faults, "
        f"{'no anomalies' if verdict['ok'] else str(len(verdict['anomalies'])) + ' anomalies'}"))
    return summary
