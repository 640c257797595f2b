"""Plain numbers for metrics, with no dependencies: kept by whichever thread owns
them (the WAL, an actor) and read by the admin endpoint when scraped
(:mod:`zkactors.runtime.metrics`). One writer each, so no locks."""

from __future__ import annotations

from bisect import bisect_left

#: fsync buckets, seconds: a page-cache-only "disk" to a struggling one.
FSYNC_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                 0.025, 0.05, 0.1, 0.25, 1.0)


class Histogram:
    """Bucket counts, a sum and a count; one writing thread, no lock."""

    __slots__ = ("bounds", "counts", "n", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound
        self.total = 0.0
        self.n = 0

    def observe(self, value: float, times: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += times
        self.total += value * times
        self.n += times

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(le, count), …, ("+Inf", n)]`` as the Prometheus text format wants."""
        counts = list(self.counts)
        buckets, running = [], 0
        for bound, count in zip(self.bounds, counts, strict=False):
            running += count
            buckets.append((_number(bound), running))
        buckets.append(("+Inf", running + counts[-1]))
        return buckets


def _number(value: float) -> str:
    return repr(float(value))
