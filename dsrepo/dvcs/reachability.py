"""What a set of versions needs: the commits, trees, manifests and chunks reachable from tips.

Push sends, and fetch receives, what is reachable from the new tips and not from commits the
other side already has complete. A commit whose parent is complete on the other side is walked
as a diff against that parent's tree, so a small change to a huge dataset costs the size of the
change, not of the dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from dsrepo.dvcs.graph import ancestors
from dsrepo.objects.errors import FormatError
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import ObjectType, TreeEntry

if TYPE_CHECKING:
    from dsrepo.dvcs.bare import BareRepository

MAX_TAG_CHAIN = 16


def complete_commits(repo: BareRepository, tips: Iterable[ObjectId]) -> set[str]:
    """Commits reachable from ``tips`` that exist locally (history below a ref is complete).

    Annotated tags among the tips are peeled to their commits (tags of trees or files add
    nothing)."""
    present = []
    for t in tips:
        for _ in range(MAX_TAG_CHAIN):
            if not repo.store.has(t) or repo.store.object_type(t) != ObjectType.TAG:
                break
            t = repo.store.get_tag(t).target
        if repo.store.has(t) and repo.store.object_type(t) == ObjectType.COMMIT:
            present.append(t.hex())
    return set(ancestors(repo.parents_of, present)) if present else set()


def reachable_objects(
    repo: BareRepository,
    tips: Iterable[ObjectId],
    stop: set[str],
    *,
    want_data: Callable[[str], bool] | None = None,
    data: bool = True,
) -> tuple[list[tuple[ObjectId, ObjectType]], list[ObjectId]]:
    """(metadata objects, data chunks) reachable from ``tips`` without passing a commit in ``stop``.

    Commits in ``stop`` are complete on the other side, so a commit with such a parent is walked
    as a diff against the parent's tree: identical subtrees are skipped unread and unchanged
    files contribute nothing (a small change to a huge dataset costs its size, not the
    dataset's). ``want_data`` filters which file paths' chunks are wanted (partial fetch)."""
    meta: list[tuple[ObjectId, ObjectType]] = []
    chunks: list[ObjectId] = []
    seen: set[ObjectId] = set()
    store = repo.store
    commits = [t for t in tips if t.hex() not in stop]
    while commits:
        cid = commits.pop()
        if cid in seen or cid.hex() in stop:
            continue
        seen.add(cid)
        meta.append((cid, ObjectType.COMMIT))
        c = store.get_commit(cid)
        commits.extend(p for p in c.parents if p.hex() not in stop)
        base = next((store.get_commit(p).tree for p in c.parents if p.hex() in stop), None)
        stack: list[tuple[ObjectId, str, ObjectId | None]] = [(c.tree, "", base)]
        while stack:
            tid, prefix, base_tid = stack.pop()
            if tid in seen or tid == base_tid:
                continue
            seen.add(tid)
            meta.append((tid, ObjectType.TREE))
            tree = store.get_tree(tid)
            for ref in tree.shards:
                meta.append((ref.id, ObjectType.TREE))
            old = {} if base_tid is None else {b.name: b for b in store.tree_entries(base_tid)}
            for e in store.tree_entries(tid):
                path = prefix + e.name
                b = old.get(e.name)
                if e.kind == EntryKind.TREE:
                    same_kind = b is not None and b.kind == EntryKind.TREE
                    stack.append((e.id, path + "/", b.id if same_kind and b else None))
                    continue
                if b is not None and (b.kind, b.id, b.manifest) == (e.kind, e.id, e.manifest):
                    continue  # unchanged since a complete parent
                if e.manifest is not None and e.manifest not in seen:
                    seen.add(e.manifest)
                    meta.append((e.manifest, ObjectType.MANIFEST))
                if not data or (want_data is not None and not want_data(path)):
                    continue
                if e.manifest is not None:
                    chunks.extend(cid2 for cid2, _ in store.get_manifest(e.manifest).chunks)
                else:
                    chunks.append(e.id)
    return meta, chunks


def peel_tags(
    repo: BareRepository, oid: ObjectId
) -> tuple[list[tuple[ObjectId, ObjectType]], ObjectId]:
    """Annotated tag objects in front of a commit, and the commit."""
    out: list[tuple[ObjectId, ObjectType]] = []
    for _ in range(MAX_TAG_CHAIN):
        t = repo.store.object_type(oid)
        if t != ObjectType.TAG:
            return out, oid
        out.append((oid, t))
        oid = repo.store.get_tag(oid).target
    raise FormatError("tag chain too long")


def chunk_ids(repo: BareRepository, entries: Iterable[TreeEntry]) -> list[ObjectId]:
    """Data chunks needed to materialize file entries (their manifests must be present)."""
    out: list[ObjectId] = []
    for e in entries:
        if e.kind == EntryKind.TREE:
            continue
        if e.manifest is not None:
            out.extend(c for c, _ in repo.store.get_manifest(e.manifest).chunks)
        else:
            out.append(e.id)
    return out
