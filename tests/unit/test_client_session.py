"""The client's session core (zkactors.client.session), driven without sockets:
connecting and failing over, backing off when the whole ensemble is away, losing
the session, resending in the order taken (FIFO client order), and what it asks
of the sockets all along."""

from __future__ import annotations

import random

import pytest

from zkactors.client.session import (
    CONNECTED,
    LOST,
    SUSPENDED,
    Attached,
    Close,
    Connect,
    Request,
    Send,
    Session,
    Settle,
    StateChanged,
    ZkFuture,
)
from zkactors.errors import (
    Code,
    ConnectionClosedError,
    ConnectionLoss,
    NotReadyError,
    OperationTimeoutError,
)
from zkactors.protocol import (
    OP_BYE,
    OP_CREATE,
    OP_GET,
    OP_HELLO,
    OP_PING,
    encode_request,
    unpack,
)

pytestmark = pytest.mark.timeout(30)

NODES = ["tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3"]
LEADER = "tcp://127.0.0.1:9"
HELLO_OK = {"max_inflight": 64, "dedup": True, "node": 1, "watch": "tcp://127.0.0.1:7"}


class Wire:
    """Drives a Session and reads what it asks of the sockets."""

    def __init__(self, endpoints=NODES, connect_timeout=1.0, session_timeout=10.0,
                 seed=1, **kwargs):
        self.session = Session(list(endpoints), client_id=42, name="t",
                               connect_timeout=connect_timeout,
                               session_timeout=session_timeout,
                               rng=random.Random(seed), **kwargs)
        self.now = 100.0
        self.effects: list = []
        self.open: str | None = None  # the endpoint of the open socket, if any
        self.sent: list = []  # messages sent on the open socket, unpacked
        self.closed: list = []  # (endpoint, messages sent) of each socket closed

    def run(self) -> list:
        effects = self.session.take_effects()
        for effect in effects:
            if isinstance(effect, Connect):
                assert self.open is None, "a second socket opened without closing the first"
                self.open, self.sent = effect.endpoint, []
            elif isinstance(effect, Close):
                assert self.open is not None, "closed a socket that is not open"
                self.closed.append((self.open, self.sent))
                self.open = None
            elif isinstance(effect, Send):
                assert self.open is not None, "sent with no socket open"
                self.sent.extend(unpack(effect.frame))
        self.effects.extend(effects)
        return effects

    def start(self):
        self.session.start(self.now)
        return self.run()

    def hello_rid(self) -> int:
        hellos = [m for m in self.sent if m[1] == OP_HELLO]
        assert hellos, f"no hello sent on {self.open}"
        return hellos[-1][0]

    def answer_hello(self, code=Code.OK, result=HELLO_OK):
        self.reply(self.hello_rid(), code, result)

    def reply(self, rid, code=Code.OK, result=None, zxid=0):
        self.session.on_frame_replies([[rid, int(code), result, zxid]], self.now)
        self.session.after_replies(self.now)
        return self.run()

    def take(self, n=1, op=OP_CREATE, deadline=60.0) -> list[Request]:
        requests = []
        for _ in range(n):
            rid = next(self.session.rids)
            packed = b"" if op == OP_CREATE else _packed(rid, op)
            request = Request(rid, op, packed, ZkFuture(), lambda r: r, self.now + deadline,
                              f"/n{rid}", args=[f"/n{rid}", b"", 0])
            self.session.take(request)
            requests.append(request)
        self.session.flush()
        self.run()
        return requests

    def advance(self, seconds: float):
        self.now += seconds
        self.session.tick(self.now)
        return self.run()

    def link_down(self):
        self.session.on_link_down(self.now)
        return self.run()

    def sent_rids(self) -> list[int]:
        return [m[0] for m in self.sent if m[1] not in (OP_HELLO, OP_PING, OP_BYE)]

    def states(self) -> list[str]:
        return [e.state for e in self.effects if isinstance(e, StateChanged)]

    def connects(self) -> list[str]:
        return [e.endpoint for e in self.effects if isinstance(e, Connect)]


