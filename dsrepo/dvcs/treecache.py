"""Trees from the staging index, rebuilt only where entries changed (git's cache-tree).

The index keeps, per directory, the id and size of the tree its entries made when last built
(:attr:`StagingIndex.trees`); any change to an entry drops the directories above it. Writing
the index's tree then rebuilds only the dropped directories, and comparing the index with a
commit's tree descends only where a cached id differs from the commit's: both cost what changed.
A test (tests/dvcs/test_treecache.py) checks the cache against full rebuilds after random
sequences of add, rm, mv, commit, checkout and merge.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import PathError
from dsrepo.dvcs.integrity import show_path
from dsrepo.dvcs.scan import path_sort_key
from dsrepo.dvcs.stagingindex import StagingIndex
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import TreeEntry, path_limit_problem

if TYPE_CHECKING:
    from dsrepo.dvcs.bare import BareRepository
    from dsrepo.objects.store import ObjectStore


def _children(
    index: StagingIndex, d: str, lo: int, hi: int
) -> Iterator[tuple[str, int, int, bool]]:
    """The direct children of directory ``d`` whose rows are [lo, hi): (name, start, end, is a
    file), a file as one row, a subdirectory as the range of its rows."""
    paths = index.columns().paths
    plen = len(d) + 1 if d else 0
    i = lo
    while i < hi:
        p = paths[i]
        slash = p.find("/", plen)
        if slash < 0:
            yield p[plen:], i, i + 1, True
            i += 1
        else:
            sub = p[:slash]
            j = bisect_left(paths, path_sort_key(sub) + b"\x01", i + 1, hi, key=path_sort_key)
            yield p[plen:slash], i, j, False
            i = j


def write_index_tree(store: ObjectStore, index: StagingIndex) -> ObjectId:
    """Store the trees of the staged snapshot (only those not in the index's tree cache, or
    whose cached object the store lacks) and return the root tree id; the cache is updated.

    A path beyond the limits every tree is held to (``MAX_TREE_DEPTH``, ``MAX_PATH_BYTES``,
    ``MAX_NAME_BYTES`` in :mod:`dsrepo.objects.model`) raises PathError: such a tree would be
    refused by fetch, clone and get, and reported by fsck."""
    trees = index.trees
    paths = index.columns().paths
    absent = store.missing([tid for tid, _ in trees.values()])  # one batched lookup
    if absent:
        for d in [d for d, (tid, _) in trees.items() if tid in absent]:
            del trees[d]

    def build(d: str, lo: int, hi: int) -> tuple[ObjectId, int]:
        cached = trees.get(d)
        if cached is not None:
            return cached
        entries = []
        total = 0
        for name, start, end, is_file in _children(index, d, lo, hi):
            if is_file:
                problem = path_limit_problem(paths[start])
                if problem:
                    raise PathError(f"cannot record {show_path(paths[start])}: {problem}")
                e = index.tree_entry_at(start, name)
            else:
                tid, size = build(f"{d}/{name}" if d else name, start, end)
                e = TreeEntry(name, EntryKind.TREE, size, tid)
            entries.append(e)
            total += e.size
        tid = store.put_tree(entries)
        trees[d] = (tid, total)
        return tid, total

    return build("", 0, len(paths))[0]


@dataclass
class StagedChanges:
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def staged_changes(
    repo: BareRepository, index: StagingIndex, head_tree: ObjectId | None
) -> StagedChanges:
    """Paths whose staged entry differs from ``head_tree``'s: added, modified, deleted (sorted
    in component order). Directories whose cached tree id is the head's are not opened."""
    out = StagedChanges()
    paths = index.columns().paths
    if head_tree is None:
        out.added = list(paths)
        return out
    trees = index.trees

    def diff(d: str, lo: int, hi: int, tid: ObjectId) -> None:
        cached = trees.get(d)
        if cached is not None and cached[0] == tid:
            return
        prefix = f"{d}/" if d else ""
        head = {e.name: e for e in repo.store.tree_entries(tid)}
        for name, start, end, is_file in _children(index, d, lo, hi):
            path = prefix + name
            h = head.pop(name, None)
            if h is None:
                out.added += paths[start:end]
            elif h.kind == EntryKind.TREE:
                if is_file:  # a file where HEAD has a folder
                    out.added.append(path)
                    out.deleted += [p for p, _ in repo.walk_tree(h.id, path + "/")]
                else:
                    diff(path, start, end, h.id)
            elif not is_file:  # a folder where HEAD has a file
                out.deleted.append(path)
                out.added += paths[start:end]
            else:
                mine = index.tree_entry_at(start, name)
                if (mine.kind, mine.id) != (h.kind, h.id):
                    out.modified.append(path)
        for name, h in head.items():
            path = prefix + name
            if h.kind == EntryKind.TREE:
                out.deleted += [p for p, _ in repo.walk_tree(h.id, path + "/")]
            else:
                out.deleted.append(path)

    diff("", 0, len(paths), head_tree)
    return out
