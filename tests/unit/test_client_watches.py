"""The client's pure watch state machine (zkactors.client.watches.WatchStream):
subscribe-then-read, dedup, gap detection by heartbeat and count, resume merging,
compaction, one-shot semantics, bounded memory — all without sockets."""

from __future__ import annotations

import pytest

from zkactors.client.watchstream import (
    CHILD_KINDS,
    DATA_KINDS,
    LIVE,
    SYNCING,
    EventType,
    Query,
    Watch,
    WatchStream,
)
from zkactors.core.tree import Event
from zkactors.core.watches import ResumeAnswer, ResumeKind
from zkactors.protocol import OP_EVENT_COUNT, OP_EVENTS

pytestmark = pytest.mark.timeout(30)


def changed(path: str, zxid: int, version: int) -> Event:
    return Event("changed", path, zxid, version)


class Harness:
    """A stream plus what it delivered and asked."""

    def __init__(self, max_log: int = 1000) -> None:
        self.stream = WatchStream(max_log=max_log)
        self.delivered: list[tuple[Watch, object]] = []
        self.queries = []

    def take(self, step):
        self.delivered.extend(step.deliveries)
        self.queries.extend(step.queries)
        return step

    def watch(self, path="/k", recursive=False, start=10, kinds=None, once=False,
              current=10) -> Watch:
        w = Watch(path, recursive, lambda e: None, kinds, once)
        self.take(self.stream.add(w, current))
        if start is not None:
            self.take(self.stream.activate(w.wid, start))
        return w

    def go_live(self, upto: int) -> None:
        """Answer the pending resume with no events through ``upto``."""
        self.settle_live(upto)

    def settle_live(self, upto: int, prefix: str = "", seq: int | None = None) -> None:
        """Settle (the barrier carrying ``prefix``'s number ``seq``), then answer
        the resume with no events through ``upto``."""
        if self.stream.awaiting is not None:
            self.settle(upto, prefix, seq)
        query = self.queries.pop()
        assert query.op == OP_EVENTS
        self.take(self.stream.on_answer(query.qid, ResumeAnswer(ResumeKind.EVENTS, upto)))
        assert self.stream.mode == LIVE

    def settle(self, applied: int, prefix: str = "", seq: int | None = None) -> None:
        """The shell sends the barrier the stream awaits, and it comes back."""
        self.stream.expect_barrier("b")
        self.take(self.stream.on_barrier("b", applied, prefix, seq))

    def versions(self) -> list[int]:
        return [e.version for _, e in self.delivered]


def test_live_events_are_delivered_once_and_only_after_the_watch_start():
    h = Harness()
    h.watch(start=10)
    h.go_live(10)
    for event in (changed("/k", 9, 1), changed("/k", 11, 2), changed("/k", 11, 2),
                  changed("/other", 12, 1), changed("/k", 13, 3)):
        h.take(h.stream.on_event(event))
    assert h.versions() == [2, 3]
    assert [e.type for _, e in h.delivered] == [EventType.CHANGED] * 2
    assert h.stream.dispatched_zxid == 13


def test_a_pending_watch_gets_queued_events_after_its_read_and_drops_the_rest():
    h = Harness()
    h.watch("/a", start=5, current=5)
    h.go_live(5)
    # /k is covered by no subscription yet: its watch registers pending...
    w = Watch("/k", False, lambda e: None)
    step = h.take(h.stream.add(w, 5))
    assert step.subscribe == ["/k"] and h.stream.mode == SYNCING
    h.settle(8)
    resume = h.queries.pop()
    # ...events arrive while its read is out; the read answers at zxid 7.
    h.take(h.stream.on_event(changed("/k", 7, 1)))
    h.take(h.stream.on_event(changed("/k", 8, 2)))
    h.take(h.stream.activate(w.wid, 7))
    assert h.delivered == []  # held: syncing until the resume answers
    answer = ResumeAnswer(ResumeKind.EVENTS, 8, (changed("/k", 7, 1), changed("/k", 8, 2)))
    h.take(h.stream.on_answer(resume.qid, answer))
    assert h.versions() == [2] and h.stream.mode == LIVE


