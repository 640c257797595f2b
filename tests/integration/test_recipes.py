"""Recipes with real processes: Lock (mutual exclusion, fencing tokens) and
Election, against a real 3-node ensemble."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.integration.cluster import REPO, Ensemble, wait_for
from zkactors.client import Client, KazooState
from zkactors.recipe import Election, LockTimeout

pytestmark = pytest.mark.timeout(180)

#: A process that takes the lock again and again until its time is up; while
#: holding it, it appends "<pid> <token> start" and "... end" to a shared file
#: (O_APPEND: each line whole).
CONTENDER = """
import os, sys, time
from zkactors.client import Client
hosts, path, out, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
with Client(hosts, timeout=5.0) as client:
    lock = client.Lock(path, str(os.getpid()))
    ended = time.monotonic() + seconds
    while time.monotonic() < ended:
        with lock:
            os.write(fd, f"{os.getpid()} {lock.token} start\\n".encode())
            time.sleep(0.002)  # the point: held a while, so an overlap would show
            os.write(fd, f"{os.getpid()} {lock.token} end\\n".encode())
"""


@pytest.fixture
def ensemble(tmp_path):
    ensemble = Ensemble(tmp_path).start()
    yield ensemble
    ensemble.stop()


#: Processes contending for one lock, 25 acquisitions each (12 keep the queue
#: deep on two cores; 20 took twice as long for no more interleavings).
CONTENDERS = 8


def test_contending_processes_never_hold_the_lock_together(ensemble, tmp_path):
    out = tmp_path / "holders.log"
    procs = [subprocess.Popen([sys.executable, "-c", CONTENDER, ensemble.hosts, "/locks/one",
                               str(out), "25"], cwd=REPO, stderr=subprocess.PIPE)
             for _ in range(CONTENDERS)]
    try:
        for proc in procs:
            assert proc.wait(120) == 0, proc.stderr.read().decode()[-2000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    lines = out.read_text().splitlines()
    holder, tokens = None, []
    for line in lines:
        pid, token, what = line.split()
        if what == "start":
            assert holder is None, f"{pid} took the lock while {holder} held it"
            holder = (pid, token)
            tokens.append(int(token))
        else:
            assert holder == (pid, token), f"{pid} released a lock it did not hold"
            holder = None
    assert holder is None
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens), \
        "fencing tokens must strictly increase from one holder to the next"
    assert len({line.split()[0] for line in lines}) == CONTENDERS  # every process got it
    assert len(tokens) > 100


#: A process that takes the lock, says so, and then — when told by a line on
#: stdin — writes to the fenced resource with its token.
FROZEN = """
import json, sys
from zkactors.client import Client
hosts, path = sys.argv[1], sys.argv[2]
client = Client(hosts, timeout=1.5)
client.add_listener(lambda state: print(json.dumps({"state": state}), flush=True))
client.start()
lock = client.Lock(path, "frozen")
lock.acquire()
print(json.dumps({"token": lock.token}), flush=True)
sys.stdin.readline()
print(json.dumps({"still_thinks_it_holds": lock.is_acquired, "token": lock.token}),
      flush=True)
