"""Walkthroughs: the protocol's classic moments, each told by a real trace.

    python -m zkactors.sim.walkthroughs --write docs/walkthroughs   # regenerate
    python -m zkactors.sim.walkthroughs --check docs/walkthroughs   # as CI does

Each walkthrough is a short script run on the simulator with every random fault
off (:meth:`Faults.calm`): the script crashes, cuts and heals nodes and sends
client requests at chosen moments, and the tracer (zkactors.sim.trace) tells
what the cores did. The page is the script's prose, that trace, and links to
the code that decided each step — line numbers taken from the code as it is, so
a change that moves them, or changes the story, changes the page, and
``--check`` (run by tests/sim/test_walkthroughs.py) fails until it is
regenerated.

A script also checks its own story (:meth:`Script.expect`): if the cores stop
behaving as its prose says, generating the page fails, rather than printing a
trace that contradicts the words around it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zkactors.client.watchstream import LIVE
from zkactors.core.messages import LEADER
from zkactors.docgen import link
from zkactors.protocol import make_zxid
from zkactors.sim.cluster import Simulation
from zkactors.sim.faults import Faults
from zkactors.sim.trace import Tracer
from zkactors.sim.watchers import SimWatcher

REPO = Path(__file__).resolve().parents[2]
#: The longest any script waits for something (simulated ms).
WAIT_MS = 5000


class StoryError(AssertionError):
    """A walkthrough's run did not go as its prose says."""


class Script:
    """What a walkthrough's script may do to a calm simulated ensemble."""

    def __init__(self, seed: int, nodes: int, faults: Faults) -> None:
        self.lines: list[str] = []
        self.tracer = Tracer(list(range(1, nodes + 1)), self.lines.append, clients=True)
        self.tracer.header()
        self.sim = Simulation(seed, nodes=nodes, faults=faults, trace=self.tracer)
        self._seq = 0

    # --------------------------------------------------------- time
    def until(self, what: str, test: Callable[[], bool], within_ms: int = WAIT_MS) -> None:
        """Run, a millisecond at a time, until ``test()`` holds."""
        sim = self.sim
        end = sim.now + within_ms
        while not test():
            if sim.now >= end:
                raise StoryError(f"{what}: not within {within_ms} ms")
            sim.run(sim.now + 1, chaos=False)

    def wait(self, ms: int) -> None:
        self.sim.run(self.sim.now + ms, chaos=False)

    def skip_to_here(self) -> None:
        """Leave what happened so far out of the page, but for one line saying
        where things stand (for walkthroughs that start after an election)."""
        del self.lines[:]
        self.tracer.header()
        leader = self.leader()
        nodes = self.sim.nodes.values()
        applied = sorted({n.store.applied_index for n in nodes if n.up})
        self.tracer.note(self.sim.now, None, f"(earlier lines left out: n{leader} leads term "
                                             f"{self.sim.nodes[leader].log.term}; applied "
                                             f"through {', '.join(map(str, applied))})")

    # ------------------------------------------------------- reading
    def leader(self) -> int:
        leaders = [n.id for n in self.sim.nodes.values() if n.up and n.log.role == LEADER]
        return leaders[0] if len(leaders) == 1 else 0

    def until_leader(self, other_than: int = 0) -> int:
        self.until("a leader", lambda: self.leader() not in (0, other_than))
        return self.leader()

    def until_applied_everywhere(self, index: int, nodes: list[int] | None = None) -> None:
        members = nodes or [n.id for n in self.sim.nodes.values() if n.up]
        self.until(f"index {index} applied on {members}", lambda: all(
            self.sim.nodes[m].store.applied_index >= index for m in members))

    def until_line(self, pattern: str, what: str, within_ms: int = WAIT_MS) -> None:
        """Run until the trace has a line matching ``pattern``."""
        self.until(what, lambda: any(re.search(pattern, line) for line in self.lines),
                   within_ms)

    def expect(self, pattern: str, what: str) -> str:
        """The trace so far has a line matching ``pattern``; returns it."""
        for line in self.lines:
            if re.search(pattern, line):
                return line
        raise StoryError(f"{what}: no line matches {pattern!r}")

    # ------------------------------------------------------- acting
    def say(self, text: str) -> None:
        """A line of the script's own, across every lane."""
        self.tracer.note(self.sim.now, None, f"[script] {text}")

    def write(self, node: int, op: str, path: str, data: bytes = b"") -> int:
        """A client's write sent to ``node``; returns its request id."""
        self._seq += 1
        args = [path, data, 0] if op == "create" else [path, data, -1]
        return self._send(node, [op, *args, self._seq, self._seq])

    def sync_then_get(self, node: int, path: str) -> None:
        """``sync`` then ``get`` in one frame: a linearizable read."""
        self._send(node, ["sync", path], ["get", path])

    def _send(self, node: int, *requests: list) -> int:
        sim = self.sim
        frame = []
        for request in requests:
            rid = sim.next_rid()
            sim._inflight[rid] = ("read",)  # answered in the trace; nobody retries
            frame.append([rid, *request])
        sim._client_frame(sim.nodes[node], b"c50", 50, frame)
        return frame[-1][0]

    def crash(self, node: int) -> None:
        self.sim.nodes[node].crash()

    def restart(self, node: int) -> None:
        self.sim.nodes[node].start()
        self.sim.deliver_queued(self.sim.nodes[node])

    def cut(self, a: int, b: int) -> None:
        pair = frozenset((a, b))
        self.sim.partitioned.add(pair)
        self.tracer.partitioned(self.sim.now, pair)

    def heal(self, a: int, b: int) -> None:
        pair = frozenset((a, b))
        self.sim.partitioned.discard(pair)
        self.tracer.partitioned(self.sim.now, pair, healed=True)

    def snapshot(self, node: int) -> None:
        self.sim._take_snapshot(self.sim.nodes[node])

    def watch(self, name: str, path: str, node: int) -> SimWatcher:
        """A client's recursive watch on ``path``, attached to ``node``."""
        return self.sim.watchers.add(name, path, node)


