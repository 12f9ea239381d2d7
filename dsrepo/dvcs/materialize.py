"""Materializing a whole version where none of it is tracked yet, streamed: ``checkout --into
DIR`` and the working copy of a clone.

The version is walked once in component order (:meth:`BareRepository.walk_in_order`), a batch
of files at a time, and never held whole: a flattened tree of a million files costs ~300 MB of
Python objects, more than everything else a clone holds. Each batch is checked before any of it
is written: files and folders in the way, names that differ only in case on a case-insensitive
filesystem, and :func:`~dsrepo.dvcs.preflight.preflight` (names the filesystem can hold,
manifests, link targets, every chunk present with the recorded type and size). A file whose
bytes do not hash to its id is only found while it streams.

A refusal (one of :data:`REFUSALS`) found in a later batch, after earlier batches were written,
removes every file this run created, and puts back the empty folders it removed, before it is
raised: the folder is left as it was, except for files ``force`` already overwrote. Files in the way are all counted before the refusal (the
walk goes on, checking only). An interruption (Ctrl-C, a full disk) leaves what was written: a
clone resumes from it, keeping the files that already are the target version. Checking
everything in a first walk and writing in a second would give the same outcome at the price of
decoding every tree twice (1.5 s more at 300k files); the rollback costs only when refusing.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dsrepo.dvcs import forkwrite
from dsrepo.dvcs.checkout import CheckoutResult, Progress, is_real_dir, same_content
from dsrepo.dvcs.errors import PathError, RepositoryError, WouldOverwrite, path_errors
from dsrepo.dvcs.pathmatch import match_only
from dsrepo.dvcs.paths import SafeWriter, UnsafePath, find_case_collisions, is_case_insensitive_fs
from dsrepo.dvcs.preflight import preflight
from dsrepo.dvcs.revisions import resolve_commit
from dsrepo.dvcs.stagingindex import IndexEntry, StagingIndex
from dsrepo.objects.errors import CorruptObject, ObjectNotFound
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.model import TreeEntry

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository
    from dsrepo.dvcs.worktree import Worktree

BATCH = 16_384
"""Files checked (one preflight) and written (one batched read) at a time."""
REFUSALS = (WouldOverwrite, PathError, CorruptObject, ObjectNotFound)

Select = Callable[[str], bool]
Record = Callable[[str, TreeEntry, "os.stat_result | None"], None]


def _everything(_path: str) -> bool:
    return True


@dataclass
class _Run:
    """One streamed materialization: what it writes, and what it has found and changed."""

    repo: Repository
    root: Path
    result: CheckoutResult
    select: Select = _everything
    """The files of the version this run is about."""
    write: Select = _everything
    """Of those, the files it writes (a partial working copy stages the others)."""
    force: bool = False
    allow_outside_links: bool = False
    progress: Progress | None = None
    record: Record | None = None
    """Sees every selected file in component order with its lstat (None: not written)."""
    selected: int = 0
    replaced: set[str] = field(default_factory=set)
    conflicts: list[str] = field(default_factory=list)
    """The first few paths in the way."""
    n_conflicts: int = 0

    def conflict(self, path: str) -> None:
        self.n_conflicts += 1
        if len(self.conflicts) < 20:
            self.conflicts.append(path)


def into_folder(
    repo: Repository,
    rev: str,
    into: Path,
    *,
    only: Sequence[str] | None = None,
    force: bool = False,
    allow_outside_links: bool = False,
    progress: Progress | None = None,
) -> CheckoutResult:
    """Write the files of ``rev`` into ``into`` without touching the working copy or index.

    Files already there with the same content are kept; a different file is overwritten only with
    ``force``; other files in ``into`` are left alone.
    """
    cid = resolve_commit(repo, rev)
    tree = repo.commit_tree(cid)
    into = into.absolute()
    if repo.dsdir == into or repo.dsdir in into.parents:
        raise PathError(f"refusing to materialize into the repository folder {repo.dsdir}")
    with path_errors(into, "directory"):
        made = not into.exists()
        into.mkdir(parents=True, exist_ok=True)
    result = CheckoutResult(cid)
    if tree is None:
        return result
    run = _Run(
        repo,
        into,
        result,
        match_only(only),
        force=force,
        allow_outside_links=allow_outside_links,
        progress=progress,
    )
    _materialize(
        run,
        tree,
        lambda n, shown: WouldOverwrite(
            f"{n} file(s) in {into} differ from {rev}; use --force to overwrite: {shown}"
        ),
    )
    if only and not run.selected:
        if made:
            with contextlib.suppress(OSError):
                into.rmdir()
        raise PathError(f"--only {' '.join(only)} matches no file in {rev}")
    return result


def populate(
    repo: Repository, wt: Worktree, commit: ObjectId, *, progress: Progress | None = None
) -> CheckoutResult:
    """Make the working copy and its empty index hold ``commit`` (a clone; HEAD names it
    already). Files already there as the target version are kept; anything else in the way
    refuses. A partial working copy writes only its sparse patterns and stages the rest as
    they are in ``commit``."""
    if len(wt.index):
        raise RepositoryError("populate needs an empty staging index")
    result = CheckoutResult(commit)
    tree = repo.commit_tree(commit)
    if tree is None:
        return result
    index = wt.index

    def record(path: str, e: TreeEntry, st: os.stat_result | None) -> None:
        if st is None:
            index.set(IndexEntry(path, e.kind, e.size, e.id, e.manifest))
        else:
            index.set(IndexEntry.written(path, e, st))

    write = wt.sparse or _everything
    run = _Run(repo, wt.root, result, write=write, progress=progress, record=record)
    dirs: dict[str, tuple[ObjectId, int]] = {}
    try:
        _materialize(
            run,
            tree,
            lambda n, shown: WouldOverwrite(
                f"{n} untracked file(s) in {wt.root} are in the way of {commit.hex()[:12]} "
                f"(move or remove them): {shown}"
            ),
            dirs,
        )
    except REFUSALS:
        wt.index = StagingIndex(index.path)  # as saved: empty
        raise
    index.set_trees(dirs)
    index.save()
    return result


def _materialize(
    run: _Run,
    tree: ObjectId,
    in_the_way: Callable[[int, str], WouldOverwrite],
    dirs: dict[str, tuple[ObjectId, int]] | None = None,
) -> None:
    """Check and write every batch (see the module docstring); ``in_the_way(count, shown)`` is
    the refusal when files are in the way."""
    writer = SafeWriter(run.root)
    writer.sweep()  # the temp files a killed run left; open_parent sweeps the other folders
    on_tree = None
    if _case_insensitive(run.root):

        def on_tree(folder: str, entries: Sequence[TreeEntry]) -> None:
            base = f"{folder}/" if folder else ""
            if pairs := find_case_collisions(base + e.name for e in entries):
                shown = ", ".join(f"{a} ~ {b}" for a, b in pairs[:10])
                raise PathError(
                    f"paths differ only in letter case on a case-insensitive filesystem: {shown}"
                )

    everything = run.select is _everything and run.write is _everything
    # a selection's total is unknown (0) until walked
    total = sum(e.size for e in run.repo.store.tree_entries(tree)) if everything else 0
    done = 0
    removed: list[str] = []  # empty folders in the way of a file
    try:
        items = run.repo.walk_in_order(tree, dirs=dirs, on_tree=on_tree)
        while batch := list(itertools.islice(items, BATCH)):
            todo, kept, folders = _survey(run, batch)
            if run.n_conflicts:
                continue  # refusing: only count the rest
            preflight(
                run.repo, run.root, todo, allow_outside_links=run.allow_outside_links, data=False
            )
            for folder in folders:
                _remove_empty_tree(run.root / folder, removed)
            stats: dict[str, os.stat_result | None] = {}
            for p, e, st in forkwrite.write_entries(
                run.repo.store, writer, todo, run.allow_outside_links, stat=run.record is not None
            ):
                run.result.written.append(p)
                run.result.bytes_written += e.size
                stats[p] = st
                done += e.size
                if run.progress:
                    run.progress(done, total)
            run.result.kept += len(kept)
            done += sum(e.size for p, e in batch if p in kept)
            if run.record is not None:
                for p, e in batch:
                    if p in stats:
                        run.record(p, e, stats[p])
                    elif p in kept:
                        run.record(p, e, _lstat(run.root / p))
                    elif run.select(p):
                        run.record(p, e, None)
        if run.n_conflicts:
            raise in_the_way(run.n_conflicts, ", ".join(run.conflicts))
    except REFUSALS:  # remove the files this run created
        for p in run.result.written:
            if p not in run.replaced:
                with contextlib.suppress(OSError, UnsafePath):
                    writer.remove(p)
                    writer.remove_empty_parents(p)
        for d in reversed(removed):
            with contextlib.suppress(OSError):
                os.makedirs(d, exist_ok=True)
        raise


def _survey(
    run: _Run, batch: Sequence[tuple[str, TreeEntry]]
) -> tuple[list[tuple[str, TreeEntry]], set[str], list[str]]:
    """A batch's files to write, files already the target version, and empty folders in the
    way of a file (removed before it is written); what else is in the way is counted in
    ``run``."""
    todo = []
    kept: set[str] = set()
    folders = []
    listed = ("\0", frozenset[str]())  # one listing per folder, not an lstat per file
    for p, e in batch:
        if not run.select(p):
            continue
        run.selected += 1
        if not run.write(p):
            continue
        folder, _, name = p.rpartition("/")
        if listed[0] != folder:
            listed = (folder, _listing(run.root, folder, name))
        # an empty or missing folder holds nothing; else ask (on a case-insensitive
        # filesystem a name that differs in case is there too)
        if listed[1] and os.path.lexists(full := run.root / p):
            if is_real_dir(full):
                if _holds_files(full):
                    run.conflict(p + "/")
                    continue
                folders.append(p)
            elif same_content(full, e, run.repo):
                kept.add(p)
                continue
            elif run.force:
                run.replaced.add(p)
            else:
                run.conflict(p)
                continue
        todo.append((p, e))
    return todo, kept, folders


def _listing(root: Path, folder: str, name: str) -> frozenset[str]:
    try:
        return frozenset(os.listdir(root / folder if folder else root))
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()
    except OSError:  # unreadable: the lstat decides
        return frozenset({name})


def _case_insensitive(root: Path) -> bool:
    try:
        return is_case_insensitive_fs(root)
    except OSError:  # cannot probe: check as if it were
        return True


def _holds_files(folder: Path) -> bool:
    return any(names for _dir, _dirs, names in os.walk(folder))


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _remove_empty_tree(folder: Path, removed: list[str]) -> None:
    """Remove a folder that held no file when checked (empty folders below it go too); each
    removed folder is appended to ``removed``, deepest first."""
    try:
        for d, _dirs, _names in os.walk(folder, topdown=False):
            os.rmdir(d)
            removed.append(d)
    except OSError:
        raise WouldOverwrite(f"a non-empty directory {folder} is in the way") from None