def test_a_quiet_heartbeat_advances_synced_without_asking():
    h = Harness()
    h.watch(start=10)
    h.go_live(10)
    h.take(h.stream.on_heartbeat(50, 9))
    assert h.queries == [] and h.stream.synced == 50


def count_asked_after_one_change() -> tuple[Harness, Query]:
    """A live watcher of /k gets the change at 11 (no sequence numbers) and a
    heartbeat (20, 11): it asks for a count."""
    h = Harness()
    h.watch(start=10)
    h.go_live(10)
    h.take(h.stream.on_event(changed("/k", 11, 1)))
    h.take(h.stream.on_heartbeat(20, 11))
    return h, h.queries.pop()


def test_a_count_that_matches_confirms_without_a_resume():
    h, query = count_asked_after_one_change()
    assert query.op == OP_EVENT_COUNT and query.args() == [[["/k", False]], 10, 20]
    h.take(h.stream.on_answer(query.qid, ResumeAnswer(ResumeKind.COUNT, 20, count=1)))
    assert h.stream.synced == 20 and h.queries == [] and h.versions() == [1]


def test_a_count_mismatch_resumes_and_delivers_the_missing_events_exactly_once():
    h = Harness()
    h.watch(start=10)
    h.go_live(10)
    h.take(h.stream.on_event(changed("/k", 11, 1)))
    h.take(h.stream.on_event(changed("/k", 13, 3)))  # 12 was dropped by PUB
    h.take(h.stream.on_heartbeat(20, 13))
    count = h.queries.pop()
    h.take(h.stream.on_answer(count.qid, ResumeAnswer(ResumeKind.COUNT, 20, count=3)))
    resume = h.queries.pop()
    assert resume.op == OP_EVENTS and resume.since == 10
    events = (changed("/k", 11, 1), changed("/k", 12, 2), changed("/k", 13, 3))
    h.take(h.stream.on_answer(resume.qid, ResumeAnswer(ResumeKind.EVENTS, 20, events)))
    assert sorted(h.versions()) == [1, 2, 3] and len(h.versions()) == 3
    assert h.stream.late == 1  # 12 came after 13: counted, never lost
    assert h.stream.mode == LIVE and h.stream.synced == 20


def test_a_sequence_gap_holds_the_event_and_resumes_so_order_is_kept():
    h = Harness()
    h.watch(start=10)
    h.go_live(10)
    h.take(h.stream.on_event(changed("/k", 11, 1), {"/k": 7}))
    # 12 was dropped by PUB: the next message's number jumps from 7 to 9.
    h.take(h.stream.on_event(changed("/k", 13, 3), {"/k": 9}))
    assert h.versions() == [1]  # 13 is held, not dispatched ahead of 12
    assert h.stream.mode == SYNCING and h.stream.gaps == 1
    resume = h.queries.pop()  # asked at once, not at the next heartbeat
    assert resume.op == OP_EVENTS and resume.since == 10
    events = (changed("/k", 11, 1), changed("/k", 12, 2), changed("/k", 13, 3))
    h.take(h.stream.on_answer(resume.qid, ResumeAnswer(ResumeKind.EVENTS, 13, events)))
    assert h.versions() == [1, 2, 3]
    assert h.stream.late == 0 and h.stream.mode == LIVE


def test_consecutive_numbers_and_other_subscribers_prefixes_are_no_gap():
    h = Harness()
    h.watch(start=10)
    h.go_live(10)
    h.take(h.stream.on_event(changed("/k", 11, 1), {"/k": 1, "/": 50}))
    # "/" is someone else's subscription: its numbers are none of our business.
    h.take(h.stream.on_event(changed("/k", 12, 2), {"/k": 2, "/": 58}))
    assert h.versions() == [1, 2] and h.stream.gaps == 0 and h.stream.mode == LIVE
    assert h.queries == []


