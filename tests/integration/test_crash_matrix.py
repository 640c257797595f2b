"""Issue #15's crash matrix on real nodes: ``zkctl verify`` on stopped data dirs
(sound, and each kind of damage named by file), a corrupted newest snapshot at
start, and kill -9 right around snapshot writes. After every crash, every
acknowledged write must be on every node, and the nodes that applied the same
zxid must report the same tree digest (``zkctl status``)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.integration.cluster import (
    BackgroundWriter,
    Ensemble,
    NodeProcess,
    wait_for,
    write_config,
    zkctl,
)
from zkactors import errors
from zkactors.cli.verify import verify
from zkactors.client import Client

pytestmark = pytest.mark.timeout(150)

#: Snapshot often; keep more log than one snapshot interval, so that the log
#: still reaches back to the older snapshot (see the corrupted-snapshot test);
#: small WAL segments, so that the log spans several files.
COMPACTING = """
[storage]
snapshot_every = 200
log_retain_entries = 1000
wal_segment_bytes = 65536
"""


# ------------------------------------------------------------------ helpers
def write(hosts: str, prefix: str, count: int, size: int = 64) -> dict[str, bytes]:
    """Create ``count`` znodes under ``prefix`` (pipelined); the acknowledged ones."""
    acked = {}
    with Client(hosts, request_timeout=30.0) as c:
        c.ensure_path(prefix)
        values = {f"{prefix}/k{i:05d}": b"%05d" % i * (size // 5) for i in range(count)}
        futures = {path: c.create_async(path, value) for path, value in values.items()}
        for path, future in futures.items():
            future.get(timeout=30)
            acked[path] = values[path]
    return acked


def snapshots(node: NodeProcess) -> list[Path]:
    return sorted((node.data_dir / "snap").glob("snap-*.snap"))


def wal_segments(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "wal").glob("wal-*.log"))


def record_offsets(segment: Path) -> list[int]:
    """Start offsets of a segment's records, then the end of its data
    (format: zkactors/storage/wal.py)."""
    data = segment.read_bytes()
    offsets, pos = [], 0
    while pos + 8 <= len(data) and data[pos:pos + 4] != b"\0\0\0\0":
        offsets.append(pos)
        pos += 8 + int.from_bytes(data[pos:pos + 4], "little") - 1
    return offsets + [pos]


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def fingerprint(directory: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``directory``: size, mtime and a hash of its bytes."""
    files = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            st = path.stat()
            files[str(path.relative_to(directory))] = (
                st.st_size, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return files


def run_verify(data_dir: Path, *options: str):
    return zkctl("verify", str(data_dir), *options, timeout=60)


def assert_has_every_write(node: NodeProcess, acked: dict[str, bytes]) -> None:
    """``node`` alone, after a sync, holds every acknowledged write with its value."""
    with Client(node.client_endpoint, request_timeout=30.0) as c:
        c.sync("/")
        futures = {path: c.get_async(path) for path in acked}
        wrong = []
        for path, future in futures.items():
            try:
                if future.get(timeout=30)[0] != acked[path]:
                    wrong.append(path)
            except errors.NoNodeError:
                wrong.append(path)
        assert not wrong, (f"{len(wrong)} of {len(acked)} acknowledged writes missing or "
                           f"wrong on {node.config.name}: {wrong[:5]}")


def assert_same_digest_everywhere(ensemble: Ensemble, timeout: float = 30.0) -> list[dict]:
    """Once writes stop, every node reaches the same applied zxid and reports the
    same tree digest at it (``zkctl status``)."""
    def agreed():
        out = zkctl("--conf", str(ensemble.directory), "--timeout", "2", "status", "-w", "json")
        rows = json.loads(out.stdout)
        if any(r["role"] == "down" for r in rows):
            return None
        if len({r["applied_zxid"] for r in rows}) != 1:
            return None
        return rows

    rows = wait_for(agreed, timeout, "every node to apply the same zxid", interval=0.2)
    assert all(r["digest_zxid"] == r["applied_zxid"] for r in rows)
    digests = {r["node"]: r["digest"] for r in rows}
    assert len(set(digests.values())) == 1, f"tree digests differ at one zxid: {digests}"
    return rows


# ------------------------------------------------- zkctl verify: sound data
def test_verify_finds_a_stopped_ensemble_sound_refuses_a_running_node_and_changes_nothing(
        tmp_path):
    ensemble = Ensemble(tmp_path, extra=COMPACTING).start()
    try:
        # A follower that applies a long run of entries in one batch takes one
        # snapshot for several thresholds: write until each node has two.
        def two_snapshots_everywhere() -> bool:
            return all(len(snapshots(n)) >= 2 for n in ensemble.nodes.values())

        for round_ in range(8):
            write(ensemble.hosts, f"/r{round_}", 250)
            if round_ >= 2 and two_snapshots_everywhere():
                break
        wait_for(two_snapshots_everywhere, 20, "two snapshots on every node")
        rows = assert_same_digest_everywhere(ensemble)
        assert len(rows) == 3 and all(len(r["digest"]) == 16 for r in rows)
        running = run_verify(ensemble.nodes[1].data_dir)
        assert running.returncode == 2 and running.stdout == ""
        assert running.stderr.strip() == (
            f"zkctl: {ensemble.nodes[1].data_dir}: its node is running (it holds "
            f"{ensemble.nodes[1].data_dir / 'wal' / 'LOCK'}); stop it first")
    finally:
        ensemble.stop()
    for node in ensemble.nodes.values():
        before = fingerprint(node.data_dir)
        out = run_verify(node.data_dir)
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.splitlines()[-1].startswith(f"{node.data_dir}: sound (term ")
        assert " 2 snapshots, newest through index " in out.stdout
        record = json.loads(run_verify(node.data_dir, "-w", "json").stdout)
        assert record["sound"] is True and record["problems"] == []
        assert len(record["snapshots"]) == 2
        assert fingerprint(node.data_dir) == before, "verify changed a file"


def test_verify_usage_errors_are_one_line_exit_2(tmp_path):
    missing = run_verify(tmp_path / "nope")
    assert missing.returncode == 2
    assert missing.stderr == f"zkctl: {tmp_path / 'nope'}: no such directory\n"
    (tmp_path / "empty").mkdir()
    empty = run_verify(tmp_path / "empty")
    assert empty.returncode == 2
    assert empty.stderr == f"zkctl: {tmp_path / 'empty'}: not a node's data dir (it has no wal/)\n"


# ----------------------------------------------- zkctl verify: damaged data
@pytest.fixture(scope="module")
def stopped_data_dir(tmp_path_factory) -> Path:
    """A stopped single node's data dir: two snapshots, a log over several segments."""
    directory = tmp_path_factory.mktemp("verify")
    node = NodeProcess(write_config(directory, extra=COMPACTING.replace("[storage]\n", "")))
    node.start()
    try:
        for round_ in range(4):
            write(node.client_endpoint, f"/r{round_}", 250, size=100)
        wait_for(lambda: len(snapshots(node)) >= 2, 20, "two snapshots")
    finally:
        assert node.stop() == 0
    assert len(wal_segments(node.data_dir)) >= 2
    return node.data_dir


def damage_newest_snapshot(data_dir: Path) -> tuple[Path, str]:
    newest = max((data_dir / "snap").glob("snap-*.snap"))
    flip_byte(newest, newest.stat().st_size - 20)  # in the payload
    return newest, f"{newest}: payload checksum mismatch"


def tear_wal_tail(data_dir: Path) -> tuple[Path, str]:
    last = wal_segments(data_dir)[-1]
    offsets = record_offsets(last)
    os.truncate(last, offsets[-1] - 3)  # the last record, cut short
    return last, f"{last}: offset {offsets[-2]}: record runs past end of file (a torn last record"


def garbage_in_the_middle(data_dir: Path) -> tuple[Path, str]:
    first = wal_segments(data_dir)[0]
    offsets = record_offsets(first)
    middle = offsets[len(offsets) // 2]
    with open(first, "r+b") as f:  # the record's payload overwritten
        f.seek(middle + 8)
        f.write(b"garbage!")
    return first, f"{first}: offset {middle}: crc mismatch"


@pytest.mark.parametrize("damage", [damage_newest_snapshot, tear_wal_tail, garbage_in_the_middle],
                         ids=["snapshot-flipped-byte", "wal-torn-tail", "wal-garbage-record"])
def test_verify_names_the_damaged_file(stopped_data_dir, tmp_path, damage):
    data_dir = tmp_path / "copy"
    shutil.copytree(stopped_data_dir, data_dir)
    assert run_verify(data_dir).returncode == 0
    damaged, expected = damage(data_dir)
    before = fingerprint(data_dir)
    out = run_verify(data_dir)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith(expected) for line in lines), out.stdout
    assert lines[-1].startswith(f"{data_dir}: 1 problem ("), out.stdout
    assert str(damaged) in out.stdout
    record = json.loads(run_verify(data_dir, "--output", "json").stdout)
    assert record["sound"] is False and [p["path"] for p in record["problems"]] == [str(damaged)]
    assert fingerprint(data_dir) == before, "verify changed a file"


# ------------------------------------------ a corrupted newest snapshot at start
def test_a_corrupted_newest_snapshot_stops_the_node_naming_the_file(tmp_path):
    """The node refuses to start from a guess (it does not fall back by itself:
    the log may be compacted past the older snapshot); verify names the file and
    says the log still covers the older one; with the bad file moved aside, the
    node starts from the older snapshot and the log, and comes back with every
    acknowledged write and the same tree as the others."""
    ensemble = Ensemble(tmp_path, extra=COMPACTING).start()
    try:
        leader = ensemble.wait_for_leader()
        victim = ensemble.a_follower(leader)
        acked = {}
        for round_ in range(4):
            acked |= write(ensemble.hosts, f"/r{round_}", 250)
        wait_for(lambda: len(snapshots(victim)) >= 2, 20, "two snapshots on the follower")
        assert victim.stop() == 0
        newest = snapshots(victim)[-1]
        flip_byte(newest, newest.stat().st_size - 20)
        acked |= write(ensemble.hosts, "/while-down", 100)  # a majority still serves

        victim.start(wait=False)
        assert victim.proc.wait(20) == 2
        said = victim.log()[victim.log_offset:]
        assert f"corrupt snapshot {newest}: payload checksum mismatch" in said
        assert "node_serving" not in said

        out = run_verify(victim.data_dir)
        assert out.returncode == 1
        assert f"{newest}: payload checksum mismatch" in out.stdout
        assert f"note: {newest}: the log still holds every entry after the older snapshot" \
            in out.stdout

        os.rename(newest, tmp_path / newest.name)  # what the operator is told to do
        victim.start()
        rows = assert_same_digest_everywhere(ensemble)
        assert {r["node"] for r in rows} == {1, 2, 3}
        assert_has_every_write(victim, acked)
    finally:
        ensemble.stop()


# --------------------------------------------- kill -9 around snapshot writes
def test_kill_9_around_snapshot_writes_loses_no_acknowledged_write(tmp_path):
    """Kill a node the moment a snapshot is being written (its temporary file
    shows) or has just been published, a few times, under write load. Each time
    its data dir verifies (nothing but an unsynced tail can be wrong), it
    restarts, and at the end it holds every acknowledged write and the same tree
    as the others."""
    ensemble = Ensemble(tmp_path, extra=COMPACTING).start()
    writer = BackgroundWriter(ensemble.hosts, "/load")
    acked, failures = writer.acked, writer.failures
    try:
        leader = ensemble.wait_for_leader()
        victim = ensemble.a_follower(leader)
        snap_dir = victim.data_dir / "snap"
        writer.start()
        wait_for(lambda: len(acked) >= 1000, 20, "a tree worth snapshotting")
        kills = {"while writing": 0, "just after": 0}
        cut_short = 0  # kills that left a snapshot's temporary file behind
        deadline = time.monotonic() + 25
        # Four kills, and more (up to eight) until one has beaten a snapshot's rename.
        while (sum(kills.values()) < 4 or not cut_short) and sum(kills.values()) < 8 \
                and time.monotonic() < deadline:
            seen = set(os.listdir(snap_dir))

            def snapshot_moment(seen: set[str] = seen) -> str | None:
                names = set(os.listdir(snap_dir))
                if any(n.endswith(".tmp") for n in names):
                    return "while writing"
                return "just after" if names - seen else None

            # (Polled every millisecond: a snapshot's temporary file lives briefly.)
            moment = wait_for(snapshot_moment, 5, "a snapshot written under load",
                              interval=0.001)
            victim.kill9()
            kills[moment] += 1
            report = verify(str(victim.data_dir))
            assert all("a torn last record" in what for _, what in report.problems), \
                report.lines()
            # A kill that beat the rename leaves the temporary file: a note, not a problem.
            cut_short += any(path.endswith(".tmp") for path, _ in report.notes)
            victim.start()
            assert not failures, failures
        print(f"kills: {kills}; snapshot writes cut short: {cut_short}")
        assert sum(kills.values()) >= 4 and cut_short >= 1, (kills, cut_short)
        writer.stop()
        assert not failures, failures
        assert len(acked) >= 1000
        assert_same_digest_everywhere(ensemble, timeout=60)
        assert_has_every_write(victim, acked)
    finally:
        writer.stop()
        ensemble.stop()


def test_kill_9_of_every_node_at_once_under_write_load_loses_no_acknowledged_write(tmp_path):
    """A power cut: all three nodes killed -9 in the same instant while a client
    has writes in flight. Restarted, the ensemble has every write it acknowledged,
    on every node, and every node the same tree (digest) at the same zxid."""
    ensemble = Ensemble(tmp_path, extra=COMPACTING).start()
    writer = BackgroundWriter(ensemble.hosts, "/cut", value_repeat=20, batch=64,
                              request_timeout=5.0, unknown_ok=True)
    acked = writer.acked
    try:
        ensemble.wait_for_leader()
        writer.start()
        wait_for(lambda: len(acked) >= 3000, 30, "writes flowing")
        for node in ensemble.nodes.values():  # as close to one instant as we can
            os.kill(node.pid, 9)
        for node in ensemble.nodes.values():
            node.kill9()  # (reaps it)
        writer.stop()
        assert not writer.failures, writer.failures
        before = len(acked)
        for node in ensemble.nodes.values():
            node.start(wait=False)
        ensemble.wait_for_leader(timeout=30)
        assert before >= 3000
        assert_same_digest_everywhere(ensemble, timeout=60)
        for node in ensemble.nodes.values():
            assert_has_every_write(node, acked)
    finally:
        writer.stop()
        ensemble.stop()
