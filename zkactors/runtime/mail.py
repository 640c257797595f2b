"""What a node's actors say to one another: one record type per kind of
message, and the one codec that carries them over the inproc sockets.

Each record names who sends it to whom, and its fields say what they hold, so
the producer and the consumer of a message — which sit in different files —
read the same definition. :func:`encode` packs a record as msgpack
``[kind, *fields]``; :func:`decode` turns it back into the record (an actor
receiving something it does not know fails loudly: inside one process that is
a bug, not bad input). Messages between *nodes* are the cores' own
(zkactors.core.messages); an election <-> log message travels here inside
:class:`Local`, encoded by that module.

Lists of requests, replies and entries stay plain lists: they are the hot path,
one record per batch, and their shapes are documented on each field.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from zkactors.core import messages as core_messages
from zkactors.protocol import pack, unpack


# ------------------------------------------------------------- gateway -> …
@dataclass(frozen=True, slots=True)
class Writes:
    """gateway -> log: client writes, and reads queued behind the same client's
    writes; also store -> log for the leader's own session expiries."""

    #: ``[[ident, rid, txn, None] | [ident, rid, None, [op, args]], ...]``
    requests: list


@dataclass(frozen=True, slots=True)
class Reads:
    """gateway -> store: reads to answer from the tree."""

    #: ``[[ident, rid, op, args, read_floor], ...]``: answer once the log index
    #: ``read_floor`` is applied (see :class:`Role`).
    requests: list


@dataclass(frozen=True, slots=True)
class WatchQueries:
    """gateway -> watch: ``events`` / ``evcount`` queries on the watch history."""

    #: ``[[ident, rid, op, args], ...]``
    queries: list


@dataclass(frozen=True, slots=True)
class Touched:
    """gateway -> log: sessions heard from lately; log -> store (on the leader, from
    its own gateway or a follower's), for the expiry tracker."""

    session_ids: list


# ----------------------------------------------------------------- log -> …
@dataclass(frozen=True, slots=True)
class Commits:
    """log -> store: committed entries to apply, in order, with the clients to
    answer, and reads released in their client's order."""

    commit_index: int
    term: int
    #: ``[[ident, rid, index, term, time_ms, txn] (an entry) | [ident, rid, [op,
    #: args]] (a read), ...]``
    items: list


@dataclass(frozen=True, slots=True)
class Restore:
    """log -> store: load the snapshot just installed through ``index``."""

    index: int
    term: int


@dataclass(frozen=True, slots=True)
class Leading:
    """log -> store: whether this node leads (its expiry tracker runs only then)."""

    leading: bool
    term: int


@dataclass(frozen=True, slots=True)
class Role:
    """log -> gateway: the log's role after any change."""

    role: str
    term: int
    leader: int
    #: The leader's client endpoint ("" if unknown), for NOT_LEADER redirects.
    leader_endpoint: str
    #: Reads are served only once this node has caught up with its leader...
    caught_up: bool
    #: ...to this index: no read is answered from an older state.
    read_floor: int


@dataclass(frozen=True, slots=True)
class Local:
    """election <-> log: one of zkactors.core.messages' local messages
    (Campaign, LeaderSeen, LeaderLost, StepDown one way, RoleChanged the other)."""

    message: Any


# --------------------------------------------------------------- store -> …
@dataclass(frozen=True, slots=True)
class Replies:
    """store, watch or log -> gateway: answers to send to clients."""

    applied_zxid: int
    #: ``[[ident, rid, code, result, via_log, (zxid)], ...]``
    replies: list


@dataclass(frozen=True, slots=True)
class Events:
    """store -> watch: what the applies changed."""

    #: ``[[type, path, zxid, version], ...]``
    events: list
    applied_zxid: int
    #: The tree was replaced by a snapshot at ``applied_zxid``.
    restarted: bool = False


@dataclass(frozen=True, slots=True)
class SnapshotSaved:
    """store -> log: a snapshot through ``index`` is durable; the log may compact."""

    index: int


@dataclass(frozen=True, slots=True)
class SessionsEnded:
    """store -> gateway: sessions just closed or expired; their clients hear
    SESSION_EXPIRED from now on."""

    session_ids: list


# ------------------------------------------------------------ election -> …
@dataclass(frozen=True, slots=True)
class Health:
    """election -> gateway: whether a live leader is known (reads wait for one)."""

    alive: bool


@dataclass(frozen=True, slots=True)
class PeerCounters:
    """log or election -> gateway, about once a second: peer messages dropped at
    the edge, by reason (``peer_rejected`` in status)."""

    actor: str
    counters: dict


KINDS = (Writes, Reads, WatchQueries, Touched, Commits, Restore, Leading, Role, Local,
         Replies, Events, SnapshotSaved, SessionsEnded, Health, PeerCounters)
_BY_NAME = {cls.__name__: cls for cls in KINDS}
_FIELDS = {cls: tuple(f.name for f in fields(cls)) for cls in KINDS}


class MailError(RuntimeError):
    """An inproc message that is not one of :data:`KINDS`: a bug in this node."""


def encode(mail: Any) -> bytes:
    cls = type(mail)
    names = _FIELDS.get(cls)
    if names is None:
        raise MailError(f"{cls.__name__} is not an actor message")
    if cls is Local:
        return pack(["Local", core_messages.to_wire(mail.message)])
    return pack([cls.__name__, *(getattr(mail, name) for name in names)])


def decode(data: bytes) -> Any:
    kind, *values = unpack(data)
    cls = _BY_NAME.get(kind)
    if cls is None:
        raise MailError(f"unknown actor message kind {kind!r}")
    if cls is Local:
        return Local(core_messages.from_wire(values[0]))
    try:
        return cls(*values)
    except TypeError as err:
        raise MailError(f"{kind}: {err}") from None
