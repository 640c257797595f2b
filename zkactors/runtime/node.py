"""The node supervisor: recovers state from disk, wires the actors, watches them die.

Start-up order matters for durability: the WAL is opened (a torn tail repaired,
corruption refused) and loaded, with the term and vote, *before* any socket is
bound. The tree gets the snapshot and the log entries up to the commit hint
(known committed; :func:`~zkactors.engine.state.recover`); the rest only once a
leader has them committed, and reads are refused until a live leader is known,
so a node never answers from a state that might not survive. Then every actor
binds its inbox, then connects to the others, then the threads start.

If any actor dies the node stops as a whole and exits non-zero; SIGTERM/SIGINT
stop it cleanly (each actor leaves its poll loop within ``IDLE_POLL_MS``).
"""

from __future__ import annotations

import gc
import os
import threading
import time

import zmq

from zkactors.config import NodeConfig
from zkactors.core.gateway import GatewayCore
from zkactors.core.replog import ReplicatedLog
from zkactors.core.store import StoreCore
from zkactors.core.tree import Tree
from zkactors.core.watches import WatchCore
from zkactors.engine.state import RecoveryError, recover
from zkactors.logsetup import get_logger
from zkactors.protocol import make_zxid
from zkactors.runtime.actor import Actor
from zkactors.runtime.admin import AdminServer
from zkactors.runtime.diskspace import is_disk_full
from zkactors.runtime.election import ElectionActor
from zkactors.runtime.gateway import GatewayActor
from zkactors.runtime.heap import CollectionTimes
from zkactors.runtime.log import LogActor
from zkactors.runtime.store import StoreActor
from zkactors.runtime.watch import WatchActor
from zkactors.storage.snapshot import SnapshotStore
from zkactors.storage.stable import StableStore
from zkactors.storage.wal import WriteAheadLog

STOP_DEADLINE_S = 2.0


class StartupError(Exception):
    """The node cannot start; the message says why in one line."""


