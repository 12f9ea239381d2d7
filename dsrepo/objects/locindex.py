"""The id → location index: which pack holds an object, where, and how.

The pack ``.idx`` files in the backend are the truth; this SQLite database is a local cache of
them, built for tens of millions of objects (one ``WITHOUT ROWID`` B-tree keyed by the 32-byte id).
It is reconciled with the backend's pack listing on open (``sync``): a crash between writing an
``.idx`` and recording it here, or a pack removed by ``gc``, is repaired, and a lost or damaged
database is rebuilt.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from dsrepo.objects.errors import AmbiguousId, ObjectNotFound
from dsrepo.objects.ids import ObjectId, validate_prefix
from dsrepo.objects.model import ObjectType
from dsrepo.objects.pack import IndexEntry, PackClass

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS packs (
    no INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, class INTEGER NOT NULL,
    count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    id BLOB PRIMARY KEY, pack INTEGER NOT NULL, offset INTEGER NOT NULL, stored INTEGER NOT NULL,
    raw INTEGER NOT NULL, type INTEGER NOT NULL, flags INTEGER NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Location:
    pack: str
    offset: int
    stored_size: int
    raw_size: int
    type: ObjectType
    flags: int


class LocationIndex:
    """SQLite-backed id → Location map. ``path=None`` keeps it in memory."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = self._connect()

    def _connect(self) -> sqlite3.Connection:
        target = ":memory:" if self.path is None else str(self.path)
        try:
            db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            db.executescript(_SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif row[0] != str(SCHEMA_VERSION):
                raise sqlite3.DatabaseError("schema version mismatch")
            return db
        except sqlite3.DatabaseError:
            if self.path is None:
                raise
            # A cache: rebuild from scratch (the caller's sync() repopulates it).
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
            return self._connect()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- packs

    def pack_names(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT name FROM packs")}

    def add_pack(self, name: str, pack_class: PackClass, entries: Iterable[IndexEntry]) -> None:
        """Record a pack and its objects (idempotent). An object already known keeps its place."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                if db.execute("SELECT 1 FROM packs WHERE name=?", (name,)).fetchone():
                    db.execute("ROLLBACK")
                    return
                cur = db.execute(
                    "INSERT INTO packs (name, class, count) VALUES (?, ?, 0)",
                    (name, int(pack_class)),
                )
                no = cur.lastrowid
                rows = [
                    (e.id, no, e.offset, e.stored_size, e.raw_size, int(e.type), e.flags)
                    for e in entries
                ]
                db.executemany("INSERT OR IGNORE INTO objects VALUES (?,?,?,?,?,?,?)", rows)
                db.execute("UPDATE packs SET count=? WHERE no=?", (len(rows), no))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def remove_pack(self, name: str) -> None:
        """Forget a pack. Objects it held that another pack also holds lose their location, so
        every pack left with fewer rows than its ``count`` (some of its objects were recorded
        under another pack) is forgotten too; callers re-sync after removals to re-add them."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT no FROM packs WHERE name=?", (name,)).fetchone()
            if row:
                db.execute("DELETE FROM objects WHERE pack=?", (row[0],))
                db.execute("DELETE FROM packs WHERE no=?", (row[0],))
                shadowed = db.execute(
                    "SELECT p.no FROM packs p LEFT JOIN "
                    "(SELECT pack, COUNT(*) AS n FROM objects GROUP BY pack) o ON o.pack = p.no "
                    "WHERE COALESCE(o.n, 0) < p.count"
                ).fetchall()
                for (no,) in shadowed:
                    db.execute("DELETE FROM objects WHERE pack=?", (no,))
                    db.execute("DELETE FROM packs WHERE no=?", (no,))
            db.execute("COMMIT")

    # -- objects

    def lookup(self, oid: bytes) -> Location | None:
        with self._lock:
            row = self._db.execute(
                "SELECT p.name, o.offset, o.stored, o.raw, o.type, o.flags "
                "FROM objects o JOIN packs p ON p.no = o.pack WHERE o.id=?",
                (oid,),
            ).fetchone()
        if row is None:
            return None
        return Location(row[0], row[1], row[2], row[3], ObjectType(row[4]), row[5])

    def lookup_many(self, oids: Sequence[bytes]) -> dict[bytes, Location]:
        """Locations of the ids that are indexed, a few queries for the whole batch."""
        out: dict[bytes, Location] = {}
        with self._lock:
            for i in range(0, len(oids), 500):
                part = oids[i : i + 500]
                rows = self._db.execute(
                    "SELECT o.id, p.name, o.offset, o.stored, o.raw, o.type, o.flags "
                    "FROM objects o JOIN packs p ON p.no = o.pack "
                    f"WHERE o.id IN ({','.join('?' * len(part))})",
                    part,
                ).fetchall()
                for r in rows:
                    out[r[0]] = Location(r[1], r[2], r[3], r[4], ObjectType(r[5]), r[6])
        return out

    def contains(self, oid: bytes) -> bool:
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM objects WHERE id=?", (oid,)).fetchone() is not None
            )

    def missing(self, oids: Iterable[bytes]) -> set[bytes]:
        """The subset of ``oids`` not in the index (one query per batch, not per id)."""
        wanted = set(oids)
        if not wanted:
            return set()
        with self._lock:
            db = self._db
            db.execute("CREATE TEMP TABLE IF NOT EXISTS probe (id BLOB PRIMARY KEY) WITHOUT ROWID")
            db.execute("DELETE FROM probe")
            db.executemany("INSERT OR IGNORE INTO probe VALUES (?)", ((o,) for o in wanted))
            found = {
                r[0] for r in db.execute("SELECT p.id FROM probe p JOIN objects o ON o.id = p.id")
            }
            db.execute("DELETE FROM probe")
        return wanted - found

    def count_objects(self, pack_class: PackClass) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(count), 0) FROM packs WHERE class = ?", (int(pack_class),)
            ).fetchone()
        return int(row[0])

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(count), 0) FROM packs").fetchone()[0])

    def resolve_prefix(self, prefix: str) -> ObjectId:
        """The one id starting with hex ``prefix``; AmbiguousId / ObjectNotFound otherwise."""
        validate_prefix(prefix)
        lo = bytes.fromhex(prefix.ljust(64, "0"))
        hi = bytes.fromhex(prefix.ljust(64, "f"))
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM objects WHERE id >= ? AND id <= ? LIMIT 11", (lo, hi)
            ).fetchall()
        if not rows:
            raise ObjectNotFound(f"no object matches {prefix!r}")
        if len(rows) > 1:
            shown = ", ".join(r[0].hex()[:12] for r in rows[:10])
            raise AmbiguousId(f"object id prefix {prefix!r} is ambiguous: {shown}")
        return ObjectId(rows[0][0])

    def iter_objects(
        self, pack_class: PackClass | None = None
    ) -> Iterator[tuple[ObjectId, Location]]:
        query = (
            "SELECT o.id, p.name, o.offset, o.stored, o.raw, o.type, o.flags "
            "FROM objects o JOIN packs p ON p.no = o.pack"
        )
        args: tuple[int, ...] = ()
        if pack_class is not None:
            query += " WHERE p.class = ?"
            args = (int(pack_class),)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY o.id", args).fetchall()
        for r in rows:
            yield ObjectId(r[0]), Location(r[1], r[2], r[3], r[4], ObjectType(r[5]), r[6])

    def pack_objects(self, name: str) -> list[tuple[ObjectId, Location]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT o.id, o.offset, o.stored, o.raw, o.type, o.flags FROM objects o "
                "JOIN packs p ON p.no = o.pack WHERE p.name=? ORDER BY o.offset",
                (name,),
            ).fetchall()
        return [
            (ObjectId(r[0]), Location(name, r[1], r[2], r[3], ObjectType(r[4]), r[5])) for r in rows
        ]