def calm(**changes: Any) -> Faults:
    """No random fault, no random client; messages 1–5 ms, fsyncs 1–2 ms."""
    quiet = Faults(pipelined=0, lock_clients=0, watchers=0, deliver_after_restart=False,
                   snapshot=0, drift=0, max_delay_ms=5,
                   fsync_ms=(1, 2), retain_entries=(0, 0)).calm()
    for name, value in changes.items():
        setattr(quiet, name, value)
    return quiet


@dataclass(frozen=True)
class Walkthrough:
    name: str
    title: str
    #: Markdown before the trace: what happens, and what to look for.
    intro: str
    script: Callable[[Script], None]
    #: Code that decides the steps: (what it decides, "module:Qual.name").
    decided_by: tuple[tuple[str, str], ...]
    seed: int = 1
    nodes: int = 3
    faults: Faults = field(default_factory=calm)


# ----------------------------------------------------------------- the scripts
def first_election(s: Script) -> None:
    leader = s.until_leader()
    s.until_applied_everywhere(1)
    s.expect(r"pre-vote\? for term 1", "a pre-vote round")
    s.expect(rf"n{leader}.*LEADER of term 1", "the leader")
    s.expect(r"applies 1: no-op", "the no-op applied")


def write_quorum(s: Script) -> None:
    leader = s.until_leader()
    s.until_applied_everywhere(1)
    s.skip_to_here()
    s.say(f"a client creates /config at the leader, n{leader}")
    rid = s.write(leader, "create", "/config", b"v1")
    s.until_applied_everywhere(2)
    s.wait(10)
    s.expect(rf"answers client c50's request {rid}: ok /config", "the client's answer")
    s.expect(r"appended: my log matches yours through 2", "a follower's acknowledgement")


