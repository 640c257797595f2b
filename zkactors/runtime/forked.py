"""Work done in a forked child, so a long pure-Python job cannot hold the node's
interpreter lock: the snapshot of a large tree (as Redis's BGSAVE does).

Writing a snapshot means walking, sorting and packing the whole tree. At a
million znodes that is seconds of CPU, much of it inside single C calls that
never let another thread run — heartbeats stop, and the ensemble elects a new
leader. A forked child gets a copy-on-write image of the tree as it is at that
moment (a consistent snapshot for free: the store actor applies nothing while
it forks) and does the work on its own; the node goes on at once.

The child only runs the given function and ``os._exit``s: it never logs, never
touches a ZeroMQ socket (another thread's lock may have been held when it was
forked), closes every descriptor it inherited (the data dir's lock among them),
runs no garbage collection (that would copy every page), and dies with its
parent (``PR_SET_PDEATHSIG``) rather than outlive a node killed -9. Its outcome
comes back as one line on a pipe.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

_PR_SET_PDEATHSIG = 1
_MAX_REPORT = 4096


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (OSError, ValueError):
        return 65536


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass
class ForkedJob:
    """A child running one job; :meth:`poll` until it says how the job ended."""

    pid: int
    pipe: int
    outcome: str | None = None

    @classmethod
    def start(cls, job: Callable[[], str], nice: int = 0) -> ForkedJob:
        """Fork; the child runs ``job`` (``nice``: that much lower in priority)
        and reports what it returns (or the error it raised) as the outcome.
        The parent returns at once."""
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: nothing here may return
            code = 1
            try:
                # Only the pipe: no copy of the node's descriptors may outlive it
                # (the data dir's lock above all: a restarted node must get it).
                os.closerange(3, write_end)
                os.closerange(write_end + 1, _max_fd())
                _die_with_parent()
                if nice:
                    os.nice(nice)
                gc.disable()
                report = f"ok {job()}"
                code = 0
            except OSError as exc:  # (the parent tells a full disk by its errno)
                report = f"oserror {exc.errno} {exc}"
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                report = f"error {type(exc).__name__}: {exc}"
            with contextlib.suppress(BaseException):
                os.write(write_end, report.encode(errors="replace")[:_MAX_REPORT])
            os._exit(code)
        os.close(write_end)
        return cls(pid, read_end)

    def poll(self) -> str | None:
        """None while the child runs; then its outcome: ``"ok <what the job
        returned>"``, ``"oserror <errno> <message>"``, or ``"error <type>:
        <message>"`` (also for a child that died without a word, killed say)."""
        if self.outcome is not None:
            return self.outcome
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return None
        report = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(self.pipe, _MAX_REPORT):
                report += chunk
        os.close(self.pipe)
        text = report.decode(errors="replace")
        if not text:
            text = f"error the child ended with status {os.waitstatus_to_exitcode(status)}"
        self.outcome = text
        return text

    def error(self) -> Exception | None:
        """The job's failure as an exception to raise in the parent (an OSError
        keeps its errno), or None if it succeeded or still runs."""
        outcome = self.outcome
        if outcome is None or outcome.startswith("ok "):
            return None
        if outcome.startswith("oserror "):
            _, number, message = outcome.split(" ", 2)
            return OSError(int(number), message)
        return RuntimeError(outcome.removeprefix("error "))

    def stop(self) -> None:
        """Kill the child, if it still runs, and reap it."""
        if self.outcome is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.pipe)
        self.outcome = "error stopped"