def _packed(rid, op):
    return encode_request(rid, op, f"/n{rid}")


def connected_wire(**kwargs) -> Wire:
    wire = Wire(**kwargs)
    wire.start()
    wire.answer_hello()
    assert wire.session.connected
    return wire


def settled(wire: Wire) -> dict[int, Settle]:
    return {e.request.rid: e for e in wire.effects if isinstance(e, Settle)}


# ------------------------------------------------------------ connecting
def test_connects_to_the_first_endpoint_and_says_hello():
    wire = Wire()
    wire.start()
    assert wire.open == NODES[0]
    hello = wire.sent[0]
    assert hello[1] == OP_HELLO and hello[-1] == 42  # our client id, for dedup
    wire.answer_hello()
    assert wire.states() == [CONNECTED]
    assert any(isinstance(e, Attached) for e in wire.effects)
    assert wire.session.watch_endpoint == HELLO_OK["watch"]


def test_a_refused_link_moves_to_the_next_endpoint_at_once():
    wire = Wire()
    wire.start()
    wire.link_down()
    assert wire.open == NODES[1]
    wire.link_down()
    assert wire.open == NODES[2]


def test_a_silent_node_is_given_connect_timeout_then_left():
    wire = Wire(connect_timeout=1.0)
    wire.start()
    wire.advance(0.9)
    assert wire.open == NODES[0]
    wire.advance(0.2)
    assert wire.open == NODES[1]


def test_a_node_refusing_hello_is_a_failed_attempt_and_its_reason_kept():
    wire = Wire()
    wire.start()
    wire.answer_hello(Code.PROTOCOL_VERSION, "speaks protocol 9")
    assert wire.open == NODES[1]
    assert "protocol 9" in str(wire.session.hello_error)


# ------------------------------------------------------------- backing off
def test_after_a_whole_round_fails_no_socket_is_open_until_the_pause_ends():
    wire = Wire(reconnect_base=0.1, reconnect_max=2.0)
    wire.start()
    for _ in NODES:
        wire.link_down()
    assert wire.open is None, "a socket kept open while backing off"
    pause = wire.session.reconnect_at - wire.now
    assert 0.05 <= pause <= 0.1  # the first round's pause, half of it jittered
    assert wire.session.next_wakeup(wire.now) == pytest.approx(wire.session.reconnect_at)
    wire.advance(pause - 0.01)
    assert wire.open is None
    wire.advance(0.02)
    assert wire.open == NODES[0]


def test_pauses_double_per_round_up_to_the_cap_with_jitter():
    wire = Wire(reconnect_base=0.1, reconnect_max=2.0)
    wire.start()
    pauses = []
    for _ in range(10):
        for _ in NODES:
            wire.link_down()
        pauses.append(wire.session.reconnect_at - wire.now)
        wire.advance(pauses[-1])
    for round_, pause in enumerate(pauses):
        cap = min(2.0, 0.1 * 2 ** round_)
        assert cap / 2 <= pause <= cap, (round_, pause)
    assert max(pauses[5:]) > 1.0  # reached the cap's range


def test_jitter_spreads_clients_that_failed_together():
    pauses = set()
    for seed in range(20):
        wire = Wire(seed=seed, reconnect_base=1.0, reconnect_max=1.0)
        wire.start()
        for _ in NODES:
            wire.link_down()
        pauses.add(round(wire.session.reconnect_at - wire.now, 3))
    assert len(pauses) > 10


