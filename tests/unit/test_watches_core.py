"""Behaviour of the watch core (zkactors.core.watches): publishing, heartbeats,
the bounded history, resume/count answers, matching rules and wire shapes."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zkactors.core.tree import Event, EventType
from zkactors.core.watches import (
    BARRIER_PREFIX,
    CONTROL_TOPIC,
    EVENT_OVERHEAD_BYTES,
    Publish,
    ResumeAnswer,
    ResumeKind,
    WatchCore,
    event_size,
    matches,
)

pytestmark = pytest.mark.timeout(60)

CREATED = EventType.NODE_CREATED
DELETED = EventType.NODE_DELETED
CHANGED = EventType.NODE_DATA_CHANGED
CHILD = EventType.NODE_CHILDREN_CHANGED

BIG = 1_000_000


def core(max_events: int = BIG, max_bytes: int = BIG, heartbeat_ms: int = 100,
         start_zxid: int = 0, idle_heartbeat_ms: int | None = None) -> WatchCore:
    return WatchCore(max_events, max_bytes, heartbeat_ms, start_zxid=start_zxid,
                     idle_heartbeat_ms=idle_heartbeat_ms)


def create(path: str, zxid: int) -> list[Event]:
    """The events the tree fires for a create: the node, then its parent's children."""
    parent = path.rsplit("/", 1)[0] or "/"
    return [Event(CREATED, path, zxid, 0), Event(CHILD, parent, zxid, 1)]


def zxids(answer: ResumeAnswer) -> list[int]:
    return [e.zxid for e in answer.events]


# -- matching rules ------------------------------------------------------------


def test_plain_watch_sees_events_on_its_own_path():
    assert matches("/a", False, "/a")


def test_plain_watch_does_not_see_children_or_descendants():
    assert not matches("/a", False, "/a/b")
    assert not matches("/a", False, "/a/b/c")


def test_plain_watch_sees_child_events_through_the_parent_path():
    # A create of /a/b fires "created /a/b" and "child /a": the plain watch on
    # /a sees the second one only.
    seen = [e for e in create("/a/b", 7) if matches("/a", False, e.path)]
    assert seen == [Event(CHILD, "/a", 7, 1)]


def test_recursive_watch_sees_its_path_and_every_descendant():
    assert matches("/a", True, "/a")
    assert matches("/a", True, "/a/b")
    assert matches("/a", True, "/a/b/c/d")


def test_recursive_watch_respects_the_slash_boundary():
    assert not matches("/a", True, "/ab")
    assert not matches("/a", True, "/ab/c")
    assert not matches("/a/b", True, "/a")
    assert not matches("/a", True, "/")


def test_recursive_watch_on_root_sees_everything():
    for path in ["/", "/a", "/a/b", "/zzz/y"]:
        assert matches("/", True, path)


def test_plain_watch_on_root_sees_only_root_events():
    assert matches("/", False, "/")
    assert not matches("/", False, "/a")


def test_siblings_never_match():
    assert not matches("/a/b", False, "/a/c")
    assert not matches("/a/b", True, "/a/c/b")


# -- publishing ----------------------------------------------------------------


def test_events_are_published_in_order_with_the_path_as_topic():
    w = core()
    events = create("/a", 5) + [Event(CHANGED, "/a", 6, 1)]
    assert w.on_events(events, 6) == [
        Publish(b"/a", [CREATED, "/a", 5, 0, {}]),
        Publish(b"/", [CHILD, "/", 5, 1, {}]),
        Publish(b"/a", [CHANGED, "/a", 6, 1, {}]),
    ]
    assert w.applied_zxid == 6
    assert w.last_event_zxid == 6
    assert w.stats()["published"] == 3


def test_topic_is_utf8():
    w = core()
    [pub] = w.on_events([Event(CHANGED, "/é", 1, 1)], 1)
    assert pub.topic == "/é".encode()
    assert pub.body[1] == "/é"


