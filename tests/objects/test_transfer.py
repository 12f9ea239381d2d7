"""Copying objects between two object stores (dsrepo.objects.transfer), over in-memory backends."""

from __future__ import annotations

import itertools
import os
import random
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from dsrepo.objects import layout, transfer
from dsrepo.objects.chunking import ChunkerParams, RepoFormat
from dsrepo.objects.errors import CorruptObject, ObjectNotFound
from dsrepo.objects.ids import IdArray, ObjectId, hash_data
from dsrepo.objects.locindex import LocationIndex
from dsrepo.objects.model import ObjectType
from dsrepo.objects.pack import PackClass
from dsrepo.objects.store import ObjectStore
from dsrepo.objects.transfer import (
    FETCH_POLICY,
    PUSH_POLICY,
    CopyPolicy,
    Located,
    copy_metadata,
    copy_objects,
)
from dsrepo.remotes import directory
from dsrepo.remotes.counting import CountingBackend
from dsrepo.remotes.directory import DirectoryBackend
from dsrepo.remotes.errors import PermanentBackendError
from dsrepo.remotes.mapped import MappedFile, copy_mapped
from dsrepo.remotes.memory import MemoryBackend

FMT = RepoFormat(chunker=ChunkerParams())


def make_store(pack_target: int = 1 << 20) -> tuple[ObjectStore, CountingBackend]:
    backend = CountingBackend(MemoryBackend())
    ObjectStore.initialize(backend, FMT)
    return ObjectStore(backend, LocationIndex(None), FMT, pack_target=pack_target), backend


def fill(store: ObjectStore, n: int, size: int, seed: int = 0) -> list[ObjectId]:
    ids = [store.put_chunk(os.urandom(size)) for _ in range(n)]
    store.flush()
    return ids


def test_copies_exactly_what_the_destination_lacks_and_verifies_it() -> None:
    src, _ = make_store()
    dst, dst_backend = make_store()
    ids = fill(src, 50, 10_000)
    for oid in ids[:10]:  # the destination already has some
        dst.put_chunk(src.get_raw(oid)[1])
    dst.flush()
    before = dst_backend.bytes_sent
    stats = copy_objects(src, dst, ids, policy=PUSH_POLICY)  # not all wanted: by ranges
    assert stats.objects == 40
    assert dst.missing(ids) == set()
    for oid in ids:
        assert dst.get_raw(oid)[0] == ObjectType.CHUNK  # re-hashed on read
    assert dst_backend.bytes_sent - before < 40 * 10_000 * 1.1 + 64 * 1024
    assert copy_objects(src, dst, ids).objects == 0  # nothing left to copy


def test_a_pack_wanted_whole_is_kept_as_is() -> None:
    src, _ = make_store()
    dst, _ = make_store()
    ids = fill(src, 20, 20_000)
    (pack,) = src.pack_names()
    stats = copy_objects(src, dst, ids, policy=FETCH_POLICY)
    assert dst.pack_names() == {pack}  # adopted under its own name, not re-packed
    assert stats.packs == 1 and stats.objects == 20


def test_a_pack_wanted_in_part_is_read_by_ranges_and_repacked() -> None:
    src, src_backend = make_store()
    dst, _ = make_store()
    ids = fill(src, 40, 20_000)
    (pack,) = src.pack_names()
    gets_before = src_backend.requests["get"]
    copy_objects(src, dst, ids[:5], policy=PUSH_POLICY)  # a small share: ranges
    assert pack not in dst.pack_names()
    assert dst.missing(ids[:5]) == set() and dst.missing(ids[5:]) == set(ids[5:])
    assert src_backend.requests["get"] - gets_before <= 5  # coalesced, not one per object