def test_a_whole_minute_with_every_node_down_costs_few_attempts_and_wakeups():
    """The reconnect storm: 10,207 sockets in 3 s once. Now: bounded by the backoff."""
    wire = Wire(reconnect_base=0.1, reconnect_max=2.0)
    wire.start()
    start, wakeups = wire.now, 0
    for _ in range(200_000):  # (a storm would end the loop here, not the minute)
        if wire.now >= start + 60:
            break
        if wire.open is not None:
            wire.now += 0.001  # refused a millisecond later, as a port with nothing on it
            wire.link_down()
            continue
        wire.now = max(wire.now, wire.session.next_wakeup(wire.now))
        wire.session.tick(wire.now)
        wire.run()
        wakeups += 1
    assert wire.now >= start + 60
    attempts = len(wire.connects())
    assert attempts <= 3 * 60, attempts  # rounds ~1-2 s apart once capped
    assert wakeups <= 100, wakeups  # a wake-up per round, and the session lost
    assert wire.states()[-1] == LOST


def test_losing_the_connected_node_fails_over_at_once_not_after_a_pause():
    wire = connected_wire()
    wire.session.failed_attempts = 0
    wire.link_down()
    assert wire.open == NODES[1]
    assert wire.states() == [CONNECTED, SUSPENDED]


def test_success_resets_the_backoff():
    wire = Wire(reconnect_base=0.1, reconnect_max=2.0)
    wire.start()
    for _ in range(5):
        for _ in NODES:
            wire.link_down()
        wire.advance(wire.session.reconnect_at - wire.now)
    wire.answer_hello()
    assert wire.session.failed_attempts == 0
    for _ in NODES:
        wire.link_down()
    assert wire.session.reconnect_at - wire.now <= 0.1


def test_an_idle_connected_session_wakes_only_to_ping():
    wire = connected_wire(connect_timeout=1.0)
    assert wire.session.next_wakeup(wire.now) >= wire.now + 1.0
    wire.advance(1.1)
    assert any(m[1] == OP_PING for m in wire.sent)
    ping = next(m for m in wire.sent if m[1] == OP_PING)
    wire.reply(ping[0])
    assert wire.session.connected


def test_an_unanswered_ping_means_the_node_is_gone():
    wire = connected_wire(connect_timeout=1.0)
    wire.advance(1.1)
    wire.advance(1.1)
    assert wire.open == NODES[1]
    assert wire.states()[-1] == SUSPENDED


# ---------------------------------------------------------------- losing
def test_suspended_longer_than_the_session_timeout_is_lost_and_requests_fail():
    wire = connected_wire(session_timeout=5.0)
    reads = wire.take(2, op=OP_GET)
    for _ in range(3):
        wire.link_down()
    for _ in range(200):  # 10 s at most
        wire.advance(0.05)
        if LOST in wire.states():
            break
    assert wire.states() == [CONNECTED, SUSPENDED, LOST]
    outcome = settled(wire)
    assert all(isinstance(outcome[r.rid].error, ConnectionLoss) for r in reads)


def test_a_lost_session_keeps_trying_and_connects_again():
    wire = connected_wire(session_timeout=1.0)
    for _ in range(100):
        if wire.open is not None:
            wire.link_down()
        wire.advance(0.1)
        if LOST in wire.states():
            break
    for _ in range(100):
        if wire.open is not None:
            break
        wire.advance(0.1)
    wire.answer_hello()
    assert wire.states()[-1] == CONNECTED


def test_stop_says_bye_closes_gently_and_fails_what_waits():
    wire = connected_wire()
    pending = wire.take(1, op=OP_GET)
    wire.session.stop()
    effects = wire.run()
    assert any(m[1] == OP_BYE for m in wire.sent)
    assert Close(linger=True) in effects
    assert isinstance(settled(wire)[pending[0].rid].error, ConnectionClosedError)
    assert wire.open is None


def test_stop_while_backing_off_closes_nothing_twice():
    wire = Wire()
    wire.start()
    for _ in NODES:
        wire.link_down()
    wire.session.stop()
    assert not [e for e in wire.run() if isinstance(e, Close)]


