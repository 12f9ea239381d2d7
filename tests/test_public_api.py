"""The public API is the package ``dsrepo``: every name in ``__all__`` resolves, lazily.

Only ``Repository`` (and ``DsrepoError``) are imported with the package; the other names are
imported on first use (PEP 562), so ``import dsrepo`` (and ``dsrepo status``) stays cheap.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from blake3 import blake3

import dsrepo

INIT = Path(dsrepo.__file__)
EAGER = {"Repository", "DsrepoError", "__version__"}


@pytest.mark.parametrize("name", dsrepo.__all__)
def test_every_public_name_resolves(name: str) -> None:
    value = getattr(dsrepo, name)
    assert value is not None
    assert getattr(dsrepo, name) is value  # kept after the first access


def test_all_lists_each_name_once_and_every_lazy_name() -> None:
    assert len(dsrepo.__all__) == len(set(dsrepo.__all__))
    assert set(dsrepo.__all__) == set(dsrepo._LAZY) | EAGER
    assert set(dsrepo.__all__) <= set(dir(dsrepo))


def test_lazy_names_match_the_type_checking_imports() -> None:
    """What mypy sees (the ``if TYPE_CHECKING:`` imports) is what ``__getattr__`` returns."""
    tree = ast.parse(INIT.read_text("utf-8"))
    seen: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module
                for a in stmt.names:
                    target = stmt.module if a.asname is None else f"{stmt.module}:{a.name}"
                    seen[a.asname or a.name] = target
    assert seen == dsrepo._LAZY


def test_lazy_names_are_the_defining_modules_objects() -> None:
    import importlib

    for name, target in dsrepo._LAZY.items():
        module, _, attribute = target.partition(":")
        assert getattr(dsrepo, name) is getattr(importlib.import_module(module), attribute or name)


def test_every_exported_exception_is_a_dsrepo_error() -> None:
    values = [getattr(dsrepo, n) for n in dsrepo.__all__]
    errors = [v for v in values if isinstance(v, type) and issubclass(v, BaseException)]
    assert len(errors) >= 40
    assert all(issubclass(e, dsrepo.DsrepoError) for e in errors)


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        dsrepo.no_such_name  # noqa: B018
    assert not hasattr(dsrepo, "hash_path")  # exported as hash_file


def test_import_dsrepo_imports_no_lazy_module() -> None:
    """``import dsrepo`` costs what importing Repository costs, nothing more."""
    code = (
        "import sys, dsrepo\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('dsrepo'))))\n"
    )
    loaded = set(subprocess.check_output([sys.executable, "-c", code], text=True).split())
    assert "dsrepo.dvcs.repository" in loaded
    heavy = {
        "dsrepo.dvcs.checkout",
        "dsrepo.dvcs.commits",
        "dsrepo.dvcs.fetch",
        "dsrepo.dvcs.fsck",
        "dsrepo.dvcs.history",
        "dsrepo.dvcs.merging",
        "dsrepo.dvcs.push",
        "dsrepo.dvcs.worktree",
        "dsrepo.remotes.urls",
    }
    assert not loaded & heavy


def test_hash_helpers_work_outside_a_repository(tmp_path: Path) -> None:
    data = b"hello\n" * 1000
    (tmp_path / "f").write_bytes(data)
    assert dsrepo.hash_file(str(tmp_path / "f")).content_id.hex() == blake3(data).hexdigest()
    ref = dsrepo.hash_bytes(data)
    assert (ref.content_id.hex(), ref.size) == (blake3(data).hexdigest(), len(data))
    with pytest.raises(dsrepo.FileReadError):
        dsrepo.hash_file(str(tmp_path / "missing"))


def test_user_config_is_the_global_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DSREPO_CONFIG_GLOBAL", str(tmp_path / "config"))
    dsrepo.user_config().set("user.name", "Ada")
    assert dsrepo.user_config().path == tmp_path / "config"
    assert dsrepo.user_config().get("user.name") == "Ada"


def test_repository_object_reading_and_hashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSREPO_AUTHOR_NAME", "Ada")
    monkeypatch.setenv("DSREPO_AUTHOR_EMAIL", "ada@example.com")
    repo = dsrepo.Repository.init(tmp_path / "r")
    (repo.root / "a.txt").write_bytes(b"alpha\n")
    refs = list(repo.hash_objects([str(repo.root / "a.txt"), b"beta\n"], write=True))
    assert [r.content_id.hex() for r in refs] == [
        blake3(b"alpha\n").hexdigest(),
        blake3(b"beta\n").hexdigest(),
    ]
    assert repo.count_objects().packs == 1  # stored together, flushed once
    assert repo.get_object(refs[1].content_id) == b"beta\n"
    assert repo.object_size(refs[1].content_id) == 5
    assert repo.hash_object(b"gamma").content_id.hex() == blake3(b"gamma").hexdigest()

    repo.add("a.txt")
    info = repo.commit("first")
    assert repo.get_commit(info.id).message == "first\n"
    assert isinstance(repo.get_object(info.id), dsrepo.Commit)
    tag = repo.tag("v1", message="release")
    assert tag.tag is not None
    tag_id = repo.resolve("v1").id
    assert repo.get_tag(tag_id).name == "v1"
    with pytest.raises(dsrepo.FormatError):
        repo.get_commit(tag_id)