@pytest.mark.parametrize(("minimum", "gets"), [(0, 2), (1 << 20, 1)])
def test_whole_pack_minimum_size(minimum: int, gets: int) -> None:
    src, src_backend = make_store()
    dst, _ = make_store()
    ids = fill(src, 4, 1000)
    before = src_backend.requests["get"]
    copy_objects(src, dst, ids, policy=CopyPolicy(whole_pack_share=1.0, whole_pack_min=minimum))
    # whole: the pack and its index; too small to go whole: one range read of the records
    assert src_backend.requests["get"] - before == gets
    assert dst.missing(ids) == set()


def test_a_corrupt_source_object_is_refused_and_nothing_is_kept() -> None:
    src, _ = make_store()
    dst, _ = make_store()
    ids = fill(src, 10, 5000)
    (pack,) = src.pack_names()
    raw = bytearray(src.backend.get(layout.pack_key(pack)))
    loc = src.locate(ids[3])
    assert loc is not None
    raw[loc.offset + 10] ^= 0x01
    src.backend.put(layout.pack_key(pack), bytes(raw))
    for policy in (FETCH_POLICY, PUSH_POLICY):
        with pytest.raises(CorruptObject, match=ids[3].hex()):
            copy_objects(src, dst, ids, policy=policy)
        assert dst.pack_names() == set()  # flushed nothing: no ref could name a bad object


def _directory_store(root: Path) -> ObjectStore:
    backend = DirectoryBackend(root, create=True)
    ObjectStore.initialize(backend, FMT)
    return ObjectStore(backend, LocationIndex(None), FMT, pack_target=4 << 20)


