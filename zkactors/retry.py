"""Retry policies for callers' own operations, shaped like kazoo's ``KazooRetry``.

What this module owns
---------------------

* :class:`Retry` (alias ``KazooRetry``) — call ``retry(func, *args, **kwargs)``
  and ``func`` is called again, after a growing, jittered pause, while it fails
  with an error worth retrying; :meth:`zkactors.client.Client.retry` runs one
  with the client's policy.
* :class:`ForceRetryError` — raise it from ``func`` to ask for another attempt.

The client library already resends on its own what a node refused for a
passing reason (not the leader, throttled, not ready) within
``request_timeout``. What reaches the caller and is worth running again from
the top is: ``ConnectionLoss`` (the connection went before a write was
acknowledged), ``OperationTimeoutError`` (no answer in time) and, unless
``ignore_expire=False``, ``SessionExpiredError``. ``ConnectionClosedError``
(the client was stopped) is never retried. Beware that retrying a write that
failed with ``ConnectionLoss`` may find it already applied (``NodeExistsError``,
``BadVersionError``): write ``func`` so that running it twice is fine.

Pure: no I/O of its own; it reads the time through ``clock`` and waits through
``sleep_func``, both injectable (the unit tests never sleep).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from zkactors.errors import (
    ConnectionClosedError,
    ConnectionLoss,
    OperationTimeoutError,
    RetryFailedError,
    RetryInterruptedError,
    SessionExpiredError,
)

__all__ = ["ForceRetryError", "KazooRetry", "Retry", "RetryFailedError", "RetryInterruptedError"]

R = TypeVar("R")

#: With ``interrupt``, ``interrupt()`` is asked at least this often while waiting.
INTERRUPT_SLICE_S = 0.1


class ForceRetryError(Exception):
    """Raised by the function a :class:`Retry` runs to have it run again."""


class Retry:
    """A retry policy (kazoo's ``KazooRetry``, same parameters and meaning).

    ``max_tries``: retries after the first attempt (``-1`` or None: no limit);
    ``delay``: the first pause, in seconds; ``backoff``: each pause is that many
    times the previous; ``max_jitter``: each pause is scaled by a random factor
    in ``[1 - max_jitter, 1 + max_jitter]`` (clamped to ``[0, 1]``) so that
    clients do not retry in step; ``max_delay``: no pause is longer;
    ``ignore_expire``: retry ``SessionExpiredError`` too; ``deadline``: seconds
    from the first attempt after which no further pause begins; ``interrupt``:
    called at least every 0.1 s of a pause, a true answer ends the retry with
    :class:`RetryInterruptedError`; ``sleep_func``: how to pause. Not kazoo's:
    ``clock`` (for the deadline) and ``rng`` (for the jitter), for tests.

    Exhausted (tries or deadline) it raises :class:`RetryFailedError` whose
    ``__cause__`` is the last error. An instance keeps per-call counters: use
    :meth:`copy` for concurrent calls, as :meth:`Client.retry` does.
    """

    RETRY_EXCEPTIONS: tuple[type[BaseException], ...] = (
        ConnectionLoss, OperationTimeoutError, ForceRetryError)
    EXPIRED_EXCEPTIONS: tuple[type[BaseException], ...] = (SessionExpiredError,)

    def __init__(self, max_tries: int | None = 1, delay: float = 0.1, backoff: float = 2,
                 max_jitter: float = 0.4, max_delay: float = 60.0, ignore_expire: bool = True,
                 sleep_func: Callable[[float], Any] = time.sleep,
                 deadline: float | None = None,
                 interrupt: Callable[[], bool] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        if max_tries is None:
            max_tries = -1
        if not isinstance(max_tries, int) or max_tries < -1:
            raise ValueError(f"max_tries must be an int >= -1 (-1: no limit), not {max_tries!r}")
        if delay < 0 or backoff < 0 or max_delay < 0:
            raise ValueError("delay, backoff and max_delay must not be negative")
        if deadline is not None and deadline < 0:
            raise ValueError(f"deadline must not be negative, not {deadline!r}")
        self.max_tries = max_tries
        self.delay = delay
        self.backoff = backoff
        self.max_jitter = max(min(float(max_jitter), 1.0), 0.0)
        self.max_delay = float(max_delay)
        self.ignore_expire = ignore_expire
        self.sleep_func = sleep_func
        self.deadline = deadline
        self.interrupt = interrupt
        self.clock = clock
        self.rng = rng or random.Random()
        self.retry_exceptions = self.RETRY_EXCEPTIONS + (
            self.EXPIRED_EXCEPTIONS if ignore_expire else ())
        self.reset()

    def reset(self) -> None:
        """Forget the attempts so far: the next pause is ``delay`` again and the
        deadline restarts (done at the start of every call)."""
        self._attempts = 0
        self._cur_delay = self.delay
        self._stop_at: float | None = None

    def copy(self) -> Retry:
        """A fresh policy with the same settings (and retried errors)."""
        other = Retry(max_tries=self.max_tries, delay=self.delay, backoff=self.backoff,
                      max_jitter=self.max_jitter, max_delay=self.max_delay,
                      ignore_expire=self.ignore_expire, sleep_func=self.sleep_func,
                      deadline=self.deadline, interrupt=self.interrupt, clock=self.clock,
                      rng=self.rng)
        other.retry_exceptions = self.retry_exceptions
        return other

    @property
    def attempts(self) -> int:
        """Retries made by the current (or last) call."""
        return self._attempts

    def __call__(self, func: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """``func(*args, **kwargs)``, run again while it fails retryably."""
        self.reset()
        if self.deadline is not None:
            self._stop_at = self.clock() + self.deadline
        while True:
            try:
                return func(*args, **kwargs)
            except ConnectionClosedError:
                raise
            except self.retry_exceptions as exc:
                if self.max_tries != -1 and self._attempts >= self.max_tries:
                    raise RetryFailedError(
                        f"too many retry attempts ({self._attempts}); last: {exc!r}") from exc
                self._attempts += 1
                jitter = self.rng.uniform(1.0 - self.max_jitter, 1.0 + self.max_jitter)
                pause = min(self._cur_delay * jitter, self.max_delay)
                if self._stop_at is not None and self.clock() + pause >= self._stop_at:
                    raise RetryFailedError(
                        f"retry deadline of {self.deadline} s exceeded; last: {exc!r}") from exc
                self._pause(pause)
                self._cur_delay = min(self._cur_delay * self.backoff, self.max_delay)

    def _pause(self, seconds: float) -> None:
        if self.interrupt is None:
            self.sleep_func(seconds)
            return
        remaining = seconds
        while remaining > 0:
            step = min(INTERRUPT_SLICE_S, remaining)
            self.sleep_func(step)
            remaining -= step
            if self.interrupt():
                raise RetryInterruptedError("retry interrupted")


#: kazoo's names.
KazooRetry = Retry
#: kazoo.retry.InterruptedError (not in __all__: it would shadow the builtin).
InterruptedError = RetryInterruptedError
