"""The deterministic simulator over the real cores: safety under chaos, many seeds."""

from functools import partial
from itertools import pairwise
from types import SimpleNamespace

import pytest

from zkactors.core.replog import ReplicatedLog
from zkactors.sim.clock import ClockWentBackwards, NodeClock
from zkactors.sim.cluster import Simulation
from zkactors.sim.faults import STRESS, Faults
from zkactors.sim.invariants import InvariantViolation
from zkactors.sim.run import run_seed, run_swarm_seed

pytestmark = pytest.mark.timeout(300)


CLOCK_FAULTS = ("clock_jumps", "wall_steps", "pauses")
#: No drift, jumps, steps or pauses: every node's clock is simulated time.
PERFECT_CLOCKS = {"drift": 0, "clock_jump": 0, "wall_step": 0, "pause": 0}


@pytest.mark.parametrize("block", range(10))
def test_500_seeds_of_three_nodes_keep_every_invariant(block, seed_pool):
    seen = dict.fromkeys(CLOCK_FAULTS, 0)
    for result in seed_pool.map(partial(run_seed, nodes=3),
                                range(block * 50, block * 50 + 50)):
        assert result["leaders"] >= 1
        for fault in CLOCK_FAULTS:
            seen[fault] += result[fault]
    # Clock faults are part of every run's chaos, not a vacuous option: each block
    # of 50 seeds (~150 simulated seconds) sees dozens of each.
    assert all(count >= 20 for count in seen.values()), seen


@pytest.mark.parametrize("block", range(2))
def test_five_node_ensembles_keep_every_invariant(block, seed_pool):
    results = seed_pool.map(partial(run_seed, nodes=5),
                            range(10_000 + block * 20, 10_000 + block * 20 + 20))
    assert all(result["leaders"] >= 1 for result in results)


@pytest.mark.parametrize("block", range(4))
def test_swarm_runs_keep_every_invariant_and_make_progress(block, seed_pool):
    """Each seed draws its own fault mix, batch sizes, timeouts and size; the
    healthy majority must keep a working leader throughout, too."""
    kinds = set()
    for result in seed_pool.map(run_swarm_seed,
                                range(20_000 + block * 50, 20_000 + block * 50 + 50)):
        kinds.add(result["nodes"])
    assert kinds == {3, 5}


def test_a_seed_replays_exactly():
    assert run_seed(7) == run_seed(7)


def test_writes_are_acknowledged_under_chaos(default_runs):
    acked = sum(result["writes_acked"] for result in default_runs[:20])
    assert acked > 1000  # the chaos leaves room for progress: not a vacuous pass


def test_clock_faults_change_what_the_cores_see(default_runs):
    results = default_runs[:5]
    assert sum(r["clock_jumps"] for r in results) > 0
    assert sum(r["clock_jumped_ms"] for r in results) >= 50 * sum(
        r["clock_jumps"] for r in results)
    calm = Simulation(3, faults=Faults(crash=0, crash_all=0, partition=0, oneway=0, **PERFECT_CLOCKS))
    start = {n.id: n.mono() for n in calm.nodes.values()}
    calm.run(300)
    assert all(n.mono() - start[n.id] == 300 for n in calm.nodes.values())
    sim = Simulation(3, faults=Faults(crash=0, crash_all=0, partition=0, oneway=0))
    sim.run(2000)
    # Each node has its own clocks: other origins, other rates, other wall times.
    assert len({n.mono() for n in sim.nodes.values()}) == 3
    assert len({n.clock.rate for n in sim.nodes.values()}) == 3
    assert len({n.wall() - n.mono() for n in sim.nodes.values()}) == 3


