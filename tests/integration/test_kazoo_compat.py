"""kazoo compatibility against real nodes: a chroot in the connect string,
DataWatch/ChildrenWatch as decorators, delete(recursive=True) of a missing node,
and client.retry riding out a real loss of quorum."""

import queue
import threading

import pytest

from tests.integration.cluster import Ensemble, wait_for
from zkactors import errors
from zkactors.client import Client, EventType
from zkactors.retry import Retry

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def rooted(node):
    """A client chrooted at /app (which does not exist yet)."""
    c = Client(node.client_endpoint + "/app", request_timeout=10.0)
    c.start(timeout=10)
    yield c
    c.stop()


class Events:
    """Watch callback that queues what it gets; ``take`` waits with a deadline."""

    def __init__(self) -> None:
        self.q: queue.Queue = queue.Queue()

    def __call__(self, *args):
        self.q.put(args[0] if len(args) == 1 else args)

    def take(self, timeout: float = 10.0):
        return self.q.get(timeout=timeout)

    def take_all(self, n: int, timeout: float = 10.0) -> list:
        return [self.take(timeout) for _ in range(n)]

    def take_until(self, done, timeout: float = 10.0) -> list:
        """Everything up to and including the first item ``done`` accepts."""
        got = [self.take(timeout)]
        while not done(got[-1]):
            got.append(self.take(timeout))
        return got

    def drain(self) -> list:
        got = []
        while not self.q.empty():
            got.append(self.q.get_nowait())
        return got


# ------------------------------------------------------------------ chroot
def test_a_missing_chroot_fails_like_kazoo_until_ensure_path_makes_it(client, rooted):
    assert rooted.chroot == "/app"
    with pytest.raises(errors.NoNodeError):
        rooted.create("/x", b"")
    with pytest.raises(errors.NoNodeError):
        rooted.get("/")
    assert rooted.exists("/") is None
    assert client.exists("/app") is None  # nothing was created behind our back
    assert rooted.ensure_path("/") is True
    assert client.exists("/app") is not None
    assert rooted.get_children("/") == []


def test_every_path_goes_under_the_chroot_and_comes_back_without_it(client, rooted):
    client.create("/outside", b"o")
    client.create("/apple", b"not under /app")
    rooted.ensure_path("/")
    assert rooted.create("/x", b"1") == "/x"
    assert client.get("/app/x")[0] == b"1"
    seq = rooted.create("/q-", b"", sequence=True)
    assert seq.startswith("/q-") and len(seq) == len("/q-") + 10
    assert client.exists("/app" + seq) is not None
    bare = rooted.create("/", b"", sequence=True)  # a sequential child of the chroot itself
    assert bare.startswith("/") and bare[1:].isdigit()
    assert client.exists("/app" + bare) is not None
    assert rooted.create("/deep/er", b"d", makepath=True) == "/deep/er"
    assert client.get("/app/deep/er")[0] == b"d"
    assert rooted.create_async("/y", b"").result(10) == "/y"

    assert rooted.set("/x", b"2").version == 1
    assert rooted.get("/x")[0] == b"2"
    assert rooted.get("/x", linearizable=True)[0] == b"2"
    assert rooted.exists("/x").version == 1
    assert sorted(rooted.get_children("/")) == sorted(
        ["x", "y", "deep", seq[1:], bare[1:]])
    assert rooted.sync("/x") == "/x" and rooted.sync() == "/"
    assert rooted.exists("/outside") is None and rooted.exists("/apple") is None

    with pytest.raises(errors.NoNodeError) as info:
        rooted.get("/nope")
    assert info.value.path == "/nope"
    with pytest.raises(errors.NoNodeError) as info:
        rooted.delete("/nope")
    assert info.value.path == "/nope"

    rooted.delete("/y")
    assert client.exists("/app/y") is None
    # "/" is the chroot itself: deleting it recursively takes the chroot, nothing else.
    rooted.delete("/", recursive=True)
    assert client.exists("/app") is None
    assert client.get("/outside")[0] == b"o" and client.exists("/apple") is not None


