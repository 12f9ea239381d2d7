"""``sync DIR``: make the staged snapshot equal to a folder that lives elsewhere (clearml-data's
``sync --folder``), without copying it into the working copy.

Every file under ``DIR`` (its own ``.dsrepoignore`` files apply; ``.dsrepo`` folders never count)
is staged at the same relative path, and every staged path ``DIR`` lacks is unstaged: additions,
modifications, deletions and renames (a rename is a deletion plus an addition of the same
content, so it stores nothing). Files are chunked and stored like ``add`` does, so only chunks the
repository lacks are written. A stat cache of ``DIR`` (``.dsrepo/sync-<hash of DIR's path>``, a
staging-index file) lets the next sync of the same folder skip files whose size, mtime, ctime and
inode did not change. The staged entries carry no stat of the working copy: ``status`` shows the
synced files as deleted there, since they are not in it (``checkout`` or ``restore`` writes them).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import PathError, existing_directory
from dsrepo.dvcs.ignore import IgnoreRules
from dsrepo.dvcs.paths import UnsafePath, check_link_target
from dsrepo.dvcs.scan import ScanEntry, scan
from dsrepo.dvcs.stagingindex import IndexEntry, StagingIndex
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.names import name_problem
from dsrepo.objects.store import FileRef

if TYPE_CHECKING:
    from dsrepo.dvcs.commits import CommitInfo
    from dsrepo.dvcs.repository import Repository
    from dsrepo.dvcs.worktree import Worktree


@dataclass
class SyncResult:
    """What ``sync`` changed in the staged snapshot (paths relative to ``DIR``)."""

    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    """(old path, new path): same content, new name (not also in added and deleted)."""
    bytes_hashed: int = 0
    commit: CommitInfo | None = None
    """The :class:`~dsrepo.CommitInfo` when ``message`` was given and something changed."""

    @property
    def changed(self) -> bool:
        return bool(self.added or self.modified or self.deleted or self.renamed)


def cache_path(repo: Repository, directory: Path) -> Path:
    key = hashlib.blake2b(os.fsencode(os.path.realpath(directory)), digest_size=8).hexdigest()
    return repo.dsdir / f"sync-{key}"


def sync_directory(
    repo: Repository,
    wt: Worktree,
    directory: str | os.PathLike[str],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> SyncResult:
    root = existing_directory(directory)
    if os.path.realpath(root) == os.path.realpath(repo.root):
        raise PathError("sync takes a folder outside the working copy; use 'add .' for it")
    cache = StagingIndex(cache_path(repo, root))
    store = repo.store
    result = SyncResult()
    new: dict[str, IndexEntry] = {}
    try:
        for s in scan(root, IgnoreRules.load(root)):
            for part in s.path.split("/"):
                problem = name_problem(part)
                if problem:
                    raise PathError(f"cannot sync {s.path!r}: {problem}")
            cached = cache.entries.get(s.path)
            if cached is not None and cached.same_stat(s) and not cache.is_racy(cached):
                ref = FileRef(cached.content_id, cached.size, cached.manifest)
                if not store.has(ref.manifest or ref.content_id):
                    ref = _store(repo, root, s)  # gc'd since: store it again
                    result.bytes_hashed += ref.size
            else:
                ref = _store(repo, root, s)
                result.bytes_hashed += ref.size
            if progress is not None:
                progress(result.bytes_hashed, 0)
            new[s.path] = IndexEntry(
                s.path, s.kind, ref.size, ref.content_id, ref.manifest, *_stat(s)
            )
        store.flush()
    except BaseException:
        store.abort()
        raise
    old = wt.index.entries
    gone = {p: e for p, e in old.items() if p not in new}
    fresh = {p: e for p, e in new.items() if p not in old}
    by_content: dict[tuple[EntryKind, object], list[str]] = {}
    for p, e in sorted(gone.items()):
        by_content.setdefault(e.version, []).append(p)
    for p, e in sorted(fresh.items()):
        olds = by_content.get(e.version)
        if olds:
            result.renamed.append((olds.pop(0), p))
        else:
            result.added.append(p)
    renamed_from = {a for a, _ in result.renamed}
    result.deleted = sorted(p for p in gone if p not in renamed_from)
    result.modified = sorted(p for p, e in new.items() if p in old and old[p].version != e.version)
    for p in gone:
        wt.index.remove(p)
    for p, e in new.items():
        prev = old.get(p)
        if prev is None or prev.version != e.version:
            # no stat of the working copy: status compares its files by content
            wt.index.set(IndexEntry(p, e.kind, e.size, e.content_id, e.manifest))
    if wt.index.dirty:
        wt.index.save()
    cache.replace_all(new.values())
    cache.save()
    return result


def _stat(s: ScanEntry) -> tuple[int, int, int, int]:
    return (s.mtime_ns, s.ctime_ns, s.ino, s.mode)


def _store(repo: Repository, root: Path, s: ScanEntry) -> FileRef:
    full = os.path.join(root, s.path)
    if s.kind == EntryKind.SYMLINK:
        target = os.readlink(full)
        try:
            check_link_target(s.path, target)
        except UnsafePath as exc:
            raise PathError(f"cannot sync {s.path!r}: {exc}") from None
        return repo.store.write_bytes(os.fsencode(target))
    return repo.store.write_file(full)