def test_events_shipped_as_lists_are_accepted():
    # The store actor sends [type, path, zxid, version] over inproc.
    w = core()
    assert w.on_events([[DELETED, "/x", 3, -1]], 3) == [Publish(b"/x", [DELETED, "/x", 3, -1, {}])]
    assert w.history() == [Event(DELETED, "/x", 3, -1)]


def test_applied_zxid_advances_without_events():
    w = core()
    w.on_events(create("/a", 1), 1)
    assert w.on_events([], 4) == []
    assert w.applied_zxid == 4
    assert w.last_event_zxid == 1
    answer = w.resume([("/", True)], 1)
    assert answer.events == () and answer.upto_zxid == 4


def test_applied_zxid_never_goes_back_and_covers_the_events():
    w = core()
    w.on_events([], 10)
    w.on_events([], 3)
    assert w.applied_zxid == 10
    w.on_events([Event(CHANGED, "/a", 12, 1)], 11)
    assert w.applied_zxid == 12


def test_a_zxid_may_span_batches():
    w = core()
    first, second = create("/a", 4)
    w.on_events([first], 4)
    assert w.on_events([second], 4) == [Publish(b"/", [CHILD, "/", 4, 1, {}])]
    assert w.history() == [first, second]


def test_an_event_older_than_the_last_published_is_dropped_and_counted():
    w = core()
    w.on_events([Event(CHANGED, "/a", 9, 1)], 9)
    assert w.on_events([Event(CHANGED, "/a", 8, 2), Event(CHANGED, "/b", 10, 1)], 10) == [
        Publish(b"/b", [CHANGED, "/b", 10, 1, {}])
    ]
    assert w.stats()["dropped_out_of_order"] == 1
    assert [e.zxid for e in w.history()] == [9, 10]


def test_events_at_or_before_the_start_zxid_are_dropped():
    w = core(start_zxid=50)
    assert w.on_events([Event(CHANGED, "/a", 50, 3)], 50) == []
    assert w.on_events([Event(CHANGED, "/a", 51, 4)], 51) == [Publish(b"/a", [CHANGED, "/a", 51, 4, {}])]
    assert w.stats()["dropped_out_of_order"] == 1


# -- heartbeats ----------------------------------------------------------------


def test_control_topic_can_never_be_matched_by_a_path_subscription():
    # ZeroMQ SUB filters by byte prefix; every znode topic starts with "/".
    assert CONTROL_TOPIC[:1] != b"/"
    for path in PATHS:
        assert not CONTROL_TOPIC.startswith(path.encode())
        assert not path.encode().startswith(CONTROL_TOPIC)


def test_first_tick_beats_at_once():
    w = core(heartbeat_ms=100, start_zxid=7)
    assert w.next_heartbeat_ms() is None
    assert w.tick(1000) == [Publish(CONTROL_TOPIC, ["heartbeat", 7, 7, 0])]
    assert w.next_heartbeat_ms() == 1100


def test_heartbeat_waits_for_the_interval():
    w = core(heartbeat_ms=100)
    assert len(w.tick(1000)) == 1
    assert w.tick(1001) == []
    assert w.tick(1099) == []
    assert len(w.tick(1100)) == 1
    assert w.tick(1150) == []
    assert len(w.tick(1250)) == 1
    assert w.stats()["heartbeats"] == 3


def test_idle_node_beats_slowly_and_busy_one_fast():
    w = core(heartbeat_ms=100, idle_heartbeat_ms=1000)
    assert len(w.tick(0)) == 1
    beats = [t for t in range(50, 3000, 50) if w.tick(t)]
    # Fast for BUSY_BEATS beats after starting, then idle.
    assert beats == [100, 1100, 2100]
    # An event makes it fast again: a beat is due heartbeat_ms after the event
    # (not right behind it, while its subscribers are busy with it), not
    # idle_heartbeat_ms after the last beat.
    w.tick(2600)
    w.on_events([Event(CHANGED, "/a", 1, 1)], 1)
    assert w.next_heartbeat_ms() == 2700
    assert w.tick(2650) == []
    assert len(w.tick(2700)) == 1
    assert w.next_heartbeat_ms() == 2800


