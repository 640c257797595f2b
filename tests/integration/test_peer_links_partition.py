"""Peer links (``zkactors.runtime.transport``) behind a real partition: two
``PeerLinks`` in two network namespaces start behind a cut, then it heals.

What it guards: once a heartbeat has closed a link across a cut (or when a node
starts behind one), ZeroMQ connects afresh and the cut drops the SYN. Left to the
kernel, that one connect waits in SYN-SENT while the SYN is resent at growing
intervals (seen here: 12 s apart after half a minute), so the link came back
seconds, after a long cut tens of seconds, after the heal, and the node stayed
unheard all that while: the chaos soaks of session 7 showed nodes silent for
48–212 s. ``CONNECT_TIMEOUT_MS`` gives such a connect up and starts another, so no
connect is ever old, and the link is back within moments of the heal.

The test reads the kernel's own count of SYNs resent for each pending connect
(``ss``), which does not depend on how fast this machine is.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zkactors.chaos.netns import Network

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]

REPO = Path(__file__).resolve().parents[2]
#: Long enough for the kernel to resend a dropped SYN several times (after about
#: 1, 2 and 4 s), were a connect left to it.
CUT_S = 5.0
#: A connect given up after ``CONNECT_TIMEOUT_MS`` resends its SYN at most once.
MOST_RESENT = 1
_RESENT = re.compile(r"timer:\(on,[^,]+,(\d+)\)")

PEER = """
import sys, time, zmq
sys.path.insert(0, sys.argv[5])
from zkactors.core.messages import Heartbeat
from zkactors.runtime.transport import PeerLinks
me, mine, peer, theirs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
links = PeerLinks(zmq.Context(), me, f"tcp://{mine}:2888", {peer: f"tcp://{theirs}:2888"},
                  "fingerprint")
last_heard = None
deadline = time.monotonic() + 80
beat = 0
while time.monotonic() < deadline:
    now = time.monotonic()
    links.maintain(int(now * 1000))
    beat += 1
    links.send(peer, Heartbeat(1, me, beat))
    if links.receive(100):
        if last_heard is None:
            print("heard", now, flush=True)
        last_heard = now
    links.router.poll(20)  # the next tick: at once if a peer speaks, else in 20 ms
"""


def _next_line(proc: subprocess.Popen, timeout: float) -> list[str]:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"node's peer process said nothing for {timeout} s"
    return proc.stdout.readline().split()


def _syns_resent(net: Network, node: int) -> list[int]:
    """How often the kernel has resent the SYN of each of ``node``'s pending connects."""
    listing = subprocess.run([*net.exec_prefix(node), "ss", "-tnoH", "state", "syn-sent"],
                             capture_output=True, text=True, check=True, timeout=10).stdout
    return [int(found) for found in _RESENT.findall(listing)]


def test_no_connect_waits_on_the_kernel_behind_a_cut_and_links_are_back_at_the_heal():
    with Network("pln1", [1, 2], subnet="10.213.248.0/24") as net:
        addresses = {1: net.address(1), 2: net.address(2)}
        net.cut(1, 2)
        peers = {node: subprocess.Popen(
            [*net.exec_prefix(node), sys.executable, "-c", PEER, str(node), addresses[node],
             str(3 - node), addresses[3 - node], str(REPO)],
            stdout=subprocess.PIPE, text=True) for node in (1, 2)}
        try:
            time.sleep(CUT_S)  # the fault itself: its length is what is tested
            for node in peers:
                resent = _syns_resent(net, node)
                assert max(resent, default=0) <= MOST_RESENT, \
                    f"node {node} has a connect whose SYN was resent {max(resent)} times"
            net.heal()
            for proc in peers.values():
                assert _next_line(proc, 10)[0] == "heard"
        finally:
            for proc in peers.values():
                proc.kill()
                proc.wait(timeout=10)
