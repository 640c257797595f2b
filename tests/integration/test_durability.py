"""Crash safety of a real node: kill -9 under load, torn WAL tails, corruption."""

import glob
import os
import threading

import pytest

from tests.integration.cluster import NodeProcess, wait_for, write_config
from zkactors import errors
from zkactors.client import Client

pytestmark = pytest.mark.timeout(120)


def test_kill_9_under_write_load_loses_no_acknowledged_write(tmp_path):
    node = NodeProcess(write_config(tmp_path)).start()
    acked: dict[str, list[bytes]] = {}
    stop = threading.Event()

    def writer(n: int) -> None:
        c = Client(node.client_endpoint, connect_timeout=0.5, timeout=2.0)
        c.start(timeout=10)
        mine = acked.setdefault(f"w{n}", [])
        try:
            c.create(f"/load/w{n}", makepath=True)
            for i in range(100_000):
                if stop.is_set():
                    return
                value = b"%d-%d" % (n, i)
                futures = [c.create_async(f"/load/w{n}/k{i:06d}-{j}", value) for j in range(4)]
                for j, future in enumerate(futures):
                    try:
                        future.get(timeout=15)
                    except errors.ZkactorsError:
                        return  # the node is gone: stop at the first unacknowledged write
                    mine.append(f"/load/w{n}/k{i:06d}-{j}".encode())
        finally:
            c.stop()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: sum(len(v) for v in acked.values()) >= 2000, 60, "2000 acked writes")
    node.kill9()
    stop.set()
    for t in threads:
        t.join(30)
    total = sum(len(v) for v in acked.values())
    assert total >= 2000

    node.start()
    with Client(node.client_endpoint) as c:
        for paths in acked.values():
            futures = [c.exists_async(p.decode()) for p in paths]
            missing = [p for p, f in zip(paths, futures) if f.get(timeout=30) is None]
            assert missing == [], f"{len(missing)} acknowledged writes lost of {total}"
    node.stop()


def _wal_segment(node: NodeProcess) -> str:
    segments = sorted(glob.glob(str(node.data_dir / "wal" / "wal-*.log")))
    assert segments
    return segments[-1]


def _write_some(node: NodeProcess, count: int) -> None:
    with Client(node.client_endpoint) as c:
        for i in range(count):
            c.create(f"/n{i}", b"value-%d" % i)


def _record_offsets(segment: str) -> list[int]:
    """Start offsets of the records, then the end of data (format: storage/wal.py)."""
    with open(segment, "rb") as f:
        data = f.read()
    offsets, pos = [], 0
    while pos + 8 <= len(data) and data[pos:pos + 4] != b"\0\0\0\0":
        offsets.append(pos)
        pos += 8 + int.from_bytes(data[pos:pos + 4], "little") - 1
    return offsets + [pos]


def test_torn_last_record_is_truncated_and_the_node_serves(tmp_path):
    node = NodeProcess(write_config(tmp_path)).start()
    _write_some(node, 20)
    assert node.stop() == 0
    segment = _wal_segment(node)
    end = _record_offsets(segment)[-1]
    with open(segment, "r+b") as f:  # half a record, as a crash mid-write leaves it
        f.seek(end)
        f.write(b"\x40\x00\x00\x00\x12\x34")
    node.start()
    assert "wal_torn_tail_repaired" in node.log()
    with Client(node.client_endpoint) as c:
        assert len(c.get_children("/")) == 20
        c.create("/after", b"ok")
    assert node.stop() == 0
    node.start()
    with Client(node.client_endpoint) as c:
        assert c.get("/after")[0] == b"ok"
    node.stop()


def test_corruption_before_the_tail_stops_the_node_naming_file_and_offset(tmp_path):
    node = NodeProcess(write_config(tmp_path)).start()
    _write_some(node, 20)
    assert node.stop() == 0
    segment = _wal_segment(node)
    second = _record_offsets(segment)[1]
    with open(segment, "r+b") as f:  # flip a byte inside the second record's payload
        f.seek(second + 10)
        byte = f.read(1)
        f.seek(second + 10)
        f.write(bytes([byte[0] ^ 0xFF]))
    node.start(wait=False)
    assert node.proc.wait(20) == 2
    log = node.log()
    assert os.path.basename(segment) in log and f"offset {second}" in log
    assert "node_serving" not in log.split("wal")[-1]


def test_sigterm_stops_the_node_cleanly_within_two_seconds(node):
    import time

    _write_some(node, 5)
    started = time.monotonic()
    assert node.stop(timeout=2.0) == 0
    assert time.monotonic() - started < 2.0
    assert "node_stopped" in node.log()


def test_second_node_on_the_same_data_dir_is_refused(node):
    other = NodeProcess(node.config)
    other.log_path = node.config.parent / "other.log"
    other.start(wait=False)
    assert other.proc.wait(20) == 2
    assert "in use" in other.log()
