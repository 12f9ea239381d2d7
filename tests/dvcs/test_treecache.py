"""The index's tree cache (:mod:`dsrepo.dvcs.treecache`): after any sequence of add, rm, mv,
commit, checkout, merge and restore, the trees a commit would record from the cache equal a full
rebuild from the entries, every cached directory equals the rebuild's, and the staged changes
found by descending only where cached ids differ equal a flat diff with HEAD. And gc keeps the
cached trees."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from dsrepo import Repository
from dsrepo.dvcs.commits import write_tree
from dsrepo.dvcs.errors import NothingToCommit
from dsrepo.dvcs.mergestate import merge_heads_in_progress
from dsrepo.dvcs.stagingindex import StagingIndex
from dsrepo.dvcs.treecache import staged_changes, write_index_tree
from dsrepo.dvcs.worktree import files_from_index
from dsrepo.errors import DsrepoError
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from tests.dvcs.conftest import write

# "d/e" is both a file and a folder (of d/e/f, d/e/g): writing one replaces the other
PATHS = ["a", "a.b", "a-b/c", "d/e", "d/e/f", "d/e/g", "d/h", "x/y/z/w"]
TARGETS = [".", ".", "a-b", "d", "x", *PATHS]
CONTENTS = [b"", b"1", b"22", b"333", b"other 22"]
BRANCHES = ["b1", "b2"]


def rebuild(repo: Repository, index: StagingIndex) -> ObjectId:
    """The root tree of the staged entries, built from scratch."""
    return write_tree(repo.store, files_from_index(index.entries.values()))


def check_cache(repo: Repository, index: StagingIndex) -> None:
    """The invariant: cache-built trees and cache-pruned diffs equal the plain ones."""
    full = rebuild(repo, index)
    dirs = repo.tree_dirs(full)  # every directory of the full rebuild: (tree id, size)
    for d, cached in index.trees.items():
        assert dirs.get(d) == cached, f"stale cache for {d!r}"
    assert write_index_tree(repo.store, index) == full
    for d, cached in index.trees.items():
        assert dirs.get(d) == cached, f"wrong cache for {d!r} after a write"
    head_tree = repo.commit_tree(repo.head_commit())
    got = staged_changes(repo, index, head_tree)
    head = repo.flatten(head_tree)
    mine = {e.path: e for e in index}
    assert sorted(got.added) == sorted(p for p in mine if p not in head)
    assert sorted(got.deleted) == sorted(p for p in head if p not in mine)
    assert sorted(got.modified) == sorted(
        p
        for p, e in mine.items()
        if p in head and (e.kind, e.content_id) != (head[p].kind, head[p].id)
    )
    repo.store.flush()


class TreeCacheMachine(RuleBasedStateMachine):
    commits = Bundle("commits")

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="treecache-"))
        self.repo = Repository.init(self.tmp / "data")
        self.root = self.repo.root

    def teardown(self) -> None:
        self.repo.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @initialize(files=st.dictionaries(st.sampled_from(PATHS), st.sampled_from(CONTENTS)))
    def first_commit(self, files: dict[str, bytes]) -> None:
        """Start from a commit (so there are cached trees to invalidate), or from nothing."""
        for path, data in files.items():
            self.write_file(path, data)
        if files:
            self.add(".")
            self._commit()

    # ---- the working copy

    def _clear_way(self, rel: str) -> None:
        """Make room for a file at ``rel``: a folder there goes, a file on its way goes."""
        full = self.root / rel
        if full.is_dir() and not full.is_symlink():
            shutil.rmtree(full)
        parent = full.parent
        while parent != self.root:
            if parent.is_file() or parent.is_symlink():
                parent.unlink()
            parent = parent.parent

    def write_file(self, path: str, data: bytes) -> None:
        self._clear_way(path)
        write(self.root, path, data)

    @rule(
        how=st.sampled_from(["write", "write", "write", "delete", "chmod"]),
        path=st.sampled_from(PATHS),
        data=st.sampled_from(CONTENTS),
        and_add=st.booleans(),
    )
    def change(self, how: str, path: str, data: bytes, and_add: bool) -> None:
        full = self.root / path
        if how == "write":
            self.write_file(path, data)
        elif full.is_file():
            if how == "delete":
                full.unlink()
            else:
                os.chmod(full, full.stat().st_mode ^ 0o100)
        if and_add:
            self.add(path)

    # ---- the index

    @rule(where=st.sampled_from(TARGETS))
    def add(self, where: str) -> None:
        with contextlib.suppress(DsrepoError):  # a path that is nowhere
            self.repo.add(where)

    @rule(where=st.sampled_from(TARGETS))
    def rm_cached(self, where: str) -> None:
        with contextlib.suppress(DsrepoError):  # not tracked
            self.repo.rm(where, cached=True)

    @rule(src=st.sampled_from(TARGETS[1:]), dst=st.sampled_from(["m", "n/o", "d", *PATHS]))
    def mv(self, src: str, dst: str) -> None:
        with contextlib.suppress(DsrepoError):  # not tracked, into itself, destination exists
            self.repo.mv(src, dst)

    @rule(where=st.sampled_from(TARGETS))
    def restore_staged(self, where: str) -> None:
        with contextlib.suppress(DsrepoError):  # nothing matches, no commit yet
            self.repo.restore(where, staged=True, cwd=self.root)

    # ---- history

    @rule(target=commits, all_tracked=st.booleans())
    def commit(self, all_tracked: bool) -> ObjectId | None:
        """``all_tracked``: commit -a, which stages every tracked change first."""
        return self._commit(all_tracked)

    def _commit(self, all_tracked: bool = False) -> ObjectId | None:
        try:
            return self.repo.commit("step", all=all_tracked).id
        except NothingToCommit:
            return self.repo.head_commit()

    @rule(name=st.sampled_from(BRANCHES))
    def branch(self, name: str) -> None:
        with contextlib.suppress(DsrepoError):  # exists, or no commit yet
            self.repo.branch(name)

    @rule(name=st.sampled_from(["main", *BRANCHES]), force=st.booleans())
    def checkout_branch(self, name: str, force: bool) -> None:
        """Without force, changes to files the switch leaves alone are carried over."""
        with contextlib.suppress(DsrepoError):  # no such branch, changes or files in the way
            self.repo.checkout(name, force=force)

    @rule(commit=commits, force=st.booleans())
    def checkout_commit(self, commit: ObjectId | None, force: bool) -> None:
        if commit is not None:
            with contextlib.suppress(DsrepoError):  # changes or untracked files in the way
                self.repo.checkout(commit.hex(), force=force)

    @rule(name=st.sampled_from(["main", *BRANCHES]))
    def merge(self, name: str) -> None:
        try:
            self.repo.merge(name)
        except DsrepoError:  # conflicts, local changes in the way, unknown branch...
            if merge_heads_in_progress(self.repo):
                self.repo.merge_abort()

    @rule()
    def status(self) -> None:
        """Refreshes stats it finds changed with the same content, and saves them."""
        self.repo.status()

    @rule()
    def reopen(self) -> None:
        """A new process: the cache is what was saved."""
        self.repo.close()
        self.repo = Repository.open(self.root)

    @invariant()
    def cache_agrees_with_full_rebuilds(self) -> None:
        check_cache(self.repo, self.repo.worktree.index)

    @invariant()
    def saved_cache_agrees_too(self) -> None:
        check_cache(self.repo, StagingIndex(self.repo.dsdir / "index"))


def test_tree_cache_against_full_rebuilds(identity: Path) -> None:
    run_state_machine_as_test(
        TreeCacheMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


# ---------------------------------------------------------------- directed cases


def test_staged_changes_across_file_and_folder_swaps(repo: Repository) -> None:
    write(repo.root, "d/e/f", "f")
    write(repo.root, "d/h", "h")
    write(repo.root, "k", "k")
    repo.add()
    repo.commit("v1")
    shutil.rmtree(repo.root / "d/e")
    write(repo.root, "d/e", "now a file")
    (repo.root / "k").unlink()
    write(repo.root, "k/in", "now a folder")
    repo.add()
    index = repo.worktree.index
    assert "d" not in index.trees and "" not in index.trees
    got = staged_changes(repo, index, repo.commit_tree(repo.head_commit()))
    assert (sorted(got.added), sorted(got.modified), sorted(got.deleted)) == (
        ["d/e", "k/in"],
        [],
        ["d/e/f", "k"],
    )
    check_cache(repo, index)
    tree = repo.commit("v2").commit.tree
    assert tree == rebuild(repo, repo.worktree.index)
    assert {p: e.kind for p, e in repo.flatten(tree).items()} == {
        "d/e": EntryKind.FILE,
        "d/h": EntryKind.FILE,
        "k/in": EntryKind.FILE,
    }


def test_an_unchanged_folder_is_not_opened(
    repo: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        write(repo.root, f"big/{i}/x", str(i))
    write(repo.root, "small/y", "y")
    repo.add()
    repo.commit("v1")
    write(repo.root, "small/y", "y2")
    repo.add()
    index = repo.worktree.index
    assert "big" in index.trees and "small" not in index.trees
    opened: list[ObjectId] = []
    real = repo.store.tree_entries

    def tree_entries(tid: ObjectId) -> object:
        opened.append(tid)
        return real(tid)

    monkeypatch.setattr(repo.store, "tree_entries", tree_entries)
    got = staged_changes(repo, index, repo.commit_tree(repo.head_commit()))
    assert got.modified == ["small/y"] and got.added == got.deleted == []
    assert index.trees["big"][0] not in opened
    assert len(opened) == 2  # the root and small/


def test_gc_keeps_the_cached_trees(repo: Repository) -> None:
    write(repo.root, "a.txt", "a1")
    write(repo.root, "d/b.txt", "b1")
    write(repo.root, "d/e/c.txt", "c1")
    repo.add()
    first = repo.commit("v1").id
    write(repo.root, "d/e/c.txt", "c2")
    repo.add()
    repo.commit("v2")
    # commit --amend: main back to v1, the index still holds v2's entries and cached trees;
    # then a change at the top invalidates the root, leaving "d" cached on its own
    repo.update_ref("refs/heads/main", first.hex(), check_old=False)
    write(repo.root, "a.txt", "a2")
    repo.add()
    cached = dict(repo.worktree.index.trees)
    assert "d" in cached and "" not in cached
    repo.reflog_expire(expire="now")
    repo.gc(prune="now")
    with Repository.open(repo.root) as fresh:  # what gc left, as a new process sees it
        assert fresh.worktree.index.trees == cached
        assert all(fresh.store.has(tid) for tid, _ in cached.values())
        tree = fresh.commit("amended").commit.tree
        assert tree == rebuild(fresh, fresh.worktree.index)
        assert fresh.flatten(tree)["d/e/c.txt"].size == 2
        report = fresh.fsck()
        assert report.ok, report.problems
