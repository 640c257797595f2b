"""Error codes and exception classes, shared by the server and the client library.

The numeric codes are ZooKeeper's (``KeeperException.Code``) so that anyone who
knows ZooKeeper reads them at a glance; the exception names are kazoo's
(``kazoo.exceptions``). Codes zkactors adds for itself live below -900 so they can
never collide with a future ZooKeeper code.

This module must stay free of I/O: the pure core raises these exceptions too.
"""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """Result code carried in every reply. ``OK`` is success."""

    OK = 0
    SYSTEM_ERROR = -1
    RUNTIME_INCONSISTENCY = -2
    DATA_INCONSISTENCY = -3
    CONNECTION_LOSS = -4
    MARSHALLING_ERROR = -5
    UNIMPLEMENTED = -6
    OPERATION_TIMEOUT = -7
    BAD_ARGUMENTS = -8
    API_ERROR = -100
    NO_NODE = -101
    NO_AUTH = -102
    BAD_VERSION = -103
    NO_CHILDREN_FOR_EPHEMERALS = -108
    NODE_EXISTS = -110
    NOT_EMPTY = -111
    SESSION_EXPIRED = -112
    THROTTLED = -127
    # zkactors' own codes.
    NOT_LEADER = -901
    NOT_READY = -902
    PROTOCOL_VERSION = -903
    #: A request on a connection that has not said hello (or whose hello the
    #: node forgot, idle): say hello again, then resend.
    NO_HELLO = -904


class ZkactorsError(Exception):
    """Root of everything this package raises (kazoo: ``KazooException``)."""


class ZookeeperError(ZkactorsError):
    """An error reply from a node. ``code`` says which; subclasses name it."""

    code: Code = Code.SYSTEM_ERROR
    #: True when the same request may succeed if simply sent again (to this or
    #: another node); the client library retries these by itself.
    retryable: bool = False

    def __init__(self, message: str = "", path: str | None = None) -> None:
        self.message = message
        self.path = path
        text = message or self.code.name.lower().replace("_", " ")
        if path and path not in text:
            text = f"{text}: {path}"
        super().__init__(text)


class SystemZookeeperError(ZookeeperError):
    code = Code.SYSTEM_ERROR


class RolledBackError(ZookeeperError):
    """In a transaction's results: this operation was undone because another
    one of the same transaction failed (kazoo's name and code)."""

    code = Code.OK


class RuntimeInconsistency(ZookeeperError):
    code = Code.RUNTIME_INCONSISTENCY


class DataInconsistency(ZookeeperError):
    code = Code.DATA_INCONSISTENCY


class ConnectionLoss(ZookeeperError):
    code = Code.CONNECTION_LOSS
    retryable = True


class MarshallingError(ZookeeperError):
    code = Code.MARSHALLING_ERROR


class UnimplementedError(ZookeeperError):
    code = Code.UNIMPLEMENTED


class OperationTimeoutError(ZookeeperError):
    code = Code.OPERATION_TIMEOUT
    retryable = True


class BadArgumentsError(ZookeeperError):
    code = Code.BAD_ARGUMENTS


class APIError(ZookeeperError):
    code = Code.API_ERROR


class NoNodeError(ZookeeperError):
    code = Code.NO_NODE


class NoAuthError(ZookeeperError):
    code = Code.NO_AUTH


class BadVersionError(ZookeeperError):
    code = Code.BAD_VERSION


class NoChildrenForEphemeralsError(ZookeeperError):
    code = Code.NO_CHILDREN_FOR_EPHEMERALS


class NodeExistsError(ZookeeperError):
    code = Code.NODE_EXISTS


class NotEmptyError(ZookeeperError):
    code = Code.NOT_EMPTY


class SessionExpiredError(ZookeeperError):
    code = Code.SESSION_EXPIRED


class ThrottledError(ZookeeperError):
    """Too many requests in flight on this connection; back off and resend."""

    code = Code.THROTTLED
    retryable = True


class NotLeaderError(ZookeeperError):
    """The node is not the leader; ``message`` carries the leader's endpoint if known."""

    code = Code.NOT_LEADER
    retryable = True


class NotReadyError(ZookeeperError):
    """The node cannot serve this request right now (starting, catching up)."""

    code = Code.NOT_READY
    retryable = True


class ProtocolVersionError(ZookeeperError):
    code = Code.PROTOCOL_VERSION


class NoHelloError(ZookeeperError):
    """The connection has no hello on record (never said, or forgotten while
    idle); the client library says hello again and resends, unseen."""

    code = Code.NO_HELLO


class ConnectionClosedError(ZkactorsError):
    """The client was stopped (or never started) while a request needed it."""


class RetryFailedError(ZkactorsError):
    """A :class:`~zkactors.retry.Retry` policy gave up: too many attempts, or its
    deadline. The last error it retried is the ``__cause__``."""


class RetryInterruptedError(RetryFailedError):
    """A :class:`~zkactors.retry.Retry` policy's ``interrupt()`` said stop
    (kazoo: ``kazoo.retry.InterruptedError``)."""


_BY_CODE: dict[int, type[ZookeeperError]] = {
    cls.code: cls
    for cls in list(ZookeeperError.__subclasses__())
}


def error_for(code: int, message: str = "", path: str | None = None) -> ZookeeperError:
    """The exception instance for an error ``code`` received on the wire."""
    cls = _BY_CODE.get(code)
    if cls is None:
        err = ZookeeperError(message or f"unknown error code {code}", path)
        return err
    return cls(message, path)
