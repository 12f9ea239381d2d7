"""Algorithms over the commit graph, given as a ``parents`` callback. Pure: no I/O of its own.

A commit id is an opaque string (in practice 64 hex characters). The graph is described by
``parents(commit) -> Sequence[str]`` (first parent first); an optional ``timestamp(commit) -> int``
orders otherwise unordered commits. ``parents`` is called at most once per commit by each function
here, so a caller that loads commit objects from a store does one load per commit.

Every walk is iterative (histories can be a million commits deep) and each commit is visited once.
Duplicate entries in a commit's parent list are ignored. The functions that need the whole
ancestry (:func:`merge_bases`, :func:`ahead_behind`, :func:`topo_order`) walk all of it: there are
no generation numbers to stop early with, so their cost is linear in the history they reach.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Sequence

Parents = Callable[[str], Sequence[str]]
"""``parents(commit)``: the commit's parents, first parent first."""

Timestamp = Callable[[str], int]
"""``timestamp(commit)``: the commit's time (any integer unit; larger is newer)."""

__all__ = [
    "Parents",
    "Timestamp",
    "ahead_behind",
    "ancestors",
    "is_ancestor",
    "merge_bases",
    "render_graph",
    "topo_order",
]


def _unique(items: Sequence[str]) -> Sequence[str]:
    """``items`` without duplicates, first occurrence kept, order preserved."""
    return items if len(items) < 2 else list(dict.fromkeys(items))


def ancestors(parents: Parents, heads: Iterable[str]) -> Iterator[str]:
    """Yield every commit reachable from ``heads`` (the heads included), each exactly once.

    The order is a depth-first walk along first parents; it is lazy, so a caller looking for one
    commit can stop early.
    """
    seen: set[str] = set()
    stack: list[str] = []
    for head in reversed(list(dict.fromkeys(heads))):
        seen.add(head)
        stack.append(head)
    while stack:
        commit = stack.pop()
        yield commit
        for parent in reversed(parents(commit)):
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)


def is_ancestor(parents: Parents, a: str, b: str) -> bool:
    """Whether ``a`` is reachable from ``b`` (``a == b`` counts)."""
    return any(commit == a for commit in ancestors(parents, [b]))


def _subgraph(parents: Parents, heads: Iterable[str]) -> dict[str, Sequence[str]]:
    """Every commit reachable from ``heads``, mapped to its de-duplicated parents."""
    graph: dict[str, Sequence[str]] = {}
    stack = list(heads)
    while stack:
        commit = stack.pop()
        if commit in graph:
            continue
        commit_parents = parents(commit)
        if len(commit_parents) > 1:
            commit_parents = list(dict.fromkeys(commit_parents))
        graph[commit] = commit_parents
        for parent in commit_parents:
            if parent not in graph:
                stack.append(parent)
    return graph


def _in_degrees(graph: dict[str, Sequence[str]]) -> dict[str, int]:
    """Number of children of each commit inside ``graph``."""
    degree = dict.fromkeys(graph, 0)
    for commit_parents in graph.values():
        for parent in commit_parents:
            degree[parent] += 1
    return degree


def _children_first(graph: dict[str, Sequence[str]]) -> list[str]:
    """The commits of ``graph`` in an order where every child precedes its parents."""
    degree = _in_degrees(graph)
    ready = [commit for commit, d in degree.items() if d == 0]
    order: list[str] = []
    while ready:
        commit = ready.pop()
        order.append(commit)
        for parent in graph[commit]:
            degree[parent] -= 1
            if degree[parent] == 0:
                ready.append(parent)
    if len(order) != len(graph):
        raise ValueError("the commit graph has a cycle")
    return order


def _paint(
    parents: Parents, commits: Sequence[str]
) -> tuple[dict[str, Sequence[str]], list[str], dict[str, int]]:
    """Walk the ancestry of ``commits``; bit ``i`` of ``flags[c]`` says ``c`` is reachable from
    ``commits[i]``. Returns the subgraph, a children-first order of it and the flags."""
    graph = _subgraph(parents, commits)
    order = _children_first(graph)
    flags = dict.fromkeys(graph, 0)
    for i, commit in enumerate(commits):
        flags[commit] |= 1 << i
    for commit in order:
        bits = flags[commit]
        for parent in graph[commit]:
            flags[parent] |= bits
    return graph, order, flags


