"""``zkctl backup`` and ``zkctl restore``: the replicated state to a file, and a
new ensemble seeded from it.

A backup is one node's state machine (the tree and the dedup table) at one
zxid, fetched with a read (``backup``) after a ``sync``: so it holds at least
everything acknowledged before the command started. The file is a snapshot file
(:mod:`zkactors.storage.snapshot`): a checksummed header naming the (index,
term) it covers, then the payload, exactly as a node keeps its own snapshots.

A restore seeds every node of a *new, stopped* ensemble (its data dirs empty or
absent) with that snapshot and the term it was taken in, so the ensemble starts
where the backup was taken: same tree, same zxids, and the next leader's term
above the backup's. It refuses a data dir that holds anything: restoring over a
member's log could contradict what it has acknowledged.

Both print the tree's digest (:meth:`zkactors.core.tree.Tree.digest`), so the
restored ensemble can be checked: a backup of it has the same digest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from zkactors.config import NodeConfig
from zkactors.core.store import StoreCore
from zkactors.core.tree import Tree
from zkactors.errors import ZkactorsError
from zkactors.protocol import OP_BACKUP, format_zxid, make_zxid, unpack
from zkactors.storage.snapshot import (
    CorruptSnapshotError,
    SnapshotStore,
    decode_snapshot,
    encode_snapshot,
)
from zkactors.storage.stable import StableStore


class BackupError(ZkactorsError):
    """A backup or restore that cannot be done; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class Summary:
    index: int
    term: int
    znodes: int
    digest: int

    @property
    def zxid(self) -> int:
        return make_zxid(self.term, self.index)

    def line(self) -> str:
        return (f"{self.znodes} znodes at zxid {format_zxid(self.zxid)}, "
                f"tree digest {self.digest:016x}")


def summarize(index: int, term: int, payload: bytes) -> Summary:
    """Load ``payload`` as a node would (every check a node makes) and describe it."""
    store = StoreCore(Tree(max_data_bytes=1 << 62, max_path_bytes=1 << 62))
    try:
        store.restore_state(unpack(payload), index, term)
    except Exception as err:  # noqa: BLE001 - any way the payload is unusable
        raise BackupError(f"not a zkactors state: {err}") from None
    return Summary(index, term, len(store.tree), store.tree.digest())


def backup(hosts: str, path: str, timeout: float) -> Summary:
    """Fetch the state from a node of the running ensemble at ``hosts`` and
    write it to ``path`` (atomically: a crash leaves the old file or none)."""
    from zkactors.client import Client

    client = Client(hosts, request_timeout=max(timeout, 60.0), session=False)
    client.start(timeout=timeout)
    try:
        client.sync("/")  # everything acknowledged before now is applied here
        future = client._call(OP_BACKUP, ["/"], _triple, "/")
        index, term, payload = client._wait(future)
    finally:
        client.stop()
    summary = summarize(index, term, payload)
    _write_atomically(path, encode_snapshot(index, term, [], payload))
    return summary


def _triple(result: object) -> tuple[int, int, bytes]:
    if not (isinstance(result, list) and len(result) == 3
            and isinstance(result[2], bytes)):
        raise BackupError("the node's backup reply is malformed")
    return result[0], result[1], result[2]


def read_backup(path: str) -> tuple[int, int, bytes, Summary]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise BackupError(f"cannot read {path}: {err.strerror}") from None
    try:
        snapshot = decode_snapshot(data, path)
    except CorruptSnapshotError as err:
        raise BackupError(f"{err} (not a zkactors backup, or damaged)") from None
    meta = snapshot.meta
    return meta.index, meta.term, snapshot.payload, summarize(meta.index, meta.term,
                                                               snapshot.payload)


def restore(path: str, configs: list[NodeConfig]) -> Summary:
    """Seed every node in ``configs`` (a stopped, new ensemble) from the backup."""
    index, term, payload, summary = read_backup(path)
    for config in configs:  # all checked before any is written
        _check_empty(config)
    members = [member.id for member in configs[0].members]
    for config in configs:
        snapshots = SnapshotStore(os.path.join(config.data_dir, "snap"), fsync=True)
        snapshots.save(index, term, payload, members)
        # The term the backup was taken in: the first election goes above it,
        # and the snapshot's entries can never look newer than the log's.
        StableStore(config.data_dir, fsync=True).save(term, 0)
    return summary


def _check_empty(config: NodeConfig) -> None:
    data_dir = config.data_dir
    if os.path.isdir(data_dir) and os.listdir(data_dir):
        raise BackupError(f"node {config.node_id}'s data dir {data_dir} is not empty "
                          f"(set in {config.path}): restore seeds only a new, stopped "
                          "ensemble; move the old data away first")
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise BackupError(f"node {config.node_id}'s data dir {data_dir} is not a directory")


def _write_atomically(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise BackupError(f"cannot write {path}: {err.strerror}") from None
