"""A 3-node zkactors ensemble of a benchmark's own: loopback, free ports, fsync
on, in a directory the caller gives; nodes started, killed (-9) and stopped by
the PIDs this module started, never others. For scripts under bench/ that need
to kill and restart nodes (an ensemble from ``zkctl up`` serves the others).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from zkactors.cli.zkctl_status import ask

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float, what: str, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout} s")


class Ensemble:
    """Three ``bin/zknode`` processes in a temporary directory; stopped (only
    they, by PID) on :meth:`close`."""

    def __init__(self, directory: Path, storage: str = "snapshot_every = 0") -> None:
        self.directory = directory
        members, self.clients = "", {}
        for n in (1, 2, 3):
            client, peer, election, watch = (free_port() for _ in range(4))
            self.clients[n] = f"tcp://127.0.0.1:{client}"
            members += (f"[member.{n}]\nclient = tcp://127.0.0.1:{client}\n"
                        f"peer = tcp://127.0.0.1:{peer}\nelection = tcp://127.0.0.1:{election}\n"
                        f"watch = tcp://127.0.0.1:{watch}\n\n")
        for n in (1, 2, 3):
            (directory / f"node{n}.ini").write_text(
                f"[node]\nid = {n}\ndata_dir = data{n}\n\n{members}"
                f"[storage]\nfsync = true\nwal_segment_bytes = 67108864\n{storage}\n"
                "[log]\nlevel = info\n")
        self.procs: dict[int, subprocess.Popen] = {}

    @property
    def hosts(self) -> str:
        return ",".join(self.clients.values())

    def log_path(self, node: int) -> Path:
        return self.directory / f"node{node}.log"

    def start(self, node: int) -> float:
        """Start ``node``; returns the wall-clock time just before its process began."""
        began = time.time()
        with open(self.log_path(node), "ab") as log:
            self.procs[node] = subprocess.Popen(
                [sys.executable, str(REPO / "bin" / "zknode"), str(self.directory / f"node{node}.ini")],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        return began

    def kill(self, node: int) -> None:
        self.procs[node].send_signal(signal.SIGKILL)
        self.procs[node].wait(10)

    def status(self, node: int) -> dict:
        return ask(self.clients[node], 0.5)

    def leader(self) -> int | None:
        for node in self.clients:
            row = self.status(node)
            if row.get("role") == "leader":
                return node
        return None

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
