import pytest

from zkactors.storage.stable import (
    COMMIT_HINT_FILE,
    STATE_FILE,
    StableStore,
    StableStoreError,
)

pytestmark = pytest.mark.timeout(30)


def test_fresh_store_has_term_zero_and_no_vote(tmp_path):
    assert StableStore(str(tmp_path)).load() == (0, 0)


def test_saved_term_and_vote_survive_reopening(tmp_path):
    StableStore(str(tmp_path)).save(7, 3)
    assert StableStore(str(tmp_path)).load() == (7, 3)
    StableStore(str(tmp_path)).save(8, 0)
    assert StableStore(str(tmp_path)).load() == (8, 0)


def test_a_damaged_state_file_is_refused_naming_it(tmp_path):
    StableStore(str(tmp_path)).save(7, 3)
    path = tmp_path / STATE_FILE
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(StableStoreError, match=STATE_FILE):
        StableStore(str(tmp_path)).load()


def test_the_commit_hint_survives_reopening_and_a_torn_one_reads_as_none(tmp_path):
    store = StableStore(str(tmp_path))
    assert store.load_commit_hint() == 0  # never written
    store.save_commit_hint(41)
    store.save_commit_hint(42)
    store.close()
    assert StableStore(str(tmp_path)).load_commit_hint() == 42
    # A torn write (a crash mid-pwrite) fails the checksum: no hint, not a wrong one.
    path = tmp_path / COMMIT_HINT_FILE
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01
    path.write_bytes(bytes(raw))
    assert StableStore(str(tmp_path)).load_commit_hint() == 0
    path.write_bytes(b"\x00" * 5)
    assert StableStore(str(tmp_path)).load_commit_hint() == 0
