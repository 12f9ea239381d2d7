"""``diff`` (staging area → working copy), ``diff REV`` (a version → working copy) and
``diff --cached [REV]`` (a version → staging area) read only what changed: the status walk's changed paths, the folders whose cached tree differs. They
must say exactly what comparing both snapshots whole says, renames included; each random
scenario is checked against that full comparison."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dsrepo import Repository
from dsrepo.dvcs.history import DiffResult, classify, diff_files, path_filter
from dsrepo.dvcs.revisions import resolve_tree
from dsrepo.dvcs.worktree import _scan_one, files_from_index
from dsrepo.objects.model import TreeEntry
from tests.dvcs.conftest import write

FOLDERS = ["a", "a/deep", "b", "c/d/e"]


def _working_snapshot(repo: Repository) -> dict[str, TreeEntry]:
    """Every tracked file as the working copy holds it, each one hashed."""
    wt = repo.worktree
    out: dict[str, TreeEntry] = {}
    for p in wt.index.entries:
        s = _scan_one(wt.root, p)
        if s is not None:
            ref = wt.hash_entry(s, write=False)
            out[p] = TreeEntry(p.rsplit("/", 1)[-1], s.kind, ref.size, ref.content_id, None)
    return out


def _full(repo: Repository, rev: str | None, cached: bool, paths: list[str]) -> DiffResult:
    staged = files_from_index(repo.worktree.index.entries.values())
    select = path_filter(repo.root, None, paths)
    version = repo.flatten(resolve_tree(repo, rev or "HEAD"))
    if cached:
        return classify(diff_files(version, staged), select)
    old = staged if rev is None else version
    return classify(diff_files(old, _working_snapshot(repo)), select)


def _scenario(root: Path, seed: int) -> Repository:
    rng = random.Random(seed)
    repo = Repository.init(root)
    files = {f"{d}/f{i}.txt": b"%s %d" % (d.encode(), i) for d in FOLDERS for i in range(4)}
    for p, data in files.items():
        write(root, p, data)
    repo.add(".")
    repo.commit("base")
    names = sorted(files)
    for p in rng.sample(names, 2):  # a second commit: HEAD~1 differs from HEAD there
        write(root, p, b"second " + p.encode())
    repo.add(".")
    repo.commit("second")
    for p in rng.sample(names, rng.randrange(4)):  # edits, some staged
        write(root, p, b"edit %d " % rng.randrange(2) + p.encode())
        if rng.random() < 0.5:
            repo.add(p)
    for p in rng.sample(names, rng.randrange(3)):  # deletions, some staged
        if (root / p).exists():
            (root / p).unlink()
            if rng.random() < 0.5:
                repo.rm(p, cached=True)
    if rng.random() < 0.5:  # a staged move: a rename by content
        src = rng.choice(names)
        if (root / src).exists() and src in repo.worktree.index.entries:
            repo.mv(src, f"moved/{src.replace('/', '-')}")
    if rng.random() < 0.5:  # a new file, staged, then edited again
        write(root, "b/new.txt", b"new")
        repo.add("b/new.txt")
        if rng.random() < 0.5:
            write(root, "b/new.txt", b"newer")
    if rng.random() < 0.3:  # a folder where a file was, staged
        victim = rng.choice(names)
        if (root / victim).exists():
            (root / victim).unlink()
            write(root, f"{victim}/inner.txt", b"inner")
            repo.add(".")
    write(root, "untracked.txt", b"never shown")
    return repo


@pytest.mark.parametrize("seed", range(30))
def test_diff_of_changed_paths_only_says_what_the_full_comparison_says(
    seed: int, tmp_path: Path, identity: Path
) -> None:
    repo = _scenario(tmp_path / "r", seed)
    try:
        for rev in (None, "HEAD", "HEAD~1"):
            for cached in (False, True):
                for paths in ([], ["a"], ["b/new.txt", "moved"]):
                    got = repo.diff(rev, paths=paths, cached=cached)
                    assert got == _full(repo, rev, cached, paths), (rev, cached, paths)
    finally:
        repo.close()
