"""``verify DIR [REV]``: does a directory hold exactly a version's files?

Every file of the version is compared with the file at the same path in ``DIR`` by content id
(the BLAKE3 of its bytes, what ``b3sum`` prints) and kind (file, executable, symlink). When
``DIR`` is the working copy, the staging index's stat cache answers for files whose stat did not
change since they were hashed and whose staged content is the version's (no read), and the
working copy's ignore rules apply (an ignored file is not "extra"); elsewhere every file is read
and nothing is ignored but ``.dsrepo`` folders.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import existing_directory
from dsrepo.dvcs.ignore import IgnoreRules
from dsrepo.dvcs.revisions import resolve_tree
from dsrepo.dvcs.scan import ScanEntry, scan
from dsrepo.objects.ids import ObjectId, hash_data
from dsrepo.objects.kinds import EntryKind

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Paths (POSIX, relative to the directory) that differ from the version."""

    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    checked: int = 0
    """Files of the version compared."""
    hashed: int = 0
    """Of those, how many were read (the others were answered by the stat cache)."""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.modified)

    def rows(self) -> list[tuple[str, str]]:
        """(letter, path), by path: ``D`` missing, ``?`` extra, ``M`` modified (status -s)."""
        rows = [("D", p) for p in self.missing]
        rows += [("?", p) for p in self.extra]
        rows += [("M", p) for p in self.modified]
        return sorted(rows, key=lambda r: r[1])


def verify(
    repo: Repository,
    directory: str | os.PathLike[str],
    rev: str = "HEAD",
    *,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyResult:
    root = existing_directory(directory)
    want = repo.flatten(resolve_tree(repo, rev))
    in_worktree = os.path.realpath(root) == os.path.realpath(repo.root)
    wt = repo.worktree if in_worktree else None
    rules = wt.rules if wt is not None else IgnoreRules.from_lines(root, [])
    found: dict[str, ScanEntry] = {s.path: s for s in scan(root, rules)}
    if wt is not None:  # tracked but ignored files (add -f) are still files of the version
        for path in want:
            if path not in found and os.path.lexists(root / path):
                s = _lstat_entry(root, path)
                if s is not None:
                    found[path] = s
    missing: list[str] = []
    modified: list[str] = []
    hashed = done = 0
    total = sum(e.size for e in want.values())
    for path, e in sorted(want.items()):
        s = found.get(path)
        if s is None:
            if wt is None or wt.sparse is None or wt.sparse(path):
                missing.append(path)
            continue
        done += e.size
        if s.kind != e.kind or s.size != e.size:
            modified.append(path)
            continue
        if wt is not None:
            ie = wt.index.entries.get(path)
            if (
                ie is not None
                and ie.same_stat(s)
                and not wt.index.is_racy(ie)
                and ie.version == (e.kind, e.id)
            ):
                continue
        hashed += 1
        if _content_id(root, path, s) != e.id:
            modified.append(path)
        if progress is not None:
            progress(done, total)
    extra = sorted(p for p in found if p not in want)
    return VerifyResult(tuple(missing), tuple(extra), tuple(modified), len(want), hashed)


def _content_id(root: Path, path: str, s: ScanEntry) -> ObjectId:
    from dsrepo.dvcs.worktree import hash_file

    full = os.path.join(root, path)
    if s.kind == EntryKind.SYMLINK:
        return hash_data(os.fsencode(os.readlink(full)))
    return hash_file(full, 0).content_id


def _lstat_entry(root: Path, path: str) -> ScanEntry | None:
    from dsrepo.dvcs.worktree import _scan_one

    return _scan_one(root, path)
