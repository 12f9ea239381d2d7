"""Materializing versions: ``checkout``/``switch`` of the working copy and ``restore``
(``checkout --into DIR`` and a clone's first working copy: :mod:`dsrepo.dvcs.materialize`).

Safety rules: only files that differ are written, each through a temp file renamed into place by
:class:`~dsrepo.dvcs.paths.SafeWriter` (which never follows a symlink in a leading component and
never writes outside the target directory, and renames a file into place only if its bytes hash to
the id its tree entry names); files the version lacks are removed only when they hold no
uncommitted work; ignored and untracked files are kept; every conflict with uncommitted work is
listed and nothing is written unless ``force``. Before the first change,
:func:`~dsrepo.dvcs.preflight.preflight` checks every file to write (names, sizes, manifests, link
targets, data present); a multi-chunk file whose bytes do not hash to its id is only found while
it streams, and then what the run had changed is put back: a refusal leaves the working copy as it
was. A file already equal to its target version is not a local change (:func:`settled_paths`), so
running a killed checkout or merge again completes it (:mod:`dsrepo.dvcs.opstate` records it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dsrepo.dvcs import forkwrite, opstate, writebatch
from dsrepo.dvcs.errors import PathError, UnknownRevision, WouldOverwrite
from dsrepo.dvcs.history import TreeDirs, diff_trees, files_at
from dsrepo.dvcs.mergestate import merge_heads_in_progress
from dsrepo.dvcs.pathmatch import match_only
from dsrepo.dvcs.paths import SafeWriter, UnsafePath, find_case_collisions, is_case_insensitive_fs
from dsrepo.dvcs.preflight import prefetch as prefetch
from dsrepo.dvcs.preflight import preflight
from dsrepo.dvcs.refnames import HEADS, branch_ref, refname_problem, tag_ref
from dsrepo.dvcs.revisions import resolve_commit, unreachable_from_refs
from dsrepo.dvcs.scan import path_sort_key
from dsrepo.dvcs.worktree import IndexEntry, StagingIndex, Worktree, hash_file
from dsrepo.objects.errors import CorruptObject
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import TreeEntry

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository

Progress = Callable[[int, int], None]


@dataclass
class CheckoutResult:
    commit: ObjectId | None
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: int = 0
    bytes_written: int = 0
    branch: str | None = None
    """The branch HEAD is on afterwards (short name), ``None`` when detached."""
    left_behind: list[ObjectId] = field(default_factory=list)
    """Commits of a detached HEAD that no ref reaches any more (newest first): git's warning."""


def _check_case(root: Path, paths: Iterable[str]) -> None:
    if not is_case_insensitive_fs(root):  # one probe, not a pass over a million paths
        return
    collisions = find_case_collisions(paths)
    if collisions:
        shown = ", ".join(f"{a} ~ {b}" for a, b in collisions[:10])
        raise PathError(
            f"paths differ only in letter case on a case-insensitive filesystem: {shown}"
        )


def _put_back(
    repo: Repository,
    writer: SafeWriter,
    before: Mapping[str, TreeEntry],
    written: Sequence[str],
    removed: Sequence[str],
) -> None:
    """Undo a write phase refused midway: every path it wrote or removed held its ``before``
    version (a checkout without ``force`` touches clean files only) or nothing."""
    for p in written:
        if p not in before:
            with contextlib.suppress(OSError, UnsafePath):
                writer.remove(p)
                writer.remove_empty_parents(p)
    back = [(p, before[p]) for p in sorted({*written, *removed}) if p in before]
    for _ in writebatch.write_entries(repo.store, writer, back, allow_outside_links=False):
        pass


def same_content(full: Path, e: TreeEntry, repo: Repository) -> bool:
    try:
        if e.kind == EntryKind.SYMLINK:
            return full.is_symlink() and os.fsencode(os.readlink(full)) == repo.store.read_all(e)
        if full.is_symlink() or not full.is_file():
            return False
        st = full.stat()
        if st.st_size != e.size or bool(st.st_mode & 0o100) != (e.kind == EntryKind.EXECUTABLE):
            return False
        return hash_file(str(full), 0).content_id == e.id
    except OSError:
        return False


def dirty_paths(repo: Repository, wt: Worktree, head_files: Mapping[str, TreeEntry]) -> set[str]:
    """Paths holding uncommitted work: staged changes, unstaged changes, unstaged deletions."""
    dirty = set()
    for p, e in wt.index.entries.items():
        h = head_files.get(p)
        if h is None or (h.kind, h.id) != e.version:
            dirty.add(p)
    dirty.update(p for p in head_files if p not in wt.index.entries)
    modified, deleted, _ = wt.changes()
    dirty.update(modified)
    dirty.update(deleted)
    return dirty