def leader_crash(s: Script) -> None:
    old = s.until_leader()
    s.until_applied_everywhere(1)
    s.skip_to_here()
    follower, other = [n for n in (1, 2, 3) if n != old]
    s.say(f"n{other} is cut off from the others; a client creates /kept at n{old}")
    s.cut(old, other)
    s.cut(follower, other)
    s.write(old, "create", "/kept", b"on a majority")
    s.until("/kept committed", lambda: s.sim.nodes[old].log.commit_index >= 2)
    s.say(f"/kept is on n{old} and n{follower}, a majority: committed. "
          f"Now n{old} crashes and n{other} comes back")
    s.crash(old)
    s.heal(old, other)
    s.heal(follower, other)
    new = s.until_leader(other_than=old)
    if new != follower:
        raise StoryError(f"n{new} won without /kept: only n{follower} could")
    s.until_applied_everywhere(3, [follower, other])
    s.expect(rf"n{follower}.*vote for term \d+: refused \(its log ends at 1@1, behind ours "
             rf"at 2@1\)", "the up-to-date check refusing the node without /kept")
    s.restart(old)
    s.until_applied_everywhere(3)


def stale_leader(s: Script) -> None:
    old = s.until_leader()
    s.until_applied_everywhere(1)
    s.skip_to_here()
    rest = [n for n in (1, 2, 3) if n != old]
    s.say(f"n{old}, the leader, is cut off from both followers")
    for n in rest:
        s.cut(old, n)
    s.write(old, "create", "/lost", b"never committed")
    new = s.until_leader(other_than=old)
    s.expect(rf"n{old}.*check-quorum", "check-quorum")
    s.until_applied_everywhere(s.sim.nodes[new].log.term_start, rest)
    other = next(n for n in rest if n != new)
    s.say(f"n{old} can reach n{other} again, but not yet n{new}, the new leader")
    s.heal(old, other)
    s.until_line(rf"n{other}.*pre-vote for term \d+: refused \(leader n{new} was heard",
                 "the lease refusing the old leader's pre-vote")
    s.say(f"n{old} can reach n{new} too")
    s.heal(old, new)
    s.until_applied_everywhere(s.sim.nodes[new].log.term_start)
    s.expect(rf"n{old}.*drops its entries after 1", "the uncommitted entry dropped")


def split_vote(s: Script) -> None:
    old = s.until_leader()
    s.until_applied_everywhere(1)
    s.skip_to_here()
    s.say(f"n{old}, the leader, is cut off from both followers")
    for n in (1, 2, 3):
        if n != old:
            s.cut(old, n)
    new = s.until_leader(other_than=old)
    term = s.sim.nodes[new].log.term
    split = [line for line in s.lines if re.search(
        r"vote for term (\d+): refused \(already voted for itself", line)]
    if len(split) < 2 or term < 3:
        raise StoryError(f"no split vote before n{new} won term {term}")


def catch_up(s: Script) -> None:
    leader = s.until_leader()
    s.until_applied_everywhere(1)
    s.skip_to_here()
    lagging = next(n for n in (1, 2, 3) if n != leader)
    s.say(f"n{lagging} crashes; three writes go on without it")
    s.crash(lagging)
    for k in range(3):
        s.write(leader, "create", f"/a{k}")
    s.until("the three writes committed",
            lambda: s.sim.nodes[leader].log.commit_index >= 4)
    s.say(f"n{lagging} restarts: the leader's log still holds what it misses")
    s.restart(lagging)
    s.until_applied_everywhere(4)
    s.expect(rf"n{lagging}.*appends 2\.\.4 from the leader", "catching up by log")
    s.say(f"n{lagging} crashes again, and its link to the leader is down too (nothing "
          "is queued for it); two more writes; then the leader snapshots and drops its log")
    s.crash(lagging)
    s.cut(leader, lagging)
    for k in range(2):
        s.write(leader, "create", f"/b{k}")
    s.until("the two writes applied at the leader",
            lambda: s.sim.nodes[leader].store.applied_index >= 6)
    s.snapshot(leader)
    s.until("the leader's log compacted", lambda: s.sim.nodes[leader].log.base_index >= 6)
    s.say(f"n{lagging} restarts and can reach the leader: what it misses is only in the "
          "snapshot now")
    s.heal(leader, lagging)
    s.restart(lagging)
    s.until_applied_everywhere(6)
    s.expect(r"snapshot through 6@1, bytes 0\.\.\d+ \(last chunk\)", "a snapshot sent")
    s.expect(rf"n{lagging}.*its store loads the snapshot through 6@1", "installed")


