"""A big tree on a real ensemble (issue #13): the machinery of ``bench/scale.py``
at 100,000 znodes, asserting what holds whatever the timing — every member ends
with the same tree, a follower restarted from its own disk serves it, and a
follower whose data dir was deleted gets it back from the leader's snapshot.
(Timings are measured by the benchmark, not asserted here.)
"""

from __future__ import annotations

import pytest

from bench import scale

ZNODES = 100_000
# The tree, the load keys' parent and its keys, "/" and "/scale".
EXPECTED_ZNODES = ZNODES + scale.LOAD_KEYS + 3


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_hundred_thousand_znodes_survive_snapshots_a_restart_and_a_wiped_follower(tmp_path):
    # Snapshots every 25,000 entries: several during the fill, and the leader's
    # log compacted far past index 1, so a wiped follower needs a snapshot.
    result = scale.run(ZNODES, tmp_path / "ensemble", snapshot_every=25_000, log_retain=5_000,
                       procs=2, rate=300.0, before_s=1.0, after_s=1.0)

    assert result["writes"]["failed"] == 0
    assert result["writes"]["during_snapshot"]["count"] > 0  # the load spanned a snapshot
    digests = set()
    for check in ("digests_before_restarts", "digests_after_cold_start",
                  "digests_after_wiped_rejoin"):
        rows = result[check]
        assert len(rows) == 3
        assert {row["znodes"] for row in rows} == {EXPECTED_ZNODES}, rows
        digests |= {row["digest"] for row in rows}
    # Nothing was written after the load: one tree, before and after both restarts.
    assert len(digests) == 1, result

    cold = result["cold_start"]
    assert cold["applied_index"] >= cold["target_commit_index"]
    assert cold["znodes"] == EXPECTED_ZNODES
    assert cold["state_loaded"]["snapshot_index"] > 0  # it started from its own snapshot
    assert cold["spot_check_wrong"] == 0

    wiped = result["wiped_follower"]
    assert "snapshot_installed" in wiped["log_events_at_s"]
    assert wiped["state_loaded"]["snapshot_index"] == 0  # nothing of its own left
    assert wiped["znodes"] == EXPECTED_ZNODES
    assert wiped["spot_check_wrong"] == 0
