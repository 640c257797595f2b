"""The wire: client request/reply frames, the messages between a node's actors, zxids.

Everything that crosses a socket is one msgpack-encoded array, so that a frame is
self-describing and cheap to decode:

* client frame    ``[request, ...]``: one or more requests, each ``[rid, op, *args]``
  (``rid`` is the client's request id, unique among its requests in flight)
* reply frame     ``[reply, ...]``: one or more replies, each ``[rid, code, result,
  zxid]`` (``code`` 0 = OK, else an error code from :mod:`zkactors.errors` and
  ``result`` is the error message; ``zxid`` is the last zxid the node had applied
  when it answered, the client's "last seen")
* actor message   ``[kind, *fields]``  between the actors of one node (inproc)

Frames carry lists so that a pipelining client and the node can move many requests
per socket operation: on this machine a ZeroMQ send or receive costs more than
decoding a small request, so batching at the frame level multiplies throughput.
Requests in one frame are independent: each is validated and answered on its own.
Requests that reach the tree take effect in the order the client sent them, reads
included (ZooKeeper's FIFO client order); a request refused at validation is
answered at once, possibly before requests sent ahead of it.

Request arguments per op (see :data:`REQUEST_ARGS`):

=========  ======================================  ==============================
op         args                                    result
=========  ======================================  ==============================
hello      protocol_version, client_name           {"protocol", "node", limits…}
           [, client_id]
create     path, data, flags (1 makepath, 2 seq)   created path
           [, seq, ack_below]
set        path, data, version [, seq, ack_below]  stat
delete     path, version, recursive                None
           [, seq, ack_below]
get        path [, min_zxid]                       [data, stat]
exists     path [, min_zxid]                       stat or None
children   path [, min_zxid]                       [names…]
sync       path [, min_zxid]                       zxid the node has applied
status     [with_digest]                           map of node state (with the
                                                   tree digest if asked: costly)
events     [[path, recursive], ...], since_zxid    a resume answer (see
                                                   :mod:`zkactors.core.watches`)
evcount    [[path, recursive], ...], since_zxid,   a count answer (idem)
           until_zxid
ping       —                                       None
bye        —                                       None (the session ends)
=========  ======================================  ==============================

At-most-once writes: a client that says ``hello`` with a ``client_id`` (a random
63-bit number, the same on every node it talks to) may tag each write with ``seq``
(its own increasing write number, kept when the write is sent again) and
``ack_below`` (every write of its with a lower ``seq`` has been answered). A tagged
write that reaches the log twice — sent again after a lost connection or a leader
change — is applied once and both copies get the first one's reply (see
:mod:`zkactors.core.dedup`).

A stat travels as the list of :class:`zkactors.core.tree.Stat` fields.

This module owns the decoding and validation of requests, so that every bad frame
is turned into a typed error at the edge, before it reaches any core.
"""

from __future__ import annotations

from typing import Any

import msgpack

from zkactors.errors import BadArgumentsError, UnimplementedError

#: 3: sessions (session / endsession, ephemeral creates) and NO_HELLO.
PROTOCOL_VERSION = 3

OP_HELLO = "hello"
OP_CREATE = "create"
OP_SET = "set"
OP_DELETE = "delete"
OP_GET = "get"
OP_EXISTS = "exists"
OP_CHILDREN = "children"
OP_SYNC = "sync"
OP_STATUS = "status"
#: The open sessions, as this node has applied them, and which of their clients
#: are connected here: ``{"node", "sessions": [[id, timeout_ms, ephemerals]],
#: "connected": [id, ...]}`` (zkctl sessions).
OP_SESSIONS = "sessions"
#: The whole replicated state at the node's applied zxid, as a snapshot payload
#: (``zkctl backup``): ``[index, term, payload]``. A read: it waits for the zxid
#: the client has seen, so after a sync it is at least as new as the sync.
OP_BACKUP = "backup"
OP_PING = "ping"
OP_BYE = "bye"
#: Open (or renew the timeout of) this client's session: ``[timeout_ms]``. A write.
OP_SESSION = "session"
#: End this client's session now, with its ephemeral nodes. A write.
OP_END_SESSION = "endsession"
#: Several writes and checks as one, all or nothing: ``[[kind, *args], ...]`` with
#: kinds create (path, data, flags), set (path, data, version), delete (path,
#: version) and check (path, version). A write.
OP_MULTI = "multi"
#: The most operations one multi may hold.
MAX_MULTI_OPS = 1000
OP_EVENTS = "events"
OP_EVENT_COUNT = "evcount"

FLAG_MAKEPATH = 1
FLAG_SEQUENCE = 2
#: Owned by the client's session, deleted when it ends (see zkactors.core.sessions).
FLAG_EPHEMERAL = 4

WRITE_OPS = frozenset({OP_CREATE, OP_SET, OP_DELETE, OP_SESSION, OP_END_SESSION, OP_MULTI})
READ_OPS = frozenset({OP_GET, OP_EXISTS, OP_CHILDREN, OP_SYNC, OP_BACKUP})
#: Questions about the recent change history, answered by the watch actor.
WATCH_OPS = frozenset({OP_EVENTS, OP_EVENT_COUNT})
#: At most this many [path, recursive] pairs in one events/evcount query.
MAX_WATCH_PATHS = 1000
#: The longest znode path a node may be configured to take ([limits]
#: max_path_bytes), and so the longest watch topic. Watched paths become ZeroMQ
#: subscription topics, and libzmq 4.3.5 crashes (SIGSEGV) when closing a SUB
#: socket that subscribed a topic of a few hundred KB; 64 KB is proven fine.
MAX_PATH_BYTES_LIMIT = 32_768

