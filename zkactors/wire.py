"""The wire's vocabulary: what a client and a node must agree on, in one module
both sides import (a client imports nothing from ``zkactors.core``).

* the shapes that travel: :class:`Stat` (kazoo's ``ZnodeStat``, field for field),
  :class:`Event` and its types, :class:`ResumeAnswer` (a node's answer to "the
  events under these paths since zxid Z");
* the watch stream's control topics (heartbeats, barriers) and which events a
  watch sees (:func:`matches`);
* the flags of a create, the path syntax (:func:`validate_path`, ZooKeeper's
  ``PathUtils``) and the limits a client must stay within.

The opcodes and the framing (msgpack) are in :mod:`zkactors.protocol`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from zkactors.errors import BadArgumentsError, MarshallingError

ROOT = "/"
#: Width of the counter appended to a sequential node's name ("%010d").
SEQUENCE_DIGITS = 10
#: Flag bits of a ``["create", path, data, flags]`` txn.
CREATE_MAKEPATH = 1
CREATE_SEQUENCE = 2
#: Owned by a session (the txn's fifth field) and deleted with it.
CREATE_EPHEMERAL = 4
#: Replies a node keeps per client for at-most-once resends: a client may have at
#: most this many requests in flight (see :mod:`zkactors.core.dedup`).
MAX_REPLIES_PER_CLIENT = 1_024


@dataclass(frozen=True, slots=True)
class Stat:
    """A znode's metadata. Field order is kazoo's ``ZnodeStat`` (and the wire's).

    The camelCase names are ZooKeeper's and kazoo's own, kept so they read the same.
    """

    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    aversion: int
    ephemeralOwner: int
    dataLength: int
    numChildren: int
    pzxid: int

    def to_list(self) -> list[int]:
        return [
            self.czxid, self.mzxid, self.ctime, self.mtime, self.version, self.cversion,
            self.aversion, self.ephemeralOwner, self.dataLength, self.numChildren, self.pzxid,
        ]

    @classmethod
    def from_list(cls, values: Any) -> Stat:
        """Inverse of :meth:`to_list`; raises MarshallingError on anything else."""
        if not isinstance(values, (list, tuple)) or len(values) != 11:
            raise MarshallingError(f"a stat is a list of 11 ints, got {values!r}")
        if not all(type(v) is int for v in values):
            raise MarshallingError(f"a stat is a list of 11 ints, got {values!r}")
        return cls(*values)

    # kazoo's ZnodeStat aliases, so code written against kazoo reads the same.
    @property
    def created(self) -> float:
        return self.ctime / 1000.0

    @property
    def last_modified(self) -> float:
        return self.mtime / 1000.0

    @property
    def data_length(self) -> int:
        return self.dataLength

    @property
    def children_count(self) -> int:
        return self.numChildren

    @property
    def children_version(self) -> int:
        return self.cversion

    @property
    def creation_transaction_id(self) -> int:
        return self.czxid

    @property
    def last_modified_transaction_id(self) -> int:
        return self.mzxid

    @property
    def owner_session_id(self) -> int:
        return self.ephemeralOwner

    @property
    def acl_version(self) -> int:
        return self.aversion


class EventType:
    """Change event types. Plain strs, so events pack with msgpack as they are."""

    NODE_CREATED = "created"
    NODE_DELETED = "deleted"
    NODE_DATA_CHANGED = "changed"
    NODE_CHILDREN_CHANGED = "child"


NODE_CREATED = EventType.NODE_CREATED
NODE_DELETED = EventType.NODE_DELETED
NODE_DATA_CHANGED = EventType.NODE_DATA_CHANGED
NODE_CHILDREN_CHANGED = EventType.NODE_CHILDREN_CHANGED


@dataclass(frozen=True, slots=True)
class Event:
    """One change, for the watch machinery.

    ``version`` is the node's data version after the change; for a children
    event, the parent's cversion after it; for a delete, -1.
    """

    type: str
    path: str
    zxid: int
    version: int


# ZooKeeper's PathUtils rejects these UTF-16 code units. Java sees a code point
# above U+FFFF as a surrogate pair (in \ud800-\udbff), so those are rejected too.
_INVALID_CHAR = re.compile("[\u0001-\u001f\u007f-\u009f\ud800-\uf8ff\ufff0-\U0010ffff]")


def validate_path(path: object, max_path_bytes: int = 4096, sequence: bool = False) -> str:
    """Return ``path`` if it is a valid znode path, else raise BadArgumentsError.

    The rules are ZooKeeper's ``PathUtils.validatePath``. With ``sequence`` the
    path is a prefix to which the server appends ten digits, so it is checked as
    if a digit followed it (``"/a/"`` is then fine) and the suffix counts toward
    ``max_path_bytes``.
    """
    if not isinstance(path, str):
        raise BadArgumentsError(f"path must be a str, not {type(path).__name__}")
    if not path:
        raise BadArgumentsError("path must not be empty")
    if path[0] != "/":
        raise BadArgumentsError("path must start with '/'", path)
    full = path + "1" if sequence else path
    if len(full) > 1:
        if full[-1] == "/":
            raise BadArgumentsError("path must not end with '/'", path)
        if "\0" in full:
            raise BadArgumentsError("path must not contain the null character", repr(path))
        if "//" in full:
            raise BadArgumentsError("path must not contain an empty node name ('//')", path)
        if "/./" in full or "/../" in full or full.endswith(("/.", "/..")):
            raise BadArgumentsError("path must not contain '.' or '..' node names", path)
        bad = _INVALID_CHAR.search(full)
        if bad is not None:
            raise BadArgumentsError(
                f"path contains invalid character {bad.group()!r} at index {bad.start()}",
                repr(path),
            )
    size = len(path.encode("utf-8")) + (SEQUENCE_DIGITS if sequence else 0)
    if size > max_path_bytes:
        raise BadArgumentsError(
            f"path is {size} bytes, over the limit of {max_path_bytes} bytes", path[:64] + "…"
        )
    return path


#: First frame of control messages (heartbeats). Not ``/``-prefixed, so no
#: znode path subscription can match it; see the module docstring.
CONTROL_TOPIC = b"\x00ctl"
HEARTBEAT = "heartbeat"
#: Subscribing ``BARRIER_PREFIX + b"<token>/" + prefix`` asks the node to publish
#: one ``["barrier", A, L, n, seq]`` on exactly that topic; see the module doc.
BARRIER_PREFIX = b"\x00bar/"
BARRIER = "barrier"


class ResumeKind:
    """Kinds of resume answer. Plain strs: they go on the wire as they are."""

    EVENTS = "events"
    COUNT = "count"
    COMPACTED = "compacted"


@dataclass(frozen=True, slots=True)
class ResumeAnswer:
    """The answer to "events under these paths since zxid Z".

    * ``events``: ``events`` holds, in history order, every matching event with
      ``since < zxid <= upto_zxid``; the client is complete through
      ``upto_zxid``. With ``more`` there are further matches after ``upto_zxid``
      (then ``upto_zxid`` is the last returned event's zxid): ask again with
      ``since = upto_zxid``. A zxid's events are never split across pages.
    * ``count``: ``count`` is the number of such events (none are sent).
    * ``compacted``: events after ``since`` may have been evicted: re-read.
      ``horizon_zxid`` is the oldest ``since`` this node can answer.

    ``upto_zxid`` is the node's applied zxid for a compacted answer.
    """

    kind: str
    upto_zxid: int
    events: tuple[Event, ...] = ()
    more: bool = False
    count: int = 0
    horizon_zxid: int = 0

    @property
    def compacted(self) -> bool:
        return self.kind == ResumeKind.COMPACTED

    def to_wire(self) -> list:
        if self.kind == ResumeKind.EVENTS:
            return [ResumeKind.EVENTS, self.upto_zxid, self.more,
                    [[e.type, e.path, e.zxid, e.version] for e in self.events]]
        if self.kind == ResumeKind.COUNT:
            return [ResumeKind.COUNT, self.upto_zxid, self.count]
        if self.kind == ResumeKind.COMPACTED:
            return [ResumeKind.COMPACTED, self.horizon_zxid, self.upto_zxid]
        raise ValueError(f"unknown resume answer kind {self.kind!r}")

    @classmethod
    def from_wire(cls, wire: Any) -> ResumeAnswer:
        """Decode :meth:`to_wire`'s shape; raise ValueError on anything else."""
        if not isinstance(wire, (list, tuple)) or not wire:
            raise ValueError(f"resume answer must be a non-empty list, not {wire!r}")
        kind = wire[0]
        if kind == ResumeKind.EVENTS and len(wire) == 4:
            _, upto, more, raw = wire
            if not _is_int(upto) or not isinstance(more, bool) or not isinstance(raw, (list, tuple)):
                raise ValueError(f"bad events answer {wire!r}")
            events = tuple(_event_from_wire(e) for e in raw)
            return cls(ResumeKind.EVENTS, upto, events, more, len(events))
        if kind == ResumeKind.COUNT and len(wire) == 3:
            _, upto, count = wire
            if not _is_int(upto) or not _is_int(count) or count < 0:
                raise ValueError(f"bad count answer {wire!r}")
            return cls(ResumeKind.COUNT, upto, count=count)
        if kind == ResumeKind.COMPACTED and len(wire) == 3:
            _, horizon, applied = wire
            if not _is_int(horizon) or not _is_int(applied):
                raise ValueError(f"bad compacted answer {wire!r}")
            return cls(ResumeKind.COMPACTED, applied, horizon_zxid=horizon)
        raise ValueError(f"bad resume answer {wire!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _event_from_wire(raw: Any) -> Event:
    if (not isinstance(raw, (list, tuple)) or len(raw) != 4 or not isinstance(raw[0], str)
            or not isinstance(raw[1], str) or not _is_int(raw[2]) or not _is_int(raw[3])):
        raise ValueError(f"bad event {raw!r}")
    return Event(raw[0], raw[1], raw[2], raw[3])


def matches(path: str, recursive: bool, event_path: str) -> bool:
    """Whether a watch on ``path`` sees an event on ``event_path``.

    Like ZooKeeper's persistent watches: a plain watch sees events *on* its path
    (including ``"child"`` events, whose path is the parent whose children
    changed); a recursive one also sees every event on a descendant. The ``"/"``
    boundary matters: a recursive watch on ``/a`` does not see ``/ab``.
    """
    if event_path == path:
        return True
    if not recursive:
        return False
    if path == "/":
        return True
    return event_path.startswith(path) and event_path[len(path):len(path) + 1] == "/"
