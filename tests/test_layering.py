"""Dependencies point one way: cli and server → dvcs → objects → remotes (the base
``dsrepo.errors`` is shared; cli and server are peers and never import each other).

Reads the source with ``ast`` so a stray import (even inside a function) fails the build.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "dsrepo"
RANK = {"remotes": 0, "objects": 1, "dvcs": 2, "cli": 3, "server": 3}
ORDER = list(RANK)
ALLOWED_ALWAYS = {"dsrepo", "dsrepo.errors"}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


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
    rank = RANK[layer]
    bad = []
    for path in sorted((PKG / layer).rglob("*.py")):
        for module in _imports(path):
            if module in ALLOWED_ALWAYS:
                continue
            target = _layer(module)
            if target is not None and target != layer and RANK[target] >= rank:
                bad.append(f"{path.relative_to(PKG.parent)} imports {module}")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


# ---------------------------------------------------------------- source rules beyond layers

MAX_LINES = 600


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _runtime_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """dsrepo modules ``path`` imports when it runs: every import statement, inside functions
    too, except those under ``if TYPE_CHECKING:``. ``from a import b`` names module ``a.b``
    when that is a module, else ``a``."""
    tree = ast.parse(path.read_text("utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module not in modules:
                continue
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in modules else node.module)
    return out


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {m: _runtime_imports(p, modules) - {m} for m, p in modules.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append([*path[path.index(n) :], n])
            elif n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles at run time:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_only_the_environment_module_reads_the_environment() -> None:
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        if path == PKG / "environment.py":
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("environ", "getenv", "putenv", "environb")
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
            ):
                bad.append(f"{path.relative_to(PKG.parent)}:{node.lineno} os.{node.attr}")
    assert not bad, "read the environment through dsrepo.environment:\n" + "\n".join(bad)


def test_no_module_is_too_long() -> None:
    long = [
        f"{p.relative_to(PKG.parent)}: {n} lines"
        for p in sorted(PKG.rglob("*.py"))
        if (n := len(p.read_text("utf-8").splitlines())) > MAX_LINES
    ]
    assert not long, f"modules over {MAX_LINES} lines (split by concept):\n" + "\n".join(long)


def test_repository_logic_does_not_touch_the_pack_format() -> None:
    """Packs, pack indexes and key spelling belong to the objects layer: dvcs moves objects
    through ObjectStore and dsrepo.objects.transfer only."""
    bad = [
        f"{path.relative_to(PKG.parent)} imports {module}"
        for path in sorted((PKG / "dvcs").rglob("*.py"))
        for module in _imports(path)
        if module in ("dsrepo.objects.layout", "dsrepo.objects.pack")
        or (module == "dsrepo.objects" and "layout" in path.read_text("utf-8"))
    ]
    assert not bad, "\n".join(bad)


# ---------------------------------------------------------------- the CLI is a client of the API

# The CLI imports the public API (the package ``dsrepo``) and its own modules, nothing below.
# dsrepo.environment is the one place environment variables are read, by the CLI too.
CLI_MAY_IMPORT = {"dsrepo", "dsrepo.environment"}


def _is_module(name: str) -> bool:
    path = PKG.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _dsrepo_imports(source: str, package: str) -> list[tuple[int, str]]:
    """(line, module) for every dsrepo module ``source`` (a module of ``package``) imports:
    every import statement, inside functions and under TYPE_CHECKING too; relative imports
    resolved; ``from a import b`` names module ``a.b`` when that is a module, else ``a``."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, node.module] if node.module else parts)
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((node.lineno, sub if _is_module(sub) else base))
    return [(n, m) for n, m in out if m == "dsrepo" or m.startswith("dsrepo.")]


def _cli_may_import(module: str) -> bool:
    return module in CLI_MAY_IMPORT or module == "dsrepo.cli" or module.startswith("dsrepo.cli.")


def test_cli_imports_only_the_public_api() -> None:
    bad = []
    seen = 0
    for path in sorted((PKG / "cli").rglob("*.py")):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        for line, module in _dsrepo_imports(path.read_text("utf-8"), ".".join(parts[:-1])):
            seen += 1
            if not _cli_may_import(module):
                bad.append(f"{path.relative_to(PKG.parent)}:{line} imports {module}")
    assert seen, "no imports found under dsrepo/cli"
    assert not bad, "the CLI may import only `dsrepo` and `dsrepo.cli.*`:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("def f():\n    from dsrepo.dvcs.history import log\n", "dsrepo.dvcs.history"),
        ("if TYPE_CHECKING:\n    from dsrepo.objects.ids import ObjectId\n", "dsrepo.objects.ids"),
        ("import dsrepo.remotes.urls\n", "dsrepo.remotes.urls"),
        ("from dsrepo import dvcs\n", "dsrepo.dvcs"),
        ("from ..dvcs import history\n", "dsrepo.dvcs.history"),
        ("from .. import objects\n", "dsrepo.objects"),
    ],
)
def test_cli_import_check_sees_every_form(source: str, found: str) -> None:
    modules = [m for _, m in _dsrepo_imports(source, "dsrepo.cli")]
    assert modules == [found]
    assert not _cli_may_import(found)


def test_cli_import_check_allows_the_api_and_the_cli() -> None:
    source = (
        "from dsrepo import Repository, environment\n"
        "from dsrepo.cli.app import cli\nfrom . import output\n"
    )
    modules = [m for _, m in _dsrepo_imports(source, "dsrepo.cli")]
    assert modules == ["dsrepo", "dsrepo.environment", "dsrepo.cli.app", "dsrepo.cli.output"]
    assert all(_cli_may_import(m) for m in modules)


def test_starting_the_cli_loads_no_transfer_or_server_code() -> None:
    """Every command pays for what the CLI imports when it starts (status on 10k files is
    ~0.2 s): registering commands must not pull in transfer, cache, server or HTTP code."""
    import subprocess
    import sys

    code = "import sys, dsrepo.cli.main; print(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())  # fmt: skip
    heavy = {
        "dsrepo.dvcs.push", "dsrepo.dvcs.fetch", "dsrepo.dvcs.getcache", "dsrepo.dvcs.checkout",
        "dsrepo.dvcs.gc", "dsrepo.remotes.http", "dsrepo.remotes.s3", "dsrepo.server.app",
        "urllib3", "boto3", "starlette",
    }  # fmt: skip
    assert not heavy & loaded, sorted(heavy & loaded)
