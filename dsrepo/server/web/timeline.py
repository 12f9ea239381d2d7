"""History for the pages: the ordered commits and graph rows from a set of heads (cached, since
commits are immutable and the key is the heads' ids), the heads of "all versions", and search.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dsrepo.dvcs.graph import render_graph, topo_order
from dsrepo.errors import DsrepoError
from dsrepo.objects.ids import ObjectId, from_hex
from dsrepo.objects.model import Commit, ObjectType

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository


@dataclass(frozen=True, slots=True)
class Graph:
    """Commits reachable from some heads, newest first, and their ``log --graph`` rows."""

    order: list[str]
    rows: list[tuple[str, str | None]]
    row_of: dict[str, int]
    """Index in ``rows`` of each commit's row."""


class GraphCache:
    """The last few graphs, by the ids of their heads."""

    def __init__(self, size: int = 8) -> None:
        self._items: OrderedDict[tuple[str, ...], Graph] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, repo: Repository, heads: list[ObjectId]) -> Graph:
        key = tuple(h.hex() for h in heads)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        order = topo_order(
            repo.parents_of,
            list(key),
            timestamp=lambda h: repo.store.get_commit(from_hex(h)).committer.time,
        )
        rows = render_graph(order, repo.parents_of)
        graph = Graph(order, rows, {c: i for i, (_, c) in enumerate(rows) if c is not None})
        with self._lock:
            self._items[key] = graph
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return graph


def all_heads(repo: Repository) -> list[ObjectId]:
    """The commits every branch, tag (peeled) and HEAD point to, each once."""
    heads: dict[ObjectId, None] = {}
    head = repo.head_commit()
    if head is not None:
        heads[head] = None
    for b in repo.branches():
        heads[b.target] = None
    for t in repo.tags():
        with contextlib.suppress(DsrepoError):
            oid = t.target
            for _ in range(64):
                kind = repo.store.object_type(oid)
                if kind != ObjectType.TAG:
                    break
                oid = repo.store.get_tag(oid).target
            if repo.store.object_type(oid) == ObjectType.COMMIT:
                heads[oid] = None
    return list(heads)


# ---------------------------------------------------------------- search


def flat_metadata(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` for every leaf of a metadata object (lists are leaves)."""
    if isinstance(value, Mapping) and value:
        for k, v in value.items():
            yield from flat_metadata(v, f"{prefix}{k}.")
    elif prefix:
        yield prefix[:-1], value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


@dataclass(frozen=True, slots=True)
class Hit:
    id: ObjectId
    commit: Commit
    why: str


def matches(commit: Commit, labels: list[str], q: str) -> str | None:
    """Why ``commit`` (with ref labels such as ``tag: v1``) matches query ``q``, or None.

    ``KEY=VALUE`` matches metadata whose dotted key is KEY and whose value (a string, or JSON
    text) is VALUE; any other query matches, without regard to case, text in the message, a tag
    or branch name, a metadata key or a metadata value."""
    meta = dict(flat_metadata(commit.metadata))
    key, sep, value = q.partition("=")
    key, value = key.strip(), value.strip()
    if sep and key in meta and _text(meta[key]) == value:
        return f"metadata {key} = {value}"
    needle = q.lower()
    if needle in commit.message.lower():
        return "message"
    for label in labels:
        if needle in label.lower():
            return label
    for k, v in meta.items():
        if needle in k.lower():
            return f"metadata key {k}"
        if needle in _text(v).lower():
            return f"metadata {k}"
    return None


def search(
    repo: Repository,
    graph: Graph,
    q: str,
    labels: Mapping[ObjectId, list[str]],
    tag_text: Mapping[ObjectId, str],
) -> list[Hit]:
    """Every commit of ``graph`` matching ``q`` (see :func:`matches`), newest first. ``tag_text``
    adds annotated tags' messages to the labels of the commits they point to."""
    q = q.strip()
    if not q:
        return []
    out = []
    lowered = q.lower()
    for h in graph.order:
        oid = from_hex(h)
        commit = repo.store.get_commit(oid)
        why = matches(commit, [*labels.get(oid, []), tag_text.get(oid, "")], q)
        if why is None and len(lowered) >= 4 and h.startswith(lowered):
            why = "id"
        if why is not None:
            out.append(Hit(oid, commit, why))
    return out
