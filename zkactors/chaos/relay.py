"""Delayed links for a chaos run: the one fault nftables cannot make on its own.

This kernel has no netem, so the kernel cannot hold packets back. Instead, inside
each node's namespace, an nftables ``redirect`` (:meth:`Network.redirect_peers`)
hands every TCP connection the node opens to a peer's peer or election port to
this relay on loopback. The relay learns where the connection was going
(``SO_ORIGINAL_DST``), opens the real one itself — its packets carry a mark the
redirect lets pass — and copies bytes both ways, holding what the node says to a
peer for that peer's current delay (plus a random jitter). Bytes leave in the
order they came, as TCP would deliver them: a later chunk never overtakes an
earlier one, so jitter bunches messages up rather than reordering them.

Every peer message crosses exactly one relay: a node's DEALER connects to the
peer's ROUTER, and the peer answers through its own DEALER (see
:mod:`zkactors.runtime.transport`). So a delay set in node A's relay for peer B
slows what A says to B, and nothing else. The filter rules of
:mod:`zkactors.chaos.netns` still apply: the relay's own connection to B leaves
A's namespace addressed to B.

The relay is told what to do on a Unix socket (a path, which every namespace
sees), one JSON object per line, answered by ``ok`` or an error::

    {"delay": {"10.213.7.12": [100, 50]}}    what we say to .12: 100 ms + up to 50
    {"clear": true}                          no delays
    {"stats": true}                          {"connections": n, "bytes": n, ...}

What a node says is buffered at most :data:`MAX_QUEUED` chunks per connection;
beyond that the relay stops reading from the node, and TCP's flow control holds
it back, as a slow link would.

Run (the chaos harness does, in each namespace)::

    python -m zkactors.chaos.relay --port 2999 --control /run/dir/relay-1.sock
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from zkactors.chaos.netns import Network

#: Where the relay listens in its namespace, and the mark on its own packets
#: (the redirect skips marked packets, or the relay would reach itself).
RELAY_PORT = 2999
RELAY_MARK = 0x7A6B
SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h; Python's socket module lacks it
MAX_QUEUED = 256
CHUNK = 1 << 16
CONNECT_TIMEOUT_S = 3.0
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Relay:
    """The relay's state: the delays in force, and counters."""

    #: destination address -> (delay ms, jitter ms)
    delays: dict[str, tuple[float, float]] = field(default_factory=dict)
    rng: random.Random = field(default_factory=random.Random)
    connections: int = 0
    failed_connects: int = 0
    bytes_relayed: int = 0
    delayed_chunks: int = 0

    def due(self, destination: str, now: float, last_due: float) -> float:
        """When a chunk read now for ``destination`` may be sent: never before the
        chunk read ahead of it."""
        delay_ms, jitter_ms = self.delays.get(destination, (0.0, 0.0))
        if delay_ms <= 0 and jitter_ms <= 0:
            return max(now, last_due)
        self.delayed_chunks += 1
        return max(now + (delay_ms + self.rng.uniform(0, jitter_ms)) / 1000, last_due)

    def command(self, request: dict) -> dict:
        if "delay" in request:
            for address, (delay_ms, jitter_ms) in request["delay"].items():
                if delay_ms < 0 or jitter_ms < 0:
                    raise ValueError(f"delay for {address}: negative")
                self.delays[str(address)] = (float(delay_ms), float(jitter_ms))
        if request.get("clear"):
            self.delays.clear()
        return {"ok": True, "connections": self.connections,
                "failed_connects": self.failed_connects, "bytes": self.bytes_relayed,
                "delayed_chunks": self.delayed_chunks,
                "delays": {a: list(d) for a, d in self.delays.items()}}

    # ------------------------------------------------------------ relaying
    async def on_connection(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            port, packed = struct.unpack_from("!2xH4s", raw)
            destination = socket.inet_ntoa(packed)
        except OSError:
            writer.close()
            return
        outward = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        outward.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, RELAY_MARK)
        outward.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        outward.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.sock_connect(outward, (destination, port)),
                                   CONNECT_TIMEOUT_S)
            peer_reader, peer_writer = await asyncio.open_connection(sock=outward)
        except (TimeoutError, OSError):
            # The node sees its connection close and reconnects, as it would
            # after a refused or timed-out connect.
            self.failed_connects += 1
            outward.close()
            writer.close()
            return
        self.connections += 1
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pumps = [asyncio.create_task(self._pump(reader, peer_writer, destination)),
                 asyncio.create_task(self._pump(peer_reader, writer, None))]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in pumps:
            task.cancel()
        for end in (writer, peer_writer):
            end.close()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                    destination: str | None) -> None:
        """Copy ``source`` to ``sink``; what goes to ``destination`` (a peer) waits
        for its delay. Returns when either side is done."""
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(MAX_QUEUED)
        writer = asyncio.create_task(self._send(queue, sink))
        last_due = 0.0
        try:
            while not writer.done():  # (a sink that failed ends the pump too)
                data = await source.read(CHUNK)
                if not data:
                    break
                now = time.monotonic()
                last_due = (self.due(destination, now, last_due)
                            if destination is not None else now)
                # A full queue waits for the writer — unless the writer is gone:
                # then nothing would ever make room.
                put = asyncio.ensure_future(queue.put((last_due, data)))
                await asyncio.wait({put, writer}, return_when=asyncio.FIRST_COMPLETED)
                if not put.done():
                    put.cancel()
                    break
            if not writer.done():
                await queue.put((last_due, b""))
                await writer
        except (OSError, asyncio.IncompleteReadError) as err:
            print(f"pump to {destination or 'the node'}: {err!r}", flush=True)
        finally:
            writer.cancel()

    async def _send(self, queue: asyncio.Queue, sink: asyncio.StreamWriter) -> None:
        try:
            while True:
                due, data = await queue.get()
                if not data:
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                sink.write(data)
                self.bytes_relayed += len(data)
                await sink.drain()
        except OSError as err:  # the far end went away: the connection ends
            print(f"send: {err!r}", flush=True)

    async def on_control(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while line := await reader.readline():
                try:
                    answer = self.command(json.loads(line))
                except (ValueError, TypeError, AttributeError) as err:
                    answer = {"ok": False, "error": str(err)}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        writer.close()


async def serve(port: int, control: Path) -> None:
    relay = Relay()
    server = await asyncio.start_server(relay.on_connection, "127.0.0.1", port,
                                        reuse_address=True)
    control.unlink(missing_ok=True)
    controller = await asyncio.start_unix_server(relay.on_control, str(control))
    async with server, controller:
        await asyncio.gather(server.serve_forever(), controller.serve_forever())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zkactors.chaos.relay",
                                     description="a delaying TCP relay (see module docs)")
    parser.add_argument("--port", type=int, default=RELAY_PORT)
    parser.add_argument("--control", type=Path, required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.control))
    return 0


