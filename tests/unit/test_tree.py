"""Behaviour of the znode tree (zkactors.core.tree), case by case, against ZooKeeper's rules."""

from __future__ import annotations

import msgpack
import pytest

from zkactors.core.tree import (
    NODE_CHILDREN_CHANGED,
    NODE_CREATED,
    NODE_DATA_CHANGED,
    NODE_DELETED,
    Event,
    EventType,
    Stat,
    Tree,
    validate_path,
)
from zkactors.errors import (
    BadArgumentsError,
    BadVersionError,
    DataInconsistency,
    MarshallingError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    UnimplementedError,
)

pytestmark = pytest.mark.timeout(60)


def make(*paths: str) -> Tree:
    """A tree holding ``paths`` (created in order, zxid 1, 2, ...; time = 1000 * zxid)."""
    tree = Tree()
    for zxid, path in enumerate(paths, start=1):
        tree.create(path, b"", zxid, 1000 * zxid)
    return tree


# ------------------------------------------------------------------------ root


def test_root_exists_with_zero_stat():
    tree = Tree()
    assert len(tree) == 1
    assert tree.get("/") == (b"", Stat(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
    assert tree.get_children("/") == []


def test_root_cannot_be_created_or_deleted():
    tree = Tree()
    with pytest.raises(NodeExistsError):
        tree.create("/", b"", 1, 1)
    with pytest.raises(NodeExistsError):
        tree.create("/", b"", 1, 1, makepath=True)
    with pytest.raises(BadArgumentsError):
        tree.delete("/", -1, 1)
    with pytest.raises(BadArgumentsError):
        tree.delete("/", -1, 1, recursive=True)


def test_root_data_can_be_set():
    tree = Tree()
    stat, _ = tree.set("/", b"r", -1, 3, 30)
    assert (stat.version, stat.mzxid, stat.mtime, stat.czxid) == (1, 3, 30, 0)


# ---------------------------------------------------------------------- create


def test_create_sets_new_node_stat_and_parent_counters():
    tree = make("/a")
    created, events = tree.create("/a/b", b"hello", 7, 7000)
    assert created == "/a/b"
    data, stat = tree.get("/a/b")
    assert data == b"hello"
    assert stat == Stat(czxid=7, mzxid=7, ctime=7000, mtime=7000, version=0, cversion=0,
                        aversion=0, ephemeralOwner=0, dataLength=5, numChildren=0, pzxid=7)
    parent = tree.exists("/a")
    assert (parent.cversion, parent.numChildren, parent.pzxid) == (1, 1, 7)
    # The parent's data side is untouched by a child create.
    assert (parent.version, parent.mzxid, parent.mtime) == (0, 1, 1000)
    assert events == [
        Event(NODE_CREATED, "/a/b", 7, 0),
        Event(NODE_CHILDREN_CHANGED, "/a", 7, 1),
    ]


def test_create_without_parent_raises_no_node():
    tree = Tree()
    with pytest.raises(NoNodeError):
        tree.create("/a/b", b"", 1, 1)
    assert len(tree) == 1


def test_create_existing_node_raises_node_exists():
    tree = make("/a")
    with pytest.raises(NodeExistsError):
        tree.create("/a", b"x", 2, 2)


def test_missing_parent_is_reported_before_existence():
    # Order of checks is ZooKeeper's: path, then parent (NoNode), then NodeExists.
    tree = Tree()
    with pytest.raises(BadArgumentsError):
        tree.create("/a/", b"", 1, 1)
    with pytest.raises(NoNodeError):
        tree.create("/x/y", b"", 1, 1)


def test_makepath_creates_ancestors_with_events_in_order():
    tree = make("/a")
    created, events = tree.create("/a/b/c/d", b"leaf", 5, 50, makepath=True)
    assert created == "/a/b/c/d"
    assert events == [
        Event(NODE_CREATED, "/a/b", 5, 0),
        Event(NODE_CHILDREN_CHANGED, "/a", 5, 1),
        Event(NODE_CREATED, "/a/b/c", 5, 0),
        Event(NODE_CHILDREN_CHANGED, "/a/b", 5, 1),
        Event(NODE_CREATED, "/a/b/c/d", 5, 0),
        Event(NODE_CHILDREN_CHANGED, "/a/b/c", 5, 1),
    ]
    for path in ("/a/b", "/a/b/c"):
        data, stat = tree.get(path)
        assert data == b""
        assert (stat.czxid, stat.ctime, stat.numChildren, stat.cversion) == (5, 50, 1, 1)
    assert tree.get("/a/b/c/d")[0] == b"leaf"


def test_makepath_on_existing_node_changes_nothing():
    tree = make("/a", "/a/b")
    before = tree.digest()
    with pytest.raises(NodeExistsError):
        tree.create("/a/b", b"", 9, 9, makepath=True)
    assert tree.digest() == before


def test_sequence_suffix_uses_parent_cversion():
    tree = make("/q")
    first, _ = tree.create("/q/n-", b"", 2, 2, sequence=True)
    second, _ = tree.create("/q/n-", b"", 3, 3, sequence=True)
    tree.create("/q/other", b"", 4, 4)
    third, _ = tree.create("/q/", b"", 5, 5, sequence=True)
    assert (first, second, third) == ("/q/n-0000000000", "/q/n-0000000001", "/q/0000000003")
    assert tree.get_children("/q") == ["0000000003", "n-0000000000", "n-0000000001", "other"]


def test_sequence_counter_counts_creates_not_deletes():
    # ZooKeeper keeps the number of child creates and derives the visible
    # cversion as 2 * creates - numChildren; the suffix uses the create count.
    tree = make("/q", "/q/x")
    tree.delete("/q/x", -1, 3)
    assert tree.exists("/q").cversion == 2
    created, _ = tree.create("/q/s", b"", 4, 4, sequence=True)
    assert created == "/q/s0000000001"
    assert tree.exists("/q").cversion == 3


def test_sequence_on_root_and_with_makepath():
    tree = Tree()
    assert tree.create("/", b"", 1, 1, sequence=True)[0] == "/0000000000"
    created, _ = tree.create("/p/q/", b"", 2, 2, makepath=True, sequence=True)
    assert created == "/p/q/0000000000"


def test_sequence_collision_raises_node_exists():
    tree = make("/q", "/q/x0000000001")
    with pytest.raises(NodeExistsError):
        tree.create("/q/x", b"", 3, 3, sequence=True)
    assert tree.exists("/q").cversion == 1


# ------------------------------------------------------------------------- set


def test_set_bumps_version_and_modification_stamps():
    tree = make("/a")
    stat, events = tree.set("/a", b"v1", -1, 2, 2000)
    assert (stat.version, stat.mzxid, stat.mtime, stat.dataLength) == (1, 2, 2000, 2)
    assert (stat.czxid, stat.ctime) == (1, 1000)
    assert events == [Event(NODE_DATA_CHANGED, "/a", 2, 1)]
    stat, _ = tree.set("/a", b"", 1, 3, 3000)
    assert (stat.version, stat.dataLength) == (2, 0)
    assert tree.get("/a") == (b"", stat)


def test_set_with_wrong_version_raises_bad_version():
    tree = make("/a")
    with pytest.raises(BadVersionError):
        tree.set("/a", b"x", 1, 2, 2)
    with pytest.raises(BadVersionError):
        tree.set("/a", b"x", -2, 2, 2)


def test_set_missing_node_raises_no_node():
    with pytest.raises(NoNodeError):
        Tree().set("/a", b"x", -1, 1, 1)


# ---------------------------------------------------------------------- delete


def test_delete_refuses_non_empty_node():
    tree = make("/a", "/a/b")
    with pytest.raises(NotEmptyError):
        tree.delete("/a", -1, 3)


def test_delete_checks_version_before_emptiness():
    tree = make("/a", "/a/b")
    with pytest.raises(BadVersionError):
        tree.delete("/a", 5, 3)
    with pytest.raises(NotEmptyError):
        tree.delete("/a", 0, 3)


def test_delete_missing_node_raises_no_node():
    with pytest.raises(NoNodeError):
        Tree().delete("/a", -1, 1)
    with pytest.raises(NoNodeError):
        Tree().delete("/a/b", 0, 1)


def test_delete_updates_parent_and_fires_events():
    tree = make("/a", "/a/b")
    events = tree.delete("/a/b", 0, 3)
    assert events == [Event(NODE_DELETED, "/a/b", 3, -1), Event(NODE_CHILDREN_CHANGED, "/a", 3, 2)]
    stat = tree.exists("/a")
    assert (stat.numChildren, stat.cversion, stat.pzxid) == (0, 2, 3)
    # A delete does not touch the parent's data side.
    assert (stat.mzxid, stat.mtime, stat.version) == (1, 1000, 0)
    assert tree.exists("/a/b") is None


def test_recursive_delete_removes_subtree_deepest_first():
    tree = make("/a", "/a/b", "/a/b/x", "/a/c", "/a/c/y", "/a/c/y/z", "/keep")
    events = tree.delete("/a", -1, 10, recursive=True)
    assert events == [
        Event(NODE_DELETED, "/a/c/y/z", 10, -1),
        Event(NODE_DELETED, "/a/b/x", 10, -1),
        Event(NODE_DELETED, "/a/c/y", 10, -1),
        Event(NODE_DELETED, "/a/b", 10, -1),
        Event(NODE_DELETED, "/a/c", 10, -1),
        Event(NODE_DELETED, "/a", 10, -1),
        Event(NODE_CHILDREN_CHANGED, "/", 10, 3),
    ]
    assert len(tree) == 2
    assert tree.get_children("/") == ["keep"]
    assert tree.exists("/").pzxid == 10


def test_recursive_delete_checks_version_of_top_node_only():
    tree = make("/a", "/a/b")
    tree.set("/a/b", b"x", -1, 3, 3)
    with pytest.raises(BadVersionError):
        tree.delete("/a", 1, 4, recursive=True)
    tree.delete("/a", 0, 4, recursive=True)
    assert len(tree) == 1


def test_recursive_delete_of_leaf_is_a_plain_delete():
    tree = make("/a")
    assert tree.delete("/a", -1, 2, recursive=True) == [
        Event(NODE_DELETED, "/a", 2, -1),
        Event(NODE_CHILDREN_CHANGED, "/", 2, 2),
    ]


def test_stat_counters_after_create_set_delete():
    tree = Tree()
    tree.create("/p", b"", 1, 10)
    tree.create("/p/a", b"", 2, 20)
    tree.create("/p/b", b"", 3, 30)
    tree.set("/p", b"data", 0, 4, 40)
    tree.delete("/p/a", -1, 5)
    stat = tree.exists("/p")
    assert stat == Stat(czxid=1, mzxid=4, ctime=10, mtime=40, version=1, cversion=3,
                        aversion=0, ephemeralOwner=0, dataLength=4, numChildren=1, pzxid=5)
    root = tree.exists("/")
    assert (root.cversion, root.numChildren, root.pzxid) == (1, 1, 1)


# ------------------------------------------------------------------ path rules


@pytest.mark.parametrize("path", ["/", "/a", "/a/b/c", "/a.b", "/.a", "/a..", "/...", "/ünï",
                                  "/a b", "/\u00a0", "/\ufeff"])
def test_valid_paths(path):
    assert validate_path(path) == path


@pytest.mark.parametrize("path", [
    None, b"/a", 3,             # not a str
    "", "a", "a/b",             # empty, relative
    "/a/", "/a/b/",             # trailing slash
    "//", "/a//b", "//a",       # empty node name
    "/.", "/..", "/a/./b", "/a/../b", "/a/.",  # relative components
    "/a\0b", "/a\x01", "/\x1f", "/\x7f", "/\x9f",
    "/\ud800", "/\ue000", "/\uf8ff", "/\ufff0", "/\uffff",
    "/\U0001f600",              # a surrogate pair in Java's UTF-16
])
def test_invalid_paths(path):
    with pytest.raises(BadArgumentsError):
        validate_path(path)


def test_sequence_prefix_may_end_with_slash():
    assert validate_path("/a/", sequence=True) == "/a/"
    assert validate_path("/", sequence=True) == "/"
    assert validate_path("/a/.", sequence=True) == "/a/."
    with pytest.raises(BadArgumentsError):
        validate_path("/a//", sequence=True)
    with pytest.raises(BadArgumentsError):
        validate_path("/a/./", sequence=True)


def test_path_byte_limit_counts_utf8_and_sequence_suffix():
    assert validate_path("/" + "a" * 9, max_path_bytes=10)
    with pytest.raises(BadArgumentsError, match="11 bytes"):
        validate_path("/" + "a" * 10, max_path_bytes=10)
    with pytest.raises(BadArgumentsError):
        validate_path("/" + "é" * 5, max_path_bytes=10)  # 11 bytes in UTF-8
    with pytest.raises(BadArgumentsError):
        validate_path("/a", max_path_bytes=11, sequence=True)  # 2 + 10 digits
    tree = Tree(max_path_bytes=12)
    assert tree.create("/a", b"", 1, 1, sequence=True)[0] == "/a0000000000"
    with pytest.raises(BadArgumentsError):
        tree.create("/ab", b"", 2, 2, sequence=True)


def test_every_operation_validates_its_path():
    tree = make("/a")
    for call in (
        lambda: tree.create("/a/", b"", 2, 2),
        lambda: tree.set("/a/", b"", -1, 2, 2),
        lambda: tree.delete("/a/", -1, 2),
        lambda: tree.get("/a/"),
        lambda: tree.exists("a"),
        lambda: tree.get_children("//"),
    ):
        with pytest.raises(BadArgumentsError):
            call()


def test_bad_arguments_carry_message_and_path():
    with pytest.raises(BadArgumentsError) as info:
        validate_path("/a/")
    assert info.value.path == "/a/"
    assert "end with" in info.value.message


# ---------------------------------------------------------------------- limits


def test_data_must_be_bytes():
    tree = make("/a")
    for data in ("text", None, bytearray(b"x"), 5):
        with pytest.raises(BadArgumentsError, match="bytes"):
            tree.create("/b", data, 2, 2)
        with pytest.raises(BadArgumentsError, match="bytes"):
            tree.set("/a", data, -1, 2, 2)


def test_data_size_limit_names_the_limit():
    tree = Tree(max_data_bytes=4)
    tree.create("/a", b"1234", 1, 1)
    with pytest.raises(BadArgumentsError, match="limit of 4 bytes"):
        tree.create("/b", b"12345", 2, 2)
    with pytest.raises(BadArgumentsError, match="limit of 4 bytes"):
        tree.set("/a", b"12345", -1, 2, 2)
    # Argument errors come before existence checks, as in ZooKeeper.
    with pytest.raises(BadArgumentsError):
        tree.set("/missing", b"12345", -1, 2, 2)


def test_version_must_be_an_int():
    tree = make("/a")
    for version in ("0", None, 0.0, True):
        with pytest.raises(BadArgumentsError):
            tree.set("/a", b"", version, 2, 2)
        with pytest.raises(BadArgumentsError):
            tree.delete("/a", version, 2)


# ----------------------------------------------------- atomicity of failed ops


def failing_writes(tree: Tree):
    yield lambda: tree.create("/a/b", b"", 50, 50)                         # exists
    yield lambda: tree.create("/x/y/z", b"", 50, 50)                       # no parent
    yield lambda: tree.create("/x/y/", b"", 50, 50, makepath=True)         # bad path
    yield lambda: tree.create("/x/y/z", b"x" * 100, 50, 50, makepath=True)  # too big
    yield lambda: tree.create("/a/b", b"", 50, 50, makepath=True)          # exists
    yield lambda: tree.set("/a", b"", 7, 50, 50)                           # bad version
    yield lambda: tree.set("/nope", b"", -1, 50, 50)                       # no node
    yield lambda: tree.delete("/a", -1, 50)                                # not empty
    yield lambda: tree.delete("/a", 3, 50, recursive=True)                 # bad version
    yield lambda: tree.delete("/", -1, 50, recursive=True)                 # root
    yield lambda: tree.apply(["delete", "/a", -1, 1], 50, 50)              # malformed


def test_failed_ops_leave_the_tree_unchanged():
    tree = Tree(max_data_bytes=10)
    for zxid, path in enumerate(["/a", "/a/b", "/a/b/c", "/d"], start=1):
        tree.create(path, b"d", zxid, zxid)
    before, snap, size = tree.digest(), tree.snapshot(), len(tree)
    for write in failing_writes(tree):
        with pytest.raises(Exception) as info:
            write()
        assert type(info.value).__module__ == "zkactors.errors"
        assert tree.digest() == before
        assert tree.snapshot() == snap
        assert len(tree) == size


# ----------------------------------------------------------------------- reads


def test_reads_of_missing_nodes():
    tree = Tree()
    assert tree.exists("/a") is None
    with pytest.raises(NoNodeError):
        tree.get("/a")
    with pytest.raises(NoNodeError):
        tree.get_children("/a")


def test_get_children_returns_sorted_names():
    tree = make("/c", "/a", "/b", "/a/z")
    assert tree.get_children("/") == ["a", "b", "c"]
    assert tree.get_children("/a") == ["z"]
    assert tree.get_children("/a/z") == []
    assert len(tree) == 5


# ------------------------------------------------------------------------ Stat


def test_stat_list_round_trip_and_kazoo_aliases():
    stat = Stat(1, 2, 1500, 2500, 3, 4, 5, 6, 7, 8, 9)
    assert stat.to_list() == [1, 2, 1500, 2500, 3, 4, 5, 6, 7, 8, 9]
    assert Stat.from_list(stat.to_list()) == stat
    assert Stat.from_list(tuple(stat.to_list())) == stat
    assert (stat.created, stat.last_modified) == (1.5, 2.5)
    assert (stat.data_length, stat.children_count, stat.children_version) == (7, 8, 4)
    assert (stat.creation_transaction_id, stat.last_modified_transaction_id) == (1, 2)
    assert (stat.owner_session_id, stat.acl_version) == (6, 5)


@pytest.mark.parametrize("values", [None, [1] * 10, [1] * 12, [1] * 10 + ["x"], "abc"])
def test_stat_from_malformed_list(values):
    with pytest.raises(MarshallingError):
        Stat.from_list(values)


def test_event_types_are_plain_strings():
    assert (EventType.NODE_CREATED, EventType.NODE_DELETED) == ("created", "deleted")
    assert (EventType.NODE_DATA_CHANGED, EventType.NODE_CHILDREN_CHANGED) == ("changed", "child")
    assert type(NODE_CREATED) is str


# ----------------------------------------------------------------------- apply


def test_apply_encodings():
    tree = Tree()
    result, events = tree.apply(["create", "/a/b/", b"x", 3], 1, 10)
    assert result == "/a/b/0000000000"
    assert len(events) == 6
    result, events = tree.apply(("create", "/a/c", b"", 0), 2, 20)
    assert result == "/a/c"
    result, events = tree.apply(["set", "/a/c", b"new", 0], 3, 30)
    assert result == tree.exists("/a/c").to_list()
    assert result[4] == 1
    assert events == [Event(NODE_DATA_CHANGED, "/a/c", 3, 1)]
    result, events = tree.apply(["delete", "/a", -1, True], 4, 40)
    assert result is None
    assert events[-1] == Event(NODE_CHILDREN_CHANGED, "/", 4, 2)
    assert len(tree) == 1


def test_apply_survives_a_msgpack_round_trip():
    txns = [["create", "/a", b"\x00\xff", 1], ["set", "/a", b"z", -1], ["delete", "/a", 1, False]]
    direct, replayed = Tree(), Tree()
    for zxid, txn in enumerate(txns, start=1):
        wire = msgpack.unpackb(msgpack.packb(txn, use_bin_type=True), raw=False)
        assert direct.apply(txn, zxid, zxid) == replayed.apply(wire, zxid, zxid)
    assert direct.digest() == replayed.digest()


def test_apply_raises_the_operation_errors():
    tree = Tree()
    with pytest.raises(NoNodeError):
        tree.apply(["create", "/a/b", b"", 0], 1, 1)
    with pytest.raises(NoNodeError):
        tree.apply(["set", "/a", b"", -1], 1, 1)
    with pytest.raises(BadArgumentsError):
        tree.apply(["delete", "/", -1, False], 1, 1)


@pytest.mark.parametrize("txn", [
    None, [], (), "create", {"op": "create"},
    [b"create", "/a", b"", 0],        # op not a str
    [1, "/a"],
    ["create", "/a", b""],            # too short
    ["create", "/a", b"", 0, 0],      # too long
    ["create", "/a", b"", 4],         # unknown flag bit
    ["create", "/a", b"", -1],
    ["create", "/a", b"", "1"],
    ["create", "/a", b"", True],
    ["create", 5, b"", 0],            # path not a str
    ["create", "/a", "text", 0],      # data not bytes
    ["set", "/", b"", "0"],           # version not an int
    ["set", "/", b""],
    ["delete", "/a", -1],
    ["delete", "/a", -1, 1],          # recursive not a bool
    ["delete", "/a", None, False],
])
def test_apply_rejects_malformed_txns(txn):
    tree = Tree()
    before = tree.digest()
    with pytest.raises(BadArgumentsError):
        tree.apply(txn, 1, 1)
    assert tree.digest() == before


@pytest.mark.parametrize("op", ["multi", "setACL", "sync", ""])
def test_apply_rejects_unknown_ops(op):
    with pytest.raises(UnimplementedError):
        Tree().apply([op, "/a", b"", 0], 1, 1)


# -------------------------------------------------------------------- snapshots


def populated() -> Tree:
    tree = Tree(max_data_bytes=64)
    tree.create("/a/b/c", b"deep", 1, 100, makepath=True)
    tree.create("/a/s-", b"", 2, 200, sequence=True)
    tree.create("/a/s-", b"", 3, 300, sequence=True)
    tree.set("/a/b", b"mid", -1, 4, 400)
    tree.delete("/a/s-0000000002", -1, 5)
    tree.create("/\u00e9t\u00e9", b"\x00\x01", 6, 600)
    return tree


def test_snapshot_restore_round_trip():
    tree = populated()
    snap = tree.snapshot()
    wire = msgpack.unpackb(msgpack.packb(snap, use_bin_type=True), raw=False)
    copy = Tree.restore(wire, max_data_bytes=64)
    assert copy.digest() == tree.digest()
    assert copy.snapshot() == snap
    assert len(copy) == len(tree)
    assert copy.max_data_bytes == 64
    for path in ("/", "/a", "/a/b", "/a/b/c", "/a/s-0000000001", "/\u00e9t\u00e9"):
        assert copy.get(path) == tree.get(path)
        assert copy.get_children(path) == tree.get_children(path)
    # The restored tree keeps ZooKeeper's counters: the next sequence number goes on.
    assert copy.create("/a/s-", b"", 7, 700, sequence=True) == \
        tree.create("/a/s-", b"", 7, 700, sequence=True)
    assert copy.digest() == tree.digest()


def test_snapshot_of_empty_tree():
    snap = Tree().snapshot()
    assert Tree.restore(snap).digest() == Tree().digest()


def test_digest_sees_data_and_stat_changes():
    base = populated().digest()
    assert populated().digest() == base
    for change in (
        lambda t: t.set("/a", b"", -1, 9, 900),
        lambda t: t.set("/a", b"", -1, 9, 901),
        lambda t: t.create("/z", b"", 9, 900),
        lambda t: t.delete("/a/b/c", -1, 9),
    ):
        tree = populated()
        change(tree)
        assert tree.digest() != base


@pytest.mark.parametrize("snap", [
    None, [], ["other-format", []], ["zkactors.tree/1"],
    ["zkactors.tree/1", []],                                             # no root
    ["zkactors.tree/1", [["/a", b"", 0, 0, 0, 0, 0, 0, 0]]],             # no root, orphan
    ["zkactors.tree/1", [["/", b"", 0, 0, 0, 0, 0, 1, 0], ["/a/b", b"", 0, 0, 0, 0, 0, 0, 0]]],
    ["zkactors.tree/1", [["/", b"", 0, 0, 0, 0, 0, 0, 0]] * 2],          # duplicate
    ["zkactors.tree/1", [["/", "text", 0, 0, 0, 0, 0, 0, 0]]],
    ["zkactors.tree/1", [["/", b"", 0, 0, 0, 0, 0, 0]]],
    ["zkactors.tree/1", [["/", b"", 0, 0, 0, 0, 0, 0, 0], ["/a/", b"", 0, 0, 0, 0, 0, 0, 0]]],
    ["zkactors.tree/1", [["/", b"", 0, 0, 0, 0, 0, 0, 0], ["/a", b"", 0, 0, 0, 0, 0, 0, 0]]],
])
def test_restore_rejects_malformed_snapshots(snap):
    with pytest.raises(DataInconsistency):
        Tree.restore(snap)


def test_a_leaf_costs_no_children_set_of_its_own():
    # A million-znode tree must fit a node in 1 GiB (issue #13): leaves, nearly all
    # of it, share one empty frozenset (a set each was 216 bytes).
    import tracemalloc

    tree, events = Tree(), []
    tree.create("/p", b"", 1, 0, events)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(10_000):
            tree.create(f"/p/n{i:05d}", b"x" * 100, 1, 0, events)
            events.clear()
        per_znode = (tracemalloc.get_traced_memory()[0] - before) / 10_000
    finally:
        tracemalloc.stop()
    assert per_znode < 400, per_znode  # ~300 with the shared one, ~510 without
    tree.delete("/p/n00000", -1, 2)
    assert tree.get_children("/p")[:1] == ["n00001"]
