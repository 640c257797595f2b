"""``python -m zkactors.sim.mutants``: does the simulator catch known-bad changes?

Each mutant is a small change to the shipped code that breaks a rule the
protocol depends on — Raft's Figure-8 commit rule, the up-to-date check on votes,
fsync before an acknowledgement, FIFO client order … It is applied in memory
(the function's code object is swapped for one compiled from its source with
one edit; nothing on disk changes), then seeded swarm runs go until one fails —
an invariant violated, a liveness failure, or a core raising — or the seed budget
is spent. A mutant that survives is a rule no test of the simulator defends.

The runner prints one line per mutant (name, killed or not, the seed that killed
it, seconds) and exits 1 if any survived. A kill replays exactly:
``python -m zkactors.sim.mutants --only NAME --first SEED --seeds 1``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FunctionType

from zkactors.sim.run import run_swarm_seed


@dataclass(frozen=True)
class Edit:
    """Replace ``old`` (exactly once) by ``new`` in the source of ``function``
    (``module:Qual.name``)."""

    function: str
    old: str
    new: str


@dataclass(frozen=True)
class Mutant:
    name: str
    breaks: str
    edits: tuple[Edit, ...]


R = "zkactors.core.replog:ReplicatedLog."
MUTANTS = (
    Mutant("figure-8", "an entry of an older term is committed by counting replicas", (
        Edit(R + "_advance_commit",
             "if candidate > self.commit_index and self.term_at(candidate) == self.term:",
             "if candidate > self.commit_index:"),)),
    Mutant("vote-up-to-date", "votes and pre-votes go to candidates with shorter logs", (
        Edit(R + "vote_refusal",
             "up_to_date = (message.last_term, message.last_index) >= "
             "(self.last_term, self.last_index)", "up_to_date = True"),
        Edit("zkactors.core.election:ElectionCore.pre_vote_refusal",
             "up_to_date = (ask.last_term, ask.last_index) >= "
             "(self.last_term, self.last_index)", "up_to_date = True"))),
    Mutant("higher-term-step-down", "a leader that sees a newer term keeps leading", (
        Edit(R + "on_message", "if message.term > self.term:",
             "if message.term > self.term and self.role != LEADER:"),
        Edit(R + "step_down", "if message.term > self.term:",
             "if message.term > self.term and self.role != LEADER:"),
        Edit(R + "leader_seen",
             "if message.term > self.term or self.role == CANDIDATE or "
             "self.leader != message.leader:",
             "if self.role != LEADER and (message.term > self.term or "
             "self.role == CANDIDATE or self.leader != message.leader):"))),
    Mutant("conflict-truncation", "a follower keeps its entry where the leader's differs", (
        Edit(R + "_on_append", "if self.term_at(index) == term:", "if True:"),)),
    Mutant("commit-beyond-verified", "a follower commits past what it knows matches", (
        Edit(R + "_learn_commit", "commit = min(leader_commit, self.verified_index)",
             "commit = min(leader_commit, self.last_index)"),)),
    Mutant("leader-caught-up-at-once", "a new leader serves reads before its no-op commits", (
        Edit(R + "_become_leader", "self.caught_up = False", "self.caught_up = True"),
        Edit(R + "_become_leader", "self.term_start = self.catch_up_target = noop.index",
             "self.term_start = noop.index"))),
    Mutant("follower-caught-up-on-an-append",
           "a follower catches up to an append's commit index, which may have left "
           "the leader before the follower restarted", (
               Edit(R + "_learn_commit",
                    "        commit = min(leader_commit, self.verified_index)\n",
                    "        commit = min(leader_commit, self.verified_index)\n"
                    "        if self.catch_up_target is None and self.role == FOLLOWER and \\\n"
                    "                self.term_at(commit) == self.term:\n"
                    "            self.catch_up_target = leader_commit\n"),)),
    Mutant("read-ids-reused", "a restarted node numbers its ReadIndex requests from 1 "
           "again, so an answer meant for its previous process is taken for ours", (
               Edit(R + "__init__", "self._read_ids = read_id_base", "self._read_ids = 0"),)),
    Mutant("fifo-order", "a client's write is applied before an earlier one", (
        Edit("zkactors.core.dedup:ClientTable.in_order",
             "return seq <= last_seq + 1 or seq <= ack_below", "return True"),)),
    Mutant("dedup-lookup", "a retried write is applied again", (
        Edit("zkactors.core.dedup:ClientTable.lookup", "reply = record.replies.get(seq)",
             "reply = None"),)),
    Mutant("ack-before-fsync", "votes and acknowledgements leave before the fsync", (
        Edit("zkactors.engine.replica:Replica.carry_out",
             "early = [m for m in ready.messages if may_send_before_persist(m[1])]",
             "early = list(ready.messages)"),
        Edit("zkactors.engine.replica:Replica.carry_out",
             "ready.messages = [m for m in ready.messages if not "
             "may_send_before_persist(m[1])]", "ready.messages = []"))),
    Mutant("commit-hint-uncommitted", "a restart applies its log's tail that no leader "
           "confirmed", (
               Edit("zkactors.engine.replica:Replica._hint_commit",
                    "hint = min(core.handed_index, core.persisted_index)",
                    "hint = core.persisted_index"),)),
    Mutant("install-keeps-old-log", "a snapshot install that did not match the log "
           "leaves the old log's tail on disk", (
               Edit("zkactors.engine.replica:Replica.carry_out",
                    "self._restart_log_after(ready.restore[0])",
                    "log.compact_before(ready.restore[0] + 1)"),)),
    Mutant("install-acked-before-durable", "a snapshot install is taken as done before "
           "the file is durably in place", (
               Edit("zkactors.engine.replica:Replica._store_chunk",
                    "            installer.finish()\n", "            installer.abort()\n"),)),
    Mutant("check-quorum", "a leader cut off from a majority never steps down", (
        Edit("zkactors.core.election:ElectionCore._tick_leader",
             "if not self._quorum_alive(now_ms):", "if False:"),)),
    Mutant("gateway-catching-up", "a node still catching up serves reads", (
        Edit("zkactors.core.gateway:GatewayCore._route",
             "if not self.caught_up:", "if False:"),)),
    Mutant("store-read-floor", "the store answers before applying what a reader has seen", (
        Edit("zkactors.core.store:StoreCore._behind",
             "return (len(args) > 1 and args[-1] > self.applied_zxid) or \\\n"
             "            (len(request) > 4 and request[4] > self.applied_index)",
             "return False"),)),
    Mutant("session-no-grace", "a new leader expires sessions it never heard from, at once", (
        Edit("zkactors.core.sessions:ExpiryTracker.lead",
             "self.last_heard = dict.fromkeys(sessions, now_ms)",
             "self.last_heard = dict.fromkeys(sessions, now_ms - 10**6)"),
        Edit("zkactors.core.sessions:ExpiryTracker.lead",
             "self._due = [(now_ms + timeout, session_id)",
             "self._due = [(now_ms, session_id)"))),
    Mutant("session-touch-dropped", "a follower keeps to itself the sessions it heard from", (
        Edit("zkactors.core.sessions:touch_route",
             "if leader and leader != node_id:", "if False:"),)),
    Mutant("session-stall-counted", "a leader's own stall counts as its clients' silence", (
        Edit("zkactors.core.sessions:ExpiryTracker._forgive_stall",
             "if excess > 0:", "if False:"),)),
    Mutant("ephemerals-outlive-session", "ending a session leaves its ephemeral nodes", (
        Edit("zkactors.core.store:StoreCore._apply_session_txn",
             "events.extend(self.tree.delete_ephemerals(session_id, zxid))", "pass"),)),
    Mutant("watch-restart-keeps-numbers", "a watch core starting over at a snapshot lets "
           "its subscribers' numbers run on", (
               Edit("zkactors.core.watches:WatchCore.restart_from",
                    "            self._seqs[prefix] += 1\n", "            pass\n"),)),
    Mutant("watch-resume-redelivers", "a client's resume hands again events it already "
           "dispatched", (
               Edit("zkactors.client.watchstream:WatchStream._merge",
                    "        for entry in merged:\n            if not entry.dispatched:\n",
                    "        for entry in merged:\n            if True:\n"),)),
    Mutant("ephemeral-owner-lost", "an ephemeral node is created without its owner", (
        Edit("zkactors.core.tree:Tree.create",
             "self._ephemerals.setdefault(owner, set()).add(path)", "pass"),)),
)


def _target(path: str) -> FunctionType:
    module_name, qualname = path.split(":")
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = inspect.getattr_static(obj, part)
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if not isinstance(obj, FunctionType):
        raise TypeError(f"{path} is not a function")
    return obj


@contextmanager
def applied(mutant: Mutant) -> Iterator[None]:
    """Run the body with ``mutant``'s edits in the code; put it back afterwards."""
    originals: dict[FunctionType, object] = {}
    sources: dict[FunctionType, str] = {}
    try:
        for edit in mutant.edits:
            function = _target(edit.function)
            source = sources.get(function) or inspect.getsource(function)
            if source.count(edit.old) != 1:
                raise ValueError(f"mutant {mutant.name}: {edit.old!r} occurs "
                                 f"{source.count(edit.old)} times in {edit.function}")
            sources[function] = source.replace(edit.old, edit.new)
        for function, source in sources.items():
            scope: dict = {}
            source = textwrap.dedent(source)  # (a method's source is indented)
            exec(compile(source, f"<mutant {mutant.name}>", "exec"),  # noqa: S102
                 function.__globals__, scope)
            (mutated,) = [v for v in scope.values() if isinstance(v, FunctionType)]
            originals[function] = function.__code__
            function.__code__ = mutated.__code__
        yield
    finally:
        for function, code in originals.items():
            function.__code__ = code