def test_a_leader_whose_clock_jumps_steps_down_and_safety_holds():
    sim = Simulation(4, faults=Faults(crash=0, crash_all=0, partition=0, oneway=0, drop=0, inproc_drop=0,
                                      **PERFECT_CLOCKS))
    sim.run(1000)
    leader = next(n for n in sim.nodes.values() if n.log.role == "leader")
    term = leader.log.term
    leader.clock.jump(sim.now, 1000)  # check-quorum now sees no ack for a second...
    # ...at its next tick, if that comes before any ack does (one would count as fresh).
    sim.handle_election(leader, leader.election.tick(leader.mono()))
    sim.run(sim.now + 20)
    assert leader.log.role != "leader"
    sim.run(sim.now + 1500)
    assert max(n.log.term for n in sim.nodes.values()) > term
    sim.heal_and_settle()
    sim.checker.acknowledged_writes_survive()
    sim.checker.replicas_identical()


def test_a_wall_clock_stepped_back_stamps_older_times_the_same_everywhere():
    sim = Simulation(5, faults=Faults(crash=0, crash_all=0, partition=0, oneway=0, **PERFECT_CLOCKS))
    sim.run(1000)
    leader = next(n for n in sim.nodes.values() if n.log.role == "leader")
    before = leader.wall()
    leader.clock.step_wall(-3_600_000)  # NTP steps an hour back
    sim.run(2000)
    # (What the leader applied, whether or not its log still holds it.)
    stamps = [sim.checker.applied_history[i][1] for i in sorted(sim.checker.applied_history)
              if "create" in sim.checker.applied_history[i][2]]
    assert any(later < earlier for earlier, later in pairwise(stamps))
    assert min(stamps) < before - 3_000_000
    sim.heal_and_settle()
    sim.checker.replicas_identical()  # mtimes went back, identically on every node
    assert leader.store.tree.exists(min(sim.acked, key=lambda p: sim.acked[p]))


def test_a_suspended_leader_resumes_with_its_clock_behind_and_steps_down():
    sim = Simulation(6, faults=Faults(crash=0, crash_all=0, partition=0, oneway=0, drop=0, write=0, read=0,
                                      **PERFECT_CLOCKS))
    sim.run(500)
    leader = next(n for n in sim.nodes.values() if n.log.role == "leader")
    term, mono, wall = leader.log.term, leader.mono(), leader.wall()
    sim.pause(leader, 1000, clock_stops=True)  # CLOCK_MONOTONIC skips a suspend
    sim.run(1400)
    # Frozen: it took no input, its clock stood still, it still thinks it leads...
    assert leader.mono() == mono and leader.log.role == "leader" and leader.log.term == term
    # ...while the others moved on to a newer term.
    assert max(n.log.term for n in sim.nodes.values()) > term
    sim.run(2000)
    assert leader.mono() == mono + 500  # 1000 ms behind the others now
    assert leader.wall() == wall + 1500  # the wall clock was set right on resume
    assert leader.log.role != "leader" and leader.log.term > term
    sim.heal_and_settle()
    sim.checker.replicas_identical()


def test_a_pause_ended_early_hands_over_what_was_missed_at_once_and_in_order():
    sim = Simulation(8, faults=Faults(crash=0, crash_all=0, partition=0, oneway=0, **PERFECT_CLOCKS))
    sim.run(500)
    node = sim.nodes[2]
    sim.pause(node, 1000, clock_stops=False)
    sim.run(800)

    def for_node(when):
        return sorted(e for e in sim._queue if e[0] == when and e[2] in ("tick", "deliver")
                      and (e[3] if e[2] == "tick" else e[3][0]) == node.id)

    waiting = for_node(1500)
    assert waiting  # its ticks and messages wait for it...
    node.crash()  # ...until it is killed: then they are due now, in their order
    assert not for_node(1500) and node.id not in sim.paused
    assert [e[2:] for e in for_node(800)] == [e[2:] for e in waiting]
    sim.run(801)  # delivered to the dead process, so lost with it
    sim.heal_and_settle()
    sim.checker.replicas_identical()