def dirty_among(
    wt: Worktree, head_files: Mapping[str, TreeEntry], paths: Iterable[str]
) -> set[str]:
    """:func:`dirty_paths` restricted to ``paths`` (``head_files`` holds HEAD's entry of each
    of them that HEAD has): staged changes, then the working file against the index, path by
    path, with no walk of the whole working copy."""
    dirty = set()
    index = wt.index.entries
    for p in paths:
        e, h = index.get(p), head_files.get(p)
        if e is None or h is None:
            if e is not None or h is not None:
                dirty.add(p)
        elif (h.kind, h.id) != e.version or wt.differs(e):
            dirty.add(p)
    return dirty


def settled_paths(
    repo: Repository,
    wt: Worktree,
    head_files: Mapping[str, TreeEntry],
    new_files: Mapping[str, TreeEntry],
    candidates: Iterable[str],
) -> set[str]:
    """The ``candidates`` (paths with uncommitted changes) whose only change is that the file
    already is the target version, as a killed checkout or merge leaves it: still staged as in HEAD
    (or as the target), and equal to the target entry (kind, size, exec bit, hash), or absent
    where the target has none. Writing them changes nothing; an edited file never qualifies."""
    out = set()
    for p in candidates:
        new = new_files.get(p)
        if not (_staged_as(wt.index, p, head_files.get(p)) or _staged_as(wt.index, p, new)):
            continue
        full = wt.root / p
        if new is None:
            if not os.path.lexists(full):
                out.add(p)
        elif same_content(full, new, repo):
            out.add(p)
    return out


def switch_to(
    repo: Repository,
    wt: Worktree,
    target: ObjectId,
    *,
    force: bool = False,
    progress: Progress | None = None,
    operation: str | None = None,
) -> CheckoutResult:
    """Make the working copy and index match commit ``target`` (HEAD is moved by the caller).

    Uncommitted changes to paths the switch does not touch are carried over, as git does.
    """
    head_tree, new_tree = repo.commit_tree(repo.head_commit()), repo.commit_tree(target)
    changed_only = (
        not force
        and head_tree is not None
        and wt.sparse is None
        and not is_case_insensitive_fs(wt.root)
    )
    trees: TreeDirs | None = None
    if changed_only:  # what differs, identical subtrees unread: costs what changed
        head_files: dict[str, TreeEntry] = {}
        new_files: dict[str, TreeEntry] = {}
        dirs: tuple[TreeDirs, TreeDirs] = ({}, {})
        for p, old, new in diff_trees(repo, head_tree, new_tree, dirs=dirs):
            if old is not None:
                head_files[p] = old
            if new is not None:
                new_files[p] = new
        trees = cached_after(wt.index.trees, *dirs)
    else:
        head_files, new_files = repo.flatten(head_tree), repo.flatten(new_tree)
    return apply_files(
        repo,
        wt,
        head_files,
        new_files,
        commit=target,
        force=force,
        progress=progress,
        operation=operation,
        changed_only=changed_only,
        trees=trees,
    )


def cache_between(
    repo: Repository,
    before: Mapping[str, tuple[ObjectId, int]],
    head_tree: ObjectId | None,
    tree: ObjectId,
) -> TreeDirs:
    """:func:`cached_after` for a move from ``head_tree`` to ``tree`` (read again: a merge)."""
    dirs: tuple[TreeDirs, TreeDirs] = ({}, {})
    for _ in diff_trees(repo, head_tree, tree, dirs=dirs):
        pass
    return cached_after(before, *dirs)


def cached_after(
    before: Mapping[str, tuple[ObjectId, int]], old: TreeDirs, new: TreeDirs
) -> TreeDirs:
    """The tree cache a changed-paths-only switch can record: each folder ``new`` lists (the
    target's folders on changed paths) whose nearest folder in ``old`` (HEAD's, on the same
    paths) was cached as HEAD's tree. There the staged entries were HEAD's, so once the changed
    paths are the target's (the switch refuses any local change on them) they are the target's:
    ``status`` and the next commit need not rebuild those folders."""
    out: TreeDirs = {}
    for d, value in new.items():
        a = d
        while a not in old:  # a folder the target adds: its parent's state decides
            a = a.rpartition("/")[0]
        cached = before.get(a)
        if cached is not None and cached[0] == old[a][0]:
            out[d] = value
    return out


