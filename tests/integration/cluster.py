"""Real ``zknode`` processes on free loopback ports, for integration tests.

Every process is started by the test and stopped by its PID; every wait has a
deadline.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ZKNODE = [sys.executable, str(REPO / "bin" / "zknode")]
ZKCTL = [sys.executable, str(REPO / "bin" / "zkctl")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    ports = [free_port() for _ in range(3)]
    path = directory / f"node{node_id}.ini"
    path.write_text(
        f"""[node]
id = {node_id}
data_dir = data{node_id}

[member.{node_id}]
client = tcp://127.0.0.1:{ports[0]}
peer = tcp://127.0.0.1:{ports[1]}
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
