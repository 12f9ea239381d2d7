"""The store when something around it is wrong: damaged pack record headers, a location cache that
is stale or damaged, a disk that is full or read-only.

- Every path that meets a damaged record header (fetching whole packs, copying metadata, fsck's
  pack check) reports a corruption naming the pack and the offset, never "not found".
- The location cache is a cache: rows deleted or wrong are re-derived from the pack indexes on
  the first miss or failed read; only then is an object missing or corrupt for real. A hit that
  verifies still costs one ranged read.
- A cache that cannot be written is read (or rebuilt in memory), never deleted in a loop; writes
  that the storage refuses raise one line (``no space left on device: PATH``, exit 12).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dsrepo.dvcs.config import ConfigFile
from dsrepo.dvcs.fsutil import atomic_write
from dsrepo.objects import layout
from dsrepo.objects.chunking import ChunkerParams, RepoFormat
from dsrepo.objects.errors import (
    CorruptObject,
    ObjectNotFound,
    StorageFull,
    StorageReadOnly,
    StorageUnavailable,
)
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.locindex import LocationIndex
from dsrepo.objects.model import Commit, ObjectType, Signature, TreeEntry
from dsrepo.objects.pack import RECORD_HEADER_SIZE, PackClass, decode_index
from dsrepo.objects.packcheck import check_packs
from dsrepo.objects.store import ObjectStore
from dsrepo.objects.transfer import copy_metadata, copy_objects
from dsrepo.remotes.counting import CountingBackend
from dsrepo.remotes.directory import DirectoryBackend
from dsrepo.remotes.memory import MemoryBackend

FMT = RepoFormat(ChunkerParams())


class Fixture:
    """A store over a directory with a file cache and three flushed packs of data and metadata."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path / "store"
        self.cache = tmp_path / "cache" / "objects.sqlite"
        backend = DirectoryBackend(self.root, create=True)
        ObjectStore.initialize(backend, FMT)
        store = ObjectStore(backend, LocationIndex(self.cache), FMT)
        self.chunks: dict[ObjectId, bytes] = {}
        self.commits: list[ObjectId] = []
        parents: tuple[ObjectId, ...] = ()
        for i in range(3):
            entries = []
            for j in range(4):
                data = f"file {i}.{j} ".encode() * (20 * j + 1)
                oid = store.put_chunk(data)
                self.chunks[oid] = data
                entries.append(TreeEntry(f"f{j}", EntryKind.FILE, len(data), oid))
            sig = Signature("Ada", "ada@example.com", 1_800_000_000 + i, 0)
            commit = Commit(store.put_tree(entries), parents, sig, sig, f"commit {i}\n", {})
            parents = (store.put(commit),)
            self.commits.append(parents[0])
            store.flush()
        store.close()

    def open(self, *, counting: bool = False) -> ObjectStore:
        """A fresh store, as the next command opens it (synced with the pack listing)."""
        backend: Any = DirectoryBackend(self.root)
        if counting:
            backend = CountingBackend(backend)
        store = ObjectStore(backend, LocationIndex(self.cache), FMT)
        store.sync_index()
        return store

    def sql(self, *statements: str) -> None:
        """Damage the cache behind the store's back."""
        db = sqlite3.connect(self.cache)
        for s in statements:
            db.execute(s)
        db.commit()
        db.close()

    def rows(self) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(self.cache)
        try:
            return db.execute("SELECT * FROM objects ORDER BY id").fetchall()
        finally:
            db.close()

    def pack_names(self) -> list[str]:
        return sorted(p.stem for p in (self.root / "packs").glob("*.idx"))

    def meta_pack(self) -> tuple[str, Path, list[Any]]:
        for name in self.pack_names():
            idx = (self.root / layout.index_key(name)).read_bytes()
            pack_class, entries = decode_index(idx, name)
            if pack_class == PackClass.META:
                return name, self.root / layout.pack_key(name), entries
        raise AssertionError("no meta pack")


def requests(store: ObjectStore) -> Counter[str]:
    """Requests per operation of a store opened with ``counting=True``."""
    assert isinstance(store.backend, CountingBackend)
    return store.backend.requests


@pytest.fixture
def fx(tmp_path: Path) -> Fixture:
    return Fixture(tmp_path)