# ------------------------------------------------------------------ harness side
class Relays:
    """One relay process per node's namespace, started and stopped by the harness
    (only the processes it started, by PID), and the delays it sets on them."""

    def __init__(self, network: Network, workdir: Path) -> None:
        self.network = network
        self.workdir = workdir
        self.procs: dict[int, subprocess.Popen] = {}

    def control_path(self, node: int) -> Path:
        return self.workdir / f"relay-{node}.sock"

    def start(self, ports: tuple[int, ...], timeout: float = 10.0) -> None:
        """Start every relay, then send the connections each node opens to its
        peers' ``ports`` through its relay."""
        for node in self.network.nodes:
            log = open(self.workdir / f"relay-{node}.log", "ab")  # noqa: SIM115
            with log:
                self.procs[node] = subprocess.Popen(
                    [*self.network.exec_prefix(node), sys.executable, "-m",
                     "zkactors.chaos.relay", "--port", str(RELAY_PORT),
                     "--control", str(self.control_path(node))],
                    stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + timeout
        for node in self.network.nodes:
            while not self._answers(node):
                if self.procs[node].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the relay of node {node} did not start "
                                       f"(see {self.workdir / f'relay-{node}.log'})")
                time.sleep(0.05)
            self.network.redirect_peers(node, RELAY_PORT, RELAY_MARK, ports)

    def _answers(self, node: int) -> bool:
        try:
            self.ask(node, {})
        except OSError:
            return False
        return True

    def ask(self, node: int, request: dict) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5.0)
            sock.connect(str(self.control_path(node)))
            sock.sendall(json.dumps(request).encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError(f"relay of node {node} hung up")
                answer += chunk
        reply = json.loads(answer)
        if not reply.get("ok"):
            raise ValueError(f"relay of node {node}: {reply.get('error')}")
        return reply

    def delay(self, node: int, peer: int, delay_ms: float, jitter_ms: float = 0.0) -> None:
        """What ``node`` says to ``peer`` takes ``delay_ms`` (+ up to ``jitter_ms``)."""
        self.ask(node, {"delay": {self.network.address(peer): [delay_ms, jitter_ms]}})

    def clear(self) -> None:
        for node in self.procs:
            self.ask(node, {"clear": True})

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for node in self.procs:
            self.control_path(node).unlink(missing_ok=True)
        self.procs.clear()


if __name__ == "__main__":
    sys.exit(main())
