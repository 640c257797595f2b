"""A Jepsen-style run on this machine (issue #15): nodes in network namespaces,
partitions, one-way cuts, packet loss, kill -9 and SIGSTOP on a seeded schedule,
clients recording every operation — and the verdict: linearizable registers,
clients' order kept, acknowledged creates everywhere, identical trees.

Needs root, ``ip`` and ``nft`` (``bin/install-system-deps``, which the README's
test command runs): CI runs as root. Without root the run is skipped, saying why;
as root with a tool missing it fails.
"""

import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

from zkactors.chaos.netns import Network, NetworkError, missing_tools
from zkactors.chaos.run import RunConfig, run

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]


def test_tools_are_there_when_root():
    assert missing_tools() == [], "run bin/install-system-deps (as root)"


def _ours(run_id: str) -> str:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           check=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True,
                           check=True).stdout
    return "\n".join(line for line in (names + links).splitlines() if f"zkc{run_id}" in line
                     or f"zkc-{run_id}" in line)


def test_a_network_half_built_is_removed_and_rules_cut_and_heal():
    with Network("tst1", [1, 2], subnet="10.213.250.0/24") as net:
        net.cut(1, 2)
        net.drop_to(1, 2, 30)
        assert "10.213.250.12 drop" in net.rules(1)
        assert "numgen random mod 100 < 30" in net.rules(1)
        net.heal()
        assert "drop" not in net.rules(1) and "drop" not in net.rules(2)
    assert _ours("tst1") == ""
    broken = Network("tst2", [1, 2, 3], subnet="10.213.251.0/24")
    add_node = broken._add_node

    def fail_at_the_third(node: int) -> None:
        if node == 3:
            raise NetworkError("a failure halfway")
        add_node(node)

    broken._add_node = fail_at_the_third
    with pytest.raises(NetworkError, match="halfway"):
        broken.open()
    assert _ours("tst2") == ""


def test_a_minute_of_faults_finds_no_anomaly(tmp_path):
    summary = run(RunConfig(seconds=60, nodes=3, seed=11, out=tmp_path))
    assert summary["anomalies"] == [], summary["smallest_histories"]
    assert summary["ok"]
    kinds = summary["faults_by_kind"]
    assert sum(kinds.values()) >= 10 and len(kinds) >= 4, kinds
    assert summary["outcomes"].get("ok", 0) >= 1000, summary["outcomes"]
    workdir = tmp_path / os.path.basename(summary["workdir"])
    assert (workdir / "history.jsonl").stat().st_size > 0
    ET.parse(workdir / "report.svg")  # a well-formed picture
    assert _ours(workdir.name.removeprefix("run-")) == ""  # nothing left behind
