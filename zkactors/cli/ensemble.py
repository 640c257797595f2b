"""Run and inspect the local ensemble described by a conf directory.

``up`` starts every node in the background (``python -m zkactors.cli.zknode``),
with its pid file and log in the node's data dir, and waits until each answers;
``down`` stops exactly the processes it started, by the PIDs it recorded (and only
if that PID is still a zknode of this config, so a recycled PID is never hit).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from zkactors.config import NodeConfig, load_ensemble

PID_FILE = "zknode.pid"
LOG_FILE = "zknode.log"


class EnsembleError(Exception):
    """The ensemble could not be started, stopped or reached."""


def pid_path(config: NodeConfig) -> str:
    return os.path.join(config.data_dir, PID_FILE)


def _runs_config(pid: int, config: NodeConfig) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return any("zknode" in arg for arg in argv) and any(
        arg.endswith(".ini") and os.path.abspath(os.path.join(cwd, arg)) == config.path
        for arg in argv)


def running_pid(config: NodeConfig) -> int | None:
    """The PID of a zknode running this node's config: the recorded one if it still
    does, else any (a node may have been restarted by hand, outside ``up``)."""
    try:
        with open(pid_path(config)) as f:
            pid = int(f.read().strip())
        if _runs_config(pid, config):
            return pid
    except (OSError, ValueError):
        pass
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _runs_config(int(entry), config):
            return int(entry)
    return None


def node_status(endpoint: str, timeout: float) -> dict[str, Any] | None:
    from zkactors.client import Client

    client = Client(endpoint, request_timeout=timeout, connect_timeout=min(1.5, timeout),
                    name="zkctl-status", session=False)
    try:
        client.start(timeout=timeout)
        return client.server_status()
    except Exception:  # noqa: BLE001 - unreachable or refusing: reported as down
        return None
    finally:
        client.stop()


def up(conf_dir: str, wait_s: float) -> list[str]:
    configs = load_ensemble(conf_dir)
    lines, started = [], []
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    for config in configs:
        pid = running_pid(config)
        if pid is not None:
            lines.append(f"node {config.node_id} already running (pid {pid})")
            continue
        os.makedirs(config.data_dir, exist_ok=True)
        log_path = os.path.join(config.data_dir, LOG_FILE)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "zkactors.cli.zknode", config.path],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, env=env,
            )
        with open(pid_path(config), "w") as f:
            f.write(f"{proc.pid}\n")
        started.append((config, proc))
    deadline = time.monotonic() + wait_s
    try:
        for config, proc in started:
            _wait_serving(config, proc, deadline, wait_s)
            lines.append(f"node {config.node_id} serving at {config.me.client} (pid {proc.pid})")
    except EnsembleError:
        # All or nothing: what this command started, it stops again.
        for config, proc in started:
            _stop_started(config, proc)
        raise
    leader = wait_for_leader(configs, deadline)
    lines.append(f"leader: node {leader}")
    return lines


def _wait_serving(config: NodeConfig, proc: subprocess.Popen, deadline: float,
                  wait_s: float) -> None:
    log_path = os.path.join(config.data_dir, LOG_FILE)
    while True:
        if proc.poll() is not None:
            raise EnsembleError(f"node {config.node_id} failed to start (exit code "
                                f"{proc.returncode}): {_why(log_path)}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise EnsembleError(f"node {config.node_id} not serving after {wait_s} s; "
                                f"see {log_path}")
        if node_status(config.me.client, min(1.0, remaining)) is not None:
            return


def _why(log_path: str) -> str:
    """The node's own one-line reason (its last ``zknode:`` line), else where to look."""
    try:
        with open(log_path, "rb") as log:
            log.seek(max(0, os.fstat(log.fileno()).st_size - 65536))
            tail = log.read().decode("utf-8", "replace").splitlines()
    except OSError:
        tail = []
    reasons = [line for line in tail if line.startswith("zknode: ")]
    return reasons[-1][len("zknode: "):] if reasons else f"see {log_path}"


def _stop_started(config: NodeConfig, proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    _remove(pid_path(config))


def wait_for_leader(configs: list[NodeConfig], deadline: float) -> int:
    """The id of the node that reports itself leader, once one does."""
    while True:
        for config in configs:
            row = node_status(config.me.client, 1.0)
            if row is not None and row.get("role") == "leader":
                return config.node_id
        if time.monotonic() > deadline:
            raise EnsembleError("no leader elected in time; see the nodes' zknode.log")
        time.sleep(0.05)


def down(conf_dir: str, wait_s: float) -> list[str]:
    lines = []
    stopping = []
    for config in load_ensemble(conf_dir):
        pid = running_pid(config)
        if pid is None:
            lines.append(f"node {config.node_id} not running")
            _remove(pid_path(config))
            continue
        os.kill(pid, signal.SIGTERM)
        stopping.append((config, pid))
    deadline = time.monotonic() + wait_s
    for config, pid in stopping:
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            lines.append(f"node {config.node_id} killed (pid {pid}) after {wait_s} s")
        else:
            lines.append(f"node {config.node_id} stopped (pid {pid})")
        _remove(pid_path(config))
    return lines


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (our own child, not yet reaped) is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
