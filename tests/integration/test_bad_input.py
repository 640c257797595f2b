"""Bad input at a live node: every answerable request gets a typed error, nothing
else is disturbed, and the node keeps serving correctly."""

import itertools

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.cluster import NodeProcess, write_config
from zkactors import errors
from zkactors.client import Client
from zkactors.core.tree import Tree
from zkactors.errors import Code
from zkactors.protocol import PROTOCOL_VERSION

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def small_node(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bad-input")
    config = write_config(directory, extra="[limits]\nmax_inflight_per_client = 4\n"
                                           "max_data_bytes = 1024\nmax_path_bytes = 64\n")
    node = NodeProcess(config).start()
    yield node
    assert node.stop() == 0, node.log()


def frame(*requests) -> bytes:
    return msgpack.packb(list(requests), use_bin_type=True)


class RawConnection:
    """A bare DEALER speaking the wire protocol, to send what no client library would."""

    def __init__(self, endpoint: str, hello: bool = True) -> None:
        self.context = zmq.Context.instance()
        self.sock = self.context.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(endpoint)
        self.rids = itertools.count(1)
        self.pending: list = []
        if hello:
            assert self.call("hello", PROTOCOL_VERSION, "raw")[1] == 0

    def send_raw(self, *frames: bytes) -> None:
        self.sock.send_multipart(list(frames))

    def recv(self, timeout_ms: int = 5000):
        """The next reply (frames may carry several; they are handed out one by one)."""
        if not self.pending:
            if not self.sock.poll(timeout_ms):
                return None
            self.pending.extend(msgpack.unpackb(self.sock.recv(), raw=False))
        return self.pending.pop(0)

    def call(self, op, *args):
        rid = next(self.rids)
        self.send_raw(frame([rid, op, *args]))
        reply = self.recv()
        assert reply is not None, f"no reply to {op}"
        assert reply[0] == rid
        return reply

    def close(self) -> None:
        self.sock.close(linger=0)


@pytest.fixture
def raw(small_node):
    conn = RawConnection(small_node.client_endpoint)
    yield conn
    conn.close()


def assert_still_serving(node) -> None:
    with Client(node.client_endpoint) as c:
        c.ensure_path("/alive")
        stat = c.set("/alive", b"yes")
        assert c.get("/alive") == (b"yes", stat)


@pytest.mark.parametrize("frames", [
    [b"\xc1"],                                   # not msgpack
    [msgpack.packb({"rid": 1})],                 # not an array
    [msgpack.packb([])],                         # no requests
    [frame([1])],                                # no op
    [frame(["x", "get", "/"])],                  # request id not an integer
    [frame([-5, "get", "/"])],                   # negative request id
    [frame(7)],                                  # request not an array
    [frame([1, "get", "/"]), b"extra"],          # two frames
    [b""],
])
def test_unanswerable_frames_are_dropped_and_counted(small_node, raw, frames):
    before = raw.call("status")[2]["errors"].get("bad_frame", 0)
    raw.send_raw(*frames)
    assert raw.recv(timeout_ms=300) is None
    after = raw.call("status")[2]["errors"].get("bad_frame", 0)
    assert after == before + 1
    assert_still_serving(small_node)


@pytest.mark.parametrize("request_, code", [
    (["frobnicate", "/"], Code.UNIMPLEMENTED),
    ([7, "/"], Code.UNIMPLEMENTED),
    (["get", 5], Code.BAD_ARGUMENTS),
    (["get"], Code.BAD_ARGUMENTS),
    (["get", "/", "extra"], Code.BAD_ARGUMENTS),
    (["create", "/a", "text, not bytes", 0], Code.BAD_ARGUMENTS),
    (["create", "/a", b"", 99], Code.BAD_ARGUMENTS),
    (["set", "/a", b"", True], Code.BAD_ARGUMENTS),
    (["set", "/a", b"", 2**40], Code.BAD_ARGUMENTS),
    (["delete", "/a", -1, "yes"], Code.BAD_ARGUMENTS),
    (["get", "relative/path"], Code.BAD_ARGUMENTS),
    (["get", "/a//b"], Code.BAD_ARGUMENTS),
    (["get", "/a/../b"], Code.BAD_ARGUMENTS),
    (["create", "/a\u0001b", b"", 0], Code.BAD_ARGUMENTS),
    (["create", "/" + "p" * 64, b"", 0], Code.BAD_ARGUMENTS),
    (["create", "/big", b"x" * 1025, 0], Code.BAD_ARGUMENTS),
    (["delete", "/", -1, False], Code.BAD_ARGUMENTS),
    (["get", "/missing"], Code.NO_NODE),
])
def test_answerable_bad_requests_get_typed_errors(small_node, raw, request_, code):
    reply = raw.call(*request_)
    assert reply[1] == code, reply
    assert isinstance(reply[2], str) and reply[2]
    assert_still_serving(small_node)


def test_requests_before_hello_and_wrong_protocol_are_refused(small_node):
    conn = RawConnection(small_node.client_endpoint, hello=False)
    try:
        assert conn.call("get", "/")[1] == Code.NO_HELLO
        assert conn.call("hello", PROTOCOL_VERSION + 1, "future")[1] == Code.PROTOCOL_VERSION
        assert conn.call("hello", PROTOCOL_VERSION, "now")[1] == 0
        assert conn.call("get", "/")[1] == 0
    finally:
        conn.close()


def test_more_requests_in_flight_than_the_limit_are_throttled(small_node, raw):
    raw.call("create", "/throttle", b"", 0)
    raw.send_raw(frame(*([rid, "set", "/throttle", b"v", -1] for rid in range(1000, 1030))))
    for rid in range(1030, 1050):
        raw.send_raw(frame([rid, "set", "/throttle", b"v", -1]))
    replies = [raw.recv() for _ in range(50)]
    assert all(r is not None for r in replies)
    codes = [r[1] for r in replies]
    assert sorted(r[0] for r in replies) == list(range(1000, 1050))
    assert Code.THROTTLED in codes and 0 in codes
    assert set(codes) <= {0, Code.THROTTLED}
    # The accepted ones were applied, the throttled ones were not.
    assert raw.call("exists", "/throttle")[2][4] == codes.count(0)


junk = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda v: msgpack.packb(v, use_bin_type=True), st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8)
        | st.binary(max_size=8),
        lambda children: st.lists(children, max_size=5), max_leaves=12)),
    st.builds(lambda rid, op, args: frame([rid, op, *args]),
              st.integers(0, 2**62), st.sampled_from(["get", "set", "create", "delete",
                                                      "exists", "children", "sync", "zap"]),
              st.lists(st.one_of(st.text(max_size=6), st.binary(max_size=6),
                                 st.integers(-3, 3), st.booleans()), max_size=4)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(junk, min_size=1, max_size=20))
