"""The client library against a real node: kazoo's API, ZooKeeper's semantics."""

import threading

import pytest

from tests.integration.cluster import wait_for
from zkactors import errors
from zkactors.client import Client, KazooState

pytestmark = pytest.mark.timeout(60)


def test_create_get_set_delete_round_trip(client):
    assert client.create("/app", b"v1") == "/app"
    value, stat = client.get("/app")
    assert value == b"v1"
    assert (stat.version, stat.dataLength, stat.numChildren) == (0, 2, 0)
    assert stat.czxid == stat.mzxid == stat.pzxid
    stat2 = client.set("/app", b"value two")
    assert (stat2.version, stat2.dataLength) == (1, 9)
    assert stat2.mzxid > stat.mzxid and stat2.czxid == stat.czxid
    client.delete("/app")
    assert client.exists("/app") is None


def test_parent_counters_follow_children(client):
    client.create("/p")
    client.create("/p/a")
    client.create("/p/b")
    client.delete("/p/a")
    stat = client.exists("/p")
    assert (stat.cversion, stat.numChildren, stat.version) == (3, 1, 0)
    assert client.get_children("/p") == ["b"]


def test_errors_are_typed_like_kazoo(client):
    with pytest.raises(errors.NoNodeError):
        client.get("/missing")
    with pytest.raises(errors.NoNodeError):
        client.create("/missing/child")
    client.create("/x", b"1")
    with pytest.raises(errors.NodeExistsError):
        client.create("/x")
    with pytest.raises(errors.BadVersionError):
        client.set("/x", b"2", version=7)
    with pytest.raises(errors.BadVersionError):
        client.delete("/x", version=3)
    client.create("/x/y")
    with pytest.raises(errors.NotEmptyError):
        client.delete("/x")
    with pytest.raises(errors.BadArgumentsError):
        client.get("no-leading-slash")
    with pytest.raises(errors.BadArgumentsError):
        client.create("/trailing/")
    with pytest.raises(errors.BadArgumentsError):
        client.create("/big", b"x" * (1024 * 1024 + 1))
    # Each error is a ZookeeperError with its ZooKeeper code.
    try:
        client.get("/missing")
    except errors.ZookeeperError as err:
        assert err.code == errors.Code.NO_NODE and err.path == "/missing"


def test_versioned_set_and_delete_succeed_at_the_right_version(client):
    client.create("/v", b"a")
    assert client.set("/v", b"b", version=0).version == 1
    client.delete("/v", version=1)
    assert client.exists("/v") is None


def test_makepath_ensure_path_and_recursive_delete(client):
    assert client.create("/a/b/c", b"leaf", makepath=True) == "/a/b/c"
    assert client.get("/a/b")[0] == b""
    assert client.ensure_path("/a/b/c") is True
    assert client.ensure_path("/a/b/d/e") is True
    assert client.get_children("/a/b") == ["c", "d"]
    client.delete("/a", recursive=True)
    assert client.exists("/a") is None
    assert client.get_children("/") == []


def test_sequence_nodes_number_from_the_parents_cversion(client):
    client.create("/q")
    first = client.create("/q/job-", sequence=True)
    second = client.create("/q/job-", sequence=True)
    assert first == "/q/job-0000000000"
    assert second == "/q/job-0000000001"


def test_async_variants_pipeline_many_requests(client):
    client.create("/many")
    futures = [client.create_async(f"/many/n{i}", b"%d" % i) for i in range(500)]
    assert [f.get(timeout=30) for f in futures] == [f"/many/n{i}" for i in range(500)]
    reads = [client.get_async(f"/many/n{i}") for i in range(500)]
    assert [r.get(timeout=30)[0] for r in reads] == [b"%d" % i for i in range(500)]
    assert len(client.get_children("/many")) == 500
    failed = client.get_async("/many/none")
    with pytest.raises(errors.NoNodeError):
        failed.get(timeout=10)


def test_client_is_safe_to_share_between_threads(client):
    client.create("/t")

    def writer(n):
        for i in range(100):
            client.create(f"/t/w{n}-{i}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(client.get_children("/t")) == 400


def test_value_must_be_bytes(client):
    with pytest.raises(TypeError):
        client.create("/s", "not bytes")


def test_sync_and_last_zxid(client):
    client.create("/z")
    assert client.sync("/z") == "/z"
    assert client.last_zxid >= client.exists("/z").czxid


def test_failover_skips_a_dead_endpoint_and_reports_states(node, tmp_path):
    from tests.integration.cluster import free_port

    dead = f"tcp://127.0.0.1:{free_port()}"
    states = []
    c = Client(f"{dead},{node.client_endpoint}", connect_timeout=0.3)
    c.add_listener(states.append)
    c.start(timeout=10)
    try:
        assert c.create("/via-second") == "/via-second"
        node.kill9()
        wait_for(lambda: KazooState.SUSPENDED in states, 10, "SUSPENDED")
        node.start()
        wait_for(lambda: c.state == KazooState.CONNECTED, 20, "reconnect")
        assert c.exists("/via-second") is not None
    finally:
        c.stop()
    wait_for(lambda: states[-1:] == [KazooState.LOST], 5, "LOST after stop")
    assert states[0] == KazooState.CONNECTED


def test_start_times_out_when_nothing_listens():
    from tests.integration.cluster import free_port

    c = Client(f"tcp://127.0.0.1:{free_port()}", connect_timeout=0.2)
    with pytest.raises(TimeoutError):
        c.start(timeout=1.0)


def test_stopped_client_refuses_requests(node):
    c = Client(node.client_endpoint)
    c.start(timeout=10)
    c.stop()
    with pytest.raises(errors.ConnectionClosedError):
        c.get("/")


def test_pipelined_reads_see_exactly_the_writes_sent_before_them(client):
    client.create("/fifo", b"0")
    futures = []
    for i in range(1, 200):
        futures.append(("set", i, client.set_async("/fifo", b"%d" % i)))
        futures.append(("get", i, client.get_async("/fifo")))
    for kind, i, future in futures:
        if kind == "get":
            value, stat = future.get(timeout=30)
            assert (value, stat.version) == (b"%d" % i, i)
        else:
            assert future.get(timeout=30).version == i
