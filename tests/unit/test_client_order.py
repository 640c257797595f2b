"""The client agent sends requests back in the order it took them (FIFO client
order), whatever sends them back: NOT_LEADER redirects, a lost connection, retry
delays, throttling. The agent is driven by hand here, its thread never started."""

from __future__ import annotations

import queue
import time

import pytest
import zmq

from zkactors.client.agent import Agent, Request, ZkFuture
from zkactors.errors import Code
from zkactors.protocol import OP_CREATE, OP_GET

pytestmark = pytest.mark.timeout(30)

LEADER = "tcp://127.0.0.1:9"


@pytest.fixture
def agent():
    agent = Agent(["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"], zmq.Context.instance(),
                  queue.SimpleQueue(), lambda state: None, connect_timeout=1.0,
                  session_timeout=10.0, name="order-test")
    agent.endpoint_index = 0
    agent.dedup = True
    yield agent
    agent.pipe.close(linger=0)


def take(agent: Agent, n: int, op: str = OP_CREATE) -> list[Request]:
    requests = []
    for _ in range(n):
        rid = next(agent.rids)
        request = Request(rid, op, b"", ZkFuture(), lambda r: r, time.monotonic() + 60,
                          f"/n{rid}", args=[f"/n{rid}", b"", 0])
        agent._take(request)
        requests.append(request)
    return requests


def send_all(agent: Agent, requests: list[Request]) -> None:
    """As _send_waiting does, without a socket."""
    for request in requests:
        agent.waiting.remove(request)
        agent.inflight[request.rid] = request
        request.attempts += 1


def test_writes_redirected_by_not_leader_go_again_in_the_order_taken(agent):
    sent = take(agent, 4)
    later = take(agent, 2)
    send_all(agent, sent)
    # The node answers each with the leader's address, in order: each goes back
    # ahead of what waits — and must not come out reversed (it did: appendleft).
    for request in sent:
        agent._resolve(agent.inflight.pop(request.rid), Code.NOT_LEADER, LEADER)
    assert [r.rid for r in agent.waiting] == [r.rid for r in sent + later]


def test_a_lost_connection_resends_in_order_among_those_waiting(agent):
    sent = take(agent, 3)
    later = take(agent, 3)
    send_all(agent, [sent[0], sent[2]])
    agent.waiting.remove(sent[1])
    agent._requeue([sent[1]])  # (a redirect made it wait meanwhile)
    agent._connect_next = lambda: None  # no socket: only the queues are looked at
    agent._lose_connection(time.monotonic())
    assert [r.rid for r in agent.waiting] == [r.rid for r in sent + later]


def test_nothing_overtakes_a_request_waiting_out_a_retry_delay(agent):
    first, second, read = *take(agent, 2), *take(agent, 1, op=OP_GET)
    send_all(agent, [first])
    agent._resolve(agent.inflight.pop(first.rid), Code.NOT_READY, "no leader yet")
    assert agent.delayed and agent.delayed[0][1] is first

    class NoSocket:
        def send(self, frame):
            raise AssertionError("sent past a delayed write")

    agent.dealer, agent.connected = NoSocket(), True
    agent._send_waiting()  # the write and the read behind it stay put
    assert [r.rid for r in agent.waiting] == [second.rid, read.rid]
    agent.connected = False  # once due, it goes back to the front, in order
    agent._connect_next = lambda: None
    agent._tick(time.monotonic() + 1)
    assert [r.rid for r in agent.waiting] == [first.rid, second.rid, read.rid]


def test_throttled_requests_keep_their_place(agent):
    sent = take(agent, 3)
    send_all(agent, sent)
    for request in reversed(sent):
        agent._resolve(agent.inflight.pop(request.rid), Code.THROTTLED, "busy")
    assert [r.rid for r in agent.waiting] == [r.rid for r in sent]