def test_watch_events_come_back_without_the_chroot(client, rooted):
    rooted.ensure_path("/")
    rooted.create("/w", b"")
    one_shot, on_exists, on_children = Events(), Events(), Events()
    rooted.get("/w", watch=one_shot)
    rooted.exists("/later", watch=on_exists)
    rooted.get_children("/w", watch=on_children)
    tree, plain = Events(), Events()
    handle = rooted.add_watch("/", tree, recursive=True)
    rooted.add_watch("/w", plain)

    rooted.set("/w", b"1")
    client.create("/app/later", b"")  # a change made by another, unrooted, client
    rooted.create("/w/kid", b"")
    client.create("/apple", b"")  # shares the prefix, not under the chroot
    client.create("/outside", b"")
    rooted.delete("/later")

    for events, expected in ((one_shot, (EventType.CHANGED, "/w")),
                             (on_exists, (EventType.CREATED, "/later")),
                             (on_children, (EventType.CHILD, "/w"))):
        event = events.take()
        assert (event.type, event.path) == expected
    seen = tree.take_until(lambda e: (e.type, e.path) == (EventType.DELETED, "/later"))
    assert [(e.type, e.path) for e in seen if e.type != EventType.CHILD] == [
        (EventType.CHANGED, "/w"), (EventType.CREATED, "/later"),
        (EventType.CREATED, "/w/kid"), (EventType.DELETED, "/later")]
    # Child events name the parent: the chroot itself is "/".
    assert {e.path for e in seen if e.type == EventType.CHILD} <= {"/", "/w"}
    assert [(e.type, e.path) for e in plain.take_all(2)] == [
        (EventType.CHANGED, "/w"), (EventType.CHILD, "/w")]

    # Removal takes the caller's paths too.
    assert rooted.remove_watch("/w", plain) is True
    assert rooted.remove_watch("/w", handle) is False  # not the handle's path
    assert rooted.remove_watch("/", handle) is True
    assert rooted.remove_watch("/", handle) is False  # removed already
    marker = Events()
    rooted.add_watch("/w", marker)
    rooted.set("/w", b"2")
    last = marker.take()
    assert last.path == "/w"
    # Callbacks run in order on one thread: the removed ones had their turn.
    assert all(e.zxid < last.zxid for e in plain.drain() + tree.drain())


def test_kazoo_recipes_under_a_chroot(rooted):
    rooted.ensure_path("/r")
    datas, kids = Events(), Events()

    @rooted.DataWatch("/r")
    def on_data(data, stat, event):
        datas((data, stat.version, event and (event.type, event.path)))

    @rooted.ChildrenWatch("/r", send_event=True)
    def on_children(children, event):
        kids((sorted(children), event and (event.type, event.path)))

    assert datas.take() == (b"", 0, None) and kids.take() == ([], None)
    rooted.set("/r", b"v")
    rooted.create("/r/c", b"")
    assert datas.take() == (b"v", 1, (EventType.CHANGED, "/r"))
    assert kids.take() == (["c"], (EventType.CHILD, "/r"))


# ------------------------------------------------- DataWatch / ChildrenWatch
def test_data_watch_as_a_decorator_follows_the_node_and_stops_on_false(client):
    calls = Events()

    @client.DataWatch("/d")
    def watcher(data, stat):
        calls((data, stat and stat.version))
        return data != b"stop"

    assert watcher.__name__ == "watcher"  # the decorator gives the function back
    assert calls.take() == (None, None)  # absent: called at once with (None, None)
    client.create("/d", b"1")
    assert calls.take() == (b"1", 0)
    client.set("/d", b"2")
    assert calls.take() == (b"2", 1)
    client.delete("/d")
    assert calls.take() == (None, None)
    client.create("/d", b"back")  # it went on watching for the node to come back
    assert calls.take() == (b"back", 0)
    client.set("/d", b"stop")
    assert calls.take() == (b"stop", 1)
    marker = Events()
    client.add_watch("/d", marker)
    client.set("/d", b"after the stop")
    assert marker.take().type == EventType.CHANGED
    assert calls.q.empty()


def test_data_watch_called_directly_and_with_an_event_argument(client):
    client.create("/e", b"a")
    calls = Events()
    watch = client.DataWatch("/e", lambda data, stat, event: calls((data, event)))
    assert calls.take() == (b"a", None)
    client.set("/e", b"b")
    data, event = calls.take()
    assert data == b"b" and (event.type, event.path) == (EventType.CHANGED, "/e")
    with pytest.raises(errors.ZkactorsError, match="already has a function"):
        watch(print)