def test_a_new_connection_starts_counting_afresh():
    h = Harness()
    h.watch(start=10)
    h.go_live(10)
    h.take(h.stream.on_event(changed("/k", 11, 1), {"/k": 100}))
    h.stream.on_reconnect()  # another node: its own numbers
    h.take(h.stream.on_event(changed("/k", 12, 2), {"/k": 3}))
    h.settle(12)
    resume = h.queries.pop()
    h.take(h.stream.on_answer(resume.qid, ResumeAnswer(ResumeKind.EVENTS, 11)))
    assert h.versions() == [1, 2] and h.stream.gaps == 0


def test_a_gap_while_settling_waits_for_the_settle_and_resumes_again():
    h = Harness()
    h.watch(start=10)
    h.go_live(10)
    h.stream.on_reconnect()
    h.take(h.stream.on_event(changed("/k", 11, 1), {"/k": 1}))
    h.take(h.stream.on_event(changed("/k", 13, 3), {"/k": 3}))
    assert h.queries == []  # still settling: a resume now could miss events
    h.take(h.stream.on_heartbeat(13, 13))
    assert h.queries == []  # heartbeats don't settle a stream; its barrier does
    h.settle(13)
    resume = h.queries.pop()
    # The gap was seen before this resume was asked: its answer is trusted.
    events = (changed("/k", 11, 1), changed("/k", 12, 2), changed("/k", 13, 3))
    h.take(h.stream.on_answer(resume.qid, ResumeAnswer(ResumeKind.EVENTS, 13, events)))
    assert h.versions() == [1, 2, 3] and h.stream.mode == LIVE


def anchored(h: Harness, path: str = "/k", zxid: int = 10, seq: int = 1) -> None:
    """A message at or below synced starts the prefix's run of numbers."""
    h.take(h.stream.on_event(changed(path, zxid, 0), {path: seq}))


def live_watcher_of_k(anchor: bool = True) -> Harness:
    h = Harness()
    h.watch(start=10)
    h.go_live(10)
    if anchor:
        anchored(h)
    return h


def then_one_change_and_a_beat(h: Harness, seq: int = 2, n_last: int = 1) -> None:
    """/k changes at zxid 11 (sequence number ``seq``); the node beats (12, 11, n_last)."""
    h.take(h.stream.on_event(changed("/k", 11, 1), {"/k": seq}))
    h.take(h.stream.on_heartbeat(12, 11, n_last))


def test_a_watcher_that_saw_the_last_messages_confirms_without_asking():
    h = live_watcher_of_k()
    then_one_change_and_a_beat(h)
    assert h.queries == [] and h.stream.synced == 12


def test_an_unanchored_run_or_a_missing_last_message_still_asks():
    # The run starts above synced: messages before it are unproven.
    h = live_watcher_of_k(anchor=False)
    then_one_change_and_a_beat(h, seq=5)
    assert [q.op for q in h.queries] == [OP_EVENT_COUNT]
    # Two messages had zxid 11 (a create fires two): one of them not ours, or lost.
    h = live_watcher_of_k()
    then_one_change_and_a_beat(h, n_last=2)
    assert [q.op for q in h.queries] == [OP_EVENT_COUNT]


def test_without_a_covering_prefix_the_count_is_asked():
    h = Harness()
    h.watch("/a", start=10)
    h.watch("/b", start=10)
    h.go_live(10)
    anchored(h, "/a")
    anchored(h, "/b")
    # A message on /a dropped at the end of a burst could hide behind this one.
    h.take(h.stream.on_event(changed("/b", 11, 1), {"/b": 2}))
    h.take(h.stream.on_heartbeat(12, 11, 1))
    assert [q.op for q in h.queries] == [OP_EVENT_COUNT]


