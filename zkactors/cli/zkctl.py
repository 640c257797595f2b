"""``zkctl``: the admin tool — read and change znodes, inspect nodes, run the local
ensemble, benchmark.

The ensemble is taken from ``--conf DIR`` (default ``$ZKACTORS_CONF`` or ``./conf``):
every ``*.ini`` there is one node. ``--hosts`` overrides the client endpoints.

Exit codes: 0 success, 1 the operation failed, 2 bad usage or configuration; a
failure is always one line on stderr, never a traceback, whatever the input.

This module owns the command line (the parser, the commands, the exit codes);
:mod:`zkactors.cli.zkctl_format` how values, stats and errors look, and
:mod:`zkactors.cli.zkctl_status` how ``status`` asks the nodes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from zkactors.cli import ensemble
from zkactors.cli.zkctl_format import (
    OUTPUTS,
    VALUE_FORMATS,
    ValueFormatError,
    decode_utf8,
    one_line,
    stat_lines,
    stat_record,
    status_lines,
    tree_value,
    value_record,
    value_text,
)
from zkactors.config import ConfigError, load_ensemble
from zkactors.errors import ZkactorsError
from zkactors.logsetup import configure_logging
from zkactors.protocol import format_zxid

#: ``tree`` stops after this many nodes (and says so, exit 1).
TREE_MAX_NODES = 100_000


class UsageError(Exception):
    """Arguments that parse but do not go together (exit code 2)."""


class OperationError(Exception):
    """The command could not do its work for a reason outside the ensemble, such
    as a ``--file`` that cannot be read (exit code 1)."""


class ZkctlParser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block, input escaped)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        _fail("no command given (see 'zkctl --help')")
        return 2
    # The client library's own log lines go to stderr, warnings and worse only:
    # stdout is for what the command prints (tables, JSON, events).
    configure_logging("warning")
    try:
        return args.func(args) or 0
    except (ConfigError, UsageError) as err:
        _fail(str(err))
        return 2
    except (ZkactorsError, TimeoutError, ensemble.EnsembleError) as err:
        _fail(f"{type(err).__name__}: {err}")
        return 1
    except OperationError as err:
        _fail(str(err))
        return 1
    except ValueFormatError as err:
        _fail(f"{args.path}: {err}")
        return 1
    except BrokenPipeError:
        # The reader went away (``zkctl tree / | head``): nothing left to say.
        _silence_stdout()
        return 1
    except OSError as err:
        _fail(f"{type(err).__name__}: {err}")
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # the last line of defence: still one line, exit 1
        if os.environ.get("ZKCTL_DEBUG"):
            raise
        _fail(f"internal error: {type(err).__name__}: {err} (a bug; ZKCTL_DEBUG=1 shows "
              f"the traceback)")
        return 1


def _fail(message: str) -> None:
    print(f"zkctl: {one_line(message)}", file=sys.stderr)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


# ------------------------------------------------------------ argument types
def _shown(value: str) -> str:
    """An argument quoted in an error message: escaped, and short."""
    return f"'{one_line(value, limit=80)}'"


def _hosts(value: str) -> str:
    """``--hosts``, checked up front (HOST:PORT or tcp://HOST:PORT, comma-separated)."""
    from zkactors.client import parse_hosts

    try:
        value.encode("utf-8")
        return ",".join(parse_hosts(value))
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{_shown(value)} is not valid UTF-8") from None
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(value)} is not a number of seconds") from None
    if not 0 < seconds < 86_400:
        raise argparse.ArgumentTypeError(f"{_shown(value)} s: must be more than 0 and less than a day")
    return seconds


def _znode_path(value: str) -> str:
    """A znode path as far as the client can tell: absolute and valid UTF-8 (a
    command-line argument that was not comes in with surrogate escapes). The
    rest — '//', '.', length — the node checks, and says so (exit 1)."""
    if not value.startswith("/"):
        raise argparse.ArgumentTypeError(f"{_shown(value)} is not a znode path (it must start "
                                         "with '/')")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"{_shown(value)} is not valid UTF-8; a znode path "
                                         "is text") from None
    return value