def apply_files(
    repo: Repository,
    wt: Worktree,
    head_files: Mapping[str, TreeEntry],
    new_files: Mapping[str, TreeEntry],
    *,
    commit: ObjectId | None,
    force: bool,
    progress: Progress | None = None,
    operation: str | None = None,
    changed_only: bool = False,
    trees: Mapping[str, tuple[ObjectId, int]] | None = None,
) -> CheckoutResult:
    """Turn the working copy and index from ``head_files`` into ``new_files``: every check first
    (local changes, files in the way, :func:`preflight`), then ``operation`` (``checkout main``) is
    recorded in progress (:mod:`dsrepo.dvcs.opstate`; the caller finishes it), then files change.

    ``changed_only`` (not with ``force``): both hold only the paths where the two versions
    differ; they agree everywhere else, so nothing else is looked at, written or counted in
    ``kept`` (local changes elsewhere are carried over untouched), and the index's tree cache
    keeps every folder no change is under; ``trees`` (:func:`cached_after`) are recorded for
    the folders on changed paths once every file is in place."""
    if changed_only:  # (only on a case-sensitive filesystem: no case collision to look for)
        dirty = dirty_among(wt, head_files, {*head_files, *new_files})
    else:
        _check_case(wt.root, new_files)
        dirty = set() if force else dirty_paths(repo, wt, head_files)
    # added, changed or removed (no union of both path sets: 1M paths cost ~60 MB each)
    touched = {
        p
        for p, e in new_files.items()
        if (h := head_files.get(p)) is None or (h.kind, h.id) != (e.kind, e.id)
    }
    touched.update(p for p in head_files if p not in new_files)
    settled = settled_paths(repo, wt, head_files, new_files, dirty & touched)
    dirty -= settled
    blocked = sorted(dirty & touched)
    if not force:
        # untracked files in the way of files the target adds
        for p in sorted(touched):
            if p in new_files and p not in wt.index.entries and p not in head_files:
                full = wt.root / p
                if is_real_dir(full):
                    # a folder in the way: fine when it holds only clean tracked files that
                    # this switch removes (they are removed first, then the folder is pruned)
                    if not _only_removed_files(full, p, head_files, new_files, wt, dirty):
                        blocked.append(p)
                elif os.path.lexists(full):
                    if same_content(full, new_files[p], repo):
                        settled.add(p)  # e.g. written by a killed clone: kept, not rewritten
                    else:
                        blocked.append(p)
    if blocked:
        # merge and pull have no --force: point them at what exists
        how = (
            "commit them, or discard them with checkout --force HEAD"
            if operation is not None and operation.startswith(("merge", "pull"))
            else "commit them, or use --force to discard"
        )
        raise WouldOverwrite(
            f"your local changes would be overwritten ({how}): "
            + ", ".join(sorted(set(blocked))[:30])
            + (f" and {len(set(blocked)) - 30} more" if len(set(blocked)) > 30 else "")
        )
    writer = SafeWriter(wt.root)
    result = CheckoutResult(commit)
    index = wt.index
    carried = dirty - touched
    to_write = [
        (p, e)
        # in index order: into an empty index (clone) each entry is appended, no overlay grows
        for p, e in sorted(new_files.items(), key=lambda pe: path_sort_key(pe[0]))
        if p not in carried
        and p not in settled
        and (force or p in touched or p not in index.entries or not os.path.lexists(wt.root / p))
    ]
    if force:  # only rewrite what actually differs on disk
        to_write = [(p, e) for p, e in to_write if not same_content(wt.root / p, e, repo)]
    if wt.sparse is not None:  # a partial working copy materializes only its patterns
        to_write = [(p, e) for p, e in to_write if wt.sparse(p)]
    preflight(repo, wt.root, to_write)
    writer.sweep()  # the case probe's temp file; others go as their directories are written
    previous = opstate.current(repo.dsdir)
    if operation is not None:
        opstate.begin(repo.dsdir, operation)
    try:
        to_remove = [
            p
            for p in sorted(set(head_files) if changed_only else {*head_files, *index.entries})
            if p not in new_files and p not in carried
        ]
        for p in to_remove:
            full = wt.root / p
            try:
                if full.is_symlink() or full.is_file():
                    full.unlink()
                    result.removed.append(p)
                writer.remove_empty_parents(p)
            except (OSError, UnsafePath):
                pass
            index.remove(p)
        total = sum(e.size for _, e in to_write)
        for p in _present(wt.root, [p for p, _ in to_write]):
            full = wt.root / p
            if is_real_dir(full):
                _remove_tree_if_untracked_free(full)
        for p, e, st in forkwrite.write_entries(
            repo.store, writer, to_write, allow_outside_links=False
        ):
            result.written.append(p)
            result.bytes_written += e.size
            if st is not None:
                index.set(IndexEntry.written(p, e, st))
            if progress:
                progress(result.bytes_written, total)
        for p in sorted(settled & new_files.keys()):  # already the target version: just record it
            with contextlib.suppress(OSError):
                index.set(IndexEntry.written(p, new_files[p], os.lstat(wt.root / p)))
        written = {w for w, _ in to_write}
        for p, e in new_files.items():
            if p not in carried and p not in written:
                cur = index.entries.get(p)
                if cur is None or cur.version != (e.kind, e.id):
                    index.set(IndexEntry(p, e.kind, e.size, e.id, e.manifest))
                result.kept += 1
        if (
            not changed_only
            and commit is not None
            and all(_staged_as(index, p, new_files.get(p)) for p in carried)
        ):
            target_tree = repo.commit_tree(commit)  # the index equals the target tree
            if target_tree is not None:
                index.set_trees(repo.tree_dirs(target_tree))
        if changed_only and trees:
            index.trees.update(trees)
        index.save()
    except CorruptObject:  # found while streaming: put back what changed, then refuse
        if force:
            raise
        _put_back(repo, writer, head_files, result.written, result.removed)
        wt.index = StagingIndex(wt.index.path)  # as saved: this run never saved it
        if previous is not None:
            opstate.begin(repo.dsdir, previous)
        else:
            opstate.finish(repo.dsdir)
        raise
    return result