def test_a_covering_prefix_vouches_for_nested_watches():
    h = Harness()
    h.watch("/a", recursive=True, start=10)
    h.watch("/a/b", start=10)
    h.go_live(10)
    anchored(h, "/a")
    h.take(h.stream.on_event(changed("/a/b", 11, 1), {"/a": 2, "/a/b": 1}))
    h.take(h.stream.on_heartbeat(12, 11, 1))
    assert h.queries == [] and h.stream.synced == 12


def test_only_the_latest_barrier_settles_the_stream():
    h = Harness()
    h.watch("/a", start=10)
    h.stream.expect_barrier("1")
    h.take(h.stream.add(Watch("/b", False, lambda e: None, start=10), 10))  # subscribes /b
    h.stream.expect_barrier("2")
    h.take(h.stream.on_barrier("1", 10, "", None))
    assert h.queries == []  # /b's subscription may not be in place yet
    h.take(h.stream.on_barrier("2", 10, "", None))
    assert [q.op for q in h.queries] == [OP_EVENTS]


def test_a_barrier_that_never_comes_back_is_sent_again():
    h = Harness()
    h.watch(start=10)
    h.stream.expect_barrier("1")
    steps = [h.stream.on_heartbeat(10, 10) for _ in range(h.stream.barrier_patience)]
    assert [s.barrier for s in steps] == [False] * (h.stream.barrier_patience - 1) + [True]
    assert h.queries == []


def test_a_barrier_anchors_the_numbers_so_no_count_is_needed_after_settling():
    h = Harness()
    h.watch(start=10)
    h.settle_live(10, "/k", 41)
    h.take(h.stream.on_event(changed("/k", 11, 1), {"/k": 42}))
    h.take(h.stream.on_heartbeat(12, 11, 1))
    assert h.queries == [] and h.stream.synced == 12 and h.versions() == [1]


def test_a_barrier_number_behind_the_stream_reveals_a_drop():
    h = Harness()
    h.watch(start=10)
    h.settle_live(10, "/k", 1)
    h.take(h.stream.on_event(changed("/k", 11, 1), {"/k": 2}))
    # A later barrier (another subscription) says the count is 4: 3 and 4 lost.
    h.stream.expect_barrier("again")
    h.take(h.stream.on_barrier("again", 13, "/k", 4))
    assert h.stream.gaps == 1 and h.stream.mode == SYNCING
    assert [q.op for q in h.queries] == [OP_EVENTS]


def test_after_a_reconnect_events_are_held_until_a_resume_merges_them_in_order():
    h = Harness()
    h.watch(start=10)
    h.go_live(10)
    h.take(h.stream.on_event(changed("/k", 11, 1)))
    h.stream.on_reconnect()  # failover: the new node's stream
    h.take(h.stream.on_event(changed("/k", 11, 1)))  # a replay: duplicate
    h.take(h.stream.on_event(changed("/k", 14, 4)))  # held: 12, 13 missing
    assert h.versions() == [1]
    h.take(h.stream.on_heartbeat(14, 14))  # settling
    assert h.queries == []
    h.settle(14)
    resume = h.queries.pop()
    assert resume.since == 10
    events = tuple(changed("/k", z, z - 10) for z in (11, 12, 13))
    h.take(h.stream.on_answer(resume.qid, ResumeAnswer(ResumeKind.EVENTS, 13, events)))
    assert h.versions() == [1, 2, 3, 4]  # 14 released in order when live
    assert h.stream.late == 0


def test_resume_pages_are_followed_while_more():
    h = Harness()
    h.watch(start=0, current=0)
    h.settle(5)
    first = h.queries.pop()
    page = ResumeAnswer(ResumeKind.EVENTS, 2, (changed("/k", 1, 1), changed("/k", 2, 2)), True)
    h.take(h.stream.on_answer(first.qid, page))
    second = h.queries.pop()
    assert second.since == 2 and h.stream.mode == SYNCING
    h.take(h.stream.on_answer(second.qid, ResumeAnswer(ResumeKind.EVENTS, 5,
                                                       (changed("/k", 3, 3),))))
    assert h.versions() == [1, 2, 3] and h.stream.mode == LIVE


