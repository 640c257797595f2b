"""Watches end to end, over real node processes: persistent watches exactly once
in zxid order (under load, across kill -9 of the attached node, behind a slow
callback), ZooKeeper's one-shot semantics, callback isolation, zkctl watch."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest
import structlog

from tests.integration.cluster import (
    REPO,
    ZKCTL,
    Ensemble,
    NodeProcess,
    wait_for,
    write_config,
)
from zkactors.client import ChildrenWatch, Client, DataWatch, EventType
from zkactors.core.watches import ResumeAnswer
from zkactors.errors import NodeExistsError, NoNodeError
from zkactors.protocol import OP_EVENTS

pytestmark = pytest.mark.timeout(180)


class Recorder:
    """A callback that records events (on the client's dispatch thread)."""

    def __init__(self) -> None:
        self.events: list = []
        self.lock = threading.Lock()

    def __call__(self, event) -> None:
        with self.lock:
            self.events.append(event)

    def wait(self, n: int, timeout: float = 20.0) -> list:
        wait_for(lambda: len(self.events) >= n, timeout, f"{n} events (have {len(self.events)})")
        with self.lock:
            return list(self.events)


def assert_exactly_once_in_order(events: list) -> None:
    keys = [(e.zxid, e.type, e.path) for e in events]
    assert len(keys) == len(set(keys)), "duplicate event"
    zxids = [e.zxid for e in events]
    assert zxids == sorted(zxids), "events out of zxid order"


def test_1000_sets_give_exactly_1000_changed_events_in_order(client):
    client.create("/key", b"0")
    got = Recorder()
    client.add_watch("/key", got)
    stats = [f.get(10) for f in [client.set_async("/key", b"%d" % i) for i in range(1000)]]
    events = got.wait(1000)
    # Let any stray duplicate show up: wait for the stream to confirm past the last set.
    wait_for(lambda: (client.watch_stats()["synced"] or 0) >= stats[-1].mzxid, 10,
             "the stream to confirm the last set")
    events = got.events
    assert len(events) == 1000
    assert all(e.type == EventType.CHANGED and e.path == "/key" for e in events)
    assert [e.version for e in events] == list(range(1, 1001))
    assert [e.zxid for e in events] == sorted(s.mzxid for s in stats)
    assert_exactly_once_in_order(events)


def _writer(endpoint: str, n: int, ops: int, errors: list) -> None:
    rng_paths = [f"/app/w{n}/k{i}" for i in range(5)]
    with Client(endpoint) as c:
        try:
            c.ensure_path(f"/app/w{n}")
            for i in range(ops):
                path = rng_paths[i % 5]
                step = (i // 5) % 3
                try:
                    if step == 0:
                        c.create(path, b"v")
                    elif step == 1:
                        c.set(path, b"w%d" % i)
                    else:
                        c.delete(path)
                except (NodeExistsError, NoNodeError):
                    pass
        except Exception as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)


def test_recursive_watcher_sees_exactly_the_committed_changes_under_app(node, client):
    client.create("/app", b"")
    client.create("/elsewhere", b"")
    start = client.last_zxid
    got = Recorder()
    client.add_watch("/app", got, recursive=True)
    errors: list = []
    writers = [threading.Thread(target=_writer, args=(node.client_endpoint, n, 60, errors))
               for n in range(5)]
    for t in writers:
        t.start()
    for i in range(30):
        client.set("/elsewhere", b"%d" % i)  # noise outside /app
    for t in writers:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in writers)
    end = client.exists("/app") and client.last_zxid
    # The second observer: the node's own history, asked from before the watch.
    answer = ResumeAnswer.from_wire(client._call(OP_EVENTS, [[["/app", True]], start],
                                                 lambda x: x, None).get(10))
    assert not answer.compacted and not answer.more
    truth = [(e.zxid, e.type, e.path, e.version) for e in answer.events if e.zxid <= end]
    wait_for(lambda: len(got.events) >= len(truth), 20, "the watcher to catch up")
    wire = {"CREATED": "created", "DELETED": "deleted", "CHANGED": "changed", "CHILD": "child"}
    seen = [(e.zxid, wire[e.type], e.path, e.version) for e in got.events if e.zxid <= end]
    assert len(truth) > 300
    assert seen == truth
    assert_exactly_once_in_order(got.events)