def merge_bases(parents: Parents, commits: Sequence[str]) -> list[str]:
    """The best common ancestors of all ``commits``, sorted.

    A common ancestor is reachable from every one of ``commits``; the best ones are those that are
    not an ancestor of another common ancestor (``git merge-base --all`` for two commits,
    ``--octopus`` for more). A criss-cross history has several; unrelated histories have none
    (``[]``). One commit is its own merge base; if one commit is an ancestor of all the others, it
    is the only merge base.
    """
    unique = _unique(commits)
    if not unique:
        raise ValueError("merge_bases needs at least one commit")
    graph, order, flags = _paint(parents, unique)
    everyone = (1 << len(unique)) - 1
    # Children-first order: once a commit is reached, all its descendants in the subgraph have
    # been seen, so whether it is below another common ancestor ("stale") is already known.
    stale: set[str] = set()
    bases: list[str] = []
    for commit in order:
        if commit in stale:
            stale.update(graph[commit])
        elif flags[commit] == everyone:
            bases.append(commit)
            stale.update(graph[commit])
    return sorted(bases)


def ahead_behind(parents: Parents, local: str, upstream: str) -> tuple[int, int]:
    """``(ahead, behind)``: the number of commits reachable from ``local`` but not from
    ``upstream``, and the number reachable from ``upstream`` but not from ``local``."""
    if local == upstream:
        return 0, 0
    _, _, flags = _paint(parents, [local, upstream])
    ahead = behind = 0
    for bits in flags.values():
        if bits == 1:
            ahead += 1
        elif bits == 2:
            behind += 1
    return ahead, behind


def topo_order(
    parents: Parents, heads: Sequence[str], timestamp: Timestamp | None = None
) -> list[str]:
    """Every commit reachable from ``heads``, newest first: a commit always comes after all of its
    children (among the reachable commits).

    With ``timestamp``, the next commit is always the newest one whose children have all been
    listed (ties: smaller id first), like ``git log --date-order``. Without it, lines of history
    are kept together like ``git log --topo-order``: after a commit come its parents as soon as
    they are ready, the last parent first (so the branch a merge brought in is listed right after
    the merge, then the first-parent line); heads are started in the order given.
    """
    graph = _subgraph(parents, heads)
    degree = _in_degrees(graph)
    order: list[str] = []
    if timestamp is not None:
        heap: list[tuple[int, str]] = [
            (-timestamp(commit), commit) for commit, d in degree.items() if d == 0
        ]
        heapq.heapify(heap)
        while heap:
            _, commit = heapq.heappop(heap)
            order.append(commit)
            for parent in graph[commit]:
                degree[parent] -= 1
                if degree[parent] == 0:
                    heapq.heappush(heap, (-timestamp(parent), parent))
        return order
    stack = [head for head in reversed(_unique(heads)) if degree[head] == 0]
    while stack:
        commit = stack.pop()
        order.append(commit)
        for parent in graph[commit]:
            degree[parent] -= 1
            if degree[parent] == 0:
                stack.append(parent)
    return order


class _Row:
    """One output line being drawn: characters at positions, lane ``k`` at position ``2k``."""

    def __init__(self) -> None:
        self.chars: dict[int, str] = {}

    def put(self, position: int, char: str) -> None:
        self.chars[position] = char

    def lanes(self, columns: Iterable[int], char: str = "|") -> None:
        for column in columns:
            self.chars[2 * column] = char

    def text(self) -> str:
        if not self.chars:
            return ""
        line = [" "] * (max(self.chars) + 1)
        for position, char in self.chars.items():
            line[position] = char
        return "".join(line).rstrip()


