"""What a set of versions needs: the commits, trees, manifests and chunks reachable from tips.

Push sends, and fetch receives, what is reachable from the new tips and not from commits the
other side already has complete. A commit whose parent is complete on the other side is walked
as a diff against that parent's tree, so a small change to a huge dataset costs the size of the
change, not of the dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import IntegrityError
from dsrepo.dvcs.graph import ancestors
from dsrepo.dvcs.integrity import CHUNK_BATCH, MAX_TAG_CHAIN, Closure, summary
from dsrepo.objects.errors import FormatError
from dsrepo.objects.ids import IdArray, ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import ObjectType, TreeEntry
from dsrepo.objects.transfer import Located

if TYPE_CHECKING:
    from dsrepo.dvcs.bare import BareRepository

__all__ = ["MAX_TAG_CHAIN", "chunk_ids", "complete_commits", "peel_tags", "reachable_objects"]


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
    located: Located | None = None,
    absent: IdArray | None = None,
) -> tuple[list[tuple[ObjectId, ObjectType]], IdArray]:
    """(metadata objects, data chunks) reachable from ``tips`` without passing a commit in ``stop``.

    Commits in ``stop`` are complete on the other side, so a commit with such a parent is walked
    as a diff against the parent's tree: identical subtrees are skipped unread and unchanged
    files contribute nothing (a small change to a huge dataset costs its size, not the
    dataset's). ``want_data`` filters which file paths' chunks are wanted (partial fetch).
    The walk is :class:`~dsrepo.dvcs.integrity.Closure`'s, so what it meets is checked on the
    way (types, sizes, path limits): damage raises IntegrityError instead of being sent on.
    ``located`` receives the local location of every chunk met (a push copies from there), and
    ``absent`` the chunks not stored here (a partial clone's: the other side must have them)."""
    closure = Closure(
        repo.store,
        stop=stop,
        want_data=want_data,
        data=data,
        batch=CHUNK_BATCH,
        located=located,
        keep_visited=False,
    )
    for tip in tips:
        closure.add_root(f"commit {tip.hex()[:12]}", tip)
    closure.run()
    closure.check_chunks()  # the data is here (absent in a partial clone: promised)
    if closure.problems:
        raise IntegrityError(f"the repository is damaged: {summary(closure.problems)}")
    if absent is not None:
        absent.extend(closure.absent_chunks)
    return closure.meta, closure.chunks


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