def test_compacted_tells_every_watch_and_continues_from_the_horizon():
    h = Harness()
    w = h.watch(start=0, current=0)
    h.settle(500)
    first = h.queries.pop()
    h.take(h.stream.on_answer(first.qid, ResumeAnswer(ResumeKind.COMPACTED, 500,
                                                      horizon_zxid=300)))
    assert [(x, e.type, e.zxid) for x, e in h.delivered] == [(w, EventType.COMPACTED, 300)]
    again = h.queries.pop()
    assert again.op == OP_EVENTS and again.since == 300
    h.take(h.stream.on_answer(again.qid, ResumeAnswer(ResumeKind.EVENTS, 500,
                                                      (changed("/k", 301, 7),))))
    assert [e.type for _, e in h.delivered] == [EventType.COMPACTED, EventType.CHANGED]


def test_an_answer_for_an_older_watch_set_is_ignored():
    h, count = count_asked_after_one_change()
    h.watch("/j", start=15, current=15)  # a new path: the count does not cover it
    h.take(h.stream.on_answer(count.qid, ResumeAnswer(ResumeKind.COUNT, 20, count=1)))
    assert h.stream.synced == 10


def test_one_shot_data_watch_fires_once_and_unsubscribes():
    h = Harness()
    w = h.watch("/k", start=10, kinds=DATA_KINDS, once=True)
    h.go_live(10)
    step = h.stream.on_event(changed("/k", 11, 1))
    h.take(step)
    h.take(h.stream.on_event(changed("/k", 12, 2)))
    assert [(x, e.version) for x, e in h.delivered] == [(w, 1)]
    assert step.unsubscribe == ["/k"] and not h.stream.watches


def test_child_watch_ignores_data_changes_and_fires_on_delete():
    h = Harness()
    h.watch("/p", start=10, kinds=CHILD_KINDS, once=True)
    h.go_live(10)
    h.take(h.stream.on_event(changed("/p", 11, 1)))
    h.take(h.stream.on_event(Event("deleted", "/p", 12, -1)))
    assert [e.type for _, e in h.delivered] == [EventType.DELETED]


def test_recursive_watch_sees_descendants_but_not_siblings_with_a_shared_prefix():
    h = Harness()
    h.watch("/app", recursive=True, start=10)
    h.go_live(10)
    for event in (Event("created", "/app/a/b", 11, 0), Event("child", "/app/a", 11, 1),
                  Event("created", "/apple", 12, 0), Event("changed", "/app", 13, 1)):
        h.take(h.stream.on_event(event))
    assert [e.path for _, e in h.delivered] == ["/app/a/b", "/app/a", "/app"]


def test_a_paused_stream_drops_events_and_resumes_until_nothing_was_dropped():
    h = Harness()
    h.watch(start=10)
    h.go_live(10)
    h.stream.pause()
    h.take(h.stream.on_event(changed("/k", 11, 1)))
    assert h.stream.mode == SYNCING and h.stream.lossy and h.delivered == []
    h.take(h.stream.on_heartbeat(11, 11))
    assert h.queries == []  # paused: no resume yet
    h.stream.unpause()
    h.take(h.stream.on_heartbeat(11, 11))
    resume = h.queries.pop()
    h.take(h.stream.on_answer(resume.qid, ResumeAnswer(ResumeKind.EVENTS, 11,
                                                       (changed("/k", 11, 1),))))
    assert h.versions() == [1] and h.stream.mode == LIVE


