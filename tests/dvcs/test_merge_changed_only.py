"""A three-way ``merge`` merges, checks and writes only the paths some head changed since the
base, and builds the merge's tree from HEAD's (:mod:`dsrepo.dvcs.treepatch`). Each random
scenario (edits, additions, deletions, a file becoming a folder and the other way round, local
changes) runs in two copies of one repository, one forced down the path that compares whole
versions: both must refuse alike, or make the same merge tree, files, index and status."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from dsrepo import Repository
from dsrepo.dvcs import checkout, merging
from tests.dvcs.conftest import write
from tests.dvcs.outcomes import fast_and_full, staged_is_head
from tests.dvcs.test_treecache import check_cache
from tests.snapshots import snapshot

FOLDERS = ["a", "a/deep", "b", "c"]


def _change(root: Path, rng: random.Random, tag: str) -> None:
    files = sorted(p for p in snapshot(root) if not p.startswith(".dsrepo"))
    for p in rng.sample(files, 3):
        write(root, p, f"{tag} edit of {p}".encode())
    for p in rng.sample(files, 2):
        if (root / p).exists():
            (root / p).unlink()
    write(root, f"{rng.choice(FOLDERS)}/{tag}-{rng.randrange(3)}.txt", tag.encode())
    if rng.random() < 0.3:  # a file becomes a folder
        p = rng.choice([f for f in files if (root / f).exists()])
        (root / p).unlink()
        write(root, f"{p}/inside.txt", tag.encode())
    if tag == "theirs" and rng.random() < 0.5:  # a new file, staged locally too (below)
        write(root, "b/shared-new.txt", b"theirs")
    if rng.random() < 0.3:  # a folder becomes a file
        shutil.rmtree(root / "c", ignore_errors=True)
        write(root, "c", tag.encode())


def _scenario(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    repo = Repository.init(root)
    for d in FOLDERS:
        for i in range(3):
            write(root, f"{d}/f{i}.txt", f"{d} {i}".encode())
    repo.add(".")
    repo.commit("base")
    repo.switch("other", create=True)
    _change(root, rng, "theirs")
    repo.add(".")
    repo.commit("theirs")
    repo.switch("main")
    _change(root, rng, "ours")
    repo.add(".")
    repo.commit("ours")
    files = sorted(p for p in snapshot(root) if not p.startswith(".dsrepo"))
    for p in rng.sample(files, rng.randrange(3)):  # local changes, some in the way
        write(root, p, b"local edit")
    if rng.random() < 0.4:
        write(root, "b/staged.txt", b"staged")
        repo.add("b/staged.txt")
    if rng.random() < 0.5:  # staged where theirs may add a file
        write(root, "b/shared-new.txt", b"local")
        repo.add("b/shared-new.txt")
    repo.close()


def _merger(strategy: str | None) -> Callable[[Repository], str]:
    def run(repo: Repository) -> str:
        clean = staged_is_head(repo)
        out = repo.merge("other", strategy=strategy, message="m")
        tree = repo.commit_tree(out.commit) if out.commit is not None else None
        if clean and tree is not None:  # nothing staged: the merged folders are cached again
            assert repo.worktree.index.trees.get("", (None,))[0] == tree
        check_cache(repo, repo.worktree.index)
        return f"{out.kind}: tree {tree.hex() if tree else None} changed {out.changed}"

    return run


@pytest.mark.parametrize("seed", range(30))
def test_merge_of_changed_paths_only_ends_as_the_full_comparison(
    seed: int, tmp_path: Path, identity: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _scenario(tmp_path / "r", seed)
    run = _merger(["ours", "theirs", None][seed % 3])
    got, want = fast_and_full(tmp_path / "r", run, (checkout, merging), monkeypatch)
    assert got == want
