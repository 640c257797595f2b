"""Quorum arithmetic and entry records of zkactors.core.replog (the Raft behaviour of
ReplicatedLog is in test_raft_log.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zkactors.core.quorum import majority, quorum_index

pytestmark = pytest.mark.timeout(60)

def brute_quorum(match: list[int]) -> int:
    """The largest index that at least a majority of members have reached."""
    return max(v for v in [0, *match] if sum(m >= v for m in match) * 2 > len(match))


# ------------------------------------------------------------------ quorum_index


def test_a_majority_is_more_than_half():
    assert [majority(n) for n in range(1, 8)] == [1, 2, 2, 3, 3, 4, 4]


def test_quorum_index_of_one_member_is_its_own_index():
    assert quorum_index([7]) == 7


@pytest.mark.parametrize(
    ("match", "expected"),
    [([5, 0, 0], 0), ([5, 3, 0], 3), ([5, 5, 0], 5), ([0, 3, 9], 3), ([2, 2, 2], 2)],
)
def test_quorum_index_of_three_members_is_the_second_highest(match, expected):
    assert quorum_index(match) == expected


@pytest.mark.parametrize(
    ("match", "expected"),
    [([9, 8, 0, 0, 0], 0), ([9, 8, 7, 0, 0], 7), ([1, 2, 3, 4, 5], 3), ([4, 4, 4, 4, 0], 4)],
)
def test_quorum_index_of_five_members_needs_three(match, expected):
    assert quorum_index(match) == expected


def test_quorum_index_of_an_even_ensemble_needs_more_than_half():
    assert quorum_index([9, 9, 0, 0]) == 0
    assert quorum_index([9, 9, 9, 0]) == 9
    assert quorum_index([4, 0]) == 0


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.integers(min_value=0, max_value=20), min_size=1, max_size=9))
def test_quorum_index_is_the_largest_index_a_majority_has_reached(match):
    assert quorum_index(match) == brute_quorum(match)