def test_requests_time_out_while_not_connected():
    wire = Wire()
    wire.start()
    (request,) = wire.take(1, op=OP_GET, deadline=0.5)
    for _ in NODES:
        wire.link_down()
    wire.advance(0.6)
    assert isinstance(settled(wire)[request.rid].error, OperationTimeoutError)


# ------------------------------------------------------- replies, redirects
def test_a_reply_settles_its_request_with_the_zxid():
    wire = connected_wire()
    (request,) = wire.take(1, op=OP_GET)
    wire.reply(request.rid, Code.OK, [b"v"], zxid=77)
    outcome = settled(wire)[request.rid]
    assert outcome.value == [b"v"] and outcome.zxid == 77
    assert wire.session.last_zxid == 77


def test_not_leader_moves_to_the_leader_once_what_is_in_flight_is_answered():
    wire = connected_wire()
    first, second = wire.take(2)
    wire.reply(first.rid, Code.NOT_LEADER, LEADER)
    assert wire.open == NODES[0]  # the second is still in flight here
    wire.reply(second.rid, Code.NOT_LEADER, LEADER)
    assert wire.open == LEADER
    endpoint, sent_there = wire.closed[-1]
    assert endpoint == NODES[0] and sent_there[-1][1] == OP_BYE  # ended there first
    wire.answer_hello()
    assert wire.sent_rids() == [first.rid, second.rid]


def test_an_unanswered_write_fails_against_a_node_that_does_not_deduplicate():
    wire = Wire()
    wire.start()
    wire.answer_hello(result={**HELLO_OK, "dedup": False})
    (write,) = wire.take(1)
    wire.link_down()
    assert isinstance(settled(wire)[write.rid].error, ConnectionLoss)


def test_every_write_carries_its_seq_and_the_lowest_unsettled_one():
    wire = connected_wire()
    first, second = wire.take(2)
    tags = {m[0]: m[-2:] for m in wire.sent if m[1] == OP_CREATE}
    assert tags == {first.rid: [1, 1], second.rid: [2, 1]}


# ------------------------------------------------- FIFO across resends
def test_writes_redirected_by_not_leader_go_again_in_the_order_taken():
    wire = connected_wire()
    sent = wire.take(4)
    wire.session.max_inflight = 4
    later = wire.take(2)
    # The node answers each with the leader's address, in order: each goes back
    # ahead of what waits — and must not come out reversed (it did: appendleft).
    for request in sent:
        wire.reply(request.rid, Code.NOT_LEADER, LEADER)
    assert wire.open == LEADER
    wire.answer_hello()
    assert wire.sent_rids() == [r.rid for r in sent + later]


def test_a_lost_connection_resends_in_order_among_those_waiting():
    wire = connected_wire()
    wire.session.max_inflight = 3
    sent = wire.take(3)
    later = wire.take(3)
    wire.link_down()
    wire.answer_hello(result={**HELLO_OK, "max_inflight": 3})
    assert wire.sent_rids() == [r.rid for r in sent + later][:3]
    for request in sent:
        wire.reply(request.rid, Code.OK, "/x")
    assert wire.sent_rids() == [r.rid for r in sent + later]


def test_nothing_overtakes_a_request_waiting_out_a_retry_delay():
    wire = connected_wire()
    (first,) = wire.take(1)
    wire.reply(first.rid, Code.NOT_READY, "no leader yet")
    second, read = *wire.take(1), *wire.take(1, op=OP_GET)
    assert wire.sent_rids() == [first.rid]  # the write and the read behind it stay put
    wire.advance(0.1)  # once due, it goes first, then the rest, in order
    assert wire.sent_rids() == [first.rid, first.rid, second.rid, read.rid]


def test_throttled_requests_keep_their_place():
    wire = connected_wire()
    sent = wire.take(3)
    for request in reversed(sent):
        wire.session.on_frame_replies([[request.rid, int(Code.THROTTLED), "busy", 0]], wire.now)
    wire.session.after_replies(wire.now)
    wire.run()
    assert wire.sent_rids() == [r.rid for r in sent] * 2


