"""The log entry's record on disk (zkactors.engine.records): versioned, with the
unversioned records of earlier releases still read, and a newer format refused
with a clear error rather than misread."""

from __future__ import annotations

import msgpack
import pytest

from zkactors.core.replog import Entry
from zkactors.core.store import StoreCore
from zkactors.core.tree import Tree
from zkactors.engine.records import (
    RECORD_VERSION,
    RecordError,
    decode_record,
    encode_record,
)
from zkactors.engine.state import RecoveryError, recover
from zkactors.storage.snapshot import SnapshotStore
from zkactors.storage.stable import StableStore
from zkactors.storage.wal import WriteAheadLog

pytestmark = pytest.mark.timeout(60)

CREATE = ["create", "/a", b"v", 0]


def test_a_record_starts_with_its_version_and_round_trips():
    entry = Entry(7, 3, 1234, CREATE)
    record = encode_record(entry)
    assert msgpack.unpackb(record)[0] == RECORD_VERSION == 1
    assert decode_record(7, record) == entry


def test_a_record_of_the_release_before_versions_still_reads():
    assert decode_record(5, msgpack.packb([2, 99, CREATE])) == Entry(5, 2, 99, CREATE)


@pytest.mark.parametrize(("payload", "words"), [
    (msgpack.packb([RECORD_VERSION + 1, 2, 99, CREATE, "more"]), "newer than the 1"),
    (msgpack.packb([RECORD_VERSION + 1, 2, 99, CREATE]), "newer than the 1"),
    (msgpack.packb({"term": 2}), "is a dict"),
    (msgpack.packb([1, 2]), "a list of 2"),
    (msgpack.packb([1, "two", 99, CREATE]), "wrong type"),
    (b"\xc1", "does not decode"),
])
def test_what_is_not_a_record_of_this_version_is_refused_by_name(payload, words):
    with pytest.raises(RecordError, match=words) as err:
        decode_record(9, payload)
    assert "record 9" in str(err.value)


def _data_dir(tmp_path, payloads: list[bytes]) -> tuple:
    wal = WriteAheadLog(str(tmp_path / "wal"))
    wal.append_many(payloads)
    wal.sync()
    stable = StableStore(str(tmp_path))
    stable.save(2, 0)
    return wal, stable, SnapshotStore(str(tmp_path / "snap"))


def test_a_log_written_before_and_after_the_upgrade_recovers_whole(tmp_path):
    old = [msgpack.packb([1, 10, ["noop"]]), msgpack.packb([1, 11, CREATE])]
    new = [encode_record(Entry(3, 2, 12, ["set", "/a", b"w", -1]))]
    wal, stable, snaps = _data_dir(tmp_path, old + new)
    recovered = recover(wal, stable, snaps, StoreCore(Tree()))
    assert [(e.index, e.term, e.txn[0]) for e in recovered.entries] == [
        (1, 1, "noop"), (2, 1, "create"), (3, 2, "set")]


def test_a_log_from_a_newer_release_stops_the_start_naming_the_log(tmp_path):
    future = msgpack.packb([RECORD_VERSION + 1, 1, 10, ["noop"], {"new": "field"}])
    wal, stable, snaps = _data_dir(tmp_path, [encode_record(Entry(1, 1, 9, ["noop"])), future])
    with pytest.raises(RecoveryError, match="newer release") as err:
        recover(wal, stable, snaps, StoreCore(Tree()))
    assert str(tmp_path / "wal") in str(err.value) and "record 2" in str(err.value)