def test_a_watcher_survives_kill9_of_its_node_with_no_gap_and_no_duplicate(tmp_path):
    ensemble = Ensemble(tmp_path).start()
    try:
        leader = ensemble.wait_for_leader()
        victim_id = next(n for n in ensemble.nodes if n != leader)
        victim = ensemble.nodes[victim_id]
        others = [n.client_endpoint for i, n in ensemble.nodes.items() if i != victim_id]
        watcher = Client(",".join([victim.client_endpoint, *others]), connect_timeout=1.0)
        writer = Client(",".join([ensemble.nodes[leader].client_endpoint, *others]))
        watcher.start(15)
        writer.start(15)
        try:
            assert watcher.node_id == victim_id
            writer.create("/kv", b"0")
            # The watcher's node may apply the create a moment later; a watch set
            # before that would rightly report the create too.
            wait_for(lambda: watcher.exists("/kv"), 10, "the watcher's node to have /kv")
            got = Recorder()
            watcher.add_watch("/kv", got)
            acked: list = []
            total = 400
            done = threading.Event()

            def write() -> None:
                for i in range(total):
                    acked.append(writer.set("/kv", b"%d" % i))
                done.set()

            t = threading.Thread(target=write)
            t.start()
            wait_for(lambda: len(acked) >= 100, 30, "100 acknowledged writes")
            victim.kill9()
            t.join(90)
            assert done.is_set(), "writer did not finish"
            events = got.wait(total, timeout=60)
            wait_for(lambda: watcher.node_id not in (None, victim_id), 10, "failover")
            wait_for(lambda: (watcher.watch_stats()["synced"] or 0) >= acked[-1].mzxid, 20,
                     "the watcher to confirm the last write")
            events = got.events
            assert [e.version for e in events] == list(range(1, total + 1))
            assert [e.zxid for e in events] == [s.mzxid for s in acked]
            assert_exactly_once_in_order(events)
        finally:
            watcher.stop()
            writer.stop()
    finally:
        ensemble.stop()


@pytest.fixture
def small_history_node(tmp_path):
    proc = NodeProcess(write_config(tmp_path, extra="[watch]\nhistory_events = 500\n"
                                                     "heartbeat_ms = 50\n")).start()
    yield proc
    proc.stop()


def test_a_slow_subscriber_catches_up_or_is_told_compacted_and_never_silently_loses(
        small_history_node):
    node = small_history_node
    total = 2000
    with Client(node.client_endpoint) as fast, \
            Client(node.client_endpoint, watch_backlog=50) as slow:
        fast.create("/hot", b"")
        seen: list = []

        def sleepy(event) -> None:
            time.sleep(0.002)
            seen.append(event)

        slow.add_watch("/hot", sleepy)
        futures = [fast.set_async("/hot", b"%d" % i) for i in range(total)]
        last = [f.get(30) for f in futures][-1]
        wait_for(lambda: seen and seen[-1].zxid >= last.mzxid, 60,
                 "the slow subscriber to reach the last write")
        stats = slow.watch_stats()
        # Nothing silently lost: between COMPACTED signals versions are contiguous,
        # and each jump in versions is announced by a COMPACTED just before it.
        version = 0
        compacted = 0
        announced = False
        for event in seen:
            if event.type == EventType.COMPACTED:
                compacted += 1
                announced = True
                continue
            assert event.type == EventType.CHANGED and event.version > version
            if event.version != version + 1:
                assert announced, f"silent gap before {event}"
            version = event.version
            announced = False
        assert version == total
        if compacted:
            assert stats["compactions"] >= 1
            outcome = "compacted"
        else:
            assert [e.version for e in seen] == list(range(1, total + 1))
            assert stats["resumes"] >= 1
            outcome = "resumed"
        print("slow_subscriber_outcome", outcome, stats)  # shown with -s
        assert stats["backlog"] == 0
        # The node's memory stays bounded: its history holds at most 500 events.
        old = ResumeAnswer.from_wire(fast._call(OP_EVENTS, [[["/", True]], 0],
                                                lambda x: x, None).get(10))
        assert old.compacted
        recent = ResumeAnswer.from_wire(fast._call(OP_EVENTS, [[["/", True]], old.horizon_zxid],
                                                   lambda x: x, None).get(10))
        assert len(recent.events) <= 500


