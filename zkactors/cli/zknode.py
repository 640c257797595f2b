"""``zknode CONFIG.ini``: run one node in the foreground until SIGTERM/SIGINT.

Exit codes: 0 clean stop, 1 an actor died (the log says which and why),
2 bad configuration or the node could not start (one line on stderr).
"""

from __future__ import annotations

import argparse
import signal
import sys

import zmq

from zkactors.config import ConfigError, load_node_config
from zkactors.logsetup import configure_logging
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
    signal.signal(signal.SIGTERM, lambda *_: node.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: node.stopping.set())
    try:
        node.start()
    except (StartupError, WalError, StableStoreError, OSError, zmq.ZMQError) as err:
        print(f"zknode: {err}", file=sys.stderr)
        node.stop()
        return 2
    return node.wait()


if __name__ == "__main__":
    sys.exit(main())
