"""``zkctl``: the admin tool — read and change znodes, inspect nodes, run the local
ensemble, benchmark.

The ensemble is taken from ``--conf DIR`` (default ``$ZKACTORS_CONF`` or ``./conf``):
every ``*.ini`` there is one node. ``--hosts`` overrides the client endpoints.

Exit codes: 0 success, 1 the operation failed (the error is printed on one line),
2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any

from zkactors.cli import ensemble
from zkactors.config import ConfigError, load_ensemble
from zkactors.errors import ZkactorsError
from zkactors.logsetup import configure_logging
from zkactors.protocol import format_zxid


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    # The client library's own log lines go to stderr, warnings and worse only:
    # stdout is for what the command prints (tables, JSON, events).
    configure_logging("warning")
    try:
        return args.func(args) or 0
    except ConfigError as err:
        print(f"zkctl: {err}", file=sys.stderr)
        return 2
    except (ZkactorsError, TimeoutError, ensemble.EnsembleError) as err:
        print(f"zkctl: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _hosts(value: str) -> str:
    """``--hosts``, checked up front (HOST:PORT or tcp://HOST:PORT, comma-separated)."""
    from zkactors.client import parse_hosts

    try:
        return ",".join(parse_hosts(value))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds < 86_400:
        raise argparse.ArgumentTypeError(f"{value} s: must be more than 0 and less than a day")
    return seconds


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("zkactors")
    except PackageNotFoundError:  # run straight from a checkout, not installed
        return "(not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zkctl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--conf", default=os.environ.get("ZKACTORS_CONF", "conf"),
                        help="directory of node INI files (default: %(default)s)")
    parser.add_argument("--hosts", type=_hosts,
                        help="comma-separated client endpoints (default: from --conf)")
    parser.add_argument("--timeout", type=_seconds, default=5.0,
                        help="seconds to wait (default 5)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, func, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = command("get", cmd_get, "print a znode's value")
    p.add_argument("path")
    p = command("set", cmd_set, "replace a znode's value")
    p.add_argument("path")
    p.add_argument("value")
    p.add_argument("--version", type=int, default=-1, help="only if at this version")
    p = command("create", cmd_create, "create a znode")
    p.add_argument("path")
    p.add_argument("value", nargs="?", default="")
    p.add_argument("-p", "--makepath", action="store_true", help="create missing ancestors")
    p.add_argument("-s", "--sequence", action="store_true", help="append a sequence number")
    p = command("delete", cmd_delete, "delete a znode")
    p.add_argument("path")
    p.add_argument("--version", type=int, default=-1, help="only if at this version")
    p.add_argument("-r", "--recursive", action="store_true", help="with its whole subtree")
    p = command("ls", cmd_ls, "list a znode's children")
    p.add_argument("path", nargs="?", default="/")
    p = command("stat", cmd_stat, "print a znode's stat")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")
    p = command("tree", cmd_tree, "print a subtree")
    p.add_argument("path", nargs="?", default="/")
    p.add_argument("--values", action="store_true", help="show values too")
    p = command("watch", cmd_watch, "print every change of a znode (or subtree) until Ctrl-C")
    p.add_argument("path")
    p.add_argument("-r", "--recursive", action="store_true", help="every node under it too")
    p.add_argument("--since", type=lambda s: int(s, 0), default=None,
                   help="replay changes after this zxid first (decimal or 0x hex)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p = command("status", cmd_status, "role, term, commit index, applied zxid, lag per node")
    p.add_argument("--json", action="store_true")
    command("leader", cmd_leader, "print the leader's node id")
    p = command("up", cmd_up, "start the local ensemble from --conf in the background")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait until it serves")
    p = command("down", cmd_down, "stop the local ensemble started by 'up'")
    p.add_argument("--wait", type=float, default=10.0, help="seconds before SIGKILL")
    from zkactors.cli import bench

    p = command("bench", bench.cmd_bench, "measure latency and throughput")
    bench.add_arguments(p)
    return parser


# ------------------------------------------------------------------ helpers
def hosts_of(args: argparse.Namespace) -> str:
    if args.hosts:
        return args.hosts
    return ",".join(cfg.me.client for cfg in load_ensemble(args.conf))


def connect(args: argparse.Namespace):
    from zkactors.client import Client

    client = Client(hosts_of(args), request_timeout=args.timeout, name="zkctl")
    client.start(timeout=args.timeout)
    return client


def _print_value(value: bytes) -> None:
    try:
        print(value.decode())
    except UnicodeDecodeError:
        print(value.hex())


def stat_dict(stat: Any) -> dict[str, int]:
    return dataclasses.asdict(stat)


# ------------------------------------------------------------------ znodes
def cmd_get(args: argparse.Namespace) -> int:
    with connect(args) as client:
        value, _ = client.get(args.path)
    _print_value(value)
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    with connect(args) as client:
        stat = client.set(args.path, args.value.encode(), version=args.version)
    print(f"version {stat.version} mzxid {format_zxid(stat.mzxid)}")
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    with connect(args) as client:
        print(client.create(args.path, args.value.encode(), makepath=args.makepath,
                            sequence=args.sequence))
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with connect(args) as client:
        client.delete(args.path, version=args.version, recursive=args.recursive)
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    with connect(args) as client:
        for name in client.get_children(args.path):
            print(name)
    return 0


def cmd_stat(args: argparse.Namespace) -> int:
    with connect(args) as client:
        stat = client.exists(args.path)
    if stat is None:
        print(f"zkctl: NoNodeError: no node: {args.path}", file=sys.stderr)
        return 1
    fields = stat_dict(stat)
    if args.json:
        print(json.dumps(fields))
    else:
        for name, value in fields.items():
            shown = format_zxid(value) if name.endswith("zxid") else value
            print(f"{name:<15} {shown}")
    return 0


def cmd_tree(args: argparse.Namespace) -> int:
    with connect(args) as client:
        _walk(client, args.path, 0, args.values, budget=[100_000])
    return 0


def _walk(client: Any, path: str, depth: int, values: bool, budget: list[int]) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        return
    name = path if depth == 0 else path.rsplit("/", 1)[1]
    line = "  " * depth + name
    if values:
        value, _ = client.get(path)
        line += f" = {value[:60]!r}"
    print(line)
    for child in client.get_children(path):
        _walk(client, path.rstrip("/") + "/" + child, depth + 1, values, budget)


def cmd_watch(args: argparse.Namespace) -> int:
    """Tail events as lines; the client follows failover, so this survives the node
    it is attached to going away. SIGINT (Ctrl-C) ends it with exit code 0."""
    import threading

    from zkactors.client import Client

    def show(event: Any) -> None:
        if args.json:
            line = json.dumps({"type": event.type, "path": event.path, "zxid": event.zxid,
                               "version": event.version})
        else:
            line = f"{format_zxid(event.zxid)} {event.type} {event.path} {event.version}"
        print(line, flush=True)

    # A long session: a watcher waits out an election or a restart rather than give up.
    client = Client(hosts_of(args), timeout=3600.0, request_timeout=args.timeout, name="zkctl")
    forever = threading.Event()
    try:
        client.start(timeout=args.timeout)
        client.add_watch(args.path, show, recursive=args.recursive, since=args.since)
        while not forever.wait(3600):
            pass
    except KeyboardInterrupt:
        return 0
    finally:
        client.stop()
    return 0


# ------------------------------------------------------------------- nodes
def cmd_status(args: argparse.Namespace) -> int:
    rows = ensemble.status(args.conf, args.hosts, args.timeout)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'node':>4}  {'role':<9} {'term':>4} {'commit':>9} {'applied zxid':>14} "
          f"{'lag':>5} {'clients':>7}  endpoint")
    for row in rows:
        print(f"{row['node'] or '?':>4}  {row['role']:<9} {row['term']:>4} {row['commit_index']:>9} "
              f"{format_zxid(row['applied_zxid']):>14} {row['lag']:>5} {row['clients']:>7}  "
              f"{row['endpoint']}")
    return 0 if all(row["role"] != "down" for row in rows) else 1


def cmd_leader(args: argparse.Namespace) -> int:
    leaders = [row for row in ensemble.status(args.conf, args.hosts, args.timeout)
               if row["role"] == "leader"]
    if not leaders:
        print("zkctl: no leader", file=sys.stderr)
        return 1
    print(leaders[0]["node"])
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    for line in ensemble.up(args.conf, args.wait):
        print(line)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    for line in ensemble.down(args.conf, args.wait):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
