"""The node supervisor: recovers state from disk, wires the actors, watches them die.

Start-up order matters for durability: the WAL is opened (a torn tail repaired,
corruption refused) and replayed into the tree *before* any socket is bound, so a
node never answers from a partial state. Then every actor binds its inbox, then
connects to the others, then the threads start.

If any actor dies the node stops as a whole and exits non-zero; SIGTERM/SIGINT
stop it cleanly (each actor leaves its poll loop within ``IDLE_POLL_MS``).
"""

from __future__ import annotations

import os
import threading
import time

import zmq

from zkactors.config import NodeConfig
from zkactors.core.gateway import GatewayCore
from zkactors.core.replog import LogCore
from zkactors.core.store import StoreCore
from zkactors.core.tree import Tree
from zkactors.errors import ZookeeperError
from zkactors.logsetup import get_logger
from zkactors.protocol import make_zxid, unpack
from zkactors.runtime.actor import Actor
from zkactors.runtime.gateway import GatewayActor
from zkactors.runtime.log import LogActor
from zkactors.runtime.store import StoreActor
from zkactors.runtime.watch import WatchActor
from zkactors.storage.wal import WriteAheadLog

STOP_DEADLINE_S = 2.0


class StartupError(Exception):
    """The node cannot start; the message says why in one line."""


def replay(wal: WriteAheadLog, tree: Tree) -> tuple[int, int]:
    """Apply every WAL record to ``tree``; return (last index, last term)."""
    index = term = 0
    for index, payload in wal.replay():
        term, time_ms, txn = unpack(payload)
        try:
            tree.apply(txn, make_zxid(term, index), time_ms)
        except ZookeeperError:
            pass  # a failed txn fails again, identically: it changed nothing the first time
    return index, term


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.log = get_logger(node=config.node_id, actor="supervisor")
        self.stopping = threading.Event()
        self.failed = threading.Event()
        self.actors: list[Actor] = []
        self.context: zmq.Context | None = None
        self.wal: WriteAheadLog | None = None

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        config = self.config
        if len(config.members) > 1:
            raise StartupError(
                f"{config.path}: {len(config.members)} members configured, but replication "
                "is not available yet: configure exactly one [member.N] section"
            )
        os.makedirs(config.data_dir, exist_ok=True)
        started = time.monotonic()
        self.wal = WriteAheadLog(
            os.path.join(config.data_dir, "wal"),
            segment_bytes=config.storage.wal_segment_bytes,
            fsync=config.storage.fsync,
        )
        if self.wal.repaired_bytes:
            self.log.warning("wal_torn_tail_repaired", bytes=self.wal.repaired_bytes)
        limits = config.limits
        tree = Tree(max_data_bytes=limits.max_data_bytes, max_path_bytes=limits.max_path_bytes)
        last_index, last_term = replay(self.wal, tree)
        term = max(1, last_term)
        self.log.info("wal_replayed", entries=last_index, znodes=len(tree),
                      seconds=round(time.monotonic() - started, 3))

        self.context = zmq.Context()
        common = {"node_id": config.node_id, "context": self.context, "stopping": self.stopping,
                  "failed": self.failed, "max_batch": limits.max_batch}
        me = config.me
        self.actors = [
            StoreActor(core=StoreCore(tree, last_index, last_term, term), **common),
            LogActor(core=LogCore(config.node_id, [m.id for m in config.members], term,
                                  last_index), wal=self.wal, **common),
            WatchActor(endpoint=me.watch, **common),
            GatewayActor(
                core=GatewayCore(
                    node_id=config.node_id,
                    max_data_bytes=limits.max_data_bytes,
                    max_path_bytes=limits.max_path_bytes,
                    max_inflight=limits.max_inflight_per_client,
                    max_clients=limits.max_clients,
                    session_timeout_ms=config.timing.client_session_timeout_ms,
                    identity={"role": "leader", "endpoint": me.client},
                ),
                endpoint=me.client,
                **common,
            ),
        ]
        for actor in self.actors:
            actor.connect_outboxes()
        for actor in self.actors:
            actor.start()
        self.log.info("node_serving", client=me.client, watch=me.watch,
                      last_zxid=make_zxid(last_term, last_index))

    # ------------------------------------------------------------------- run
    def wait(self) -> int:
        """Block until a stop is requested or an actor dies; return the exit code."""
        while not self.stopping.wait(0.1):
            if self.failed.is_set() or not all(a.is_alive() for a in self.actors):
                self.failed.set()
                break
        return self.stop()

    def stop(self) -> int:
        self.stopping.set()
        deadline = time.monotonic() + STOP_DEADLINE_S * 0.75
        for actor in self.actors:
            actor.join(max(0.0, deadline - time.monotonic()))
        stuck = [a.actor_name for a in self.actors if a.is_alive()]
        dead = [a.actor_name for a in self.actors if a.error is not None]
        if self.wal is not None and not stuck:
            self.wal.close()
        if self.context is not None and not stuck:
            self.context.term()
        code = 1 if (self.failed.is_set() or stuck) else 0
        if dead or stuck:
            self.log.error("node_stopped", dead_actors=dead, stuck_actors=stuck)
        else:
            self.log.info("node_stopped")
        return code
