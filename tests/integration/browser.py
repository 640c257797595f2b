"""A real headless Chromium for tests, driven over its DevTools pipe.

``chromium --remote-debugging-pipe`` reads DevTools protocol commands from its
file descriptor 3 and writes answers and events to descriptor 4, each message
JSON ended by a NUL byte. That is all a test needs to open a page, evaluate
JavaScript in it and take a screenshot, with no WebDriver and no extra package.
Debian's ``chromium`` package (bin/install-system-deps installs it).
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

_ON_3_AND_4 = """
import os, sys
r, w = int(sys.argv[1]), int(sys.argv[2])
a, b = os.dup(r), os.dup(w)
os.dup2(a, 3)
os.dup2(b, 4)
for fd in {r, w, a, b} - {3, 4}:
    os.close(fd)
os.set_inheritable(3, True)  # (os.dup's copies are not, and dup2 onto itself keeps that)
os.set_inheritable(4, True)
os.execv(sys.argv[3], sys.argv[3:])
"""


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium process with one page; :meth:`close` ends both."""

    def __init__(self, binary: str) -> None:
        self._profile = tempfile.mkdtemp(prefix="zk-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--no-default-browser-check", "--window-size=1100,700",
                 f"--user-data-dir={self._profile}", "--remote-debugging-pipe", "about:blank"]
        # A small Python puts our pipe ends on descriptors 3 and 4, where Chromium
        # wants them (copies first: either end may already sit on 3 or 4).
        self.proc = subprocess.Popen([sys.executable, "-c", _ON_3_AND_4, str(to_browser_r),
                                      str(from_browser_w), binary, *flags],
                                     pass_fds=(to_browser_r, from_browser_w),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self._session: str | None = None

    # ------------------------------------------------------------ protocol
    def command(self, method: str, timeout: float = 10.0, **params: Any) -> dict[str, Any]:
        """Send one command (to the page once :meth:`open` attached one); its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session is not None and not method.startswith("Target."):
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._read(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"chromium exited ({self.proc.poll()})")
                self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(raw)

    # ---------------------------------------------------------------- page
    def open(self, url: str) -> None:
        target = self.command("Target.createTarget", url=url)["targetId"]
        self._session = self.command("Target.attachToTarget", targetId=target,
                                     flatten=True)["sessionId"]

    def evaluate(self, expression: str) -> Any:
        result = self.command("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def screenshot(self, path: str) -> None:
        data = self.command("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as out:
            out.write(base64.b64decode(data))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)
