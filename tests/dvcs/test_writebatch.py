"""Writing many files at once (dsrepo.dvcs.writebatch): one directory descriptor per folder,
results in order, and a failure midway reports every file written before it raises, so a refused
checkout can put back exactly what it changed; push and clone, whose packs are verified on the
copy threads while others are written, move no ref after a failed write and refuse damage."""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dsrepo import Repository
from dsrepo.dvcs import writebatch
from dsrepo.dvcs.errors import WouldOverwrite
from dsrepo.dvcs.paths import TEMP_PREFIX, SafeWriter
from dsrepo.errors import DsrepoError
from dsrepo.objects import layout
from dsrepo.objects.errors import CorruptObject, StorageUnavailable
from dsrepo.objects.model import TreeEntry
from dsrepo.remotes.errors import PermanentBackendError
from dsrepo.remotes.faults import BitFlipBackend
from dsrepo.remotes.urls import open_backend
from dsrepo.remotes.wrapper import BackendWrapper
from tests.dvcs.conftest import write


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.fixture
def many(repo: Repository) -> tuple[Repository, dict[str, TreeEntry]]:
    """A version of 600 small files in 12 folders (several writer groups each), plus a link."""
    for d in range(12):
        for i in range(50):
            write(repo.root, f"d{d:02}/f{i:03}.txt", f"file {d} {i}\n" * (1 + i % 7))
    os.symlink("d00/f000.txt", repo.root / "link")
    repo.add()
    repo.commit("v1")
    files = repo.flatten(repo.commit_tree(repo.head_commit()))
    return repo, files


def test_results_come_in_input_order_with_stats(
    many: tuple[Repository, dict[str, TreeEntry]], tmp_path: Path
) -> None:
    repo, files = many
    items = sorted(files.items())
    out = tmp_path / "out"
    out.mkdir()
    got = list(writebatch.write_entries(repo.store, SafeWriter(out), items, False))
    assert [p for p, _, _ in got] == [p for p, _ in items]
    for p, _e, st in got:
        assert st is not None and st.st_ino == os.lstat(out / p).st_ino
    assert files_under(out) == set(files)
    assert os.readlink(out / "link") == "d00/f000.txt"
    without = tmp_path / "without"
    without.mkdir()
    got = list(writebatch.write_entries(repo.store, SafeWriter(without), items, False, stat=False))
    assert all(st is None for _, _, st in got) and files_under(without) == set(files)


