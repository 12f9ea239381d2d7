"""The staging index, ``.dsrepo/index``: for every staged path, what the next commit will record
(kind, size, content id, manifest) and the file's stat when it was hashed (size, mtime_ns,
ctime_ns, inode, mode), so that ``status`` re-hashes only files whose stat changed. Loaded and
saved whole (atomic replace), and saved only by a process holding the index lock
(:mod:`dsrepo.dvcs.lock`). The verbs that use it are in :mod:`dsrepo.dvcs.worktree`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgpack

from dsrepo.dvcs.errors import RepositoryError
from dsrepo.dvcs.fsutil import atomic_write
from dsrepo.dvcs.lock import index_lock
from dsrepo.dvcs.scan import ScanEntry
from dsrepo.objects.errors import StorageUnavailable
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import TreeEntry

INDEX_VERSION = 1


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

    def tree_entry(self, name: str) -> TreeEntry:
        return TreeEntry(name, self.kind, self.size, self.content_id, self.manifest)

    @property
    def version(self) -> tuple[EntryKind, ObjectId]:
        return (self.kind, self.content_id)


class StagingIndex:
    """The staged snapshot plus stat cache; loaded and saved whole (atomic replace), saved only
    under the index lock (:mod:`dsrepo.dvcs.lock`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, IndexEntry] = {}
        self.stamp_ns = 0
        self.dirty = False
        self.tree: ObjectId | None = None
        """The tree id the staged snapshot equals, when known (git's cache-tree, for the whole
        tree): set when a commit or checkout makes the index match a tree, cleared by any
        change to a path's content. Lets a no-op status skip reading HEAD's trees."""
        self.disk: tuple[int, int, int] | None = None
        """(inode, size, mtime) of the file as read or last saved: who saves without having
        read it under the lock first checks that it is still the same file."""
        if path.exists():
            self._load()

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
                st = os.fstat(f.fileno())
            self.stamp_ns = st.st_mtime_ns
            self.disk = (st.st_ino, st.st_size, st.st_mtime_ns)
            doc = msgpack.unpackb(raw, raw=False, use_list=False)
            if doc[0] != INDEX_VERSION:
                raise ValueError("version")
            for p, k, size, cid, man, mt, ct, ino, mode in doc[1]:
                self.entries[p] = IndexEntry(p, EntryKind(k), size, cid, man, mt, ct, ino, mode)
            self.tree = doc[2] if len(doc) > 2 else None
        except Exception:
            raise RepositoryError(
                f"the staging index {self.path} is unreadable; delete it and run "
                "'dsrepo restore --staged .' to rebuild it from HEAD"
            ) from None

    def save(self) -> None:
        lock = index_lock(self.path.parent)
        if not lock.held_here():
            raise RepositoryError(
                f"the staging index {self.path} may only be written holding {lock.path}"
            )
        rows = [
            (
                e.path,
                int(e.kind),
                e.size,
                e.content_id,
                e.manifest,
                e.mtime_ns,
                e.ctime_ns,
                e.ino,
                e.mode,
            )
            for e in sorted(self.entries.values(), key=lambda e: e.path)
        ]
        doc = [INDEX_VERSION, rows, self.tree]
        atomic_write(self.path, msgpack.packb(doc, use_bin_type=True))
        st = os.stat(self.path)
        self.stamp_ns = st.st_mtime_ns
        self.disk = (st.st_ino, st.st_size, st.st_mtime_ns)
        self.dirty = False

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

    def is_racy(self, e: IndexEntry) -> bool:
        return e.mtime_ns >= self.stamp_ns

    def set(self, e: IndexEntry) -> None:
        old = self.entries.get(e.path)
        if old is None or old.version != e.version:
            self.tree = None
        self.entries[e.path] = e
        self.dirty = True

    def remove(self, path: str) -> None:
        if self.entries.pop(path, None) is not None:
            self.tree = None
            self.dirty = True

    def under(self, prefix: str) -> Iterator[IndexEntry]:
        if not prefix:
            yield from self.entries.values()
            return
        pre = prefix.rstrip("/") + "/"
        for p, e in self.entries.items():
            if p == prefix or p.startswith(pre):
                yield e
