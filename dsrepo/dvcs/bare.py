"""A bare repository: an object store plus a ref store, with no working copy.

Every repository is one (dulwich's ``BaseRepo(object_store, refs)``): the local
:class:`~dsrepo.dvcs.repository.Repository` adds a working copy and configuration to it, a
remote (:mod:`dsrepo.dvcs.remote`) is one over its backend, and :meth:`BareRepository.in_memory`
gives one in memory for tests. Code that needs only objects and refs (reachability, transfer,
tree walks) takes a ``BareRepository``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Self

from dsrepo.dvcs.refs import RefStore
from dsrepo.objects.chunking import ChunkerParams, RepoFormat
from dsrepo.objects.ids import ObjectId, from_hex
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.locindex import LocationIndex
from dsrepo.objects.model import Commit, Manifest, ObjectType, Tag, Tree, TreeEntry
from dsrepo.objects.store import ObjectStore
from dsrepo.remotes.base import Backend


class BareRepository:
    """Objects and refs over one backend."""

    def __init__(self, backend: Backend, store: ObjectStore, refs: RefStore) -> None:
        self.backend = backend
        self.store = store
        self.refs = refs
        self._last_dirs: tuple[ObjectId, dict[str, tuple[ObjectId, int]]] | None = None

    @classmethod
    def over(
        cls,
        backend: Backend,
        fmt: RepoFormat,
        *,
        index_path: Path | None = None,
        logs_dir: Path | None = None,
        writers: int = 1,
    ) -> BareRepository:
        """A bare repository over ``backend`` (whose format marker says ``fmt``). Its location
        index is cached at ``index_path`` (in memory when None) and brought up to date."""
        store = ObjectStore(backend, LocationIndex(index_path), fmt, writers=writers)
        store.sync_index()
        return cls(backend, store, RefStore(backend, logs_dir))

    @classmethod
    def in_memory(cls, fmt: RepoFormat | None = None) -> BareRepository:
        """An empty repository held in memory (tests, scratch work)."""
        from dsrepo.remotes.memory import MemoryBackend

        fmt = fmt or RepoFormat(chunker=ChunkerParams())
        backend = MemoryBackend()
        ObjectStore.initialize(backend, fmt)
        return cls.over(backend, fmt)

    def close(self) -> None:
        self.store.close()
        self.backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        return self.backend.describe()

    # ------------------------------------------------------------ objects

    def object_size(self, oid: ObjectId) -> int:
        """The size of an object's content (a chunk's bytes, a structured object's encoding)."""
        return self.store.object_size(oid)

    def get_object(self, oid: ObjectId) -> Commit | Tag | Tree | Manifest | bytes:
        """An object, verified against its id: decoded, or a chunk's bytes."""
        if self.store.object_type(oid) == ObjectType.CHUNK:
            return self.store.get_raw(oid)[1]
        return self.store.get(oid)

    def get_commit(self, oid: ObjectId) -> Commit:
        """The commit ``oid`` (FormatError for another type of object)."""
        return self.store.get_commit(oid)

    def get_tag(self, oid: ObjectId) -> Tag:
        """The annotated tag ``oid`` (FormatError for another type of object)."""
        return self.store.get_tag(oid)

    # ------------------------------------------------------------ trees and history

    def lookup_path(self, tree: ObjectId, path: str) -> TreeEntry | None:
        entry: TreeEntry | None = None
        current: ObjectId | None = tree
        for part in path.strip("/").split("/"):
            if current is None:
                return None
            entry = next((e for e in self.store.tree_entries(current) if e.name == part), None)
            if entry is None:
                return None
            current = entry.id if entry.kind == EntryKind.TREE else None
        return entry

    def walk_tree(
        self,
        tree: ObjectId,
        prefix: str = "",
        dirs: dict[str, tuple[ObjectId, int]] | None = None,
    ) -> Iterator[tuple[str, TreeEntry]]:
        """Every non-tree entry below ``tree`` as (path, entry), depth first; ``dirs`` (when
        given) receives every directory's (tree id, size), the top one as ``prefix`` minus
        its slash."""
        stack: list[tuple[str, ObjectId]] = [(prefix, tree)]
        while stack:
            base, tid = stack.pop()
            entries = self.store.tree_entries(tid)
            subtrees = []
            for e in entries:
                path = f"{base}{e.name}"
                if e.kind == EntryKind.TREE:
                    subtrees.append((path + "/", e.id))
                    if dirs is not None:
                        dirs[path] = (e.id, e.size)
                else:
                    yield path, e
            if dirs is not None and base == prefix:
                dirs[prefix.removesuffix("/")] = (tid, sum(e.size for e in entries))
            stack.extend(reversed(subtrees))

    def walk_in_order(
        self,
        tree: ObjectId,
        *,
        dirs: dict[str, tuple[ObjectId, int]] | None = None,
        on_tree: Callable[[str, Sequence[TreeEntry]], None] | None = None,
    ) -> Iterator[tuple[str, TreeEntry]]:
        """Every non-tree entry below ``tree`` as (path, entry) in component order (the staging
        index's order: a folder's contents come where its name sorts), holding one tree per
        level. ``dirs`` as for :meth:`walk_tree`; ``on_tree(folder, entries)`` sees each tree
        (folder ``""`` for the top) before its entries are walked."""
        top = self.store.tree_entries(tree)
        if dirs is not None:
            dirs[""] = (tree, sum(e.size for e in top))
        if on_tree is not None:
            on_tree("", top)
        stack: list[tuple[str, Iterator[TreeEntry]]] = [("", iter(top))]
        while stack:
            base, entries = stack[-1]
            for e in entries:
                path = f"{base}{e.name}"
                if e.kind != EntryKind.TREE:
                    yield path, e
                    continue
                inner = self.store.tree_entries(e.id)
                if dirs is not None:
                    dirs[path] = (e.id, e.size)
                if on_tree is not None:
                    on_tree(path, inner)
                stack.append((path + "/", iter(inner)))
                break
            else:
                stack.pop()

    def flatten(self, tree: ObjectId | None) -> dict[str, TreeEntry]:
        if tree is None:
            return {}
        dirs: dict[str, tuple[ObjectId, int]] = {}
        files = dict(self.walk_tree(tree, dirs=dirs))
        self._last_dirs = (tree, dirs)
        return files

    def tree_dirs(self, tree: ObjectId) -> dict[str, tuple[ObjectId, int]]:
        """Directory ("" = the top) → (tree id, total size) for every directory of ``tree``."""
        if self._last_dirs is not None and self._last_dirs[0] == tree:
            return dict(self._last_dirs[1])
        dirs: dict[str, tuple[ObjectId, int]] = {}
        for _ in self.walk_tree(tree, dirs=dirs):
            pass
        return dirs

    def commit_tree(self, commit: ObjectId | None) -> ObjectId | None:
        return None if commit is None else self.store.get_commit(commit).tree

    def parents_of(self, commit_hex: str) -> tuple[str, ...]:
        """Parents of a commit, as hex ids (the form dsrepo.dvcs.graph works in)."""
        return tuple(p.hex() for p in self.store.get_commit(from_hex(commit_hex)).parents)