def test_a_monotonic_clock_never_goes_back():
    clock = NodeClock(0, 5_000, 1.05, 0)
    readings = [clock.mono(0)]
    for t in range(1, 200):
        if t == 50:
            clock.jump(t, 700)
        if t == 100:
            clock.freeze(t)
        if t == 150:
            clock.thaw(t)
        readings.append(clock.mono(t))
    assert readings == sorted(readings)
    assert readings[60] - readings[40] >= 700 + 20
    assert readings[100] == readings[149]  # frozen
    with pytest.raises(ValueError):
        clock.jump(200, -1)
    clock._anchor_mono -= 10_000  # a modelling slip: the clock itself refuses it
    with pytest.raises(ClockWentBackwards):
        clock.mono(200)


def test_the_checker_catches_two_leaders_in_one_term():
    sim = Simulation(1, faults=Faults(crash=0, crash_all=0, partition=0, oneway=0))
    leader = None
    for until in range(500, 5000, 100):  # (pauses and clock faults may delay it)
        sim.run(until)
        leader = next((n for n in sim.nodes.values() if n.log.role == "leader"), None)
        if leader is not None:
            break
    assert leader is not None, "no leader within 5 s"
    other = next(n for n in sim.nodes.values() if n is not leader)
    with pytest.raises(InvariantViolation, match="election safety"):
        sim.checker.became_leader(other, leader.log.term)


def test_leader_completeness_is_judged_by_commit_term_not_by_time():
    sim = Simulation(1, faults=Faults(crash=0, crash_all=0, partition=0, oneway=0))
    sim.run(1000)
    assert sim.checker.commit_terms
    first_term = min(sim.checker.leaders)
    empty = SimpleNamespace(entries=[])
    # A candidate paused since term `first_term` may still win it, log and all, after
    # entries committed there and later: Raft allows it (it can append nowhere).
    sim.checker.became_leader(SimpleNamespace(id=sim.checker.leaders[first_term],
                                              log=empty), first_term)
    # A leader of any later term must have every one of them.
    with pytest.raises(InvariantViolation, match="leader completeness"):
        sim.checker.became_leader(SimpleNamespace(id=99, log=empty), 10**6)


def test_the_checker_catches_diverging_logs():
    sim = Simulation(2, faults=Faults(crash=0, crash_all=0, partition=0, oneway=0))
    sim.run(1500)
    a, b = sorted((n for n in sim.nodes.values() if n.up), key=lambda n: -n.log.last_index)[:2]
    index = min(a.log.last_index, b.log.last_index)
    assert index > max(a.log.base_index, b.log.base_index) + 2
    sim.checker.check()
    # Rewrite b's entry at `index` as a buggy core could: same term, other content.
    theirs = a.log.entry_at(index)
    del b.log.entries[index - b.log.base_index - 1:]
    b.log.entries.append(type(theirs)(index, theirs.term, theirs.time_ms,
                                      ["create", "/forged", b"", 0]))
    with pytest.raises(InvariantViolation, match="log matching"):
        sim.checker.check()


# ------------------------------------------------- snapshots, syncs, retried writes
FEATURES = ("snapshots_taken", "compactions", "snapshots_installed", "syncs_ok",
            "reads_checked", "retries", "unknown_outcome_retries", "duplicates_suppressed")


def test_snapshots_syncs_and_retried_writes_happen_in_runs(default_runs):
    totals = dict.fromkeys(FEATURES, 0)
    for result in default_runs[:30]:
        for key in FEATURES:
            totals[key] += result[key]
    # Not vacuous: every feature is exercised many times over these seeds.
    assert all(count >= 10 for count in totals.values()), totals


