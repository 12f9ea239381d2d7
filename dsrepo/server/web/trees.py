"""Reading trees for pages, at a cost bounded by what a page shows, not by the folder's size.

A folder of a million files is a sharded tree (about a thousand shards, each listed in the top
tree with its first name, entry count and total size). ``ObjectStore.tree_entries`` reads every
shard; here a path lookup reads the one shard whose name range holds the name, a page of a
listing reads only the shards it overlaps, a file count stops at a budget of tree reads (and
says it is a lower bound), and a diff skips the shards both sides share (shard boundaries depend
only on names, so one changed file changes one shard).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from dsrepo.objects.errors import FormatError
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import ShardRef, Tree, TreeEntry, tree_size
from dsrepo.objects.store import ObjectStore

__all__ = [
    "Budget",
    "Count",
    "count_files",
    "entries_page",
    "entry_count",
    "lookup",
    "tree_bytes",
    "walk_files",
]


def _key(name: str) -> bytes:
    return name.encode("utf-8")


def shard_entries(store: ObjectStore, tree_id: ObjectId, ref: ShardRef) -> tuple[TreeEntry, ...]:
    """One shard's entries, checked against its reference as ``tree_entries`` checks it."""
    shard = store.get_tree(ref.id)
    if shard.shards or len(shard.entries) != ref.count or shard.entries[0].name != ref.first_name:
        raise FormatError(f"malformed tree {tree_id.hex()}: shard {ref.id.hex()} does not match")
    return shard.entries


def _find(entries: Sequence[TreeEntry], name: str) -> TreeEntry | None:
    keys = [_key(e.name) for e in entries]
    i = bisect.bisect_left(keys, _key(name))
    return entries[i] if i < len(entries) and entries[i].name == name else None


def child(store: ObjectStore, tree_id: ObjectId, name: str) -> TreeEntry | None:
    """The entry ``name`` of a tree, reading at most one shard."""
    tree = store.get_tree(tree_id)
    if not tree.shards:
        return _find(tree.entries, name)
    firsts = [_key(s.first_name) for s in tree.shards]
    i = bisect.bisect_right(firsts, _key(name)) - 1
    if i < 0:
        return None
    return _find(shard_entries(store, tree_id, tree.shards[i]), name)


def lookup(store: ObjectStore, root: ObjectId, path: str) -> TreeEntry | None:
    """The entry at ``path`` below the tree ``root`` (None: no such path). ``""`` is not an entry."""
    current: ObjectId | None = root
    entry: TreeEntry | None = None
    for part in path.strip("/").split("/"):
        if current is None or not part:
            return None
        entry = child(store, current, part)
        if entry is None:
            return None
        current = entry.id if entry.kind == EntryKind.TREE else None
    return entry


def entries_page(
    store: ObjectStore, tree_id: ObjectId, offset: int, limit: int
) -> tuple[list[TreeEntry], int]:
    """Entries ``offset`` to ``offset + limit`` of a tree (in tree order), and the entry total."""
    tree = store.get_tree(tree_id)
    if not tree.shards:
        return list(tree.entries[offset : offset + limit]), len(tree.entries)
    total = sum(s.count for s in tree.shards)
    out: list[TreeEntry] = []
    start = 0
    for ref in tree.shards:
        end = start + ref.count
        if end > offset and start < offset + limit:
            entries = shard_entries(store, tree_id, ref)
            lo = max(offset - start, 0)
            out.extend(entries[lo : lo + limit - len(out)])
        start = end
        if len(out) >= limit:
            break
    return out, total


def entry_count(store: ObjectStore, tree_id: ObjectId) -> int:
    """How many entries a tree has (from the tree alone)."""
    tree = store.get_tree(tree_id)
    return sum(s.count for s in tree.shards) if tree.shards else len(tree.entries)


def tree_bytes(store: ObjectStore, tree_id: ObjectId) -> int:
    """The total size of the files below a tree (from the tree alone)."""
    return tree_size(store.get_tree(tree_id))