def test_between_directories_a_whole_pack_is_mapped_verified_and_copied_in_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pack taken whole from a local directory is verified through a mapping of its file and
    written with copy_file_range; a byte damaged in that file is still refused."""
    src, dst = _directory_store(tmp_path / "src"), _directory_store(tmp_path / "dst")
    ids = fill(src, 60, 30_000)
    (pack,) = src.pack_names()
    kernel: list[int] = []
    real = copy_mapped

    def spy(whole: MappedFile, out: int) -> int:
        kernel.append(real(whole, out))
        return kernel[-1]

    monkeypatch.setattr(directory, "copy_mapped", spy)
    copy_objects(src, dst, ids, policy=FETCH_POLICY)
    data = src.backend.get(layout.pack_key(pack))
    assert dst.pack_names() == {pack} and kernel == [len(data)]
    assert dst.backend.get(layout.pack_key(pack)) == data
    assert all(dst.get_raw(oid)[0] == ObjectType.CHUNK for oid in ids)
    loc = src.locate(ids[7])
    assert loc is not None
    damaged = bytearray(data)
    damaged[loc.offset + 3] ^= 0x01
    src.backend.put(layout.pack_key(pack), bytes(damaged))  # a new file under the same name
    again = _directory_store(tmp_path / "again")
    with pytest.raises(CorruptObject, match=ids[7].hex()):
        copy_objects(src, again, ids, policy=FETCH_POLICY)
    assert again.pack_names() == set() and len(kernel) == 1


def test_an_object_the_source_lacks_is_named() -> None:
    src, _ = make_store()
    dst, _ = make_store()
    ids = fill(src, 3, 100)
    ghost = ObjectId(bytes(32))
    with pytest.raises(ObjectNotFound, match=ghost.hex()):
        copy_objects(src, dst, [*ids, ghost])


def test_progress_reaches_the_total_and_never_goes_back() -> None:
    src, _ = make_store(pack_target=64 * 1024)
    dst, _ = make_store()
    ids = fill(src, 60, 8000)
    seen: list[tuple[int, int]] = []
    copy_objects(src, dst, ids, jobs=2, progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1][0] == seen[-1][1] > 0
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(seen))


def test_copy_metadata_moves_only_structured_objects() -> None:
    from dsrepo.objects.kinds import EntryKind
    from dsrepo.objects.model import TreeEntry

    src, _ = make_store()
    dst, _ = make_store()
    chunk = src.put_chunk(b"data" * 100)
    tree = src.put_tree([TreeEntry("a", EntryKind.FILE, 400, chunk)])
    src.flush()
    assert copy_metadata(src, dst) == 1
    assert dst.has(tree) and not dst.has(chunk)
    assert copy_metadata(src, dst) == 0


# ---------------------------------------------------------------- verifying on the pool threads


def _compressible(i: int, size: int) -> bytes:
    return random.Random(i).randbytes(size // 2).hex().encode()  # hex text: zstd halves it


@pytest.mark.parametrize("policy", [FETCH_POLICY, PUSH_POLICY])
def test_compressed_objects_verified_on_several_threads_arrive_intact(policy: CopyPolicy) -> None:
    """Verification runs on the pool threads, each with its own zstd contexts (one context used
    by two threads at once returns wrong bytes, which would be refused as corrupt)."""
    src, _ = make_store(pack_target=64 * 1024)
    dst, _ = make_store(pack_target=64 * 1024)
    ids = [src.put_chunk(_compressible(i, 3000)) for i in range(1000)]
    src.flush()
    assert len(src.pack_names()) > 4
    stats = copy_objects(src, dst, ids, policy=policy, jobs=8)
    assert stats.objects == len(ids)
    for i, oid in enumerate(ids):
        assert dst.get_raw(oid) == (ObjectType.CHUNK, _compressible(i, 3000))


@pytest.mark.parametrize("policy", [FETCH_POLICY, PUSH_POLICY])
def test_an_object_corrupted_in_one_of_many_packs_is_refused(policy: CopyPolicy) -> None:
    """Packs verified in parallel: the damaged object is refused, never stored; whatever the
    destination kept (packs sealed before the error land whole) verifies object by object."""
    src, _ = make_store(pack_target=64 * 1024)
    dst, _ = make_store(pack_target=64 * 1024)
    ids = fill(src, 120, 5000)
    victim = ids[77]
    loc = src.locate(victim)
    assert loc is not None
    raw = bytearray(src.backend.get(layout.pack_key(loc.pack)))
    raw[loc.offset + 10] ^= 0x01
    src.backend.put(layout.pack_key(loc.pack), bytes(raw))
    with pytest.raises(CorruptObject, match=victim.hex()):
        copy_objects(src, dst, ids, policy=policy, jobs=4)
    assert not dst.has(victim)
    for name in dst.pack_names():
        for oid, _ in dst.pack_objects(name):
            dst.get_raw(oid)  # verified on read: raises if anything unverified got in


class _FailNthPack(MemoryBackend):
    """A memory backend whose ``n``-th pack write fails for good (a full disk, a lost server)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def put_parts_if_absent(self, key: str, parts: Sequence[bytes | memoryview]) -> bool:
        if key.endswith(".pack"):
            self.n -= 1
            if self.n == 0:
                raise PermanentBackendError(f"injected: cannot write {key}")
        return super().put_parts_if_absent(key, parts)


@pytest.mark.parametrize("policy", [FETCH_POLICY, PUSH_POLICY])
def test_a_pack_write_failing_midway_leaves_no_index_naming_a_missing_pack(
    policy: CopyPolicy,
) -> None:
    """The writers run while objects are still being verified: a write that fails stops the
    copy with its error, and every pack the destination indexes is complete (data, then index):
    a ref could never be made to name an object that is not durably stored."""
    src, _ = make_store(pack_target=64 * 1024)
    backend = _FailNthPack(3)
    ObjectStore.initialize(backend, FMT)
    dst = ObjectStore(backend, LocationIndex(None), FMT, pack_target=64 * 1024)
    ids = fill(src, 150, 5000)
    with pytest.raises(PermanentBackendError, match="injected"):
        copy_objects(src, dst, ids, policy=policy, jobs=4)
    for info in backend.list(layout.PACKS_PREFIX):
        if info.key.endswith(".idx"):  # an index is written only after its pack
            assert backend.stat(info.key.removesuffix(".idx") + ".pack")
    reopened = ObjectStore(backend, LocationIndex(None), FMT)
    reopened.sync_index()
    for name in reopened.pack_names():
        for oid, _ in reopened.pack_objects(name):
            reopened.get_raw(oid)
    # the next run completes the copy
    copy_objects(src, reopened, ids, policy=policy)
    assert reopened.missing(ids) == set()