def test_subscriptions_leave_the_beat_alone():
    # Every beat wakes every subscriber; a new one settles on its barrier instead.
    w = core(heartbeat_ms=100, idle_heartbeat_ms=1000)
    w.tick(0)
    for t in range(50, 2050, 50):
        w.tick(t)
    w.on_subscription(b"\x00ctl", True)
    w.on_subscription(b"/a", True)
    assert w.interval_ms() == 1000
    assert w.stats()["subscribed_prefixes"] == 1


def test_idle_heartbeat_must_not_be_faster_than_the_busy_one():
    with pytest.raises(ValueError):
        core(heartbeat_ms=100, idle_heartbeat_ms=50)


# -- per-prefix sequence numbers ---------------------------------------------------


def test_events_carry_the_sequence_numbers_of_matching_subscribed_prefixes():
    w = core()
    w.on_events([Event(CHANGED, "/x", 1, 1)], 1)  # before any subscription
    w.on_subscription(b"/a", True)
    w.on_subscription(b"/a/b", True)
    w.on_subscription(b"/", True)
    out = w.on_events([Event(CHANGED, "/a/b", 2, 1), Event(CHANGED, "/ab", 3, 1),
                       Event(CHANGED, "/c", 4, 1), Event(CHANGED, "/a/b", 5, 2)], 5)
    # Counters start at the count of events published so far (1 here).
    assert [p.body[4] for p in out] == [
        {"/a": 2, "/a/b": 2, "/": 2},
        {"/a": 3, "/": 3},  # a byte prefix, as ZeroMQ filters: the client sorts it out
        {"/": 4},
        {"/a": 4, "/a/b": 3, "/": 5},
    ]
    assert w.stats()["subscribed_prefixes"] == 3


def test_a_prefix_subscribed_again_never_reuses_old_numbers():
    w = core()
    w.on_subscription(b"/a", True)
    [first] = w.on_events([Event(CHANGED, "/a", 1, 1)], 1)
    assert first.body[4] == {"/a": 1}
    w.on_subscription(b"/a", False)  # the last subscriber left
    w.on_events([Event(CHANGED, "/a", 2, 2), Event(CHANGED, "/b", 3, 1)], 3)
    w.on_subscription(b"/a", True)
    [again] = w.on_events([Event(CHANGED, "/a", 4, 3)], 4)
    # A subscriber that still remembered 1 sees a gap (two events went by).
    assert again.body[4] == {"/a": 4}


def test_a_duplicate_subscription_keeps_the_counter():
    w = core()
    w.on_subscription(b"/a", True)
    w.on_events([Event(CHANGED, "/a", 1, 1)], 1)
    w.on_subscription(b"/a", True)  # XPUB_VERBOSE: a second subscriber
    [out] = w.on_events([Event(CHANGED, "/a", 2, 2)], 2)
    assert out.body[4] == {"/a": 2}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(["/a", "/a/b", "/b", "/ab"]), max_size=40),
       st.sets(st.sampled_from(["/", "/a", "/a/b", "/b"]), min_size=1))
def test_each_prefix_counts_exactly_the_events_it_matches(paths, prefixes):
    w = core()
    for prefix in prefixes:
        w.on_subscription(prefix.encode(), True)
    seen: dict[str, list[int]] = {p: [] for p in prefixes}
    for zxid, path in enumerate(paths, start=1):
        [out] = w.on_events([Event(CHANGED, path, zxid, 1)], zxid)
        assert set(out.body[4]) == {p for p in prefixes if path.startswith(p)}
        for prefix, seq in out.body[4].items():
            seen[prefix].append(seq)
    for numbers in seen.values():
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) if numbers else True


def test_a_barrier_subscription_is_answered_on_its_own_topic_with_the_prefix_number():
    w = core()
    w.on_subscription(b"/a", True)
    w.on_events([Event(CHANGED, "/a", 3, 1), Event(CHANGED, "/a", 4, 2)], 5)
    topic = BARRIER_PREFIX + b"c1.7//a"
    assert w.on_subscription(topic, True) == [Publish(topic, ["barrier", 5, 4, 1, 2])]
    assert w.on_subscription(topic, False) == []  # the subscriber done with it
    # A prefix nobody subscribed has no number; a barrier is not a prefix.
    other = BARRIER_PREFIX + b"c1.8//zzz"
    assert w.on_subscription(other, True)[0].body[4] is None
    assert w.stats()["subscribed_prefixes"] == 1


