"""Docs that link code (zkactors.docgen): rendered pages match their sources and
the code as it is now, and a link to code that is gone fails to render."""

from __future__ import annotations

import pytest

from zkactors import docgen

pytestmark = pytest.mark.timeout(60)


def test_rendered_docs_are_current(capsys):
    assert docgen.main(["--check"]) == 0, capsys.readouterr().out


def test_a_link_points_at_the_line_the_code_is_on():
    text = docgen.render("see {{zkactors.docgen:link}}", docgen.RENDERED)
    line = next(i for i, src in enumerate(
        (docgen.REPO / "zkactors" / "docgen.py").read_text().splitlines(), 1)
        if src.startswith("def link("))
    assert text == f"see [`link`](../zkactors/docgen.py#L{line})"


def test_a_link_to_code_that_is_gone_fails_to_render():
    with pytest.raises(LookupError, match="names no code"):
        docgen.render("{{zkactors.core.replog:ReplicatedLog.no_such_step}}", docgen.RENDERED)
