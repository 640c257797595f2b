"""A private network for a chaos run: one network namespace per node, all on one
bridge, and nftables rules inside each namespace to cut, half-cut or thin links.

Layout (``Network(run_id, nodes)``)::

    root namespace: bridge zkc<run>, 10.<a>.<b>.1/24    <- clients live here
      |- veth zkc<run>v<i>  <->  eth0 in namespace zkc-<run>-<i>, 10.<a>.<b>.<10+i>

Every node listens on its own address with the same ports, so the ensemble's
configuration reads like a real one. Faults are nftables rules in the node's own
namespace (this kernel has nf_tables but no netem): a drop on the output hook
cuts what the node says to a peer, a drop on the input hook what it hears;
``numgen random mod 100 < N`` drops a share of the packets. Nothing here touches
the root namespace's rules, and :meth:`Network.close` removes every namespace,
link and table it made — also after a failure halfway through :meth:`open`.

Needs root, ``ip`` (iproute2) and ``nft`` (Debian's ``nftables``; see
``bin/install-system-deps``).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from dataclasses import dataclass, field

TABLE = "zkchaos"
#: The table holding the redirect to a node's delaying relay (never flushed by
#: :meth:`Network.heal`: the relay stays in the path for the whole run).
RELAY_TABLE = "zkrelay"


class NetworkError(RuntimeError):
    """A command that sets up or changes the network failed."""


def _run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise NetworkError(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def missing_tools() -> list[str]:
    """What this host lacks to build a network (empty when it can)."""
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.append("root")
    return missing


@dataclass
class Network:
    """``nodes`` namespaces on a bridge; addresses from ``subnet`` (a /24)."""

    run_id: str
    nodes: list[int]
    subnet: str = "10.213.0.0/24"
    made: list[tuple[str, str]] = field(default_factory=list)  # ("netns"|"link", name)

    def __post_init__(self) -> None:
        if len(self.run_id) > 6 or not self.run_id.isalnum():
            raise ValueError("run_id: at most 6 letters or digits (interface names "
                             "have 15 characters)")
        self.net = ipaddress.ip_network(self.subnet)
        if self.net.prefixlen != 24:
            raise ValueError(f"subnet {self.subnet}: a /24, please")
        self.bridge = f"zkc{self.run_id}"

    # ------------------------------------------------------------ names
    def namespace(self, node: int) -> str:
        return f"zkc-{self.run_id}-{node}"

    def address(self, node: int) -> str:
        """Node ``node``'s address (0: the bridge's, where clients come from)."""
        return str(self.net.network_address + (1 if node == 0 else 10 + node))

    def exec_prefix(self, node: int) -> list[str]:
        """Prefix a command with this to run it in ``node``'s namespace."""
        return ["ip", "netns", "exec", self.namespace(node)]

    # ------------------------------------------------------ build, remove
    def open(self) -> Network:
        try:
            _run("ip", "link", "add", self.bridge, "type", "bridge")
            self.made.append(("link", self.bridge))
            _run("ip", "addr", "add", f"{self.address(0)}/24", "dev", self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
            for node in self.nodes:
                self._add_node(node)
        except BaseException:
            self.close()
            raise
        return self

    def _add_node(self, node: int) -> None:
        ns, outer, inner = self.namespace(node), f"zkc{self.run_id}v{node}", "eth0"
        _run("ip", "netns", "add", ns)
        self.made.append(("netns", ns))
        _run("ip", "link", "add", outer, "type", "veth", "peer", "name", f"{outer}p")
        self.made.append(("link", outer))
        _run("ip", "link", "set", f"{outer}p", "netns", ns)
        _run("ip", "-n", ns, "link", "set", f"{outer}p", "name", inner)
        _run("ip", "link", "set", outer, "master", self.bridge)
        _run("ip", "link", "set", outer, "up")
        _run("ip", "-n", ns, "addr", "add", f"{self.address(node)}/24", "dev", inner)
        _run("ip", "-n", ns, "link", "set", inner, "up")
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        self._nft(node, "add", "table", "inet", TABLE)
        for chain, hook in (("out", "output"), ("in", "input")):
            self._nft(node, "add", "chain", "inet", TABLE, chain,
                      f"{{ type filter hook {hook} priority 0; policy accept; }}")

    def close(self) -> None:
        """Remove everything made, newest first; go on past what is gone already."""
        problems = []
        for kind, name in reversed(self.made):
            args = ("ip", "netns", "del", name) if kind == "netns" else ("ip", "link", "del", name)
            done = subprocess.run(args, capture_output=True, text=True, timeout=30,
                                  check=False)
            if done.returncode != 0 and "Cannot find" not in done.stderr and \
                    "No such" not in done.stderr and "does not exist" not in done.stderr:
                problems.append(f"{' '.join(args)}: {done.stderr.strip()}")
        self.made.clear()
        if problems:
            raise NetworkError("; ".join(problems))

    def __enter__(self) -> Network:  # noqa: PYI034 - open() returns self
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------- faults
    def _nft(self, node: int, *args: str) -> str:
        return _run(*self.exec_prefix(node), "nft", *args)

    def drop_to(self, node: int, peer: int, percent: int = 100) -> None:
        """``node``'s packets to ``peer`` are dropped (``percent`` of them)."""
        self._nft(node, "add", "rule", "inet", TABLE, "out", "ip", "daddr",
                  self.address(peer), *self._share(percent), "drop")

    def drop_from(self, node: int, peer: int, percent: int = 100) -> None:
        """``peer``'s packets reaching ``node`` are dropped (``percent`` of them)."""
        self._nft(node, "add", "rule", "inet", TABLE, "in", "ip", "saddr",
                  self.address(peer), *self._share(percent), "drop")

    @staticmethod
    def _share(percent: int) -> tuple[str, ...]:
        if not 0 < percent <= 100:
            raise ValueError(f"percent {percent}: in 1..100")
        return () if percent == 100 else ("numgen", "random", "mod", "100", "<",
                                          str(percent))

    def cut(self, a: int, b: int) -> None:
        """Nothing passes between ``a`` and ``b``, either way."""
        self.drop_to(a, b)
        self.drop_to(b, a)

    def heal(self, node: int | None = None) -> None:
        """Remove every rule (of ``node``, or of all nodes)."""
        for n in self.nodes if node is None else [node]:
            for chain in ("out", "in"):
                self._nft(n, "flush", "chain", "inet", TABLE, chain)

    def redirect_peers(self, node: int, relay_port: int, mark: int,
                       ports: tuple[int, ...]) -> None:
        """Connections ``node`` opens to ``ports`` of any address on the run's
        subnet go to the relay at ``relay_port`` on its loopback instead; packets
        carrying ``mark`` (the relay's own) pass (see :mod:`zkactors.chaos.relay`)."""
        self._nft(node, "add", "table", "ip", RELAY_TABLE)
        self._nft(node, "add", "chain", "ip", RELAY_TABLE, "out",
                  "{ type nat hook output priority -100; policy accept; }")
        self._nft(node, "add", "rule", "ip", RELAY_TABLE, "out", "meta", "mark", hex(mark),
                  "return")
        self._nft(node, "add", "rule", "ip", RELAY_TABLE, "out", "ip", "daddr",
                  str(self.net), "tcp", "dport", "{ " + ", ".join(map(str, ports)) + " }",
                  "redirect", "to", f":{relay_port}")

    def rules(self, node: int) -> str:
        return self._nft(node, "list", "table", "inet", TABLE)
