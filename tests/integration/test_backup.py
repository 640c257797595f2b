"""``zkctl backup`` / ``zkctl restore`` and ``zkctl health``, as an operator runs
them: real ensembles, real files, the real command line."""

from __future__ import annotations

import json
import os

import pytest

from tests.integration.cluster import Ensemble, wait_for, zkctl
from zkactors.client import Client

pytestmark = pytest.mark.timeout(120)


def fill(hosts: str) -> dict[str, bytes]:
    """Acknowledged writes of several kinds; returns path -> value."""
    written = {}
    with Client(hosts) as client:
        client.create("/app/config", b"v0", makepath=True)
        for i in range(100):
            value = bytes([i, 255 - i]) * (i % 7)  # binary, empty too
            written[client.create(f"/app/n{i}", value)] = value
        for _ in range(5):
            written[client.create("/app/seq-", b"s", sequence=True)] = b"s"
        client.set("/app/config", b"v1")
        client.set("/app/config", b"v2")
        written["/app/config"] = b"v2"
        client.delete("/app/n3")
        del written["/app/n3"]
    return written


def backup(conf_or_hosts: list[str], path) -> dict:
    out = zkctl(*conf_or_hosts, "backup", str(path), "-w", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_restored_ensemble_serves_the_same_tree(tmp_path):
    source = Ensemble(tmp_path / "a").start()
    try:
        written = fill(source.hosts)
        taken = backup(["--conf", str(source.directory)], tmp_path / "tree.snap")
    finally:
        source.stop()
    assert taken["znodes"] == 1 + 1 + len(written)  # the root, /app and ours

    target = Ensemble(tmp_path / "b")  # new ports, empty data dirs, not started
    out = zkctl("restore", str(tmp_path / "tree.snap"), "--conf", str(target.directory),
                "-w", "json")
    assert out.returncode == 0, out.stderr
    restored = json.loads(out.stdout)
    assert (restored["digest"], restored["zxid"], restored["nodes"]) == \
        (taken["digest"], taken["zxid"], [1, 2, 3])
    target.start()
    try:
        # Every node of the new ensemble holds that very tree.
        for node in target.nodes.values():
            again = backup(["--hosts", node.client_endpoint], tmp_path / "again.snap")
            assert (again["digest"], again["znodes"]) == (taken["digest"], taken["znodes"])
            assert again["zxid"] >= taken["zxid"]
            assert again["term"] > taken["term"]  # a new leader, above the backup's term
        with Client(target.hosts) as client:
            for path, value in written.items():
                assert client.get(path)[0] == value, path
            assert client.exists("/app/n3") is None
            client.create("/app/after", b"new")  # and it takes writes
            sequence = client.create("/app/seq-", b"s", sequence=True)
        before = max(int(p.rsplit("-", 1)[1]) for p in written if "/seq-" in p)
        assert int(sequence.rsplit("-", 1)[1]) > before + 1  # counters restored, not reset
    finally:
        target.stop()


def test_restore_refuses_a_used_data_dir_and_writes_nothing(tmp_path):
    source = Ensemble(tmp_path / "a").start()
    try:
        backup(["--conf", str(source.directory)], tmp_path / "tree.snap")
    finally:
        source.stop()
    target = Ensemble(tmp_path / "b")
    used = target.directory / "data2"
    used.mkdir()
    (used / "wal").mkdir()
    # (--conf before the command works as well as after it)
    out = zkctl("--conf", str(target.directory), "restore", str(tmp_path / "tree.snap"))
    assert out.returncode == 1
    [line] = out.stderr.splitlines()
    assert "node 2's data dir" in line and "is not empty" in line
    assert not (target.directory / "data1").exists()  # all checked before any written
    assert not (target.directory / "data3").exists()


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not-a-backup"])
def test_restore_refuses_a_damaged_file_in_one_line(tmp_path, damage):
    source = Ensemble(tmp_path / "a").start()
    try:
        fill(source.hosts)
        backup(["--conf", str(source.directory)], tmp_path / "tree.snap")
    finally:
        source.stop()
    data = (tmp_path / "tree.snap").read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped":
        data = data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:]
    else:
        data = b"hello, I am a text file\n"
    (tmp_path / "tree.snap").write_bytes(data)
    target = Ensemble(tmp_path / "b")
    out = zkctl("restore", str(tmp_path / "tree.snap"), "--conf", str(target.directory))
    assert out.returncode == 1
    [line] = out.stderr.splitlines()
    assert line.startswith("zkctl: BackupError: ") and "Traceback" not in out.stderr
    assert not any((target.directory / f"data{n}").exists() for n in (1, 2, 3))


def test_a_backup_holds_every_write_acknowledged_before_it(tmp_path):
    ensemble = Ensemble(tmp_path / "a").start()
    try:
        with Client(ensemble.hosts) as client:
            for i in range(300):
                client.create_async(f"/w{i}", b"x")
            client.create("/last", b"!")  # acknowledged after the 300 (FIFO)
        # Asked of a follower: the sync brings it up to the leader's commit first.
        leader = ensemble.wait_for_leader()
        follower = ensemble.a_follower(leader)
        taken = backup(["--hosts", follower.client_endpoint], tmp_path / "f.snap")
        assert taken["znodes"] == 1 + 300 + 1
    finally:
        ensemble.stop()


def test_zkctl_health_reports_each_node_and_fails_without_a_quorum(tmp_path):
    ensemble = Ensemble(tmp_path, admin=True).start()
    try:
        out = zkctl("--conf", str(tmp_path), "health", "-w", "json")
        assert out.returncode == 0, out.stdout + out.stderr
        rows = json.loads(out.stdout)
        assert [(r["node"], r["serving"], r["reason"]) for r in rows] == \
            [(n, True, "serving") for n in (1, 2, 3)]
        ensemble.nodes[2].kill9()
        ensemble.nodes[3].kill9()

        def unhealthy():
            out = zkctl("--conf", str(tmp_path), "health", "-w", "json")
            rows = json.loads(out.stdout)
            return (out, rows) if not rows[0]["serving"] else None


        out, rows = wait_for(unhealthy, 15, "node 1 to report it cannot serve", interval=0.2)
        assert out.returncode == 1
        assert rows[0]["reason"] == "no live leader known"
        assert all(r["reason"].startswith("no answer") for r in rows[1:])
        table = zkctl("--conf", str(tmp_path), "health")
        assert table.returncode == 1 and "no live leader known" in table.stdout
    finally:
        ensemble.stop()


def test_zkctl_health_names_nodes_without_an_admin_endpoint(tmp_path):
    Ensemble(tmp_path)  # the files only: nothing needs to run to be told this
    out = zkctl("--conf", str(tmp_path), "health", "-w", "json")
    assert out.returncode == 1
    rows = json.loads(out.stdout)
    assert all(r["reason"].startswith("no [admin] http in ") for r in rows)
    assert os.path.basename(rows[0]["reason"].split()[-1]) == "node1.ini"
