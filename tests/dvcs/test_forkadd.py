"""``add`` storing files in two processes (:mod:`dsrepo.dvcs.forkadd`): the same index and
objects as one process, and whatever the child does (dies before answering, after answering,
before its packs are durable), every staged file's objects are durable when ``add`` returns, or
``add`` raises and the index is not saved."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dsrepo import Repository
from dsrepo.dvcs import forkadd, forking
from dsrepo.dvcs.errors import PathError
from dsrepo.objects.errors import FileChanged
from dsrepo.objects.store import FileRef, ObjectStore
from tests.snapshots import snapshot

FILES = {
    f"d{d}/s{s}/f{i:02d}.bin": f"{d}.{s}.{i}\n".encode() * (i + 1)
    for d in range(3)
    for s in range(4)
    for i in range(12)
}
FILES["big.bin"] = os.urandom(3 << 20)  # chunked: a manifest


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Batches of 8 files, a child from 16 files on; the pids of the children forked."""
    monkeypatch.setattr(forkadd, "PARALLEL_MIN", 16)
    monkeypatch.setattr(forkadd, "BATCH_FILES", 8)
    monkeypatch.setattr(forking, "can_fork", lambda: True)  # pytest-xdist has threads
    pids: list[int] = []
    real = forkadd._Child.__init__

    def spy(self: Any, *args: Any) -> None:
        real(self, *args)
        pids.append(self._pid)

    monkeypatch.setattr(forkadd._Child, "__init__", spy)
    yield pids


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many files each of the child's answers covered."""
    sizes: list[int] = []
    real = forkadd._Child.receive

    def spy(self: Any, wait: bool) -> list[FileRef] | None:
        got = real(self, wait)
        if got is not None:
            sizes.append(len(got))
        return got

    monkeypatch.setattr(forkadd._Child, "receive", spy)
    return sizes


def _write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (root / "d0" / "link").symlink_to("s0/f00.bin")


def _staged(repo: Repository) -> dict[str, tuple[Any, ...]]:
    return {e.path: (e.kind, e.size, e.content_id, e.manifest) for e in repo.worktree.index}


def _durable(repo: Repository) -> None:
    """Reopened, the repository reads every staged file back and fsck finds nothing wrong."""
    again = Repository.open(repo.root)
    try:
        commit = again.commit("all")
        again.checkout(commit.id.hex(), into=again.root.parent / "out")
        got = snapshot(again.root.parent / "out")
        assert got == {**FILES, "d0/link": FILES["d0/s0/f00.bin"]}
        assert again.fsck().ok
    finally:
        again.close()


def _serial(tmp_path: Path) -> dict[str, tuple[Any, ...]]:
    """The index ``add`` stages in one process (no fork, whatever the test patched)."""
    repo = Repository.init(tmp_path / "serial")
    fork_from = forkadd.PARALLEL_MIN
    forkadd.PARALLEL_MIN = 10**9  # type: ignore[misc]
    try:
        _write(repo.root, FILES)
        repo.add()
        return _staged(repo)
    finally:
        forkadd.PARALLEL_MIN = fork_from  # type: ignore[misc]
        repo.close()


def _add_and_compare(repo: Repository, tmp_path: Path, forks: list[int]) -> None:
    """``add`` forks, stages what one process stages, and every object is durable."""
    _write(repo.root, FILES)
    repo.add()
    assert forks
    assert _staged(repo) == _serial(tmp_path)
    _durable(repo)


def test_a_child_stores_part_of_an_add_and_the_index_is_a_single_process_one(
    repo: Repository, tmp_path: Path, forks: list[int], answered: list[int]
) -> None:
    _write(repo.root, FILES)
    result = repo.add()
    assert len(forks) == 1
    assert sorted(result.added) == sorted([*FILES, "d0/link"])
    assert 0 < sum(answered) < len(FILES)  # both processes stored files
    assert len(repo.store.pack_names()) >= 2
    assert _staged(repo) == _serial(tmp_path)
    _durable(repo)


def test_a_child_dying_at_once_leaves_its_batches_to_this_process(
    repo: Repository, tmp_path: Path, forks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forkadd, "_serve", lambda *a: os._exit(3))
    _add_and_compare(repo, tmp_path, forks)


def test_a_child_whose_packs_never_become_durable_is_not_relied_on(
    repo: Repository, tmp_path: Path, forks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """It answers for every batch, then dies instead of flushing: what it answered for is
    stored again here (its packs were never written)."""
    parent = os.getpid()
    real = ObjectStore.flush

    def flush(self: ObjectStore) -> list[str]:
        if os.getpid() != parent:
            os._exit(1)
        return real(self)

    monkeypatch.setattr(ObjectStore, "flush", flush)
    restored: list[str] = []
    real_restore = type(repo.worktree)._restore

    def spy(self: Any, path: str) -> None:
        restored.append(path)
        real_restore(self, path)

    monkeypatch.setattr(type(repo.worktree), "_restore", spy)
    _add_and_compare(repo, tmp_path, forks)
    assert restored


def test_a_child_dying_halfway_leaves_the_rest_to_this_process(
    repo: Repository,
    tmp_path: Path,
    forks: list[int],
    answered: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = forkadd._serve

    def serve(store: ObjectStore, root: str, rfd: int, wfd: int) -> None:
        real_write = store.write_files
        count = [0]

        def write_files(paths: list[str]) -> list[FileRef]:
            count[0] += len(paths)
            if count[0] > 12:  # after its first batch of 8
                os._exit(1)
            return real_write(paths)

        store.write_files = write_files  # type: ignore[assignment]
        real(store, root, rfd, wfd)

    monkeypatch.setattr(forkadd, "_serve", serve)
    _add_and_compare(repo, tmp_path, forks)
    assert answered == [8]


def test_a_file_changed_before_it_is_stored_again_refuses_the_add(
    repo: Repository, forks: list[int], answered: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child's packs are lost and a file it stored changed since: the add raises and the
    index is not saved (it would name content nothing stores)."""
    parent = os.getpid()
    real = ObjectStore.flush

    def flush(self: ObjectStore) -> list[str]:
        if os.getpid() != parent:  # the child: every file changes, then it dies
            for rel in FILES:
                (repo.root / rel).write_bytes(b"changed meanwhile\n")
            os._exit(1)
        return real(self)

    monkeypatch.setattr(ObjectStore, "flush", flush)
    _write(repo.root, FILES)
    with pytest.raises(FileChanged, match="changed while it was being added"):
        repo.add()
    assert answered
    again = Repository.open(repo.root)
    try:
        assert not list(again.worktree.index)
    finally:
        again.close()


def test_an_error_here_ends_the_child_and_saves_nothing(repo: Repository, forks: list[int]) -> None:
    _write(repo.root, FILES)
    (repo.root / "d2" / "s3" / "zz\\bad").write_bytes(b"x")
    with pytest.raises(PathError):
        repo.add()
    assert forks
    with pytest.raises(ChildProcessError):  # reaped: no zombie left behind
        os.waitpid(forks[0], os.WNOHANG)
    again = Repository.open(repo.root)
    try:
        assert not list(again.worktree.index)
    finally:
        again.close()


def test_few_files_are_stored_here(repo: Repository, forks: list[int]) -> None:
    _write(repo.root, {f"d0/s0/f{i:02d}.bin": b"%d" % i for i in range(14)})
    repo.add()
    assert not forks
    assert len(list(repo.worktree.index)) == 15