def read_index(s: Script) -> None:
    leader = s.until_leader()
    s.until_applied_everywhere(1)
    s.skip_to_here()
    follower = next(n for n in (1, 2, 3) if n != leader)
    s.write(leader, "create", "/x", b"1")
    s.until_applied_everywhere(2)
    s.say(f"a client asks n{follower}, a follower, for sync then get /x")
    s.sync_then_get(follower, "/x")
    s.wait(30)
    s.expect(rf"n{follower}.*read index for request", "the follower asks for a read index")
    s.expect(r"still leader of term 1\? \(ReadIndex round", "the leader confirms it leads")
    s.expect(rf"n{follower}.*answers client c50's request \d+: ok", "the read answered")


def watch_failover(s: Script) -> None:
    old = s.until_leader()
    s.until_applied_everywhere(1)
    s.skip_to_here()
    s.say(f"a client watches /app and everything under it, attached to n{old}")
    w = s.watch("w1", "/app", old)
    s.until("w1 live", lambda: w.stream.mode == LIVE)
    s.write(old, "create", "/app", b"")
    s.write(old, "create", "/app/db", b"primary=a")
    s.until("w1 handed three events", lambda: len(w.delivered) == 3)
    s.until("w1 sure of them", lambda: w.stream.synced == make_zxid(1, 3))
    s.say(f"n{old} crashes: the leader, and the node w1 is attached to")
    s.crash(old)
    new = s.until_leader(other_than=old)
    rest = [n for n in (1, 2, 3) if n != old]
    s.until_applied_everywhere(s.sim.nodes[new].log.term_start, rest)
    s.write(new, "set", "/app/db", b"primary=b")
    s.until("w1 attached elsewhere", lambda: w.node != old)
    s.until("w1 handed the change it missed", lambda: len(w.delivered) == 4)
    s.until("w1 live again", lambda: w.stream.mode == LIVE)
    s.write(new, "create", "/app/cache", b"")
    s.until("w1 handed the live events", lambda: len(w.delivered) == 6)
    s.sim.watchers.check()
    s.expect(r"watcher w1 heard nothing from n\d for \d+ ms", "silence noticed")
    s.expect(r"watcher w1 gets 1 event through", "the missed change from the history")


