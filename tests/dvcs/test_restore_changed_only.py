"""``restore`` and ``checkout REV --only PATTERN`` read only what they name: the staging area's
rows or the version's subtree below each path, and for an anchored pattern only the folder
before its first wildcard. What they restore must be what matching every file of the version
(or of the staging area) restores."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsrepo import Repository
from dsrepo.dvcs.checkout import _anchored_prefix
from dsrepo.dvcs.pathmatch import match_only
from dsrepo.dvcs.revisions import resolve_tree
from tests.dvcs.conftest import write
from tests.snapshots import snapshot

FILES = [
    "a/f.txt",
    "a/g.csv",
    "a/deep/h.txt",
    "ab/x.txt",
    "b/f1.txt",
    "c/d/e/k.txt",
    "d000/m.txt",
    "x/d000/n.txt",
    "top.txt",
]


@pytest.fixture
def repo(tmp_path: Path, identity: Path) -> Repository:
    r = Repository.init(tmp_path / "r")
    for p in FILES:
        write(r.root, p, b"v1 " + p.encode())
    r.add(".")
    r.commit("v1")
    for p in FILES:
        write(r.root, p, b"v2 " + p.encode())
    r.add(".")
    r.commit("v2")
    for p in FILES:  # local edits everywhere; some staged
        write(r.root, p, b"local " + p.encode())
    r.add("a/g.csv", "c")
    return r


def _working(repo: Repository) -> dict[str, bytes]:
    return {p: d for p, d in snapshot(repo.root).items() if not p.startswith(".dsrepo")}


@pytest.mark.parametrize(
    "patterns",
    [
        ["a"],
        ["a/"],
        ["a/*"],
        ["/a"],
        ["a/deep/*.txt"],
        ["*.txt"],
        ["d000"],
        ["/d000"],
        ["c/d/"],
        ["b/f1.txt", "x/*/n.txt"],
        ["a/**/h.txt"],
    ],
)
def test_checkout_only_restores_what_matching_every_file_restores(
    repo: Repository, patterns: list[str]
) -> None:
    match = match_only(patterns)
    want = sorted(p for p in repo.flatten(resolve_tree(repo, "HEAD~1")) if match(p))
    before = _working(repo)
    result = repo.checkout("HEAD~1", only=patterns)
    assert sorted(result.written) == want
    after = _working(repo)
    assert after == {p: (b"v1 " + p.encode() if p in want else d) for p, d in before.items()}


@pytest.mark.parametrize(
    ("pattern", "prefix"),
    [
        ("a", None),
        ("a/", None),
        ("*.txt", None),
        ("!a/b", None),
        ("/a", "a"),
        ("a/*", "a"),
        ("a/deep/*.txt", "a/deep"),
        ("/x/d000/n.txt", "x/d000/n.txt"),
        ("*/d000", None),
        ("a/[bc]/x", "a"),
    ],
)
def test_only_anchored_patterns_narrow_the_walk(pattern: str, prefix: str | None) -> None:
    assert _anchored_prefix(pattern) == prefix


@pytest.mark.parametrize("source", [None, "HEAD~1"])
def test_restore_reads_each_path_alone(repo: Repository, source: str | None) -> None:
    """From the staging area (the staged edits come back, the others are dropped) or from a
    version: each named file or folder, nothing else."""
    before = _working(repo)
    got = repo.restore("a", "top.txt", "c/d", source=source, cwd=repo.root)
    named = [p for p in FILES if p.startswith(("a/", "c/d/")) or p == "top.txt"]
    assert sorted(got) == sorted(named)
    staged = {"a/g.csv", "c/d/e/k.txt"}

    def expected(p: str) -> bytes:
        if source is not None:
            return b"v1 " + p.encode()
        return (b"local " if p in staged else b"v2 ") + p.encode()

    assert _working(repo) == {p: expected(p) if p in named else d for p, d in before.items()}
