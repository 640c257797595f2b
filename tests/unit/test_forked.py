"""Jobs in a forked child (``zkactors.runtime.forked``): how the node writes a
snapshot without holding its interpreter for seconds."""

from __future__ import annotations

import errno
import fcntl
import os
import time

import pytest

from tests.integration.cluster import wait_for
from zkactors.runtime.forked import ForkedJob

pytestmark = pytest.mark.timeout(30)


def outcome_of(job: ForkedJob, timeout: float = 10.0) -> str:
    return wait_for(job.poll, timeout, "the child to finish", interval=0.005)


def test_the_child_works_on_the_state_as_it_was_at_the_fork():
    state = {"applied": 7}
    job = ForkedJob.start(lambda: (time.sleep(0.2), str(state["applied"]))[1])
    state["applied"] = 8  # the parent goes on at once
    assert outcome_of(job) == "ok 7"
    assert job.error() is None


def test_a_failure_comes_back_with_its_kind_and_an_oserror_with_its_errno():
    def fails() -> str:
        raise RuntimeError("broken")

    def no_space() -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    job = ForkedJob.start(fails)
    assert outcome_of(job) == "error RuntimeError: broken"
    assert isinstance(job.error(), RuntimeError)
    job = ForkedJob.start(no_space)
    outcome_of(job)
    assert isinstance(job.error(), OSError) and job.error().errno == errno.ENOSPC


def test_the_child_holds_none_of_the_parents_descriptors(tmp_path):
    # The data dir's lock above all: a node killed -9 must not leave it held by
    # a child still writing a snapshot.
    lock = os.open(tmp_path / "LOCK", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)
    started = tmp_path / "started"
    job = ForkedJob.start(lambda: (started.touch(), time.sleep(2.0), "done")[2])
    try:
        # (The job runs once the descriptors are closed.)
        wait_for(started.exists, 10, "the child to start", interval=0.005)
        os.close(lock)  # the parent lets go; only a copy in the child could hold it
        again = os.open(tmp_path / "LOCK", os.O_RDWR)
        try:
            fcntl.flock(again, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if still held
        finally:
            os.close(again)
        assert job.poll() is None  # (the child was still running)
    finally:
        job.stop()


def test_stop_kills_and_reaps_a_running_child():
    job = ForkedJob.start(lambda: (time.sleep(60), "never")[1])
    job.stop()
    assert job.poll() == "error stopped"
    with pytest.raises(ChildProcessError):
        os.waitpid(job.pid, os.WNOHANG)  # reaped: no zombie left


def test_the_child_runs_at_the_priority_asked():
    job = ForkedJob.start(lambda: str(os.nice(0)), nice=5)
    assert outcome_of(job) == f"ok {os.nice(0) + 5}"
