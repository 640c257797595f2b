"""Behaviour of the gateway core (zkactors.core.gateway): sessions, validation, routing,
flow control, problem reporting."""

from __future__ import annotations

from typing import NamedTuple

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zkactors.core.dedup import tag
from zkactors.core.gateway import GatewayCore
from zkactors.core.messages import AppendResponse, Campaign, VoteResponse
from zkactors.core.replog import ReplicatedLog
from zkactors.core.store import StoreCore
from zkactors.core.tree import Tree
from zkactors.errors import Code
from zkactors.protocol import PROTOCOL_VERSION, pack

pytestmark = pytest.mark.timeout(60)

A = b"\x00client-a"
B = b"\x00client-b"
C = b"\x00client-c"

MAX_DATA = 16
MAX_PATH = 32
MAX_INFLIGHT = 3
TIMEOUT = 1000
IDENTITY = {"role": "standalone", "endpoint": "tcp://127.0.0.1:2181"}

OK = int(Code.OK)
BAD_ARGUMENTS = int(Code.BAD_ARGUMENTS)
THROTTLED = int(Code.THROTTLED)
NO_HELLO = int(Code.NO_HELLO)


#: The index the gateway's node caught up to: every read it routes carries it.
FLOOR = 5


class Out(NamedTuple):
    writes: list
    reads: list
    replies: list


def gateway(**overrides) -> GatewayCore:
    kwargs = {
        "node_id": 1, "max_data_bytes": MAX_DATA, "max_path_bytes": MAX_PATH,
        "max_inflight": MAX_INFLIGHT, "max_clients": 2, "session_timeout_ms": TIMEOUT,
        "identity": IDENTITY,
    }
    serving = overrides.pop("serving_reads", True)
    caught_up = overrides.pop("caught_up", True)
    kwargs.update(overrides)
    gw = GatewayCore(**kwargs)
    gw.serving_reads = serving  # most tests are about a node that knows a live leader
    gw.caught_up = caught_up  # ... and has caught up with it
    gw.read_floor = FLOOR if caught_up else 0  # ... to this log index
    return gw


def send_frame(gw: GatewayCore, ident: bytes, frame: bytes, now: int = 0) -> Out:
    out = Out([], [], [])
    gw.on_frame(ident, frame, now, out.writes, out.reads, out.replies)
    return out


def send(gw: GatewayCore, ident: bytes, *requests: list, now: int = 0) -> Out:
    """One client frame holding ``requests`` (each ``[rid, op, *args]``)."""
    return send_frame(gw, ident, pack(list(requests)), now)


def hello(gw: GatewayCore, ident: bytes, now: int = 0) -> None:
    out = send(gw, ident, [0, "hello", PROTOCOL_VERSION, "tester"], now=now)
    assert out.replies[0][2] == OK, out


def only_reply(out: Out) -> list:
    assert out.writes == [] and out.reads == [], out
    assert len(out.replies) == 1, out
    return out.replies[0]


def reply_code(out: Out) -> int:
    return only_reply(out)[2]


def write_reply(ident: bytes, rid: int, code: int = OK, result: object = None) -> list:
    """What the store sends back for a committed write."""
    return [ident, rid, code, result, True]


def read_reply(ident: bytes, rid: int, result: object = None, via_log: bool = False) -> list:
    """What the store sends back for a read (``via_log``: one held behind writes)."""
    return [ident, rid, OK, result, via_log]


# ----------------------------------------------------------------------- hello


def test_hello_opens_a_session_and_returns_the_limits():
    gw = gateway()
    out = send(gw, A, [4, "hello", PROTOCOL_VERSION, "my-client"], now=50)
    assert out.replies == [[A, 4, OK, {
        "protocol": PROTOCOL_VERSION,
        "node": 1,
        "max_inflight": MAX_INFLIGHT,
        "max_data_bytes": MAX_DATA,
        "session_timeout_ms": TIMEOUT,
        "session_bounds_ms": [1000, 60000],
        "dedup": True,
        "serving": True,
        "watch": "",
    }, False]]
    session = gw.sessions[A]
    assert (session.name, session.inflight, session.last_seen_ms) == ("my-client", 0, 50)


def test_a_node_that_knows_no_live_leader_says_so_at_hello_and_refuses_pings():
    gw = gateway(serving_reads=False)
    out = send(gw, A, [4, "hello", PROTOCOL_VERSION, "c", 77])
    assert only_reply(out)[3]["serving"] is False
    assert 77 in gw.touched  # (a hello is still a sign of life)
    assert reply_code(send(gw, A, [5, "ping"])) == Code.NOT_READY
    gw.serving_reads = True
    # Still catching up, it knows a live leader: it can keep sessions alive
    # (it only refuses reads for a moment).
    gw.on_role("follower", 2, 2, "tcp://x:1", caught_up=False)
    assert reply_code(send(gw, A, [6, "ping"])) == OK
    assert reply_code(send(gw, A, [7, "get", "/"])) == Code.NOT_READY
    assert only_reply(send(gw, A, [8, "hello", PROTOCOL_VERSION, "c", 77]))[3]["serving"]


def test_hello_with_wrong_protocol_version_is_refused():
    gw = gateway()
    out = send(gw, A, [1, "hello", PROTOCOL_VERSION + 1, "future"])
    ident, rid, code, result, via_log = only_reply(out)
    assert (ident, rid, code, via_log) == (A, 1, int(Code.PROTOCOL_VERSION), False)
    assert str(PROTOCOL_VERSION + 1) in result
    assert A not in gw.sessions
    assert gw.counters["protocol_version"] == 1