def test_one_shot_watches_follow_zookeepers_documented_semantics(client):
    c = client
    c.create("/p", b"")
    c.create("/p/c", b"1")
    data, on_exists, children = Recorder(), Recorder(), Recorder()

    # A data watch fires once: on the first set, not the second.
    c.get("/p/c", watch=data)
    c.set("/p/c", b"2")
    c.set("/p/c", b"3")
    # A later watch on the same node is a barrier: events come in zxid order.
    barrier = Recorder()
    c.get("/p/c", watch=barrier)
    c.set("/p/c", b"4")
    barrier.wait(1)
    assert [(e.type, e.path, e.version) for e in data.events] == [(EventType.CHANGED, "/p/c", 1)]

    # create fires the exists watch and the parent's child watch.
    c.exists("/p/new", watch=on_exists)
    c.get_children("/p", watch=children)
    c.create("/p/new", b"")
    assert [e.type for e in on_exists.wait(1)] == [EventType.CREATED]
    assert [(e.type, e.path) for e in children.wait(1)] == [(EventType.CHILD, "/p")]

    # delete fires the node's data, exists and child watches and the parent's child watch.
    d_data, d_exists, d_children, parent = Recorder(), Recorder(), Recorder(), Recorder()
    c.get("/p/new", watch=d_data)
    c.exists("/p/new", watch=d_exists)
    c.get_children("/p/new", watch=d_children)
    c.get_children("/p", watch=parent)
    c.delete("/p/new")
    for recorder in (d_data, d_exists, d_children):
        assert [(e.type, e.path) for e in recorder.wait(1)] == [(EventType.DELETED, "/p/new")]
    assert [(e.type, e.path) for e in parent.wait(1)] == [(EventType.CHILD, "/p")]

    # A child watch does not fire on a child's data change.
    kids = Recorder()
    c.get_children("/p", watch=kids)
    c.set("/p/c", b"5")
    c.create("/p/d", b"")
    assert [(e.type, e.path) for e in kids.wait(1)] == [(EventType.CHILD, "/p")]
    # A get on a missing node raises and leaves no watch behind.
    with pytest.raises(NoNodeError):
        c.get("/p/missing", watch=Recorder())
    wait_for(lambda: c.watch_stats()["watches"] == 0, 10, "every one-shot watch gone")
    # Every one-shot fired exactly once.
    for recorder in (data, on_exists, children, d_data, d_exists, d_children, parent, kids):
        assert len(recorder.events) == 1


def test_after_a_notification_a_read_sees_that_change_or_newer(node, client):
    client.create("/seen", b"0")
    stale: list = []
    reads = Recorder()

    def check(event) -> None:
        _, stat = client.get("/seen")
        if stat.version < event.version:
            stale.append((event.version, stat.version))
        reads(event)

    client.add_watch("/seen", check)
    with Client(node.client_endpoint) as writer:
        for i in range(100):
            writer.set("/seen", b"%d" % i)
    reads.wait(100)
    assert stale == []
    assert client.last_zxid >= reads.events[-1].zxid


def test_a_failing_callback_is_logged_and_later_events_still_arrive(node):
    got = Recorder()

    def flaky(event) -> None:
        got(event)
        if event.version == 1:
            raise RuntimeError("callback bug")

    with structlog.testing.capture_logs() as logs, Client(node.client_endpoint) as c:
        c.create("/f", b"")
        c.add_watch("/f", flaky)
        for i in range(3):
            c.set("/f", b"%d" % i)
        assert [e.version for e in got.wait(3)] == [1, 2, 3]
        c.set("/f", b"again")
        got.wait(4)
    failures = [entry for entry in logs if entry["event"] == "watch_callback_failed"]
    assert len(failures) == 1 and failures[0]["path"] == "/f"


