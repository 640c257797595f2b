"""Gateway actor: owns the client ROUTER socket; drives :class:`GatewayCore`.

Frames are drained in batches: all writes that arrived together travel to the log
actor as one message, all reads to the store actor as one message, and the replies
ready for one client at once leave as one frame.
"""

from __future__ import annotations

import time
from typing import Any

import zmq

from zkactors.core.dedup import TXN_TAGGED
from zkactors.core.gateway import GatewayCore
from zkactors.core.sessions import TOUCH_EVERY_MS
from zkactors.protocol import pack
from zkactors.runtime.actor import Actor, now_ms
from zkactors.runtime.mail import (
    Health,
    PeerCounters,
    Reads,
    Replies,
    Role,
    SessionsEnded,
    Touched,
    WatchQueries,
    Writes,
)
from zkactors.runtime.metrics import RequestMetrics


class GatewayActor(Actor):
    talks_to = ("log", "store", "watch")

    def __init__(self, *args: Any, core: GatewayCore, endpoint: str,
                 record_metrics: bool = False, **kwargs: Any) -> None:
        super().__init__("gateway", *args, **kwargs)
        self.core = core
        #: Requests by op and outcome, latency, bytes: only with an admin endpoint.
        self.request_metrics = RequestMetrics() if record_metrics else None
        #: Times a new leader was seen take over (the role messages say who leads).
        self.leader_changes = 0
        self._leader = 0
        self._touch_due = 0
        self.endpoint = endpoint
        self.router = self.context.socket(zmq.ROUTER)
        self.router.linger = 0
        self.router.sndhwm = 100_000
        self.router.rcvhwm = 100_000
        # Bind here, on the supervisor's thread, so a busy port fails the start.
        self.router.bind(endpoint)
        self.add_socket(self.router)
        self.applied_zxid = 0

    def on_socket(self, sock: zmq.Socket) -> None:
        router = self.router
        core = self.core
        now = now_ms()
        writes: list[list] = []
        reads: list[list] = []
        replies: list[list] = []
        watch_queries: list[list] = []
        received = 0
        for _ in range(self.max_batch):
            try:
                frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            received += len(frames[-1])
            if len(frames) != 2:
                core.on_bad_frame(frames[0], f"{len(frames) - 1} frames, expected 1")
                continue
            core.on_frame(frames[0], frames[1], now, writes, reads, replies, watch_queries)
        metrics = self.request_metrics
        if metrics is not None:
            metrics.bytes_in += received
            self._time_requests(metrics, writes, reads, watch_queries)
        if writes:
            self.send("log", Writes(writes))
        if reads:
            self.send("store", Reads(reads))
        if watch_queries:
            self.send("watch", WatchQueries(watch_queries))
        if replies:
            self._send_replies(replies, self.applied_zxid)
        self._report_problems()

    def on_inbox(self, messages: list[Any]) -> None:
        core = self.core
        for message in messages:
            if isinstance(message, Replies):
                self.applied_zxid = max(self.applied_zxid, message.applied_zxid)
                core.on_replies(message.replies)
                self._send_replies(message.replies, self.applied_zxid)
            elif isinstance(message, Role):
                core.on_role(message.role, message.term, message.leader,
                             message.leader_endpoint, message.caught_up, message.read_floor)
                leader = message.leader
                if leader and leader != self._leader:
                    self.leader_changes += 1
                if leader:
                    self._leader = leader
                self.log.info("role", role=message.role, term=message.term, leader=leader,
                              caught_up=message.caught_up, read_floor=message.read_floor)
            elif isinstance(message, PeerCounters):
                core.on_peer_counters(message.actor, message.counters)
            elif isinstance(message, SessionsEnded):
                core.on_sessions_ended(message.session_ids)
            elif isinstance(message, Health):
                core.serving_reads = message.alive
                self.log.info("leader_alive" if message.alive else "leader_lost")
            else:
                raise TypeError(f"gateway got {message!r:.80}")

    def _send_replies(self, replies: list[list], zxid: int) -> None:
        """One frame per client connection, however many of its replies are ready."""
        by_client: dict[bytes, list] = {}
        for ident, rid, code, result, *rest in replies:
            # The zxid the request itself saw, when the store says (see core.store).
            entry = [rid, code, result, rest[1] if len(rest) > 1 else zxid]
            batch = by_client.get(ident)
            if batch is None:
                by_client[ident] = [entry]
            else:
                batch.append(entry)
        send = self.router.send_multipart
        metrics = self.request_metrics
        if metrics is None:
            for ident, batch in by_client.items():
                send([ident, pack(batch)])
            return
        sent, answered, now = 0, metrics.answered_one, time.perf_counter()
        for ident, batch in by_client.items():
            frame = pack(batch)
            sent += len(frame)
            send([ident, frame])
            for rid, code, _, _ in batch:
                answered(ident, rid, code, now)
        metrics.bytes_out += sent

    @staticmethod
    def _time_requests(metrics: RequestMetrics, writes: list, reads: list,
                       watch_queries: list) -> None:
        """Note when each request of this batch arrived, and its op (one clock
        read for the batch: they arrived together)."""
        now, started = time.perf_counter(), metrics.started
        for ident, rid, txn, read in writes:
            if txn is None:
                op = read[0]  # a read held behind the client's writes, or a sync
            elif txn[0] == TXN_TAGGED:
                op = txn[4][0]
            else:
                op = txn[0]
            started(ident, rid, op, now)
        for item in reads:
            started(item[0], item[1], item[2], now)
        for item in watch_queries:
            started(item[0], item[1], item[2], now)

    def on_tick(self, now: int) -> None:
        if now >= self._touch_due:
            # The sessions heard from, for the leader's expiry tracker: a few times
            # per shortest session timeout (see TOUCH_EVERY_MS).
            self._touch_due = now + TOUCH_EVERY_MS
            touched = self.core.take_touched()
            if touched:
                self.send("log", Touched(touched))
        expired = self.core.tick(now)
        if expired:
            self.log.info("sessions_expired", count=len(expired))

    def _report_problems(self) -> None:
        for ident, kind, detail in self.core.take_first_seen():
            self.log.warning("bad_request", client=ident.hex(), kind=kind, detail=detail)