def test_a_follower_left_behind_gets_the_snapshot_in_many_chunks():
    sim = Simulation(11, faults=Faults(crash=0, crash_all=0, partition=0, oneway=0, drop=0, duplicate=0,
                                       snapshot=0, chunk_bytes=(512, 512), **PERFECT_CLOCKS))
    sim.run(500)
    leader = next(n for n in sim.nodes.values() if n.log.role == "leader")
    lagging = next(n for n in sim.nodes.values() if n is not leader)
    lagging.crash()
    sim.run(1500)
    sim._take_snapshot(leader)
    sim.run(1520)
    assert leader.disk.snapshots.newest_index > 0 and leader.log.base_index > 0
    assert leader.log.base_index > lagging.disk.log.last_index  # it must get the snapshot
    chunks = sim.stats["snapshot_chunks"]
    lagging.start()
    sim.run(2500)
    assert sim.stats["snapshots_installed"] == 1
    assert sim.stats["snapshot_chunks"] - chunks >= 4
    assert lagging.disk.snapshots.newest_index == leader.disk.snapshots.newest_index
    sim.heal_and_settle()
    sim.checker.replicas_identical()
    sim.checker.at_most_once()
    # Restarted from the installed snapshot and its log after it (applied up to
    # its commit hint at once), it is the same again.
    lagging.crash()
    lagging.start()
    assert lagging.store.applied_index > lagging.disk.snapshots.newest_index
    assert lagging.store.applied_index == lagging.log.handed_index == lagging.log.commit_index
    sim.run(sim.now + 500, chaos=False)
    sim.checker.replicas_identical()


def test_a_retried_write_applies_once_and_gets_the_first_answer():
    sim = Simulation(12, faults=Faults(crash=0, crash_all=0, partition=0, oneway=0, drop=0, write=0, sync=0,
                                       **PERFECT_CLOCKS))
    sim.run(500)
    leader = next(n for n in sim.nodes.values() if n.log.role == "leader")
    client = sim.clients[0]
    client.seq = 1
    txn = ["create", "/q/n-", b"1:1", 3]
    client.op = {"seq": 1, "txn": txn, "rid": 0, "retry_at": 10**9, "hint": leader.id,
                 "attempts": 0}
    sim._send_write(client)
    first_rid = client.op["rid"]
    sim._inflight.pop(first_rid)  # its answer is lost: the client must try again
    sim.run(520)
    assert client.op is not None  # no answer yet, as far as the client knows
    client.op["hint"] = leader.id
    sim._send_write(client)
    sim.run(600)
    assert client.op is None and sim.stats["retries"] == 1
    assert sim.stats["duplicates_suppressed"] == 3  # the copy, on each of 3 nodes
    (path,) = [p for p in sim.acked if p.startswith("/q/")]
    assert leader.store.tree.get_children("/q") == [path.rsplit("/", 1)[1]]
    sim.checker.at_most_once()


def test_a_sync_then_get_sees_the_writes_acknowledged_before_it():
    sim = Simulation(13, faults=Faults(crash=0, crash_all=0, partition=0, oneway=0, **PERFECT_CLOCKS))
    sim.run(1500)
    assert sim.stats["reads_checked"] > 10
    follower = next(n for n in sim.nodes.values() if n.log.role == "follower")
    path = max(sim.read_floor, key=lambda p: sim.read_floor[p])
    # A checker that is not vacuous: a read missing an acknowledged write fails.
    pair = {"path": path, "floor": sim.read_floor[path], "proposed": sim.now,
            "node": follower.id, "sync_ok": True}
    with pytest.raises(InvariantViolation, match="linearizability"):
        sim.checker.linearizable_read(pair, 0, [b"", [0, sim.read_floor[path] - 1]])
    with pytest.raises(InvariantViolation, match="linearizability"):
        sim.checker.linearizable_read(pair, -101, "no node")


def test_the_checker_catches_a_write_applied_twice():
    sim = Simulation(14, faults=Faults(crash=0, crash_all=0, partition=0, oneway=0, **PERFECT_CLOCKS))
    sim.run(1000)
    sim.heal_and_settle(1000)
    node = sim.nodes[1]
    node.store.tree.create("/q/n-", b"9:9", 0, 0, makepath=True, sequence=True)
    sim.checker.at_most_once()
    node.store.tree.create("/q/n-", b"9:9", 0, 0, makepath=True, sequence=True)
    with pytest.raises(InvariantViolation, match="at-most-once"):
        sim.checker.at_most_once()