def test_hello_beyond_max_clients_is_throttled():
    gw = gateway(max_clients=2)
    hello(gw, A)
    hello(gw, B)
    out = send(gw, C, [1, "hello", PROTOCOL_VERSION, "third"])
    assert reply_code(out) == THROTTLED
    assert set(gw.sessions) == {A, B}
    assert gw.counters["too_many_clients"] == 1


def test_hello_again_on_an_open_session_is_fine_at_max_clients():
    gw = gateway(max_clients=1)
    hello(gw, A, now=0)
    out = send(gw, A, [1, "hello", PROTOCOL_VERSION, "again"], now=700)
    assert reply_code(out) == OK
    assert len(gw.sessions) == 1
    assert gw.sessions[A].last_seen_ms == 700
    assert gw.sessions[A].name == "tester"  # the session is kept, not replaced


def test_session_name_is_truncated():
    gw = gateway()
    send(gw, A, [1, "hello", PROTOCOL_VERSION, "x" * 1000])
    assert gw.sessions[A].name == "x" * 200


def test_hello_then_requests_in_the_same_frame():
    gw = gateway()
    out = send(gw, A, [0, "hello", PROTOCOL_VERSION, "c"], [1, "get", "/a"], [2, "ping"])
    assert [r[1:3] for r in out.replies] == [[0, OK], [2, OK]]
    assert out.reads == [[A, 1, "get", ["/a"], FLOOR]]
    assert gw.sessions[A].inflight == 1


@pytest.mark.parametrize(
    "request_",
    [[1, "get", "/a"], [1, "create", "/a", b"", 0], [1, "ping"], [1, "status"],
     [1, "sync", "/"]],
)
def test_request_before_hello_gets_session_expired(request_):
    gw = gateway()
    out = send(gw, A, request_)
    assert only_reply(out)[:3] == [A, 1, NO_HELLO]
    assert gw.sessions == {}


def test_requests_after_a_refused_hello_get_session_expired():
    gw = gateway()
    out = send(gw, A, [0, "hello", 99, "old"], [1, "get", "/a"])
    assert [r[2] for r in out.replies] == [int(Code.PROTOCOL_VERSION), NO_HELLO]
    assert out.reads == []


# ------------------------------------------------------------------------ ping


def test_ping_is_answered_at_once_and_not_counted_in_flight():
    gw = gateway()
    hello(gw, A)
    assert only_reply(send(gw, A, [7, "ping"])) == [A, 7, OK, None, False]
    assert gw.sessions[A].inflight == 0


def test_ping_is_answered_even_at_the_in_flight_limit():
    gw = gateway()
    hello(gw, A)
    send(gw, A, *[[rid, "get", "/"] for rid in range(MAX_INFLIGHT)])
    assert only_reply(send(gw, A, [9, "ping"]))[2] == OK


# ------------------------------------------------------------------ validation


def test_unknown_op_is_unimplemented():
    gw = gateway()
    hello(gw, A)
    ident, rid, code, result, _ = only_reply(send(gw, A, [3, "frobnicate", "/a"]))
    assert (ident, rid, code) == (A, 3, int(Code.UNIMPLEMENTED))
    assert "frobnicate" in result
    assert gw.counters["unimplemented"] == 1
    assert gw.sessions[A].inflight == 0


@pytest.mark.parametrize("op", [5, None, ["get"], {"op": "get"}, b"get"])
def test_an_op_that_is_not_a_known_string_is_unimplemented(op):
    gw = gateway()
    hello(gw, A)
    assert reply_code(send(gw, A, [3, op, "/a"])) == int(Code.UNIMPLEMENTED)


@pytest.mark.parametrize(
    "request_",
    [
        [1, "get", 5],
        [1, "get", b"/a"],
        [1, "get"],
        [1, "get", "/a", "/b"],
        [1, "exists", None],
        [1, "children", ["/"]],
        [1, "sync"],
        [1, "create", "/a", "text", 0],
        [1, "create", "/a", b"", True],
        [1, "create", "/a", b""],
        [1, "set", "/a", b"", "0"],
        [1, "set", "/a", b"", False],
        [1, "delete", "/a", -1, 1],
        [1, "delete", "/a", -1],
        [1, "status", "extra"],
        [1, "status", 1],
        [1, "status", True, True],
        [1, "ping", 1],
        [1, "hello", "1", "name"],
        [1, "hello", True, "name"],
        [1, "hello", 1, b"name"],
    ],
)
def test_wrong_arg_types_are_bad_arguments(request_):
    gw = gateway()
    hello(gw, A)
    ident, rid, code, result, via_log = only_reply(send(gw, A, request_))
    assert (ident, rid, code, via_log) == (A, 1, BAD_ARGUMENTS, False)
    assert request_[1] in result  # the message says which op and what it takes
    assert gw.counters["bad_arguments"] == 1
    assert gw.sessions[A].inflight == 0
    assert gw.sessions[A].log_inflight == 0


@pytest.mark.parametrize("path", ["", "a", "/a/", "//a", "/a//b", "/a/./b", "/..", "/a\x00b",
                                  "/a\x01", "/" + "x" * MAX_PATH])
