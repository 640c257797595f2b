"""A simulated client that pipelines, as the client library does.

It keeps up to ``window`` requests in flight on one connection, tags each write
with (client id, seq) and the ``ack_below`` of the moment (every lower seq is
settled), and reacts to answers as :mod:`zkactors.client.agent` does: an
answered request is settled; NOT_LEADER naming a leader sends it back to wait
and moves the connection there once nothing is in flight; NOT_READY,
CONNECTION_LOSS or NOT_LEADER without a leader waits a little and goes again
(every third attempt at another node); silence for ``timeout_ms`` while
something is in flight drops the connection and sends everything again on a
new one. A connection is a FIFO each way; an old one's frames may still arrive
after a new one's (its answers are ignored).

``in_order=True`` puts everything back in the order it was first taken and
sends nothing past a request waiting out a retry delay, as the library does.
``in_order=False`` is a client just as honest about ``ack_below`` but careless
about order: it resends in any order. The ensemble must keep its writes in
order all the same (``zkactors.core.dedup.ClientTable.in_order``).

Its writes are sequential creates under ``/f<id>`` holding ``<id>:<seq>``, so
the end-of-run check can read the order they took effect in; its reads ask for
``/f<id>`` with the newest zxid it has seen and must be answered from a state at
least that new (read-your-writes, monotonic reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zkactors.core.dedup import OUT_OF_ORDER
from zkactors.errors import Code

if TYPE_CHECKING:
    from zkactors.sim.cluster import Simulation

#: Pause before a request refused for want of a leader goes again (ms).
RETRY_DELAY_MS = (5, 30)


@dataclass
class Op:
    order: int
    rid: int
    seq: int = 0  # 0: a read
    attempts: int = 0
    due: int = 0  # while delayed: when it goes again
    sent_zxid: int = 0  # a read: the newest zxid the client had seen when it sent it


class PipelinedClient:
    def __init__(self, sim: Simulation, client_id: int, window: int, in_order: bool,
                 timeout_ms: int) -> None:
        self.sim = sim
        self.id = client_id
        self.window = window
        self.in_order = in_order
        self.timeout_ms = timeout_ms
        self.seq = 0
        self.orders = 0
        self.waiting: list[Op] = []
        self.inflight: dict[int, Op] = {}
        self.delayed: list[Op] = []
        #: Writes not settled yet, by seq: the lowest is the ack_below.
        self.open: dict[int, Op] = {}
        self.node = 0
        self.conn = 0
        self.redirect: int | None = None
        self.last_recv = 0
        self.last_zxid = 0

    @property
    def path(self) -> str:
        return f"/f{self.id}"

    # ---------------------------------------------------------------- the API
    def write(self) -> None:
        self.seq += 1
        op = self._new_op(seq=self.seq)
        self.open[op.seq] = op

    def read(self) -> None:
        self._new_op()

    def _new_op(self, seq: int = 0) -> Op:
        self.orders += 1
        self.sim._rid += 1
        op = Op(self.orders, self.sim._rid, seq)
        self.waiting.append(op)
        return op

    def busy(self) -> int:
        return len(self.waiting) + len(self.inflight) + len(self.delayed)

    # ------------------------------------------------------------ connection
    def _connect(self, node_id: int) -> None:
        self.node = node_id
        self.conn += 1
        self.redirect = None
        self.last_recv = self.sim.now

    def step(self) -> None:
        """Time passes (every simulated ms): retries fall due, silence is noticed."""
        sim = self.sim
        now = sim.now
        if not self.node:
            self._connect(sim.rng.choice(sim.members))
        due = [op for op in self.delayed if op.due <= now]
        if due:
            self.delayed = [op for op in self.delayed if op.due > now]
            self._requeue(due)
        if self.inflight and now - self.last_recv > self.timeout_ms:
            # The node went silent: everything in flight goes again, elsewhere.
            lost = list(self.inflight.values())
            self.inflight.clear()
            self._requeue(lost)
            self._connect(self._another_node())
        if self.redirect is not None and not self.inflight:
            self._connect(self.redirect)
        self._send()

    def _another_node(self) -> int:
        others = [m for m in self.sim.members if m != self.node]
        return self.sim.rng.choice(others) if others else self.node

    def _requeue(self, ops: list[Op]) -> None:
        if self.in_order:
            self.waiting = sorted(self.waiting + ops, key=lambda op: op.order)
        else:
            for op in ops:  # careless: anywhere among what waits
                self.waiting.insert(self.sim.rng.randint(0, len(self.waiting)), op)

    def _send(self) -> None:
        if self.redirect is not None or not self.waiting:
            return
        hold = min((op.order for op in self.delayed), default=None) if self.in_order else None
        requests = []
        while self.waiting and len(self.inflight) < self.window:
            op = self.waiting[0]
            if hold is not None and op.order > hold:
                break
            self.waiting.pop(0)
            op.attempts += 1
            self.inflight[op.rid] = op
            if op.seq:
                ack_below = min(self.open)
                data = f"{self.id}:{op.seq}".encode()
                requests.append([op.rid, "create", f"{self.path}/n-", data, 3, op.seq,
                                 ack_below])
            else:
                op.sent_zxid = self.last_zxid
                args = [self.path, self.last_zxid] if self.last_zxid else [self.path]
                requests.append([op.rid, "exists", *args])
        if requests:
            self.sim._pipelined_frame(self, self.node, self.conn, requests)

    # --------------------------------------------------------------- answers
    def on_reply(self, conn: int, rid: int, code: int, result: Any, zxid: int,
                 leader: int) -> None:
        """An answer on connection ``conn``; ``leader``: whom a NOT_LEADER names."""
        if conn != self.conn:
            return  # that connection was closed: its answers go nowhere
        op = self.inflight.pop(rid, None)
        if op is None:
            return
        sim = self.sim
        self.last_recv = sim.now
        if code == Code.NOT_LEADER and leader and leader != self.node:
            self._requeue([op])
            self.redirect = leader
            return
        if code in (Code.NOT_LEADER, Code.NOT_READY, Code.CONNECTION_LOSS):
            if result == OUT_OF_ORDER:
                sim.stats["out_of_order_refused"] += 1
            op.due = sim.now + sim.rng.randint(*RETRY_DELAY_MS)
            self.delayed.append(op)
            if op.attempts % 3 == 0:
                self.redirect = self._another_node()
            return
        self.last_zxid = max(self.last_zxid, zxid)
        if op.seq:
            self.open.pop(op.seq, None)
            sim._write_settled(self.id, op.seq, code, result, self.path)
        else:
            sim.checker.read_your_writes(self.id, op.sent_zxid, zxid, code)