def test_random_frames_never_disturb_the_node(small_node, frames):
    conn = RawConnection(small_node.client_endpoint)
    try:
        for junk_frame in frames:
            conn.send_raw(junk_frame)
        # Whatever was answerable is answered; then a normal request still works.
        rid = 10**15
        conn.send_raw(frame([rid, "get", "/"]))
        for _ in range(20 * len(frames) + 1):
            reply = conn.recv()
            assert reply is not None, "node stopped answering"
            if reply[0] == rid:
                assert reply[1] == 0
                break
        else:
            pytest.fail("no answer to the final request")
    finally:
        conn.close()


# Random operation sequences at the live node, checked against the tree core run locally.
names = st.sampled_from(["a", "b", "c"])
paths = st.lists(names, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
ops = st.one_of(
    st.tuples(st.just("create"), paths, st.binary(max_size=8), st.booleans()),
    st.tuples(st.just("set"), paths, st.binary(max_size=8), st.integers(-1, 2)),
    st.tuples(st.just("delete"), paths, st.integers(-1, 2), st.booleans()),
    st.tuples(st.just("get"), paths),
    st.tuples(st.just("children"), paths),
)
_examples = itertools.count()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(ops, min_size=1, max_size=25))
def test_random_operation_sequences_match_the_tree(small_node, sequence):
    root = f"/seq{next(_examples)}"
    model = Tree()
    model.create(root, b"", 1, 0)
    with Client(small_node.client_endpoint) as c:
        c.create(root)
        for zxid, (op, path, *args) in enumerate(sequence, start=2):
            full = root + path
            try:
                expected = _model(model, op, full, args, zxid)
            except errors.ZookeeperError as err:
                expected = type(err)
            try:
                actual = _live(c, op, full, args)
            except errors.ZookeeperError as err:
                actual = type(err)
            assert actual == expected, (op, full, args)
        c.delete(root, recursive=True)


def _shape(stat):
    return (stat.version, stat.cversion, stat.dataLength, stat.numChildren)


def _model(tree, op, path, args, zxid):
    if op == "create":
        return tree.create(path, args[0], zxid, 0, makepath=args[1])[0]
    if op == "set":
        return _shape(tree.set(path, args[0], args[1], zxid, 0)[0])
    if op == "delete":
        try:
            tree.delete(path, args[0], zxid, recursive=args[1])
        except errors.NoNodeError:
            if args[1]:
                return True  # the client's rule, kazoo's: nothing to delete recursively is fine
            raise
        return None
    if op == "get":
        data, stat = tree.get(path)
        return data, _shape(stat)
    return tree.get_children(path)


def _live(c, op, path, args):
    if op == "create":
        return c.create(path, args[0], makepath=args[1])
    if op == "set":
        return _shape(c.set(path, args[0], version=args[1]))
    if op == "delete":
        return c.delete(path, version=args[0], recursive=args[1])
    if op == "get":
        data, stat = c.get(path)
        return data, _shape(stat)
    return c.get_children(path)


def test_one_frame_may_carry_many_requests_that_take_effect_in_order(small_node, raw):
    raw.send_raw(frame([501, "create", "/batch", b"1", 0], [502, "get", "/batch"],
                       [503, "nope"], [504, "set", "/batch", b"2", 0], [505, "get", "/batch"]))
    replies = {r[0]: r for r in (raw.recv() for _ in range(5))}
    assert [replies[rid][1] for rid in range(501, 506)] == [0, 0, Code.UNIMPLEMENTED, 0, 0]
    # Each read sees exactly the writes this client sent before it, not later ones.
    assert replies[502][2][0] == b"1"
    assert replies[505][2][0] == b"2"
