"""The object store: dedup, chunk sharing, round trips, durability through a fresh index,
corruption detection, id prefixes, and files that cannot be read or change while read."""

from __future__ import annotations

import os
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
from blake3 import blake3

from dsrepo.objects import layout
from dsrepo.objects.chunking import ChunkerParams, RepoFormat
from dsrepo.objects.errors import (
    AmbiguousId,
    CorruptObject,
    FileChanged,
    FileReadError,
    InvalidId,
    ObjectNotFound,
)
from dsrepo.objects.ids import ObjectId, hash_data
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.locindex import LocationIndex
from dsrepo.objects.model import (
    Commit,
    Manifest,
    ObjectType,
    Signature,
    Tag,
    Tree,
    TreeEntry,
)
from dsrepo.objects.pack import PackClass
from dsrepo.objects.store import ObjectStore
from dsrepo.remotes.directory import DirectoryBackend
from dsrepo.remotes.memory import MemoryBackend

FMT = RepoFormat(ChunkerParams())
MiB = 1024 * 1024


def new_store(backend: MemoryBackend | DirectoryBackend | None = None) -> ObjectStore:
    return ObjectStore(backend if backend is not None else MemoryBackend(), LocationIndex(), FMT)


def rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def sig() -> Signature:
    return Signature("Ada", "ada@example.com", 1_800_000_000, 60)


# ---------------------------------------------------------------- dedup and chunk sharing


def test_storing_the_same_bytes_twice_adds_nothing() -> None:
    store = new_store()
    small = b"hello dataset\n" * 100
    large = rand(3 * MiB, 1)
    store.write_bytes(small)
    ref = store.write_bytes(large)
    assert ref.manifest is not None  # chunked
    before = store.stats
    assert store.write_bytes(small).content_id == hash_data(small)
    assert store.write_bytes(large) == ref
    assert store.stats == before  # nothing buffered again
    store.flush()
    count = store.index.count()
    flushed = store.stats
    # after flush the index answers "already present"
    assert store.write_bytes(large) == ref
    store.put_chunk(small)
    assert store.flush() == []
    assert store.stats == flushed
    assert store.index.count() == count


def test_write_file_twice_adds_nothing(tmp_path: Path) -> None:
    store = new_store()
    f = tmp_path / "f.bin"
    f.write_bytes(rand(2 * MiB, 2))
    ref = store.write_file(str(f))
    store.flush()
    count, stats = store.index.count(), store.stats
    assert store.write_file(str(f)) == ref
    assert store.flush() == []
    assert (store.index.count(), store.stats) == (count, stats)
    assert ref.content_id == blake3(f.read_bytes()).digest()


def test_an_insertion_in_a_large_file_shares_most_chunks() -> None:
    store = new_store()
    first = rand(4 * MiB, 3)
    mid = len(first) // 2
    second = first[:mid] + rand(100 * 1024, 4) + first[mid:]
    a = store.write_bytes(first)
    store.flush()
    written_first = store.stats.bytes_written
    assert written_first >= len(first)  # random data does not compress
    b = store.write_bytes(second)
    store.flush()
    added = store.stats.bytes_written - written_first
    assert a.content_id != b.content_id
    assert added < 0.30 * len(second), f"{added} bytes added for a 100 KiB insertion"
    ma, mb = store.get_manifest(a.manifest), store.get_manifest(b.manifest)  # type: ignore[arg-type]
    shared = {c for c, _ in ma.chunks} & {c for c, _ in mb.chunks}
    assert len(shared) >= 0.7 * len(mb.chunks)
    assert store.read_all(b) == second
    assert store.read_all(a) == first


# ---------------------------------------------------------------- round trips


def every_object_type(store: ObjectStore) -> dict[ObjectId, object]:
    chunk = b"chunk payload " * 50
    cid = store.put_chunk(chunk)
    big = store.write_bytes(rand(2 * MiB, 5))
    assert big.manifest is not None
    manifest = store.get_manifest(big.manifest)
    sub = Tree((TreeEntry("c.bin", EntryKind.FILE, len(chunk), cid),))
    sub_id = store.put(sub)
    tree = Tree(
        (
            TreeEntry("big.bin", EntryKind.FILE, big.size, big.content_id, big.manifest),
            TreeEntry("run.sh", EntryKind.EXECUTABLE, len(chunk), cid),
            TreeEntry("sub", EntryKind.TREE, len(chunk), sub_id),
        )
    )
    tree_id = store.put(tree)
    commit = Commit(tree_id, (), sig(), sig(), "first\n", {"source": "s3://raw", "n": 3})
    commit_id = store.put(commit)
    tag = Tag(commit_id, ObjectType.COMMIT, "v1", sig(), "release\n")
    tag_id = store.put(tag)
    return {
        cid: chunk,
        big.manifest: manifest,
        sub_id: sub,
        tree_id: tree,
        commit_id: commit,
        tag_id: tag,
    }


