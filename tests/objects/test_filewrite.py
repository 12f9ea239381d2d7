"""Storing a batch of files (:meth:`ObjectStore.write_files`, ``add``'s path): the refs
:meth:`write_file` gives one by one, each content stored once (already stored, or twice in the
batch), large files chunked, and the batch's small files looked up in the index together."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsrepo.objects import filewrite
from dsrepo.objects.locindex import LocationIndex
from tests.objects.test_store import MiB, new_store, rand


def _files(root: Path) -> list[str]:
    contents = [b"same", b"same", b"other", rand(3 * MiB, 5), b"", rand(4000, 6), b"stored"]
    paths = []
    for i, data in enumerate(contents):
        p = root / f"f{i}"
        p.write_bytes(data)
        paths.append(str(p))
    return paths


def test_a_batch_gives_the_refs_of_write_file_and_stores_each_content_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(filewrite, "_BATCH_BYTES", 4096)  # several index queries per batch
    paths = _files(tmp_path)
    one = new_store()
    expected = [one.write_file(p) for p in paths]
    store = new_store()
    store.put_chunk(b"stored")
    store.flush()
    queries: list[int] = []
    real = LocationIndex.missing

    def spy(self: LocationIndex, oids: object) -> set[bytes]:
        got = real(self, oids)  # type: ignore[arg-type]
        queries.append(1)
        return got

    monkeypatch.setattr(LocationIndex, "missing", spy)
    one_by_one: list[bytes] = []
    real_contains = LocationIndex.contains

    def contains(self: LocationIndex, oid: bytes) -> bool:
        one_by_one.append(oid)
        return real_contains(self, oid)

    monkeypatch.setattr(LocationIndex, "contains", contains)
    before = store.stats.objects_written
    refs = store.write_files(paths)
    # every object `one` wrote but the one already stored, once
    assert store.stats.objects_written - before == one.stats.objects_written - 1
    assert one_by_one == [refs[3].manifest]  # only the large file's manifest
    assert refs == expected
    assert refs[3].manifest is not None
    assert 1 < len(queries) < len(paths)
    store.flush()
    one.flush()
    assert store.index.count() == one.index.count()  # the same objects, each once
    for p, ref in zip(paths, refs, strict=True):
        assert b"".join(store.read_chunks(ref)) == Path(p).read_bytes()