def _present(root: Path, paths: Iterable[str]) -> Iterator[str]:
    """The ``paths`` that exist, found with one listing per folder (not an lstat per path: a
    clone into an empty folder lists nothing)."""
    by_folder: dict[str, list[str]] = {}
    for p in paths:
        folder, _, name = p.rpartition("/")
        by_folder.setdefault(folder, []).append(name)
    for folder, names in by_folder.items():
        try:
            there = set(os.listdir(root / folder if folder else root))
        except OSError:
            continue
        yield from (f"{folder}/{n}" if folder else n for n in names if n in there)


def is_real_dir(path: Path) -> bool:
    """A directory (not a link to one); False for names the filesystem cannot even look up (too
    long...): writing them then fails with a clear PathError."""
    try:
        return path.is_dir() and not path.is_symlink()
    except OSError:
        return False


def _staged_as(index: StagingIndex, path: str, entry: TreeEntry | None) -> bool:
    staged = index.entries.get(path)
    if entry is None:
        return staged is None
    return staged is not None and staged.version == (entry.kind, entry.id)


def _only_removed_files(
    full: Path,
    rel: str,
    head_files: Mapping[str, TreeEntry],
    new_files: Mapping[str, TreeEntry],
    wt: Worktree,
    dirty: set[str],
) -> bool:
    """Whether every entry under folder ``full`` (``rel``) is a clean tracked file the switch
    removes. Anything else (untracked, ignored, modified, a special file) keeps the folder."""
    for dirpath, _dirs, names in os.walk(full):
        for name in names:
            q = f"{rel}/{Path(dirpath, name).relative_to(full).as_posix()}"
            tracked = q in head_files or q in wt.index.entries
            if not tracked or q in new_files or q in dirty:
                return False
    return True


