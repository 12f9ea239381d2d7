"""Plumbing verbs that read or store objects directly, without the working copy: ``hash-object``
(many sources, one flush) and ``ls-tree``. ``update-ref`` is in :mod:`dsrepo.dvcs.refedit`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from dsrepo.dvcs.revisions import resolve_tree
from dsrepo.dvcs.worktree import hash_bytes, hash_path
from dsrepo.objects.model import TreeEntry
from dsrepo.objects.store import FileRef, ObjectStore

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository


def hash_objects(
    store: ObjectStore, sources: Iterable[str | bytes], write: bool
) -> Iterator[FileRef]:
    """The content id of each source (a path or bytes), yielded as soon as known; with
    ``write``, each is stored too and what was stored is flushed once, after the last one."""
    for src in sources:
        if write:
            yield store.write_bytes(src) if isinstance(src, bytes) else store.write_file(src)
        else:
            yield hash_bytes(src) if isinstance(src, bytes) else hash_path(src)
    if write:
        store.flush()


def ls_tree(
    repo: Repository, rev: str, path: str | None, recursive: bool
) -> list[tuple[str, TreeEntry]]:
    """Entries of the tree of ``rev`` (under ``path``) as (path, entry)."""
    tree = resolve_tree(repo, f"{rev}:{path}" if path else rev)
    prefix = f"{path.strip('/')}/" if path and path.strip("/") else ""
    if recursive:
        return sorted(repo.walk_tree(tree, prefix))
    return [(prefix + e.name, e) for e in repo.store.tree_entries(tree)]