def test_a_cancelled_request_is_not_sent():
    wire = connected_wire()
    wire.session.max_inflight = 1
    first, second = wire.take(2, op=OP_GET)
    assert second.future.cancel()
    wire.reply(first.rid, Code.OK, [b"v"])
    assert wire.sent_rids() == [first.rid]


# ------------------------------------------------------------ sessions
def take_ephemeral(wire: Wire, path: str = "/e") -> Request:
    rid = next(wire.session.rids)
    request = Request(rid, OP_CREATE, b"", ZkFuture(), lambda r: r, wire.now + 60, path,
                      args=[path, b"", 4])
    wire.session.take(request)
    wire.session.flush()
    wire.run()
    return request


def session_wire(**kwargs) -> Wire:
    kwargs.setdefault("session_timeout", 5.0)
    wire = Wire(open_session=True, **kwargs)
    wire.start()
    wire.answer_hello(result={**HELLO_OK, "session_bounds_ms": [1000, 4000]})
    return wire


def opens(wire: Wire) -> list:
    return [m for m in wire.sent if m[1] == "session"]


def test_the_first_ephemeral_opens_the_session_first_within_the_bounds():
    wire = Wire(open_session=True, session_timeout=5.0)
    wire.start()
    wire.take(1)  # a plain create: no session needed, none opened
    take_ephemeral(wire)  # taken before the hello is even answered
    take_ephemeral(wire, "/f")
    wire.answer_hello(result={**HELLO_OK, "session_bounds_ms": [1000, 4000]})
    assert [m[1] for m in wire.sent if m[1] != OP_HELLO] == \
        [OP_CREATE, "session", OP_CREATE, OP_CREATE]
    assert opens(wire)[0][2] == 4000  # 5 s asked, 4 s the most granted
    assert wire.session.session_id is None
    wire.reply(opens(wire)[0][0], Code.OK, 4000)
    assert wire.session.session_id == 42
    take_ephemeral(wire, "/g")
    assert len(opens(wire)) == 1  # open already


def test_a_client_that_only_reads_opens_no_session():
    wire = session_wire()
    wire.take(3, op=OP_GET)
    assert opens(wire) == [] and wire.session.session_id is None


def opened(wire: Wire) -> None:
    create = take_ephemeral(wire)
    wire.reply(opens(wire)[-1][0], Code.OK, 4000)
    wire.reply(create.rid, Code.OK, "/e")
    assert wire.session.session_id == wire.session.client_id


def test_an_ended_session_is_lost_then_a_new_id_opens_the_next_one():
    wire = session_wire()
    opened(wire)
    waiting = wire.take(2, op=OP_GET)
    wire.reply(waiting[0].rid, Code.SESSION_EXPIRED, "session 0x2a has ended")
    assert wire.states()[-1] == LOST
    outcome = settled(wire)
    assert all(type(outcome[r.rid].error).__name__ == "SessionExpiredError" for r in waiting)
    assert wire.session.session_id is None and wire.session.client_id != 42
    hello = [m for m in wire.sent if m[1] == OP_HELLO][-1]
    assert hello[-1] == wire.session.client_id  # said hello again, under the new id
    wire.answer_hello(result={**HELLO_OK, "session_bounds_ms": [1000, 4000]})
    assert wire.states()[-1] == CONNECTED
    take_ephemeral(wire, "/again")
    new_open = opens(wire)[-1]
    assert new_open[-2:] == [1, 1]  # seq 1 again: a fresh dedup sequence
    wire.reply(new_open[0], Code.OK, 4000)
    assert wire.session.session_id == wire.session.client_id