def test_data_watch_and_children_watch_recipes(client):
    client.create("/r", b"a")
    datas: list = []
    kids: list = []
    DataWatch(client, "/r", lambda data, stat: datas.append(data))
    ChildrenWatch(client, "/r", lambda children: kids.append(list(children)))
    assert datas == [b"a"] and kids == [[]]
    client.set("/r", b"b")
    client.create("/r/x", b"")
    wait_for(lambda: datas[-1:] == [b"b"] and kids[-1:] == [["x"]], 10, "both recipes")
    stopped: list = []

    def once(data, stat) -> bool:
        stopped.append(data)
        return False  # stop watching

    DataWatch(client, "/r", once)
    client.set("/r", b"c")
    wait_for(lambda: datas[-1:] == [b"c"], 10, "the data watch")
    assert stopped == [b"b"]


def test_zkctl_watch_tails_events_and_exits_0_on_sigint(node, client):
    client.create("/w", b"")
    proc = subprocess.Popen([*ZKCTL, "--hosts", node.client_endpoint, "watch", "/w", "-r",
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True)
    reader.start()
    try:
        # Until the tail is established, sets go unseen: write until one shows.
        first = None
        deadline = time.monotonic() + 20
        while first is None and time.monotonic() < deadline:
            client.set("/w", b"x")
            try:
                first = json.loads(lines.get(timeout=0.2))
            except queue.Empty:
                continue
        assert first is not None, "zkctl watch printed nothing"
        while not lines.empty():
            first = json.loads(lines.get_nowait())
        assert first["type"] == "CHANGED" and first["path"] == "/w"
        client.create("/w/child", b"")
        got = [json.loads(lines.get(timeout=10)) for _ in range(2)]
        assert [(e["type"], e["path"]) for e in got] == [("CREATED", "/w/child"), ("CHILD", "/w")]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_zkctl_watch_survives_the_failover_of_the_node_it_tails(tmp_path):
    ensemble = Ensemble(tmp_path).start()
    try:
        leader = ensemble.wait_for_leader()
        attached = ensemble.a_follower(leader)
        others = [n.client_endpoint for n in ensemble.nodes.values() if n is not attached]
        hosts = ",".join([attached.client_endpoint, *others])  # it attaches to the first
        with Client(ensemble.hosts) as c:
            c.create("/f", b"")
        proc = subprocess.Popen([*ZKCTL, "--hosts", hosts, "watch", "/f", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout],
                         daemon=True).start()
        try:
            with Client(ensemble.nodes[leader].client_endpoint) as writer:
                # Write until the tail shows one change: from then on it sees them all.
                seen: list[dict] = []
                for _ in range(200):
                    writer.set("/f", b"before")
                    try:
                        seen.append(json.loads(lines.get(timeout=0.1)))
                        break
                    except queue.Empty:
                        continue
                assert seen, "zkctl watch printed nothing"
                start = seen[0]["version"]
                attached.kill9()
                versions = [writer.set("/f", b"%d" % i).version for i in range(20)]
            deadline = time.monotonic() + 30
            while (not seen or seen[-1]["version"] < versions[-1]) and \
                    time.monotonic() < deadline:
                try:
                    seen.append(json.loads(lines.get(timeout=1)))
                except queue.Empty:
                    continue
            got = [e["version"] for e in seen if e["type"] == "CHANGED"]
            # Every change after the first one seen, once, in order, across the kill.
            assert got == list(range(start, versions[-1] + 1)), got
            proc.send_signal(signal.SIGINT)
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    finally:
        ensemble.stop()


# A watcher in its own process, so the test can freeze it (SIGSTOP) like a
# process descheduled or swapped out: it reads nothing while frozen, the node's
# queue for it fills, and the node drops what follows.
_FROZEN_WATCHER = """
import json, sys, threading, time
from zkactors.client import Client
endpoint, path, last = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen, done = [], threading.Event()
def on_event(event):
    seen.append([event.type, event.zxid, event.version])
    if event.version >= last:
        done.set()
with Client(endpoint) as client:
    client.add_watch(path, on_event)
    deadline = time.monotonic() + 20  # settled: the subscription reached the node
    while client.watch_stats()["mode"] != "live" and time.monotonic() < deadline:
        time.sleep(0.01)
    print("ready", flush=True)
    done.wait(90)
    print(json.dumps({"seen": seen, "stats": client.watch_stats()}), flush=True)
"""


def test_a_frozen_subscriber_process_gets_every_event_once_and_in_zxid_order(tmp_path):
    # A small per-subscriber queue and long paths (8 KB messages: 48 MB in all,
    # more than any machine's socket buffers hold) make the node drop messages
    # soon, not after 100,000 of them; the history holds them all for the resume.
    node = NodeProcess(write_config(tmp_path, extra="[watch]\nsubscriber_queue = 20\n"
                                                     "history_bytes = 67108864\n")).start()
    path = "/" + "p" * 4000
    frozen, thawed = 6000, 300
    try:
        with Client(node.client_endpoint) as writer:
            writer.create(path, b"")
            watcher = subprocess.Popen(
                [sys.executable, "-c", _FROZEN_WATCHER, node.client_endpoint, path,
                 str(frozen + thawed)],
                stdout=subprocess.PIPE, text=True, cwd=str(REPO))
            try:
                assert watcher.stdout.readline().strip() == "ready"
                watcher.send_signal(signal.SIGSTOP)
                try:
                    for f in [writer.set_async(path, b"") for _ in range(frozen)]:
                        f.get(60)
                finally:
                    watcher.send_signal(signal.SIGCONT)
                # Writes after the thaw reach it live, behind the dropped ones.
                for _ in range(thawed):
                    writer.set(path, b"")
                out, _ = watcher.communicate(timeout=120)
            finally:
                if watcher.poll() is None:
                    watcher.kill()
                    watcher.wait(10)
        report = json.loads(out.splitlines()[-1])
        versions = [v for kind, _, v in report["seen"]]
        assert versions == list(range(1, frozen + thawed + 1))
        zxids = [z for _, z, _ in report["seen"]]
        assert zxids == sorted(zxids)
        stats = report["stats"]
        # The node did drop messages, the stream noticed by their numbers, and
        # no event reached a callback after a later one.
        assert stats["gaps"] >= 1, stats
        assert stats["late"] == 0, stats
    finally:
        node.stop()


def test_sessions_in_one_process_share_one_hub_and_a_broken_one_spares_the_rest(node):
    with Client(node.client_endpoint) as writer, Client(node.client_endpoint) as a, \
            Client(node.client_endpoint) as b:
        writer.create("/shared", b"")
        got_a, got_b = Recorder(), Recorder()
        a.add_watch("/shared", got_a)
        b.add_watch("/shared", got_b)
        hubs = [t for t in threading.enumerate() if t.name == "zkactors-client-watch-hub"]
        assert len(hubs) == 1
        writer.set("/shared", b"1")
        got_a.wait(1)
        got_b.wait(1)

        def broken() -> bool:
            raise RuntimeError("a bug in one session's receiving")

        a._watches._drain_sub = broken  # the next message to a breaks a's service
        writer.set("/shared", b"2")
        events = got_b.wait(2)
        assert [e.version for e in events] == [1, 2]
        assert hubs[0].is_alive()


def test_a_huge_watched_path_is_refused_before_it_becomes_a_subscription(node):
    """libzmq crashes (SIGSEGV) closing a SUB socket that subscribed a topic of a
    few hundred KB: the client refuses such a path before subscribing. In a
    process of its own, as a crash would take the test run with it."""
    import subprocess
    import sys

    from tests.integration.cluster import REPO

    code = f"""
from zkactors.client import Client
from zkactors.errors import BadArgumentsError
huge = "/" + "x" * 300_000
with Client({node.client_endpoint!r}) as client:
    for watch in (lambda: client.add_watch(huge, print),
                  lambda: client.get(huge, watch=print),
                  lambda: client.exists(huge, watch=print)):
        try:
            watch()
        except BadArgumentsError:
            pass
        else:
            raise SystemExit("accepted a 300 KB watched path")
    client.add_watch("/fine", print)
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=REPO, check=False)
    assert (proc.returncode, proc.stdout.strip()) == (0, "ok"), proc.stderr[-2000:]