#: Expected argument types per op, checked at the edge.
REQUEST_ARGS: dict[str, tuple[type | tuple[type, ...], ...]] = {
    OP_HELLO: (int, str),
    OP_CREATE: (str, bytes, int),
    OP_SET: (str, bytes, int),
    OP_DELETE: (str, int, bool),
    OP_SESSION: (int,),
    OP_END_SESSION: (),
    OP_MULTI: (list,),
    OP_GET: (str,),
    OP_EXISTS: (str,),
    OP_CHILDREN: (str,),
    OP_SYNC: (str,),
    OP_BACKUP: (str,),
    OP_STATUS: (),
    OP_SESSIONS: (),
    OP_PING: (),
    OP_BYE: (),
    OP_EVENTS: (list, int),
    OP_EVENT_COUNT: (list, int, int),
}

#: Reads may end with one more argument: the newest zxid the client has seen. The
#: node answers only once it has applied at least that far, so a client never
#: reads older data than it has already seen (here or on another node).
OPTIONAL_READ_ARGS = (int,)
#: hello may end with the client's id, writes with (seq, ack_below): see above.
OPTIONAL_HELLO_ARGS = (int,)
OPTIONAL_WRITE_ARGS = (int, int)
#: status may ask for the tree's digest (true): see StoreCore.digest.
OPTIONAL_STATUS_ARGS = (bool,)

# The messages actors send one another inside a node: zkactors.runtime.mail.


class FrameError(Exception):
    """A frame that cannot be understood well enough to send an error reply."""


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(frame: bytes) -> Any:
    return msgpack.unpackb(frame, raw=False, strict_map_key=False)


def make_zxid(term: int, index: int) -> int:
    """ZooKeeper's zxid: the term (epoch) in the high 32 bits, the log index below."""
    return (term << 32) | index


def zxid_term(zxid: int) -> int:
    return zxid >> 32


def zxid_index(zxid: int) -> int:
    return zxid & 0xFFFFFFFF


def format_zxid(zxid: int) -> str:
    return f"0x{zxid:x}"


def decode_frame(frame: bytes) -> list:
    """The list of messages in one frame, or :class:`FrameError`."""
    try:
        obj = unpack(frame)
    except Exception as exc:  # noqa: BLE001 - msgpack raises several unrelated types
        raise FrameError(f"not msgpack: {type(exc).__name__}") from None
    if not isinstance(obj, list) or not obj:
        raise FrameError("not a non-empty array of messages")
    return obj


def decode_request(obj: Any) -> tuple[int, str, list]:
    """Split one request of a frame into (rid, op, args).

    Raises :class:`FrameError` when there is no request id to answer to (the
    request is dropped and counted), or a typed ``ZookeeperError`` carrying the rid
    in its ``rid`` attribute when the request is answerable but wrong.
    """
    if not isinstance(obj, list) or len(obj) < 2:
        raise FrameError("request is not a [rid, op, ...] array")
    rid, op, args = obj[0], obj[1], obj[2:]
    if not isinstance(rid, int) or isinstance(rid, bool) or not 0 <= rid < 2**63:
        raise FrameError("request id is not a non-negative integer")
    try:
        expected = REQUEST_ARGS[op]
    except (KeyError, TypeError):
        err = UnimplementedError(f"unknown op {op!r}")
        err.rid = rid  # type: ignore[attr-defined]
        raise err from None
    optional = _OPTIONAL_ARGS.get(op)
    if optional and len(args) == len(expected) + len(optional):
        expected = expected + optional
    if len(args) != len(expected) or not all(
        _is_instance(value, kind) for value, kind in zip(args, expected)
    ):
        names = ", ".join(_type_name(kind) for kind in expected)
        err = BadArgumentsError(f"{op} takes ({names})")
        err.rid = rid  # type: ignore[attr-defined]
        raise err
    return rid, op, args


_OPTIONAL_ARGS = {
    **{op: OPTIONAL_READ_ARGS for op in READ_OPS},
    **{op: OPTIONAL_WRITE_ARGS for op in WRITE_OPS},
    OP_HELLO: OPTIONAL_HELLO_ARGS,
    OP_STATUS: OPTIONAL_STATUS_ARGS,
}


def _is_instance(value: Any, kind: type | tuple[type, ...]) -> bool:
    # bool is an int subclass; a version or flag sent as True is a client bug.
    if kind is int and isinstance(value, bool):
        return False
    return isinstance(value, kind)


def _type_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return "|".join(k.__name__ for k in kind)
    return kind.__name__


def encode_request(rid: int, op: str, *args: Any) -> bytes:
    """One request, packed on its own: frames are built with :func:`pack_batch`."""
    return pack([rid, op, *args])


def pack_batch(packed: list[bytes]) -> bytes:
    """A frame holding already-packed messages: a msgpack array header, then them.

    Lets a client pack each request once, when it is made, and batch for free."""
    n = len(packed)
    if n < 16:
        header = bytes((0x90 | n,))
    elif n < 1 << 16:
        header = b"\xdc" + n.to_bytes(2, "big")
    else:
        header = b"\xdd" + n.to_bytes(4, "big")
    return header + b"".join(packed)