def check_all(store: ObjectStore, fx: Fixture) -> None:
    for oid, data in fx.chunks.items():
        assert store.get_raw(oid) == (ObjectType.CHUNK, data)
    for cid in fx.commits:
        commit = store.get_commit(cid)
        for e in store.tree_entries(commit.tree):
            assert store.read_all(e) == fx.chunks[e.id]


# ---------------------------------------------------------------- damaged record headers

HEADER_FIELDS = {"id": 5, "type": 32, "flags": 33, "zero": 34, "stored": 36, "raw": 40}
"""Byte of each record-header field that the tests flip (docs/format.md §7)."""


def flip_header(fx: Fixture, field: str) -> tuple[str, int, ObjectId]:
    """Flip one bit of a record header in the meta pack: (pack, record offset, object)."""
    name, path, entries = fx.meta_pack()
    victim = sorted(entries, key=lambda e: e.offset)[1]
    start = victim.offset - RECORD_HEADER_SIZE
    data = bytearray(path.read_bytes())
    data[start + HEADER_FIELDS[field]] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    return name, start, victim.id


def assert_names(exc: BaseException, name: str, start: int) -> None:
    assert name in str(exc) and f"offset {start}" in str(exc), str(exc)
    assert "\n" not in str(exc)


@pytest.mark.parametrize("field", HEADER_FIELDS)
def test_a_damaged_record_header_is_corruption_naming_pack_and_offset(
    fx: Fixture, tmp_path: Path, field: str
) -> None:
    name, start, victim = flip_header(fx, field)
    store = fx.open()
    # reading the pack whole against its index (fetch, clone, get)
    with pytest.raises(CorruptObject) as exc:
        list(store.pack_records(name))
    assert_names(exc.value, name, start)
    pack_class, entries, data = store.read_pack(name)
    with pytest.raises(CorruptObject) as exc:
        store.verify_pack(name, pack_class, entries, data, "remote")
    assert_names(exc.value, name, start)
    dst = ObjectStore(MemoryBackend(), LocationIndex(), FMT)
    with pytest.raises(CorruptObject) as exc:
        copy_objects(store, dst, [e.id for e in entries])  # the whole pack is wanted: adopted
    assert_names(exc.value, name, start)
    # fsck: that record is reported (not "missing"), every other one checked
    check = check_packs(store)
    problems = [p for p in check.problems if name in p and f"offset {start}" in p]
    assert problems, check.problems
    assert victim in check.corrupt and victim not in check.present
    assert {e.id for e in entries} - {victim} <= check.present.keys()
    # a read of the object itself goes by its index entry and its payload, which are intact
    assert store.get_raw(victim)[0] != ObjectType.CHUNK


def test_copying_metadata_from_a_pack_with_a_damaged_header_is_corruption(fx: Fixture) -> None:
    """Regression: the record walk skipped a record whose id was hit, so the object was later
    "not found" (exit 4). Needs ``copy_metadata`` to walk ``src.pack_records(name)``."""
    name, start, _ = flip_header(fx, "id")
    dst = ObjectStore(MemoryBackend(), LocationIndex(), FMT)
    with pytest.raises(CorruptObject) as exc:
        copy_metadata(fx.open(), dst)
    assert_names(exc.value, name, start)


def test_bytes_no_index_entry_covers_are_reported_by_fsck(fx: Fixture) -> None:
    name, path, _ = fx.meta_pack()
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"junk")
    size = path.stat().st_size
    check = check_packs(fx.open())
    assert any(name in p and f"offset {size - 4}" in p for p in check.problems), check.problems


# ---------------------------------------------------------------- a stale or damaged cache


def test_rows_deleted_from_the_cache_come_back_on_the_first_miss(fx: Fixture) -> None:
    fx.sql("DELETE FROM objects WHERE substr(hex(id), 1, 1) < '8'")
    store = fx.open(counting=True)
    check_all(store, fx)
    assert requests(store)["list"] == 2  # the open's, and one more for every miss
    assert all(store.index.lookup(oid) is not None for oid in fx.chunks)
    assert len(fx.rows()) == len(fx.chunks) + 2 * 3  # commits, trees: the file is repaired