def check_objects(store: ObjectStore, objects: dict[ObjectId, object]) -> None:
    types = set()
    for oid, obj in objects.items():
        if isinstance(obj, bytes):
            t, raw = store.get_raw(oid)
            assert (t, raw) == (ObjectType.CHUNK, obj)
        else:
            assert store.get(oid) == obj
            t = store.object_type(oid)
            assert t == obj.type  # type: ignore[attr-defined]
        types.add(t)
    assert types == set(ObjectType)


def test_every_object_type_round_trips_before_and_after_flush() -> None:
    store = new_store()
    objects = every_object_type(store)
    check_objects(store, objects)  # unflushed: served from the pack builders
    names = store.flush()
    assert len(names) == 2  # one data pack, one meta pack
    store._cache.clear()
    check_objects(store, objects)


def test_a_fresh_store_reads_flushed_objects_through_sync_index() -> None:
    backend = MemoryBackend()
    ObjectStore.initialize(backend, FMT)
    store = new_store(backend)
    objects = every_object_type(store)
    store.flush()

    fresh = new_store(backend)
    assert fresh.index.count() == 0
    fresh.get_raw(next(iter(objects)))  # a miss re-lists the packs: the cache heals itself
    fresh.sync_index()
    assert fresh.index.count() == store.index.count()
    check_objects(fresh, objects)
    assert ObjectStore.read_format(backend) == FMT


def test_put_raw_checks_the_id() -> None:
    store = new_store()
    data = b"some bytes"
    store.put_raw(ObjectType.CHUNK, data, hash_data(data))
    assert store.get_raw(hash_data(data)) == (ObjectType.CHUNK, data)
    with pytest.raises(CorruptObject) as exc:
        store.put_raw(ObjectType.CHUNK, b"other bytes", hash_data(b"expected bytes"))
    assert hash_data(b"expected bytes").hex() in str(exc.value)
    assert not store.has(hash_data(b"other bytes"))


def test_unknown_id_is_not_found() -> None:
    store = new_store()
    store.put_chunk(b"x" * 100)
    store.flush()
    missing = hash_data(b"never stored")
    with pytest.raises(ObjectNotFound) as exc:
        store.get(missing)
    assert missing.hex() in str(exc.value)
    with pytest.raises(ObjectNotFound):
        store.get_raw(missing)
    with pytest.raises(ObjectNotFound):
        store.object_type(missing)
    assert not store.has(missing)


# ---------------------------------------------------------------- corruption


