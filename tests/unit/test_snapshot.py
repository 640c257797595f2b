"""Tests for zkactors.storage.snapshot: real files, real fsync."""

from __future__ import annotations

import itertools
import os
import struct
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zkactors.storage.snapshot import (
    CorruptSnapshotError,
    Installer,
    SnapshotError,
    SnapshotMeta,
    SnapshotStore,
    SnapshotTooLargeError,
    read_snapshot_file,
    snapshot_files,
    snapshot_name,
)

pytestmark = pytest.mark.timeout(60)

HEADER = 32  # fixed part of the header, before the msgpack metadata
MEMBERS = [1, 2, 3]


def payload_for(index: int, size: int = 1000) -> bytes:
    """Deterministic, index-dependent payloads."""
    pattern = b"tree-%d;" % index
    return (pattern * (size // len(pattern) + 1))[:size]


def snap_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


def transfer(leader: SnapshotStore, meta: SnapshotMeta, follower: SnapshotStore, chunk_bytes: int) -> SnapshotMeta:
    installer = follower.begin_install(meta.index, meta.term)
    for offset, data in leader.open_chunks(meta, chunk_bytes):
        installer.write(offset, data)
    return installer.finish()


# --------------------------------------------------------------------- basics


def test_empty_store_has_no_snapshot_and_creates_its_directory(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path / "data" / "snap"))
    assert (tmp_path / "data" / "snap").is_dir()
    assert store.latest() is None
    assert store.latest_meta() is None


def test_saved_snapshot_round_trips_and_survives_reopening(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    payload = payload_for(42)
    meta = store.save(42, 3, payload, MEMBERS)
    assert (meta.index, meta.term, meta.members) == (42, 3, (1, 2, 3))
    assert meta.path == str(tmp_path / snapshot_name(42, 3))
    assert meta.size == os.path.getsize(meta.path)
    assert snap_files(tmp_path) == [snapshot_name(42, 3)]

    snap = store.latest()
    assert snap is not None
    assert snap.meta == meta
    assert snap.payload == payload
    assert store.latest_meta() == meta

    reopened = SnapshotStore(str(tmp_path))
    snap = reopened.latest()
    assert snap is not None and (snap.meta, snap.payload) == (meta, payload)


def test_empty_payload_and_empty_members_round_trip(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    store.save(1, 1, b"", [])
    snap = store.latest()
    assert snap is not None
    assert (snap.payload, snap.meta.members) == (b"", ())


def test_bytes_like_payloads_are_accepted(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    store.save(1, 1, bytearray(b"abc"), [1])
    store.save(2, 1, memoryview(b"defg"), [1])
    snap = store.latest()
    assert snap is not None and snap.payload == b"defg"


def test_an_older_snapshot_still_held_loads_by_its_index_and_term(tmp_path: Path) -> None:
    # Two installs in a row: the store loads the first while the second is newest.
    store = SnapshotStore(str(tmp_path), keep=2)
    store.save(5, 1, b"five", [1])
    store.save(9, 2, b"nine", [1])
    assert store.load(5, 1).payload == b"five" and store.load(9, 2).payload == b"nine"
    assert store.load(5, 2) is None  # not that term
    store.save(12, 2, b"twelve", [1])
    assert store.load(5, 1) is None  # pruned: only the two newest are kept


def test_file_name_sorts_by_index() -> None:
    assert snapshot_name(7, 2) == "snap-00000000000000000007-2.snap"
    assert snapshot_name(9, 1) < snapshot_name(10, 1)


def test_invalid_metadata_is_refused(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    for index, term, members in [(-1, 1, []), (1, -1, []), (1, 1, [-2]), (1, 1, ["a"]), (2**64, 1, [])]:
        with pytest.raises(ValueError):
            store.save(index, term, b"x", members)
    assert snap_files(tmp_path) == []


def test_keep_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        SnapshotStore(str(tmp_path), keep=0)


# --------------------------------------------------------------------- pruning and ordering


def test_only_the_newest_keep_snapshots_are_kept(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path), keep=2)
    for index in range(1, 6):
        store.save(index * 10, 1 + index // 3, payload_for(index), MEMBERS)
    assert snap_files(tmp_path) == [snapshot_name(40, 2), snapshot_name(50, 2)]
    snap = store.latest()
    assert snap is not None and snap.payload == payload_for(5)


def test_keep_one_leaves_a_single_snapshot(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path), keep=1)
    store.save(1, 1, b"a", MEMBERS)
    store.save(2, 1, b"b", MEMBERS)
    assert snap_files(tmp_path) == [snapshot_name(2, 1)]


def test_extra_snapshots_left_by_a_crash_before_pruning_go_at_the_next_save(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path), keep=3)
    for index in range(1, 5):
        store.save(index, 1, b"x", MEMBERS)
    assert len(snap_files(tmp_path)) == 3
    store = SnapshotStore(str(tmp_path), keep=1)
    store.save(5, 1, b"y", MEMBERS)
    assert snap_files(tmp_path) == [snapshot_name(5, 1)]


def test_saving_the_same_index_again_overwrites_it(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    store.save(5, 2, b"first", MEMBERS)
    meta = store.save(5, 2, b"second, longer", [1, 2])
    assert snap_files(tmp_path) == [snapshot_name(5, 2)]
    snap = store.latest()
    assert snap is not None
    assert snap.payload == b"second, longer"
    assert snap.meta == meta and snap.meta.members == (1, 2)


def test_snapshots_never_go_backwards(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    store.save(10, 3, b"ten", MEMBERS)
    with pytest.raises(ValueError, match="backwards"):
        store.save(9, 3, b"nine", MEMBERS)
    with pytest.raises(ValueError, match="term"):
        store.save(10, 4, b"ten, other term", MEMBERS)  # one index, one term
    with pytest.raises(ValueError, match="term"):
        store.save(11, 2, b"eleven", MEMBERS)  # terms never decrease along the log
    with pytest.raises(ValueError, match="backwards"):
        store.begin_install(9, 3)
    assert snap_files(tmp_path) == [snapshot_name(10, 3)]
    snap = store.latest()
    assert snap is not None and snap.payload == b"ten"


def test_the_order_is_by_index_not_by_name_or_age(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path), keep=5)
    store.save(9, 1, b"nine", MEMBERS)
    store.save(10, 1, b"ten", MEMBERS)
    store.save(100, 1, b"hundred", MEMBERS)
    os.utime(tmp_path / snapshot_name(9, 1))  # newest mtime: must not matter
    snap = store.latest()
    assert snap is not None and snap.payload == b"hundred"


# --------------------------------------------------------------------- crashes and corruption


def test_leftover_temp_files_are_ignored_and_removed_on_open(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    store.save(5, 1, b"good", MEMBERS)
    # A crash during a save of a newer snapshot, and during an install.
    torn = tmp_path / (snapshot_name(6, 1) + ".tmp")
    torn.write_bytes(b"ZKSNAP\0\0 half a header")
    (tmp_path / (snapshot_name(7, 1) + ".install.tmp")).write_bytes(b"\0" * 100)
    unrelated = tmp_path / "notes.txt"
    unrelated.write_bytes(b"not ours")

    reopened = SnapshotStore(str(tmp_path))
    assert snap_files(tmp_path) == ["notes.txt", snapshot_name(5, 1)]
    snap = reopened.latest()
    assert snap is not None and snap.payload == b"good"
    reopened.save(6, 1, b"six", MEMBERS)  # the interrupted index can be saved again


def test_temp_file_is_ignored_even_before_reopening(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    store.save(5, 1, b"good", MEMBERS)
    (tmp_path / (snapshot_name(6, 1) + ".tmp")).write_bytes(b"garbage")
    meta = store.latest_meta()
    assert meta is not None and meta.index == 5


# Offsets of interesting bytes: magic, version, meta length, payload length,
# payload crc, header crc, metadata, and payload (first and last byte).
CORRUPT_AT = {
    "magic": 0,
    "version": 8,
    "meta_len": 12,
    "payload_len": 16,
    "payload_crc": 24,
    "header_crc": 28,
    "metadata": HEADER + 1,
    "payload_start": -1000,
    "payload_end": -1,
}


@pytest.mark.parametrize("where", list(CORRUPT_AT))
def test_a_corrupt_newest_snapshot_is_refused_naming_it_not_skipped(tmp_path: Path, where: str) -> None:
    store = SnapshotStore(str(tmp_path))
    store.save(10, 1, payload_for(10), MEMBERS)
    newest = store.save(20, 1, payload_for(20), MEMBERS)
    offset = CORRUPT_AT[where]
    flip_byte(Path(newest.path), offset if offset >= 0 else newest.size + offset)

    with pytest.raises(CorruptSnapshotError) as info:
        SnapshotStore(str(tmp_path)).latest()
    assert info.value.path == newest.path
    assert snapshot_name(20, 1) in str(info.value)
    assert "older snapshot" in str(info.value)  # says why it did not fall back
    # Nothing was deleted: the operator decides.
    assert snap_files(tmp_path) == [snapshot_name(10, 1), snapshot_name(20, 1)]


@pytest.mark.parametrize("where", ["magic", "version", "meta_len", "payload_len", "header_crc", "metadata"])
def test_a_corrupt_newest_header_is_refused_by_latest_meta(tmp_path: Path, where: str) -> None:
    store = SnapshotStore(str(tmp_path))
    newest = store.save(20, 1, payload_for(20), MEMBERS)
    flip_byte(Path(newest.path), CORRUPT_AT[where])
    with pytest.raises(CorruptSnapshotError, match=snapshot_name(20, 1)):
        store.latest_meta()


@pytest.mark.parametrize("keep_bytes", [0, 10, HEADER, HEADER + 5, -1])
def test_a_truncated_snapshot_is_corrupt(tmp_path: Path, keep_bytes: int) -> None:
    store = SnapshotStore(str(tmp_path))
    store.save(10, 1, payload_for(10), MEMBERS)
    newest = store.save(20, 1, payload_for(20), MEMBERS)
    os.truncate(newest.path, keep_bytes if keep_bytes >= 0 else newest.size + keep_bytes)
    with pytest.raises(CorruptSnapshotError, match=snapshot_name(20, 1)):
        store.latest()
    with pytest.raises(CorruptSnapshotError, match=snapshot_name(20, 1)):
        store.latest_meta()


def test_trailing_data_after_a_snapshot_is_corrupt(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    meta = store.save(20, 1, payload_for(20), MEMBERS)
    with open(meta.path, "ab") as f:
        f.write(b"\0")
    with pytest.raises(CorruptSnapshotError, match="trailing data"):
        store.latest()


def test_a_snapshot_whose_name_disagrees_with_its_header_is_corrupt(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    meta = store.save(20, 1, payload_for(20), MEMBERS)
    os.rename(meta.path, tmp_path / snapshot_name(21, 1))
    with pytest.raises(CorruptSnapshotError, match="file name"):
        store.latest()


def test_an_unknown_format_version_is_refused_by_name(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    meta = store.save(20, 1, b"payload", MEMBERS)
    with open(meta.path, "r+b") as f:
        f.seek(8)
        f.write(struct.pack("<I", 2))
    with pytest.raises(CorruptSnapshotError, match="version 2"):
        store.latest()


def test_meta_read_does_not_read_the_payload(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    big = os.urandom(1 << 16) * 256  # 16 MiB
    saved = store.save(7, 2, big, MEMBERS)
    # Damage the very last payload byte: only a full read can notice.
    flip_byte(Path(saved.path), saved.size - 1)
    meta = store.latest_meta()
    assert meta == saved
    with pytest.raises(CorruptSnapshotError, match="payload checksum"):
        store.latest()


def test_meta_read_works_on_a_huge_sparse_payload(tmp_path: Path) -> None:
    # A valid header declaring a 4 GiB payload that is a hole in a sparse
    # file: the metadata comes back without touching (or allocating) it.
    store = SnapshotStore(str(tmp_path))
    saved = store.save(3, 1, b"", MEMBERS)
    head = Path(saved.path).read_bytes()
    payload_len = 4 << 30
    prefix = head[:16] + struct.pack("<QI", payload_len, 0)
    meta_bytes = head[HEADER:]
    crc = zlib.crc32(meta_bytes, zlib.crc32(prefix))
    with open(saved.path, "wb") as f:
        f.write(prefix + struct.pack("<I", crc) + meta_bytes)
        f.truncate(len(head) + payload_len)
    meta = store.latest_meta()
    assert meta is not None
    assert (meta.index, meta.term, meta.members, meta.size) == (3, 1, (1, 2, 3), len(head) + payload_len)
    with pytest.raises(SnapshotTooLargeError, match="max_bytes"):
        store.latest()  # and loading it is refused before reading 4 GiB


# --------------------------------------------------------------------- limits


def test_payload_above_max_bytes_is_refused(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path), max_bytes=100)
    store.save(1, 1, b"x" * 100, MEMBERS)
    with pytest.raises(SnapshotTooLargeError, match="max_bytes=100"):
        store.save(2, 1, b"x" * 101, MEMBERS)
    assert snap_files(tmp_path) == [snapshot_name(1, 1)]


def test_loading_a_snapshot_above_max_bytes_is_refused(tmp_path: Path) -> None:
    SnapshotStore(str(tmp_path)).save(1, 1, b"x" * 101, MEMBERS)
    with pytest.raises(SnapshotTooLargeError, match="max_bytes=100"):
        SnapshotStore(str(tmp_path), max_bytes=100).latest()


def test_installer_refuses_an_oversized_snapshot_from_its_header(tmp_path: Path) -> None:
    leader = SnapshotStore(str(tmp_path / "leader"))
    meta = leader.save(5, 1, b"x" * 1000, MEMBERS)
    follower = SnapshotStore(str(tmp_path / "follower"), max_bytes=999)
    installer = follower.begin_install(5, 1)
    head_size = meta.size - 1000
    with leader.open_reader(meta) as reader, pytest.raises(SnapshotTooLargeError, match="max_bytes=999"):
        installer.write(0, reader.read(0, head_size))  # refused before any payload
    assert snap_files(tmp_path / "follower") == []
    with pytest.raises(ValueError, match="closed"):
        installer.write(head_size, b"x")


# --------------------------------------------------------------------- chunked transfer


@pytest.mark.parametrize("chunk_bytes", [1, 2, 7, 31, 32, 33, 4096, 1 << 20])
def test_chunked_transfer_round_trip(tmp_path: Path, chunk_bytes: int) -> None:
    leader = SnapshotStore(str(tmp_path / "leader"))
    payload = payload_for(30, 3000)
    sent = leader.save(30, 4, payload, [1, 2, 5])
    follower = SnapshotStore(str(tmp_path / "follower"))
    follower.save(12, 2, b"old", [1, 2])

    got = transfer(leader, sent, follower, chunk_bytes)
    assert (got.index, got.term, got.members, got.size) == (30, 4, (1, 2, 5), sent.size)
    assert got.path == str(tmp_path / "follower" / snapshot_name(30, 4))
    assert Path(got.path).read_bytes() == Path(sent.path).read_bytes()
    assert snap_files(tmp_path / "follower") == [snapshot_name(12, 2), snapshot_name(30, 4)]
    snap = SnapshotStore(str(tmp_path / "follower")).latest()
    assert snap is not None and snap.payload == payload and snap.meta == got


def test_reader_serves_arbitrary_ranges(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    meta = store.save(3, 1, payload_for(3), MEMBERS)
    raw = Path(meta.path).read_bytes()
    with store.open_reader(meta) as reader:
        assert reader.size == len(raw)
        assert reader.read(0, 10) == raw[:10]
        assert reader.read(100, 50) == raw[100:150]
        assert reader.read(len(raw) - 5, 100) == raw[-5:]
        assert reader.read(len(raw), 100) == b""
        assert b"".join(data for _, data in reader.chunks(64, start=64)) == raw[64:]
    with pytest.raises(ValueError, match="closed"):
        reader.read(0, 1)


def test_reader_survives_the_snapshot_being_pruned(tmp_path: Path) -> None:
    leader = SnapshotStore(str(tmp_path / "leader"), keep=1)
    meta = leader.save(1, 1, payload_for(1), MEMBERS)
    chunks = leader.open_chunks(meta, 100)
    leader.save(2, 1, payload_for(2), MEMBERS)  # prunes snapshot 1
    assert not os.path.exists(meta.path)
    follower = SnapshotStore(str(tmp_path / "follower"))
    installer = follower.begin_install(1, 1)
    for offset, data in chunks:
        installer.write(offset, data)
    installer.finish()
    snap = follower.latest()
    assert snap is not None and snap.payload == payload_for(1)
    with pytest.raises(SnapshotError, match="no longer exists"):
        leader.open_reader(meta)


def test_installer_rejects_non_contiguous_offsets_and_carries_on(tmp_path: Path) -> None:
    leader = SnapshotStore(str(tmp_path / "leader"))
    meta = leader.save(8, 2, payload_for(8), MEMBERS)
    raw = Path(meta.path).read_bytes()
    follower = SnapshotStore(str(tmp_path / "follower"))
    installer = follower.begin_install(8, 2)
    installer.write(0, raw[:100])
    with pytest.raises(ValueError, match="expected 100"):
        installer.write(150, raw[150:200])  # a gap
    with pytest.raises(ValueError, match="expected 100"):
        installer.write(50, raw[50:100])  # sent again
    assert installer.offset == 100
    installer.write(100, raw[100:])
    got = installer.finish()
    assert Path(got.path).read_bytes() == raw


@pytest.mark.parametrize("where", ["header", "metadata", "payload"])
def test_a_corrupted_chunk_fails_the_install_and_leaves_no_file(tmp_path: Path, where: str) -> None:
    leader = SnapshotStore(str(tmp_path / "leader"))
    meta = leader.save(8, 2, payload_for(8), MEMBERS)
    raw = bytearray(Path(meta.path).read_bytes())
    raw[{"header": 20, "metadata": HEADER + 2, "payload": len(raw) // 2}[where]] ^= 0x01
    follower = SnapshotStore(str(tmp_path / "follower"))
    installer = follower.begin_install(8, 2)
    with pytest.raises(CorruptSnapshotError, match="checksum"):
        for offset in range(0, len(raw), 10):
            installer.write(offset, bytes(raw[offset:offset + 10]))
        installer.finish()
    assert snap_files(tmp_path / "follower") == []  # no final file, no temp file
    assert follower.latest() is None
    with pytest.raises(ValueError, match="closed"):
        installer.write(installer.offset, b"x")


def test_installer_refuses_a_snapshot_other_than_the_one_announced(tmp_path: Path) -> None:
    leader = SnapshotStore(str(tmp_path / "leader"))
    meta = leader.save(8, 2, payload_for(8), MEMBERS)
    follower = SnapshotStore(str(tmp_path / "follower"))
    installer = follower.begin_install(9, 2)
    with pytest.raises(CorruptSnapshotError, match="expected index 9"):
        for offset, data in leader.open_chunks(meta, 1):
            installer.write(offset, data)
    assert snap_files(tmp_path / "follower") == []


def test_installer_refuses_garbage(tmp_path: Path) -> None:
    installer = SnapshotStore(str(tmp_path)).begin_install(1, 1)
    with pytest.raises(CorruptSnapshotError, match="magic"):
        installer.write(0, b"GET / HTTP/1.1\r\n" * 4)
    assert snap_files(tmp_path) == []


def test_installer_refuses_data_past_the_declared_end(tmp_path: Path) -> None:
    leader = SnapshotStore(str(tmp_path / "leader"))
    meta = leader.save(8, 2, b"payload", MEMBERS)
    raw = Path(meta.path).read_bytes()
    installer = SnapshotStore(str(tmp_path / "follower")).begin_install(8, 2)
    with pytest.raises(CorruptSnapshotError, match="runs past"):
        installer.write(0, raw + b"more")
    assert snap_files(tmp_path / "follower") == []


@pytest.mark.parametrize("received", [0, 10, HEADER + 3, -1])
def test_finishing_an_incomplete_install_fails_and_leaves_no_file(tmp_path: Path, received: int) -> None:
    leader = SnapshotStore(str(tmp_path / "leader"))
    meta = leader.save(8, 2, payload_for(8), MEMBERS)
    raw = Path(meta.path).read_bytes()
    installer = SnapshotStore(str(tmp_path / "follower")).begin_install(8, 2)
    installer.write(0, raw[:received])
    with pytest.raises(CorruptSnapshotError, match="incomplete"):
        installer.finish()
    assert snap_files(tmp_path / "follower") == []


def test_abort_removes_the_partial_install(tmp_path: Path) -> None:
    leader = SnapshotStore(str(tmp_path / "leader"))
    meta = leader.save(8, 2, payload_for(8), MEMBERS)
    follower = SnapshotStore(str(tmp_path / "follower"))
    installer = follower.begin_install(8, 2)
    installer.write(0, leader.open_reader(meta).read(0, 200))
    assert snap_files(tmp_path / "follower") == [snapshot_name(8, 2) + ".install.tmp"]
    installer.abort()
    installer.abort()  # idempotent
    assert snap_files(tmp_path / "follower") == []
    with pytest.raises(ValueError, match="closed"):
        installer.finish()


def test_a_new_install_supersedes_one_in_progress(tmp_path: Path) -> None:
    leader = SnapshotStore(str(tmp_path / "leader"))
    meta = leader.save(8, 2, payload_for(8), MEMBERS)
    raw = Path(meta.path).read_bytes()
    follower = SnapshotStore(str(tmp_path / "follower"))
    first = follower.begin_install(8, 2)
    first.write(0, raw[:100])
    second = follower.begin_install(8, 2)  # the leader started over
    with pytest.raises(ValueError, match="superseded"):
        first.write(100, raw[100:])
    second.write(0, raw)
    second.finish()
    assert Path(tmp_path / "follower" / snapshot_name(8, 2)).read_bytes() == raw
    assert snap_files(tmp_path / "follower") == [snapshot_name(8, 2)]


def test_finish_rechecks_that_the_install_is_not_backwards(tmp_path: Path) -> None:
    leader = SnapshotStore(str(tmp_path / "leader"))
    meta = leader.save(8, 2, payload_for(8), MEMBERS)
    follower = SnapshotStore(str(tmp_path / "follower"))
    installer = follower.begin_install(8, 2)
    for offset, data in leader.open_chunks(meta, 500):
        installer.write(offset, data)
    follower.save(9, 2, b"newer, taken locally meanwhile", MEMBERS)
    with pytest.raises(ValueError, match="backwards"):
        installer.finish()
    assert snap_files(tmp_path / "follower") == [snapshot_name(9, 2)]


def test_installing_the_snapshot_already_held_is_idempotent(tmp_path: Path) -> None:
    leader = SnapshotStore(str(tmp_path / "leader"))
    meta = leader.save(8, 2, payload_for(8), MEMBERS)
    follower = SnapshotStore(str(tmp_path / "follower"))
    transfer(leader, meta, follower, 1000)
    got = transfer(leader, meta, follower, 64)
    assert snap_files(tmp_path / "follower") == [snapshot_name(8, 2)]
    assert follower.latest_meta() == got


def test_an_interrupted_install_is_cleaned_up_on_reopen(tmp_path: Path) -> None:
    leader = SnapshotStore(str(tmp_path / "leader"))
    meta = leader.save(8, 2, payload_for(8), MEMBERS)
    follower = SnapshotStore(str(tmp_path / "follower"))
    installer: Installer = follower.begin_install(8, 2)
    installer.write(0, leader.open_reader(meta).read(0, 300))
    # "Crash": the process goes away without finish() or abort().
    reopened = SnapshotStore(str(tmp_path / "follower"))
    assert snap_files(tmp_path / "follower") == []
    assert reopened.latest() is None


# --------------------------------------------------------------------- properties

members_st = st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=9)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    index=st.integers(min_value=0, max_value=2**64 - 1),
    term=st.integers(min_value=0, max_value=2**64 - 1),
    members=members_st,
    payload=st.binary(max_size=5000),
)
def test_any_snapshot_round_trips(index: int, term: int, members: list[int], payload: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        saved = SnapshotStore(d).save(index, term, payload, members)
        store = SnapshotStore(d)
        snap = store.latest()
        assert snap is not None
        assert snap.payload == payload
        assert snap.meta == saved == store.latest_meta()
        assert (saved.index, saved.term, saved.members) == (index, term, tuple(members))


@settings(max_examples=60, deadline=None)
@given(
    payload=st.binary(max_size=3000),
    members=members_st,
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12),
)
def test_any_split_into_chunks_installs_the_same_bytes(payload: bytes, members: list[int], cuts: list[int]) -> None:
    with tempfile.TemporaryDirectory() as d:
        leader = SnapshotStore(os.path.join(d, "leader"))
        meta = leader.save(77, 5, payload, members)
        raw = Path(meta.path).read_bytes()
        bounds = sorted({0, len(raw), *(c for c in cuts if c < len(raw))})
        follower = SnapshotStore(os.path.join(d, "follower"))
        installer = follower.begin_install(77, 5)
        for start, end in itertools.pairwise(bounds):
            installer.write(start, raw[start:end])
        got = installer.finish()
        assert Path(got.path).read_bytes() == raw
        snap = follower.latest()
        assert snap is not None and snap.payload == payload and snap.meta.members == tuple(members)


@settings(max_examples=60, deadline=None)
@given(payload=st.binary(min_size=1, max_size=500), data=st.data())
def test_any_single_bit_flip_is_caught(payload: bytes, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as d:
        meta = SnapshotStore(d).save(3, 1, payload, MEMBERS)
        pos = data.draw(st.integers(min_value=0, max_value=meta.size - 1))
        bit = data.draw(st.integers(min_value=0, max_value=7))
        raw = bytearray(Path(meta.path).read_bytes())
        raw[pos] ^= 1 << bit
        Path(meta.path).write_bytes(bytes(raw))
        with pytest.raises(CorruptSnapshotError):
            SnapshotStore(d).latest()


# ------------------------------------------------- read-only check (verify)


def test_read_snapshot_file_verifies_one_file_without_a_store(tmp_path: Path) -> None:
    store = SnapshotStore(str(tmp_path))
    meta = store.save(10, 2, payload_for(10), MEMBERS)
    (tmp_path / (snapshot_name(20, 2) + ".tmp")).write_bytes(b"half")
    before = snap_files(tmp_path)
    snapshot = read_snapshot_file(meta.path)
    assert (snapshot.meta.index, snapshot.meta.term, snapshot.payload) == (10, 2, payload_for(10))
    assert snapshot_files(str(tmp_path)) == (
        [(10, 2, meta.path)], [str(tmp_path / (snapshot_name(20, 2) + ".tmp"))])
    assert snap_files(tmp_path) == before  # the temporary file is left where it was
    flip_byte(Path(meta.path), meta.size - 5)
    with pytest.raises(CorruptSnapshotError) as info:
        read_snapshot_file(meta.path)
    assert (info.value.path, info.value.reason) == (meta.path, "payload checksum mismatch")


def test_read_snapshot_file_checks_the_name_against_the_header(tmp_path: Path) -> None:
    meta = SnapshotStore(str(tmp_path)).save(10, 2, payload_for(10), MEMBERS)
    renamed = tmp_path / snapshot_name(11, 2)
    os.rename(meta.path, renamed)
    with pytest.raises(CorruptSnapshotError, match="header says index 10 term 2"):
        read_snapshot_file(str(renamed))
