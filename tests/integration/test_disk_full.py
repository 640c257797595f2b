"""A node whose disk fills up (issue #15's crash matrix): nothing false is
acknowledged, it says why once in its log (not in a loop), it refuses its
clients saying why, the others serve on, and it serves again by itself — same
process — once space comes back, with every acknowledged write.

The node's data dir is on a small tmpfs the test mounts (root only: CI runs as
root) and fills with a file; the mount is removed at the end, also on failure.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.cluster import BackgroundWriter, Ensemble, wait_for
from tests.integration.test_crash_matrix import (
    assert_has_every_write,
    assert_same_digest_everywhere,
)
from zkactors import errors
from zkactors.client import Client

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root"),
]

#: Small WAL segments: a node needs a new one every megabyte, so a full disk
#: shows at once. (Room to restart: two segments and a megabyte.)
SMALL_SEGMENTS = """
[storage]
wal_segment_bytes = 1048576
"""


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
                   check=True, timeout=30)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)


def fill(mount: Path) -> Path:
    """Fill ``mount`` to the last byte with one file."""
    filler = mount / "filler"
    chunk = b"\0" * (1 << 16)
    with open(filler, "wb", buffering=0) as out:
        try:
            out.writelines(chunk for _ in range(10_000))
        except OSError:
            pass
    return filler


def test_a_full_disk_stops_the_node_once_and_it_serves_again_when_space_returns(
        tmp_path, small_disk):
    ensemble = Ensemble(tmp_path / "conf", extra=SMALL_SEGMENTS)
    victim = ensemble.nodes[2]
    # Node 2's data dir lives on the small disk.
    (small_disk / "data2").mkdir()
    victim.data_dir.symlink_to(small_disk / "data2")
    writer = BackgroundWriter(ensemble.hosts, "/full", value_repeat=30)
    acked, failures = writer.acked, writer.failures
    try:
        ensemble.start()
        pid = victim.pid
        writer.start()
        wait_for(lambda: len(acked) >= 500, 30, "writes flowing")
        filler = fill(small_disk)
        wait_for(lambda: b'"disk_full"' in victim.log_path.read_bytes(), 60,
                 "node 2 to say its disk is full")
        stalled_at = len(acked)
        # The others serve on: writes keep being acknowledged without node 2.
        wait_for(lambda: len(acked) >= stalled_at + 2000 or failures, 60,
                 "writes acknowledged while node 2 waits for space")
        assert not failures, failures
        assert victim.proc.poll() is None and victim.pid == pid  # waiting, not dead
        # A client that can reach only node 2 is told why, at once.
        with pytest.raises(errors.NotReadyError, match="no space left on"):
            Client(victim.client_endpoint, connect_timeout=1.0, session=False).start(timeout=5)
        log = victim.log_path.read_bytes()
        assert log.count(b'"disk_full"') == 1, "said once, not in a loop"
        assert b'"disk_space_back"' not in log
        filler.unlink()
        wait_for(lambda: b'"disk_space_back"' in victim.log_path.read_bytes(), 30,
                 "node 2 to see space back")
        victim.log_offset = victim.log_path.read_bytes().index(b'"disk_space_back"')
        victim.wait_serving(30)  # serving again: the same process, started afresh
        assert victim.pid == pid and victim.proc.poll() is None
        writer.stop()
        assert not failures, failures
        assert_same_digest_everywhere(ensemble, timeout=60)
        assert_has_every_write(victim, acked)
        assert victim.log_path.read_bytes().count(b'"disk_full"') == 1
    finally:
        writer.stop()
        ensemble.stop()
