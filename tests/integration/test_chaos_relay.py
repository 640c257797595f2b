"""The chaos harness's delaying relay (``zkactors.chaos.relay``): the kernel has no
netem, so a node's connections to its peers pass through a relay in its own
namespace, which can hold what the node says to one peer back.

These tests use the real namespaces and nftables rules of a chaos run, and plain
TCP: a one-line echo server in one namespace, a client in another.
"""

import os
import subprocess
import sys

import pytest

from zkactors.chaos.netns import Network
from zkactors.chaos.relay import Relay, Relays

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]

PEER_PORT = 2881
ECHO = f"""
import socket
server = socket.create_server(("0.0.0.0", {PEER_PORT}))
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)
"""
PING = f"""
import socket, sys, time
start = time.monotonic()
try:
    with socket.create_connection((sys.argv[1], {PEER_PORT}), timeout=10) as conn:
        conn.sendall(b"ping")
        reply = conn.recv(16)
except OSError as err:
    reply = type(err).__name__.encode()
print(reply.decode() or "(closed)", round(time.monotonic() - start, 3))
"""


def _ping(net: Network, node: int, peer: int) -> tuple[str, float]:
    done = subprocess.run([*net.exec_prefix(node), sys.executable, "-c", PING,
                           net.address(peer)], capture_output=True, text=True, timeout=30,
                          check=True)
    reply, elapsed = done.stdout.rsplit(maxsplit=1)
    return reply, float(elapsed)


@pytest.fixture
def pair(tmp_path):
    with Network("rly1", [1, 2], subnet="10.213.249.0/24") as net:
        relays = Relays(net, tmp_path)
        echo = subprocess.Popen([*net.exec_prefix(2), sys.executable, "-c", ECHO],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert echo.stdout.readline().strip() == "ready"
            relays.start(ports=(PEER_PORT,))
            yield net, relays
        finally:
            echo.kill()
            echo.wait(timeout=10)
            relays.close()


def test_what_a_node_says_to_a_peer_passes_its_relay_and_waits_for_the_delay(pair):
    net, relays = pair
    assert _ping(net, 1, 2)[0] == "ping"
    assert relays.ask(1, {})["connections"] == 1  # the redirect took it to the relay
    relays.delay(1, 2, 400)
    reply, elapsed = _ping(net, 1, 2)
    assert reply == "ping" and elapsed >= 0.4
    assert relays.ask(1, {})["delayed_chunks"] >= 1
    relays.clear()
    assert relays.ask(1, {})["delays"] == {}


def test_cuts_still_cut_what_goes_through_the_relay(pair):
    net, relays = pair
    net.cut(1, 2)
    reply, _ = _ping(net, 1, 2)
    assert reply == "(closed)"  # the relay could not reach the peer, and hung up
    assert relays.ask(1, {})["failed_connects"] == 1
    net.heal()
    assert _ping(net, 1, 2)[0] == "ping"


def test_bytes_keep_their_order_however_the_jitter_falls():
    relay = Relay()
    relay.delays["10.0.0.2"] = (10.0, 500.0)
    dues, last = [], 0.0
    for step in range(200):
        last = relay.due("10.0.0.2", step * 0.001, last)
        dues.append(last)
    assert dues == sorted(dues)
    assert all(d >= 0.010 + i * 0.001 for i, d in enumerate(dues))
    assert relay.due("10.0.0.3", 5.0, 0.0) == 5.0  # no delay for other peers


def test_a_bad_control_command_is_refused_with_a_reason():
    relay = Relay()
    with pytest.raises(ValueError, match="negative"):
        relay.command({"delay": {"10.0.0.2": [-1, 0]}})
    assert relay.command({"delay": {"10.0.0.2": [5, 1]}})["delays"] == {"10.0.0.2": [5.0, 1.0]}
