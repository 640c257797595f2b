"""Docs that link the code they explain, kept true by the test suite.

    python -m zkactors.docgen --write    # render docs/src/*.md into docs/
    python -m zkactors.docgen --check    # exit 1 if a rendered page is stale

A page in ``docs/src/`` names code as ``{{module:Qual.name}}``; the rendered
page in ``docs/`` has a link to that function or class at its current line.
When code moves, the rendered page changes, and tests/unit/test_docs.py fails
until it is rendered again; a name that no longer exists fails to render at
all. The walkthroughs (zkactors.sim.walkthroughs) link their code the same way.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SOURCES = REPO / "docs" / "src"
RENDERED = REPO / "docs"
_NAME = re.compile(r"\{\{([\w.]+):([\w.]+)\}\}")


def link(qualified: str, page_dir: Path) -> str:
    """``[`Qual.name`](relative/path.py#L12)`` for ``module:Qual.name``, relative
    to a page in ``page_dir``."""
    module_name, qual = qualified.split(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qual.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as err:
        raise LookupError(f"{{{{{qualified}}}}} names no code: {err}") from None
    target = inspect.unwrap(getattr(target, "fget", target))  # (a property: its getter)
    path = Path(inspect.getsourcefile(target)).resolve()
    line = inspect.getsourcelines(target)[1]
    up = Path(*[".."] * len(page_dir.resolve().relative_to(REPO).parts))
    return f"[`{qual}`]({(up / path.relative_to(REPO)).as_posix()}#L{line})"


def render(text: str, page_dir: Path) -> str:
    return _NAME.sub(lambda m: link(f"{m.group(1)}:{m.group(2)}", page_dir), text)


def rendered_pages() -> dict[Path, str]:
    note = ("<!-- Rendered from docs/src/{name} by `python -m zkactors.docgen --write`; "
            "edit that file, not this one. -->\n")
    pages = {}
    for source in sorted(SOURCES.glob("*.md")):
        title, _, rest = source.read_text().partition("\n")
        pages[RENDERED / source.name] = (f"{title}\n\n{note.format(name=source.name)}"
                                         f"{render(rest, RENDERED)}")
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zkactors.docgen",
                                     description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="render every page")
    action.add_argument("--check", action="store_true", help="exit 1 if one is stale")
    args = parser.parse_args(argv)
    pages = rendered_pages()
    if args.write:
        for path, text in pages.items():
            path.write_text(text)
        print(f"rendered {len(pages)} pages into {RENDERED}")
        return 0
    stale = [p for p, text in pages.items() if not p.exists() or p.read_text() != text]
    for path in stale:
        print(f"out of date: {path.relative_to(REPO)} (python -m zkactors.docgen --write)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