def _stale_leader_sync(seed: int) -> tuple[Simulation, dict]:
    """A leader frozen (clock and all) while cut off from both peers, who elect a new
    leader that acknowledges writes; it resumes believing it still leads, and a
    client at once syncs and reads there."""
    # (No lock clients: their sessions' traffic would make the moment the sync
    # arrives, before or after the stale leader hears of the new term, depend on
    # every change to how clients behave.)
    sim = Simulation(seed, faults=Faults(crash=0, crash_all=0, partition=0, oneway=0, drop=0, pipelined=0,
                                         lock_clients=0, **PERFECT_CLOCKS))
    sim.run(400)
    sim.faults.write = 0
    sim.run(500)  # all it has is committed: a sync there could be answered at once
    sim.faults.write = 0.25
    old = next(n for n in sim.nodes.values() if n.log.role == "leader")
    assert old.log.commit_index == old.log.last_index
    for other in sim.members:
        if other != old.id:
            sim.partitioned.add(frozenset((old.id, other)))
    sim.pause(old, 1000, clock_stops=True)
    sim.run(1500)
    assert old.log.role == "leader" and max(n.log.term for n in sim.nodes.values()) > \
        old.log.term
    written = [path for when, path in sim.acked_writes.values() if when > 1000]
    assert written
    pair = sim._client_sync(old, written[-1])
    sim.run(1510)
    sim.partitioned.clear()
    sim.run(1700)
    return sim, pair


def test_a_stale_leader_does_not_answer_a_sync_from_its_old_state(monkeypatch):
    _, pair = _stale_leader_sync(15)
    assert pair["floor"] and not pair["sync_ok"]  # it could not confirm its leadership
    # A core that skipped the leadership check would answer from its stale tree:
    # the linearizability check catches that.
    monkeypatch.setattr(ReplicatedLog, "_confirmed_round", lambda self: self.reads.round)
    with pytest.raises(InvariantViolation, match="linearizability"):
        _stale_leader_sync(15)


@pytest.mark.parametrize("seed, faults", [(305, None), (57, Faults(**STRESS))])
def test_a_new_leader_answers_the_writes_proposed_to_it(seed, faults):
    """Seeds that found a replog bug: a follower's sync answered with the old
    leader's read index stayed queued when that follower became leader, and its
    own clients' writes were then committed without their client (never answered)."""
    result = run_seed(seed, faults=faults, strict_replies=True)
    assert result["lost_replies"] == 0


# ------------------------------------------ pipelined clients, restarts, fresh reads


def test_careless_pipelined_clients_reorder_and_the_ensemble_keeps_their_order(default_runs):
    results = default_runs
    # Not vacuous: writes overtook earlier ones and were refused, whole ensembles
    # crashed, and nodes refused reads while catching up — and every seed kept
    # each client's order (fifo_order), read-your-writes and fresh reads.
    assert sum(r["out_of_order_refused"] for r in results) >= 10
    assert sum(r["crashes_of_all"] for r in results) >= 10
    assert sum(r["reads_refused"] for r in results) >= 100


def test_the_new_checkers_are_not_vacuous():
    sim = Simulation(21, faults=Faults(crash=0, crash_all=0, partition=0, oneway=0, **PERFECT_CLOCKS))
    sim.run(1500)
    sim.heal_and_settle(1000)
    sim.checker.fifo_order()
    client = next(c for c in sim.pipelined if c.seq >= 2)
    tree = sim.nodes[sim.members[0]].store.tree
    tree.create(f"{client.path}/n-", f"{client.id}:1".encode(), 0, 0, sequence=True)
    with pytest.raises(InvariantViolation, match="FIFO client order"):
        sim.checker.fifo_order()
    with pytest.raises(InvariantViolation, match="read-your-writes"):
        sim.checker.read_your_writes(client.id, 0x200000005, 0x200000004, 0)
    node = sim.nodes[1]
    with pytest.raises(InvariantViolation, match="stale read"):
        sim.checker.read_not_older(node, 3, 4)