def test_heartbeat_carries_applied_and_last_event_zxid_and_its_event_count():
    w = core()
    w.on_events(create("/a", 3), 3)  # created /a and child of /: two events at 3
    w.on_events([], 5)  # a no-op entry: applied moves, no event
    assert w.tick(0) == [Publish(CONTROL_TOPIC, ["heartbeat", 5, 3, 2])]
    w.on_events([Event(CHANGED, "/a", 6, 1)], 6)
    assert w.tick(100) == [Publish(CONTROL_TOPIC, ["heartbeat", 6, 6, 1])]


def test_heartbeat_after_clock_goes_back_beats_and_restarts_the_interval():
    w = core(heartbeat_ms=100)
    w.tick(1000)
    assert len(w.tick(500)) == 1
    assert w.tick(599) == []
    assert len(w.tick(600)) == 1


@given(st.integers(1, 50), st.lists(st.integers(0, 40), min_size=1, max_size=100))
def test_heartbeats_are_spaced_by_at_least_the_interval_and_never_late(interval, steps):
    w = core(heartbeat_ms=interval)
    now, last = 0, None
    for step in steps:
        now += step
        beat = w.tick(now)
        due = last is None or now - last >= interval
        # Beats exactly when due: never closer than the interval, never skipped.
        assert bool(beat) == due
        if beat:
            assert beat[0].topic == CONTROL_TOPIC
            last = now


# -- history, horizon, compaction ----------------------------------------------


def test_history_is_bounded_by_count_and_moves_the_horizon():
    w = core(max_events=3)
    for z in range(1, 6):
        w.on_events([Event(CHANGED, "/a", z, z)], z)
    assert [e.zxid for e in w.history()] == [3, 4, 5]
    assert w.horizon_zxid == 2
    assert w.stats()["evicted"] == 2


def test_history_is_bounded_by_bytes():
    size = event_size(Event(CHANGED, "/a", 1, 1))
    assert size == 2 + EVENT_OVERHEAD_BYTES
    w = core(max_bytes=2 * size + 1)
    for z in range(1, 5):
        w.on_events([Event(CHANGED, "/a", z, z)], z)
    assert [e.zxid for e in w.history()] == [3, 4]
    assert w.stats()["history_bytes"] == 2 * size
    assert w.horizon_zxid == 2


def test_a_zxid_is_evicted_whole():
    w = core(max_events=3)
    w.on_events(create("/a", 1), 1)
    w.on_events(create("/b", 2), 2)  # 4 events: /a's first goes, so its sibling too
    assert [e.zxid for e in w.history()] == [2, 2]
    assert w.horizon_zxid == 1


def test_an_event_bigger_than_the_budget_is_published_but_not_kept():
    w = core(max_bytes=50)
    long_path = "/" + "x" * 100
    assert w.on_events([Event(CHANGED, long_path, 3, 1)], 3) == [
        Publish(long_path.encode(), [CHANGED, long_path, 3, 1, {}])
    ]
    assert w.history() == []
    assert w.horizon_zxid == 3
    assert w.resume([("/", True)], 2).compacted
    assert w.resume([("/", True)], 3).events == ()


def test_a_transaction_bigger_than_the_history_leaves_it_empty_but_consistent():
    # A recursive delete can fire more events at one zxid than fit.
    w = core(max_events=4)
    w.on_events(create("/a", 1), 1)
    doomed = [Event(DELETED, f"/a/{i}", 2, -1) for i in range(10)]
    assert len(w.on_events(doomed, 2)) == 10
    assert w.history() == []
    assert w.horizon_zxid == 2
    w.on_events([Event(CHANGED, "/b", 3, 1)], 3)
    assert w.history() == [Event(CHANGED, "/b", 3, 1)]


