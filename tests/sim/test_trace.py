"""``python -m zkactors.sim --seed N --trace``: a run told as a timeline. The
tracer only watches — a traced run is the run its seed names — and it tells
what the cores decided, with the reasons they give."""

from __future__ import annotations

import re

import pytest

from zkactors.sim.__main__ import main
from zkactors.sim.faults import Faults
from zkactors.sim.run import run_seed, trace_seed

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_traced_run_is_the_run_its_seed_names(seed):
    lines: list[str] = []
    traced = trace_seed(seed, lines.append)
    assert traced == run_seed(seed)
    assert lines[-1].endswith("end of the run: every check passed")
    assert len(lines) > 50


def test_the_same_seed_tells_the_same_story():
    first: list[str] = []
    second: list[str] = []
    trace_seed(5, first.append, until=("leader-change", 0), clients=True)
    trace_seed(5, second.append, until=("leader-change", 0), clients=True)
    assert first == second


def test_a_first_election_reads_as_pre_vote_vote_leader_and_no_op():
    lines: list[str] = []
    # (Calm: in seed 0's chaos, answers to messages queued across restarts come
    # before the asks of the election this test reads.)
    assert trace_seed(0, lines.append, until=("leader", 0), faults=Faults().calm()) is None
    text = "\n".join(lines)
    order = [next(i for i, line in enumerate(lines) if re.search(pattern, line))
             for pattern in (r"→ n\d, n\d: pre-vote\? for term 1",
                             r"pre-vote for term 1: GRANTED",
                             r"won the pre-vote: tells its log to campaign for term 1",
                             r"candidate in term 1: votes for itself",
                             r"→ n\d: vote for term 1: GRANTED",
                             r"LEADER of term 1 \(votes: n\d, n\d\)",
                             r"appends 1: no-op")]
    assert order == sorted(order), text
    assert lines[-1].endswith("stops: leader")
    # Each line sits in its node's lane.
    lane = re.compile(r"^ *\d+  (n1| ·| \*)")
    assert all(lane.match(line) for line in lines[4:]), text


def test_refused_votes_carry_the_voters_reason():
    reasons: set[str] = set()
    for seed in range(12):
        lines: list[str] = []
        trace_seed(seed, lines.append, until=("ms", 3000))
        reasons.update(m.group(1) for line in lines
                       if (m := re.search(r"vote for term \d+: refused \((.*?)\)", line)))
    # (Twelve seeds of chaos meet these rules; each reason is a rule of the core.)
    kinds = {re.sub(r"n\d|\d+(@\d+)?", "#", reason) for reason in reasons}
    assert "already voted for itself in term #" in kinds, reasons
    assert any(kind.startswith("leader # was heard # ms ago") for kind in kinds), reasons


def test_losses_and_faults_are_shown_and_routine_traffic_only_on_request():
    quiet: list[str] = []
    loud: list[str] = []
    trace_seed(0, quiet.append, until=("ms", 3600))
    trace_seed(0, loud.append, until=("ms", 3600), every_message=True)
    assert any("[LOST: partitioned]" in line for line in quiet)
    assert any("CRASHES" in line for line in quiet)
    assert any("CUT both ways" in line for line in quiet)
    beats = [line for line in loud if "heartbeat, term" in line]
    assert len(beats) > 2 * len([line for line in quiet if "heartbeat, term" in line])
    assert not any(" asks: " in line or "answers client" in line for line in quiet)


def test_the_command_line_traces_one_seed(capsys):
    assert main(["--seed", "0", "--trace", "--until", "commit", "2", "--clients"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# python -m zkactors.sim --seed 0 --trace --until commit 2 --clients")
    assert "client c" in out
    assert out.rstrip().endswith("stops: commit 2")


@pytest.mark.parametrize("args", [["--trace"], ["--seed", "1", "--until", "leader"],
                                  ["--seed", "1", "--trace", "--until", "commit"],
                                  ["--seed", "1", "--trace", "--until", "sunrise"]])
def test_the_command_line_refuses_a_trace_it_cannot_make(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert "--trace" in capsys.readouterr().err or "--until" in capsys.readouterr().err