class BaselineFailure(Exception):
    """A seed fails without any mutant: the simulator or the code is wrong, and
    no kill means anything until that is fixed."""


def hunt(mutant: Mutant, seeds: range, try_first: int | None = None) -> tuple[int | None, str]:
    """The first seed whose run fails with ``mutant`` applied, and how. A kill
    counts only if the same seed passes without the mutant. ``try_first``: a seed
    in ``seeds`` to try before the others (one that killed it last time; the
    test suite's shortcut — the verdict is the same, found sooner)."""
    order = list(seeds)
    if try_first in seeds:
        order.remove(try_first)
        order.insert(0, try_first)
    with applied(mutant):
        for seed in order:
            try:
                run_swarm_seed(seed)
            except Exception as err:  # noqa: BLE001 - any failure kills the mutant
                how = f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
                break
        else:
            return None, ""
    try:
        run_swarm_seed(seed)
    except Exception as err:
        raise BaselineFailure(f"seed {seed} fails without the mutant too: {err}") from err
    return seed, how


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zkactors.sim.mutants",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=600, help="seed budget per mutant")
    parser.add_argument("--first", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--only", action="append", help="just this mutant (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    if args.list:
        for mutant in MUTANTS:
            print(f"{mutant.name:34} {mutant.breaks}")
        return 0
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    if args.only and len(chosen) != len(args.only):
        parser.error(f"unknown mutant among {args.only}; --list shows them")
    seeds = range(args.first, args.first + args.seeds)
    survivors = 0
    started = time.monotonic()
    print(f"{'mutant':34} {'killed':7} {'seed':>5} {'seconds':>8}  how")
    for mutant in chosen:
        began = time.monotonic()
        seed, how = hunt(mutant, seeds)
        seconds = time.monotonic() - began
        survivors += seed is None
        print(f"{mutant.name:34} {'yes' if seed is not None else 'NO':7} "
              f"{'-' if seed is None else seed:>5} {seconds:8.1f}  "
              f"{how or f'survived {len(seeds)} seeds: ' + mutant.breaks}", flush=True)
    print(f"{len(chosen) - survivors} of {len(chosen)} mutants killed within "
          f"{len(seeds)} seeds each, in {time.monotonic() - started:.0f} s")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
