"""A batch written in two processes (``checkout --into``, a clone's working copy): the same files,
the child's stats in the index, and whatever fails (an error in either part, a child that dies
before or after writing), every file written is reported and a refusal leaves nothing behind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dsrepo import Repository
from dsrepo.dvcs import forking, forkwrite, materialize, writebatch
from dsrepo.dvcs.paths import TEMP_PREFIX
from dsrepo.objects.errors import CorruptObject, ObjectNotFound
from dsrepo.objects.ids import ObjectId, hash_data
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import TreeEntry
from tests.dvcs.test_materialize import craft, point, refused_into, write
from tests.objects.test_store import flip_payload_byte
from tests.snapshots import snapshot

FILES = {f"{d}/f{i:02d}.txt": f"{d} {i}\n".encode() * (i + 1) for d in "abcd" for i in range(8)}
FILES["top.txt"] = b"top\n"


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Every batch of 4 files or more is split; the sizes of the children's parts."""
    monkeypatch.setattr(forkwrite, "PARALLEL_MIN", 4)
    monkeypatch.setattr(forkwrite, "_can_fork", lambda store: True)  # pytest-xdist has threads
    sizes: list[int] = []
    real = forkwrite._cut

    def spy(items: Any) -> Any:
        parts = real(items)
        if parts is not None:
            sizes.append(len(parts[1]))
        return parts

    monkeypatch.setattr(forkwrite, "_cut", spy)
    yield sizes


def _commit(repo: Repository, files: dict[str, bytes]) -> ObjectId:
    for rel, data in files.items():
        write(repo.root, rel, data)
    (repo.root / "link").symlink_to("top.txt")
    repo.add()
    return repo.commit("files").id


def _no_temps(root: Path) -> bool:
    return not any(n.startswith(TEMP_PREFIX) for _d, _s, names in os.walk(root) for n in names)


def test_a_checkout_into_written_by_two_processes_is_the_version(
    repo: Repository, tmp_path: Path, children: list[int]
) -> None:
    _commit(repo, FILES)
    into = tmp_path / "into"
    result = repo.checkout("HEAD", into=into)
    assert children and all(n > 0 for n in children)
    got = snapshot(into)
    assert got == {**FILES, "link": FILES["top.txt"]}
    assert sorted(result.written) == sorted(got)
    assert _no_temps(into)


