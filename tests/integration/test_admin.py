"""The operator's surface of a node: ``[admin] http`` serving ``/metrics`` in
Prometheus' text format and ``/health``. Real nodes, real HTTP."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.cluster import (
    ZKNODE,
    Ensemble,
    free_port,
    wait_for,
    write_config,
)
from zkactors.client import Client
from zkactors.errors import NoNodeError

pytestmark = pytest.mark.timeout(90)


def fetch(url: str, accept: str = "") -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    status, content_type, body = fetch(url + "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


@pytest.fixture
def ensemble(tmp_path):
    ensemble = Ensemble(tmp_path, admin=True).start()
    yield ensemble
    ensemble.stop()


def test_metrics_count_requests_latency_replication_and_fsyncs(ensemble):
    leader = ensemble.wait_for_leader()
    client = Client(ensemble.nodes[leader].client_endpoint)
    client.start(timeout=15)
    try:
        for i in range(40):
            client.create(f"/m{i}", b"v" * 100)
        with pytest.raises(NoNodeError):
            client.get("/missing")
        client.get("/m1")
    finally:
        client.stop()

    def settled():  # the log's numbers are refreshed on its ticks (every 100 ms)
        samples = scrape(ensemble.nodes[leader].admin_url)
        lag = [v for (name, _), v in samples.items() if name == "zkactors_follower_lag_entries"]
        commit = samples.get(("zkactors_log_index", (("kind", "commit"),)), 0)
        return samples if commit >= 41 and len(lag) == 2 and not any(lag) else None

    samples = wait_for(settled, 10, "the leader's metrics to settle", interval=0.1)
    assert samples[("zkactors_requests_total", (("op", "create"), ("outcome", "ok")))] == 40
    assert samples[("zkactors_requests_total", (("op", "get"), ("outcome", "no_node")))] == 1
    assert samples[("zkactors_requests_total", (("op", "get"), ("outcome", "ok")))] == 1
    creates = samples[("zkactors_request_duration_seconds_count", (("op", "create"),))]
    assert creates == 40
    assert samples[("zkactors_request_duration_seconds_bucket",
                    (("le", "+Inf"), ("op", "create")))] == 40
    assert 0 < samples[("zkactors_request_duration_seconds_sum", (("op", "create"),))] < 40
    assert samples[("zkactors_client_received_bytes_total", ())] > 40 * 100
    assert samples[("zkactors_client_sent_bytes_total", ())] > 0
    assert samples[("zkactors_role", (("role", "leader"),))] == 1
    last = samples[("zkactors_log_index", (("kind", "last"),))]
    assert last >= 41  # the leader's no-op and our creates
    assert samples[("zkactors_log_index", (("kind", "commit"),))] == last
    assert samples[("zkactors_znodes", ())] >= 41
    assert samples[("zkactors_fsync_duration_seconds_count", ())] >= 1
    # (The young generation is collected many times a second on a busy node.)
    assert samples[("zkactors_gc_pause_seconds_count", (("generation", "0"),))] >= 1
    assert ("zkactors_gc_pause_seconds_count", (("generation", "2"),)) in samples
    # The election actor ticks every heartbeat_ms / 5, and times each gap.
    assert samples[("zkactors_election_tick_gap_seconds_count", ())] >= 10
    assert samples[("zkactors_elections_total", ())] >= 0
    assert samples[("zkactors_leader_changes_total", ())] >= 1
    assert samples[("zkactors_serving", ())] == 1
    assert samples[("zkactors_watch_events_total", ())] >= 40
    follower = ensemble.a_follower(leader)
    follower_samples = scrape(follower.admin_url)
    assert follower_samples[("zkactors_role", (("role", "follower"),))] == 1
    assert not [k for k in follower_samples if k[0] == "zkactors_follower_lag_entries"]


def test_health_is_200_when_serving_and_503_with_the_reason_without_a_quorum(ensemble):
    for node in ensemble.nodes.values():
        wait_for(lambda node=node: fetch(node.admin_url + "/health")[0] == 200, 10,
                 "every node healthy")
    status, content_type, body = fetch(ensemble.nodes[1].admin_url + "/health")
    assert (status, body) == (200, "serving\n") and content_type.startswith("text/plain")
    status, content_type, body = fetch(ensemble.nodes[1].admin_url + "/health?format=json")
    assert status == 200 and content_type == "application/json"
    assert json.loads(body) == {"node": 1, "serving": True, "reason": "serving"}
    # Two of three gone: the last one knows no live leader, and says so.
    ensemble.nodes[2].kill9()
    ensemble.nodes[3].kill9()
    survivor = ensemble.nodes[1].admin_url + "/health"
    wait_for(lambda: fetch(survivor)[0] == 503, 10, "the survivor to report unhealthy")
    status, _, body = fetch(survivor, accept="application/json")
    assert status == 503
    assert json.loads(body) == {"node": 1, "serving": False, "reason": "no live leader known"}
    assert scrape(ensemble.nodes[1].admin_url)[("zkactors_serving", ())] == 0


def test_unknown_paths_get_404(ensemble):
    assert fetch(ensemble.nodes[1].admin_url + "/")[0] == 404


def test_an_admin_port_in_use_fails_the_start_with_one_line(tmp_path):
    port = free_port()
    config = write_config(tmp_path, extra=f"\n[admin]\nhttp = 127.0.0.1:{port}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        started = time.monotonic()
        proc = subprocess.run([*ZKNODE, str(config)], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL, check=False)
        took = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("zknode: ")]
    assert line == (f"zknode: cannot listen on 127.0.0.1:{port} (http of [admin] in "
                    f"{config}): Address already in use")
    assert took < 2.0 + 1.5


def test_sigusr1_prints_every_threads_stack_and_the_node_goes_on(ensemble):
    """``kill -USR1`` is how one sees where a node that stopped answering waits
    (as jstack for ZooKeeper): every actor's thread, and no harm done."""
    node = ensemble.nodes[1]
    node.proc.send_signal(signal.SIGUSR1)
    stacks = wait_for(lambda: node.log().count("Thread 0x") >= 5 and node.log(), 10,
                      "the stacks in the node's log")
    assert "runtime/actor.py" in stacks and "in run" in stacks
    with Client(ensemble.hosts, timeout=10) as client:
        client.create("/after-the-stacks", b"x")
    assert node.proc.poll() is None