@pytest.mark.parametrize(
    "request_",
    [["get"], ["exists"], ["children"], ["sync"], ["create", b"", 0], ["set", b"", -1],
     ["delete", -1, False]],
)
def test_invalid_path_is_bad_arguments(path, request_):
    gw = gateway()
    hello(gw, A)
    out = send(gw, A, [1, request_[0], path, *request_[1:]])
    assert reply_code(out) == BAD_ARGUMENTS
    assert gw.sessions[A].inflight == 0


def test_path_of_exactly_max_path_bytes_is_accepted():
    gw = gateway()
    hello(gw, A)
    path = "/" + "x" * (MAX_PATH - 1)
    assert send(gw, A, [1, "get", path]).reads == [[A, 1, "get", [path], FLOOR]]
    # Multi-byte characters count as their UTF-8 length.
    assert reply_code(send(gw, A, [2, "get", "/" + "é" * (MAX_PATH // 2)])) == BAD_ARGUMENTS


def test_sequential_create_may_end_with_a_slash_and_counts_the_suffix():
    gw = gateway()
    hello(gw, A)
    out = send(gw, A, [1, "create", "/q/", b"", 2])
    assert out.writes == [[A, 1, ["create", "/q/", b"", 2], None]]
    assert reply_code(send(gw, A, [2, "create", "/q/", b"", 0])) == BAD_ARGUMENTS
    # The ten-digit suffix counts toward max_path_bytes.
    long_prefix = "/" + "x" * (MAX_PATH - 10)
    assert reply_code(send(gw, A, [3, "create", long_prefix, b"", 2])) == BAD_ARGUMENTS
    assert send(gw, A, [4, "create", long_prefix, b"", 0]).writes


@pytest.mark.parametrize("op", ["create", "set"])
def test_oversized_data_is_bad_arguments(op):
    gw = gateway()
    hello(gw, A)
    last = 0 if op == "create" else -1
    _, _, code, result, _ = only_reply(send(gw, A, [1, op, "/a", b"x" * (MAX_DATA + 1), last]))
    assert code == BAD_ARGUMENTS
    assert "max_data_bytes" in result
    assert gw.sessions[A].log_inflight == 0
    # Exactly the limit is fine.
    assert len(send(gw, A, [2, op, "/a", b"x" * MAX_DATA, last]).writes) == 1


@pytest.mark.parametrize("flags", [8, 1 | 8, -1, 2**40])
def test_bad_create_flags_are_bad_arguments(flags):
    gw = gateway()
    hello(gw, A)
    _, _, code, result, _ = only_reply(send(gw, A, [1, "create", "/a", b"", flags]))
    assert code == BAD_ARGUMENTS
    assert "flags" in result


@pytest.mark.parametrize("flags", [0, 1, 2, 3])
def test_known_create_flags_pass(flags):
    gw = gateway()
    hello(gw, A)
    assert send(gw, A, [1, "create", "/a", b"d", flags]).writes == [
        [A, 1, ["create", "/a", b"d", flags], None]
    ]


@pytest.mark.parametrize("version", [-2, -(2**40), 2**31, 2**62])
@pytest.mark.parametrize("op", ["set", "delete"])
def test_version_out_of_range_is_bad_arguments(op, version):
    gw = gateway()
    hello(gw, A)
    args = ["/a", b"", version] if op == "set" else ["/a", version, False]
    _, _, code, result, _ = only_reply(send(gw, A, [1, op, *args]))
    assert code == BAD_ARGUMENTS
    assert "out of range" in result


@pytest.mark.parametrize("version", [-1, 0, 2**31 - 1])
@pytest.mark.parametrize("op", ["set", "delete"])
def test_version_in_range_passes(op, version):
    gw = gateway()
    hello(gw, A)
    args = ["/a", b"", version] if op == "set" else ["/a", version, True]
    assert send(gw, A, [1, op, *args]).writes == [[A, 1, [op, *args], None]]


# ----------------------------------------------------------------- flow control


def test_inflight_limit_gives_throttled_and_replies_lower_the_count():
    gw = gateway()
    hello(gw, A)
    out = send(gw, A, [1, "get", "/"], [2, "create", "/a", b"", 0], [3, "exists", "/"],
               [4, "get", "/"], [5, "set", "/a", b"", -1])
    assert [r[1] for r in out.reads] == [1]
    assert [w[1] for w in out.writes] == [2, 3]  # 3 is a read queued behind write 2
    assert [(r[1], r[2]) for r in out.replies] == [(4, THROTTLED), (5, THROTTLED)]
    assert gw.sessions[A].inflight == MAX_INFLIGHT
    assert gw.counters["throttled"] == 2

    gw.on_replies([read_reply(A, 1, [b"", []])])
    assert gw.sessions[A].inflight == MAX_INFLIGHT - 1
    assert len(send(gw, A, [6, "children", "/"]).writes) == 1
    assert reply_code(send(gw, A, [7, "children", "/"])) == THROTTLED

    gw.on_replies([write_reply(A, 2, OK, "/a"), read_reply(A, 3, via_log=True),
                   read_reply(A, 6, [], via_log=True)])
    assert gw.sessions[A].inflight == 0
    assert gw.sessions[A].log_inflight == 0


def test_throttling_is_per_client():
    gw = gateway()
    hello(gw, A)
    hello(gw, B)
    send(gw, A, *[[rid, "get", "/"] for rid in range(MAX_INFLIGHT)])
    assert reply_code(send(gw, A, [9, "get", "/"])) == THROTTLED
    assert send(gw, B, [9, "get", "/"]).reads == [[B, 9, "get", ["/"], FLOOR]]


def test_status_counts_toward_the_in_flight_limit():
    gw = gateway()
    hello(gw, A)
    send(gw, A, *[[rid, "status"] for rid in range(MAX_INFLIGHT)])
    assert reply_code(send(gw, A, [9, "status"])) == THROTTLED


def test_refused_requests_do_not_count_in_flight():
    gw = gateway()
    hello(gw, A)
    send(gw, A, [1, "get", "bad"], [2, "create", "/a", b"", 99], [3, "nope"], [4, "ping"])
    assert gw.sessions[A].inflight == 0
    assert gw.sessions[A].log_inflight == 0


# ---------------------------------------------------------------------- routing


@pytest.mark.parametrize("op", ["get", "exists", "children"])
def test_reads_go_to_the_store_when_no_writes_are_pending(op):
    gw = gateway()
    hello(gw, A)
    out = send(gw, A, [5, op, "/a"])
    assert out == Out([], [[A, 5, op, ["/a"], FLOOR]], [])
    assert gw.sessions[A].inflight == 1
    assert gw.sessions[A].log_inflight == 0


def test_a_sync_always_goes_through_the_log_and_later_reads_queue_behind_it():
    gw = gateway()
    hello(gw, A)
    out = send(gw, A, [5, "sync", "/a"], [6, "get", "/a"])
    assert out.writes == [[A, 5, None, ["sync", ["/a"]]], [A, 6, None, ["get", ["/a"]]]]
    assert out.reads == [] and gw.sessions[A].log_inflight == 2


def test_a_node_still_catching_up_refuses_reads_retryably():
    gw = gateway(caught_up=False)
    hello(gw, A)
    reply = only_reply(send(gw, A, [5, "get", "/a"]))
    assert reply[2] == Code.NOT_READY and "catching up" in reply[3]
    gw.on_role("follower", 3, 2, "tcp://127.0.0.1:1", True, 42)
    # Every read carries the index the node caught up to: the store answers it only
    # once it has applied that far (commits reach it on another pipe).
    assert send(gw, A, [6, "get", "/a"]).reads == [[A, 6, "get", ["/a"], 42]]


@pytest.mark.parametrize(
    ("request_", "txn"),
    [
        ([1, "create", "/a", b"v", 1], ["create", "/a", b"v", 1]),
        ([1, "set", "/a", b"v", 3], ["set", "/a", b"v", 3]),
        ([1, "delete", "/a", -1, True], ["delete", "/a", -1, True]),
    ],
)
def test_writes_go_to_the_log_as_txns(request_, txn):
    gw = gateway()
    hello(gw, A)
    out = send(gw, A, request_)
    assert out == Out([[A, 1, txn, None]], [], [])
    assert gw.sessions[A].inflight == 1
    assert gw.sessions[A].log_inflight == 1


def test_reads_queue_behind_the_same_clients_writes():
    gw = gateway(max_inflight=10)
    hello(gw, A)
    out = send(gw, A, [1, "create", "/a", b"", 0])
    assert len(out.writes) == 1
    out = send(gw, A, [2, "get", "/a"], [3, "exists", "/a"], [4, "children", "/"],
               [5, "sync", "/"])
    assert out.reads == []
    assert out.writes == [
        [A, 2, None, ["get", ["/a"]]],
        [A, 3, None, ["exists", ["/a"]]],
        [A, 4, None, ["children", ["/"]]],
        [A, 5, None, ["sync", ["/"]]],
    ]
    assert gw.sessions[A].inflight == 5
    assert gw.sessions[A].log_inflight == 5  # held reads count: later reads wait for them too


def test_reads_go_back_to_the_store_after_the_write_replies():
    gw = gateway()
    hello(gw, A)
    send(gw, A, [1, "create", "/a", b"", 0], [2, "set", "/a", b"x", -1])
    gw.on_replies([write_reply(A, 1, OK, "/a")])
    assert send(gw, A, [3, "get", "/a"]).writes == [[A, 3, None, ["get", ["/a"]]]]
    gw.on_replies([write_reply(A, 2, OK, [0] * 11), read_reply(A, 3, via_log=True)])
    assert gw.sessions[A].log_inflight == 0
    assert send(gw, A, [4, "get", "/a"]).reads == [[A, 4, "get", ["/a"], FLOOR]]


def test_a_failed_write_still_lets_reads_go_to_the_store():
    gw = gateway()
    hello(gw, A)
    send(gw, A, [1, "set", "/missing", b"", -1])
    gw.on_replies([write_reply(A, 1, int(Code.NO_NODE), "node does not exist")])
    assert send(gw, A, [2, "get", "/"]).reads == [[A, 2, "get", ["/"], FLOOR]]


def test_another_clients_reads_are_not_held_back():
    gw = gateway()
    hello(gw, A)
    hello(gw, B)
    send(gw, A, [1, "create", "/a", b"", 0])
    out = send(gw, B, [1, "get", "/a"])
    assert out == Out([], [[B, 1, "get", ["/a"], FLOOR]], [])


def test_a_frame_with_several_requests_routes_each_in_order():
    gw = gateway(max_inflight=10)
    hello(gw, A)
    out = send(
        gw, A,
        [10, "get", "/"],
        [11, "ping"],
        [12, "create", "/a", b"", 0],
        [13, "get", "/a"],
        [14, "get", "bad path"],
        [15, "delete", "/a", -1, False],
        [16, "status"],
    )
    assert out.reads == [[A, 10, "get", ["/"], FLOOR], [A, 16, "status", []]]
    assert out.writes == [
        [A, 12, ["create", "/a", b"", 0], None],
        [A, 13, None, ["get", ["/a"]]],
        [A, 15, ["delete", "/a", -1, False], None],
    ]
    assert [(r[1], r[2]) for r in out.replies] == [(11, OK), (14, BAD_ARGUMENTS)]
    assert gw.sessions[A].inflight == 5
    assert gw.sessions[A].log_inflight == 3  # two writes and the read held behind them


def test_the_caller_owns_the_output_lists():
    gw = gateway()
    hello(gw, A)
    hello(gw, B)
    writes, reads, replies = [], [], []
    gw.on_frame(A, pack([[1, "create", "/a", b"", 0]]), 0, writes, reads, replies)
    gw.on_frame(B, pack([[1, "get", "/"], [2, "ping"]]), 0, writes, reads, replies)
    gw.on_frame(A, pack([[2, "get", "/a"]]), 0, writes, reads, replies)
    assert [(w[0], w[1]) for w in writes] == [(A, 1), (A, 2)]
    assert reads == [[B, 1, "get", ["/"], FLOOR]]
    assert replies == [[B, 2, OK, None, False]]


# ----------------------------------------------------------------------- status


def test_status_goes_to_the_store_and_its_reply_is_merged():
    gw = gateway()
    hello(gw, A)
    hello(gw, B)
    send(gw, A, [1, "frobnicate"])
    out = send(gw, A, [2, "status"])
    assert out == Out([], [[A, 2, "status", []]], [])
    store_status = {"term": 1, "applied_zxid": (1 << 32) | 5, "applied_index": 5,
                    "commit_index": 8, "znodes": 3}
    reply = [A, 2, OK, dict(store_status), False]
    gw.on_replies([reply])
    assert reply[3] == {
        "node": 1,
        **store_status,
        **IDENTITY,
        "serving_reads": True,
        "caught_up": True,
        "lag": 3,
        "clients": 2,
        "errors": {"unimplemented": 1},
        "peer_rejected": {},
    }
    assert gw.sessions[A].inflight == 0


def test_status_goes_to_the_store_even_with_writes_in_flight():
    gw = gateway()
    hello(gw, A)
    send(gw, A, [1, "create", "/a", b"", 0])
    assert send(gw, A, [2, "status"]).reads == [[A, 2, "status", []]]


def test_a_status_asking_for_the_tree_digest_says_so_to_the_store():
    gw = gateway()
    hello(gw, A)
    assert send(gw, A, [2, "status", True]).reads == [[A, 2, "status", [True]]]


def test_only_the_awaited_status_reply_is_merged():
    gw = gateway()
    hello(gw, A)
    hello(gw, B)
    send(gw, A, [1, "status"])
    send(gw, B, [1, "get", "/"])
    other = [B, 1, OK, {"applied_index": 1}, False]  # same rid, other client
    gw.on_replies([other])
    assert other[3] == {"applied_index": 1}
    mine = [A, 1, OK, {"applied_index": 1}, False]
    gw.on_replies([mine])
    assert mine[3]["clients"] == 2
    again = [A, 1, OK, {"applied_index": 1}, False]  # merged once only
    gw.on_replies([again])
    assert again[3] == {"applied_index": 1}


def test_status_lag_is_never_negative_and_defaults_to_zero():
    gw = gateway(identity=None)
    assert gw.status({"applied_index": 9, "commit_index": 4})["lag"] == 0
    merged = gw.status({})
    assert merged == {"node": 1, "lag": 0, "clients": 0, "errors": {}, "serving_reads": True,
                      "caught_up": True,
                      "peer_rejected": {}}


# --------------------------------------------------------------------- problems


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xc1",  # never used in msgpack
        b"\x92\x01",  # array of 2, truncated
        pack([[1, "ping"]]) + b"\x00",  # trailing bytes
        pack(5),
        pack("hello"),
        pack([]),
        pack({"rid": 1}),
    ],
)
def test_undecodable_frame_is_counted_as_bad_frame(frame):
    gw = gateway()
    hello(gw, A)
    out = send_frame(gw, A, frame)
    assert out == Out([], [], [])
    assert gw.counters["bad_frame"] == 1
    [(ident, kind, detail)] = gw.take_first_seen()
    assert (ident, kind) == (A, "bad_frame")
    assert isinstance(detail, str) and detail


@pytest.mark.parametrize(
    "request_",
    [5, "get", [], [1], [-1, "ping"], [True, "ping"], ["1", "ping"], [1.0, "ping"],
     [None, "ping"], [2**63, "ping"]],
)
def test_request_without_a_usable_rid_is_dropped_and_counted(request_):
    gw = gateway()
    hello(gw, A)
    out = send(gw, A, request_, [2, "ping"])
    assert out.replies == [[A, 2, OK, None, False]]  # the rest of the frame goes on
    assert gw.counters["bad_frame"] == 1


def test_largest_rid_is_accepted():
    gw = gateway()
    hello(gw, A)
    assert only_reply(send(gw, A, [2**63 - 1, "ping"]))[1] == 2**63 - 1


def test_problems_are_reported_once_per_client_and_kind():
    gw = gateway()
    hello(gw, A)
    hello(gw, B)
    gw.take_first_seen()
    send_frame(gw, A, b"\xc1")
    send_frame(gw, A, b"\xc1")
    send(gw, A, [1, "get", 5], [2, "get", 6])
    send_frame(gw, B, b"\xc1")
    first = gw.take_first_seen()
    assert [(ident, kind) for ident, kind, _ in first] == [
        (A, "bad_frame"), (A, "bad_arguments"), (B, "bad_frame"),
    ]
    assert gw.take_first_seen() == []
    send_frame(gw, A, b"\xc1")
    send(gw, A, [3, "nope"])
    assert [(i, k) for i, k, _ in gw.take_first_seen()] == [(A, "unimplemented")]
    assert gw.counters == {"bad_frame": 4, "bad_arguments": 2, "unimplemented": 1}


def test_problems_are_counted_even_without_a_session():
    gw = gateway()
    send_frame(gw, A, b"\xc1")
    send(gw, A, [1, "get", 5])
    assert gw.counters == {"bad_frame": 1, "bad_arguments": 1}
    assert [k for _, k, _ in gw.take_first_seen()] == ["bad_frame", "bad_arguments"]


def test_on_bad_frame_counts_and_reports_once():
    gw = gateway()
    gw.on_bad_frame(A, "3 frames, expected 1")
    gw.on_bad_frame(A, "3 frames, expected 1")
    assert gw.counters["bad_frame"] == 2
    assert gw.take_first_seen() == [(A, "bad_frame", "3 frames, expected 1")]


def test_problem_counts_show_in_status():
    gw = gateway()
    hello(gw, A)
    send_frame(gw, A, b"\xc1")
    send(gw, A, *[[rid, "get", "/"] for rid in range(MAX_INFLIGHT + 2)])
    assert gw.status({})["errors"] == {"bad_frame": 1, "throttled": 2}


# ---------------------------------------------------------------------- expiry


def test_session_expiry_only_when_idle_for_longer_than_the_timeout():
    gw = gateway()
    hello(gw, A, now=100)
    assert gw.tick(100 + TIMEOUT) == []
    assert A in gw.sessions
    assert gw.tick(100 + TIMEOUT + 1) == [A]
    assert gw.sessions == {}


def test_any_request_keeps_the_session_alive():
    gw = gateway()
    hello(gw, A, now=0)
    send(gw, A, [1, "ping"], now=900)
    assert gw.tick(1500) == []
    send(gw, A, [2, "get", "no slash"], now=1400)  # even a refused one
    assert gw.tick(2300) == []
    assert gw.tick(2401) == [A]


def test_session_with_requests_in_flight_does_not_expire():
    gw = gateway()
    hello(gw, A, now=0)
    send(gw, A, [1, "create", "/a", b"", 0], now=0)
    assert gw.tick(10 * TIMEOUT) == []
    gw.on_replies([write_reply(A, 1)])
    assert gw.tick(10 * TIMEOUT) == [A]


def test_only_idle_sessions_expire():
    gw = gateway()
    hello(gw, A, now=0)
    hello(gw, B, now=0)
    send(gw, B, [1, "ping"], now=800)
    assert gw.tick(1500) == [A]
    assert set(gw.sessions) == {B}


def test_an_expired_client_must_say_hello_again():
    gw = gateway(max_clients=1)
    hello(gw, A, now=0)
    gw.tick(TIMEOUT + 1)
    assert reply_code(send(gw, A, [1, "get", "/"], now=TIMEOUT + 2)) == NO_HELLO
    hello(gw, B, now=TIMEOUT + 3)  # the slot was freed
    assert set(gw.sessions) == {B}


def test_replies_for_an_unknown_session_are_ignored():
    gw = gateway()
    hello(gw, A)
    gw.on_replies([write_reply(B, 1), read_reply(C, 2)])
    assert gw.sessions[A].inflight == 0


# --------------------------------------------------------------------- property

PATH = st.sampled_from(["/", "/a", "/a/b", "a", "/a/", "//", "/" + "x" * 40, "/q/"])
ARG = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=5),
    st.binary(max_size=20), PATH, st.lists(st.integers(-5, 5), max_size=2),
)
OP = st.one_of(
    st.sampled_from(["hello", "create", "set", "delete", "get", "exists", "children", "sync",
                     "status", "ping"]),
    ARG,
)
REQUEST = st.one_of(
    st.builds(lambda rid, op, args: [rid, op, *args],
              st.one_of(st.integers(0, 20), ARG), OP, st.lists(ARG, max_size=4)),
    st.builds(lambda rid, path, data, x: [rid, "create", path, data, x],
              st.integers(0, 20), PATH, st.binary(max_size=20), st.integers(-5, 2**32)),
    st.builds(lambda rid, path, v: [rid, "set", path, b"", v],
              st.integers(0, 20), PATH, st.integers(-3, 2**32)),
    st.builds(lambda rid, op, path: [rid, op, path], st.integers(0, 20),
              st.sampled_from(["get", "exists", "children", "sync"]), PATH),
    st.just([0, "hello", PROTOCOL_VERSION, "fuzz"]),
    ARG,
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.tuples(st.sampled_from([A, B, C]), st.lists(REQUEST, min_size=1,
                                                                 max_size=6)), max_size=8))
