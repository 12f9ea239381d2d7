"""Dependencies point one way: cli → dvcs → objects → remotes (the base ``dsrepo.errors`` is shared).

Reads the source with ``ast`` so a stray import (even inside a function) fails the build.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "dsrepo"
ORDER = ["remotes", "objects", "dvcs", "cli"]
ALLOWED_ALWAYS = {"dsrepo", "dsrepo.errors"}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ORDER else None


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text("utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return [m for m in out if m.startswith("dsrepo")]


@pytest.mark.parametrize("layer", ORDER)
def test_layer_imports_only_lower_layers(layer: str) -> None:
    rank = ORDER.index(layer)
    bad = []
    for path in sorted((PKG / layer).rglob("*.py")):
        for module in _imports(path):
            if module in ALLOWED_ALWAYS:
                continue
            target = _layer(module)
            if target is not None and ORDER.index(target) > rank:
                bad.append(f"{path.relative_to(PKG.parent)} imports {module}")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)
