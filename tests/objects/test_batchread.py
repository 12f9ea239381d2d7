"""Reading many chunks at once (dsrepo.objects.batchread): a large file's chunks come in a few
range reads, verified; a wrong cached location is read again one by one; a manifest that lies
about a chunk's length is refused."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from dsrepo.objects.chunking import ChunkerParams, RepoFormat
from dsrepo.objects.errors import CorruptObject
from dsrepo.objects.filewrite import FileRef
from dsrepo.objects.ids import hash_data
from dsrepo.objects.locindex import LocationIndex
from dsrepo.objects.model import Manifest
from dsrepo.objects.store import ObjectStore
from dsrepo.remotes.counting import CountingBackend
from dsrepo.remotes.directory import DirectoryBackend

FMT = RepoFormat(
    chunker=ChunkerParams(min_size=4096, avg_size=16384, max_size=65536, small_file_threshold=8192)
)


def _store(root: Path) -> ObjectStore:
    backend = CountingBackend(DirectoryBackend(root, create=True))
    if not (root / "format").exists():
        ObjectStore.initialize(backend, FMT)
    return ObjectStore(backend, LocationIndex(root / "objects.sqlite"), FMT)


def _large_file(store: ObjectStore, size: int = 3 << 20) -> tuple[FileRef, bytes]:
    data = os.urandom(size)
    ref = store.write_bytes(data)
    store.flush()
    assert ref.manifest is not None
    return ref, data


def _gets(store: ObjectStore) -> int:
    assert isinstance(store.backend, CountingBackend)
    return store.backend.requests["get"]


def test_a_large_files_chunks_come_in_a_few_range_reads(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ref, data = _large_file(store)
    assert ref.manifest is not None
    chunks = len(store.get_manifest(ref.manifest).chunks)
    before = _gets(store)
    assert b"".join(store.read_chunks(ref)) == data
    assert chunks > 100 and _gets(store) - before <= 3  # one per pack and span, not per chunk


@pytest.mark.parametrize(
    "damage",
    ["UPDATE objects SET offset = offset + 1 WHERE type = 0", "DELETE FROM objects WHERE type = 0"],
)
def test_chunks_with_a_wrong_cached_location_are_read_again(tmp_path: Path, damage: str) -> None:
    ref, data = _large_file(_store(tmp_path))
    db = sqlite3.connect(tmp_path / "objects.sqlite")
    with db:
        db.execute(damage)
    db.close()
    assert b"".join(_store(tmp_path).read_chunks(ref)) == data


def test_a_manifest_that_lies_about_a_chunks_length_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    pieces = [os.urandom(10_000), os.urandom(20_000)]
    ids = [store.put_chunk(p) for p in pieces]
    content = hash_data(b"".join(pieces))
    bad = store.put(Manifest(content, 30_000, ((ids[0], 10_000), (ids[1], 19_999), (ids[1], 1))))
    store.flush()
    with pytest.raises(CorruptObject, match=f"chunk {ids[1].hex()} of manifest {bad.hex()}"):
        b"".join(store.read_chunks(FileRef(content, 30_000, bad)))
