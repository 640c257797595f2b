"""How the recipes wait for a watch to fire: until a deadline, or for ever."""

from __future__ import annotations

import threading
import time


def deadline_after(timeout: float | None) -> float | None:
    """The monotonic time ``timeout`` seconds from now (None: no deadline)."""
    return None if timeout is None else time.monotonic() + timeout


def wait_before(event: threading.Event, deadline: float | None) -> bool:
    """Wait for ``event``; False if ``deadline`` passed first (or had already)."""
    if deadline is None:
        return event.wait()
    left = deadline - time.monotonic()
    return left > 0 and event.wait(left)