# ---------------------------------------------------------------- counting files


@dataclass(frozen=True, slots=True)
class Count:
    """A number of files: exact, or (``exact`` False) a lower bound."""

    n: int
    exact: bool = True

    def __add__(self, other: Count) -> Count:
        return Count(self.n + other.n, self.exact and other.exact)

    def __str__(self) -> str:
        return f"{self.n:,}" if self.exact else f"≥ {self.n:,}"


class _Memo:
    """Exact file counts of trees already counted (trees are immutable: never stale)."""

    def __init__(self, limit: int = 200_000) -> None:
        self._counts: dict[ObjectId, int] = {}
        self._lock = threading.Lock()
        self._limit = limit

    def get(self, oid: ObjectId) -> int | None:
        return self._counts.get(oid)

    def put(self, oid: ObjectId, n: int) -> None:
        with self._lock:
            if len(self._counts) >= self._limit:
                self._counts.clear()
            self._counts[oid] = n


_MEMO = _Memo()


@dataclass(slots=True)
class Budget:
    """Tree entries left to decode, shared by several counts (see :func:`count_files`)."""

    left: int


def count_files(store: ObjectStore, tree_id: ObjectId, budget: int | Budget = 200_000) -> Count:
    """How many files (non-tree entries) are below a tree, decoding about ``budget`` tree
    entries at most (decoding trees is what costs: ~10 µs an entry). Past the budget the count is
    a lower bound: every folder holds at least one file (trees are built from files), so an
    unread shard counts its entries and an unread folder 1. Exact counts are remembered by tree
    id, so counting the same trees again is free and a bounded count gets further each time."""
    left = budget if isinstance(budget, Budget) else Budget(budget)

    def count_entries(entries: Sequence[TreeEntry]) -> Count:
        n, exact = 0, True
        for e in entries:
            if e.kind == EntryKind.TREE:
                sub = count_tree(e.id)
                n += sub.n
                exact = exact and sub.exact
            else:
                n += 1
        return Count(n, exact)

    def count_tree(oid: ObjectId) -> Count:
        known = _MEMO.get(oid)
        if known is not None:
            return Count(known)
        if left.left <= 0:
            return Count(1, False)
        tree: Tree = store.get_tree(oid)
        left.left -= len(tree.entries) + len(tree.shards)
        if not tree.shards:
            result = count_entries(tree.entries)
        else:
            result = Count(0)
            for ref in tree.shards:
                shard_known = _MEMO.get(ref.id)
                if shard_known is not None:
                    result += Count(shard_known)
                elif left.left < ref.count:
                    result += Count(ref.count, False)
                else:
                    left.left -= ref.count
                    part = count_entries(shard_entries(store, oid, ref))
                    if part.exact:
                        _MEMO.put(ref.id, part.n)
                    result += part
        if result.exact:
            _MEMO.put(oid, result.n)
        return result

    return count_tree(tree_id)


def walk_files(
    store: ObjectStore, tree_id: ObjectId, prefix: str = ""
) -> Iterator[tuple[str, TreeEntry]]:
    """Every file below a tree as (path, entry), depth first in tree order, reading one shard
    at a time (a caller that stops early has not read the whole folder)."""
    stack: list[Iterator[TreeEntry]] = []
    bases: list[str] = []

    def entries_of(oid: ObjectId) -> Iterator[TreeEntry]:
        tree = store.get_tree(oid)
        if not tree.shards:
            yield from tree.entries
            return
        for ref in tree.shards:
            yield from shard_entries(store, oid, ref)

    stack.append(entries_of(tree_id))
    bases.append(prefix)
    while stack:
        e = next(stack[-1], None)
        if e is None:
            stack.pop()
            bases.pop()
            continue
        path = bases[-1] + e.name
        if e.kind == EntryKind.TREE:
            stack.append(entries_of(e.id))
            bases.append(path + "/")
        else:
            yield path, e