def test_resume_below_the_horizon_is_compacted_never_silent():
    w = core(max_events=2)
    for z in range(1, 5):
        w.on_events([Event(CHANGED, "/a", z, z)], z)
    answer = w.resume([("/a", False)], 1)
    assert answer.compacted
    assert answer.kind == ResumeKind.COMPACTED
    assert answer.horizon_zxid == 2
    assert answer.upto_zxid == 4
    assert answer.events == ()
    assert w.count([("/a", False)], 1).compacted


def test_resume_at_the_horizon_is_exact():
    w = core(max_events=2)
    for z in range(1, 5):
        w.on_events([Event(CHANGED, "/a", z, z)], z)
    answer = w.resume([("/a", False)], 2)
    assert not answer.compacted
    assert zxids(answer) == [3, 4]
    assert answer.upto_zxid == 4 and not answer.more


def test_a_restarted_node_does_not_vouch_for_events_before_it_started():
    w = core(start_zxid=100)
    assert w.horizon_zxid == 100
    assert w.resume([("/", True)], 40).compacted
    # Its heartbeat tells clients not to assume nothing happened before 100.
    assert w.tick(0)[0].body == ["heartbeat", 100, 100, 0]


# -- resume and count ----------------------------------------------------------


def _populated() -> WatchCore:
    w = core()
    w.on_events(create("/a", 1), 1)              # created /a, child /
    w.on_events(create("/a/b", 2), 2)            # created /a/b, child /a
    w.on_events([Event(CHANGED, "/ab", 3, 1)], 3)
    w.on_events([Event(CHANGED, "/a/b", 4, 1)], 4)
    w.on_events([], 6)
    return w


def test_resume_returns_matching_events_after_since_in_order():
    w = _populated()
    answer = w.resume([("/a", False)], 0)
    assert answer.events == (Event(CREATED, "/a", 1, 0), Event(CHILD, "/a", 2, 1))
    assert answer.upto_zxid == 6 and not answer.more
    assert answer.count == 2


def test_resume_recursive_and_several_paths():
    w = _populated()
    assert [e.path for e in w.resume([("/a", True)], 1).events] == ["/a/b", "/a", "/a/b"]
    assert [e.path for e in w.resume([("/ab", False), ("/", False)], 0).events] == ["/", "/ab"]


def test_an_event_matching_two_watches_is_returned_once():
    w = _populated()
    assert zxids(w.resume([("/a", True), ("/a/b", False)], 3)) == [4]


def test_resume_since_excludes_that_zxid():
    w = _populated()
    assert zxids(w.resume([("/", True)], 2)) == [3, 4]


def test_resume_with_until_stops_there():
    w = _populated()
    answer = w.resume([("/", True)], 0, until_zxid=2)
    assert zxids(answer) == [1, 1, 2, 2]
    assert answer.upto_zxid == 2
    # until beyond applied: complete only through applied.
    assert w.resume([("/", True)], 0, until_zxid=99).upto_zxid == 6


def test_resume_from_a_node_that_is_behind_says_so_through_upto():
    w = _populated()
    answer = w.resume([("/", True)], 9)
    assert answer.events == ()
    assert answer.upto_zxid == 6  # below since: this node has not caught up


def test_count_matches_resume():
    w = _populated()
    for since in range(7):
        for paths in ([("/", True)], [("/a", False)], [("/a/b", True), ("/ab", False)]):
            counted = w.count(paths, since)
            assert counted.kind == ResumeKind.COUNT
            assert counted.count == len(w.resume(paths, since).events)
            assert counted.upto_zxid == 6
    assert w.count([("/", True)], 0, until_zxid=2).count == 4


def test_paging_returns_the_first_n_and_more():
    w = core()
    for z in range(1, 11):
        w.on_events([Event(CHANGED, "/a", z, z)], z)
    page = w.resume([("/a", False)], 0, max_resume_events=4)
    assert zxids(page) == [1, 2, 3, 4]
    assert page.more and page.upto_zxid == 4
    page = w.resume([("/a", False)], 8, max_resume_events=4)
    assert zxids(page) == [9, 10]
    assert not page.more and page.upto_zxid == 10