def test_every_request_is_routed_answered_or_counted_exactly_once(frames):
    gw = gateway(max_clients=2)
    for ident, requests in frames:
        before = gw.counters["bad_frame"]
        inflight_before = gw.sessions[ident].inflight if ident in gw.sessions else 0
        out = send(gw, ident, *requests)
        dropped = gw.counters["bad_frame"] - before
        assert len(out.writes) + len(out.reads) + len(out.replies) + dropped == len(requests)
        # Immediate answers are well formed and never write replies.
        for reply in out.replies:
            assert reply[0] == ident and len(reply) == 5 and reply[4] is False
            assert isinstance(reply[2], int)
        # Everything sent on to another actor is in flight and within the limit.
        routed = len(out.writes) + len(out.reads)
        if routed:
            session = gw.sessions[ident]
            assert session.inflight == inflight_before + routed <= MAX_INFLIGHT
        msgpack.packb(out.replies, use_bin_type=True)  # the driver can send them
    assert len(gw.sessions) <= 2


# --------------------------------------------------------- end to end, pure cores


def test_a_clients_reads_take_effect_in_the_order_it_sent_them():
    gw = gateway(max_inflight=10)
    log = ReplicatedLog(1, [1, 2, 3])
    log.campaign(Campaign(1))
    store = StoreCore(Tree())
    answered: list[list] = []

    def apply(ready) -> None:
        replies, _ = store.apply(ready.committed, log.commit_index, log.term)
        gw.on_replies(replies)
        answered.extend(replies)

    apply(log.on_message(VoteResponse(1, 2, True)))  # leader of term 1; NOOP is entry 1

    def to_log(writes: list) -> None:
        apply(log.propose(writes, 0))

    def release(member: int, index: int) -> None:
        """``member`` holds the log up to ``index`` durably."""
        if member == 1:
            apply(log.persisted(index, log.term_at(index)))
        else:
            apply(log.on_message(AppendResponse(log.term, member, True, index, 0, 0)))

    def frame(ident: bytes, *requests: list) -> None:
        out = send(gw, ident, *requests)
        to_log(out.writes)
        replies = store.read(out.reads)
        gw.on_replies(replies)
        answered.extend(out.replies + replies)

    hello(gw, A)
    hello(gw, B)
    frame(A, [1, "create", "/x", b"", 0])  # entry 2
    release(1, 2)
    release(2, 2)  # committed: A's write answered
    frame(A, [2, "set", "/x", b"a", -1])  # entry 3
    frame(B, [1, "set", "/x", b"b", -1])  # entry 4, another client's write
    frame(A, [3, "get", "/x"])  # queued in the log behind entries 3 and 4
    release(1, 4)
    release(2, 3)  # only entry 3 reaches a majority: A's set is answered
    frame(A, [4, "get", "/x"])  # A's held read is still in the log
    release(3, 4)  # entry 4 and A's queued read

    a_reads = [r for r in answered if r[0] == A and r[1] in (3, 4)]
    assert [r[1] for r in a_reads] == [3, 4]  # answered in the order sent
    versions = [r[3][1][4] for r in a_reads]
    assert versions == sorted(versions)  # a later read never sees an older state


