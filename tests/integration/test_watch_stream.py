"""The node's side of watches, over real sockets: the PUB stream, heartbeats on the
control topic, and history queries (events / evcount) through the client ROUTER."""

from __future__ import annotations

import msgpack
import pytest
import zmq

from tests.integration.cluster import NodeProcess, wait_for, write_config
from zkactors.client import Client
from zkactors.core.watches import CONTROL_TOPIC, ResumeAnswer
from zkactors.errors import Code
from zkactors.protocol import PROTOCOL_VERSION

pytestmark = pytest.mark.timeout(60)


class Raw:
    """A bare DEALER speaking the wire protocol, so the test sees exact replies."""

    def __init__(self, endpoint: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(endpoint)
        self.rid = 0
        assert self.call("hello", PROTOCOL_VERSION, "raw")[1] == 0

    def call(self, op: str, *args):
        self.rid += 1
        self.sock.send(msgpack.packb([[self.rid, op, *args]]))
        assert self.sock.poll(10_000), "no reply"
        return msgpack.unpackb(self.sock.recv())[0]

    def close(self) -> None:
        self.sock.close()


def subscriber(endpoint: str, *prefixes: bytes) -> zmq.Socket:
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.linger = 0
    for prefix in prefixes:
        sub.subscribe(prefix)
    sub.connect(endpoint)
    return sub


def receive(sub: zmq.Socket, timeout_s: float = 10.0) -> tuple[bytes, list]:
    assert sub.poll(int(timeout_s * 1000)), "nothing published"
    topic, body = sub.recv_multipart()
    return topic, msgpack.unpackb(body)


@pytest.fixture
def small_history_node(tmp_path):
    proc = NodeProcess(write_config(tmp_path, extra="[watch]\nhistory_events = 20\n"
                                                     "heartbeat_ms = 20\n")).start()
    yield proc
    proc.stop()


def test_changes_are_published_with_the_path_as_topic_and_heartbeats_follow(node):
    sub = subscriber(node.watch_endpoint, b"/app", CONTROL_TOPIC)
    try:
        with Client(node.client_endpoint) as c:
            # A SUB connects asynchronously: wait until heartbeats arrive, so the
            # subscription is in place before the writes.
            wait_for(lambda: receive(sub)[0] == CONTROL_TOPIC, 10, "a heartbeat")
            c.create("/app", b"v0")
            stat = c.set("/app", b"v1")
            c.create("/other", b"x")  # not subscribed
        seen = []
        while len(seen) < 2:
            topic, body = receive(sub)
            if topic != CONTROL_TOPIC:
                seen.append((topic, body))
        # Each carries the sequence number of the subscribed prefix it matches:
        # consecutive, so this subscriber knows it missed nothing.
        first_seq = seen[0][1][4]["/app"]
        assert seen == [(b"/app", ["created", "/app", seen[0][1][2], 0, {"/app": first_seq}]),
                        (b"/app", ["changed", "/app", stat.mzxid, 1, {"/app": first_seq + 1}])]
        # The next heartbeat vouches for everything applied, /other included.
        topic, body = receive(sub)
        while topic != CONTROL_TOPIC or body[1] < stat.mzxid + 1:
            topic, body = receive(sub)
        assert body[0] == "heartbeat" and body[2] >= stat.mzxid
    finally:
        sub.close()


def test_history_queries_answer_events_and_counts_since_a_zxid(node):
    with Client(node.client_endpoint) as c:
        c.create("/cfg", b"")
        start = c.last_zxid
        for i in range(5):
            c.create(f"/cfg/k{i}", b"x")
        c.set("/cfg/k1", b"y")
        c.create("/elsewhere", b"")
        end = c.last_zxid
    raw = Raw(node.client_endpoint)
    try:
        _, code, result, _ = raw.call("events", [["/cfg", True]], start)
        answer = ResumeAnswer.from_wire(result)
        assert code == 0 and not answer.compacted and not answer.more
        assert [(e.type, e.path) for e in answer.events] == [
            *[(kind, path) for i in range(5)
              for kind, path in (("created", f"/cfg/k{i}"), ("child", "/cfg"))],
            ("changed", "/cfg/k1"),
        ]
        assert answer.upto_zxid >= end
        non_recursive = ResumeAnswer.from_wire(raw.call("events", [["/cfg", False]], start)[2])
        assert [e.type for e in non_recursive.events] == ["child"] * 5
        count = ResumeAnswer.from_wire(raw.call("evcount", [["/cfg/k1", False]], start, end)[2])
        assert count.count == 2
        # Bad queries get clear errors, and the node answers the next one.
        assert raw.call("events", [], 0)[1] == Code.BAD_ARGUMENTS
        assert raw.call("events", [["no-slash", True]], 0)[1] == Code.BAD_ARGUMENTS
        assert raw.call("events", [["/a", "yes"]], 0)[1] == Code.BAD_ARGUMENTS
        assert raw.call("evcount", [["/a", True]], -1, 0)[1] == Code.BAD_ARGUMENTS
        assert raw.call("events", [["/cfg", True]], end)[1] == 0
    finally:
        raw.close()


def test_a_query_older_than_the_history_is_told_compacted(small_history_node):
    node = small_history_node
    with Client(node.client_endpoint) as c:
        for i in range(30):  # 60 events: a create also fires "child" on /
            c.create(f"/n{i}", b"")
        last = c.last_zxid
    raw = Raw(node.client_endpoint)
    try:
        old = ResumeAnswer.from_wire(raw.call("events", [["/", True]], 0)[2])
        assert old.compacted
        recent = ResumeAnswer.from_wire(raw.call("events", [["/n29", False]], last - 1)[2])
        assert [e.path for e in recent.events] == ["/n29"]
    finally:
        raw.close()
