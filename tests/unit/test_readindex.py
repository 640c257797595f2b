"""The leader's ReadIndex rounds (zkactors.core.readindex)."""

from __future__ import annotations

import pytest

from zkactors.core.messages import LeaderCheck
from zkactors.core.readindex import LeadershipRounds

pytestmark = pytest.mark.timeout(30)

PEERS = [2, 3, 4, 5]  # a five-member ensemble led by 1


def test_a_round_is_confirmed_once_a_majority_including_the_leader_acknowledged_it():
    rounds = LeadershipRounds()
    assert rounds.next_round() == 1
    assert rounds.check(term=7, leader=1, now_ms=40) == LeaderCheck(7, 1, 1)
    assert rounds.sent_ms == 40
    assert rounds.confirmed(PEERS) == 0
    assert rounds.acknowledged(2, 1)
    assert rounds.confirmed(PEERS) == 0  # the leader and one: two of five
    assert rounds.acknowledged(4, 1)
    assert rounds.confirmed(PEERS) == 1  # three of five


def test_an_acknowledgement_confirms_every_round_up_to_it_and_old_ones_are_not_news():
    rounds = LeadershipRounds()
    for _ in range(3):
        rounds.next_round()
    assert rounds.acknowledged(2, 3) and rounds.acknowledged(3, 3)
    assert rounds.confirmed(PEERS) == 3
    assert not rounds.acknowledged(2, 2)  # a late answer to an older round


def test_followers_requests_wait_for_a_round_started_after_them():
    rounds = LeadershipRounds()
    rounds.wait(follower=2, request_id=11, index=40)
    rounds.wait(follower=3, request_id=12, index=41)
    assert rounds.answerable(confirmed=0) == []
    assert rounds.answerable(confirmed=1) == [(2, 11, 40)]
    assert rounds.answerable(confirmed=1) == []  # taken once
    assert rounds.abandon() == [(3, 12)] and rounds.remote == []
