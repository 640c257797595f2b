"""Keeping the garbage collector from stopping the node: freezing what lasts,
and timing every collection.

CPython's cycle collector runs while holding the GIL. A full (generation 2)
collection walks every tracked object the process holds, so with a large tree
or a long log in memory one collection can hold every thread of the node for
hundreds of milliseconds — heartbeats included, and a leader that misses its
heartbeats for an election timeout loses its term. The state a node holds
(log entries, znodes, watch history) is long-lived by nature, so it is moved
out of the collector's sight with :func:`gc.freeze` as it grows: frozen
objects are still freed by reference counting, the collector just stops
re-scanning them.

It grows in two places, and each counts its own growth with a
:class:`HeapFreezer`: the log actor per entry appended, the store actor per
entry applied (znodes, the dedup table, and the watch history the applies
feed). Counting only appends, as before, missed a node restarted on a long
log: it appends nothing, yet applies the whole log once a leader confirms it;
on a 79k-entry log that took 14 full collections of up to 400 ms each, and
three elections in the first five seconds.

:class:`CollectionTimes` times every collection, by generation, for the admin
endpoint (``zkactors_gc_pause_seconds``).
"""

from __future__ import annotations

import gc
import time
from typing import Any

from zkactors.stats import Histogram

#: Entries appended (or applied) between two :func:`gc.freeze` calls. A full
#: collection then walks at most about this many entries' worth of objects. At
#: 20,000 a million-znode fill saw 60–80 generation-2 collections over 100 ms
#: per node and 1–2 elections; at 5,000, 1–6 and none, and the fill ran 22 %
#: faster (BENCHMARKS.md, session 10). A freeze itself is a list splice.
FREEZE_EVERY = 5_000
#: Collection pause buckets, seconds: a young generation to a stalled node.
PAUSE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class HeapFreezer:
    """Freezes the heap after every ``every`` units of growth counted here."""

    def __init__(self, every: int = FREEZE_EVERY) -> None:
        self.every = every
        self._since = 0
        #: Freezes done by this counter (for tests and curiosity).
        self.freezes = 0

    def grew(self, count: int) -> None:
        """``count`` more long-lived things (entries) were made."""
        self._since += count
        if self._since >= self.every:
            gc.freeze()
            self._since = 0
            self.freezes += 1


class CollectionTimes:
    """Wall time of each garbage collection, per generation, from
    :data:`gc.callbacks`. Written by whichever thread collects (one at a time:
    CPython never runs two collections at once), read when scraped."""

    def __init__(self) -> None:
        self.pauses: dict[int, Histogram] = {gen: Histogram(PAUSE_BUCKETS) for gen in (0, 1, 2)}
        self._began = 0.0

    def install(self) -> None:
        gc.callbacks.append(self._on_collection)

    def uninstall(self) -> None:
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        self.pauses[info["generation"]].observe(time.perf_counter() - self._began)
