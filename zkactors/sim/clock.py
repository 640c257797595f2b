"""One simulated node's clocks: the two the runtime reads, as its cores see them.

The runtime hands its cores ``time.monotonic_ns() // 1e6`` (timeouts, retransmits,
the leader lease) and, for the entries it proposes, ``time.time_ns() // 1e6`` (the
ctime/mtime of the znodes). A node never sees the simulator's global ``now``; it
sees these, and they misbehave the way real clocks do:

* **drift** — the monotonic clock runs at its own ``rate`` (e.g. 0.95–1.05 of
  simulated time), fixed per node: a quartz that is a little off;
* **forward jumps** — the monotonic clock leaps ahead (a VM whose clock catches up
  after the hypervisor descheduled it, a resume from a long stall);
* **freezes** — while a node is suspended its ``CLOCK_MONOTONIC`` may stand still
  (Linux does not count system suspend in it), so afterwards it lags the others;
* **wall steps** — the wall clock is the monotonic clock plus an offset that NTP
  (or an operator) may step backward or forward by any amount.

The monotonic clock never goes backwards: it is piecewise linear with a positive
slope, and a jump only adds. :meth:`NodeClock.mono` enforces that on every read,
so a modelling slip shows up as a failure rather than as a core "bug".
"""

from __future__ import annotations

#: The wall clock's start, about 2023-11-14 — so stamps look like real ms since 1970.
EPOCH_MS = 1_700_000_000_000


class ClockWentBackwards(AssertionError):
    pass


class NodeClock:
    def __init__(self, sim_now: int, mono_base: int, rate: float, wall_offset: int) -> None:
        if rate <= 0:
            raise ValueError(f"a clock rate must be positive, got {rate}")
        self.rate = rate
        #: The monotonic reading at ``_anchor_sim``; from there it runs at ``rate``.
        self._anchor_sim = sim_now
        self._anchor_mono = mono_base
        self._frozen_since: int | None = None
        self._last = mono_base
        #: wall = mono + wall_offset.
        self.wall_offset = wall_offset
        self.jumps = 0  # forward jumps of the monotonic clock
        self.jumped_ms = 0
        self.wall_steps = 0

    # ------------------------------------------------------------- readings
    def mono(self, sim_now: int) -> int:
        if self._frozen_since is not None:
            value = self._anchor_mono
        else:
            value = self._anchor_mono + int((sim_now - self._anchor_sim) * self.rate)
        if value < self._last:
            raise ClockWentBackwards(f"monotonic clock went from {self._last} to {value}")
        self._last = value
        return value

    def wall(self, sim_now: int) -> int:
        return self.mono(sim_now) + self.wall_offset

    # --------------------------------------------------------------- faults
    def _reanchor(self, sim_now: int) -> None:
        self._anchor_mono = self.mono(sim_now)
        self._anchor_sim = sim_now

    def jump(self, sim_now: int, ms: int) -> None:
        """The monotonic clock (and the wall clock with it) leaps ``ms`` ahead."""
        if ms < 0:
            raise ValueError("a monotonic clock only jumps forward")
        self._reanchor(sim_now)
        self._anchor_mono += ms
        self.jumps += 1
        self.jumped_ms += ms

    def step_wall(self, ms: int) -> None:
        """NTP steps the wall clock by ``ms`` (either sign); monotonic is untouched."""
        self.wall_offset += ms
        self.wall_steps += 1

    def freeze(self, sim_now: int) -> None:
        """Suspend: the monotonic clock stands still until :meth:`thaw`."""
        if self._frozen_since is None:
            self._reanchor(sim_now)
            self._frozen_since = sim_now

    def thaw(self, sim_now: int) -> None:
        """Resume: the monotonic clock runs on from where it stood (it lags now);
        the wall clock, set from the RTC on resume, has kept up with real time."""
        if self._frozen_since is not None:
            self.wall_offset += int((sim_now - self._frozen_since) * self.rate)
            self._frozen_since = None
            self._anchor_sim = sim_now
