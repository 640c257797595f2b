"""The records a node's actors send one another (zkactors.runtime.mail), and
their one codec."""

from __future__ import annotations

import dataclasses

import pytest

from zkactors.core.messages import Campaign, RoleChanged
from zkactors.protocol import pack
from zkactors.runtime import mail

pytestmark = pytest.mark.timeout(30)

EXAMPLES = [
    mail.Writes([[b"c1", 1, ["create", "/a", b"", 0], None]]),
    mail.Reads([[b"c1", 2, "get", ["/a"], 7]]),
    mail.WatchQueries([[b"c1", 3, "events", [[["/", True]], 0]]]),
    mail.Touched([5, 6]),
    mail.Commits(9, 2, [[b"c1", 1, 9, 2, 1234, ["noop"]], [b"c1", 4, ["get", ["/a"]]]]),
    mail.Restore(100, 3),
    mail.Leading(True, 3),
    mail.Role("follower", 3, 2, "tcp://127.0.0.1:2182", True, 9),
    mail.Local(Campaign(4)),
    mail.Local(RoleChanged("leader", 4, 1, 10, 4, 9, False, 0)),
    mail.Replies(8589934601, [[b"c1", 1, 0, "/a", True]]),
    mail.Events([["CREATED", "/a", 9, 0]], 9, False),
    mail.SnapshotSaved(100),
    mail.SessionsEnded([5]),
    mail.Health(False),
    mail.PeerCounters("log", {"unknown_peer": 2}),
]


def test_every_kind_has_an_example_and_each_comes_back_as_it_went():
    assert {type(m) for m in EXAMPLES} == set(mail.KINDS)
    for message in EXAMPLES:
        assert mail.decode(mail.encode(message)) == message


def test_a_record_reads_as_what_it_is():
    # The reason for records: a consumer names fields, not positions.
    commits = mail.decode(mail.encode(EXAMPLES[4]))
    assert (commits.commit_index, commits.term, len(commits.items)) == (9, 2, 2)
    assert all(dataclasses.is_dataclass(kind) and kind.__doc__ for kind in mail.KINDS)


def test_what_is_not_an_actor_message_fails_loudly():
    with pytest.raises(mail.MailError, match="not an actor message"):
        mail.encode(["commit", 1, 2, []])
    with pytest.raises(mail.MailError, match="unknown actor message kind 'commit'"):
        mail.decode(pack(["commit", 1, 2, []]))
    with pytest.raises(mail.MailError, match="Restore"):
        mail.decode(pack(["Restore", 1]))
