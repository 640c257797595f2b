"""``zknode CONFIG.ini``: run one node in the foreground until SIGTERM/SIGINT.

Exit codes: 0 clean stop, 1 an actor died (the log says which and why),
2 bad configuration or the node could not start (one line on stderr).

A node stopped by a full disk (or unable to start for one) does not exit: it
waits until its data dir's filesystem has room, saying so once in its log, then
starts afresh in the same process (see zkactors.runtime.diskspace).
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import signal
import sys
import threading

import zmq

from zkactors.config import ConfigError, NodeConfig, load_node_config
from zkactors.logsetup import configure_logging, get_logger
from zkactors.runtime.diskspace import (
    Refuser,
    is_disk_full,
    space_needed,
    wait_for_space,
)
from zkactors.storage.stable import StableStoreError
from zkactors.storage.wal import WalError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zknode", description="Run one zkactors node.")
    parser.add_argument("config", help="the node's INI file, e.g. conf/node1.ini")
    args = parser.parse_args(argv)
    try:
        config = load_node_config(args.config)
    except ConfigError as err:
        print(f"zknode: {err}", file=sys.stderr)
        return 2
    configure_logging(config.log_level)

    # Imported after logging is configured so that module-level loggers pick it up.
    from zkactors.runtime.node import Node, StartupError

    node = Node(config)
    asked_to_stop = threading.Event()

    def stop(*_: object) -> None:
        asked_to_stop.set()
        node.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # ``kill -USR1 <pid>`` prints every thread's stack to stderr, as jstack does
    # for ZooKeeper: the way to see where a node that stopped answering waits.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        node.start()
    except (StartupError, WalError, StableStoreError, OSError, zmq.ZMQError) as err:
        node.stop()
        if is_disk_full(err):
            return restart_when_there_is_room(config, asked_to_stop, 2)
        print(f"zknode: {err}", file=sys.stderr)
        return 2
    code = node.wait()
    if node.disk_full and not asked_to_stop.is_set():
        return restart_when_there_is_room(config, asked_to_stop, code)
    return code


def restart_when_there_is_room(config: NodeConfig, asked_to_stop: threading.Event,
                               code: int) -> int:
    """Wait for space on the data dir's filesystem, then start afresh in this
    process (same PID, state from disk). Returns ``code`` if asked to stop first."""
    log = get_logger(node=config.node_id, actor="zknode")
    needed = space_needed(config.storage.wal_segment_bytes)
    reason = (f"node {config.node_id} has no space left on {config.data_dir} and waits "
              f"for {needed} bytes free; try another node")
    try:
        refuser: Refuser | None = Refuser(config.me.client, reason)
    except zmq.ZMQError as err:  # (its port still held: clients just find it silent)
        log.warning("refuser_not_bound", endpoint=config.me.client, error=str(err))
        refuser = None
    try:
        if not wait_for_space(config.data_dir, needed, asked_to_stop, log, refuser):
            return code
    finally:
        if refuser is not None:
            refuser.close()
    log.info("restarting", reason="disk space is back")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)
    return code  # (not reached)


if __name__ == "__main__":
    sys.exit(main())
