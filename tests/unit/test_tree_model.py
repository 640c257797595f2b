"""Random operation sequences on the Tree, checked against an independent model.

The model is a plain ``dict path -> record`` written from ZooKeeper's documented
semantics (programmer's guide + PrepRequestProcessor's checks), without looking
at how Tree stores things: children are found by scanning keys, cversion counts
every change to the children (creates and deletes), and the sequence counter is
kept separately (it counts child creates only). Every result, every error class,
every event and every stat field must agree, after every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from zkactors.core.tree import Tree
from zkactors.errors import (
    BadArgumentsError,
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    ZookeeperError,
)

# A green run takes seconds; the headroom is for hypothesis to shrink a failure.
pytestmark = pytest.mark.timeout(120)

MAX_DATA = 4
# "0000000001" lets a plain create collide with a later sequential one.
NAMES = ["a", "b", "c", "0000000001"]
PATHS = (
    ["/" + x for x in NAMES]
    + ["/" + x + "/" + y for x in NAMES for y in NAMES]
    + ["/" + x + "/" + y + "/" + z for x in NAMES[:2] for y in NAMES for z in NAMES]
    + ["/"]
)
# Paths the model knows are malformed (for non-sequential use).
INVALID = ["a", "/a/", "//a", "/a/./b", "/..", "/a\x00", "/b/\x01"]


@dataclass
class Rec:
    data: bytes
    czxid: int
    mzxid: int
    ctime: int
    mtime: int
    pzxid: int
    version: int = 0
    cversion: int = 0
    seq: int = 0  # children ever created: the next sequential suffix


def parent_of(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def depth(path: str) -> int:
    return 0 if path == "/" else path.count("/")


class Model:
    def __init__(self) -> None:
        self.nodes = {"/": Rec(b"", 0, 0, 0, 0, 0)}

    def children(self, path: str) -> list[str]:
        return sorted(p.rsplit("/", 1)[1] for p in self.nodes if p != "/" and parent_of(p) == path)

    def stat(self, path: str) -> list[int]:
        r = self.nodes[path]
        return [r.czxid, r.mzxid, r.ctime, r.mtime, r.version, r.cversion, 0, 0,
                len(r.data), len(self.children(path)), r.pzxid]

    @staticmethod
    def check_args(path: str, data: object = b"") -> None:
        if path in INVALID:
            raise BadArgumentsError(path)
        if not isinstance(data, bytes) or len(data) > MAX_DATA:
            raise BadArgumentsError(path)

    def create(self, path, data, makepath, sequence, zxid, time):
        self.check_args("/" if sequence else path, data)
        parent = parent_of(path)  # also right for a sequential prefix like "/a/"
        to_make = []
        if parent not in self.nodes:
            if not makepath:
                raise NoNodeError(path)
            p = parent
            while p not in self.nodes:
                to_make.insert(0, p)
                p = parent_of(p)
        if sequence:
            counter = self.nodes[parent].seq if parent in self.nodes else 0
            path = f"{path}{counter:010d}"
        if path in self.nodes:
            raise NodeExistsError(path)
        events = []
        for p in to_make + [path]:
            self.nodes[p] = Rec(data if p == path else b"", zxid, zxid, time, time, zxid)
            par = self.nodes[parent_of(p)]
            par.cversion += 1
            par.seq += 1
            par.pzxid = zxid
            events += [("created", p, zxid, 0), ("child", parent_of(p), zxid, par.cversion)]
        return path, events

    def set(self, path, data, version, zxid, time):
        self.check_args(path, data)
        if path not in self.nodes:
            raise NoNodeError(path)
        r = self.nodes[path]
        if version not in (-1, r.version):
            raise BadVersionError(path)
        r.data, r.version, r.mzxid, r.mtime = data, r.version + 1, zxid, time
        return self.stat(path), [("changed", path, zxid, r.version)]

    def delete(self, path, version, recursive, zxid):
        self.check_args(path)
        if path == "/":
            raise BadArgumentsError(path)
        if path not in self.nodes:
            raise NoNodeError(path)
        if version not in (-1, self.nodes[path].version):
            raise BadVersionError(path)
        below = [p for p in self.nodes if p.startswith(path + "/")]
        if below and not recursive:
            raise NotEmptyError(path)
        doomed = sorted(below + [path], key=lambda p: (-depth(p), p))
        events = []
        for p in doomed:
            del self.nodes[p]
            events.append(("deleted", p, zxid, -1))
        par = self.nodes[parent_of(path)]
        par.cversion += 1
        par.pzxid = zxid
        events.append(("child", parent_of(path), zxid, par.cversion))
        return None, events


def outcome(fn, *args, **kwargs):
    """(result, events) with events as tuples, or the error class."""
    label = None if isinstance(getattr(fn, "__self__", None), Model) else fn.__name__
    try:
        result, events = fn(*args, **kwargs)
    except ZookeeperError as err:
        if label:  # coverage statistics (--hypothesis-show-statistics)
            event(f"{label}: {type(err).__name__}")
        return type(err)
    if label:
        event(f"{label}: ok")
    if events and not isinstance(events[0], tuple):
        events = [(e.type, e.path, e.zxid, e.version) for e in events]
    return result, events


# About one draw in ten is bad data (too long, or not bytes). (Hypothesis leans
# towards small integers and first elements, so good choices come first.)
data_st = st.integers(0, 99).flatmap(
    lambda n: st.binary(max_size=MAX_DATA) if n < 90 else st.sampled_from([b"12345", "str", None])
)


class TreeVersusModel(RuleBasedStateMachine):
    @initialize()
    def start(self):
        self.tree = Tree(max_data_bytes=MAX_DATA)
        self.model = Model()
        self.zxid = 0

    def next_zxid(self) -> tuple[int, int]:
        self.zxid += 1
        return self.zxid, 1_000_000 + 7 * self.zxid

    def pick_path(self, data) -> str:
        """A path: from the alphabet, an existing node (sequential ones too), a node
        with children (for NotEmpty and recursive deletes), or now and then a bad one."""
        kind = data.draw(st.sampled_from(["existing"] * 3 + ["alphabet"] * 3 + ["inner"] * 2
                                         + ["invalid"]))
        # The root comes from the alphabet, now and then (it is last there).
        existing = sorted(self.model.nodes)[1:]
        inner = sorted({parent_of(p) for p in existing} - {"/"})
        if kind == "invalid":
            choices = INVALID
        elif kind == "existing" and existing:
            choices = existing
        elif kind == "inner" and inner:
            choices = inner
        else:
            choices = PATHS
        return data.draw(st.sampled_from(choices))

    def pick_version(self, data, path: str) -> int:
        kind = data.draw(st.sampled_from(["any", "match", "random"]))
        if kind == "any":
            return -1
        if kind == "match" and path in self.model.nodes:
            return self.model.nodes[path].version
        return data.draw(st.integers(-2, 3))

    @rule(data=st.data(), payload=data_st, makepath=st.booleans(), via_apply=st.booleans())
    def create(self, data, payload, makepath, via_apply):
        sequence = data.draw(st.booleans())
        if sequence:
            # Mostly under existing nodes, so that counters left by earlier creates
            # and deletes (and collisions with "0000000001") come into play.
            base = data.draw(st.one_of(st.sampled_from(sorted(self.model.nodes)),
                                       st.sampled_from(PATHS)))
            path = base.rstrip("/") + "/" + data.draw(st.sampled_from(["", "q"]))
        else:
            path = self.pick_path(data)
        self.check_create(path, payload, makepath, sequence, via_apply)

    @rule(path=st.sampled_from(PATHS), payload=st.binary(max_size=MAX_DATA))
    def grow(self, path, payload):
        # Plain makepath creates, so that trees get deep enough to be interesting.
        self.check_create(path, payload, True, False, False)

    def check_create(self, path, payload, makepath, sequence, via_apply):
        zxid, time = self.next_zxid()
        expected = outcome(self.model.create, path, payload, makepath, sequence, zxid, time)
        if via_apply:
            txn = ["create", path, payload, makepath | (sequence << 1)]
            got = outcome(self.tree.apply, txn, zxid, time)
        else:
            got = outcome(self.tree.create, path, payload, zxid, time, makepath, sequence)
        assert got == expected, (path, makepath, sequence)

    @rule(data=st.data(), payload=data_st, via_apply=st.booleans())
    def set(self, data, payload, via_apply):
        zxid, time = self.next_zxid()
        path = self.pick_path(data)
        version = self.pick_version(data, path)
        expected = outcome(self.model.set, path, payload, version, zxid, time)
        if via_apply:
            got = outcome(self.tree.apply, ["set", path, payload, version], zxid, time)
        else:
            got = outcome(self.tree.set, path, payload, version, zxid, time)
            if isinstance(got, tuple):
                got = (got[0].to_list(), got[1])
        assert got == expected, (path, version)

    @rule(data=st.data(), recursive=st.booleans(), via_apply=st.booleans())
    def delete(self, data, recursive, via_apply):
        zxid, _ = self.next_zxid()
        path = self.pick_path(data)
        version = self.pick_version(data, path)
        expected = outcome(self.model.delete, path, version, recursive, zxid)
        if via_apply:
            got = outcome(self.tree.apply, ["delete", path, version, recursive], zxid, 0)
        else:
            got = outcome(self.tree_delete, path, version, zxid, recursive)
        assert got == expected, (path, version, recursive)

    def tree_delete(self, path, version, zxid, recursive):
        return None, self.tree.delete(path, version, zxid, recursive)

    @rule(data=st.data())
    def read(self, data):
        path = self.pick_path(data)
        try:
            self.model.check_args(path)
        except BadArgumentsError:
            for read in (self.tree.get, self.tree.exists, self.tree.get_children):
                with pytest.raises(BadArgumentsError):
                    read(path)
            return
        if path not in self.model.nodes:
            assert self.tree.exists(path) is None
            with pytest.raises(NoNodeError):
                self.tree.get(path)
            with pytest.raises(NoNodeError):
                self.tree.get_children(path)
            return
        payload, stat = self.tree.get(path)
        assert payload == self.model.nodes[path].data
        assert stat.to_list() == self.model.stat(path)
        assert self.tree.get_children(path) == self.model.children(path)

    @rule()
    def snapshot_and_restore(self):
        # A restored tree must be indistinguishable from the original from now on.
        before = self.tree.digest()
        self.tree = Tree.restore(self.tree.snapshot(), max_data_bytes=MAX_DATA)
        assert self.tree.digest() == before

    @invariant()
    def same_tree(self):
        if not hasattr(self, "tree"):
            return
        assert len(self.tree) == len(self.model.nodes)
        for path in self.model.nodes:
            stat = self.tree.exists(path)
            assert stat is not None, path
            assert stat.to_list() == self.model.stat(path), path
            assert self.tree.get_children(path) == self.model.children(path), path


TreeVersusModel.TestCase.settings = settings(
    max_examples=300,
    database=None,  # no .hypothesis directory; runs stay independent
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_tree_matches_model = TreeVersusModel.TestCase