def test_reads_are_refused_as_not_ready_without_a_live_leader():
    gw = gateway(serving_reads=False)
    hello(gw, A)
    assert reply_code(send(gw, A, [1, "get", "/"])) == int(Code.NOT_READY)
    # A refusal, not a bad request: counted for the metrics, never logged.
    assert gw.counters["not_ready"] == 1 and gw.take_first_seen() == []
    out = send(gw, A, [2, "create", "/a", b"", 0])
    assert len(out.writes) == 1  # writes still go to the log, which knows who leads
    gw.serving_reads = True
    assert len(send(gw, B, [3, "get", "/"]).reads) == 0  # B has no session
    hello(gw, B)
    assert send(gw, B, [4, "get", "/"]).reads == [[B, 4, "get", ["/"], FLOOR]]


def test_role_changes_show_in_status():
    gw = gateway()
    gw.on_role("follower", 3, 2, "tcp://127.0.0.1:2182")
    status = gw.status({"applied_index": 5, "commit_index": 7, "term": 1})
    assert (status["role"], status["term"], status["leader"]) == ("follower", 3, 2)
    assert status["leader_endpoint"] == "tcp://127.0.0.1:2182"
    assert status["lag"] == 2


def test_peer_rejections_reported_by_actors_show_in_status():
    gw = gateway()
    gw.on_peer_counters("log", {"unknown_peer": 2})
    gw.on_peer_counters("election", {"config_mismatch": 5})
    gw.on_peer_counters("log", {"unknown_peer": 3, "bad_message": 1})  # replaces, not adds
    assert gw.status({})["peer_rejected"] == {
        "election.config_mismatch": 5, "log.bad_message": 1, "log.unknown_peer": 3}


