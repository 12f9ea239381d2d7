"""The id → location index: which pack holds an object, where, and how.

The pack ``.idx`` files in the backend are the truth; this SQLite database is a local cache of
them, built for tens of millions of objects (one ``WITHOUT ROWID`` B-tree keyed by the 32-byte id).
The store keeps it in step with the pack indexes (:mod:`dsrepo.objects.indexsync`): on open, and
whenever a lookup misses or a read through it fails verification.

Being a cache, it never makes a command fail:

- a damaged database (unreadable, not ours, another schema version) is deleted and created
  afresh, once; damage found later empties it (``generation`` changes: the store refills it);
- one that cannot be written (a full disk, a read-only filesystem or repository, a file another
  user owns) is opened read-only if it exists, else kept in memory. Its first write then moves it
  to memory (with what it held), so lookups stay right for this process; ``unwritable`` says why.
  Writes that matter (packs, refs, the staging index) fail on their own, with a clear error.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

from dsrepo.objects.errors import (
    AmbiguousId,
    ObjectNotFound,
    StorageFull,
    StorageReadOnly,
    StorageUnavailable,
    storage_error,
)
from dsrepo.objects.ids import ObjectId, validate_prefix
from dsrepo.objects.model import TYPE_BY_NUMBER, ObjectType
from dsrepo.objects.pack import IndexEntry, PackClass

SCHEMA_VERSION = 2
"""2: ``packs.bytes``, the sum of a pack's stored sizes (a copy plans whole packs by it)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS packs (
    no INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, class INTEGER NOT NULL,
    count INTEGER NOT NULL, bytes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    id BLOB PRIMARY KEY, pack INTEGER NOT NULL, offset INTEGER NOT NULL, stored INTEGER NOT NULL,
    raw INTEGER NOT NULL, type INTEGER NOT NULL, flags INTEGER NOT NULL) WITHOUT ROWID;
"""

# SQLite result codes (the low byte of sqlite_errorcode)
_ERROR, _PERM, _READONLY, _FULL, _CORRUPT, _FORMAT, _NOTADB = 1, 3, 8, 13, 11, 24, 26
_DAMAGE = {_CORRUPT, _FORMAT, _NOTADB}
"""Codes that mean the file is not a usable cache (on opening, SQLITE_ERROR too: not ours)."""

_ROW = "SELECT o.id, p.name, o.offset, o.stored, o.raw, o.type, o.flags FROM objects o JOIN packs p"
T = TypeVar("T")


class _Damaged(Exception):
    """The database is not a cache of ours (another schema, or tables without our marker)."""


class Location(NamedTuple):
    """Where an object lies (a tuple: built per row of a lookup, ~3x cheaper than a frozen
    dataclass)."""

    pack: str
    offset: int
    stored_size: int
    raw_size: int
    type: ObjectType
    flags: int


def _code(exc: BaseException) -> int:
    return int(getattr(exc, "sqlite_errorcode", -1)) & 0xFF


def _recoverable(exc: sqlite3.DatabaseError) -> bool:
    """The file or the filesystem failed (damage, full, read-only, I/O), not our use of the
    API (a closed connection, a constraint: bugs, raised as they are)."""
    return type(exc) is sqlite3.DatabaseError or isinstance(exc, sqlite3.OperationalError)


def _connect(target: str, *, uri: bool = False) -> sqlite3.Connection:
    return sqlite3.connect(target, uri=uri, check_same_thread=False, isolation_level=None)


def _check_schema(db: sqlite3.Connection, *, create: bool) -> None:
    """Raise _Damaged unless ``db`` holds our schema; an empty database gets it if ``create``."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables and create:  # another process may be creating it too: both may finish
        db.executescript(_SCHEMA)
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "meta" not in tables:
        raise _Damaged("not a location cache")
    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    if row is None or row[0] != str(SCHEMA_VERSION) or not {"packs", "objects"} <= tables:
        raise _Damaged("schema version mismatch")


def _memory(schema: bool = True) -> sqlite3.Connection:
    db = _connect(":memory:")
    if schema:
        _check_schema(db, create=True)
    return db


@dataclass(slots=True)
class _QueuedPack:
    """A pack waiting for :meth:`LocationIndex.add_pack`'s next transaction."""

    name: str
    pack_class: PackClass
    rows: Sequence[tuple[bytes, int, int, int, int, int]]
    done: bool = False
    error: BaseException | None = None


