"""A tree with some paths changed: only the folders on those paths are read and written again.

A merge of a million-file version that changes a few paths builds its tree this way from HEAD's
instead of from a flat map of every file (:func:`dsrepo.dvcs.commits.write_tree`): the cost is
the folders the changes lie in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import PathError
from dsrepo.dvcs.integrity import show_path
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import TreeEntry, path_limit_problem

if TYPE_CHECKING:
    from dsrepo.objects.store import ObjectStore


def patch_tree(
    store: ObjectStore, tree: ObjectId | None, changes: Mapping[str, TreeEntry | None]
) -> ObjectId:
    """Store the tree ``tree`` becomes when each path of ``changes`` holds its entry (None:
    the path is removed; a folder left empty goes too) and return its id (the empty tree when
    nothing is left). A file may replace a folder and the other way round, when ``changes``
    removes what was there. Raises PathError for a path beyond the limits of every tree."""
    for path, e in changes.items():
        problem = path_limit_problem(path) if e is not None else None
        if problem:
            raise PathError(f"cannot record {show_path(path)}: {problem}")
    got = _patch(store, tree, changes)
    return got[0] if got is not None else store.put_tree([])


def _patch(
    store: ObjectStore, tree: ObjectId | None, changes: Mapping[str, TreeEntry | None]
) -> tuple[ObjectId, int] | None:
    entries = {e.name: e for e in store.tree_entries(tree)} if tree is not None else {}
    direct: dict[str, TreeEntry | None] = {}
    below: dict[str, dict[str, TreeEntry | None]] = {}
    for path, e in changes.items():
        name, slash, rest = path.partition("/")
        if slash:
            below.setdefault(name, {})[rest] = e
        else:
            direct[name] = e
    # removals first (a file leaves where a folder comes), then folders (a folder emptied
    # leaves where a file comes), then the files set
    for name, e in direct.items():
        if e is None:
            entries.pop(name, None)
    for name, sub in below.items():
        cur = entries.get(name)
        got = _patch(store, cur.id if cur is not None and cur.kind == EntryKind.TREE else None, sub)
        if got is None:
            if cur is not None and cur.kind == EntryKind.TREE:
                del entries[name]
        else:
            entries[name] = TreeEntry(name, EntryKind.TREE, got[1], got[0])
    for name, e in direct.items():
        if e is not None:
            entries[name] = TreeEntry(name, e.kind, e.size, e.id, e.manifest)
    if not entries:
        return None
    return store.put_tree(entries.values()), sum(e.size for e in entries.values())