def test_rows_of_a_forgotten_pack_record_are_dropped_and_rebuilt(fx: Fixture) -> None:
    fx.sql("DELETE FROM packs WHERE no = 1")  # its object rows now name no pack
    store = fx.open()
    check_all(store, fx)


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE objects SET offset = offset + 1",
        "UPDATE objects SET offset = offset - 1",
        "UPDATE objects SET stored = stored + 1",
        "UPDATE objects SET raw = raw + 1",
        "UPDATE objects SET flags = 1 - flags",
        "UPDATE objects SET type = CASE type WHEN 0 THEN 3 ELSE 0 END",
    ],
)
def test_wrong_rows_are_re_derived_from_the_pack_index(fx: Fixture, damage: str) -> None:
    fx.sql(damage)
    store = fx.open()
    check_all(store, fx)
    oid = next(iter(fx.chunks))
    loc, stored = store.read_stored(oid)
    assert store.unpack_located(oid, loc, stored) == fx.chunks[oid]
    fresh = fx.open()
    for oid in fx.chunks:  # corrected in the file: the next open reads through it directly
        found = fresh.index.lookup(oid)
        assert found is not None
        raw = fresh.read_range(found.pack, found.offset, found.stored_size)
        assert fresh.unpack_located(oid, found, raw) == fx.chunks[oid]


def test_checkout_reads_in_batches_through_a_damaged_cache(fx: Fixture) -> None:
    fx.sql("UPDATE objects SET offset = offset + 1 WHERE type = 0 AND substr(hex(id), 1, 1) < '8'")
    fx.sql("DELETE FROM objects WHERE type = 0 AND substr(hex(id), 2, 1) < '8'")
    store = fx.open()
    commit = store.get_commit(fx.commits[-1])
    entries = list(store.tree_entries(commit.tree))
    got = dict(store.read_small(entries))
    assert {e.id: raw for e, raw in got.items()} == {e.id: fx.chunks[e.id] for e in entries}
    assert store.locate_many([e.id for e in entries]).keys() == {e.id for e in entries}


@pytest.mark.parametrize(
    "damage",
    [
        "DELETE FROM objects",
        "DELETE FROM objects WHERE substr(hex(id), 1, 1) < '8'",
        "DELETE FROM packs",
        "UPDATE objects SET offset = offset + 1",
        "UPDATE objects SET offset = offset - 1",
    ],
)
def test_checkout_through_a_damaged_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    """Regression: with rows deleted, or offsets off by one, checkout failed with 'not found' or
    'does not decompress' although every pack and index was intact."""
    from dsrepo import Repository

    monkeypatch.setenv("DSREPO_AUTHOR_NAME", "Ada")
    monkeypatch.setenv("DSREPO_AUTHOR_EMAIL", "ada@example.com")
    monkeypatch.setenv("DSREPO_CONFIG_GLOBAL", str(tmp_path / "gconfig"))
    files = {
        "small.txt": b"small\n" * 10,
        "dir/table.csv": b"a,b\n" + b"1,2\n" * 5000,
        "big.bin": os.urandom(3 << 20),  # chunked: read through its manifest
    }
    with Repository.init(tmp_path / "repo") as repo:
        for rel, data in files.items():
            (repo.root / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo.root / rel).write_bytes(data)
        repo.add(".")
        repo.commit("data")
    db = sqlite3.connect(tmp_path / "repo" / ".dsrepo" / "cache" / "objects.sqlite")
    db.execute(damage)
    db.commit()
    db.close()
    with Repository.open(tmp_path / "repo") as repo:
        repo.checkout("HEAD", into=tmp_path / "out")
        assert not repo.fsck().problems
    for rel, data in files.items():
        assert (tmp_path / "out" / rel).read_bytes() == data


def test_a_real_corruption_is_still_reported_and_the_cache_not_rewritten(fx: Fixture) -> None:
    store = fx.open()
    oid = next(iter(fx.chunks))
    loc = store.index.lookup(oid)
    assert loc is not None
    path = fx.root / layout.pack_key(loc.pack)
    data = bytearray(path.read_bytes())
    data[loc.offset] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    rows = fx.rows()
    store = fx.open()
    with pytest.raises(CorruptObject) as exc:
        store.get_raw(oid)
    assert_names(exc.value, loc.pack, loc.offset - RECORD_HEADER_SIZE)
    assert oid.hex() in str(exc.value)
    assert fx.rows() == rows