def _record_packs(db: sqlite3.Connection, packs: list[_QueuedPack]) -> None:
    for pack in packs:
        if db.execute("SELECT 1 FROM packs WHERE name=?", (pack.name,)).fetchone():
            continue
        no = db.execute(
            "INSERT INTO packs (name, class, count, bytes) VALUES (?, ?, ?, ?)",
            (pack.name, int(pack.pack_class), len(pack.rows), sum(r[2] for r in pack.rows)),
        ).lastrowid
        rows = ((r[0], no, *r[1:]) for r in pack.rows)
        db.executemany("INSERT OR IGNORE INTO objects VALUES (?,?,?,?,?,?,?)", rows)


class LocationIndex:
    """SQLite-backed id → Location map. ``path=None`` keeps it in memory."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.RLock()
        self.generation = 0
        """Changes whenever the content was lost (damage found): the store then refills it."""
        self.unwritable: StorageUnavailable | None = None
        """Why the database file cannot be written (then it is read-only or in memory)."""
        self._read_only = False
        self._db = self._open()
        self._queue_lock = threading.Lock()
        self._queue: list[_QueuedPack] = []  # packs waiting to be recorded (add_pack)

    def reopened(self) -> LocationIndex:
        """This index for a forked child: a new connection to the same file (SQLite's locks
        belong to a process, so a child must not use its parent's connection, nor close it: the
        caller keeps this one referenced until it exits). An index in memory is the child's own
        copy already."""
        return self if self.path is None else LocationIndex(self.path)

    # ------------------------------------------------------------ opening and recovering

    def _open(self) -> sqlite3.Connection:
        if self.path is None:
            return _memory()
        try:
            return self._open_file()
        except (_Damaged, sqlite3.DatabaseError, OSError) as exc:
            if not isinstance(exc, _Damaged) and _code(exc) not in _DAMAGE | {_ERROR}:
                return self._fall_back(exc)
        try:  # damaged: a cache, so start afresh (the store's sync fills it), once
            self._delete_files()
            return self._open_file()
        except (_Damaged, sqlite3.DatabaseError, OSError) as exc:
            return self._fall_back(exc)

    def _open_file(self) -> sqlite3.Connection:
        assert self.path is not None
        if not self.path.parent.is_dir():
            with contextlib.suppress(OSError):
                self.path.parent.mkdir(parents=True)
        db = _connect(str(self.path))
        try:
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            _check_schema(db, create=True)
        except BaseException:
            db.close()
            raise
        return db

    def _delete_files(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def _refusal(self, exc: BaseException) -> StorageUnavailable:
        """The resource problem behind a failed open or write of the database file."""
        found = storage_error(exc, self.path)
        if found is not None:
            return found
        code = _code(exc)
        if code == _FULL:
            return StorageFull(f"no space left on device: {self.path}")
        with contextlib.suppress(OSError):  # SQLite does not say why it could not open or write
            assert self.path is not None
            parent = self.path.parent if self.path.parent.is_dir() else self.path.parent.parent
            fs = os.statvfs(parent)
            if fs.f_flag & os.ST_RDONLY:
                return StorageReadOnly(f"read-only file system: {self.path}")
            if code in (_READONLY, _PERM) or not os.access(parent, os.W_OK):
                return StorageReadOnly(f"read-only: {self.path}")
            if fs.f_bavail * fs.f_frsize < 1 << 20:
                return StorageFull(f"no space left on device: {self.path}")
        return StorageUnavailable(f"cannot write the location cache {self.path}: {exc}")

    def _fall_back(self, exc: BaseException) -> sqlite3.Connection:
        """The file cannot be opened for writing: read it if it is there, else keep it in memory
        (the store's sync fills it from the pack indexes)."""
        self.unwritable = self._refusal(exc)
        assert self.path is not None
        if self.path.is_file():
            uri = self.path.absolute().as_uri()
            # mode=ro needs the -shm file (or the right to create it); immutable=1 does not
            for query in ("?mode=ro", "?mode=ro&immutable=1"):
                with contextlib.suppress(_Damaged, sqlite3.DatabaseError):
                    db = _connect(uri + query, uri=True)
                    try:
                        _check_schema(db, create=False)
                        db.execute("SELECT COUNT(*) FROM packs").fetchone()
                    except BaseException:
                        db.close()
                        raise
                    self._read_only = True
                    return db
        return _memory()

    def _to_memory(self, reason: StorageUnavailable) -> None:
        """Continue in memory with a copy of what the file holds (or empty, if it cannot be
        read: then ``generation`` changes and the store refills it)."""
        mem = _memory(schema=False)
        try:
            self._db.backup(mem)
            _check_schema(mem, create=False)
        except (_Damaged, sqlite3.DatabaseError):
            mem.close()
            mem = _memory()
            self.generation += 1
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._db, self._read_only = mem, False
        self.unwritable = self.unwritable or reason

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """A query failed: damage empties the cache (recreated, or in memory if that fails);
        a refused write moves it to memory."""
        if _code(exc) in _DAMAGE:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._read_only = False
            if self.path is None or self.unwritable is not None:
                self._db = _memory()
            else:
                with contextlib.suppress(OSError):
                    self._delete_files()
                self._db = self._open()
            self.generation += 1
        else:
            self._to_memory(self._refusal(exc))

    def _read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                return query(self._db)
            except sqlite3.DatabaseError as exc:
                if not _recoverable(exc):
                    raise
                self._recover(exc)
                return query(self._db)

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one transaction. A database that refuses the write (full disk,
        read-only) is moved to memory and ``work`` runs there: the cache never fails a command."""
        with self._lock:
            if self._read_only:
                self._to_memory(self.unwritable or StorageReadOnly(f"read-only: {self.path}"))
            try:
                return self._transaction(work)
            except sqlite3.DatabaseError as exc:
                if not _recoverable(exc):
                    raise
                self._recover(exc)
                return self._transaction(work)

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # when this fails there is nothing to roll back
        try:
            out = work(db)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # a failed COMMIT may already have rolled back
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise
        return out

    @property
    def mode(self) -> str:
        """``file``, ``read-only`` (a file this process cannot write) or ``memory``."""
        if self.path is None or self._db_is_memory():
            return "memory"
        return "read-only" if self._read_only else "file"

    def _db_is_memory(self) -> bool:
        with self._lock:
            row = self._db.execute("PRAGMA database_list").fetchone()
        return not row[2]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------ packs

    def pack_names(self) -> set[str]:
        return self._read(lambda db: {r[0] for r in db.execute("SELECT name FROM packs")})

    def add_pack(self, name: str, pack_class: PackClass, entries: Iterable[IndexEntry]) -> None:
        """Record a pack and its objects (idempotent). An object already known keeps its place.
        Packs queued by other threads meanwhile share the transaction (group commit: one per
        pack rewrote most of the B-tree's pages each time); each caller returns once its own
        pack is in, or raises that transaction's error."""
        rows = [(e.id, e.offset, e.stored_size, e.raw_size, int(e.type), e.flags) for e in entries]
        mine = _QueuedPack(name, pack_class, rows)
        with self._queue_lock:
            self._queue.append(mine)
        with self._lock:
            if not mine.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    self._write(lambda db: _record_packs(db, batch))
                except BaseException as exc:
                    for queued in batch:
                        queued.error = exc
                    raise
                finally:
                    for queued in batch:
                        queued.done = True
        if mine.error is not None:
            raise mine.error

    def remove_packs(self, names: Iterable[str]) -> None:
        """Forget packs, in one pass over the objects (a pass is ~0.4 s at a million objects:
        one per pack made a sync after a repack of 50 packs cost 20 s). Objects they held that
        another pack also holds lose their location, so every pack left with fewer rows than
        its ``count`` (some of its objects were recorded under another pack) is forgotten too;
        callers re-sync after removals to re-add them."""
        wanted = sorted(set(names))
        if not wanted:
            return

        def remove(db: sqlite3.Connection) -> None:
            nos: list[int] = []
            for i in range(0, len(wanted), 500):
                part = wanted[i : i + 500]
                marks = ",".join("?" * len(part))
                nos += [
                    r[0] for r in db.execute(f"SELECT no FROM packs WHERE name IN ({marks})", part)
                ]
            _delete_packs(db, nos)
            _delete_packs(db, _short_packs(db))

        self._write(remove)

    def clear(self) -> None:
        """Forget everything (to rebuild from the pack indexes); ``generation`` changes."""

        def clear(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM objects")
            db.execute("DELETE FROM packs")

        self._write(clear)
        self.generation += 1

    def suspect_packs(self) -> set[str]:
        """Packs that may have lost rows: fewer rows than their index lists (also a pack whose
        objects are partly recorded under another pack). One scan of the objects table; rows
        that name no recorded pack are dropped (the only write, and only if there are some)."""

        def query(db: sqlite3.Connection) -> tuple[dict[int, tuple[str, int]], dict[int, int]]:
            packs = {r[0]: (r[1], r[2]) for r in db.execute("SELECT no, name, count FROM packs")}
            rows = dict(db.execute("SELECT pack, COUNT(*) FROM objects GROUP BY pack").fetchall())
            return packs, rows

        packs, rows = self._read(query)
        orphans = [(no,) for no in rows if no not in packs]
        if orphans:
            self._write(lambda db: db.executemany("DELETE FROM objects WHERE pack=?", orphans))
        return {name for no, (name, count) in packs.items() if rows.get(no, 0) < count}

    def refresh_pack(
        self,
        name: str,
        pack_class: PackClass,
        entries: Sequence[IndexEntry],
        suspect: bytes | None = None,
    ) -> bool:
        """Re-derive a pack's rows from its (verified) index ``entries``: missing rows are added,
        rows that differ from the index are corrected, and ``suspect``'s row is dropped if it
        names this pack without the index listing it. Writes only when something differs;
        returns whether something did."""
        wanted = {
            e.id: (e.offset, e.stored_size, e.raw_size, int(e.type), e.flags) for e in entries
        }
        current: dict[bytes, tuple[str, tuple[int, ...]]] = {}
        for oid, loc in self.lookup_many([*wanted, *([suspect] if suspect else [])]).items():
            current[oid] = (
                loc.pack,
                (loc.offset, loc.stored_size, loc.raw_size, int(loc.type), loc.flags),
            )
        stale = (
            suspect is not None and suspect not in wanted and current.get(suspect, ("",))[0] == name
        )
        fix = [
            (oid, values)
            for oid, values in wanted.items()
            if oid not in current or (current[oid][0] == name and current[oid][1] != values)
        ]
        known = name in self.pack_names()
        if not fix and not stale and known:
            return False

        def refresh(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT no FROM packs WHERE name=?", (name,)).fetchone()
            if row is None:
                no = db.execute(
                    "INSERT INTO packs (name, class, count, bytes) VALUES (?, ?, ?, ?)",
                    (name, int(pack_class), len(wanted), sum(v[1] for v in wanted.values())),
                ).lastrowid
            else:
                no = row[0]
                db.execute(
                    "UPDATE packs SET count=?, bytes=? WHERE no=?",
                    (len(wanted), sum(v[1] for v in wanted.values()), no),
                )
            if stale:
                db.execute("DELETE FROM objects WHERE id=? AND pack=?", (suspect, no))
            db.executemany(
                "INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?,?,?)",
                ((oid, no, *values) for oid, values in fix),
            )

        self._write(refresh)
        return True

    # ------------------------------------------------------------ objects

    def lookup(self, oid: bytes) -> Location | None:
        row = self._read(
            lambda db: db.execute(
                "SELECT p.name, o.offset, o.stored, o.raw, o.type, o.flags "
                "FROM objects o JOIN packs p ON p.no = o.pack WHERE o.id=?",
                (oid,),
            ).fetchone()
        )
        if row is None:
            return None
        return Location(row[0], row[1], row[2], row[3], TYPE_BY_NUMBER[row[4]], row[5])

    def lookup_many(self, oids: Sequence[bytes]) -> dict[bytes, Location]:
        """Locations of the ids that are indexed, a few queries for the whole batch."""

        def query(db: sqlite3.Connection) -> dict[bytes, Location]:
            out: dict[bytes, Location] = {}
            probe = sorted(oids)
            for i in range(0, len(probe), 500):
                part = probe[i : i + 500]
                rows = db.execute(
                    f"{_ROW} ON p.no = o.pack WHERE o.id IN ({','.join('?' * len(part))})", part
                ).fetchall()
                for r in rows:
                    out[r[0]] = Location(r[1], r[2], r[3], r[4], TYPE_BY_NUMBER[r[5]], r[6])
            return out

        return self._read(query)

    def contains(self, oid: bytes) -> bool:
        return self._read(
            lambda db: db.execute("SELECT 1 FROM objects WHERE id=?", (oid,)).fetchone() is not None
        )

    def missing(self, oids: Iterable[bytes]) -> set[bytes]:
        """The subset of ``oids`` not in the index, the very objects passed (one query per 500
        ids, in id order: the B-tree pages are met in order; none when the index is empty: a
        first push, a clone, ~2 us an id saved)."""
        wanted = set(oids)
        if not wanted or self.is_empty():
            return wanted

        def query(db: sqlite3.Connection) -> set[bytes]:
            probe = sorted(wanted)
            found: set[bytes] = set()
            for i in range(0, len(probe), 500):
                part = probe[i : i + 500]
                found.update(
                    r[0]
                    for r in db.execute(
                        f"SELECT id FROM objects WHERE id IN ({','.join('?' * len(part))})", part
                    )
                )
            return found

        return wanted - self._read(query)

    def count_objects(self, pack_class: PackClass) -> int:
        row = self._read(
            lambda db: db.execute(
                "SELECT COALESCE(SUM(count), 0) FROM packs WHERE class = ?", (int(pack_class),)
            ).fetchone()
        )
        return int(row[0])

    def count(self) -> int:
        return int(
            self._read(lambda db: db.execute("SELECT SUM(count) FROM packs").fetchone())[0] or 0
        )

    def is_empty(self) -> bool:
        """No object is indexed."""
        return self._read(lambda db: db.execute("SELECT 1 FROM objects LIMIT 1").fetchone()) is None

    def resolve_prefix(self, prefix: str) -> ObjectId:
        """The one id starting with hex ``prefix``; AmbiguousId / ObjectNotFound otherwise."""
        validate_prefix(prefix)
        lo = bytes.fromhex(prefix.ljust(64, "0"))
        hi = bytes.fromhex(prefix.ljust(64, "f"))
        rows = self._read(
            lambda db: db.execute(
                "SELECT id FROM objects WHERE id >= ? AND id <= ? LIMIT 11", (lo, hi)
            ).fetchall()
        )
        if not rows:
            raise ObjectNotFound(f"no object matches {prefix!r}")
        if len(rows) > 1:
            shown = ", ".join(r[0].hex()[:12] for r in rows[:10])
            raise AmbiguousId(f"object id prefix {prefix!r} is ambiguous: {shown}")
        return ObjectId(rows[0][0])

    def iter_objects(
        self, pack_class: PackClass | None = None
    ) -> Iterator[tuple[ObjectId, Location]]:
        query = f"{_ROW} ON p.no = o.pack"
        args: tuple[int, ...] = ()
        if pack_class is not None:
            query += " WHERE p.class = ?"
            args = (int(pack_class),)
        rows = self._read(lambda db: db.execute(query + " ORDER BY o.id", args).fetchall())
        for r in rows:
            yield ObjectId(r[0]), Location(r[1], r[2], r[3], r[4], TYPE_BY_NUMBER[r[5]], r[6])

    def pack_bytes(self, name: str) -> int:
        """The sum of the stored sizes of every object pack ``name``'s index lists (0: unknown)."""
        row = self._read(
            lambda db: db.execute("SELECT bytes FROM packs WHERE name=?", (name,)).fetchone()
        )
        return int(row[0]) if row else 0

    def pack_objects(self, name: str) -> list[tuple[ObjectId, Location]]:
        rows = self._read(
            lambda db: db.execute(
                "SELECT o.id, o.offset, o.stored, o.raw, o.type, o.flags FROM objects o "
                "JOIN packs p ON p.no = o.pack WHERE p.name=? ORDER BY o.offset",
                (name,),
            ).fetchall()
        )
        return [
            (ObjectId(r[0]), Location(name, r[1], r[2], r[3], TYPE_BY_NUMBER[r[4]], r[5]))
            for r in rows
        ]


def _delete_packs(db: sqlite3.Connection, nos: list[int]) -> None:
    """Delete packs (by number) and their object rows: one scan of the objects table."""
    for i in range(0, len(nos), 500):
        part = nos[i : i + 500]
        marks = ",".join("?" * len(part))
        db.execute(f"DELETE FROM objects WHERE pack IN ({marks})", part)
        db.execute(f"DELETE FROM packs WHERE no IN ({marks})", part)


def _short_packs(db: sqlite3.Connection) -> list[int]:
    """Packs with fewer object rows than their index lists (one scan of the objects table)."""
    return [
        r[0]
        for r in db.execute(
            "SELECT p.no FROM packs p LEFT JOIN "
            "(SELECT pack, COUNT(*) AS n FROM objects GROUP BY pack) o ON o.pack = p.no "
            "WHERE COALESCE(o.n, 0) < p.count"
        )
    ]
