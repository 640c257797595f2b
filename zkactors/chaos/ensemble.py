"""The ensemble of a chaos run: real ``zknode`` processes, each in its own network
namespace (:mod:`zkactors.chaos.netns`), with its data dir under the run's
directory.

It starts, kills (SIGKILL), pauses (SIGSTOP/SIGCONT) and restarts nodes — only
the processes it started, by their PIDs — and stops them all on :meth:`close`.
Every node listens on its own address with the same ports, as machines do.

Each node's data dir is a small tmpfs of its own, so that a disk can be filled
(:meth:`fill_disk`) without touching the machine's; :meth:`close` unmounts them.
(tmpfs makes fsync free, which a chaos run does not mind: it kills processes,
not machines, and a killed process loses nothing it wrote.)

With ``relay=True`` the nodes' peer links pass through a delaying relay in each
namespace (:mod:`zkactors.chaos.relay`), started before the nodes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from zkactors.chaos.netns import Network
from zkactors.chaos.relay import Relays

REPO = Path(__file__).resolve().parents[2]
CLIENT_PORT, PEER_PORT, ELECTION_PORT, WATCH_PORT = 2181, 2881, 2981, 2191


class ChaosEnsemble:
    def __init__(self, network: Network, workdir: Path, extra_config: str = "",
                 disk_mib: int = 0, relay: bool = False) -> None:
        self.network = network
        self.workdir = workdir
        self.extra_config = extra_config
        #: Size of each node's own tmpfs data dir (0: the data dirs are plain
        #: directories, and disks cannot be filled).
        self.disk_mib = disk_mib
        self.mounts: list[Path] = []
        self.procs: dict[int, subprocess.Popen] = {}
        self.paused: set[int] = set()
        self.logs: dict[int, Path] = {}
        self.relays = Relays(network, workdir) if relay else None
        #: Nodes whose process ended without our killing or stopping it: what a
        #: run must report, however consistent the history (see :meth:`reap_crashed`).
        self.crashes: list[dict] = []
        #: Nodes we killed and have not started since.
        self.killed: set[int] = set()

    @property
    def nodes(self) -> list[int]:
        return self.network.nodes

    def endpoint(self, node: int, port: int = CLIENT_PORT) -> str:
        return f"tcp://{self.network.address(node)}:{port}"

    def hosts(self) -> str:
        """The client connect string: every node."""
        return ",".join(f"{self.network.address(n)}:{CLIENT_PORT}" for n in self.nodes)

    def config_path(self, node: int) -> Path:
        return self.workdir / f"node{node}" / "node.ini"

    def write_configs(self) -> None:
        members = "".join(
            f"\n[member.{n}]\nclient = {self.endpoint(n)}\npeer = {self.endpoint(n, PEER_PORT)}"
            f"\nelection = {self.endpoint(n, ELECTION_PORT)}"
            f"\nwatch = {self.endpoint(n, WATCH_PORT)}\n"
            for n in self.nodes)
        for node in self.nodes:
            path = self.config_path(node)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"[node]\nid = {node}\ndata_dir = data\n{members}\n"
                            f"{self.extra_config}\n")
            if self.disk_mib:
                data = self.data_dir(node)
                data.mkdir()
                subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.disk_mib}m",
                                "tmpfs", str(data)], check=True, timeout=30)
                self.mounts.append(data)

    def data_dir(self, node: int) -> Path:
        return self.config_path(node).parent / "data"

    # ---------------------------------------------------------------- disks
    def fill_disk(self, node: int) -> None:
        """Fill ``node``'s data dir's filesystem to the last byte."""
        chunk = b"\0" * (1 << 16)
        with open(self.data_dir(node) / "filler", "ab", buffering=0) as out:
            try:
                out.writelines(chunk for _ in range(1 << 16))
            except OSError:
                pass  # full: what we wanted

    def free_disk(self, node: int) -> None:
        (self.data_dir(node) / "filler").unlink(missing_ok=True)

    # ------------------------------------------------------------ processes
    def start_relays(self) -> None:
        """Before the nodes start: their peer links through the relays (if any)."""
        if self.relays is not None:
            self.relays.start(ports=(PEER_PORT, ELECTION_PORT))

    def start(self, node: int) -> None:
        if node in self.procs and self.procs[node].poll() is None:
            return
        log = self.workdir / f"node{node}" / "node.log"
        self.logs[node] = log
        with open(log, "ab") as out:
            self.procs[node] = subprocess.Popen(
                [*self.network.exec_prefix(node), sys.executable, str(REPO / "bin" / "zknode"),
                 str(self.config_path(node))],
                stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir)
        self.paused.discard(node)
        self.killed.discard(node)

    def reap_crashed(self) -> list[dict]:
        """Find nodes that died on their own, record each (exit status, last
        line of its log), and start them again, as a supervisor (systemd's
        ``Restart=on-failure``) would. Returns the crashes found now."""
        found = []
        for node, proc in self.procs.items():
            if node in self.killed or proc.poll() is None:
                continue
            lines = self.logs[node].read_text(errors="replace").splitlines()
            found.append({"node": node, "exit": proc.returncode, "time": time.monotonic(),
                          "last_line": lines[-1][:300] if lines else ""})
        self.crashes.extend(found)
        for crash in found:
            self.start(crash["node"])
        return found

    def running(self, node: int) -> bool:
        proc = self.procs.get(node)
        return proc is not None and proc.poll() is None

    def kill(self, node: int) -> None:
        """SIGKILL, and reap it."""
        proc = self.procs.get(node)
        if proc is None or proc.poll() is not None:
            return
        self.killed.add(node)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        self.paused.discard(node)

    def pause(self, node: int) -> None:
        if self.running(node) and node not in self.paused:
            os.kill(self.procs[node].pid, signal.SIGSTOP)
            self.paused.add(node)

    def resume(self, node: int) -> None:
        if node in self.paused and self.running(node):
            os.kill(self.procs[node].pid, signal.SIGCONT)
        self.paused.discard(node)

    def close(self) -> None:
        """Stop every process we started: resume, SIGTERM, and SIGKILL what lingers."""
        for node in list(self.paused):
            self.resume(node)
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self.relays is not None:
            self.relays.close()
        for mount in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(mount)], check=False, timeout=30)
        self.mounts.clear()