# ----------------------------------------------------------- at-most-once writes


def test_writes_of_a_client_with_an_id_are_tagged_with_its_seq():
    gw = gateway()
    out = send(gw, A, [0, "hello", PROTOCOL_VERSION, "tester", 12345])
    assert out.replies[0][2] == OK and out.replies[0][3]["dedup"] is True
    out = send(gw, A, [1, "set", "/a", b"v", -1, 7, 5], [2, "delete", "/b", -1, False, 8, 5])
    assert out.writes == [
        [A, 1, tag(12345, 7, 5, ["set", "/a", b"v", -1]), None],
        [A, 2, tag(12345, 8, 5, ["delete", "/b", -1, False]), None],
    ]


def test_a_seq_without_a_client_id_leaves_the_write_untagged():
    gw = gateway()
    hello(gw, A)
    out = send(gw, A, [1, "create", "/a", b"", 0, 1, 1])
    assert out.writes == [[A, 1, ["create", "/a", b"", 0], None]]


@pytest.mark.parametrize("request_", [
    [1, "set", "/a", b"", -1, -1, 0],
    [1, "set", "/a", b"", -1, 1, 2**63],
    [1, "set", "/a", b"", -1, 1],  # seq without ack_below
    [1, "set", "/a", b"", -1, "1", 1],
])
def test_bad_dedup_tags_are_refused(request_):
    gw = gateway()
    send(gw, A, [0, "hello", PROTOCOL_VERSION, "tester", 1])
    reply = only_reply(send(gw, A, request_))
    assert reply[2] == Code.BAD_ARGUMENTS


