"""The clients of a chaos run: register operations on a few keys, recorded as a
history of invoke and complete events (the format of :mod:`zkactors.chaos.history`).

Each worker thread owns one :class:`~zkactors.client.Client` and issues one
operation at a time, chosen at random: a plain ``get`` (checked for the
client's own order), a linearizable ``get`` (sync + get), a ``set``, a ``set``
with the version it last read (a compare-and-set), or a sequential create. The
outcome is ``ok``, ``fail`` (the ensemble said no: the operation had no effect)
or ``info`` (unknown: a timeout or a lost connection — it may take effect
later). As in Jepsen, a worker whose operation ended ``info`` carries on as a
new *process*: the old one may still have that operation in flight.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from zkactors.client import Client
from zkactors.errors import BadVersionError, NodeExistsError, NoNodeError

ROOT = "/jepsen"
#: Answers that say the operation did not happen.
DEFINITE_FAILURES = (BadVersionError, NoNodeError, NodeExistsError)


def key_path(key: str) -> str:
    return f"{ROOT}/{key}"


class Recorder:
    """The shared history: events appended under a lock, in the order they happen."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, **event: Any) -> None:
        event["time"] = time.monotonic()
        with self._lock:
            self.events.append(event)


class Worker:
    def __init__(self, index: int, hosts: str, keys: list[str], recorder: Recorder,
                 seed: int, processes: range, request_timeout: float = 2.0) -> None:
        self.index = index
        self.keys = keys
        self.recorder = recorder
        self.rng = random.Random(f"{seed}-{index}")
        self.processes = iter(processes)  # fresh process numbers, this worker's own
        self.process = next(self.processes)
        self.client = Client(hosts, request_timeout=request_timeout, connect_timeout=1.0,
                             name=f"chaos-{index}", session=False, reconnect_max=0.5)
        self.versions: dict[str, int] = {}  # the version it last saw, per key
        self.counter = 0
        self.ops = {"ok": 0, "fail": 0, "info": 0}
        self.start_error = ""

    def run(self, stop: threading.Event) -> None:
        try:
            self.client.start(timeout=30)
        except Exception as err:  # noqa: BLE001 - its operations fail (info) until it connects
            self.start_error = f"{type(err).__name__}: {err}"
        while not stop.is_set():
            self.step()

    def step(self) -> None:
        rng = self.rng
        key = rng.choice(self.keys)
        roll = rng.random()
        if roll < 0.25:
            self._op("read", key, None, linearizable=False)
        elif roll < 0.45:
            self._op("read", key, None, linearizable=True)
        elif roll < 0.7:
            self.counter += 1
            self._op("write", key, f"p{self.process}-{self.counter}")
        elif roll < 0.9:
            self.counter += 1
            expected = self.versions.get(key, 0)
            self._op("cas", key, [expected, f"p{self.process}-{self.counter}"])
        else:
            self._op("create", "queue", None)

    def _op(self, f: str, key: str, value: Any, linearizable: bool = False) -> None:
        process = self.process
        self.recorder.add(process=process, type="invoke", f=f, key=key, value=value,
                          zxid=None, linearizable=linearizable)
        try:
            outcome, result, zxid = "ok", *self._call(f, key, value, linearizable)
        except DEFINITE_FAILURES as err:
            outcome, result, zxid = "fail", type(err).__name__, None
        except Exception as err:  # noqa: BLE001 - anything else: we do not know
            outcome, result, zxid = "info", f"{type(err).__name__}: {err}"[:200], None
        self.recorder.add(process=process, type=outcome, f=f, key=key, value=result,
                          zxid=zxid, linearizable=linearizable)
        self.ops[outcome] += 1
        if outcome == "info":
            self.process = next(self.processes)
            time.sleep(0.05)  # (a node just failed us: not a tight loop)

    def _call(self, f: str, key: str, value: Any, linearizable: bool) -> tuple[Any, int]:
        client, path = self.client, key_path(key)
        if f == "read":
            try:
                data, stat = client.get(path, linearizable=linearizable)
            except NoNodeError:
                return None, None
            self.versions[key] = stat.version
            # (No zxid: what a read carries back is the node's, not the key's; the
            # client's order is checked on versions, key by key.)
            return [data.decode(), stat.version], None
        if f == "write":
            stat = client.set(path, value.encode())
            self.versions[key] = stat.version
            return stat.version, None
        if f == "cas":
            stat = client.set(path, value[1].encode(), version=value[0])
            self.versions[key] = stat.version
            return stat.version, None
        created = client.create(f"{ROOT}/q/n-", f"p{self.process}".encode(), sequence=True,
                                makepath=True)
        return created, None

    def close(self) -> None:
        self.client.stop()


def setup_keys(hosts: str, keys: list[str]) -> None:
    """Create the registers (empty) before the run."""
    client = Client(hosts, request_timeout=10.0, session=False)
    client.start(timeout=30)
    try:
        for key in keys:
            try:
                client.create(key_path(key), b"", makepath=True)
            except NodeExistsError:
                pass
    finally:
        client.stop()