def test_a_session_client_takes_a_node_that_serves_no_one_for_a_failed_attempt():
    wire = Wire(open_session=True)
    wire.start()
    wire.answer_hello(result={**HELLO_OK, "serving": False})
    assert not wire.session.connected and CONNECTED not in wire.states()
    assert isinstance(wire.session.hello_error, NotReadyError)
    assert wire.open == NODES[1]  # on to the next at once
    wire.answer_hello(result={**HELLO_OK, "serving": True})
    assert wire.states() == [CONNECTED]


def test_a_ping_refused_for_want_of_a_leader_suspends_a_session_client():
    wire = session_wire(connect_timeout=1.0)
    wire.advance(1.1)
    ping = [m for m in wire.sent if m[1] == OP_PING][-1]
    wire.reply(ping[0], Code.NOT_READY, "no live leader known here")
    assert wire.states() == [CONNECTED, SUSPENDED]
    assert wire.open == NODES[1]
    wire.answer_hello(result={**HELLO_OK, "serving": False})  # that one has none either
    assert wire.open == NODES[2] and wire.states()[-1] == SUSPENDED
    wire.answer_hello()
    assert wire.states() == [CONNECTED, SUSPENDED, CONNECTED]


def test_a_client_without_sessions_stays_with_a_node_that_serves_no_one():
    # (zkctl asks such a node for its status: it must be able to connect.)
    wire = Wire()
    wire.start()
    wire.answer_hello(result={**HELLO_OK, "serving": False})
    assert wire.session.connected
    wire.advance(1.1)
    ping = [m for m in wire.sent if m[1] == OP_PING][-1]
    wire.reply(ping[0], Code.NOT_READY, "no live leader known here")
    assert wire.session.connected and wire.open == NODES[0]


def test_a_ping_answered_session_expired_ends_the_session_too():
    wire = session_wire(connect_timeout=1.0)
    opened(wire)
    wire.advance(1.4)  # a third of the 4 s granted
    ping = [m for m in wire.sent if m[1] == OP_PING][-1]
    wire.reply(ping[0], Code.SESSION_EXPIRED, "ended")
    assert wire.states()[-1] == LOST and wire.session.client_id != 42


def test_idle_pings_come_at_a_third_of_the_session_timeout():
    wire = Wire(open_session=True, session_timeout=1.5, connect_timeout=5.0)
    wire.start()
    wire.answer_hello()
    wire.advance(0.45)
    assert not [m for m in wire.sent if m[1] == OP_PING]
    wire.advance(0.1)
    assert [m for m in wire.sent if m[1] == OP_PING]


def test_a_refused_session_is_not_retried_forever():
    wire = session_wire()
    first = take_ephemeral(wire)
    wire.reply(opens(wire)[0][0], Code.BAD_ARGUMENTS, "timeout outside 1000..4000 ms")
    wire.reply(first.rid, Code.SESSION_EXPIRED, "session is not open")
    assert "outside" in str(settled(wire)[first.rid].error)
    second = take_ephemeral(wire, "/f")  # refused at once, nothing sent
    assert "outside" in str(settled(wire)[second.rid].error)
    assert LOST not in wire.states() and len(opens(wire)) == 1


def test_a_session_taken_for_lost_locally_is_renewed_on_reconnection():
    wire = session_wire(session_timeout=2.0)
    opened(wire)
    for _ in range(100):
        if wire.open is not None:
            wire.link_down()
        wire.advance(0.1)
        if LOST in wire.states():
            break
    assert wire.session.session_id is None and wire.session.client_id != 42


def test_with_a_session_open_idle_pings_come_at_a_third_of_the_granted_timeout():
    wire = session_wire(connect_timeout=1.0, session_timeout=9.0)
    create = take_ephemeral(wire)
    wire.reply(opens(wire)[-1][0], Code.OK, 9000)
    wire.reply(create.rid, Code.OK, "/e")
    wire.advance(2.9)
    assert not [m for m in wire.sent if m[1] == OP_PING]  # not at connect_timeout
    wire.advance(0.2)
    assert [m for m in wire.sent if m[1] == OP_PING]