def test_paging_exactly_at_the_limit_is_not_more():
    w = core()
    for z in range(1, 5):
        w.on_events([Event(CHANGED, "/a", z, z)], z)
    page = w.resume([("/a", False)], 0, max_resume_events=4)
    assert len(page.events) == 4 and not page.more and page.upto_zxid == 4


def test_paging_never_splits_a_zxid():
    w = core()
    w.on_events(create("/a", 1), 1)       # 2 events at zxid 1
    w.on_events(create("/a/b", 2), 2)     # 2 events at zxid 2
    w.on_events(create("/a/c", 3), 3)
    page = w.resume([("/", True)], 0, max_resume_events=3)
    assert zxids(page) == [1, 1]
    assert page.more and page.upto_zxid == 1
    page = w.resume([("/", True)], 1, max_resume_events=3)
    assert zxids(page) == [2, 2]
    assert page.more and page.upto_zxid == 2


def test_a_zxid_bigger_than_the_page_is_sent_whole():
    w = core()
    w.on_events([Event(DELETED, f"/a/{i}", 1, -1) for i in range(5)] + [Event(CHILD, "/a", 1, 9)], 1)
    w.on_events([Event(CHANGED, "/a", 2, 1)], 2)
    page = w.resume([("/a", True)], 0, max_resume_events=2)
    assert zxids(page) == [1] * 6
    assert page.more and page.upto_zxid == 1
    page = w.resume([("/a", True)], 1, max_resume_events=2)
    assert zxids(page) == [2] and not page.more


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        WatchCore(-1, 10, 10)
    with pytest.raises(ValueError):
        WatchCore(10, 10, 0)
    with pytest.raises(ValueError):
        core().resume([("/", True)], 0, max_resume_events=0)


# -- wire ----------------------------------------------------------------------


def _roundtrip(answer: ResumeAnswer) -> ResumeAnswer:
    packed = msgpack.packb(answer.to_wire(), use_bin_type=True)
    return ResumeAnswer.from_wire(msgpack.unpackb(packed, raw=False))


def test_events_answer_wire_shape_and_roundtrip():
    w = _populated()
    answer = w.resume([("/a", False)], 0, max_resume_events=1)
    assert answer.to_wire() == ["events", 1, True, [[CREATED, "/a", 1, 0]]]
    assert _roundtrip(answer) == answer


def test_count_answer_wire_shape_and_roundtrip():
    answer = _populated().count([("/", True)], 0)
    assert answer.to_wire() == ["count", 6, 6]
    assert _roundtrip(answer) == answer


def test_compacted_answer_wire_shape_and_roundtrip():
    w = core(max_events=1)
    w.on_events([Event(CHANGED, "/a", 1, 1), Event(CHANGED, "/a", 2, 2)], 2)
    answer = w.resume([("/a", False)], 0)
    assert answer.to_wire() == ["compacted", 1, 2]
    back = _roundtrip(answer)
    assert back == answer and back.compacted


@pytest.mark.parametrize("wire", [
    None, [], ["events"], ["nope", 1, 2], ["events", 1, "yes", []], ["events", 1, False, [["changed", "/a", 1]]],
    ["events", True, False, []], ["count", 1, -1], ["count", 1], ["compacted", "1", 2],
    ["events", 1, False, [["changed", "/a", 1, 1.5]]],
])
def test_from_wire_rejects_malformed_answers(wire):
    with pytest.raises(ValueError):
        ResumeAnswer.from_wire(wire)


def test_stats_report_the_history():
    w = core(max_events=2)
    for z in range(1, 4):
        w.on_events([Event(CHANGED, "/ab", z, z)], z)
    w.tick(0)
    stats = w.stats()
    assert stats["history_events"] == 2
    assert stats["history_bytes"] == 2 * (3 + EVENT_OVERHEAD_BYTES)
    assert stats["horizon_zxid"] == 1
    assert stats["applied_zxid"] == 3
    assert stats["published"] == 3
    assert stats["heartbeats"] == 1


# -- properties against a naive model ------------------------------------------

