"""Simulator seeds run on every core: each seed is an independent, deterministic
run, so a block of them splits across worker processes with the same verdict,
in half the time on CI's two cores. (Spawned, not forked: the test process has
threads and ZeroMQ contexts of earlier tests, which a fork would copy mid-use.)"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest


class SeedPool:
    def __init__(self, executor: ProcessPoolExecutor) -> None:
        self._executor = executor

    def map(self, run: Callable[[int], Any], seeds: Iterable[int]) -> Iterator[Any]:
        """``run(seed)`` for every seed, results in the seeds' order; the first
        failure is raised here, as a plain loop would raise it."""
        return self._executor.map(run, seeds, chunksize=5)


@pytest.fixture(scope="session")
def seed_pool():
    workers = min(2, os.cpu_count() or 1)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield SeedPool(pool)


@pytest.fixture(scope="session")
def default_runs(seed_pool) -> list[dict]:
    """``run_seed(seed)`` for seeds 0–39, computed once: several tests read their
    figures from the same deterministic runs (a seed replays exactly)."""
    from zkactors.sim.run import run_seed

    return list(seed_pool.map(run_seed, range(40)))
