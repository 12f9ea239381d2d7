"""The directory backend: conformance kit plus its own lock, temp-file and root rules."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dsrepo.remotes.base import Backend
from dsrepo.remotes.directory import DirectoryBackend
from dsrepo.remotes.errors import (
    BackendError,
    InvalidKey,
    KeyConflict,
    KeyNotFound,
    PermanentBackendError,
)
from dsrepo.remotes.testing import BackendConformance


class TestDirectoryBackend(BackendConformance):
    def make_backend(self, tmp_path: Path) -> Backend:
        return DirectoryBackend(tmp_path / "store", create=True)


def test_missing_root(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(PermanentBackendError, match=r"nope.*does not exist") as info:
        DirectoryBackend(missing)
    assert "\n" not in str(info.value)
    assert not missing.exists()
    DirectoryBackend(missing, create=True)
    assert missing.is_dir()


def test_root_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(PermanentBackendError, match="not a directory"):
        DirectoryBackend(tmp_path / "f", create=True)


def test_stale_lock_is_reported_and_kept(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path)
    backend.put("refs/heads/main", b"old")
    lock = tmp_path / "refs" / "heads" / "main.lock"
    lock.write_bytes(b"")
    with pytest.raises(
        KeyConflict, match=r"main\.lock.*File exists.*Another process holds the lock"
    ) as info:
        backend.compare_and_swap("refs/heads/main", b"old", b"new")
    assert "\n" not in str(info.value)
    assert lock.exists()
    assert backend.get("refs/heads/main") == b"old"
    lock.unlink()
    backend.compare_and_swap("refs/heads/main", b"old", b"new")
    assert backend.get("refs/heads/main") == b"new"
    assert not lock.exists()


def test_lock_removed_after_conflict(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path)
    backend.put("r", b"v")
    with pytest.raises(KeyConflict):
        backend.compare_and_swap("r", b"other", b"w")
    assert sorted(os.listdir(tmp_path)) == ["r"]


def test_temp_and_lock_files_are_invisible(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path)
    backend.put("a/b", b"1")
    (tmp_path / "a" / ".tmp-123abc").write_bytes(b"partial")
    (tmp_path / "a" / "b.lock").write_bytes(b"")
    (tmp_path / ".tmp-top").write_bytes(b"partial")
    assert [i.key for i in backend.list()] == ["a/b"]
    assert [i.key for i in backend.list("a/")] == ["a/b"]
    for key in ["a/.tmp-123abc", "a/b.lock", "x.lock/y"]:
        with pytest.raises(InvalidKey, match="reserved"):
            backend.get(key)


def test_writes_leave_no_temp_files(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path)
    backend.put("k", b"1")
    assert backend.put_if_absent("k", b"2") is False
    assert backend.put_if_absent("j", b"2") is True
    backend.compare_and_swap("k", b"1", b"3")
    backend.compare_and_swap("n", None, b"4")
    assert sorted(os.listdir(tmp_path)) == ["j", "k", "n"]


def test_key_escaping_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    backend = DirectoryBackend(root, create=True)
    (root / "link").symlink_to(outside)
    with pytest.raises(InvalidKey, match="outside"):
        backend.get("link/secret")
    with pytest.raises(InvalidKey, match="outside"):
        backend.put("link/new", b"x")
    assert not (outside / "new").exists()
    with pytest.raises(InvalidKey):
        backend.get("../outside/secret")
    with pytest.raises(InvalidKey, match="outside"):
        backend.list("link/")
    (root / "file-link").symlink_to(outside / "secret")
    assert backend.list() == []


def test_read_only_directory_is_permanent(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores permissions")
    backend = DirectoryBackend(tmp_path)
    backend.put("d/k", b"v")
    os.chmod(tmp_path / "d", 0o555)
    try:
        with pytest.raises(PermanentBackendError, match="'d/k'"):
            backend.put("d/k", b"w")
    finally:
        os.chmod(tmp_path / "d", 0o755)
    assert backend.get("d/k") == b"v"


def test_file_and_directory_clash(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path)
    backend.put("a/b", b"1")
    assert [i.key for i in backend.list("a")] == ["a/b"]
    with pytest.raises(KeyNotFound):
        backend.stat("a")
    with pytest.raises(KeyNotFound):
        backend.get("a/b/c")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.ENOENT, KeyNotFound),
        (errno.EACCES, PermanentBackendError),
        (errno.EPERM, PermanentBackendError),
        (errno.EROFS, PermanentBackendError),
        (errno.ENOSPC, PermanentBackendError),
        (errno.EIO, BackendError),
    ],
)
def test_oserror_translation(tmp_path: Path, code: int, expected: type[BackendError]) -> None:
    backend = DirectoryBackend(tmp_path)
    err = backend._error(OSError(code, os.strerror(code)), "get", "some/key")
    assert type(err) is expected
    assert "'some/key'" in str(err) and "\n" not in str(err)
    assert not err.transient
