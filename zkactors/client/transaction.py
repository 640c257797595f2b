"""``client.transaction()``: kazoo's ``TransactionRequest`` — several writes and
checks committed as one log entry, all or nothing (ZooKeeper's multi).

    tx = client.transaction()
    tx.check("/config", version=4)
    tx.set_data("/config", b"v5", version=4)
    tx.create("/config-history/v5", b"...")
    results = tx.commit()

``commit()`` returns one result per operation, as kazoo does: the created path,
a ``ZnodeStat`` for ``set_data``, ``True`` for ``delete`` and ``check``. If one
fails, nothing is applied and every result is an exception instead: the failing
operation's own error (e.g. ``BadVersionError``), ``RolledBackError`` for those
before it and ``RuntimeInconsistency`` for those after, again as kazoo. The
request itself raises only for what has nothing to do with the operations (the
client stopped, a timeout).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from zkactors.errors import RolledBackError, RuntimeInconsistency, error_for
from zkactors.protocol import FLAG_EPHEMERAL, FLAG_SEQUENCE, OP_MULTI
from zkactors.wire import Stat

if TYPE_CHECKING:
    from zkactors.client.agent import ZkFuture
    from zkactors.client.api import Client


class TransactionRequest:
    """Operations gathered, then committed at once. Usable once, and as a context
    manager that commits on a clean exit."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.operations: list[list] = []
        self._kinds: list[str] = []
        self.committed = False

    def create(self, path: str, value: bytes = b"", acl: object = None,
               ephemeral: bool = False, sequence: bool = False) -> None:
        if not isinstance(value, bytes):
            raise TypeError(f"value must be bytes, not {type(value).__name__}")
        flags = (FLAG_EPHEMERAL if ephemeral else 0) | (FLAG_SEQUENCE if sequence else 0)
        self._add("create", [self.client._full(path, trailing=sequence), value, flags])

    def delete(self, path: str, version: int = -1) -> None:
        self._add("delete", [self.client._full(path), version])

    def set_data(self, path: str, value: bytes, version: int = -1) -> None:
        if not isinstance(value, bytes):
            raise TypeError(f"value must be bytes, not {type(value).__name__}")
        self._add("set", [self.client._full(path), value, version])

    def check(self, path: str, version: int) -> None:
        self._add("check", [self.client._full(path), version])

    def _add(self, kind: str, args: list) -> None:
        if self.committed:
            raise ValueError("this transaction was committed already")
        self.operations.append([kind, *args])
        self._kinds.append(kind)

    def commit_async(self) -> ZkFuture:
        if self.committed:
            raise ValueError("this transaction was committed already")
        if not self.operations:
            raise ValueError("nothing to commit: the transaction is empty")
        self.committed = True
        return self.client._call(OP_MULTI, [self.operations], self._results, None)

    def commit(self) -> list:
        return self.client._wait(self.commit_async())

    def _results(self, reply: Any) -> list:
        if isinstance(reply, list) and len(reply) == 2 and reply[0] == "ok":
            results = []
            for kind, result in zip(self._kinds, reply[1], strict=True):
                if kind == "create":
                    results.append(self.client.unchroot(result) if self.client.chroot
                                   else result)
                elif kind == "set":
                    results.append(Stat.from_list(result))
                else:
                    results.append(True)
            return results
        if isinstance(reply, list) and len(reply) == 4 and reply[0] == "failed":
            _, index, code, message = reply
            failed = error_for(code, message)
            return [RolledBackError("rolled back") if i < index else
                    failed if i == index else
                    RuntimeInconsistency("not run: an earlier operation failed")
                    for i in range(len(self.operations))]
        raise RuntimeInconsistency(f"unexpected reply to a transaction: {reply!r:.200}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None and not self.committed:
            self.commit()
