"""Whole files mapped, then copied in the kernel (dsrepo.remotes.mapped), and the directory
backend's use of them: what is written is always the bytes that were mapped (and verified)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dsrepo.remotes.directory import DirectoryBackend
from dsrepo.remotes.errors import KeyNotFound
from dsrepo.remotes.mapped import MAP_MIN, MappedFile, copy_mapped, map_file


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_small_files_are_read_large_ones_mapped(tmp_path: Path) -> None:
    small, large = os.urandom(100), os.urandom(MAP_MIN + 5)
    _write(tmp_path / "s", small)
    _write(tmp_path / "l", large)
    got = map_file(str(tmp_path / "s"))
    assert type(got) is bytes and got == small
    whole = map_file(str(tmp_path / "l"))
    assert isinstance(whole, MappedFile) and whole[:] == large
    with pytest.raises(IsADirectoryError):
        map_file(str(tmp_path))


def test_get_mapped_of_a_missing_key_or_a_folder_is_not_found(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path)
    (tmp_path / "folder").mkdir()
    for key in ("absent", "folder"):
        with pytest.raises(KeyNotFound):
            backend.get_mapped(key)


def test_a_mapped_file_is_copied_whole_in_the_kernel(tmp_path: Path) -> None:
    data = os.urandom(MAP_MIN * 2 + 3)
    _write(tmp_path / "src", data)
    whole = map_file(str(tmp_path / "src"))
    assert isinstance(whole, MappedFile)
    with open(tmp_path / "out", "wb") as out:
        assert copy_mapped(whole, out.fileno()) == len(data)
    assert (tmp_path / "out").read_bytes() == data


def _backend_with_mapped_pack(tmp_path: Path) -> tuple[DirectoryBackend, MappedFile, bytes]:
    src = DirectoryBackend(tmp_path / "src", create=True)
    data = os.urandom(MAP_MIN + 100)
    src.put("packs/p.pack", data)
    whole = src.get_mapped("packs/p.pack")
    assert isinstance(whole, MappedFile)
    return DirectoryBackend(tmp_path / "dst", create=True), whole, data


def test_a_replaced_source_file_is_not_copied_the_mapping_is_written(tmp_path: Path) -> None:
    """The path now names another file of the same size: the kernel copy would write bytes
    nobody verified, so the backend writes what was mapped."""
    dst, whole, data = _backend_with_mapped_pack(tmp_path)
    other = tmp_path / "other"
    _write(other, os.urandom(len(data)))
    os.replace(other, whole.path)
    assert dst.put_parts_if_absent("packs/p.pack", [memoryview(whole)])
    assert dst.get("packs/p.pack") == data


@pytest.mark.parametrize("refusal", ["at once", "halfway"])
def test_when_the_kernel_refuses_the_rest_is_written_from_the_mapping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: str
) -> None:
    dst, whole, data = _backend_with_mapped_pack(tmp_path)
    real = os.copy_file_range
    calls: list[int] = []

    def refusing(src: int, out: int, count: int, offset_src: int | None = None) -> int:
        calls.append(count)
        if refusal == "halfway" and len(calls) == 1:
            return real(src, out, count // 2, offset_src)
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(os, "copy_file_range", refusing)
    assert dst.put_parts_if_absent("packs/p.pack", [memoryview(whole)])
    assert dst.get("packs/p.pack") == data and calls


def test_another_kernel_error_is_the_writes_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dst, whole, _ = _backend_with_mapped_pack(tmp_path)

    def full(src: int, out: int, count: int, offset_src: int | None = None) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "copy_file_range", full)
    with pytest.raises(Exception, match="No space left"):
        dst.put_parts_if_absent("packs/p.pack", [memoryview(whole)])
    assert not [p for p in (tmp_path / "dst").rglob("*") if p.is_file()]  # no temp file left