def _version_number(value: str) -> int:
    try:
        version = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(value)} is not a version number") from None
    if not -1 <= version < 2**31:
        raise argparse.ArgumentTypeError(f"{_shown(value)}: a version is -1 (any) or 0 … 2^31-1")
    return version


def _zxid(value: str) -> int:
    try:
        zxid = int(value, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{_shown(value)} is not a zxid (decimal or 0x hex)") \
            from None
    if not 0 <= zxid < 2**64:
        raise argparse.ArgumentTypeError(f"{_shown(value)}: a zxid is 0 … 2^64-1")
    return zxid


def _count(low: int):
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{_shown(value)} is not a whole number") from None
        if not low <= number <= 10**9:
            raise argparse.ArgumentTypeError(f"{_shown(value)}: must be {low} … 10^9")
        return number

    parse.__name__ = f"count>={low}"
    return parse


def _workloads(value: str) -> str:
    from zkactors.cli.bench import WORKLOADS

    names = [name.strip() for name in value.split(",")]
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown workload {_shown(unknown[0])}; choose from {', '.join(WORKLOADS)}")
    return value


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("zkactors")
    except PackageNotFoundError:  # run straight from a checkout, not installed
        return "(not installed)"


# ------------------------------------------------------------------- parser
def _parser() -> argparse.ArgumentParser:
    parser = ZkctlParser(prog="zkctl", description=__doc__.split("\n\n")[0])
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

    def path(p: argparse.ArgumentParser, default: str | None = None) -> None:
        if default is None:
            p.add_argument("path", type=_znode_path)
        else:
            p.add_argument("path", type=_znode_path, nargs="?", default=default)

    def output(p: argparse.ArgumentParser, json_alias: bool = False) -> None:
        p.add_argument("-w", "--output", choices=OUTPUTS, default="table",
                       help="print records as a table (default) or as JSON")
        if json_alias:
            p.add_argument("--json", dest="output", action="store_const", const="json",
                           help="the same as -w json")

    def value(p: argparse.ArgumentParser) -> None:
        p.add_argument("value", nargs="?", default=None,
                       help="the value; '-' reads it from stdin")
        p.add_argument("--file", help="read the value from this file")

    p = command("get", cmd_get, "print a znode's value")
    path(p)
    p.add_argument("--format", choices=VALUE_FORMATS, default="auto",
                   help="raw: the bytes as they are; hex; utf8: the text (an error if "
                        "it is not UTF-8); auto (default): utf8 if it is, else hex")
    p.add_argument("-s", "--stat", action="store_true", help="and the stat (as zkCli)")
    output(p)
    p = command("set", cmd_set, "replace a znode's value")
    path(p)
    value(p)
    p.add_argument("--version", type=_version_number, default=-1,
                   help="only if at this version")
    output(p)
    p = command("create", cmd_create, "create a znode (empty without a value)")
    path(p)
    value(p)
    p.add_argument("-p", "--makepath", action="store_true", help="create missing ancestors")
    p.add_argument("-s", "--sequence", action="store_true", help="append a sequence number")
    output(p)
    p = command("delete", cmd_delete, "delete a znode")
    path(p)
    p.add_argument("--version", type=_version_number, default=-1,
                   help="only if at this version")
    p.add_argument("-r", "--recursive", action="store_true", help="with its whole subtree")
    p = command("ls", cmd_ls, "list a znode's children")
    path(p, "/")
    p.add_argument("-s", "--stat", action="store_true", help="and the znode's stat (as zkCli)")
    output(p)
    p = command("stat", cmd_stat, "print a znode's stat")
    path(p)
    output(p, json_alias=True)
    p = command("tree", cmd_tree, "print a subtree")
    path(p, "/")
    p.add_argument("--values", action="store_true", help="show values too")
    output(p)
    p = command("sync", cmd_sync, "wait until the connected node has every write "
                                  "committed before (ZooKeeper's sync)")
    path(p)
    p = command("watch", cmd_watch, "print every change of a znode (or subtree) until Ctrl-C")
    path(p)
    p.add_argument("-r", "--recursive", action="store_true", help="every node under it too")
    p.add_argument("--since", type=_zxid, default=None,
                   help="replay changes after this zxid first (decimal or 0x hex)")
    output(p, json_alias=True)
    p = command("status", cmd_status, "role, term, commit index, applied zxid, lag and "
                                      "tree digest per node")
    p.add_argument("--no-digest", dest="digest", action="store_false",
                   help="leave out the tree digest: each node hashes its whole tree for "
                        "it (about 0.25 s per 100,000 znodes, once per applied zxid)")
    output(p, json_alias=True)
    p = command("leader", cmd_leader, "print the leader's node id")
    output(p)
    p = command("sessions", cmd_sessions, "open sessions: id, timeout, node, ephemerals held")
    output(p)
    p = command("lock", cmd_lock, "run a command while holding a lock (its fencing token "
                                  "in $ZKACTORS_FENCING_TOKEN)")
    path(p)
    p.add_argument("--wait", type=_seconds, default=None,
                   help="give up after this many seconds (default: wait as long as it takes)")
    p.add_argument("--session-timeout", type=_seconds, default=10.0,
                   help="the lock's session timeout, seconds (default 10)")
    p.add_argument("cmd", nargs=argparse.REMAINDER,
                   help="-- COMMAND [ARGS...] (options of lock go before PATH)")
    p = command("health", cmd_health, "ask every node's admin endpoint whether it serves")
    output(p)
    p = command("ui", cmd_ui, "print the URL of the live view each node's admin endpoint "
                              "serves")
    output(p)
    p = command("backup", cmd_backup, "write the whole tree, at one zxid, to a file")
    p.add_argument("file", help="where to write it (replaced atomically)")
    output(p)
    p = command("restore", cmd_restore, "seed a new, stopped ensemble from a backup")
    p.add_argument("file", help="a file written by 'zkctl backup'")
    p.add_argument("--conf", default=argparse.SUPPRESS,
                   help="the new ensemble's node INI files (as the global --conf)")
    output(p)
    p = command("verify", cmd_verify, "check a stopped node's data dir (WAL, snapshots, "
                                      "term and vote) without starting it or changing a file")
    p.add_argument("data_dir", help="the node's [node] data_dir; refused while its node runs "
                                    "(the node holds an flock on DATA_DIR/wal/LOCK)")
    output(p)
    p = command("up", cmd_up, "start the local ensemble from --conf in the background")
    p.add_argument("--wait", type=_seconds, default=30.0, help="seconds to wait until it serves")
    p = command("down", cmd_down, "stop the local ensemble started by 'up'")
    p.add_argument("--wait", type=_seconds, default=10.0, help="seconds before SIGKILL")
    from zkactors.cli import bench

    p = command("bench", cmd_bench, "measure latency and throughput")
    bench.add_arguments(p)
    # bench's arguments, checked here like every other: no zero clients, negative
    # seconds or unknown workload reaches the load generators.
    for action in p._actions:
        if action.dest == "workloads":
            action.type = _workloads
        elif action.type is int:
            action.type = _count(0 if action.dest == "value_size" else 1)
        elif action.type is float:
            action.type = _seconds
    p.add_argument("-w", "--output", choices=OUTPUTS, default=None,
                   help="results as a table (default) or as JSON (the same as --json)")
    return parser


# ------------------------------------------------------------------ helpers
def hosts_of(args: argparse.Namespace) -> str:
    if args.hosts:
        return args.hosts
    return ",".join(cfg.me.client for cfg in load_ensemble(args.conf))


def connect(args: argparse.Namespace, **options: Any):
    """A started client; at once a one-line error if no endpoint accepts a connection."""
    from zkactors.cli.zkctl_status import NODE_TIMEOUT_S, all_refused
    from zkactors.client import Client

    hosts = hosts_of(args)
    reason = all_refused(hosts.split(","), min(args.timeout, NODE_TIMEOUT_S))
    if reason is not None:
        raise OperationError(f"no zkactors node reachable: {reason}")
    options.setdefault("session", False)
    client = Client(hosts, request_timeout=args.timeout, name="zkctl", **options)
    client.start(timeout=args.timeout)
    return client


def read_value(args: argparse.Namespace, required: bool) -> bytes:
    """The value to write: the argument as given (its bytes exactly, even if they
    are not UTF-8), stdin for ``-``, the file for ``--file``; empty if none and
    ``required`` is false (a bare ``create``, as zkCli: stdin is then not read)."""
    if args.value is not None and args.file is not None:
        raise UsageError("give the value or --file, not both")
    if args.file is not None:
        if not args.file:
            raise UsageError("--file: the file name is empty")
        try:
            with open(args.file, "rb") as f:
                return f.read()
        except OSError as err:
            raise OperationError(f"cannot read --file {_shown(args.file)}: "
                                 f"{err.strerror or err}") from None
    if args.value == "-":
        return sys.stdin.buffer.read()
    if args.value is None:
        if required:
            raise UsageError(f"{args.command}: a value is needed: VALUE, '-' for stdin, "
                             "or --file FILE")
        return b""
    return os.fsencode(args.value)


def emit_json(record: Any) -> None:
    print(json.dumps(record))


# ------------------------------------------------------------------ znodes
def cmd_get(args: argparse.Namespace) -> int:
    if args.format == "raw" and (args.stat or args.output == "json"):
        raise UsageError("--format raw prints the bytes alone: not with -s or -w json")
    with connect(args) as client:
        value, stat = client.get(args.path)
    if args.output == "json":
        record = {"path": args.path, **value_record(value, args.format)}
        if args.stat:
            record["stat"] = stat_record(stat)
        emit_json(record)
        return 0
    if args.format == "raw":
        sys.stdout.flush()
        sys.stdout.buffer.write(value)
        sys.stdout.buffer.flush()
        return 0
    if args.format == "utf8":
        text = decode_utf8(value)
    else:
        text, encoding = value_text(value, args.format)
        if encoding == "hex" and args.format == "auto":
            print(f"zkctl: note: {args.path}: the value is not UTF-8 ({len(value)} bytes), "
                  "shown in hex; --format raw prints the bytes", file=sys.stderr)
    print(text)
    if args.stat:
        print("\n".join(stat_lines(stat)))
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    value = read_value(args, required=True)
    with connect(args) as client:
        stat = client.set(args.path, value, version=args.version)
    if args.output == "json":
        emit_json({"path": args.path, "stat": stat_record(stat)})
    else:
        print(f"version {stat.version} mzxid {format_zxid(stat.mzxid)}")
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    value = read_value(args, required=False)
    with connect(args) as client:
        created = client.create(args.path, value, makepath=args.makepath,
                                sequence=args.sequence)
    if args.output == "json":
        emit_json({"path": created})
    else:
        print(created)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    with connect(args) as client:
        client.delete(args.path, version=args.version, recursive=args.recursive)
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    with connect(args) as client:
        children = client.get_children(args.path)
        stat = client.exists(args.path) if args.stat else None
    if args.stat and stat is None:  # deleted between the two reads
        _fail(f"NoNodeError: node does not exist: {args.path}")
        return 1
    if args.output == "json":
        record: dict[str, Any] = {"path": args.path, "children": children}
        if stat is not None:
            record["stat"] = stat_record(stat)
        emit_json(record)
        return 0
    for name in children:
        print(name)
    if stat is not None:
        print("\n".join(stat_lines(stat)))
    return 0


def cmd_stat(args: argparse.Namespace) -> int:
    with connect(args) as client:
        stat = client.exists(args.path)
    if stat is None:
        _fail(f"NoNodeError: node does not exist: {args.path}")
        return 1
    if args.output == "json":
        emit_json(stat_record(stat))
    else:
        print("\n".join(stat_lines(stat)))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    with connect(args) as client:
        client.sync(args.path)
    return 0


def cmd_tree(args: argparse.Namespace) -> int:
    from zkactors.errors import NoNodeError

    records = []
    complete = True
    with connect(args) as client:
        # Depth first, children in order; a stack, not recursion: a path may be
        # thousands of levels deep. A node deleted while we walk is left out.
        stack = [(args.path, 0)]
        while stack:
            if len(records) >= TREE_MAX_NODES:
                complete = False
                break
            path, depth = stack.pop()
            try:
                value = client.get(path)[0] if args.values else None
                children = client.get_children(path)
            except NoNodeError:
                if depth == 0:
                    raise
                continue
            records.append((path, depth, value))
            base = path.rstrip("/")
            stack.extend((f"{base}/{child}", depth + 1) for child in reversed(children))
    if args.output == "json":
        emit_json([{"path": path, **({} if value is None else value_record(value, "auto"))}
                   for path, _, value in records])
    else:
        for path, depth, value in records:
            name = path if depth == 0 else path.rsplit("/", 1)[1]
            line = "  " * depth + one_line(name, limit=len(name))
            if value is not None:
                line += " = " + tree_value(value)
            print(line)
    if not complete:
        _fail(f"tree: stopped after {TREE_MAX_NODES} nodes; ask for a smaller subtree")
        return 1
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """Tail events as lines; the client follows failover, so this survives the node
    it is attached to going away. SIGINT (Ctrl-C) ends it with exit code 0."""
    import threading

    def show(event: Any) -> None:
        if args.output == "json":
            line = json.dumps({"type": event.type, "path": event.path, "zxid": event.zxid,
                               "version": event.version})
        else:
            line = f"{format_zxid(event.zxid)} {event.type} {event.path} {event.version}"
        print(line, flush=True)

    # A long session: a watcher waits out an election or a restart rather than give up.
    client = connect(args, timeout=3600.0)
    forever = threading.Event()
    try:
        # A read first, so the node checks the path: the client subscribes to a
        # watch path before any node has seen it, and a subscription to a path of a
        # megabyte crashes libzmq when the socket closes (its prefix trie is freed
        # recursively, one level per byte).
        client.exists(args.path)
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
    from zkactors.cli import zkctl_status

    rows = zkctl_status.status(args.conf, args.hosts, args.timeout, digest=args.digest)
    if args.output == "json":
        emit_json(rows)
        return 0
    print("\n".join(status_lines(rows)))
    return 0 if all(row["role"] != "down" for row in rows) else 1


def cmd_leader(args: argparse.Namespace) -> int:
    from zkactors.cli import zkctl_status

    leaders = [row for row in zkctl_status.status(args.conf, args.hosts, args.timeout)
               if row["role"] == "leader"]
    if not leaders:
        _fail("no leader")
        return 1
    if args.output == "json":
        emit_json({"leader": leaders[0]["node"], "endpoint": leaders[0]["endpoint"]})
    else:
        print(leaders[0]["node"])
    return 0


def cmd_sessions(args: argparse.Namespace) -> int:
    from zkactors.cli.zkctl_status import sessions

    rows = sessions(args.conf, args.hosts, args.timeout)
    if args.output == "json":
        emit_json(rows)
        return 0
    print(f"{'session':>18}  {'timeout':>9}  {'ephemerals':>10}  nodes")
    for row in rows:
        nodes = ",".join(map(str, row["nodes"])) or "-"
        print(f"{row['session']:#018x}  {row['timeout_ms'] / 1000:>8.1f}s  "
              f"{row['ephemerals']:>10}  {nodes}")
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    """Hold a Lock while a command runs; if the session is lost meanwhile (so the
    lock may be someone else's), stop the command and fail."""
    import signal
    import subprocess
    import threading

    from zkactors.client import KazooState
    from zkactors.recipe import LockTimeout

    if args.cmd and args.cmd[0] != "--" and args.cmd[0].startswith("-"):
        raise UsageError(f"options of lock go before the path: zkctl lock [--wait S] "
                         f"PATH -- COMMAND (got {_shown(args.cmd[0])} after it)")
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        raise UsageError("no command given: zkctl lock PATH -- COMMAND [ARGS...]")
    lost = threading.Event()
    with connect(args, session=True, timeout=args.session_timeout) as client:
        client.add_listener(lambda state: lost.set() if state == KazooState.LOST else None)
        lock = client.Lock(args.path, f"zkctl lock (pid {os.getpid()})")
        try:
            lock.acquire(timeout=args.wait)
        except LockTimeout:
            raise OperationError(f"lock {args.path} not acquired within {args.wait} s") \
                from None
        try:
            env = {**os.environ, "ZKACTORS_FENCING_TOKEN": str(lock.token),
                   "ZKACTORS_LOCK_PATH": args.path}
            try:
                proc = subprocess.Popen(command, env=env)
            except OSError as err:
                raise OperationError(f"cannot run {command[0]}: {err.strerror}") from None
            while proc.poll() is None:
                if lost.wait(0.1):
                    proc.send_signal(signal.SIGTERM)
                    proc.wait()
                    raise OperationError(f"session lost while holding {args.path}: the "
                                         "command was stopped (SIGTERM)")
            return proc.returncode
        finally:
            lock.release()


def cmd_health(args: argparse.Namespace) -> int:
    from zkactors.cli.health import health, health_lines

    if args.hosts:
        raise UsageError("health asks the [admin] http endpoints in --conf, not --hosts")
    rows = health(load_ensemble(args.conf), args.timeout)
    if args.output == "json":
        emit_json(rows)
    else:
        print("\n".join(health_lines(rows)))
    return 0 if all(row["serving"] for row in rows) else 1


def cmd_ui(args: argparse.Namespace) -> int:
    """Any node with an admin endpoint serves the same view of the whole ensemble."""
    if args.hosts:
        raise UsageError("ui reads the [admin] http endpoints in --conf, not --hosts")
    rows = [{"node": config.node_id, "url": f"http://{config.admin.http}/ui"}
            for config in load_ensemble(args.conf) if config.admin.http]
    if not rows:
        _fail(f"no node in {args.conf} has an [admin] http endpoint, which serves the view")
        return 1
    if args.output == "json":
        emit_json(rows)
    else:
        print("\n".join(f"{row['url']}   (node {row['node']})" for row in rows))
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from zkactors.cli.backup import backup

    summary = backup(hosts_of(args), args.file, args.timeout)
    if args.output == "json":
        emit_json({"file": args.file, "index": summary.index, "term": summary.term,
                   "zxid": summary.zxid, "znodes": summary.znodes,
                   "digest": f"{summary.digest:016x}"})
    else:
        print(f"backed up {summary.line()} to {one_line(args.file, limit=len(args.file))}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from zkactors.cli.backup import restore

    configs = load_ensemble(args.conf)
    summary = restore(args.file, configs)
    if args.output == "json":
        emit_json({"file": args.file, "nodes": [c.node_id for c in configs],
                   "index": summary.index, "term": summary.term, "zxid": summary.zxid,
                   "znodes": summary.znodes, "digest": f"{summary.digest:016x}"})
    else:
        print(f"restored {summary.line()} into nodes "
              f"{', '.join(str(c.node_id) for c in configs)} (start them with 'zkctl up')")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """One line per problem or note, then a summary line; exit 0 when sound."""
    from zkactors.cli.verify import NotVerifiable, verify

    try:
        report = verify(args.data_dir)
    except NotVerifiable as err:
        raise UsageError(str(err)) from None
    if args.output == "json":
        emit_json(report.record())
    else:
        for line in report.lines():
            print(one_line(line, limit=1000))
    return 0 if report.sound else 1


def cmd_up(args: argparse.Namespace) -> int:
    for line in ensemble.up(args.conf, args.wait):
        print(line)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    for line in ensemble.down(args.conf, args.wait):
        print(line)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from zkactors.cli import bench

    if args.output is not None:
        args.json = args.output == "json"
    return bench.cmd_bench(args)


if __name__ == "__main__":
    sys.exit(main())