class Node:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.log = get_logger(node=config.node_id, actor="supervisor")
        self.stopping = threading.Event()
        self.failed = threading.Event()
        self.disk_full = False
        self.actors: list[Actor] = []
        self.context: zmq.Context | None = None
        self._started = False
        self.wal: WriteAheadLog | None = None
        self.stable: StableStore | None = None
        self.admin: AdminServer | None = None
        #: How long the garbage collector held the node (for the admin endpoint).
        self.collections = CollectionTimes()

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        config = self.config
        os.makedirs(config.data_dir, exist_ok=True)
        started = time.monotonic()
        self.collections.install()
        self.wal = WriteAheadLog(
            os.path.join(config.data_dir, "wal"),
            segment_bytes=config.storage.wal_segment_bytes,
            fsync=config.storage.fsync,
        )
        if self.wal.repaired_bytes:
            self.log.warning("wal_torn_tail_repaired", bytes=self.wal.repaired_bytes)
        stable = self.stable = StableStore(config.data_dir, fsync=config.storage.fsync)
        limits = config.limits
        store_core = StoreCore(Tree(max_data_bytes=limits.max_data_bytes,
                                    max_path_bytes=limits.max_path_bytes))
        snapshots = SnapshotStore(os.path.join(config.data_dir, "snap"),
                                  fsync=config.storage.fsync)
        # Loading makes only long-lived objects, and no other thread runs yet: the
        # collector stays off until they are frozen. (On, it spent most of a
        # 79k-entry load in full collections of the growing heap: 2.5 s, not 0.6.)
        gc.disable()
        try:
            try:
                recovered = recover(self.wal, stable, snapshots, store_core)
            except RecoveryError as err:
                raise StartupError(str(err)) from None
            term, voted_for, base, entries, commit = (recovered.term, recovered.voted_for,
                                                      recovered.base, recovered.entries,
                                                      recovered.commit)
            # The tree starts from the snapshot and the log applied after it (up to
            # the commit hint), so the watch history refills from there.
            watch_core = WatchCore(config.watch.history_events, config.watch.history_bytes,
                                   config.watch.heartbeat_ms,
                                   start_zxid=make_zxid(base[1], base[0]),
                                   idle_heartbeat_ms=config.watch.idle_heartbeat_ms)
            watch_core.on_events(recovered.events, store_core.applied_zxid)  # (no subscribers)
            del recovered
            gc.freeze()  # long-lived: keep full collections off it from now on
        finally:
            gc.enable()
        self.log.info("state_loaded", snapshot_index=base[0], entries=len(entries), term=term,
                      applied=commit, seconds=round(time.monotonic() - started, 3))

        self.context = zmq.Context()
        common = {"node_id": config.node_id, "context": self.context, "stopping": self.stopping,
                  "failed": self.failed, "max_batch": limits.max_batch}
        me = config.me
        members = [m.id for m in config.members]
        # One at a time into self.actors: if a bind fails (a port in use), stop()
        # closes the sockets of those already made, or context.term() would wait
        # for them forever.
        self.actors = []
        for make in [
            lambda: StoreActor(core=store_core, snapshots=snapshots,
                               snapshot_every=config.storage.snapshot_every, members=members,
                               snapshot_at=base[0], **common),
            lambda: LogActor(core=ReplicatedLog(config.node_id, members, term, voted_for, entries,
                                                max_batch=limits.max_batch, snapshot=base,
                                                commit=commit,
                                                # Ids no earlier run of this node used.
                                                read_id_base=int.from_bytes(os.urandom(6),
                                                                            "big") << 16),
                             wal=self.wal, stable=stable, snapshots=snapshots,
                             log_retain_entries=config.storage.log_retain_entries,
                             peer_endpoints={m.id: m.peer for m in config.members},
                             client_endpoints={m.id: m.client for m in config.members},
                             fingerprint=config.cluster_fingerprint(), **common),
            lambda: ElectionActor(members={m.id: m.election for m in config.members},
                                  endpoint=me.election, heartbeat_ms=config.timing.heartbeat_ms,
                                  election_timeout_ms=config.timing.election_timeout_ms,
                                  fingerprint=config.cluster_fingerprint(), **common),
            lambda: WatchActor(endpoint=me.watch, subscriber_queue=config.watch.subscriber_queue,
                               core=watch_core, **common),
            lambda: GatewayActor(
                core=GatewayCore(
                    node_id=config.node_id,
                    max_data_bytes=limits.max_data_bytes,
                    max_path_bytes=limits.max_path_bytes,
                    max_inflight=limits.max_inflight_per_client,
                    max_clients=limits.max_clients,
                    session_timeout_ms=config.timing.client_session_timeout_ms,
                    min_session_timeout_ms=config.session.min_timeout_ms,
                    max_session_timeout_ms=config.session.max_timeout_ms,
                    identity={"role": "follower", "endpoint": me.client,
                              "watch_endpoint": me.watch},
                ),
                endpoint=me.client,
                record_metrics=config.admin.http_address is not None,
                **common,
            ),
        ]:
            try:
                self.actors.append(make())
            except zmq.ZMQError as err:
                raise StartupError(self._bind_error(err)) from None
        address = config.admin.http_address
        if address is not None:
            try:
                self.admin = AdminServer(self, *address)
            except OSError as err:
                raise StartupError(f"cannot listen on {config.admin.http} (http of [admin] "
                                   f"in {config.path}): {err.strerror}") from None
        for actor in self.actors:
            actor.connect_outboxes()
        for actor in self.actors:
            actor.start()
        if self.admin is not None:
            self.admin.start()
        self._started = True
        self.log.info("node_serving", client=me.client, watch=me.watch, members=members,
                      last_zxid=make_zxid(entries[-1].term, entries[-1].index) if entries else 0)

    def _bind_error(self, err: zmq.ZMQError) -> str:
        """One line naming the endpoint that could not be bound, and where it is set."""
        config, text = self.config, str(err)
        for key in ("client", "peer", "election", "watch"):
            endpoint = getattr(config.me, key)
            if endpoint in text:
                return (f"cannot listen on {endpoint} ({key} of [member.{config.node_id}] in "
                        f"{config.path}): {err.strerror.split(' (addr=')[0]}")
        return f"cannot open a socket: {err}"

    def health(self) -> tuple[bool, str]:
        """Whether this node serves reads now, and if not, why (for ``/health``)."""
        if not self._started or self.stopping.is_set():
            return False, "not running"
        if self.failed.is_set() or not all(a.is_alive() for a in self.actors):
            return False, "an actor died; the node is stopping"
        gateway = next((a for a in self.actors if a.actor_name == "gateway"), None)
        if gateway is None:
            return False, "not running"
        if not gateway.core.serving_reads:
            return False, "no live leader known"
        if not gateway.core.caught_up:
            return False, "catching up with the leader"
        return True, "serving"

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
        if self.admin is not None:
            self.admin.close()
        deadline = time.monotonic() + STOP_DEADLINE_S * 0.75
        for actor in self.actors:
            if actor.ident is None:  # never started (the start failed): just its sockets
                actor.close_sockets()
                continue
            actor.join(max(0.0, deadline - time.monotonic()))
        stuck = [a.actor_name for a in self.actors if a.is_alive()]
        dead = [a.actor_name for a in self.actors if a.error is not None]
        #: An actor died for want of disk space: zknode waits for room, then
        #: starts afresh (zkactors.runtime.diskspace).
        self.disk_full = any(is_disk_full(a.error) for a in self.actors)
        if self.wal is not None and not stuck:
            self.wal.close()
        if self.stable is not None and not stuck:
            self.stable.close()
        if self.context is not None and not stuck:
            if self._started:
                self.context.term()
            else:
                # A start that failed half way (a port in use) may have left a
                # half-built actor's sockets open: close every socket, no thread
                # runs yet.
                self.context.destroy(linger=0)
        self.collections.uninstall()
        code = 1 if (self.failed.is_set() or stuck) else 0
        if dead or stuck:
            self.log.error("node_stopped", dead_actors=dead, stuck_actors=stuck)
        else:
            self.log.info("node_stopped")
        return code