def _remove_tree_if_untracked_free(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        raise WouldOverwrite(f"a non-empty directory {path} is in the way") from None


def checkout(
    repo: Repository,
    wt: Worktree,
    rev: str,
    *,
    force: bool = False,
    detach: bool = False,
    progress: Progress | None = None,
) -> CheckoutResult:
    """``checkout BRANCH`` switches branches; any other revision detaches HEAD."""
    if merge_heads_in_progress(repo) and not force:
        raise WouldOverwrite("a merge is in progress; commit it or run 'dsrepo merge --abort'")
    branch = None
    if rev in ("HEAD", "@") and not detach:
        branch = repo.head_branch()  # checkout HEAD re-materializes; it does not detach
    # "HEAD~1", "v1^{tree}"... are revisions, not branch names: only look up valid names
    elif (
        not detach
        and refname_problem(HEADS + rev) is None
        and repo.refs.resolve(HEADS + rev) is not None
    ):
        branch = branch_ref(rev)
    target = resolve_commit(repo, rev)
    old_detached = repo.head_commit() if repo.head_branch() is None else None
    # to run again after a kill: a branch by name, anything else (HEAD~1...) by its commit id
    operation = f"checkout {rev}" if branch is not None else f"checkout --detach {target.hex()}"
    result = switch_to(repo, wt, target, force=force, progress=progress, operation=operation)
    who = repo.reflog_identity()
    if branch is not None:
        repo.refs.set_symbolic("HEAD", branch, who=who, message=f"checkout: moving to {rev}")
    else:
        repo.refs.set_detached("HEAD", target, who=who, message=f"checkout: moving to {rev}")
    opstate.finish(repo.dsdir)
    result.branch = branch[len(HEADS) :] if branch is not None else None
    if old_detached is not None and old_detached != target:
        result.left_behind = unreachable_from_refs(repo, old_detached)
    return result


def switch(
    repo: Repository,
    wt: Worktree,
    branch: str,
    *,
    create: bool = False,
    start: str = "HEAD",
    force: bool = False,
) -> CheckoutResult:
    from dsrepo.dvcs.commits import create_branch

    ref = branch_ref(branch)
    if create:
        create_branch(repo, branch, start)
    elif repo.refs.resolve(ref) is None:
        if repo.refs.resolve(tag_ref(branch)) is not None:
            raise UnknownRevision(
                f"{branch!r} is a tag, not a branch: 'checkout {branch}' checks it out "
                f"(detached HEAD), 'switch -c NEW {branch}' starts a branch at it"
            )
        raise UnknownRevision(f"branch {branch!r} not found (use -c to create it)")
    return checkout(repo, wt, branch, force=force)


def restore_matching(
    repo: Repository, wt: Worktree, patterns: Sequence[str], source: str
) -> CheckoutResult:
    """``checkout --only GLOB REV`` without ``--into``: write the files of ``source`` matching any
    pattern (worktree-relative, as for ``--into``) into the working copy; HEAD does not move."""
    cid = resolve_commit(repo, source)
    match = match_only(patterns)
    tree = repo.commit_tree(cid)
    roots = [_anchored_prefix(p) for p in patterns]
    found: Iterable[tuple[str, TreeEntry]]
    if tree is not None and all(roots):  # only the named folders are read
        found = files_at(repo, tree, [r for r in roots if r]).items()
    else:  # a pattern may match at any depth: every file is looked at, none is held
        found = () if tree is None else repo.walk_tree(tree)
    files = {p: e for p, e in found if match(p)}
    if not files:
        raise PathError(f"--only {' '.join(patterns)} matches no file in {source}")
    written = restore(repo, wt, sorted(files), source=cid.hex(), cwd=wt.root)
    return CheckoutResult(
        repo.head_commit(), written=written, bytes_written=sum(files[p].size for p in written)
    )


def _anchored_prefix(pattern: str) -> str | None:
    """The folder (or file) every path ``pattern`` matches lies in: its leading components up to
    the first with a wildcard, when it is anchored (a slash before its end: gitignore matches
    the others at any depth, as ``fnmatch`` does ``*`` across slashes). None: no such prefix."""
    if pattern.startswith("!") or "/" not in pattern.rstrip("/"):
        return None
    literal = []
    for part in pattern.strip("/").split("/"):
        if not part or any(c in part for c in "*?[\\"):
            break
        literal.append(part)
    return "/".join(literal) or None


def restore(
    repo: Repository,
    wt: Worktree,
    user_paths: Sequence[str],
    *,
    source: str | None = None,
    staged: bool = False,
    cwd: Path | None = None,
) -> list[str]:
    """Bring paths back from ``source`` (default: the index; with ``staged``: HEAD into the index)."""
    prefixes = wt.relpaths(user_paths, cwd)
    writer = SafeWriter(wt.root)
    restored: list[str] = []
    from_index = source is None and not staged
    tree = None if from_index else repo.commit_tree(resolve_commit(repo, source or "HEAD"))
    for pre in prefixes:  # each read alone: the index's rows or the version's subtree below it
        if from_index:
            files = {e.path: e.tree_entry() for e in wt.index.under(pre.rstrip("/"))}
        else:
            files = files_at(repo, tree, [pre])
        matched = list(files)
        if staged:  # staged paths the source lacks are unstaged (removed from the index)
            extra = [e.path for e in wt.index.under(pre) if e.path not in files]
            for p in extra:
                wt.index.remove(p)
                restored.append(p)
            if extra and not matched:
                continue
        if not matched:
            where = source or ("HEAD" if staged else "the index")
            raise PathError(f"pathspec {pre!r} did not match any file in {where}")
        if not staged:
            prefetch(repo, [files[p] for p in matched])
        for p in sorted(matched):
            e = files[p]
            if staged:
                wt.index.set(IndexEntry(p, e.kind, e.size, e.id, e.manifest))
            else:
                st = writebatch.write_entry(repo.store, writer, p, e, allow_outside_links=False)
                if source is None and st is not None:
                    wt.index.set(IndexEntry.written(p, e, st))
            restored.append(p)
    wt.index.save()
    return restored
