"""The staging index, ``.dsrepo/index``: for every staged path, what the next commit will record
(kind, size, content id, manifest) and the file's stat when it was hashed (size, mtime_ns,
ctime_ns, inode, mode), so that ``status`` re-hashes only files whose stat changed; plus a tree
cache, ``.dsrepo/index-trees``: the tree id of every directory whose entries have not changed
since its tree was last built (git's cache-tree), so a commit rebuilds only the trees on the
changed paths.

Held as columns sorted in component order (:mod:`dsrepo.dvcs.indexformat`); changes gather in a
small overlay that is merged into the columns when the index is walked in order or saved, so
``add`` of a few paths to a million-entry index costs a few bisections and one write. Saved
whole (atomic replace), and only by a process holding the index lock (:mod:`dsrepo.dvcs.lock`).
The verbs that use it are in :mod:`dsrepo.dvcs.worktree`.
"""

from __future__ import annotations

import contextlib
import os
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from dsrepo.dvcs.errors import RepositoryError
from dsrepo.dvcs.fsutil import atomic_write
from dsrepo.dvcs.indexformat import (
    ID_SIZE,
    Columns,
    IndexFormatError,
    decode,
    decode_trees,
    decode_v1,
    encode,
    encode_trees,
)
from dsrepo.dvcs.lock import index_lock
from dsrepo.dvcs.scan import ScanEntry, path_sort_key
from dsrepo.objects.errors import StorageUnavailable
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import TreeEntry, new_tree_entry

_KINDS = tuple(EntryKind)
_MAX_PENDING = 1 << 16
"""Changes held as objects before new paths in order are appended to the columns: bounds the
memory of a first ``add`` (which walks in column order)."""
_LOOKUPS_BEFORE_DICT = 64
"""Lookups by bisection before a path → row dict is built, at least; with more rows, one per 32
rows (a bisection costs ~4 µs, the dict ~0.15 µs a row: 47 ms at 300k rows, so a commit -a of
1,000 files at 300k bisects instead)."""


@dataclass(slots=True)
class IndexEntry:
    path: str
    kind: EntryKind
    size: int
    content_id: ObjectId
    manifest: ObjectId | None
    mtime_ns: int = 0
    ctime_ns: int = 0
    ino: int = 0
    mode: int = 0

    def same_stat(self, s: ScanEntry) -> bool:
        return (
            self.size == s.size
            and self.mtime_ns == s.mtime_ns
            and self.ctime_ns == s.ctime_ns
            and self.ino == s.ino
            and self.kind == s.kind
        )

    @classmethod
    def written(cls, path: str, e: TreeEntry, st: os.stat_result) -> IndexEntry:
        """The entry for a file just materialized from ``e``, with the stat it now has."""
        return cls(
            path,
            e.kind,
            e.size,
            e.id,
            e.manifest,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
            st.st_mode,
        )

    def tree_entry(self, name: str | None = None) -> TreeEntry:
        """The entry as a tree records it, under ``name`` (default: its path's last part)."""
        if name is None:
            name = self.path.rsplit("/", 1)[-1]
        return TreeEntry(name, self.kind, self.size, self.content_id, self.manifest)

    @property
    def version(self) -> tuple[EntryKind, ObjectId]:
        return (self.kind, self.content_id)

    @property
    def recorded(self) -> tuple[EntryKind, int, ObjectId, ObjectId | None]:
        """What a tree records of it: a change here invalidates the trees above it."""
        return (self.kind, self.size, self.content_id, self.manifest)


def parent_dirs(path: str) -> Iterator[str]:
    """The directories holding ``path``, innermost first, ending with the root ""."""
    while path:
        path = path.rpartition("/")[0]
        yield path


def _under_bounds(prefix: str) -> tuple[bytes, bytes]:
    """Sort keys bracketing ``prefix`` and everything below it (component order)."""
    k = path_sort_key(prefix)
    return k, k + b"\x01"