@pytest.mark.parametrize("client_id", [-1, 2**63, "x"])
def test_a_bad_client_id_is_refused_at_hello(client_id):
    gw = gateway()
    reply = only_reply(send(gw, A, [0, "hello", PROTOCOL_VERSION, "tester", client_id]))
    assert reply[2] == Code.BAD_ARGUMENTS
    assert A not in gw.sessions


# ---------------------------------------------------------------- sessions
CLIENT_ID = 0xC0FFEE


def hello_with_id(gw: GatewayCore, ident: bytes, client_id: int = CLIENT_ID,
                  now: int = 0) -> None:
    out = send(gw, ident, [0, "hello", PROTOCOL_VERSION, "tester", client_id], now=now)
    assert out.replies[0][2] == OK, out


def test_an_ephemeral_create_carries_its_owner_and_needs_one():
    gw = gateway()
    hello(gw, A)  # no client id: no session possible
    _, _, code, result, _ = only_reply(send(gw, A, [1, "create", "/e", b"", 4]))
    assert code == BAD_ARGUMENTS and "needs a session" in result
    hello_with_id(gw, B)
    out = send(gw, B, [1, "create", "/e", b"v", 4 | 2])
    assert out.writes[0][2] == ["create", "/e", b"v", 6, CLIENT_ID]


