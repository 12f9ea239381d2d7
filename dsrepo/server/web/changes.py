"""What changed between two trees, as the version and compare pages show it: counts and bytes of
added, modified, removed and renamed files, and the list of changed files up to a limit.

The walk reads only what differs: identical subtrees are skipped unread, and in a sharded folder
the shards both sides share are skipped too. A folder added or removed whole is listed file by
file while under the listing limit; past it, it is counted from its tree entry (its size is in
the entry; its file count is bounded, see :func:`trees.count_files`), so a first version of a
million files summarizes in the time of a few tree reads. Renames (same content, new path) are
paired among the listed changes, as ``dsrepo diff`` pairs them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dsrepo.dvcs.history import DiffResult, classify
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import Tree, TreeEntry
from dsrepo.objects.store import ObjectStore
from dsrepo.server.web.trees import Budget, Count, count_files, shard_entries, walk_files

Triple = tuple[str, TreeEntry | None, TreeEntry | None]

LIST_LIMIT = 20_000
"""Changed files listed (and paired into renames) per comparison; the rest are only counted."""


def _differing(
    store: ObjectStore, a: ObjectId | None, b: ObjectId | None
) -> tuple[list[TreeEntry], list[TreeEntry]]:
    """The entries of two trees that may differ, each side in tree order: all of them, except
    those of shards both sides have (a name in a shared shard is in no other shard of either)."""
    ta = store.get_tree(a) if a is not None else Tree()
    tb = store.get_tree(b) if b is not None else Tree()
    shared = {s.id for s in ta.shards} & {s.id for s in tb.shards}

    def entries(tid: ObjectId | None, tree: Tree) -> list[TreeEntry]:
        if not tree.shards:
            return list(tree.entries)
        assert tid is not None
        out: list[TreeEntry] = []
        for ref in tree.shards:
            if ref.id not in shared:
                out.extend(shard_entries(store, tid, ref))
        return out

    return entries(a, ta), entries(b, tb)


def _pairs(
    xs: list[TreeEntry], ys: list[TreeEntry]
) -> Iterator[tuple[TreeEntry | None, TreeEntry | None]]:
    """Entries of two sorted lists that differ, paired by name (a merge join: equal entries,
    the common case, cost one name and one id comparison)."""
    i = j = 0
    nx, ny = len(xs), len(ys)
    while i < nx and j < ny:
        x, y = xs[i], ys[j]
        if x.name == y.name:
            if x.id != y.id or x.kind != y.kind:
                yield x, y
            i += 1
            j += 1
        elif x.name.encode("utf-8") < y.name.encode("utf-8"):
            yield x, None
            i += 1
        else:
            yield None, y
            j += 1
    for x in xs[i:]:
        yield x, None
    for y in ys[j:]:
        yield None, y


def diff_nodes(
    store: ObjectStore, a: ObjectId | None, b: ObjectId | None, prefix: str = ""
) -> Iterator[Triple]:
    """(path, old, new) for each differing file, and for each folder present on one side only
    (its tree entry, not expanded), in tree order."""
    if a == b:
        return
    for x, y in _pairs(*_differing(store, a, b)):
        e = x if x is not None else y
        assert e is not None
        path = prefix + e.name
        x_tree = x is not None and x.kind == EntryKind.TREE
        y_tree = y is not None and y.kind == EntryKind.TREE
        if x is not None and y is not None and x_tree and y_tree:
            yield from diff_nodes(store, x.id, y.id, path + "/")
        elif x is not None and y is not None and not x_tree and not y_tree:
            yield path, x, y
        else:
            if x is not None:
                yield path, x, None
            if y is not None:
                yield path, None, y


@dataclass
class ChangeSummary:
    """Counts and bytes per kind of change, and the changes listed (``listed.changes``)."""

    listed: DiffResult = field(default_factory=DiffResult)
    added: Count = field(default_factory=lambda: Count(0))
    removed: Count = field(default_factory=lambda: Count(0))
    modified: int = 0
    renamed: int = 0
    bytes_added: int = 0
    bytes_removed: int = 0
    bytes_modified: int = 0
    """New size of the modified files."""
    delta_modified: int = 0
    """Their change in size (new minus old)."""
    bytes_renamed: int = 0
    complete: bool = True
    """Every change is in ``listed`` (False: past :data:`LIST_LIMIT`, the rest only counted)."""

    @property
    def empty(self) -> bool:
        return self.complete and not self.listed.changes

    @property
    def total(self) -> Count:
        return self.added + self.removed + Count(self.modified + self.renamed)


class _Recent:
    """The last few summaries, by trees and limits: trees are immutable (and named by their
    content), so a summary never goes stale, and a version page viewed again costs nothing."""

    def __init__(self, size: int = 8) -> None:
        self._items: OrderedDict[tuple[Any, ...], ChangeSummary] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, key: tuple[Any, ...]) -> ChangeSummary | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def put(self, key: tuple[Any, ...], value: ChangeSummary) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_RECENT = _Recent()


def summarize(
    store: ObjectStore,
    a: ObjectId | None,
    b: ObjectId | None,
    limit: int = LIST_LIMIT,
    count_budget: int = 200_000,
) -> ChangeSummary:
    """The changes from tree ``a`` to tree ``b`` (None: an empty tree)."""
    key = (a, b, limit, count_budget)
    hit = _RECENT.get(key)
    if hit is None:
        hit = _summarize(store, a, b, limit, count_budget)
        if hit.added.exact and hit.removed.exact:  # a bounded count may grow next time
            _RECENT.put(key, hit)
    return hit


def _summarize(
    store: ObjectStore, a: ObjectId | None, b: ObjectId | None, limit: int, count_budget: int
) -> ChangeSummary:
    listed: list[Triple] = []
    s = ChangeSummary()
    budget = Budget(count_budget)

    def coarse(
        x: TreeEntry | None, y: TreeEntry | None, skip: int = 0, skip_bytes: int = 0
    ) -> None:
        """Count a change without listing it (``skip`` files of a folder already listed)."""
        e = x if x is not None else y
        assert e is not None
        if e.kind == EntryKind.TREE:
            n = count_files(store, e.id, budget)
            count = Count(max(n.n - skip, 0), n.exact)
            size = e.size - skip_bytes
        else:
            count, size = Count(1), e.size
        if x is not None and y is not None:
            s.modified += 1
            s.bytes_modified += y.size
            s.delta_modified += y.size - x.size
        elif y is not None:
            s.added += count
            s.bytes_added += size
        else:
            s.removed += count
            s.bytes_removed += size

    for path, x, y in diff_nodes(store, a, b):
        e = x if x is not None else y
        assert e is not None
        if len(listed) >= limit:
            s.complete = False
            coarse(x, y)
        elif e.kind != EntryKind.TREE:
            listed.append((path, x, y))
        else:
            done = 0
            for n, (p, f) in enumerate(walk_files(store, e.id, path + "/")):
                if len(listed) >= limit:
                    s.complete = False
                    coarse(x, y, n, done)
                    break
                listed.append((p, f, None) if x is not None else (p, None, f))
                done += f.size
    result = classify(iter(listed))
    s.listed = result
    s.added += Count(result.count("A"))
    s.removed += Count(result.count("D"))
    s.modified += result.count("M")
    s.renamed = result.count("R")
    s.bytes_added += result.bytes_added
    s.bytes_removed += result.bytes_removed
    s.bytes_modified += result.bytes_modified
    for c in result.changes:
        if c.status == "M" and c.old is not None and c.new is not None:
            s.delta_modified += c.new.size - c.old.size
        elif c.status == "R" and c.new is not None:
            s.bytes_renamed += c.new.size
    return s
