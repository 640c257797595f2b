"""Real ``zknode`` processes on free loopback ports, for integration tests.

Every process is started by the test and stopped by its PID; every wait has a
deadline.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ZKNODE = [sys.executable, str(REPO / "bin" / "zknode")]
ZKCTL = [sys.executable, str(REPO / "bin" / "zkctl")]


_handed_out: set[int] = set()


def free_port() -> int:
    """A port that is free now, chosen below the kernel's ephemeral range: a port
    from that range could be taken by any outgoing connection before the node binds
    it (and nodes make many), which made tests flaky."""
    low, _ = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    rng = random.Random()
    for _ in range(1000):
        port = rng.randint(10_000, low - 1)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port found")


def wait_for(condition, timeout: float, what: str, interval: float = 0.02):
    """Poll ``condition`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def write_config(directory: Path, node_id: int = 1, extra: str = "", fsync: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    ports = [free_port() for _ in range(4)]
    path = directory / f"node{node_id}.ini"
    path.write_text(
        f"""[node]
id = {node_id}
data_dir = data{node_id}

[member.{node_id}]
client = tcp://127.0.0.1:{ports[0]}
peer = tcp://127.0.0.1:{ports[1]}
election = tcp://127.0.0.1:{ports[3]}
watch = tcp://127.0.0.1:{ports[2]}

[storage]
fsync = {"true" if fsync else "false"}
{extra}
"""
    )
    return path


class NodeProcess:
    """One ``bin/zknode CONFIG`` child process."""

    def __init__(self, config: Path) -> None:
        self.config = config
        text = config.read_text()
        self.client_endpoint = text.split("client = ", 1)[1].split()[0]
        self.watch_endpoint = text.split("watch = ", 1)[1].split()[0]
        self.data_dir = config.parent / text.split("data_dir = ", 1)[1].split()[0]
        self.log_path = config.parent / f"{config.stem}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> NodeProcess:
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*ZKNODE, str(self.config)], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        if wait:
            self.wait_serving()
        return self

    def wait_serving(self, timeout: float = 20.0) -> None:
        def serving():
            if self.proc.poll() is not None:
                raise AssertionError(f"zknode exited with {self.proc.returncode}:\n{self.log()}")
            return b"node_serving" in self.log_path.read_bytes()[self.log_offset:]

        wait_for(serving, timeout, f"{self.config.name} to serve")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 5.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"zknode did not stop within {timeout} s") from None


def zkctl(*args: str, timeout: float = 60.0, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    return subprocess.run([*ZKCTL, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or REPO, env=env, check=False)


def write_ensemble(directory: Path, size: int = 3, extra: str = "",
                   admin: bool = False) -> list[Path]:
    """One INI per member, all listing every member (free loopback ports);
    ``admin``: each node with an admin HTTP endpoint too."""
    directory.mkdir(parents=True, exist_ok=True)
    members = ""
    for n in range(1, size + 1):
        client, peer, election, watch = (free_port() for _ in range(4))
        members += (f"[member.{n}]\nclient = tcp://127.0.0.1:{client}\n"
                    f"peer = tcp://127.0.0.1:{peer}\nelection = tcp://127.0.0.1:{election}\n"
                    f"watch = tcp://127.0.0.1:{watch}\n\n")
    paths = []
    for n in range(1, size + 1):
        path = directory / f"node{n}.ini"
        own = f"\n[admin]\nhttp = 127.0.0.1:{free_port()}\n" if admin else ""
        path.write_text(f"[node]\nid = {n}\ndata_dir = data{n}\n\n{members}{extra}{own}")
        paths.append(path)
    return paths


class Ensemble:
    """Real zknode processes for every member of a conf directory."""

    def __init__(self, directory: Path, size: int = 3, extra: str = "",
                 admin: bool = False) -> None:
        self.directory = directory
        self.configs = write_ensemble(directory, size, extra, admin)
        self.nodes = {n: NodeProcess(path) for n, path in enumerate(self.configs, start=1)}
        for node in self.nodes.values():
            text = node.config.read_text()
            section = text.split(f"[member.{node.config.stem[4:]}]", 1)[1]
            node.client_endpoint = section.split("client = ", 1)[1].split()[0]
            if admin:
                node.admin_url = "http://" + text.split("[admin]\nhttp = ", 1)[1].split()[0]

    @property
    def hosts(self) -> str:
        return ",".join(n.client_endpoint for n in self.nodes.values())

    def start(self) -> Ensemble:
        for node in self.nodes.values():
            node.start(wait=False)
        for node in self.nodes.values():
            node.wait_serving()
        self.wait_for_leader()
        return self

    def status(self) -> list[dict]:
        import json

        out = zkctl("--conf", str(self.directory), "--timeout", "1", "status", "--json")
        return json.loads(out.stdout)

    def wait_for_leader(self, timeout: float = 20.0, exclude: int | None = None) -> int:
        def leader():
            rows = [r for r in self.status() if r["role"] == "leader" and r["node"] != exclude]
            return rows[0]["node"] if rows else None

        return wait_for(leader, timeout, "a leader", interval=0.05)

    def a_follower(self, leader: int) -> NodeProcess:
        """Some member other than ``leader``."""
        return next(node for node_id, node in self.nodes.items() if node_id != leader)

    def wait_converged(self, timeout: float = 30.0) -> list[dict]:
        """Every live node has applied the same index, which is the leader's commit."""
        def converged():
            rows = [r for r in self.status() if r["role"] != "down"]
            applied = {r["applied_index"] for r in rows}
            leaders = [r for r in rows if r["role"] == "leader"]
            if len(applied) == 1 and leaders and leaders[0]["commit_index"] in applied:
                return rows
            return None

        return wait_for(converged, timeout, "all nodes to apply the same index", interval=0.1)

    def stop(self) -> None:
        for node in self.nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                node.stop()


class BackgroundWriter:
    """Creates znodes ``PREFIX/kNNNNNN`` in pipelined batches, on a thread of its
    own, until stopped; ``acked`` holds those acknowledged (path -> value).

    ``unknown_ok``: a single write that fails (in flight at a crash of every node)
    is skipped — its outcome is unknown, so it is neither expected nor forbidden —
    instead of ending the writer. Anything else that goes wrong is kept in
    ``failures`` for the test to report."""

    def __init__(self, hosts: str, prefix: str, value_repeat: int = 170, batch: int = 32,
                 request_timeout: float = 20.0, unknown_ok: bool = False) -> None:
        import threading

        self.hosts, self.prefix = hosts, prefix
        self.value_repeat, self.batch = value_repeat, batch
        self.request_timeout, self.unknown_ok = request_timeout, unknown_ok
        self.acked: dict[str, bytes] = {}
        self.failures: list[BaseException] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._guarded, daemon=True)

    def start(self) -> BackgroundWriter:
        self.thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        self.stopping.set()
        if self.thread.ident is not None:
            self.thread.join(timeout)
        assert not self.thread.is_alive(), "the writer did not stop"

    def _guarded(self) -> None:
        try:
            self._write()
        except BaseException as err:  # noqa: BLE001 - reported by the test
            self.failures.append(err)

    def _write(self) -> None:
        from zkactors import errors
        from zkactors.client import Client

        retry = {"max_tries": 0} if self.unknown_ok else None
        with Client(self.hosts, request_timeout=self.request_timeout,
                    command_retry=retry) as client:
            client.ensure_path(self.prefix)
            i = 0
            while not self.stopping.is_set():
                batch = {f"{self.prefix}/k{i + j:06d}": b"%06d" % (i + j) * self.value_repeat
                         for j in range(self.batch)}
                futures = {p: client.create_async(p, v) for p, v in batch.items()}
                for path, future in futures.items():
                    try:
                        # (The client fails a request by its deadline; the margin
                        # is for a client that could not.)
                        future.get(timeout=self.request_timeout + 5.0)
                    except (errors.ZookeeperError, TimeoutError):
                        if not self.unknown_ok:
                            raise
                        continue
                    self.acked[path] = batch[path]
                i += len(batch)
