import pytest

from zkactors.storage.stable import STATE_FILE, StableStore, StableStoreError

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
