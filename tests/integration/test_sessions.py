"""Sessions and ephemeral znodes with real processes: clients killed, frozen and
stopped, a leader killed; every node must agree on when a session ended."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.integration.cluster import REPO, Ensemble, wait_for
from tests.integration.test_bad_input import RawConnection
from zkactors.client import Client, KazooState
from zkactors.errors import BadArgumentsError, Code, NoChildrenForEphemeralsError
from zkactors.protocol import PROTOCOL_VERSION

pytestmark = pytest.mark.timeout(120)

#: A client process that creates ephemeral nodes, says so, and waits to be killed,
#: printing every connection state it goes through.
HOLDER = """
import json, sys, threading
from zkactors.client import Client
hosts, timeout, paths = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
client = Client(hosts, timeout=timeout)
client.add_listener(lambda state: print(json.dumps({"state": state}), flush=True))
client.start()
for path in paths:
    client.create(path, b"held", ephemeral=True)
print(json.dumps({"ready": client.client_id[0]}), flush=True)
threading.Event().wait()  # holds its session until killed
"""


class Holder:
    """A client process holding ephemeral nodes (stopped by its PID after the test)."""

    def __init__(self, hosts: str, timeout: float, *paths: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, hosts, str(timeout), *paths],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     cwd=REPO)
        self.lines: list[dict] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.ready.wait(30), self.proc.stderr.read() if self.proc.poll() else "slow"
        self.session = next(line["ready"] for line in self.lines if "ready" in line)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))
            if "ready" in self.lines[-1]:
                self.ready.set()

    def states(self) -> list[str]:
        return [line["state"] for line in self.lines if "state" in line]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def ensemble(tmp_path):
    ensemble = Ensemble(tmp_path).start()
    yield ensemble
    ensemble.stop()


def on_every_node(ensemble: Ensemble, check) -> bool:
    """``check(client)`` holds on every live node, each asked on its own."""
    for node in ensemble.nodes.values():
        if node.proc is None or node.proc.poll() is not None:
            continue
        with Client(node.client_endpoint, session=False) as client:
            if not check(client):
                return False
    return True


def test_a_killed_clients_ephemerals_go_within_its_timeout_on_every_node(ensemble):
    with Client(ensemble.hosts) as watcher:
        deleted = threading.Event()
        watcher.ensure_path("/svc")
        holder = Holder(ensemble.hosts, 2.0, "/svc/a", "/svc/b")
        try:
            stat = watcher.exists("/svc/a", watch=lambda event: deleted.set())
            assert stat.ephemeralOwner == holder.session
            killed = time.monotonic()
            holder.kill()
            assert deleted.wait(2.0 + 3.0), "the watcher never saw the ephemeral go"
            gone = time.monotonic() - killed
        finally:
            holder.kill()
        wait_for(lambda: on_every_node(ensemble, lambda c: c.get_children("/svc") == []),
                 5, "every node to drop the ephemerals")
    # Within the timeout plus a second (touch interval, expiry check, commit).
    assert gone <= 2.0 + 1.0, gone


def test_stop_ends_the_session_and_its_ephemerals_at_once(ensemble):
    client = Client(ensemble.hosts, timeout=30.0)
    client.start()
    client.create("/lock", b"", ephemeral=True)
    client.create("/seq-", b"", ephemeral=True, sequence=True)
    session = client.client_id[0]
    with Client(ensemble.hosts) as other:
        assert other.exists("/lock").ephemeralOwner == session
        started = time.monotonic()
        client.stop()
        # Not a 30 s expiry: the close is a transaction of its own, committed now.
        assert other.get_children("/") == []
        assert time.monotonic() - started < 3.0
        # ('other' only reads: it opened no session.)
        assert other.server_status()["sessions"] == 0


def test_a_leader_kill_expires_no_healthy_session(ensemble):
    leader = ensemble.wait_for_leader()
    holder = Holder(ensemble.hosts, 2.0, "/alive")
    try:
        ensemble.nodes[leader].kill9()
        new_leader = ensemble.wait_for_leader(exclude=leader)
        # Three timeouts on: a new leader gives every session a full timeout, and
        # the holder's pings reach it through whichever node it is on.
        deadline = time.monotonic() + 3 * 2.0
        with Client(ensemble.nodes[new_leader].client_endpoint, session=False) as client:
            while time.monotonic() < deadline:
                stat = client.exists("/alive")
                assert stat is not None and stat.ephemeralOwner == holder.session
                time.sleep(0.2)  # the point: sampled for three timeouts, never gone
        assert KazooState.LOST not in holder.states(), holder.states()
    finally:
        holder.kill()


def test_a_session_client_is_suspended_while_no_node_it_reaches_knows_a_leader(ensemble):
    """As with ZooKeeper: a node that knows no live leader cannot keep a session
    alive, so a session client that reaches only such a node stays SUSPENDED (it
    does not settle there as CONNECTED), and is CONNECTED again once the ensemble
    is back, its session and ephemerals kept."""
    leader = ensemble.wait_for_leader()
    survivor = ensemble.a_follower(leader)
    others = [node for node in ensemble.nodes.values() if node is not survivor]
    holder = Holder(survivor.client_endpoint, 6.0, "/kept")  # (redirected to the leader)
    try:
        for node in others:
            node.proc.send_signal(signal.SIGSTOP)
        wait_for(lambda: KazooState.SUSPENDED in holder.states(), 8.0, "SUSPENDED")
        # The survivor answers, but knows no leader: no CONNECTED there, however
        # often the client tries it (several rounds within this time).
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            assert holder.states()[-1] == KazooState.SUSPENDED, holder.states()
            time.sleep(0.05)
        for node in others:
            node.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: holder.states()[-1] == KazooState.CONNECTED, 15, "CONNECTED again")
        assert holder.states() == [KazooState.CONNECTED, KazooState.SUSPENDED,
                                   KazooState.CONNECTED]
        with Client(ensemble.hosts, session=False) as client:
            assert client.exists("/kept").ephemeralOwner == holder.session
    finally:
        for node in others:
            node.proc.send_signal(signal.SIGCONT)
        holder.kill()


def test_a_frozen_client_comes_back_lost_with_a_new_session(ensemble):
    holder = Holder(ensemble.hosts, 1.5, "/frozen")
    try:
        holder.proc.send_signal(signal.SIGSTOP)
        with Client(ensemble.hosts) as client:
            wait_for(lambda: client.exists("/frozen") is None, 1.5 + 3.0,
                     "the frozen client's ephemeral to go")
        holder.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: KazooState.LOST in holder.states(), 10, "the client to see LOST")
        # Then connected again, under a new id: its next ephemeral opens a new session.
        wait_for(lambda: holder.states()[-1] == KazooState.CONNECTED, 10, "CONNECTED again")
    finally:
        holder.kill()


def test_bad_session_input_gets_typed_errors(ensemble):
    with Client(ensemble.hosts) as client:
        client.create("/eph", b"", ephemeral=True)
        with pytest.raises(NoChildrenForEphemeralsError):
            client.create("/eph/child", b"")
        with pytest.raises(NoChildrenForEphemeralsError):
            client.create("/eph/child", b"", ephemeral=True)
    with Client(ensemble.hosts, session=False) as tool, pytest.raises(BadArgumentsError):
        tool.create("/x", b"", ephemeral=True)
    with Client(ensemble.hosts) as client:
        tx = client.transaction()
        tx.check("/eph", "not a version")
        with pytest.raises(BadArgumentsError):
            tx.commit()
        tx = client.transaction()
        tx.operations.append(["rename", "/a", "/b"])  # what no method makes
        tx._kinds.append("rename")
        with pytest.raises(BadArgumentsError):
            tx.commit()


def test_the_timeout_asked_for_is_negotiated_into_the_bounds(tmp_path):
    ensemble = Ensemble(tmp_path, extra="\n[session]\nmin_timeout_ms = 2000\n"
                                         "max_timeout_ms = 3000\n").start()
    try:
        with Client(ensemble.hosts, timeout=600.0) as client:
            assert client.client_id is None  # opened by the first ephemeral
            client.create("/e", b"", ephemeral=True)
            assert client.client_id is not None
            assert client._agent.session.negotiated_timeout_ms() == 3000
        # On the wire, out of the bounds is refused outright.
        conn = RawConnection(ensemble.nodes[1].client_endpoint, hello=False)
        try:
            assert conn.call("hello", PROTOCOL_VERSION, "raw", 77)[1] == 0
            reply = conn.call("session", 60_000)
            assert reply[1] == Code.BAD_ARGUMENTS and "2000..3000" in reply[2]
        finally:
            conn.sock.close(linger=0)
    finally:
        ensemble.stop()


def test_a_transaction_commits_all_or_nothing_with_kazoos_results(ensemble):
    from zkactors.errors import BadVersionError, RolledBackError, RuntimeInconsistency

    with Client(ensemble.hosts) as client:
        client.create("/cfg", b"v0")
        events = []
        client.add_watch("/", lambda event: events.append(event), recursive=True)
        tx = client.transaction()
        tx.check("/cfg", 0)
        tx.set_data("/cfg", b"v1", version=0)
        tx.create("/cfg-v1", b"1")
        tx.create("/owner", b"", ephemeral=True)
        tx.delete("/cfg-v1")
        results = tx.commit()
        assert results[0] is True and results[1].version == 1
        assert results[2] == "/cfg-v1" and results[3] == "/owner" and results[4] is True
        assert client.exists("/owner").ephemeralOwner == client.client_id[0]
        wait_for(lambda: len(events) >= 5, 5, "the transaction's events")
        assert len({event.zxid for event in events}) == 1  # one zxid: one entry

        with client.transaction() as tx:  # committed on leaving the block
            tx.set_data("/cfg", b"v2")
        assert client.get("/cfg")[0] == b"v2"

        tx = client.transaction()
        tx.create("/new", b"")
        tx.check("/cfg", 0)  # stale
        tx.set_data("/cfg", b"never")
        results = tx.commit()
        assert [type(r) for r in results] == [RolledBackError, BadVersionError,
                                              RuntimeInconsistency]
        assert client.exists("/new") is None and client.get("/cfg")[0] == b"v2"


def test_zkctl_sessions_and_stat_show_who_holds_what(ensemble):
    from tests.integration.cluster import zkctl

    with Client(ensemble.nodes[2].client_endpoint, timeout=7.0) as client:
        client.create("/held", b"", ephemeral=True)
        client.create("/held2", b"", ephemeral=True)
        session = client.client_id[0]
        out = zkctl("--conf", str(ensemble.directory), "sessions", "-w", "json")
        assert out.returncode == 0, out.stderr
        # (Its writes took it to the leader: that is where it is connected now.)
        assert json.loads(out.stdout) == [{"session": session, "timeout_ms": 7000,
                                           "ephemerals": 2, "nodes": [client.node_id]}]
        table = zkctl("--conf", str(ensemble.directory), "sessions")
        assert f"{session:#018x}" in table.stdout and "7.0s" in table.stdout
        stat = zkctl("--conf", str(ensemble.directory), "stat", "/held")
        assert f"{session:#x}" in stat.stdout
    out = zkctl("--conf", str(ensemble.directory), "sessions", "-w", "json")
    assert json.loads(out.stdout) == []  # stop() closed it


def test_zkctl_lock_runs_a_command_with_its_fencing_token(ensemble, tmp_path):
    from tests.integration.cluster import zkctl

    script = "import os; print(os.environ['ZKACTORS_FENCING_TOKEN'])"
    first = zkctl("--conf", str(ensemble.directory), "lock", "/locks/job", "--",
                  sys.executable, "-c", script)
    assert first.returncode == 0, first.stderr
    second = zkctl("--conf", str(ensemble.directory), "lock", "/locks/job", "--",
                   sys.executable, "-c", script + "; raise SystemExit(3)")
    assert second.returncode == 3  # the command's own exit code
    assert int(second.stdout) > int(first.stdout) > 0
    with Client(ensemble.hosts) as client:
        assert client.get_children("/locks/job") == []  # released after
        holder = client.Lock("/locks/job", "holder")
        holder.acquire()
        waited = zkctl("--conf", str(ensemble.directory), "lock", "--wait", "0.5",
                       "/locks/job", "--", sys.executable, "-c", "print('never')")
        assert waited.returncode == 1 and "not acquired within 0.5 s" in waited.stderr
        assert "never" not in waited.stdout
        holder.release()
    missing = zkctl("--conf", str(ensemble.directory), "lock", "/locks/job")
    assert missing.returncode == 2 and "no command given" in missing.stderr
    late = zkctl("--conf", str(ensemble.directory), "lock", "/locks/job", "--wait", "1",
                 "--", "true")
    assert late.returncode == 2 and "go before the path" in late.stderr