WALKTHROUGHS = (
    Walkthrough(
        "first-election", "A first election",
        "Three nodes start with empty logs. Nobody leads, so each node's election "
        "timer runs out — each at a different, random moment (Raft §5.2), so one "
        "usually asks first. It does not campaign at once: it first asks for "
        "*pre-votes* (Raft thesis §9.6), which change nobody's term; only when a "
        "majority would vote for it does it become a candidate, raise its term, "
        "vote for itself and ask for real votes. The winner's first act is to "
        "append a no-op entry of its own term: entries of earlier terms may only "
        "commit under an entry of the leader's term (§5.4.2). Each follower, hearing "
        "its new leader, asks it for a *read index* (the leader confirms it still "
        "leads with a round a majority answers); it serves reads once it has applied "
        "that far, so it never answers from a state older than what was committed "
        "before it began to follow.",
        first_election,
        (("when a timer fires and a pre-vote starts", "zkactors.core.election:ElectionCore.tick"),
         ("whether a pre-vote is granted", "zkactors.core.election:ElectionCore.pre_vote_refusal"),
         ("whether a vote is granted", "zkactors.core.replog:ReplicatedLog.vote_refusal"),
         ("becoming leader, and the no-op", "zkactors.core.replog:ReplicatedLog._become_leader"))),
    Walkthrough(
        "write-quorum", "A write reaching a quorum",
        "A client creates `/config` at the leader. The leader appends it to its log "
        "and sends it to both followers *while* its own fsync runs (its own copy "
        "counts only once it is on disk). Each follower writes it, fsyncs, and only "
        "then acknowledges. As soon as a majority — the leader and one follower — "
        "hold it, it is committed: the leader hands it to its store, which applies "
        "it and answers the client. The followers learn the new commit index with "
        "the next append or heartbeat, and apply it too.",
        write_quorum,
        (("the leader appending a client's write", "zkactors.core.replog:ReplicatedLog.propose"),
         ("a follower matching and appending", "zkactors.core.replog:ReplicatedLog._on_append"),
         ("counting acknowledgements", "zkactors.core.replog:ReplicatedLog._on_append_response"),
         ("the commit rule (a majority, in the leader's term)",
          "zkactors.core.replog:ReplicatedLog._advance_commit"),
         ("fsync before any acknowledgement leaves", "zkactors.engine.replica:Replica.carry_out"))),
    Walkthrough(
        "split-vote", "A split vote",
        "The leader is cut off, and both followers' election timers run out within "
        "a few milliseconds of each other: both win their pre-votes (each grants the "
        "other's), both become candidates in the same term and vote for themselves, "
        "and each refuses the other — one vote per term (Raft §5.2). With two of "
        "three votes out of reach, nobody wins that term. Each waits a new random "
        "timeout; this time one asks first and wins the next term.",
        split_vote,
        (("one vote per term", "zkactors.core.replog:ReplicatedLog.vote_refusal"),
         ("a fresh random timeout after each round", "zkactors.core.election:ElectionCore._timeout"),
         ("a candidate counting votes", "zkactors.core.replog:ReplicatedLog._on_vote")),
        seed=8),
    Walkthrough(
        "leader-crash", "A leader crash, and the entry that survives",
        "One follower is cut off; the client's `/kept` reaches the leader and the "
        "other follower — a majority — and commits. Then the leader crashes and "
        "the cut-off follower comes back. Both survivors time out, but only the one "
        "holding `/kept` can win: the other's log ends earlier, and a voter refuses "
        "a candidate whose log is behind its own (Raft §5.4.1). That is why an "
        "entry committed by a majority is in every later leader's log.",
        leader_crash,
        (("the up-to-date check on votes", "zkactors.core.replog:ReplicatedLog.vote_refusal"),
         ("the same check on pre-votes", "zkactors.core.election:ElectionCore.pre_vote_refusal"),
         ("a candidate counting votes", "zkactors.core.replog:ReplicatedLog._on_vote"))),
    Walkthrough(
        "stale-leader", "A stale leader that returns",
        "The leader is cut off from both followers. It takes a write it can never "
        "commit. Its heartbeats go unanswered, so after an election timeout it "
        "steps down by itself (check-quorum): clients stop being told it leads. The "
        "followers elect a new leader at a higher term. Then the old leader can reach "
        "one follower again, but not the new leader: hearing no leader, it asks for "
        "pre-votes — and is refused, because that follower hears its leader (the "
        "lease of pre-vote, Raft thesis §9.6): a node that was cut off cannot force "
        "a healthy leader out when it returns. Once it hears the new leader, it "
        "follows, and drops its uncommitted entry where the new leader's log "
        "differs (Raft §5.3).",
        stale_leader,
        (("check-quorum", "zkactors.core.election:ElectionCore._tick_leader"),
         ("the lease that refuses pre-votes", "zkactors.core.election:ElectionCore.pre_vote_refusal"),
         ("a higher term makes any node a follower", "zkactors.core.replog:ReplicatedLog.on_message"),
         ("dropping conflicting entries", "zkactors.core.replog:ReplicatedLog._on_append"))),
    Walkthrough(
        "catch-up", "A follower catching up, by log and by snapshot",
        "A follower crashes and misses three writes. When it restarts it follows "
        "the leader again, and the leader sends it everything after the last entry "
        "it knows the follower holds (had their logs disagreed, the follower would "
        "have refused the append with a hint where to start, and the leader would "
        "have backed up). Then it crashes again, cut off, and misses "
        "two more; this time the leader snapshots its tree and drops the log "
        "before the snapshot. What the follower misses exists only in the "
        "snapshot, so the leader sends the snapshot, in chunks; the follower "
        "installs it and its log restarts after it (Raft §7). Each time it comes "
        "back it asks the leader for a read index before serving reads again: an "
        "append's commit index vouches only for what was committed when the append "
        "left the leader, which may be before the follower started.",
        catch_up,
        (("finding where the logs agree", "zkactors.core.replog:ReplicatedLog._on_append_response"),
         ("sending a snapshot instead", "zkactors.core.replog:ReplicatedLog._send_appends"),
         ("installing it", "zkactors.core.replog:ReplicatedLog._on_install_snapshot"),
         ("reading chunks from disk", "zkactors.engine.replica:Replica._snapshot_chunks"),
         ("asking for a read index before serving reads",
          "zkactors.core.replog:ReplicatedLog._ask_catch_up"))),
    Walkthrough(
        "read-index", "A linearizable read (ReadIndex)",
        "A client asks a follower to `sync` and then `get /x`. A follower's tree may "
        "lag, and even a leader may have been deposed without knowing it, so the "
        "follower asks the leader for a *read index*: the leader notes its commit "
        "index, proves it still leads by a round of heartbeats a majority answers "
        "(LeaderCheck), and replies with that index. The follower answers the read "
        "once it has applied that far (Raft thesis §6.4).",
        read_index,
        (("the follower asking", "zkactors.core.replog:ReplicatedLog._propose_at_follower"),
         ("the leader's round", "zkactors.core.replog:ReplicatedLog._on_read_index_request"),
         ("a majority confirming", "zkactors.core.readindex:LeadershipRounds.confirmed"),
         ("releasing the read", "zkactors.core.replog:ReplicatedLog._release"))),
    Walkthrough(
        "watch-failover", "A watch across a failover",
        "A client watches `/app` and everything under it (a persistent, recursive "
        "watch, as ZooKeeper 3.6's `addWatch`). Its events come from the node it is "
        "attached to, over PUB/SUB, which can lose messages, so the client keeps a "
        "position, `synced`: the zxid through which it holds every event of its "
        "watch. On attaching it subscribes, then subscribes a one-off *barrier* "
        "topic; the node answers on it once every subscription before it is in "
        "place, and from then on PUB carries every event. What happened before the "
        "barrier, the client asks the node's history for: the events since `synced` "
        "(the ZeroMQ Guide's Clone pattern). Then its node — here also the leader — "
        "crashes. A new leader is elected and a change is committed that the watcher "
        "cannot hear. When it has heard nothing, not even a heartbeat, for a while, "
        "it attaches to another node and asks that node's history for the events "
        "since `synced`: a zxid names a log entry, the same on every node, so the "
        "position carries over, and it is handed the change it missed — once, in "
        "order — before anything newer. (Zxids print as `index@term`.)",
        watch_failover,
        (("what a node publishes, and its history", "zkactors.core.watches:WatchCore.on_events"),
         ("the barrier", "zkactors.core.watches:WatchCore.on_subscription"),
         ("answering from the history", "zkactors.core.watches:WatchCore.resume"),
         ("the client: a heartbeat confirming its position",
          "zkactors.client.watchstream:WatchStream.on_heartbeat"),
         ("the client: held events, resume, going live",
          "zkactors.client.watchstream:WatchStream.on_answer"),
         ("the client: a new connection starts syncing",
          "zkactors.client.watchstream:WatchStream.on_reconnect"))),
)