def test_a_missing_object_is_not_found_after_one_look_at_the_pack_indexes(fx: Fixture) -> None:
    store = fx.open(counting=True)
    listed = requests(store)["list"]
    absent = ObjectId(bytes(32))
    for _ in range(3):
        with pytest.raises(ObjectNotFound):
            store.get_raw(absent)
    with pytest.raises(ObjectNotFound):
        store.resolve_prefix("0000000000")
    assert requests(store)["list"] == listed + 1


def test_a_hit_that_verifies_costs_one_ranged_read(fx: Fixture) -> None:
    store = fx.open(counting=True)
    before = dict(requests(store))
    for oid, data in fx.chunks.items():
        assert store.get_raw(oid)[1] == data
    after = requests(store)
    assert after["get"] - before.get("get", 0) == len(fx.chunks)
    assert after["list"] == before.get("list", 0)


def test_a_file_that_is_not_a_cache_is_replaced_once(tmp_path: Path) -> None:
    path = tmp_path / "objects.sqlite"
    for garbage in (b"not a database at all" * 100, b""):
        path.write_bytes(garbage)
        index = LocationIndex(path)
        assert index.mode == "file" and index.count() == 0
        index.close()
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE foreign_table (x)")
    db.execute("UPDATE meta SET value = '99'")
    db.commit()
    db.close()
    index = LocationIndex(path)
    assert index.mode == "file" and index.count() == 0


class _Failing:
    """A connection that fails chosen statements the way SQLite does, else forwards."""

    def __init__(self, db: sqlite3.Connection, fail: dict[str, tuple[str, int]]) -> None:
        self._db = db
        self._fail = fail

    def execute(self, sql: str, *args: Any) -> Any:
        for prefix, (message, code) in self._fail.items():
            if sql.startswith(prefix):
                exc = sqlite3.OperationalError(message)
                exc.sqlite_errorcode = code
                raise exc
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def test_damage_found_in_an_open_cache_empties_it_and_the_store_refills_it(fx: Fixture) -> None:
    store = fx.open()
    store.index._db = _Failing(  # type: ignore[assignment]
        store.index._db, {"SELECT p.name": ("database disk image is malformed", 11)}
    )
    generation = store.index.generation
    check_all(store, fx)
    assert store.index.generation == generation + 1
    assert len(fx.rows()) == len(fx.chunks) + 2 * 3  # rebuilt from the pack indexes


# ---------------------------------------------------------------- a cache that cannot be written