def test_a_write_failing_midway_reports_every_file_written_before_the_error(
    many: tuple[Repository, dict[str, TreeEntry]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, files = many
    real = SafeWriter.write_at
    calls = 0

    def full_disk(self: SafeWriter, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 200:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SafeWriter, "write_at", full_disk)
    out = tmp_path / "out"
    out.mkdir()
    seen: list[str] = []
    with pytest.raises(StorageUnavailable):
        for p, _e, _st in writebatch.write_entries(
            repo.store, SafeWriter(out), sorted(files.items()), False
        ):
            seen.append(p)
    assert 0 < len(seen) < len(files)
    assert files_under(out) == set(seen)  # nothing written that the caller was not told of
    assert not [p for p in out.rglob(f"{TEMP_PREFIX}*")]


def test_checkout_into_refused_midway_removes_what_it_created(
    many: tuple[Repository, dict[str, TreeEntry]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stored object damaged on disk is found while earlier groups are being written: the
    checkout refuses and removes every file it had created (none was there before)."""
    repo, files = many
    victim = files["d07/f020.txt"]
    loc = repo.store.locate(victim.id)
    assert loc is not None
    path = repo.dsdir / layout.pack_key(loc.pack)
    data = bytearray(path.read_bytes())
    data[loc.offset + 3] ^= 0x40
    os.chmod(path, 0o644)
    path.write_bytes(bytes(data))
    real = SafeWriter.write_at
    written: list[str] = []

    def spy(self: SafeWriter, dir_fd: int, relpath: str, *args: Any, **kwargs: Any) -> Any:
        written.append(relpath)
        return real(self, dir_fd, relpath, *args, **kwargs)

    monkeypatch.setattr(SafeWriter, "write_at", spy)
    into = tmp_path / "into"
    with pytest.raises(CorruptObject):
        repo.checkout("HEAD", into=into)
    assert len(written) > 100  # files before the damaged one were written, then removed
    assert files_under(into) == set()
    # a file that was there before is not this run's to remove
    write(into, "d00/f001.txt", "mine\n")
    with pytest.raises(CorruptObject):
        repo.checkout("HEAD", into=into, force=True)
    assert files_under(into) == {"d00/f001.txt"}


def test_checkout_into_keeps_equal_files_and_refuses_different_ones(
    many: tuple[Repository, dict[str, TreeEntry]], tmp_path: Path
) -> None:
    """The existing files are found from one listing per folder: equal ones are kept, a
    different one is refused, an empty or missing folder costs no look-up per file."""
    repo, files = many
    into = tmp_path / "into"
    write(into, "d03/f004.txt", (repo.root / "d03/f004.txt").read_bytes())
    (into / "d05").mkdir()
    result = repo.checkout("HEAD", into=into)
    assert result.kept == 1 and len(result.written) == len(files) - 1
    write(into, "d04/f001.txt", "changed\n")
    with pytest.raises(WouldOverwrite, match=r"d04/f001\.txt"):
        repo.checkout("HEAD", into=into)


# ---------------------------------------------------------------- push and clone, pipelined


OPEN = "dsrepo.dvcs.remote.open_backend"
"""Where a remote's backend is opened (push, fetch and clone open theirs there)."""


class _FailSecondPack(BackendWrapper):
    """The second pack written through it fails for good, after the first landed."""

    packs = 0

    def put_parts_if_absent(self, key: str, parts: Sequence[bytes | memoryview]) -> bool:
        if key.endswith(".pack"):
            type(self).packs += 1
            if type(self).packs == 2:
                raise PermanentBackendError(f"injected: cannot write {key}")
        return self.inner.put_parts_if_absent(key, parts)


def test_a_push_whose_pack_write_fails_midway_moves_no_ref(
    many: tuple[Repository, dict[str, TreeEntry]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The remote's packs are written while objects are still being verified: the second pack
    failing stops the push before any ref moves, here or there; the next push completes."""
    repo, _files = many
    remote_dir = tmp_path / "remote"
    repo.remote_add("origin", str(remote_dir))
    real_open = open_backend
    monkeypatch.setattr(_FailSecondPack, "packs", 0)
    monkeypatch.setattr(OPEN, lambda *a, **k: _FailSecondPack(real_open(*a, **k)))
    with pytest.raises(DsrepoError, match="injected"):
        repo.push("origin")
    assert _FailSecondPack.packs == 2
    assert not (remote_dir / "refs" / "heads" / "main").exists()
    assert repo.refs.resolve("refs/remotes/origin/main") is None
    monkeypatch.setattr(OPEN, real_open)
    assert repo.push("origin").ok
    clone = Repository.clone(str(remote_dir), tmp_path / "clone")
    assert (clone.root / "d11/f049.txt").read_bytes() == (repo.root / "d11/f049.txt").read_bytes()
    assert clone.fsck().ok


def test_a_clone_whose_pack_is_damaged_in_transit_is_refused(
    many: tuple[Repository, dict[str, TreeEntry]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, _files = many
    remote_dir = tmp_path / "remote"
    repo.remote_add("origin", str(remote_dir))
    assert repo.push("origin").ok
    real_open = open_backend
    monkeypatch.setattr(
        OPEN,
        lambda *a, **k: BitFlipBackend(real_open(*a, **k), lambda key: key.endswith(".pack"), 9000),
    )
    dest = tmp_path / "clone"
    with pytest.raises(DsrepoError) as info:
        Repository.clone(str(remote_dir), dest)
    assert info.value.exit_code in (7, 8)
    assert not dest.exists()  # a refused remote leaves nothing behind
