"""The znode tree: ZooKeeper's data model as a pure, deterministic core.

This module owns the namespace of znodes — their data, their stat counters and
the parent/child links — and the rules for changing them: the checks ZooKeeper's
``PrepRequestProcessor`` makes and the updates its ``DataTree`` applies. It also
owns the write-ahead-log encoding of a write (:meth:`Tree.apply`) and the
snapshot format. The path syntax and the shapes clients see (:class:`Stat`,
:class:`Event`, the create flags) are the wire's, in :mod:`zkactors.wire`.

It does no I/O and reads no clock: every write is handed its zxid and time, so
applying the same transactions on any node yields the same tree (compare trees
with :meth:`Tree.digest`). Writes are all-or-nothing: every check runs before
the first mutation, so an error leaves the tree exactly as it was. A successful
write returns the watch events it fires, in the order ZooKeeper fires them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from zkactors.errors import (
    BadArgumentsError,
    BadVersionError,
    DataInconsistency,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    UnimplementedError,
    ZookeeperError,
)
from zkactors.wire import (
    CREATE_EPHEMERAL,
    CREATE_MAKEPATH,
    CREATE_SEQUENCE,
    NODE_CHILDREN_CHANGED,
    NODE_CREATED,
    NODE_DATA_CHANGED,
    NODE_DELETED,
    ROOT,
    SEQUENCE_DIGITS,
    Event,
    EventType,
    Stat,
    validate_path,
)

#: ``["multi", [txn, ...]]``: several txns as one (see Tree.apply_multi).
TXN_MULTI = "multi"
#: /2 added each record's ephemeral owner; /1 snapshots still load (owner 0).
SNAPSHOT_FORMAT = "zkactors.tree/2"
_OLD_SNAPSHOT_FORMATS = ("zkactors.tree/1",)


def _split(path: str) -> tuple[str, str]:
    """``"/a/b"`` -> ``("/a", "b")``; ``"/a"`` -> ``("/", "a")``."""
    cut = path.rfind("/")
    return path[:cut] or ROOT, path[cut + 1:]


def _depth_first_key(path: str) -> tuple[int, str]:
    return -path.count("/"), path


_NO_CHILDREN: frozenset[str] = frozenset()


class _Node:
    """One znode. The stat is assembled on read; only what changes is stored.

    ``creates`` is ZooKeeper's *stored* cversion: the number of children ever
    created. The cversion clients see counts deletes too, and ZooKeeper derives
    it as ``2 * creates - numChildren`` (``DataNode.copyStat``); the sequence
    suffix uses ``creates``. aversion is always 0 here (no ACLs), so it is not
    stored; ``owner`` is the ephemeralOwner: the session an ephemeral node belongs
    to, 0 for a persistent one.
    """

    __slots__ = (
        "children",
        "creates",
        "ctime",
        "czxid",
        "data",
        "mtime",
        "mzxid",
        "owner",
        "pzxid",
        "version",
    )

    def __init__(self, data: bytes, zxid: int, time_ms: int, owner: int = 0) -> None:
        self.data = data
        self.owner = owner
        self.czxid = self.mzxid = self.pzxid = zxid
        self.ctime = self.mtime = time_ms
        self.version = 0
        self.creates = 0
        #: A leaf shares one empty frozenset (a set per leaf was 216 bytes: a
        #: fifth of a million-znode tree); :meth:`add_child` gives it its own.
        self.children: set[str] | frozenset[str] = _NO_CHILDREN

    def add_child(self, name: str) -> None:
        if self.children is _NO_CHILDREN:
            self.children = {name}
        else:
            self.children.add(name)  # type: ignore[union-attr]

    def remove_child(self, name: str) -> None:
        children = self.children
        if name in children:
            children.discard(name)  # type: ignore[union-attr]
            if not children:
                self.children = _NO_CHILDREN

    def cversion(self) -> int:
        return 2 * self.creates - len(self.children)

    def copy(self) -> _Node:
        twin = _Node(self.data, 0, 0, self.owner)
        (twin.czxid, twin.mzxid, twin.pzxid, twin.ctime, twin.mtime, twin.version,
         twin.creates) = (self.czxid, self.mzxid, self.pzxid, self.ctime, self.mtime,
                          self.version, self.creates)
        twin.children = set(self.children) if self.children else _NO_CHILDREN
        return twin

    def stat(self) -> Stat:
        n = len(self.children)
        return Stat(self.czxid, self.mzxid, self.ctime, self.mtime, self.version,
                    2 * self.creates - n, 0, self.owner, len(self.data), n, self.pzxid)


class Tree:
    """The znode namespace: a flat ``path -> node`` dict plus child-name sets."""

    def __init__(self, max_data_bytes: int = 1 << 20, max_path_bytes: int = 4096) -> None:
        self.max_data_bytes = max_data_bytes
        self.max_path_bytes = max_path_bytes
        # The root exists from the start with an all-zero stat, as in ZooKeeper.
        self._nodes: dict[str, _Node] = {ROOT: _Node(b"", 0, 0)}
        #: Session id -> the paths of its ephemeral nodes.
        self._ephemerals: dict[int, set[str]] = {}
        #: While a multi runs: each node as it was before the multi first changed
        #: it (None: it did not exist), so a failed multi can be undone.
        self._journal: dict[str, _Node | None] | None = None

    def __len__(self) -> int:
        return len(self._nodes)

    # ----------------------------------------------------------------- writes

    def create(
        self,
        path: str,
        data: bytes,
        zxid: int,
        time_ms: int,
        makepath: bool = False,
        sequence: bool = False,
        owner: int = 0,
    ) -> tuple[str, list[Event]]:
        """Create a znode; return the path created (with its sequence suffix).
        ``owner``: the session an ephemeral node belongs to (0: persistent)."""
        validate_path(path, self.max_path_bytes, sequence)
        self._check_data(data, path)
        nodes = self._nodes
        parent_path, _ = _split(path)
        parent = nodes.get(parent_path)
        missing: list[str] = []
        if parent is not None and parent.owner:
            raise NoChildrenForEphemeralsError("an ephemeral node cannot have children", path)
        if parent is None:
            if not makepath:
                raise NoNodeError(f"parent {parent_path} does not exist", path)
            ancestor = parent_path
            while ancestor not in nodes:
                missing.append(ancestor)
                ancestor = _split(ancestor)[0]
            missing.reverse()
        if sequence:
            # ZooKeeper's rule: the suffix is the parent's create count before
            # this create (0 for a parent that makepath is about to create).
            counter = parent.creates if parent is not None else 0
            path = f"{path}{counter:0{SEQUENCE_DIGITS}d}"
        if path in nodes:
            raise NodeExistsError("node already exists", path)

        events: list[Event] = []
        for ancestor in missing:
            self._add(ancestor, b"", zxid, time_ms, events)
        self._add(path, data, zxid, time_ms, events, owner)
        if owner:
            self._ephemerals.setdefault(owner, set()).add(path)
        return path, events

    def _add(self, path: str, data: bytes, zxid: int, time_ms: int, events: list[Event],
             owner: int = 0) -> None:
        parent_path, name = _split(path)
        parent = self._nodes[parent_path]
        if self._journal is not None:
            self._remember(path)
            self._remember(parent_path)
        self._nodes[path] = _Node(data, zxid, time_ms, owner)
        parent.add_child(name)
        parent.creates += 1
        parent.pzxid = zxid
        events.append(Event(NODE_CREATED, path, zxid, 0))
        events.append(Event(NODE_CHILDREN_CHANGED, parent_path, zxid, parent.cversion()))

    def set(
        self, path: str, data: bytes, version: int, zxid: int, time_ms: int
    ) -> tuple[Stat, list[Event]]:
        """Replace a znode's data if ``version`` matches (-1 matches any)."""
        validate_path(path, self.max_path_bytes)
        self._check_data(data, path)
        _check_version_arg(version, path)
        node = self._nodes.get(path)
        if node is None:
            raise NoNodeError("node does not exist", path)
        if version != -1 and version != node.version:
            raise BadVersionError(f"expected version {version}, node has {node.version}", path)
        if self._journal is not None:
            self._remember(path)
        node.data = data
        node.version += 1
        node.mzxid = zxid
        node.mtime = time_ms
        return node.stat(), [Event(NODE_DATA_CHANGED, path, zxid, node.version)]

    def delete(self, path: str, version: int, zxid: int, recursive: bool = False) -> list[Event]:
        """Delete a znode (with its whole subtree if ``recursive``).

        The version check applies to ``path`` only. The parent's pzxid moves but
        not its mtime, as in ZooKeeper.
        """
        validate_path(path, self.max_path_bytes)
        _check_version_arg(version, path)
        if path == ROOT:
            raise BadArgumentsError("the root node cannot be deleted", path)
        nodes = self._nodes
        node = nodes.get(path)
        if node is None:
            raise NoNodeError("node does not exist", path)
        # ZooKeeper checks the version before emptiness.
        if version != -1 and version != node.version:
            raise BadVersionError(f"expected version {version}, node has {node.version}", path)
        if node.children and not recursive:
            raise NotEmptyError("node has children", path)

        doomed = [path]
        if node.children:
            i = 0
            while i < len(doomed):
                prefix = doomed[i] + "/"
                doomed.extend(prefix + name for name in nodes[doomed[i]].children)
                i += 1
            # Deepest first (ties by path), so no event names a node whose
            # children are still reported as present.
            doomed.sort(key=_depth_first_key)
        events = []
        parent_path, name = _split(path)
        if self._journal is not None:
            for gone in doomed:
                self._remember(gone)
            self._remember(parent_path)
        for gone in doomed:
            owner = nodes.pop(gone).owner
            if owner:
                self._forget_ephemeral(owner, gone)
            events.append(Event(NODE_DELETED, gone, zxid, -1))
        parent = nodes[parent_path]
        parent.remove_child(name)
        parent.pzxid = zxid
        events.append(Event(NODE_CHILDREN_CHANGED, parent_path, zxid, parent.cversion()))
        return events

    # ------------------------------------------------------------------ multi

    def apply_multi(self, txns: list, zxid: int, time_ms: int,
                    check_owner: Any = None) -> tuple[list, list[Event]]:
        """Apply several txns as one, all or nothing, at one zxid (ZooKeeper's
        multi). Besides create/set/delete, ``["check", path, version]`` only
        checks. Returns ``(results, events)``; on the first failure every change
        is undone and :class:`MultiError` says which op failed and why.
        ``check_owner(txn)`` may refuse an op before it runs (sessions)."""
        if not isinstance(txns, list) or not txns:
            raise BadArgumentsError("a multi holds a non-empty list of operations")
        self._journal = {}
        results, events = [], []
        try:
            for i, txn in enumerate(txns):
                try:
                    if check_owner is not None:
                        check_owner(txn)
                    if isinstance(txn, list) and txn and txn[0] == "check":
                        results.append(self._check(txn))
                        continue
                    result, changed = self.apply(txn, zxid, time_ms)
                except ZookeeperError as err:
                    self._undo()
                    raise MultiError(i, err) from None
                results.append(result)
                events.extend(changed)
            return results, events
        finally:
            self._journal = None

    def _check(self, txn: list) -> None:
        if len(txn) != 3:
            raise BadArgumentsError(f"a check has 3 fields, got {len(txn)}")
        _, path, version = txn
        _check_version_arg(version, path)
        node = self._lookup(path)
        if version != -1 and version != node.version:
            raise BadVersionError(f"expected version {version}, node has {node.version}", path)

    def _remember(self, path: str) -> None:
        journal = self._journal
        if path not in journal:
            node = self._nodes.get(path)
            journal[path] = None if node is None else node.copy()

    def _undo(self) -> None:
        nodes = self._nodes
        for path, before in self._journal.items():
            now = nodes.pop(path, None)
            if now is not None and now.owner:
                self._forget_ephemeral(now.owner, path)
            if before is not None:
                nodes[path] = before
                if before.owner:
                    self._ephemerals.setdefault(before.owner, set()).add(path)

    def _forget_ephemeral(self, owner: int, path: str) -> None:
        paths = self._ephemerals.get(owner)
        if paths is not None:
            paths.discard(path)
            if not paths:
                del self._ephemerals[owner]

    def ephemerals(self, owner: int) -> list[str]:
        """The paths of the ephemeral nodes ``owner`` holds, sorted."""
        return sorted(self._ephemerals.get(owner, ()))

    def owners(self) -> dict[int, int]:
        """Session id -> how many ephemeral nodes it holds."""
        return {owner: len(paths) for owner, paths in self._ephemerals.items()}

    def delete_ephemerals(self, owner: int, zxid: int) -> list[Event]:
        """Delete every ephemeral node of session ``owner`` (its end: closed or
        expired), in path order; they have no children, so each goes alone."""
        events: list[Event] = []
        for path in self.ephemerals(owner):
            events.extend(self.delete(path, -1, zxid))
        return events

    def apply(self, txn: list | tuple, zxid: int, time_ms: int) -> tuple[object, list[Event]]:
        """Apply one write-ahead-log txn; return ``(result, events)``.

        ``["create", path, data, flags]`` -> created path (``["create", path,
        data, flags | CREATE_EPHEMERAL, owner]`` for an ephemeral node);
        ``["set", path, data, version]`` -> ``Stat.to_list()``;
        ``["delete", path, version, recursive]`` -> None.
        """
        if not isinstance(txn, (list, tuple)) or not txn:
            raise BadArgumentsError(f"a txn is a non-empty list, got {type(txn).__name__}")
        op = txn[0]
        if not isinstance(op, str):
            raise BadArgumentsError(f"txn op must be a str, got {op!r}")
        if op not in ("create", "set", "delete"):
            raise UnimplementedError(f"unknown txn op {op!r}")
        if op == "create" and len(txn) == 5:
            _, path, data, flags, owner = txn
            if type(flags) is not int or not flags & CREATE_EPHEMERAL or type(owner) is not int \
                    or not 0 < owner < 2**63:
                raise BadArgumentsError(f"bad ephemeral create: flags {flags!r}, owner "
                                        f"{owner!r}", _path_hint(path))
        elif len(txn) != 4:
            raise BadArgumentsError(f"a {op} txn has 4 fields, got {len(txn)}")
        if op == "create":
            path, data, flags = txn[1:4]
            owner = txn[4] if len(txn) == 5 else 0
            known = CREATE_MAKEPATH | CREATE_SEQUENCE | (CREATE_EPHEMERAL if owner else 0)
            if type(flags) is not int or flags & ~known:
                raise BadArgumentsError(f"bad create flags {flags!r}", _path_hint(path))
            return self.create(
                path, data, zxid, time_ms,
                makepath=bool(flags & CREATE_MAKEPATH), sequence=bool(flags & CREATE_SEQUENCE),
                owner=owner,
            )
        if op == "set":
            _, path, data, version = txn
            stat, events = self.set(path, data, version, zxid, time_ms)
            return stat.to_list(), events
        _, path, version, recursive = txn
        if type(recursive) is not bool:
            raise BadArgumentsError(f"delete's recursive must be a bool, got {recursive!r}",
                                    _path_hint(path))
        return None, self.delete(path, version, zxid, recursive)

    def _check_data(self, data: object, path: str) -> None:
        if not isinstance(data, bytes):
            raise BadArgumentsError(f"data must be bytes, not {type(data).__name__}", path)
        if len(data) > self.max_data_bytes:
            raise BadArgumentsError(
                f"data is {len(data)} bytes, over the limit of {self.max_data_bytes} bytes", path
            )

    # ------------------------------------------------------------------ reads

    def get(self, path: str) -> tuple[bytes, Stat]:
        node = self._lookup(path)
        return node.data, node.stat()

    def exists(self, path: str) -> Stat | None:
        validate_path(path, self.max_path_bytes)
        node = self._nodes.get(path)
        return None if node is None else node.stat()

    def get_children(self, path: str) -> list[str]:
        """Child names (not paths), sorted so that replies are deterministic."""
        return sorted(self._lookup(path).children)

    def _lookup(self, path: str) -> _Node:
        validate_path(path, self.max_path_bytes)
        node = self._nodes.get(path)
        if node is None:
            raise NoNodeError("node does not exist", path)
        return node

    # -------------------------------------------------------------- snapshots

    def snapshot(self) -> list:
        """The whole tree as msgpack-friendly plain data, sorted by path.

        ``[SNAPSHOT_FORMAT, [[path, data, czxid, mzxid, ctime, mtime, version,
        creates, pzxid, owner], ...]]``; children are implied by the paths.
        """
        records = [
            [path, n.data, n.czxid, n.mzxid, n.ctime, n.mtime, n.version, n.creates, n.pzxid,
             n.owner]
            for path, n in sorted(self._nodes.items())
        ]
        return [SNAPSHOT_FORMAT, records]

    @classmethod
    def restore(
        cls, snap: Any, max_data_bytes: int = 1 << 20, max_path_bytes: int = 4096
    ) -> Tree:
        """Rebuild a tree from :meth:`snapshot`; DataInconsistency if it is malformed."""
        if (not isinstance(snap, (list, tuple)) or len(snap) != 2
                or snap[0] not in (SNAPSHOT_FORMAT, *_OLD_SNAPSHOT_FORMATS)
                or not isinstance(snap[1], (list, tuple))):
            raise DataInconsistency(f"not a {SNAPSHOT_FORMAT} snapshot")
        fields = 10 if snap[0] == SNAPSHOT_FORMAT else 9
        tree = cls(max_data_bytes, max_path_bytes)
        nodes: dict[str, _Node] = {}
        ephemerals: dict[int, set[str]] = {}
        for record in snap[1]:
            if (not isinstance(record, (list, tuple)) or len(record) != fields
                    or not isinstance(record[1], bytes)
                    or not all(type(v) is int for v in record[2:])):
                raise DataInconsistency(f"malformed snapshot record {record!r:.200}")
            path = record[0]
            try:
                # Syntax only: a node saved under larger limits must still load.
                validate_path(path, max_path_bytes=1 << 62)
            except BadArgumentsError as err:
                raise DataInconsistency(f"bad path in snapshot: {err}") from None
            if path in nodes:
                raise DataInconsistency("duplicate path in snapshot", path)
            node = _Node(record[1], 0, 0)
            (node.czxid, node.mzxid, node.ctime, node.mtime, node.version, node.creates,
             node.pzxid) = record[2:9]
            if fields == 10 and record[9]:
                node.owner = record[9]
                ephemerals.setdefault(node.owner, set()).add(path)
            nodes[path] = node
        if ROOT not in nodes:
            raise DataInconsistency("snapshot has no root node")
        for path in nodes:
            if path != ROOT:
                parent_path, name = _split(path)
                parent = nodes.get(parent_path)
                if parent is None:
                    raise DataInconsistency("snapshot node has no parent", path)
                if parent.owner:
                    raise DataInconsistency("snapshot has a child of an ephemeral node", path)
                parent.add_child(name)
        for path, node in nodes.items():
            if node.creates < len(node.children):
                raise DataInconsistency("child count above create count", path)
        tree._nodes = nodes
        tree._ephemerals = ephemerals
        return tree

    def digest(self) -> int:
        """A 64-bit hash of every path, data and stat; equal trees, equal digests.

        O(n log n): meant for tests and consistency checks, not the write path.
        """
        h = hashlib.blake2b(digest_size=8)
        for path in sorted(self._nodes):
            node = self._nodes[path]
            h.update(path.encode("utf-8"))
            h.update(b"\0%d\0" % len(node.data))
            h.update(node.data)
            h.update(",".join(map(str, node.stat().to_list())).encode("ascii"))
            h.update(b"\n")
        return int.from_bytes(h.digest(), "big")


class MultiError(ZookeeperError):
    """Operation ``index`` of a multi failed with ``error``; nothing was applied."""

    def __init__(self, index: int, error: ZookeeperError) -> None:
        super().__init__(f"operation {index} failed: {error}", getattr(error, "path", None))
        self.index = index
        self.error = error
        self.code = error.code


def _check_version_arg(version: object, path: str) -> None:
    if type(version) is not int:
        raise BadArgumentsError(f"version must be an int, not {type(version).__name__}", path)


def _path_hint(path: object) -> str | None:
    return path if isinstance(path, str) else None


__all__ = [
    "CREATE_EPHEMERAL",
    "CREATE_MAKEPATH",
    "CREATE_SEQUENCE",
    "NODE_CHILDREN_CHANGED",
    "NODE_CREATED",
    "NODE_DATA_CHANGED",
    "NODE_DELETED",
    "ROOT",
    "SNAPSHOT_FORMAT",
    "Event",
    "EventType",
    "Stat",
    "Tree",
    "validate_path",
]
