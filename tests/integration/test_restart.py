"""A whole ensemble restarted on a long log: each node applies its own committed
log while it loads (up to its commit hint), before it hears any leader, and the
ensemble elects once and keeps that leader.

Before the hint, every node applied the whole log at once after the election,
all three together: on a 79k-entry log, full garbage collections of up to 0.4 s
starved the heartbeats, and the ensemble went through three more elections in
its first five seconds (BENCHMARKS.md, "A restarted ensemble").
"""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.cluster import BackgroundWriter, Ensemble, wait_for
from zkactors.client import Client
from zkactors.storage.stable import StableStore

pytestmark = pytest.mark.timeout(180)

#: The whole log stays "since the last snapshot".
NO_SNAPSHOTS = "[storage]\nsnapshot_every = 0\n"
ZNODES = 15_000
#: How long the restarted ensemble is watched for another election.
WATCH_S = 3.0


def loaded(node) -> dict:
    """The node's last ``state_loaded`` log event."""
    lines = [line for line in node.log().splitlines() if '"state_loaded"' in line]
    return json.loads(lines[-1])


def test_a_restarted_ensemble_applies_its_committed_log_while_loading_and_elects_once(tmp_path):
    ensemble = Ensemble(tmp_path, extra=NO_SNAPSHOTS).start()
    try:
        writer = BackgroundWriter(ensemble.hosts, "/r", value_repeat=10, batch=256).start()
        wait_for(lambda: len(writer.acked) >= ZNODES or writer.failures, 120, "the writes")
        writer.stop()
        assert not writer.failures, writer.failures
        rows = ensemble.wait_converged()
        commit = rows[0]["commit_index"]
        # Each node notes on its next tick how far its log is committed.
        for n, node in ensemble.nodes.items():
            data_dir = str(tmp_path / f"data{n}")
            wait_for(lambda d=data_dir: StableStore(d).load_commit_hint() == commit, 10,
                     f"node {n}'s commit hint to reach {commit}")
        ensemble.stop()

        ensemble.start()
        for node in ensemble.nodes.values():
            assert loaded(node)["applied"] == commit, loaded(node)
        rows = ensemble.wait_converged()
        term = max(r["term"] for r in rows)
        deadline = time.monotonic() + WATCH_S
        while time.monotonic() < deadline:  # (bounded: WATCH_S of status polls)
            terms = {r["term"] for r in ensemble.status() if r["role"] != "down"}
            assert terms == {term}, f"another election after the restart: {terms}"
        with Client(ensemble.hosts) as client:
            assert len(client.get_children("/r")) == len(writer.acked)
    finally:
        ensemble.stop()
