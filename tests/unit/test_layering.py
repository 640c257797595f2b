"""The layering a reader relies on: a client speaks only the wire's vocabulary
(``zkactors.wire``, ``zkactors.protocol``), never a node's cores, so the client
library can be read, and changed, without the server's internals."""

import ast
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "zkactors" / "client"


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
    return names


def test_the_client_imports_nothing_from_the_cores():
    modules = sorted(CLIENT.glob("*.py"))
    assert len(modules) >= 5
    offending = {path.name: name for path in modules for name in _imports(path)
                 if name == "zkactors.core" or name.startswith("zkactors.core.")}
    assert offending == {}
