"""A client whose ensemble is away: what it costs its process, and that it comes
back by itself. Real sockets, real processes; the measurements are made by
``bench/client_resources.py`` in a process of its own, so nothing else in the
test run shares its CPU time or descriptor table."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.integration.cluster import Ensemble, free_port, wait_for
from zkactors.client import Client
from zkactors.client.api import KazooState
from zkactors.errors import ConnectionLoss, OperationTimeoutError

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "client_resources.py"


def measure(*args: str, timeout: float) -> dict:
    out = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True,
                         text=True, timeout=timeout, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def nowhere(n: int = 3) -> str:
    """Endpoints where nothing listens: a whole ensemble down."""
    return ",".join(f"127.0.0.1:{free_port()}" for _ in range(n))


@pytest.mark.timeout(60)
def test_a_client_with_every_node_down_idles_and_holds_its_descriptors():
    """It used to open ~3,400 sockets a second and burn 130 % of a core."""
    result = measure("idle", nowhere(), "--seconds", "8", timeout=50)
    assert result["cpu_fraction"] < 0.02, result
    # Attempts open and close a socket now and then; nothing accumulates.
    assert result["fds_max"] - result["fds_min"] <= 4, result


@pytest.mark.timeout(90)
def test_a_thousand_failed_starts_leak_no_descriptor_and_no_thread():
    """Each failed start used to leave ~4 descriptors behind (100 starts: 6 -> 443)."""
    result = measure("failed-starts", nowhere(), "--count", "1000", timeout=80)
    assert result["fds_after"] == result["fds_before"], result
    assert result["threads_after"] == result["threads_before"], result


@pytest.mark.timeout(120)
def test_the_whole_ensemble_away_and_back(tmp_path):
    """Every node stopped: the client is suspended, then lost (its requests
    fail, not hang), keeps trying at a modest pace, and is connected and
    serving again on its own once the ensemble is back."""
    ensemble = Ensemble(tmp_path).start()
    client = Client(ensemble.hosts, timeout=2.0, connect_timeout=0.5, request_timeout=30)
    states: list[str] = []
    lost, back = threading.Event(), threading.Event()

    def listen(state: str) -> None:
        states.append(state)
        if state == KazooState.LOST:
            lost.set()
        elif state == KazooState.CONNECTED and lost.is_set():
            back.set()

    client.add_listener(listen)
    try:
        client.start(timeout=15)
        client.create("/config", b"v1")
        ensemble.stop()
        waiting = client.get_async("/config")  # in flight or queued when the nodes went
        assert lost.wait(15), f"never LOST with every node down: {states}"
        with pytest.raises((ConnectionLoss, OperationTimeoutError)):
            waiting.result(10)
        agent = client._agent
        assert agent.is_alive()
        # Between rounds no socket is open at all.
        wait_for(lambda: agent.dealer is None, 10, "a pause between reconnect rounds")
        ensemble.start()
        assert back.wait(30), f"not reconnected after the ensemble came back: {states}"
        assert client.get("/config")[0] == b"v1"
        client.set("/config", b"v2")
        assert client.get("/config")[0] == b"v2"
        # (Nodes stop one by one: it may hop to one still up before the last goes.)
        lost_at = states.index(KazooState.LOST)
        assert states[0] == KazooState.CONNECTED and states[lost_at - 1] == KazooState.SUSPENDED
        assert states[-1] == KazooState.CONNECTED, states
    finally:
        client.stop()
        ensemble.stop()
