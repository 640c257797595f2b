"""Snapshots and log compaction on real nodes: restart from a snapshot, and a
follower too far behind (or wiped) rebuilt from the leader's snapshot."""

from __future__ import annotations

import shutil

import pytest

from tests.integration.cluster import Ensemble, NodeProcess, wait_for, write_config
from zkactors.client import Client

pytestmark = pytest.mark.timeout(180)

#: Snapshot often and keep little log, with small WAL segments so compaction
#: really deletes files.
COMPACTING = """
[storage]
snapshot_every = 300
log_retain_entries = 50
wal_segment_bytes = 65536
"""


def wal_segments(data_dir) -> list:
    return sorted((data_dir / "wal").glob("wal-*.log"))


def test_a_node_restarts_from_its_snapshot_and_the_log_after_it(tmp_path):
    config = write_config(tmp_path, extra=COMPACTING.replace("[storage]\n", ""))
    node = NodeProcess(config).start()
    try:
        with Client(node.client_endpoint) as c:
            futures = [c.create_async(f"/n{i}", b"v%d" % i, sequence=False)
                       for i in range(2_000)]
            for f in futures:
                f.get(timeout=30)
            c.set("/n7", b"changed")
            before = c.get_children("/")
        # Snapshots are written in the background: wait for the early segments
        # to go (the log is compacted once a snapshot past them is durable).
        wait_for(lambda: wal_segments(node.data_dir)[0].name != "wal-00000000000000000001.log",
                 20, "the log to be compacted")
        assert "log_compacted" in node.log()
        assert list((node.data_dir / "snap").glob("snap-*.snap"))
        assert node.stop() == 0
        node.start()
        line = next(x for x in node.log().splitlines()[::-1] if "state_loaded" in x)
        assert '"snapshot_index": 0' not in line
        with Client(node.client_endpoint) as c:
            assert sorted(c.get_children("/")) == sorted(before)
            assert c.get("/n7")[0] == b"changed"
            assert c.get("/n1999")[0] == b"v1999"
            c.create("/after-restart", b"ok")
    finally:
        node.stop()


@pytest.mark.parametrize("wipe", [False, True], ids=["behind", "wiped"])
def test_a_follower_past_the_leaders_log_is_rebuilt_from_its_snapshot(tmp_path, wipe):
    ensemble = Ensemble(tmp_path, extra=COMPACTING).start()
    try:
        leader = ensemble.wait_for_leader()
        victim = ensemble.a_follower(leader)
        assert victim.stop() == 0
        if wipe:
            shutil.rmtree(victim.data_dir)
        with Client(ensemble.hosts) as c:
            futures = [c.create_async(f"/k{i}", b"x") for i in range(2_000)]
            for f in futures:
                f.get(timeout=60)
        wait_for(lambda: "log_compacted" in ensemble.nodes[leader].log(), 20,
                 "the leader to compact its log")
        victim.start()
        rows = ensemble.wait_converged(60)
        assert all(r["lag"] == 0 for r in rows)
        assert "snapshot_installed" in victim.log()
        c = Client(victim.client_endpoint)
        c.start(timeout=20)
        try:
            assert len(c.get_children("/")) == 2_000
        finally:
            c.stop()
        # And it goes on replicating after the install.
        with Client(ensemble.hosts) as c:
            c.create("/later", b"y")
        ensemble.wait_converged(30)
    finally:
        ensemble.stop()
