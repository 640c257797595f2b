"""docs/walkthroughs/ are generated from real simulated runs
(zkactors/sim/walkthroughs.py); they must match what the code does now."""

from __future__ import annotations

import pytest

from zkactors.sim import walkthroughs
from zkactors.sim.mutants import MUTANTS, applied

pytestmark = pytest.mark.timeout(120)


def test_the_walkthroughs_in_docs_are_what_the_code_does_now(capsys):
    code = walkthroughs.main(["--check", str(walkthroughs.REPO / "docs" / "walkthroughs")])
    assert code == 0, capsys.readouterr().out


def test_every_walkthrough_page_is_listed_and_links_code_that_exists():
    pages = walkthroughs.pages(walkthroughs.REPO / "docs" / "walkthroughs")
    index = pages.pop(walkthroughs.REPO / "docs" / "walkthroughs" / "README.md")
    for path, text in pages.items():
        assert f"]({path.name})" in index
        assert "](../../zkactors/" in text and "```text\n t ms  n1  n2  n3\n" in text


def test_a_story_the_cores_no_longer_tell_fails_to_generate():
    # Break the up-to-date check on votes: the node that lacks the committed
    # entry can now win, and the leader-crash page must refuse to be written.
    mutant = next(m for m in MUTANTS if m.name == "vote-up-to-date")
    walk = next(w for w in walkthroughs.WALKTHROUGHS if w.name == "leader-crash")
    with applied(mutant), pytest.raises(AssertionError):
        walkthroughs.page(walk, walkthroughs.REPO / "docs" / "walkthroughs")


def test_a_script_expecting_a_line_that_is_not_there_says_which():
    script = walkthroughs.Script(1, 3, walkthroughs.calm())
    script.until_leader()
    with pytest.raises(walkthroughs.StoryError, match="a unicorn"):
        script.expect(r"unicorn", "a unicorn")
