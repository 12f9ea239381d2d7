"""``switch`` looks only at the paths where HEAD and the target differ (identical subtrees
unread, local changes checked path by path): it must end exactly as the full comparison of both
versions does, refusals included. Each scenario runs in two copies of one repository, one forced
down the full path, and both outcomes are compared. The tree cache either path leaves must agree
with a full rebuild; the changed-paths path must leave every folder cached when nothing was
staged (``status`` right after a pull would otherwise compare every folder)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from dsrepo import Repository
from dsrepo.dvcs import checkout
from tests.dvcs.conftest import write
from tests.dvcs.outcomes import fast_and_full, staged_is_head
from tests.dvcs.test_treecache import check_cache
from tests.snapshots import snapshot

FOLDERS = ["a", "a/deep", "b", "c"]


def _files(rng: random.Random) -> dict[str, bytes]:
    return {
        f"{d}/f{i}.txt": b"%s %d %d" % (d.encode(), i, rng.randrange(3))
        for d in FOLDERS
        for i in range(4)
    }


def _write(root: Path, files: dict[str, bytes]) -> None:
    for p, data in files.items():
        write(root, p, data)


def _scenario(root: Path, seed: int) -> None:
    """main and other share a first commit; main then changes, adds and removes files; the
    working copy on main gets local changes of every kind (some in the way of the switch)."""
    rng = random.Random(seed)
    repo = Repository.init(root)
    base = _files(rng)
    _write(root, base)
    repo.add(".")
    repo.commit("base")
    repo.branch("other")
    for p in rng.sample(sorted(base), 4):
        (root / p).write_bytes(b"changed on main " + p.encode())
    for p in rng.sample(sorted(base), 2):
        if (root / p).exists():
            (root / p).unlink()
    _write(root, {f"new/n{i}.txt": b"new %d" % i for i in range(rng.randrange(3))})
    repo.add(".")
    repo.commit("main moves on")
    # local changes: edits, deletions, staged and untracked files, some where other differs
    tracked = sorted(p for p in snapshot(root) if not p.startswith(".dsrepo"))
    for p in rng.sample(tracked, rng.randrange(3)):
        (root / p).write_bytes(b"local edit " + p.encode())
    for p in rng.sample(tracked, rng.randrange(2)):
        (root / p).unlink()
    if rng.random() < 0.5:
        _write(root, {"staged.txt": b"staged"})
        repo.add("staged.txt")
    gone = sorted(set(base) - set(tracked))
    for p in gone[: rng.randrange(len(gone) + 1)]:  # untracked, where other has a file
        (root / p).write_bytes(base[p] if rng.random() < 0.5 else b"untracked in the way")
    repo.close()


def _switch(repo: Repository) -> str:
    clean = staged_is_head(repo)
    result = repo.switch("other")
    if clean:  # nothing staged: every folder on a changed path is cached again, the top too
        assert "" in repo.worktree.index.trees
    check_cache(repo, repo.worktree.index)  # every folder it cached makes the staged entries
    return f"ok: wrote {sorted(result.written)} removed {sorted(result.removed)}"


@pytest.mark.parametrize("seed", range(24))
def test_switch_of_changed_paths_only_ends_as_the_full_comparison(
    seed: int, tmp_path: Path, identity: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _scenario(tmp_path / "r", seed)
    got, want = fast_and_full(tmp_path / "r", _switch, (checkout,), monkeypatch)
    assert got == want