# ----------------------------------------------------------------- the pages
def page(walk: Walkthrough, page_dir: Path) -> str:
    """The walkthrough's Markdown page (runs its script)."""
    script = Script(walk.seed, walk.nodes, walk.faults)
    try:
        walk.script(script)
    except StoryError as err:
        script.tracer.close()
        raise StoryError(f"walkthrough {walk.name}: {err}; its trace so far:\n"
                         + "\n".join(script.lines)) from None
    script.tracer.close()
    command = "python -m zkactors.sim.walkthroughs --write docs/walkthroughs"
    decided = "\n".join(f"- {what}: {link(where, page_dir)}" for what, where in walk.decided_by)
    return (f"# {walk.title}\n\n"
            f"<!-- Generated by `{command}` from zkactors/sim/walkthroughs.py "
            f"(`{walk.name}`); CI checks it is current. Do not edit by hand. -->\n\n"
            f"{walk.intro}\n\n"
            f"The run (simulated, seed {walk.seed}, every random fault off; lines "
            f"marked `[script]` are the script acting; `a@t` is index `a` of term `t`):\n\n"
            f"```text\n" + "\n".join(script.lines) + "\n```\n\n"
            f"What decides each step:\n\n{decided}\n")


def index(page_dir: Path) -> str:
    rows = "\n".join(f"- [{w.title}]({w.name}.md)" for w in WALKTHROUGHS)
    return ("# Walkthroughs\n\n"
            "Each page is a real run of the simulator, which runs the shipped cores "
            "(zkactors/core) and the replica driver (zkactors/engine) with simulated "
            "disks, network and clocks, told by its tracer. Regenerate them all with "
            "`python -m zkactors.sim.walkthroughs --write docs/walkthroughs`; "
            "tests/sim/test_walkthroughs.py fails when one is out of date.\n\n"
            f"{rows}\n\n"
            "To trace any seeded chaos run the same way: "
            "`python -m zkactors.sim --seed 7 --trace --until leader-change`.\n")


