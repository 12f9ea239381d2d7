"""Streamed materialization (``checkout --into``, a clone's working copy) in batches: the order
of the walk, refusals found in a later batch, conflicts counted across batches, folders in the
way and case collisions. ``BATCH`` is made tiny so that every case spans several batches."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsrepo import Repository
from dsrepo.dvcs import materialize
from dsrepo.dvcs.errors import PathError, WouldOverwrite
from dsrepo.dvcs.history import ls_files
from dsrepo.dvcs.scan import path_sort_key
from dsrepo.errors import DsrepoError
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import TreeEntry
from tests.dvcs.test_materialize import (
    HOSTILE,
    craft,
    file_entry,
    point,
    refused_into,
    write,
)
from tests.snapshots import snapshot

# names whose order differs between a tree walk and a sort of whole paths ("a" < "a-b" <
# "a.txt" < "a/..." byte-wise, but "a/..." comes right after "a" in component order)
TRICKY = ["a/x", "a/b/y", "a.txt", "a-b", "a0", "ab/c", "b", "a/b.txt", "a/b/c/d", "z/a"]


@pytest.fixture(autouse=True)
def tiny_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(materialize, "BATCH", 2)


def _commit(repo: Repository, files: dict[str, bytes]) -> ObjectId:
    for rel, data in files.items():
        write(repo.root, rel, data)
    repo.add()
    return repo.commit("files").id


def _walk_matches_tree(repo: Repository, tree: ObjectId) -> None:
    dirs: dict[str, tuple[ObjectId, int]] = {}
    walked = list(repo.walk_in_order(tree, dirs=dirs))
    assert [p for p, _ in walked] == sorted(repo.flatten(tree), key=path_sort_key)
    assert dict(walked) == repo.flatten(tree)
    assert dirs == repo.tree_dirs(tree)


def test_walk_in_order_is_the_index_order(repo: Repository) -> None:
    cid = _commit(repo, {p: p.encode() for p in TRICKY})
    tree = repo.commit_tree(cid)
    assert tree is not None
    _walk_matches_tree(repo, tree)
    assert [e.path for e in repo.worktree.index] == [p for p, _ in repo.walk_in_order(tree)]
    # ls-files of a version streams that walk: the index's order, not a sort of the paths
    assert [f.path for f in ls_files(repo, "HEAD")] == [e.path for e in repo.worktree.index]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.sets(
        st.lists(st.sampled_from(["a", "a.b", "a-", "b", "ab"]), min_size=1, max_size=3).map(
            "/".join
        ),
        min_size=1,
        max_size=12,
    )
)
def test_walk_in_order_on_random_trees(repo: Repository, paths: set[str]) -> None:
    # a path that is another's folder cannot be a file too: keep the longer ones' folders
    folders = {p.rsplit("/", 1)[0] for p in paths if "/" in p}
    files = {
        p: p.encode() for p in paths if not any(f == p or f.startswith(p + "/") for f in folders)
    }
    entries: dict[str, list[TreeEntry]] = {}
    for p in sorted(files, key=lambda p: -p.count("/")):
        entries.setdefault(p.rpartition("/")[0], []).append(
            file_entry(repo, p.rpartition("/")[2], files[p])
        )
    _walk_matches_tree(repo, _put_nested(repo, "", entries)[0])


def _put_nested(
    repo: Repository, folder: str, entries: dict[str, list[TreeEntry]]
) -> tuple[ObjectId, int]:
    """The tree of ``folder`` and its total size, ``entries`` by folder."""
    own = list(entries.get(folder, []))
    prefix = f"{folder}/" if folder else ""
    subs = {d[len(prefix) :].split("/")[0] for d in entries if d.startswith(prefix) and d != folder}
    for name in sorted(subs):
        tid, size = _put_nested(repo, f"{prefix}{name}", entries)
        own.append(TreeEntry(name, EntryKind.TREE, size, tid))
    return repo.store.put_tree(own), sum(e.size for e in own)


def test_clone_in_batches_equals_a_checkout(repo: Repository, tmp_path: Path) -> None:
    files = {p: p.encode() * 3 for p in TRICKY}
    _commit(repo, files)
    clone = Repository.clone(str(repo.dsdir), tmp_path / "clone")
    try:
        assert snapshot(clone.root) == {p: d for p, d in files.items()}
        status = clone.status()
        assert status.clean and not status.untracked
        index = clone.worktree.index
        assert [e.path for e in index] == sorted(files, key=path_sort_key)
        tree = clone.commit_tree(clone.head_commit())
        assert tree is not None and index.tree == tree
    finally:
        clone.close()


@pytest.mark.parametrize("case", ["missing-chunk", "manifest-content", "escaping-link"])
def test_refusal_in_a_later_batch_removes_what_was_written(
    repo: Repository, tmp_path: Path, case: str
) -> None:
    _commit(repo, {f"f{i}.txt": b"%d" % i for i in range(7)})
    head = repo.head_commit()
    assert head is not None
    tree = repo.commit_tree(head)
    assert tree is not None
    # "zz..." sorts last: four batches are written before it is reached
    bad = HOSTILE[case](repo)
    bad = TreeEntry("zz" + bad.name, bad.kind, bad.size, bad.id, bad.manifest)
    point(repo, "evil", craft(repo, [*repo.store.tree_entries(tree), bad], (head,)))
    refused_into(repo, "evil", tmp_path / "into")
    point(repo, "main", repo.refs.resolve("refs/heads/evil") or head)
    dest = tmp_path / "clone"
    with pytest.raises(DsrepoError):
        Repository.clone(str(repo.dsdir), dest)
    assert not dest.exists() or {p for p in snapshot(dest) if not p.startswith(".dsrepo")} == set()


def test_conflicts_in_every_batch_are_counted_and_nothing_is_written(
    repo: Repository, tmp_path: Path
) -> None:
    _commit(repo, {f"f{i}.txt": b"new %d" % i for i in range(9)})
    into = tmp_path / "into"
    mine = {"f0.txt": b"mine 0", "f4.txt": b"mine 4", "f8.txt": b"mine 8"}
    for rel, data in mine.items():
        write(into, rel, data)
    with pytest.raises(WouldOverwrite) as info:
        repo.checkout("HEAD", into=into)
    assert str(info.value).startswith("3 file(s)")
    assert all(p in str(info.value) for p in mine)
    assert snapshot(into) == mine
    result = repo.checkout("HEAD", into=into, force=True)
    assert len(result.written) == 9 and snapshot(into)["f4.txt"] == b"new 4"
    again = repo.checkout("HEAD", into=into)
    assert again.written == [] and again.kept == 9


def test_folders_in_the_way(repo: Repository, tmp_path: Path) -> None:
    _commit(repo, {"a.txt": b"a", "b.txt": b"b", "c.txt": b"c"})
    into = tmp_path / "into"
    (into / "a.txt" / "empty" / "deeper").mkdir(parents=True)  # holds no file: replaced
    write(into, "c.txt/keep.me", "user data")  # holds a file: refused
    with pytest.raises(WouldOverwrite) as info:
        repo.checkout("HEAD", into=into)
    assert "c.txt/" in str(info.value)
    assert (into / "a.txt").is_dir() and not (into / "b.txt").exists()
    (into / "c.txt" / "keep.me").unlink()
    repo.checkout("HEAD", into=into)
    assert snapshot(into) == {"a.txt": b"a", "b.txt": b"b", "c.txt": b"c"}


def test_case_collisions_refuse_and_leave_nothing(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = [file_entry(repo, n, n.encode()) for n in ("a1", "a2", "a3", "sub")]
    sub = repo.store.put_tree([file_entry(repo, "X.txt", b"1"), file_entry(repo, "x.txt", b"2")])
    entries[3] = TreeEntry("sub", EntryKind.TREE, 2, sub)
    point(repo, "main", craft(repo, entries))
    monkeypatch.setattr(materialize, "_case_insensitive", lambda _root: True)
    into = tmp_path / "into"
    with pytest.raises(PathError) as info:
        repo.checkout("main", into=into)
    assert "sub/X.txt ~ sub/x.txt" in str(info.value)
    assert snapshot(into) == {}