def test_located_objects_that_went_stale_are_looked_up_again() -> None:
    """A push passes the locations its walk found; if a collection moved the objects since,
    the copy finds them again instead of failing on the stale pack."""
    src, _ = make_store()
    dst, _ = make_store()
    ids = fill(src, 10, 5_000)
    real = src.locate_many(ids)
    stale = Located((oid, loc._replace(pack="0" * 64)) for oid, loc in real.items())
    stats = copy_objects(src, dst, [], policy=PUSH_POLICY, located=stale)
    assert stats.objects == 10 and dst.missing(ids) == set()


def test_located_objects_are_copied_once_and_only_those_the_destination_lacks() -> None:
    src, _ = make_store()
    dst, _ = make_store()
    ids = fill(src, 12, 3_000)
    for oid in ids[:4]:
        dst.put_chunk(src.get_raw(oid)[1])
    dst.flush()
    located = Located(src.locate_many(ids).items())
    located.add(src.locate_many(ids[5:]).items())  # met twice by the walk
    assert sorted(located.ids()) == sorted(ids)
    stats = copy_objects(src, dst, ids[3:7], policy=PUSH_POLICY, located=located)
    assert stats.objects == 8 and dst.missing(ids) == set()


def test_an_empty_destination_is_not_asked_what_it_lacks() -> None:
    """Into a store holding nothing (a first push, a clone) every located object is lacking,
    found without probing the index for ids; one object buffered or flushed there makes it ask
    again."""
    src, _ = make_store()
    ids = fill(src, 12, 3_000)
    located = Located(src.locate_many(ids).items())
    dst, _ = make_store()
    probes: list[str] = []
    dst.index._db.set_trace_callback(lambda sql: probes.append(sql) if " IN (" in sql else None)
    assert dst.is_empty()
    assert sorted(located.lacking(dst).ids()) == sorted(ids)
    assert dst.missing(ids) == set(ids) and not probes
    dst.put_chunk(src.get_raw(ids[0])[1])  # buffered only: the store is no longer empty
    assert not dst.is_empty()
    assert dst.missing(ids) == set(ids[1:]) and not probes  # the buffer answers, not the index
    assert sorted(located.lacking(dst).ids()) == sorted(ids[1:])
    dst.flush()
    assert not dst.is_empty() and dst.missing(ids) == set(ids[1:]) and probes


@pytest.mark.parametrize("policy", [CopyPolicy(whole_pack_share=1.0), PUSH_POLICY])
def test_objects_of_a_pack_deleted_while_copied_are_found_where_they_moved(
    policy: CopyPolicy,
) -> None:
    """A collection copies a pack's live objects elsewhere, then deletes it, while a copy that
    planned it (whole, or by ranges) runs: the copy finds them in their new pack."""
    src, backend = make_store()
    dst, _ = make_store()
    ids = fill(src, 12, 5_000)
    (old,) = src.pack_names()
    mover = ObjectStore(backend, LocationIndex(None), FMT)
    for oid in ids:
        mover.put_chunk(src.get_raw(oid)[1])
    mover.put_chunk(b"salt: a pack named unlike the old one")
    mover.flush()
    backend.delete(layout.pack_key(old))  # src's cache still lists it
    backend.delete(layout.index_key(old))
    stats = copy_objects(src, dst, ids, policy=policy)
    assert stats.objects >= 12 and dst.missing(ids) == set()
    assert old not in src.pack_names()  # synced