def test_children_watch_as_a_decorator_and_its_kazoo_stops(client):
    client.create("/c", b"")
    calls = Events()

    @client.ChildrenWatch("/c")
    def children(names):
        calls(sorted(names))
        return "last" not in names

    assert calls.take() == []
    client.create("/c/a", b"")
    assert calls.take() == ["a"]
    client.set("/c", b"data changes do not call it")
    client.create("/c/last", b"")
    assert calls.take() == ["a", "last"]  # returned False: stopped
    client.create("/c/more", b"")

    # kazoo: a missing node is not watched at all, a deleted one stops the watch.
    missing = Events()
    absent = client.ChildrenWatch("/none", missing)
    assert absent.stopped
    client.create("/g", b"")
    gone = Events()
    doomed = client.ChildrenWatch("/g", gone)
    assert gone.take() == []
    client.delete("/g")
    wait_for(lambda: doomed.stopped, 10, "the children watch to stop on delete")
    client.create("/g", b"")
    client.create("/g/new", b"")
    marker = Events()
    client.add_watch("/g", marker)
    client.create("/g/newer", b"")
    assert marker.take().type == EventType.CHILD
    assert calls.q.empty() and missing.q.empty() and gone.q.empty()


# ------------------------------------------------------------------ delete
def test_recursive_delete_of_a_missing_node_returns_true_as_kazoo_does(client):
    assert client.delete("/missing", recursive=True) is True
    assert client.delete_async("/missing", recursive=True).result(10) is True
    with pytest.raises(errors.NoNodeError):
        client.delete("/missing")
    with pytest.raises(errors.NoNodeError):
        client.delete_async("/missing").result(10)
    # Other errors still come through a recursive delete.
    client.create("/v", b"")
    with pytest.raises(errors.BadVersionError):
        client.delete("/v", version=5, recursive=True)


def test_recursive_delete_is_still_one_atomic_server_side_delete(client):
    client.create("/t/a/b", b"", makepath=True)
    client.create("/t/c", b"")
    events = Events()
    client.add_watch("/t", events, recursive=True)
    assert client.delete("/t", recursive=True) is None
    assert client.exists("/t") is None
    deletes: list = []
    while len(deletes) < 4:  # each take waits 10 s at most
        event = events.take()
        if event.type == EventType.DELETED:
            deletes.append(event)
    assert sorted(e.path for e in deletes) == ["/t", "/t/a", "/t/a/b", "/t/c"]
    assert len({e.zxid for e in deletes}) == 1  # one transaction, not a client-side walk


# ------------------------------------------------------------------- retry
def test_client_retry_returns_and_does_not_retry_what_is_not_retryable(client):
    client.create("/n", b"1")
    assert client.retry(client.get, "/n")[0] == b"1"
    calls = []

    def missing():
        calls.append(1)
        return client.get("/nope")

    with pytest.raises(errors.NoNodeError):
        client.retry(missing)
    assert calls == [1]


@pytest.mark.timeout(150)
def test_client_retry_rides_out_a_lost_quorum(tmp_path):
    ensemble = Ensemble(tmp_path, 3).start()
    try:
        policy = Retry(max_tries=-1, delay=0.2, backoff=1.5, max_delay=1.0, deadline=90)
        client = Client(ensemble.hosts, request_timeout=1.0, timeout=60.0,
                        command_retry=policy)
        client.start(timeout=15)
        client.create("/r", b"before")
        # Leave one node only: no quorum, so no write can commit.
        survivor = ensemble.nodes[client.node_id]
        stopped = [n for n in ensemble.nodes.values() if n is not survivor]
        for node in stopped:
            node.stop()
        failures: list[Exception] = []
        failed_once = threading.Event()

        def write():
            try:
                return client.set("/r", b"after")
            except Exception as exc:
                failures.append(exc)
                failed_once.set()
                raise

        def heal():
            failed_once.wait(60)
            for node in stopped:
                node.start(wait=False)

        healer = threading.Thread(target=heal, daemon=True)
        healer.start()
        stat = client.retry(write)
        healer.join(30)
        # (A timed-out attempt may have been applied too, once the quorum came back.)
        assert stat.version >= 1 and client.get("/r")[0] == b"after"
        assert failures and all(isinstance(e, (errors.OperationTimeoutError,
                                               errors.ConnectionLoss)) for e in failures)
        client.stop()
    finally:
        ensemble.stop()