def flip_payload_byte(root: Path, store: ObjectStore, oid: ObjectId) -> str:
    loc = store.locate(oid)
    assert loc is not None
    pack = root / layout.pack_key(loc.pack)
    data = bytearray(pack.read_bytes())
    data[loc.offset + loc.stored_size // 2] ^= 0x01
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    return loc.pack


@pytest.mark.parametrize("kind", ["chunk", "commit"])
def test_a_flipped_byte_in_a_pack_is_reported_naming_object_and_pack(
    tmp_path: Path, kind: str
) -> None:
    backend = DirectoryBackend(tmp_path / "store", create=True)
    ObjectStore.initialize(backend, FMT)
    store = new_store(backend)
    objects = every_object_type(store)
    store.flush()
    oid = next(
        o
        for o, obj in objects.items()
        if (kind == "chunk") == isinstance(obj, bytes)
        and not isinstance(obj, (Tree, Manifest, Tag))
    )
    pack = flip_payload_byte(tmp_path / "store", store, oid)

    fresh = new_store(DirectoryBackend(tmp_path / "store"))
    fresh.sync_index()
    with pytest.raises(CorruptObject) as exc:
        if kind == "chunk":
            fresh.get_raw(oid)
        else:
            fresh.get(oid)
    assert oid.hex() in str(exc.value)
    assert pack in str(exc.value)
    # the other objects of the same pack are still readable
    for other, obj in objects.items():
        if other != oid and isinstance(obj, bytes) == (kind == "chunk"):
            if isinstance(obj, bytes):
                assert fresh.get_raw(other)[1] == obj
            else:
                assert fresh.get(other) == obj


# ---------------------------------------------------------------- id prefixes


def two_sharing_a_prefix(store: ObjectStore) -> tuple[ObjectId, ObjectId, str]:
    seen: dict[str, ObjectId] = {}
    for i in range(100_000):
        oid = hash_data(b"object %d" % i)
        p = oid.hex()[:4]
        if p in seen:
            return seen[p], oid, p
        seen[p] = oid
    raise AssertionError("no shared prefix found")


def test_prefix_resolution() -> None:
    store = new_store()
    a, b, common = two_sharing_a_prefix(store)
    data = {hash_data(b"object %d" % i): b"object %d" % i for i in range(2000)}
    for d in data.values():
        store.put_chunk(d)
    store.flush()
    assert a in data and b in data
    # a unique prefix resolves (find the shortest unique one for a)
    for n in range(5, 65):
        if not any(o != a and o.hex().startswith(a.hex()[:n]) for o in data):
            break
    assert store.resolve_prefix(a.hex()[:n]) == a
    assert store.resolve_prefix(a.hex()) == a
    with pytest.raises(AmbiguousId) as exc:
        store.resolve_prefix(common)
    assert common in str(exc.value)
    for bad in ("abc", "", "ABCD", "zzzz", "0" * 65):
        with pytest.raises(InvalidId):
            store.resolve_prefix(bad)
    with pytest.raises(ObjectNotFound):
        store.resolve_prefix(hash_data(b"never stored").hex())


def test_prefix_resolution_sees_unflushed_objects() -> None:
    store = new_store()
    a, _b, common = two_sharing_a_prefix(store)
    for i in range(2000):
        store.put_chunk(b"object %d" % i)
    assert store.resolve_prefix(a.hex()) == a  # pending, unique
    with pytest.raises(AmbiguousId):
        store.resolve_prefix(common)  # both pending
    store.flush()
    store.put_chunk(b"one more")
    with pytest.raises(AmbiguousId):
        store.resolve_prefix(common)  # both flushed, one more pending elsewhere
    c = hash_data(b"one more")
    assert store.resolve_prefix(c.hex()[:12]) == c


def test_a_pending_object_does_not_hide_an_ambiguity_with_the_index() -> None:
    store = new_store()
    a, b, common = two_sharing_a_prefix(store)
    data = {hash_data(b"object %d" % i): b"object %d" % i for i in range(2000)}
    store.put_chunk(data[a])
    store.flush()
    store.put_chunk(data[b])  # pending, shares 4 hex chars with a flushed object
    with pytest.raises(AmbiguousId):
        store.resolve_prefix(common)


# ---------------------------------------------------------------- unreadable or changing files


def test_missing_or_directory_path_is_a_file_read_error(tmp_path: Path) -> None:
    store = new_store()
    with pytest.raises(FileReadError) as exc:
        store.write_file(str(tmp_path / "missing.bin"))
    assert "missing.bin" in str(exc.value)
    (tmp_path / "adir").mkdir()
    with pytest.raises(FileReadError):
        store.write_file(str(tmp_path / "adir"))
    assert store.stats.objects_written == 0


@pytest.mark.parametrize("size", [100 * 1024, 3 * MiB], ids=["small", "chunked"])
def test_a_file_changing_while_read_raises_and_records_nothing_torn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    f = tmp_path / "growing.bin"
    f.write_bytes(rand(size, 6))
    real_fstat = os.fstat
    calls = []

    def fake_fstat(fd: int) -> object:
        st = real_fstat(fd)
        calls.append(fd)
        if len(calls) == 1:
            return st
        return SimpleNamespace(
            st_size=st.st_size, st_mtime_ns=st.st_mtime_ns + 1_000_000, st_ctime_ns=st.st_ctime_ns
        )

    store = new_store()
    monkeypatch.setattr(os, "fstat", fake_fstat)
    with pytest.raises(FileChanged) as exc:
        store.write_file(str(f))
    monkeypatch.undo()
    assert len(calls) >= 2
    assert "growing.bin" in str(exc.value)
    store.flush()
    # whatever chunks were stored, no manifest (nothing names the torn content as a file)
    types = {loc.type for _, loc in store.index.iter_objects()}
    assert ObjectType.MANIFEST not in types
    torn = blake3(f.read_bytes()).digest()
    assert not store.index.contains(torn)
    assert all(loc.type == ObjectType.CHUNK for _, loc in store.index.iter_objects(PackClass.DATA))
    # and the file stores fine once it is stable
    ref = store.write_file(str(f))
    assert ref.content_id == torn
    assert store.read_all(ref) == f.read_bytes()