def test_pack_bytes_is_the_sum_of_the_stored_sizes_in_the_pack_index() -> None:
    src, _ = make_store()
    fill(src, 7, 3_000)
    (pack,) = src.pack_names()
    assert src.index.pack_bytes(pack) == sum(loc.stored_size for _, loc in src.pack_objects(pack))
    assert src.index.pack_bytes("f" * 64) == 0


def test_a_location_cache_of_schema_1_is_rebuilt(tmp_path: Path) -> None:
    """Version 1 lacked ``packs.bytes``: such a file is another schema, deleted and refilled."""
    db = sqlite3.connect(tmp_path / "objects.sqlite")
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE packs (no INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,"
        " class INTEGER NOT NULL, count INTEGER NOT NULL);"
        "CREATE TABLE objects (id BLOB PRIMARY KEY, pack INTEGER NOT NULL,"
        " offset INTEGER NOT NULL, stored INTEGER NOT NULL, raw INTEGER NOT NULL,"
        " type INTEGER NOT NULL, flags INTEGER NOT NULL) WITHOUT ROWID;"
        "INSERT INTO meta VALUES ('schema', '1');"
        "INSERT INTO packs VALUES (1, 'p', 0, 1);"
    )
    db.commit()
    db.close()
    index = LocationIndex(tmp_path / "objects.sqlite")
    assert index.pack_names() == set() and index.mode == "file"
    index.add_pack("q", PackClass.DATA, [])
    assert index.pack_bytes("q") == 0 and index.pack_names() == {"q"}


def test_a_copy_in_several_slices_still_takes_packs_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """Objects are located a slice at a time (memory), but planned together: a pack split by a
    slice boundary is still taken whole (once), and progress reaches its total."""
    monkeypatch.setattr(transfer, "COPY_SLICE", 7)
    src, _ = make_store(pack_target=60_000)
    dst, _ = make_store()
    ids = fill(src, 30, 5_000)
    assert len(src.pack_names()) > 2
    seen: list[tuple[int, int]] = []
    stats = copy_objects(
        src,
        dst,
        ids,
        policy=CopyPolicy(whole_pack_share=1.0),
        progress=lambda d, t: seen.append((d, t)),
    )
    assert stats.objects == 30 and dst.missing(ids) == set()
    assert dst.pack_names() == src.pack_names()  # every pack whole, none re-packed
    assert all(dst.get_raw(oid)[0] == ObjectType.CHUNK for oid in ids)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] == seen[-1][1]
    assert copy_objects(src, dst, ids).objects == 0


def test_ids_repeated_across_slices_are_copied_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same chunk met at many paths (duplicate files) is not deduplicated up front (a dict
    of a million ids): within a slice by its order, across slices because the destination
    already holds what the slices before stored."""
    monkeypatch.setattr(transfer, "COPY_SLICE", 4)
    src, _ = make_store()
    dst, _ = make_store()
    ids = fill(src, 6, 3_000)
    repeated = IdArray([*ids, *reversed(ids), ids[0], ids[0], ids[0]])
    stats = copy_objects(src, dst, repeated, policy=FETCH_POLICY)
    assert stats.objects == 6 and dst.missing(ids) == set()


def test_id_array_packs_ids_and_gives_them_back() -> None:
    ids = [hash_data(b"%d" % i) for i in range(5)]
    arr = IdArray(ids[:3])
    arr.append(ids[3])
    arr.extend(ids[4:])
    assert len(arr) == 5 and list(arr) == ids and arr[-1] == ids[4] and arr[1] == ids[1]
    assert arr[1:4] == ids[1:4] and arr[::2] == ids[::2] and arr[9:] == []
    assert ids[2] in arr and arr.index(ids[3]) == 3
    with pytest.raises(IndexError):
        arr[5]
    with pytest.raises(ValueError, match="32 bytes"):
        arr.append(b"short")