def test_a_clone_records_the_stat_of_the_files_the_child_wrote(
    repo: Repository, tmp_path: Path, children: list[int]
) -> None:
    _commit(repo, FILES)
    clone = Repository.clone(str(repo.dsdir), tmp_path / "clone")
    try:
        assert children
        for e in clone.worktree.index:
            st = os.lstat(clone.root / e.path)
            assert (e.ino, e.mtime_ns, e.ctime_ns) == (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
        status = clone.status()
        assert status.clean and not status.untracked
    finally:
        clone.close()


@pytest.mark.parametrize("where", ["aa", "zz"])  # in this process's part, in the child's
def test_a_refusal_in_either_part_removes_every_file_written(
    repo: Repository, tmp_path: Path, children: list[int], where: str
) -> None:
    head = _commit(repo, FILES)
    tree = repo.commit_tree(head)
    assert tree is not None
    missing = TreeEntry("f.txt", EntryKind.FILE, 3, hash_data(b"absent"))
    bad_dir = TreeEntry(where, EntryKind.TREE, 3, repo.store.put_tree([missing]))
    point(repo, "evil", craft(repo, [*repo.store.tree_entries(tree), bad_dir], (head,)))
    refused_into(repo, "evil", tmp_path / "into", ObjectNotFound)
    assert children
    assert _no_temps(tmp_path / "into")


def _write_without_report(
    store: Any, writer: Any, items: Any, allow: bool, stat: bool
) -> None:  # pragma: no cover - runs in the child
    for _ in writebatch.write_entries(store, writer, items, allow, stat=stat):
        pass
    os._exit(1)


@pytest.mark.parametrize("child", [lambda *_a: os._exit(1), _write_without_report])
def test_a_child_that_dies_leaves_its_files_to_this_process(
    repo: Repository,
    tmp_path: Path,
    children: list[int],
    monkeypatch: pytest.MonkeyPatch,
    child: Any,
) -> None:
    _commit(repo, FILES)
    monkeypatch.setattr(forkwrite, "_write_reporting", child)
    into = tmp_path / "into"
    result = repo.checkout("HEAD", into=into)
    assert children
    assert snapshot(into) == {**FILES, "link": FILES["top.txt"]}
    assert sorted(result.written) == sorted(set(result.written)) == sorted(snapshot(into))
    assert _no_temps(into)
    clone = Repository.clone(str(repo.dsdir), tmp_path / "clone")
    try:
        assert clone.status().clean
    finally:
        clone.close()


def _entry(name: str, size: int, manifest: bool = False) -> TreeEntry:
    oid = hash_data(name.encode())
    return TreeEntry(name.rpartition("/")[2], EntryKind.FILE, size, oid, oid if manifest else None)


def test_the_cut_falls_between_folders_and_keeps_big_files_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(forkwrite, "PARALLEL_MIN", 4)
    items = [(f"{d}/{i}", _entry(f"{d}/{i}", 10)) for d in "abc" for i in range(3)]
    items.append(("d/big", _entry("d/big", 1 << 30, manifest=True)))
    items.append(("e/0", _entry("e/0", 10)))
    cut = forkwrite._cut(items)
    assert cut is not None
    mine, theirs = cut
    assert ("d/big", items[9][1]) in mine
    assert sorted(mine + theirs) == sorted(items)
    folders = {p.split("/")[0] for p, _ in theirs}
    assert not folders & {p.split("/")[0] for p, _ in mine if p != "d/big"}
    small = [(f"a/{i}", _entry(f"a/{i}", 10)) for i in range(3)]
    assert forkwrite._cut(small) is None  # one folder: nothing to hand over


def test_batches_below_the_threshold_stay_in_one_process(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forkwrite, "_can_fork", lambda store: True)
    monkeypatch.setattr(materialize, "BATCH", 3)  # under PARALLEL_MIN
    started: list[int] = []
    monkeypatch.setattr(forking, "Child", lambda *a: started.append(1))
    _commit(repo, FILES)
    repo.checkout("HEAD", into=tmp_path / "into")
    assert not started
    assert snapshot(tmp_path / "into") == {**FILES, "link": FILES["top.txt"]}


def test_a_switch_of_many_files_in_two_processes_and_its_refusal(
    repo: Repository, tmp_path: Path, children: list[int]
) -> None:
    _commit(repo, FILES)
    one = {p: d.upper() for p, d in FILES.items()}
    repo.switch("two", create=True)
    for rel, data in one.items():
        write(repo.root, rel, data)
    repo.commit("two", all=True)
    repo.switch("main")
    assert snapshot(repo.root)["d/f07.txt"] == FILES["d/f07.txt"]
    repo.switch("two")  # 33 files rewritten, the child writing the later folders
    assert children
    assert snapshot(repo.root) == {**one, "link": one["top.txt"]}
    for e in repo.worktree.index:
        st = os.lstat(repo.root / e.path)
        assert (e.ino, e.mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert repo.status().clean
    repo.switch("main")
    # a byte of the last file's content flipped in its pack: found while the child streams it
    flip_payload_byte(repo.store.backend.root, repo.store, hash_data(one["d/f07.txt"]))
    children.clear()
    with pytest.raises(CorruptObject):
        repo.switch("two")
    assert children
    assert snapshot(repo.root) == {**FILES, "link": FILES["top.txt"]}
    assert repo.status().clean and repo.head_branch() in ("main", "refs/heads/main")
