"""The chaos run's plot: a well-formed SVG with the faults shaded and named, the
throughput lines and latency dots, and bounded in size for a long run."""

import xml.etree.ElementTree as ET

import pytest

from zkactors.chaos.history import Operation
from zkactors.chaos.report import MAX_DOTS, render

pytestmark = pytest.mark.timeout(60)

SVG = "{http://www.w3.org/2000/svg}"


def ops(count: int, outcome: str = "ok") -> list[Operation]:
    return [Operation(process=i % 5, f="write", key="k0", input=str(i), output=None,
                      outcome=outcome, invoke=i * 0.001, complete=i * 0.001 + 0.0005)
            for i in range(count)]


def test_the_plot_shades_each_fault_and_draws_every_outcome():
    history = ops(3000) + ops(10, "info") + ops(10, "fail")
    faults = [{"kind": "kill", "detail": "node 1 killed (-9)", "start": 0.5, "end": 1.5},
              {"kind": "partition-leader", "detail": "node 2 cut off", "start": 2.0,
               "end": 2.5}]
    root = ET.fromstring(render(history, faults, "a run & its <faults>"))
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert "kill: node 1 killed (-9)" in titles and "partition-leader: node 2 cut off" in titles
    assert len(root.findall(f"{SVG}polyline")) == 3  # ok, fail, info per second
    dots = [c for c in root.findall(f"{SVG}circle") if c.get("r") == "1.3"]
    assert len(dots) == 3020
    assert "a run &amp; its &lt;faults&gt;" in render(history, faults, "a run & its <faults>")


def test_a_long_run_draws_at_most_max_dots():
    root = ET.fromstring(render(ops(MAX_DOTS * 3 + 7), [], "long"))
    dots = [c for c in root.findall(f"{SVG}circle") if c.get("r") == "1.3"]
    assert MAX_DOTS <= len(dots) <= MAX_DOTS + 10