def _sqlite_refusing(
    monkeypatch: pytest.MonkeyPatch, message: str, code: int, *, allow_read_only: bool
) -> None:
    real = sqlite3.connect

    def connect(target: str, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        if target == ":memory:" or (allow_read_only and "mode=ro" in target):
            db: sqlite3.Connection = real(target, *args, **kwargs)
            return db
        exc = sqlite3.OperationalError(message)
        exc.sqlite_errorcode = code
        raise exc

    monkeypatch.setattr(sqlite3, "connect", connect)


def test_a_full_disk_does_not_make_the_cache_delete_itself_in_a_loop(
    fx: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: every DatabaseError counted as damage: the file was deleted and opened again
    until a RecursionError (exit 70), losing the cache on the way."""
    before = fx.cache.read_bytes()
    _sqlite_refusing(monkeypatch, "database or disk is full", 13, allow_read_only=False)
    store = fx.open()
    assert store.index.mode == "memory"
    assert isinstance(store.index.unwritable, StorageFull)
    assert str(store.index.unwritable) == f"no space left on device: {fx.cache}"
    check_all(store, fx)
    assert fx.cache.read_bytes() == before


def test_a_read_only_cache_is_read_and_never_written(
    fx: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = fx.cache.read_bytes()
    _sqlite_refusing(monkeypatch, "attempt to write a readonly database", 8, allow_read_only=True)
    store = fx.open()
    assert store.index.mode == "read-only"
    assert isinstance(store.index.unwritable, StorageReadOnly)
    check_all(store, fx)
    # a write (a pack recorded) moves it to memory, with what the file held
    oid = store.put_chunk(b"new bytes")
    store.flush()
    assert store.index.mode == "memory"
    assert store.get_raw(oid)[1] == b"new bytes"
    check_all(store, fx)
    assert fx.cache.read_bytes() == before


def test_a_stale_read_only_cache_is_completed_in_memory(
    fx: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    fx.sql("DELETE FROM objects", "DELETE FROM packs WHERE no = 2")
    _sqlite_refusing(monkeypatch, "attempt to write a readonly database", 8, allow_read_only=True)
    store = fx.open()
    assert store.index.mode == "memory"
    check_all(store, fx)


def test_a_cache_whose_directory_is_a_file_is_kept_in_memory(tmp_path: Path) -> None:
    """Regression: the failed open unlinked paths under a file: NotADirectoryError, exit 70."""
    (tmp_path / "cache").write_bytes(b"a file where the directory should be")
    index = LocationIndex(tmp_path / "cache" / "objects.sqlite")
    assert index.mode == "memory" and isinstance(index.unwritable, StorageUnavailable)
    name, pack_class, entries = _one_pack()
    index.add_pack(name, pack_class, entries)
    assert index.lookup(entries[0].id) is not None
    assert (tmp_path / "cache").read_bytes() == b"a file where the directory should be"


def _one_pack() -> tuple[str, PackClass, list[Any]]:
    store = ObjectStore(MemoryBackend(), LocationIndex(), FMT)
    store.put_chunk(b"one")
    [name] = store.flush()
    pack_class, entries, _ = store.read_pack(name)
    return name, pack_class, entries


@pytest.mark.parametrize("statement", ["BEGIN IMMEDIATE", "COMMIT"])
def test_recording_a_pack_on_a_full_disk_moves_the_cache_to_memory(
    tmp_path: Path, statement: str
) -> None:
    """Regression: a failed BEGIN escaped as an OperationalError, a failed COMMIT as "cannot
    rollback - no transaction is active" (exit 70)."""
    index = LocationIndex(tmp_path / "objects.sqlite")
    index._db = _Failing(index._db, {statement: ("database or disk is full", 13)})  # type: ignore[assignment]
    name, pack_class, entries = _one_pack()
    index.add_pack(name, pack_class, entries)
    assert index.mode == "memory" and isinstance(index.unwritable, StorageFull)
    assert index.pack_names() == {name} and index.lookup(entries[0].id) is not None


# ---------------------------------------------------------------- writes the storage refuses


def _refusing(monkeypatch: pytest.MonkeyPatch, target: Any, name: str, code: int) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(target, name, refuse)


@pytest.mark.parametrize(
    ("code", "cls", "message"),
    [
        (errno.ENOSPC, StorageFull, "no space left on device"),
        (errno.EDQUOT, StorageFull, "disk quota exceeded"),
        (errno.EROFS, StorageReadOnly, "read-only file system"),
        (errno.EACCES, StorageReadOnly, "permission denied"),
    ],
)
def test_atomic_write_refused_is_one_line_and_keeps_the_old_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    cls: type[StorageUnavailable],
    message: str,
) -> None:
    path = tmp_path / "index"
    path.write_bytes(b"old")
    _refusing(monkeypatch, os, "replace", code)
    with pytest.raises(cls) as exc:
        atomic_write(path, b"new")
    assert str(exc.value) == f"{message}: {path}" and exc.value.exit_code == 12
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["index"]


def test_other_os_errors_are_not_storage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _refusing(monkeypatch, os, "replace", errno.EIO)
    with pytest.raises(OSError) as exc:
        atomic_write(tmp_path / "x", b"new")
    assert not isinstance(exc.value, StorageUnavailable)


def test_saving_config_on_a_full_disk_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ConfigFile(tmp_path / "sub" / "config")
    _refusing(monkeypatch, os, "fsync", errno.ENOSPC)
    with pytest.raises(StorageFull, match=r"^no space left on device: "):
        config.set("user.name", "Ada")
    _refusing(monkeypatch, os, "mkdir", errno.EROFS)
    with pytest.raises(StorageReadOnly, match=r"^read-only file system: "):
        ConfigFile(tmp_path / "other" / "config").save()


def test_a_pack_write_refused_for_space_is_one_line_and_loses_nothing(
    fx: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = fx.open()
    store.put_chunk(b"fresh data that will not fit" * 100)
    _refusing(monkeypatch, os, "link", errno.ENOSPC)  # the directory backend's put-if-absent
    with pytest.raises(StorageFull) as exc:
        store.flush()
    message = str(exc.value)
    assert message.startswith(f"no space left on device: {fx.root}/packs/")
    assert message.endswith(".pack") and "\n" not in message
    monkeypatch.undo()
    assert not [p for p in (fx.root / "packs").iterdir() if p.name.startswith(".")]
    check_all(fx.open(), fx)
    assert not check_packs(fx.open()).problems


@pytest.fixture
def no_fsync_after(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """``calls[0] = N``: the Nth ``os.fsync`` from now on fails with ENOSPC (and later ones)."""
    real = os.fsync
    calls = [0, 0]

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):  # a full disk fails writes of data, not renames
            return real(fd)
        calls[1] += 1
        if calls[0] and calls[1] >= calls[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    yield calls


def test_a_disk_that_fills_at_any_write_of_a_flush_loses_nothing(
    fx: Fixture, no_fsync_after: list[int]
) -> None:
    n = 1
    while True:
        store = fx.open()
        chunk = store.put_chunk(b"a new chunk")
        tree = store.put_tree([TreeEntry("new", EntryKind.FILE, 11, chunk)])
        no_fsync_after[:] = [n, 0]
        try:
            store.flush()
        except StorageFull as exc:
            assert str(exc).startswith("no space left on device: ") and "\n" not in str(exc)
        else:
            break
        finally:
            no_fsync_after[0] = 0
        check_all(fx.open(), fx)
        assert not check_packs(fx.open()).problems
        n += 1
    assert n > 2  # the disk filled at each fsync of the packs, their indexes, their directory
    assert fx.open().tree_entries(tree)[0].id == chunk


def test_two_processes_creating_the_location_cache_at_once_both_open_it(tmp_path: Path) -> None:
    """Both saw an empty file, then the other created the schema first: the loser used to fail
    on the schema row (UNIQUE constraint) and fall back to a private copy in memory, whose
    changes (a gc forgetting packs) never reached the shared file."""
    path = tmp_path / "objects.sqlite"
    LocationIndex(path).close()  # the winner
    real = sqlite3.Connection.execute

    class SawNothing(sqlite3.Connection):
        seen = False

        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
            if "sqlite_master" in sql and not SawNothing.seen:
                SawNothing.seen = True  # the loser's look, from before the winner's create
                return real(self, "SELECT name FROM sqlite_master WHERE 0")
            return real(self, sql, *args)

    orig_connect = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return orig_connect(*args, **kwargs, factory=SawNothing)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sqlite3, "connect", connect)
        index = LocationIndex(path)
    try:
        assert SawNothing.seen and index.unwritable is None
        index.add_pack("ab" * 32, PackClass.DATA, [])
        assert LocationIndex(path).pack_names() == {"ab" * 32}  # written to the shared file
    finally:
        index.close()


@pytest.mark.parametrize("stored_as_is", [True, False], ids=["as-is", "zstd"])
def test_a_damaged_payload_in_a_pack_taken_whole_is_refused(
    fx: Fixture, stored_as_is: bool
) -> None:
    """A pack copied whole (fetch, clone, push) is verified object by object: a chunk stored as
    is takes a shorter path there (one hash call), which must refuse a flipped byte just as
    the general one does, naming the pack and the record."""
    name = next(n for n in fx.pack_names() if n != fx.meta_pack()[0])
    path = fx.root / layout.pack_key(name)
    _, entries = decode_index((fx.root / layout.index_key(name)).read_bytes(), name)
    victim = next(e for e in entries if (e.flags == 0) == stored_as_is)
    data = bytearray(path.read_bytes())
    data[victim.offset + victim.stored_size - 1] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    store = fx.open()
    pack_class, entries, packed = store.read_pack(name)
    with pytest.raises(CorruptObject) as exc:
        store.verify_pack(name, pack_class, entries, packed, "remote")
    start = victim.offset - RECORD_HEADER_SIZE
    assert f"{victim.id.hex()} in remote at offset {start}" in str(exc.value)
    dst = ObjectStore(MemoryBackend(), LocationIndex(), FMT)
    with pytest.raises(CorruptObject, match=f"offset {start}"):
        copy_objects(store, dst, [e.id for e in entries])  # the whole pack is wanted: adopted
    assert dst.missing(e.id for e in entries) == {e.id for e in entries}
