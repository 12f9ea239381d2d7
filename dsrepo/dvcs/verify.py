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
from dsrepo.dvcs.scan import ScanEntry, path_sort_key, scan
from dsrepo.objects.ids import ObjectId, hash_data
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import TreeEntry

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
    """The version's files and the directory's, both walked in component order and joined as
    they come: neither side is held whole (a million files held on both sides cost 1.1 GB)."""
    root = existing_directory(directory)
    tree = resolve_tree(repo, rev)
    in_worktree = os.path.realpath(root) == os.path.realpath(repo.root)
    wt = repo.worktree if in_worktree else None
    rules = wt.rules if wt is not None else IgnoreRules.from_lines(root, [])
    missing: list[str] = []
    modified: list[str] = []
    extra: list[str] = []
    checked = hashed = done = 0
    total = 0 if tree is None else sum(e.size for e in repo.store.tree_entries(tree))

    def compare(path: str, e: TreeEntry, s: ScanEntry) -> None:
        nonlocal hashed
        if s.kind != e.kind or s.size != e.size:
            modified.append(path)
            return
        if wt is not None:
            ie = wt.index.entries.get(path)
            if (
                ie is not None
                and ie.same_stat(s)
                and not wt.index.is_racy(ie)
                and ie.version == (e.kind, e.id)
            ):
                return
        hashed += 1
        if _content_id(root, path, s) != e.id:
            modified.append(path)

    want = iter(()) if tree is None else repo.walk_in_order(tree)
    found = scan(root, rules)
    w, f = next(want, None), next(found, None)
    while w is not None or f is not None:
        kw = b"" if w is None else path_sort_key(w[0])
        kf = b"" if f is None else path_sort_key(f.path)
        if f is not None and (w is None or kf < kw):
            extra.append(f.path)
            f = next(found, None)
            continue
        assert w is not None
        path, e = w
        checked += 1
        same = f is not None and kf == kw
        s = f if same else None
        if s is None and wt is not None and os.path.lexists(root / path):
            s = _lstat_entry(root, path)  # tracked but ignored (add -f): still the version's
        if s is None:
            if wt is None or wt.sparse is None or wt.sparse(path):
                missing.append(path)
        else:
            done += e.size
            compare(path, e, s)
            if progress is not None:
                progress(done, total)
        if same:
            f = next(found, None)
        w = next(want, None)
    return VerifyResult(
        tuple(sorted(missing)), tuple(sorted(extra)), tuple(sorted(modified)), checked, hashed
    )


def _content_id(root: Path, path: str, s: ScanEntry) -> ObjectId:
    from dsrepo.dvcs.worktree import hash_file

    full = os.path.join(root, path)
    if s.kind == EntryKind.SYMLINK:
        return hash_data(os.fsencode(os.readlink(full)))
    return hash_file(full, 0).content_id


def _lstat_entry(root: Path, path: str) -> ScanEntry | None:
    from dsrepo.dvcs.worktree import _scan_one

    return _scan_one(root, path)
