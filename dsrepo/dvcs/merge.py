"""Per-path merge of N heads against a merge base. Pure: no I/O.

A snapshot is a flat ``Mapping[str, V]`` from a POSIX relative file path (``"images/c00/a.bin"``)
to an opaque hashable value describing the file; directories are implied by the paths and are
never keys, and an absent key means the file does not exist. ``heads[0]`` is "ours" (HEAD), the
others are the revisions being merged in, in command-line order. Unrelated histories merge
against an empty base (``{}``).

The rule for one path (``b`` its value at the base, ``v[i]`` its value in head ``i``, ``None``
meaning absent) is :func:`merge_path`:

* the heads that *changed* the path are those with ``v[i] != b``;
* nobody changed it: it keeps ``b``;
* every changing head has the same value (a deletion is the value ``None``): that value wins, so
  a one-sided change, addition or deletion is taken, and identical changes agree;
* otherwise it is a conflict (``"both modified"``, ``"modify/delete"`` or ``"both added"``):
  unresolved without a strategy, never silently decided; a :class:`Strategy` picks a side.

:func:`merge_snapshots` applies the rule to every path, then makes sure the result is a valid tree
(``"file/directory"`` conflicts, see there). A tree-recursive caller that skips identical subtrees
can call :func:`merge_path` per entry itself.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, filterfalse
from operator import ne
from typing import Generic, TypeVar

__all__ = [
    "BOTH_ADDED",
    "BOTH_MODIFIED",
    "FILE_DIRECTORY",
    "MODIFY_DELETE",
    "MergeResult",
    "PathConflict",
    "Strategy",
    "merge_path",
    "merge_snapshots",
]

V = TypeVar("V", bound=Hashable)
S = TypeVar("S", bound=Hashable)

BOTH_MODIFIED = "both modified"
MODIFY_DELETE = "modify/delete"
BOTH_ADDED = "both added"
FILE_DIRECTORY = "file/directory"


class Strategy(enum.Enum):
    """How a conflicting path is decided. Only conflicts are affected: clean merges stay clean.

    ``OURS``: ``heads[0]``'s version, even when ours left the path unchanged or deleted it.
    ``THEIRS``: the version of the last head after ``heads[0]`` that changed the path.
    ``FIRST`` / ``LAST``: the version of the first / last head (in order) that changed the path.

    A conflict takes two heads changing the path differently, so the last head that changed it is
    never ``heads[0]``: ``THEIRS`` and ``LAST`` always decide alike (both names are kept for the
    command line). With two heads both changed a conflicting path: ``OURS`` is ``FIRST``.
    """

    OURS = "ours"
    THEIRS = "theirs"
    FIRST = "first"
    LAST = "last"


@dataclass(frozen=True)
class PathConflict(Generic[V]):
    """One conflicting path: its version at the base and in each head (``None`` = absent)."""

    path: str
    base: V | None
    versions: tuple[V | None, ...]
    reason: str  # BOTH_MODIFIED, MODIFY_DELETE, BOTH_ADDED or FILE_DIRECTORY


@dataclass(frozen=True)
class MergeResult(Generic[V]):
    """The outcome of :func:`merge_snapshots`.

    ``merged`` holds every path that merged cleanly or was decided by the strategy, in sorted path
    order, and is always a valid tree. Paths in ``conflicts`` are left out of it (see
    :func:`merge_snapshots`), so with conflicts it is not meant to be written anywhere.
    ``conflicts`` (unresolved, only without a strategy) and ``resolved`` (decided by the strategy,
    for reporting) are sorted by path, then reason.
    """

    merged: dict[str, V]
    conflicts: tuple[PathConflict[V], ...]
    resolved: tuple[PathConflict[V], ...]

    @property
    def clean(self) -> bool:
        """No unresolved conflict."""
        return not self.conflicts


def merge_path(
    base: S | None, versions: Sequence[S | None], strategy: Strategy | None = None
) -> tuple[S | None, str | None]:
    """Merge one path: its ``base`` version and one version per head (``None`` = absent).

    Returns ``(value, reason)``. ``reason`` is ``None`` when the path merges cleanly, ``value``
    being the result (``None``: the path is absent from the result). Otherwise ``reason`` names the
    conflict (``"both modified"``, ``"modify/delete"``, ``"both added"``) and ``value`` is the
    strategy's pick, or ``None`` without a strategy (the conflict is unresolved: nothing is picked).
    """
    changed = [i for i, version in enumerate(versions) if version != base]
    if not changed:
        return base, None
    first = versions[changed[0]]
    if all(versions[i] == first for i in changed):
        return first, None
    if base is None:
        reason = BOTH_ADDED
    elif any(versions[i] is None for i in changed):
        reason = MODIFY_DELETE
    else:
        reason = BOTH_MODIFIED
    if strategy is None:
        return None, reason
    if strategy is Strategy.OURS:
        return versions[0], reason
    if strategy is Strategy.FIRST:
        return first, reason
    # LAST, THEIRS: a conflict needs two different changes, so the last head that changed the
    # path is never ours: the last non-ours head to change it is the last head to change it.
    return versions[changed[-1]], reason


_MISSING = object()


def _changed_paths(base: Mapping[str, V], heads: Sequence[Mapping[str, V]]) -> set[str]:
    """Paths whose value differs from the base in at least one head."""
    changed: set[str] = set()
    for head in heads:
        if head is base:
            continue
        # Loops in C: the paths whose value differs, then the paths the head no longer has.
        changed.update(compress(head.keys(), map(ne, head.values(), map(base.get, head.keys()))))
        changed.update(filterfalse(head.__contains__, base.keys()))
    return changed


def _directories(paths: Iterable[str]) -> set[str]:
    """Every directory implied by ``paths`` (proper prefixes ending before a ``/``)."""
    dirs: set[str] = set()
    for path in paths:
        cut = path.rfind("/")
        while cut > 0:
            directory = path[:cut]
            if directory in dirs:
                break
            dirs.add(directory)
            cut = path.rfind("/", 0, cut)
    return dirs


def _under(sorted_paths: list[str], directory: str) -> list[str]:
    """The paths of ``sorted_paths`` inside ``directory`` (a contiguous run once sorted)."""
    start = bisect.bisect_left(sorted_paths, directory + "/")
    stop = bisect.bisect_left(sorted_paths, directory + "0")  # "0" follows "/" in ASCII
    return sorted_paths[start:stop]


def _inside(path: str, directories: set[str]) -> bool:
    """Whether ``path`` is one of ``directories`` or lies under one of them."""
    if path in directories:
        return True
    cut = path.rfind("/")
    while cut > 0:
        if path[:cut] in directories:
            return True
        cut = path.rfind("/", 0, cut)
    return False


_Shape = tuple[int, Hashable]
_FILE, _DIR = 0, 1


def _shape(snapshot: Mapping[str, V], path: str, inside: list[str]) -> _Shape | None:
    """What ``snapshot`` has at ``path``: a file, a directory (its entries among ``inside``, the
    candidate paths under ``path``), or nothing."""
    value = snapshot.get(path)
    if value is not None:
        return (_FILE, value)
    entries = frozenset((p, snapshot[p]) for p in inside if p in snapshot)
    return (_DIR, entries) if entries else None


def _conflict(
    path: str, base: Mapping[str, V], heads: Sequence[Mapping[str, V]], reason: str
) -> PathConflict[V]:
    return PathConflict(path, base.get(path), tuple(head.get(path) for head in heads), reason)


def merge_snapshots(
    base: Mapping[str, V],
    heads: Sequence[Mapping[str, V]],
    strategy: Strategy | None = None,
) -> MergeResult[V]:
    """Merge ``heads`` (``heads[0]`` is ours) against their merge base ``base``, path by path.

    Every path follows :func:`merge_path`. Without a strategy, a conflicting path is reported in
    ``conflicts`` and left out of ``merged`` (neither side is picked). With a strategy, conflicts
    are decided and listed in ``resolved``; ``conflicts`` is then always empty.

    File/directory: if the result would hold a file ``a`` and a path under ``a/`` (counting, when
    there is no strategy, unresolved conflicts that some head still has), the tree would be
    invalid. Without a strategy, ``a`` gets a ``"file/directory"`` conflict and neither the file
    nor anything under ``a/`` is in ``merged``. With a strategy, the same rule decides ``a`` as a
    whole: each snapshot's *shape* at ``a`` (the file with its value, the directory with all its
    entries, or nothing) is merged with :func:`merge_path` and the strategy; the kind of the picked
    shape wins. A file keeps the per-path result for ``a`` and drops the merged paths under
    ``a/``; a directory keeps those (as merged per path) and drops the file; nothing drops both.
    ``resolved`` gets a ``"file/directory"`` entry for ``a`` and one for each dropped path under
    ``a/``. Nested clashes are decided outermost first.

    Assumes valid trees (no snapshot holds both ``a`` and ``a/...``). Cost: linear in the number of
    paths (set operations), plus per-path work for the changed paths only.
    """
    if not heads:
        raise ValueError("merge_snapshots needs at least one head")
    changed = _changed_paths(base, heads)
    results: dict[str, V] = {}  # the changed paths that end up in the merge
    conflicts: list[PathConflict[V]] = []
    resolved: list[PathConflict[V]] = []
    occupied: list[str] = []  # changed paths holding something: a result or an open conflict
    getters = [head.get for head in heads]
    for path in changed:  # in any order: every output is sorted at the end
        versions = tuple([get(path) for get in getters])
        value = versions[0]
        if versions.count(value) == len(versions):  # all heads agree: the common case
            if value is not None:
                results[path] = value
                occupied.append(path)
            continue
        value, reason = merge_path(base.get(path), versions, strategy)
        if reason is not None:
            record = PathConflict(path, base.get(path), versions, reason)
            if strategy is None:
                conflicts.append(record)
                occupied.append(path)  # a conflict always has a version in some head
                continue
            resolved.append(record)
        if value is not None:
            results[path] = value
            occupied.append(path)

    # Unchanged paths cannot clash: a file kept by every head leaves no head room for a
    # directory of the same name. So file/directory clashes are among the changed paths.
    clashes = sorted(set(occupied) & _directories(occupied))
    if clashes and strategy is None:
        conflicts.extend(_conflict(path, base, heads, FILE_DIRECTORY) for path in clashes)
        roots = set(clashes)
        for path in occupied:
            if path in results and _inside(path, roots):
                del results[path]
    elif clashes:
        changed_sorted = sorted(changed)
        for root in clashes:
            if root not in results:  # dropped with an enclosing clash
                continue
            inside = _under(changed_sorted, root)
            shapes = tuple(_shape(head, root, inside) for head in heads)
            pick, _ = merge_path(_shape(base, root, inside), shapes, strategy)
            resolved.append(_conflict(root, base, heads, FILE_DIRECTORY))
            kind = None if pick is None else pick[0]
            dropped = [] if kind == _FILE else [root]
            if kind != _DIR:
                dropped.extend(p for p in inside if p in results)
            for path in dropped:
                del results[path]
                if path != root:
                    resolved.append(_conflict(path, base, heads, FILE_DIRECTORY))

    keys = list(filterfalse(changed.__contains__, base.keys()))
    keys.extend(results)
    keys.sort()  # cheap when base is already in path order: its keys come as one sorted run
    if len(results) < len(keys):
        source = dict(base)  # a C-level copy: cheaper than a second lookup per path
        source.update(results)
    else:
        source = results
    merged = dict(zip(keys, map(source.__getitem__, keys), strict=True))
    order = _conflict_order
    return MergeResult(
        merged, tuple(sorted(conflicts, key=order)), tuple(sorted(resolved, key=order))
    )


def _conflict_order(conflict: PathConflict[V]) -> tuple[str, str]:
    return conflict.path, conflict.reason