def test_a_session_timeout_outside_the_bounds_is_refused():
    gw = gateway(min_session_timeout_ms=1000, max_session_timeout_ms=5000)
    hello_with_id(gw, A)
    for timeout in (999, 5001, 0, -1):
        _, _, code, result, _ = only_reply(send(gw, A, [1, "session", timeout]))
        assert code == BAD_ARGUMENTS and "1000..5000" in result, timeout
    out = send(gw, A, [2, "session", 5000])
    assert out.writes[0][2] == ["session_open", CLIENT_ID, 5000]
    out = send(gw, A, [3, "endsession"])
    assert out.writes[0][2] == ["session_close", CLIENT_ID]


def test_sessions_heard_from_are_reported_once():
    gw = gateway()
    hello_with_id(gw, A)
    hello(gw, B)  # no id: nothing to report
    send(gw, A, [1, "ping"])
    send(gw, B, [1, "ping"])
    assert gw.take_touched() == [CLIENT_ID]
    assert gw.take_touched() == []


def test_a_client_saying_hello_with_its_id_is_heard_from():
    """A reconnect is a sign of life, and the requests sharing the hello's frame
    found no session to touch (the simulator found a session expired while its
    client reconnected and pinged in one frame, every time, at a new node)."""
    gw = gateway()
    hello_with_id(gw, A)
    assert gw.take_touched() == [CLIENT_ID]


def test_the_client_of_an_ended_session_hears_session_expired():
    gw = gateway()
    hello_with_id(gw, A)
    gw.on_sessions_ended([CLIENT_ID])
    for request in ([1, "ping"], [2, "get", "/"], [3, "create", "/x", b"", 0]):
        _, _, code, _, _ = only_reply(send(gw, A, request))
        assert code == int(Code.SESSION_EXPIRED), request
    hello_with_id(gw, A, client_id=CLIENT_ID + 1)  # a new session: served again
    assert reply_code(send(gw, A, [4, "ping"])) == OK


def test_a_multi_is_checked_operation_by_operation():
    gw = gateway()
    hello_with_id(gw, A)
    out = send(gw, A, [1, "multi", [["check", "/a", 0], ["create", "/b", b"", 4],
                                    ["set", "/a", b"x", -1], ["delete", "/a", 3]]])
    assert out.writes[0][2] == ["multi", [["check", "/a", 0],
                                          ["create", "/b", b"", 4, CLIENT_ID],
                                          ["set", "/a", b"x", -1],
                                          ["delete", "/a", 3, False]]]
    for bad in ([], [["rename", "/a"]], [["check", "/a"]], [["check", "a", 0]],
                [["set", "/a", "text", 0]], [["delete", "/a", True]], ["check"],
                [["create", "/x", b"", 8]], [["check", "/a", 0]] * 1001):
        _, _, code, _, _ = only_reply(send(gw, A, [2, "multi", bad]))
        assert code == BAD_ARGUMENTS, bad
