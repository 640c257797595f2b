"""The supervisor: an actor that dies takes the whole node down, loudly; a node that
cannot start says why in one line and exits at once; `zkctl up` is all or nothing."""

import json
import socket
import subprocess
import threading
import time

import pytest
import zmq

from tests.integration.cluster import (
    ZKNODE,
    NodeProcess,
    write_config,
    write_ensemble,
    zkctl,
)
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


@pytest.mark.parametrize("endpoint", ["client", "peer", "election", "watch"])
def test_a_port_in_use_fails_the_start_fast_with_one_line_naming_it(tmp_path, endpoint):
    config = write_config(tmp_path)
    address = config.read_text().split(f"{endpoint} = ", 1)[1].split()[0]
    port = int(address.rsplit(":", 1)[1])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        started = time.monotonic()
        proc = subprocess.run([*ZKNODE, str(config)], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL, check=False)
        took = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("zknode: ")]
    assert line == (f"zknode: cannot listen on {address} ({endpoint} of [member.1] in "
                    f"{config}): Address already in use")
    assert took < 2.0 + 1.5  # the node's own limit, plus starting Python here


def test_zkctl_up_is_all_or_nothing(tmp_path):
    paths = write_ensemble(tmp_path, 3)
    taken_address = paths[0].read_text().split("[member.2]", 1)[1].split("peer = ", 1)[1].split()[0]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(taken_address.rsplit(":", 1)[1])))
        taken.listen()
        up = zkctl("--conf", str(tmp_path), "up", timeout=60)
    try:
        assert up.returncode == 1
        assert up.stderr.strip().splitlines()[-1] == (
            f"zkctl: EnsembleError: node 2 failed to start (exit code 2): cannot listen on "
            f"{taken_address} "
            f"(peer of [member.2] in {paths[1]}): Address already in use")
        # What it started, it stopped: no node left running, no pid file left.
        for n in (1, 2, 3):
            assert not (tmp_path / f"data{n}" / "zknode.pid").exists()
        status = json.loads(zkctl("--conf", str(tmp_path), "--timeout", "1", "status",
                                  "--json").stdout)
        assert [row["role"] for row in status] == ["down", "down", "down"]
    finally:
        zkctl("--conf", str(tmp_path), "down")


def test_a_wal_held_by_another_node_fails_the_start_with_one_line(tmp_path):
    config = write_config(tmp_path)
    first = NodeProcess(config).start()
    try:
        proc = subprocess.run([*ZKNODE, str(config)], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL, check=False)
    finally:
        first.stop()
    assert proc.returncode == 2
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("zknode: ")]
    assert "is in use by another WriteAheadLog" in line


def test_a_data_dir_that_cannot_be_made_fails_the_start_with_one_line(tmp_path):
    (tmp_path / "blocker").write_text("a file where the data dir should go")
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("data_dir = data1", "data_dir = blocker/data1"))
    proc = subprocess.run([*ZKNODE, str(config)], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 2
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("zknode: ")]
    assert "blocker/data1" in line