PATHS = ["/", "/a", "/a/b", "/a/b/c", "/ab", "/b", "/a/bc"]
TYPES = [CREATED, DELETED, CHANGED, CHILD]

group = st.lists(st.tuples(st.sampled_from(TYPES), st.sampled_from(PATHS)), min_size=1, max_size=4)
step = st.tuples(
    st.integers(0, 2),               # no-op zxids before the batch
    st.lists(group, max_size=4),     # one group of events per zxid
    st.integers(0, 10),              # where to split the batch into two deliveries
)
watch_set = st.lists(st.tuples(st.sampled_from(PATHS), st.booleans()), min_size=1, max_size=3)


def _model_resume(all_events: list[Event], paths, since: int) -> list[Event]:
    return [e for e in all_events if e.zxid > since and any(matches(p, r, e.path) for p, r in paths)]


@settings(max_examples=300, deadline=None)
@given(
    max_events=st.integers(0, 8),
    max_bytes=st.integers(0, 400),
    start=st.integers(0, 3),
    steps=st.lists(step, max_size=15),
    watches=watch_set,
    page=st.integers(1, 5),
)
def test_history_stays_bounded_and_resume_agrees_with_a_full_history_model(
        max_events, max_bytes, start, steps, watches, page):
    w = WatchCore(max_events, max_bytes, 10, start_zxid=start)
    all_events: list[Event] = []
    zxid = start
    horizon = w.horizon_zxid
    for noops, groups, split in steps:
        zxid += noops
        batch = []
        for members in groups:
            zxid += 1
            batch += [Event(t, p, zxid, i) for i, (t, p) in enumerate(members)]
        cut = min(split, len(batch))
        published = []
        if cut:
            published += w.on_events(batch[:cut], batch[cut - 1].zxid)
        published += w.on_events(batch[cut:], zxid)
        all_events += batch

        # Everything is published once, in order.
        assert published == [Publish(e.path.encode(), [e.type, e.path, e.zxid, e.version, {}]) for e in batch]
        assert w.applied_zxid == zxid

        # Bounded, whatever arrived.
        stats = w.stats()
        assert stats["history_events"] <= max_events
        assert stats["history_bytes"] <= max_bytes
        assert stats["history_bytes"] == sum(event_size(e) for e in w.history())
        assert w.horizon_zxid >= horizon
        horizon = w.horizon_zxid
        # Complete after the horizon: exactly the events newer than it.
        assert w.history() == [e for e in all_events if e.zxid > horizon]

        for since in range(start - 1, zxid + 2):
            answer = w.resume(watches, since)
            counted = w.count(watches, since)
            if since < horizon:
                assert answer.compacted and counted.compacted
                assert answer.horizon_zxid == horizon
                continue
            expected = _model_resume(all_events, watches, since)
            assert list(answer.events) == expected
            assert answer.upto_zxid == zxid and not answer.more
            assert counted.count == len(expected)
            assert _roundtrip(answer) == answer

        # Paging through from the horizon yields the same events, no zxid split.
        since, pages = horizon, []
        while True:
            answer = w.resume(watches, since, max_resume_events=page)
            assert all(since < e.zxid <= answer.upto_zxid for e in answer.events)
            if len(answer.events) > page:
                assert len({e.zxid for e in answer.events}) == 1
            pages += answer.events
            if not answer.more:
                assert answer.upto_zxid == zxid
                break
            assert answer.events and answer.upto_zxid == answer.events[-1].zxid
            since = answer.upto_zxid
        assert pages == _model_resume(all_events, watches, horizon)


def test_a_long_stream_stays_bounded_and_answers_exactly():
    w = core(max_events=100, max_bytes=100 * 50)
    for z in range(1, 5001):
        w.on_events(create(f"/n/{z % 7}", z), z)
        assert w.stats()["history_events"] <= 100
    assert w.history() == [e for z in range(4951, 5001) for e in create(f"/n/{z % 7}", z)]
    assert w.horizon_zxid == 4950
    assert zxids(w.resume([("/n/3", False)], 4950)) == [z for z in range(4951, 5001) if z % 7 == 3]
    assert w.resume([("/n/3", False)], 4949).compacted