def render_graph(
    order: Sequence[str], parents: Parents, *, truncated: bool = False
) -> list[tuple[str, str | None]]:
    r"""Draw the ASCII graph of ``log --graph`` for commits listed children first.

    Returns one ``(prefix, commit)`` per output line: each commit gets exactly one line, with
    ``*`` in its lane; connector-only lines have ``None``. Prefixes have no trailing spaces; the
    caller pads them or appends the commit's text. Lane ``k`` is drawn at character ``2k``;
    between lanes, ``\`` and ``/`` move a line one lane right or left, and ``_`` carries a line
    across lanes when it joins a lane further left. An octopus merge (``*-.``, ``*---.``, ...)
    first moves the lanes on its right out of the way. The drawing follows git's conventions::

        linear   fork     merge    octopus
        *        *        *        *-.
        *        | *      |\       |\ \
        *        |/       | *      | | *
                 *        * |      | * |
                          |/       | |/
                          *        * |
                                   |/
                                   *

    Unrelated histories are separated by a line without the lane of the root above, so a new
    history never seems to hang off it. Parents that are not in ``order`` are not drawn (the line
    simply ends at the commit, as for a root), so a filtered log ends cleanly. With
    ``truncated`` (``log -n N`` cut the history short), unlisted parents keep their lanes as git
    draws them: a merge keeps its ``|\`` and every lane stays in its column; the connector lines
    after the last commit are left out. ``order`` must list every commit before its parents (as
    :func:`topo_order` does); otherwise ``ValueError``.
    """
    listed = set(order)
    done: set[str] = set()
    columns: list[str] = []  # the commit each lane is heading to; never duplicated between rows
    out: list[tuple[str, str | None]] = []
    root_ended: int | None = None  # lane of a root drawn on the last line, nothing below it

    def connector(row: _Row) -> None:
        out.append((row.text(), None))

    for commit in order:
        commit_parents = [p for p in _unique(parents(commit)) if truncated or p in listed]
        for parent in commit_parents:
            if parent in done:
                raise ValueError(f"order lists {parent} before its child {commit}")
        done.add(commit)
        try:
            idx = columns.index(commit)
        except ValueError:
            idx = len(columns)
            if root_ended == idx:  # keep a new history from hanging off the root drawn above
                row = _Row()
                row.lanes(range(idx))
                connector(row)
            columns.append(commit)
        root_ended = None
        right = range(idx + 1, len(columns))
        n = len(commit_parents)
        extra = max(n - 2, 0)  # octopus: right lanes move this many lanes right before the commit

        if right:
            for step in range(extra):
                row = _Row()
                row.lanes(range(idx + 1))
                for k in right:
                    row.put(2 * (k + step) + 1, "\\")
                connector(row)
        octopus = "-" * (2 * extra - 1) + "." if extra else ""
        out.append(("| " * idx + "*" + octopus + " |" * len(right), commit))

        if n == 0:
            if right:
                row = _Row()
                row.lanes(range(idx))
                for k in right:
                    row.put(2 * k - 1, "/")
                connector(row)
            else:
                root_ended = idx
        elif n >= 2:
            row = _Row()
            row.lanes(range(idx + 1))
            for j in range(1, n):
                row.put(2 * (idx + j - 1) + 1, "\\")
            for k in right:
                row.put(2 * (k + extra) + 1, "\\")
            connector(row)
        columns[idx : idx + 1] = commit_parents

        # Lanes now heading to the same commit join the leftmost one, the rightmost first.
        while n and len(columns) > 1 and len(set(columns)) < len(columns):
            first: dict[str, int] = {}
            i = j = 0
            for k, target in enumerate(columns):
                if target in first:
                    i, j = first[target], k
                else:
                    first[target] = k
            row = _Row()
            row.lanes(range(j))
            for k in range(i, j - 1):
                row.put(2 * k + 1, "_")
            row.put(2 * j - 1, "/")
            for k in range(j + 1, len(columns)):
                row.put(2 * k - 1, "/")
            connector(row)
            del columns[j]
    if truncated:
        while out and out[-1][1] is None:
            out.pop()
    return out