"""


class FencedResource:
    """What a resource guarded by a lock should do: refuse a token lower than the
    highest it has seen."""

    def __init__(self) -> None:
        self.highest = 0
        self.writes: list[int] = []

    def write(self, token: int) -> bool:
        if token < self.highest:
            return False
        self.highest = token
        self.writes.append(token)
        return True


def test_a_frozen_holder_loses_the_lock_and_its_token_is_refused(ensemble):
    proc = subprocess.Popen([sys.executable, "-c", FROZEN, ensemble.hosts, "/locks/fenced"],
                            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[dict] = []
    threading.Thread(target=lambda: [lines.append(json.loads(x)) for x in proc.stdout],
                     daemon=True).start()
    resource = FencedResource()
    try:
        wait_for(lambda: any("token" in x for x in lines), 30, "the first holder")
        old_token = next(x["token"] for x in lines if "token" in x)
        assert resource.write(old_token)
        proc.send_signal(signal.SIGSTOP)  # a long GC pause, a frozen VM
        with Client(ensemble.hosts) as client:
            lock = client.Lock("/locks/fenced", "next")
            assert lock.acquire(timeout=1.5 + 5.0)  # the frozen one's session expired
            assert lock.token > old_token
            assert resource.write(lock.token)
            proc.send_signal(signal.SIGCONT)
            wait_for(lambda: any(x.get("state") == KazooState.LOST for x in lines), 10,
                     "the frozen holder to see LOST")
            proc.stdin.write("go\n")
            proc.stdin.flush()
            wait_for(lambda: any("still_thinks_it_holds" in x for x in lines), 10,
                     "the old holder to try the resource")
            # It may well still think it holds the lock: the token is what saves us.
            assert not resource.write(old_token)
            assert resource.writes == [old_token, lock.token]
            lock.release()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_lock_api_timeouts_contenders_and_release(ensemble):
    with Client(ensemble.hosts) as one, Client(ensemble.hosts) as two:
        first, second = one.Lock("/l", "first"), two.Lock("/l", "second")
        assert first.acquire()
        assert not second.acquire(blocking=False)
        started = time.monotonic()
        with pytest.raises(LockTimeout):
            second.acquire(timeout=0.5)
        assert 0.4 < time.monotonic() - started < 5
        assert first.contenders() == ["first"]  # the timed-out one left
        waiter = threading.Thread(target=second.acquire)
        waiter.start()
        wait_for(lambda: first.contenders() == ["first", "second"], 5, "both contending")
        assert first.release()
        waiter.join(10)
        assert second.is_acquired and second.token > first.token
        second.release()
        assert one.get_children("/l") == []


def test_an_election_runs_one_leader_at_a_time_and_hands_over(ensemble):
    ran: list[tuple[str, str]] = []
    proceed = {name: threading.Event() for name in ("a", "b")}

    def lead(name: str) -> str:
        ran.append((name, "start"))
        proceed[name].wait(20)
        ran.append((name, "end"))
        return name

    with Client(ensemble.hosts) as one, Client(ensemble.hosts) as two:
        elections = {"a": Election(one, "/election", "a"), "b": Election(two, "/election", "b")}
        results = {}
        threads = [threading.Thread(target=lambda n=n: results.setdefault(
            n, elections[n].run(lead, n))) for n in ("a", "b")]
        for thread in threads:
            thread.start()
        wait_for(lambda: len(ran) == 1 and len(elections["a"].contenders()) == 2, 10,
                 "one leader and two contenders")
        leader = ran[0][0]
        other = "b" if leader == "a" else "a"
        assert elections[leader].contenders() == [leader, other]
        proceed[leader].set()
        wait_for(lambda: len(ran) == 3, 10, "the hand-over")
        assert ran == [(leader, "start"), (leader, "end"), (other, "start")]
        proceed[other].set()
        for thread in threads:
            thread.join(10)
        assert results == {"a": "a", "b": "b"}


def test_election_cancel_ends_the_wait(ensemble):
    with Client(ensemble.hosts) as one, Client(ensemble.hosts) as two:
        holder = one.Lock("/e2", "holder")
        holder.acquire()
        election = two.Election("/e2", "waiter")
        outcome = []
        thread = threading.Thread(target=lambda: outcome.append(election.run(lambda: "ran")))
        thread.start()
        wait_for(lambda: len(holder.contenders()) == 2, 5, "the waiter to contend")
        election.cancel()
        thread.join(5)
        assert outcome == [None] and holder.contenders() == ["holder"]
        holder.release()


def test_read_locks_share_and_write_locks_exclude(ensemble):
    with Client(ensemble.hosts) as one, Client(ensemble.hosts) as two, \
            Client(ensemble.hosts) as three:
        r1, r2 = one.ReadLock("/rw", "r1"), two.ReadLock("/rw", "r2")
        assert r1.acquire(timeout=5) and r2.acquire(timeout=5)  # together
        writer = three.WriteLock("/rw", "w")
        assert not writer.acquire(blocking=False)  # readers hold it
        got = threading.Event()
        thread = threading.Thread(target=lambda: writer.acquire() and got.set())
        thread.start()
        wait_for(lambda: len(r1.contenders()) == 3, 5, "the writer to queue")
        late_reader = one.ReadLock("/rw", "r3")
        assert not late_reader.acquire(blocking=False)  # behind a waiting writer
        r1.release()
        assert not got.wait(0.3)
        r2.release()
        assert got.wait(5)
        thread.join(5)
        assert writer.token > max(r1.token, r2.token)
        writer.release()
        assert late_reader.acquire(timeout=5)
        late_reader.release()


def test_a_semaphore_never_has_more_holders_than_leases(ensemble):
    holding, most = [0], [0]
    mutex = threading.Lock()
    clients = [Client(ensemble.hosts) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        def work(k: int) -> None:
            semaphore = clients[k].Semaphore("/sem", f"c{k}", max_leases=2)
            for _ in range(5):
                with semaphore:
                    with mutex:
                        holding[0] += 1
                        most[0] = max(most[0], holding[0])
                    time.sleep(0.01)  # the point: held a while, so a 3rd holder would show
                    with mutex:
                        holding[0] -= 1

        workers = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert most[0] == 2  # full use, never more
        first = clients[0].Semaphore("/sem", "a", max_leases=2)
        second = clients[1].Semaphore("/sem", "b", max_leases=2)
        assert first.acquire() and second.acquire()
        assert sorted(first.lease_holders()) == ["a", "b"]
        third = clients[2].Semaphore("/sem", "c", max_leases=2)
        assert not third.acquire(blocking=False)
        assert not third.acquire(timeout=0.3)
        first.release()
        assert third.acquire(timeout=5)
        with pytest.raises(ValueError):
            clients[3].Semaphore("/sem", "d", max_leases=3).acquire()
    finally:
        for client in clients:
            client.stop()


def test_a_counter_loses_no_concurrent_change(ensemble):
    with Client(ensemble.hosts) as one, Client(ensemble.hosts) as two:
        counters = [one.Counter("/count"), two.Counter("/count")]

        def bump(counter) -> None:
            for _ in range(25):
                counter += 1

        threads = [threading.Thread(target=bump, args=(c,)) for c in counters]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert counters[0].value == 50
        counter = counters[1] - 8
        assert (counter.pre_value, counter.post_value) == (50, 42)
        floats = one.Counter("/fcount", default=0.5)
        floats += 1.25
        assert floats.value == 1.75
        with pytest.raises(TypeError):
            counters[0] + "1"


def test_a_party_knows_its_members_and_a_dead_one_leaves(ensemble):
    with Client(ensemble.hosts) as one, Client(ensemble.hosts, timeout=1.5) as two:
        a, b = one.Party("/party", "a"), two.Party("/party", "b")
        a.join()
        b.join()
        assert sorted(a) == ["a", "b"] and len(a) == 2
        shallow = one.ShallowParty("/shallow", "x-1")
        shallow.join()
        assert list(one.ShallowParty("/shallow")) == ["x-1"]
        assert a.leave() and not a.leave()
        assert list(b) == ["b"]
    with Client(ensemble.hosts) as three:  # stop() ended their sessions
        assert three.get_children("/party") == []


def test_a_barrier_holds_waiters_until_removed(ensemble):
    with Client(ensemble.hosts) as one, Client(ensemble.hosts) as two:
        barrier = one.Barrier("/gate")
        barrier.create()
        assert not two.Barrier("/gate").wait(timeout=0.3)
        through = threading.Event()
        thread = threading.Thread(target=lambda: two.Barrier("/gate").wait() and through.set())
        thread.start()
        assert not through.wait(0.3)
        assert barrier.remove() and not barrier.remove()
        assert through.wait(5)
        thread.join(5)


def test_a_queue_hands_each_item_out_once_by_priority_then_arrival(ensemble):
    with Client(ensemble.hosts) as one, Client(ensemble.hosts) as two:
        queue = one.Queue("/q")
        for i in range(20):
            queue.put(b"%d" % i)
        queue.put(b"urgent", priority=1)
        assert len(queue) == 21
        got: list[bytes] = []
        mutex = threading.Lock()

        def drain(q) -> None:
            while (item := q.get()) is not None:
                with mutex:
                    got.append(item)

        threads = [threading.Thread(target=drain, args=(q,))
                   for q in (queue, two.Queue("/q"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(got) == sorted([b"urgent"] + [b"%d" % i for i in range(20)])
        assert len(got) == 21 and queue.get() is None
        queue.put(b"b", priority=50)
        queue.put(b"a", priority=10)
        assert queue.get() == b"a"
        with pytest.raises(ValueError):
            queue.put(b"x", priority=1000)


def test_a_locking_queue_keeps_an_item_a_dead_consumer_held(ensemble):
    with Client(ensemble.hosts) as producer:
        queue = producer.LockingQueue("/lq")
        queue.put_all([b"one", b"two"])
        assert len(queue) == 2
        dying = Client(ensemble.hosts, timeout=1.5)
        dying.start()
        held = dying.LockingQueue("/lq")
        assert held.get(timeout=5) == b"one" and held.holds_lock()
        other = producer.LockingQueue("/lq")
        assert other.get(timeout=5) == b"two"  # "one" is locked: the next free one
        other.release()
        assert other.get(timeout=5) == b"two"
        assert other.consume() and len(queue) == 1
        dying._agent.session.session_id = None  # dies without ending its session
        dying.stop()
        assert other.get(timeout=1.5 + 5) == b"one"  # its lock went with its session
        assert other.consume()
        assert len(queue) == 0 and other.get(timeout=0.2) is None


def test_a_double_barrier_lets_all_in_together_and_all_out_together(ensemble):
    clients = [Client(ensemble.hosts) for _ in range(3)]
    for client in clients:
        client.start()
    try:
        barriers = [c.DoubleBarrier("/db", 3, f"m{i}") for i, c in enumerate(clients)]
        entered = []
        threads = [threading.Thread(target=lambda b=b: entered.append(b.enter(timeout=10)))
                   for b in barriers[:2]]
        for thread in threads:
            thread.start()
        wait_for(lambda: clients[0].exists("/db") is not None
                 and len(clients[0].get_children("/db")) == 2, 5, "two members inside")
        assert entered == []  # both still waiting for the third
        assert barriers[2].enter(timeout=10)
        for thread in threads:
            thread.join(10)
        assert entered == [True, True]
        assert not barriers[0].leave(timeout=0.3)  # the others are still in
        left = []
        thread = threading.Thread(target=lambda: left.append(barriers[1].leave(timeout=10)))
        thread.start()
        assert barriers[2].leave(timeout=10)
        thread.join(10)
        assert left == [True]
        assert not barriers[0].enter(timeout=0.3)  # a new round needs all three again
    finally:
        for client in clients:
            client.stop()