def pages(page_dir: Path, names: list[str] | None = None) -> dict[Path, str]:
    chosen = [w for w in WALKTHROUGHS if not names or w.name in names]
    out = {page_dir / f"{w.name}.md": page(w, page_dir) for w in chosen}
    if not names:
        out[page_dir / "README.md"] = index(page_dir)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zkactors.sim.walkthroughs",
                                     description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", metavar="DIR", help="write the pages into DIR")
    action.add_argument("--check", metavar="DIR", help="exit 1 if a page in DIR differs")
    action.add_argument("--print", metavar="NAME", help="print one page")
    args = parser.parse_args(argv)
    if args.print:
        names = [w.name for w in WALKTHROUGHS]
        if args.print not in names:
            parser.error(f"no walkthrough {args.print!r}; there are: {', '.join(names)}")
        print(next(iter(pages(REPO / "docs" / "walkthroughs", [args.print]).values())), end="")
        return 0
    page_dir = Path(args.write or args.check).resolve()
    generated = pages(page_dir)
    if args.write:
        page_dir.mkdir(parents=True, exist_ok=True)
        for path, text in generated.items():
            path.write_text(text)
        print(f"wrote {len(generated)} pages to {page_dir}")
        return 0
    stale = [path for path, text in generated.items()
             if not path.exists() or path.read_text() != text]
    for path in stale:
        print(f"out of date: {path} (regenerate: python -m zkactors.sim.walkthroughs "
              f"--write {args.check})")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