def test_the_log_is_bounded_and_overflow_forces_a_resume():
    h = Harness(max_log=3)
    h.watch(start=0, current=0)
    h.go_live(0)
    h.stream.pause()
    h.stream.unpause()
    for z in range(1, 10):
        h.take(h.stream.on_event(changed("/k", z, z)))
    assert len(h.stream._log) <= 3 and h.stream.lossy


def test_a_since_watch_replays_history_without_repeating_to_others():
    h = Harness()
    old = h.watch("/k", start=10)
    h.go_live(20)
    replay = Watch("/k", False, lambda e: None, start=5)
    h.take(h.stream.add(replay, 20))
    h.take(h.stream.on_heartbeat(20, 20))
    resume = h.queries.pop()
    assert resume.since == 5
    events = tuple(changed("/k", z, z) for z in (6, 15))
    h.take(h.stream.on_answer(resume.qid, ResumeAnswer(ResumeKind.EVENTS, 20, events)))
    assert [(x is replay, e.zxid) for x, e in h.delivered] == [(True, 6), (True, 15)]
    assert old.start == 20


def test_removing_the_last_watch_forgets_the_position():
    h = Harness()
    w = h.watch(start=10)
    h.go_live(10)
    step = h.stream.remove(w.wid)
    assert step.unsubscribe == ["/k"] and h.stream.synced is None


def test_a_last_one_shot_watch_firing_from_a_resume_leaves_a_clean_idle_stream():
    h = Harness()
    h.watch("/k", start=10, kinds=DATA_KINDS, once=True, current=10)
    h.settle(12)
    resume = h.queries.pop()
    events = (changed("/k", 11, 1), changed("/k", 12, 2))
    h.take(h.stream.on_answer(resume.qid, ResumeAnswer(ResumeKind.EVENTS, 12, events)))
    assert h.versions() == [1]
    assert not h.stream.watches and h.stream.synced is None and not h.stream._log


def test_a_live_stream_learns_of_the_events_a_snapshot_install_skipped():
    # A follower's watch core starts over at an installed snapshot: the events
    # it skipped were never published. The stream, live with numbers running
    # unbroken, must not take the next heartbeat as "nothing missed".
    # (Found by the simulator's watchers, zkactors.sim.watchers.)
    from zkactors.core.watches import WatchCore

    core = WatchCore(1000, 1 << 20, heartbeat_ms=50)
    h = Harness()
    h.watch("/k", recursive=True, start=0, current=0)
    core.on_subscription(b"/k", True)
    barrier = core.on_subscription(b"\x00bar/b//k", True)[0].body
    h.settle_live(barrier[1], "/k", barrier[4])
    core.restart_from(90)  # the snapshot covers 1..90, including changes of /k
    for publish in core.on_events([changed("/k", 95, 7)], 95):
        _, path, zxid, version, seqs = publish.body
        h.take(h.stream.on_event(changed(path, zxid, version), seqs))
    beat = core.tick(1000)[0].body
    h.take(h.stream.on_heartbeat(*beat[1:]))
    assert h.stream.synced < 90, "confirmed a position it holds no events for"
    query = h.queries[-1]
    answer = core.resume(list(query.entries), query.since)
    assert answer.compacted
    h.take(h.stream.on_answer(query.qid, answer))
    assert [e.type for _, e in h.delivered][-1] == "COMPACTED"


def test_one_transaction_firing_the_same_type_and_path_twice_is_delivered_twice():
    # A session's end deletes two children of /lock in one transaction: two CHILD
    # events of /lock at one zxid, told apart by the cversion each leaves.
    # (Found by the simulator's watchers, plain seed 497.)
    h = Harness()
    h.watch("/lock", recursive=True, start=10)
    h.go_live(10)
    first, second = Event("child", "/lock", 11, 7), Event("child", "/lock", 11, 8)
    for event in (first, second, first):  # the last: a duplicate, from a resume
        h.take(h.stream.on_event(event))
    assert h.versions() == [7, 8]
