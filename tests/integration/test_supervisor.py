"""The supervisor: an actor that dies takes the whole node down, loudly."""

import threading

import pytest
import zmq

from tests.integration.cluster import write_config
from zkactors.config import load_node_config
from zkactors.protocol import pack
from zkactors.runtime.actor import inbox_address
from zkactors.runtime.node import Node

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("actor", ["store", "log", "gateway", "watch"])
def test_a_dying_actor_stops_the_node_with_a_nonzero_code(tmp_path, actor):
    node = Node(load_node_config(write_config(tmp_path)))
    node.start()
    result = {}
    waiter = threading.Thread(target=lambda: result.update(code=node.wait()))
    waiter.start()
    poison = node.context.socket(zmq.PUSH)
    poison.linger = 0
    poison.connect(inbox_address(node.config.node_id, actor))
    poison.send(pack(["no-such-message-kind"]))
    poison.close()  # before the node terms its context, which waits for every socket
    waiter.join(10)
    assert not waiter.is_alive()
    assert result["code"] == 1
    victim = next(a for a in node.actors if a.actor_name == actor)
    assert isinstance(victim.error, RuntimeError)
    assert not any(a.is_alive() for a in node.actors)