class StagingIndex:
    """The staged snapshot, stat cache and tree cache; loaded and saved whole (atomic replace),
    saved only under the index lock (:mod:`dsrepo.dvcs.lock`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.trees_path = path.with_name(path.name + "-trees")
        self._cols = Columns()
        self._pending: dict[str, IndexEntry | None] = {}
        self._rows: dict[str, int] | None = None
        self._lookups = 0
        self._pending_dirs: set[str] = set()
        """The folders of the paths set in the overlay (a superset after removals)."""
        self._fresh: set[str] = set()
        """Paths set since the file was read (see _smudge_racy)."""
        self._flush_at = _MAX_PENDING
        self.trees: dict[str, tuple[ObjectId, int]] = {}
        """Directory ("" = root) → (tree id, total size) of the tree its staged entries make,
        for every directory none of whose entries changed since (git's cache-tree)."""
        self._digest = b""
        self._trees_digest = b""
        self.stamp_ns = 0
        self.dirty = False
        self.upgraded_from: int | None = None
        """1 when the file was in format 1 (it is rewritten in format 2 by the next save)."""
        self.disk: tuple[int, int, int] | None = None
        """(inode, size, mtime) of the file as read or last saved: who saves without having
        read it under the lock first checks that it is still the same file."""
        if path.exists():
            self._load()

    # ------------------------------------------------------------ load and save

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
                st = os.fstat(f.fileno())
        except OSError as exc:
            raise RepositoryError(
                f"cannot read the staging index {self.path}: {exc.strerror or exc}"
            ) from None
        self.stamp_ns = st.st_mtime_ns
        self.disk = (st.st_ino, st.st_size, st.st_mtime_ns)
        try:
            if raw.startswith(b"DSRINDEX"):
                self._cols, self._digest = decode(raw)
                self._load_trees()
            else:
                self._load_v1(raw)
        except IndexFormatError as exc:
            raise RepositoryError(
                f"the staging index {self.path} is unreadable ({exc}); delete it and run "
                "'dsrepo restore --staged .' to rebuild it from HEAD"
            ) from None
        except Exception:
            raise RepositoryError(
                f"the staging index {self.path} is unreadable; delete it and run "
                "'dsrepo restore --staged .' to rebuild it from HEAD"
            ) from None

    def _load_v1(self, raw: bytes) -> None:
        rows, tree = decode_v1(raw)
        for p, k, size, cid, man, mt, ct, ino, mode in rows:
            self._pending[p] = IndexEntry(p, EntryKind(k), size, cid, man, mt, ct, ino, mode)
        self._flush()
        if tree is not None:
            self.trees[""] = (ObjectId(tree), sum(self._cols.sizes))
        self.upgraded_from = 1
        self.dirty = True

    def _load_trees(self) -> None:
        try:
            raw = self.trees_path.read_bytes()
        except OSError:
            return
        self.trees = decode_trees(raw, self._digest)
        self._trees_digest = self._tree_state()

    def _tree_state(self) -> bytes:
        return encode_trees(self._digest, self.trees)

    def save(self) -> None:
        """Write the index, then its tree cache (each atomically)."""
        self._check_lock()
        self._flush()
        self._smudge_racy()
        parts, digest = encode(self._cols)
        atomic_write(self.path, parts)
        st = os.stat(self.path)
        self.stamp_ns = st.st_mtime_ns
        self.disk = (st.st_ino, st.st_size, st.st_mtime_ns)
        self._digest = digest
        self.dirty = False
        self.upgraded_from = None
        self.save_trees()

    def _smudge_racy(self) -> None:
        """Entries that were racily clean when the index was read (mtime not older than the
        file) and that nobody re-hashed since would look clean once the new file's later mtime
        is their reference: forget their mtime so the next status hashes them (git smudges them
        the same way). Entries set since the read carry the stat of their own hashing."""
        stamp = self.stamp_ns
        if not stamp:
            return
        cols = self._cols
        mtimes = cols.mtimes
        if not mtimes or max(mtimes) < stamp:  # the common case, at C speed
            self._fresh.clear()
            return
        for i in [i for i, m in enumerate(mtimes) if m >= stamp]:
            if cols.paths[i] not in self._fresh:
                mtimes[i] = 0
        self._fresh.clear()

    def save_trees(self) -> None:
        """Write the tree cache alone (a commit changes it, not the entries), if it changed."""
        self._check_lock()
        if self.dirty:
            self.save()
            return
        state = self._tree_state()
        if state != self._trees_digest:
            atomic_write(self.trees_path, state)
            self._trees_digest = state

    def _check_lock(self) -> None:
        lock = index_lock(self.path.parent)
        if not lock.held_here():
            raise RepositoryError(
                f"the staging index {self.path} may only be written holding {lock.path}"
            )

    def save_if_unchanged(self) -> None:
        """Save a refreshed stat cache, but never wait for the lock and never fail: not when
        another process holds it, nor when the file changed since it was read (the refresh is
        only a cache), nor in a read-only repository."""
        lock = index_lock(self.path.parent)
        if not lock.try_acquire():
            return
        try:
            try:
                st = os.stat(self.path)
                now: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
            except FileNotFoundError:
                now = None
            if now == self.disk:
                with contextlib.suppress(OSError, StorageUnavailable):  # full or read-only
                    self.save()
        finally:
            lock.release()

    # ------------------------------------------------------------ reading

    def __len__(self) -> int:
        self._flush()
        return len(self._cols.paths)

    def _entry(self, i: int) -> IndexEntry:
        c = self._cols
        p = c.paths[i]
        return IndexEntry(
            p,
            _KINDS[c.kinds[i]],
            c.sizes[i],
            c.content_id(i),
            c.manifests.get(p),
            c.mtimes[i],
            c.ctimes[i],
            c.inos[i],
            c.modes[i],
        )

    def _row(self, path: str) -> int | None:
        if self._rows is None:
            paths = self._cols.paths
            if not paths or path_sort_key(path) > path_sort_key(paths[-1]):
                return None  # after every row: what a first add asks about, no dict needed
            self._lookups += 1
            if self._lookups <= max(_LOOKUPS_BEFORE_DICT, len(paths) >> 5):
                i = bisect_left(paths, path_sort_key(path), key=path_sort_key)
                return i if i < len(paths) and paths[i] == path else None
            self._rows = {p: i for i, p in enumerate(self._cols.paths)}
        return self._rows.get(path)

    def get(self, path: str) -> IndexEntry | None:
        if path in self._pending:
            return self._pending[path]
        i = self._row(path)
        return None if i is None else self._entry(i)

    def __contains__(self, path: str) -> bool:
        if path in self._pending:
            return self._pending[path] is not None
        return self._row(path) is not None

    def paths(self) -> list[str]:
        """Every staged path, in component order (the list itself: do not change it)."""
        self._flush()
        return self._cols.paths

    def __iter__(self) -> Iterator[IndexEntry]:
        """Every entry, in component order."""
        self._flush()
        for i in range(len(self._cols.paths)):
            yield self._entry(i)

    def rows_under(self, prefix: str, lo: int = 0, hi: int | None = None) -> tuple[int, int]:
        """The row range [start, end) of ``prefix`` and everything below it."""
        self._flush()
        paths = self._cols.paths
        if not prefix:
            return 0, len(paths)
        a, b = _under_bounds(prefix)
        hi = len(paths) if hi is None else hi
        start = bisect_left(paths, a, lo, hi, key=path_sort_key)
        return start, bisect_left(paths, b, start, hi, key=path_sort_key)

    def under(self, prefix: str) -> Iterator[IndexEntry]:
        start, end = self.rows_under(prefix)
        for i in range(start, end):
            yield self._entry(i)

    def columns(self) -> Columns:
        """The entries as sorted columns (read only), for walks over a million entries."""
        self._flush()
        return self._cols

    def entry_at(self, i: int) -> IndexEntry:
        return self._entry(i)

    def tree_entry_at(self, i: int, name: str) -> TreeEntry:
        """Row ``i`` as its tree records it, under ``name`` (no IndexEntry built)."""
        c = self._cols
        return new_tree_entry(
            name, _KINDS[c.kinds[i]], c.sizes[i], c.content_id(i), c.manifests.get(c.paths[i])
        )

    def is_racy(self, e: IndexEntry) -> bool:
        return e.mtime_ns >= self.stamp_ns

    @property
    def entries(self) -> EntriesView:
        """The entries as a read-only mapping path → IndexEntry (iterates in component order)."""
        return EntriesView(self)

    @property
    def tree(self) -> ObjectId | None:
        """The tree id the whole staged snapshot equals, when known."""
        root = self.trees.get("")
        return None if root is None else root[0]

    # ------------------------------------------------------------ changing

    def set(self, e: IndexEntry) -> None:
        """Stage ``e``; a new path replaces what conflicts with it (git's rule): a staged file
        where one of its folders is, and staged files below it when it was a folder."""
        old = self.get(e.path)
        if old is None:
            self._drop_conflicts(e.path)
        if old is None or old.recorded != e.recorded:
            self._invalidate(e.path)
        self._pending[e.path] = e
        self._note_folders(e.path)
        self.dirty = True
        if self.stamp_ns:
            self._fresh.add(e.path)
        if len(self._pending) >= self._flush_at and not self._flush(append_only=True):
            self._flush_at *= 2  # not in order: merging now would cost O(rows) each time

    def _note_folders(self, path: str) -> None:
        folders = self._pending_dirs
        d = path.rpartition("/")[0]
        while d and d not in folders:  # its parents are in already when it is
            folders.add(d)
            d = d.rpartition("/")[0]

    def _drop_conflicts(self, path: str) -> None:
        # first the overlay: a file staged at a folder of ``path``, or paths below ``path``
        pending = self._pending
        d = path.rpartition("/")[0]
        while d:
            if pending.get(d) is not None:
                self.remove(d)
            d = d.rpartition("/")[0]
        if path in self._pending_dirs:
            below = path + "/"
            for p in [p for p, e in self._pending.items() if e is not None and p.startswith(below)]:
                self.remove(p)
        paths = self._cols.paths
        if not paths:
            return
        # In component order a staged file sorts right before the paths below it, and the
        # paths below ``path`` right after it: one bisection finds both conflicts (none when
        # the new path comes after every row, as in a first add).
        key = path_sort_key(path)
        pos = (
            len(paths)
            if key > path_sort_key(paths[-1])
            else bisect_left(paths, key, key=path_sort_key)
        )
        before = paths[pos - 1] if pos else ""
        if before and path.startswith(before + "/") and self.get(before) is not None:
            self.remove(before)
        if pos < len(paths) and paths[pos].startswith(path + "/"):
            start, end = self.rows_under(path)
            for p in self.paths()[start:end]:
                if p != path:
                    self.remove(p)

    def remove(self, path: str) -> None:
        if self.get(path) is not None:
            self._invalidate(path)
            self._pending[path] = None
            self.dirty = True

    def replace_all(self, entries: Iterable[IndexEntry]) -> None:
        """Make ``entries`` the whole content (the tree cache is dropped)."""
        self._cols = Columns()
        self._rows = None
        self._pending = {}
        self._pending_dirs = set()
        for e in entries:  # the caller vouches for their stat, as for set()
            self._pending[e.path] = e
            self._note_folders(e.path)
            if self.stamp_ns:
                self._fresh.add(e.path)
        self.trees = {}
        self.dirty = True

    def set_trees(self, trees: Mapping[str, tuple[ObjectId, int]]) -> None:
        """Record that the staged entries make these trees (after a commit or checkout)."""
        self.trees = dict(trees)

    def _invalidate(self, path: str) -> None:
        trees = self.trees
        if trees:
            for d in parent_dirs(path):
                trees.pop(d, None)

    def _flush(self, append_only: bool = False) -> bool:
        """Merge the overlay into the sorted columns; with ``append_only``, only if every
        change is a new path after the last row (returns whether the overlay was merged)."""
        if not self._pending:
            return True
        pending = sorted(self._pending.items(), key=lambda kv: path_sort_key(kv[0]))
        old = self._cols
        if (not old.paths or path_sort_key(pending[0][0]) > path_sort_key(old.paths[-1])) and all(
            e is not None for _, e in pending
        ):  # new paths after every row (a first add walks in this order): append in place
            self._pending = {}
            self._pending_dirs = set()
            rows = self._rows
            for path, e in pending:
                assert e is not None
                if rows is not None:
                    rows[path] = len(old.paths)
                _append(old, e)
            return True
        if append_only:
            return False
        if self._replace_in_place(pending):
            return True
        self._pending = {}
        self._pending_dirs = set()
        self._rows = None
        new = Columns(manifests=dict(old.manifests))
        n = len(old.paths)
        pos = 0
        # many changes: sort keys of every row once, then bisect at C speed
        keys = [path_sort_key(p) for p in old.paths] if len(pending) * 16 > n else None
        for path, e in pending:
            key = path_sort_key(path)
            if keys is not None:
                i = bisect_left(keys, key, pos, n)
            else:
                i = bisect_left(old.paths, key, pos, n, key=path_sort_key)
            _copy_rows(old, new, pos, i)
            pos = i
            if i < n and old.paths[i] == path:
                pos = i + 1  # replaced or removed
                new.manifests.pop(path, None)
            if e is not None:
                _append(new, e)
        _copy_rows(old, new, pos, n)
        self._cols = new
        return True

    def _replace_in_place(self, pending: list[tuple[str, IndexEntry | None]]) -> bool:
        """Merge an overlay that only re-stages existing paths (``commit -a``, ``add`` of
        modified files) by overwriting their rows: no copy of a million rows. False (nothing
        changed) when a path is new or removed."""
        cols = self._cols
        paths, n = cols.paths, len(cols.paths)
        rows: list[int] = []
        pos = 0
        for path, e in pending:
            i = bisect_left(paths, path_sort_key(path), pos, n, key=path_sort_key)
            if e is None or i >= n or paths[i] != path:
                return False
            rows.append(i)
            pos = i + 1
        for i, (path, e) in zip(rows, pending, strict=True):
            assert e is not None
            cols.kinds[i] = int(e.kind)
            cols.sizes[i], cols.mtimes[i], cols.ctimes[i] = e.size, e.mtime_ns, e.ctime_ns
            cols.inos[i], cols.modes[i] = e.ino, e.mode
            cols.ids[i * ID_SIZE : (i + 1) * ID_SIZE] = e.content_id
            if e.manifest is not None:
                cols.manifests[path] = e.manifest
            else:
                cols.manifests.pop(path, None)
        self._pending = {}
        self._pending_dirs = set()
        return True


def _copy_rows(src: Columns, dst: Columns, start: int, end: int) -> None:
    if start >= end:
        return
    dst.paths += src.paths[start:end]
    dst.kinds += src.kinds[start:end]
    for a, b in zip(dst.numeric(), src.numeric(), strict=True):
        a += b[start:end]
    dst.ids += src.ids[start * ID_SIZE : end * ID_SIZE]


def _append(c: Columns, e: IndexEntry) -> None:
    c.paths.append(e.path)
    c.kinds.append(int(e.kind))
    c.sizes.append(e.size)
    c.mtimes.append(e.mtime_ns)
    c.ctimes.append(e.ctime_ns)
    c.inos.append(e.ino)
    c.modes.append(e.mode)
    c.ids += e.content_id
    if e.manifest is not None:
        c.manifests[e.path] = e.manifest
    else:
        c.manifests.pop(e.path, None)


class EntriesView(Mapping[str, IndexEntry]):
    """A read-only mapping view of a StagingIndex (component order)."""

    __slots__ = ("_index",)

    def __init__(self, index: StagingIndex) -> None:
        self._index = index

    def __getitem__(self, path: str) -> IndexEntry:
        e = self._index.get(path)
        if e is None:
            raise KeyError(path)
        return e

    def get(self, path: str, default: IndexEntry | None = None) -> IndexEntry | None:  # type: ignore[override]
        e = self._index.get(path)
        return default if e is None else e

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and path in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._index.paths()))

    def __len__(self) -> int:
        return len(self._index)

    def values(self) -> Iterator[IndexEntry]:  # type: ignore[override]
        return iter(self._index)

    def items(self) -> Iterator[tuple[str, IndexEntry]]:  # type: ignore[override]
        return ((e.path, e) for e in self._index)
