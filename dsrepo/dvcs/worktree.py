"""The verbs that use the staging index (a stat cache, like git's index,
:mod:`dsrepo.dvcs.stagingindex`): add, rm, mv, status.

The index file (``.dsrepo/index``) holds, for every staged path, what the next commit will record
(kind, size, content id, manifest) and the file's stat when it was hashed (size, mtime_ns,
ctime_ns, inode, mode). ``status`` re-hashes only files whose stat changed, plus "racily clean"
files: those whose mtime is not older than the index file itself (git's racy-timestamp rule — a
write in the same timestamp tick as the hashing would otherwise go unnoticed).
"""

from __future__ import annotations

import os
import stat as statmod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import PathError, RepositoryError, WouldOverwrite, path_errors
from dsrepo.dvcs.forkadd import ParallelAdd
from dsrepo.dvcs.ignore import IgnoreRules
from dsrepo.dvcs.lock import index_lock
from dsrepo.dvcs.mergestate import merge_heads_in_progress
from dsrepo.dvcs.opstate import interrupted
from dsrepo.dvcs.pathmatch import sparse_matcher
from dsrepo.dvcs.paths import UnsafePath, check_link_target, user_path_to_relpath
from dsrepo.dvcs.scan import ScanEntry, anchored, scan
from dsrepo.dvcs.stagingindex import IndexEntry as IndexEntry
from dsrepo.dvcs.stagingindex import StagingIndex as StagingIndex
from dsrepo.dvcs.statuswalk import Untracked, walk
from dsrepo.dvcs.treecache import staged_changes
from dsrepo.dvcs.untrackedcache import CONFIG_KEY as UNTRACKED_CACHE_KEY
from dsrepo.dvcs.untrackedcache import for_status as untracked_cache
from dsrepo.objects.errors import FileChanged, FileReadError
from dsrepo.objects.ids import ObjectId, hash_data
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import TreeEntry
from dsrepo.objects.names import name_problem
from dsrepo.objects.store import FileRef

if TYPE_CHECKING:
    from dsrepo.dvcs.repository import Repository


@dataclass(frozen=True, slots=True)
class Status:
    """What ``dsrepo status`` reports. Paths are worktree-relative POSIX strings."""

    branch: str | None
    head: ObjectId | None
    staged_added: tuple[str, ...] = ()
    staged_modified: tuple[str, ...] = ()
    staged_deleted: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    untracked: tuple[str, ...] = ()
    merging: tuple[ObjectId, ...] = ()
    upstream: str | None = None
    ahead: int = 0
    behind: int = 0
    upstream_gone: bool = False
    interrupted: str | None = None
    """A command a killed run left unfinished (``checkout main``, ``clone URL``): run it again."""

    @property
    def clean(self) -> bool:
        return not (
            self.staged_added
            or self.staged_modified
            or self.staged_deleted
            or self.modified
            or self.deleted
        )


@dataclass
class AddResult:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    bytes_hashed: int = 0


def _read_link(root: Path, rel: str) -> bytes:
    return os.fsencode(os.readlink(root / rel))


class Worktree:
    """Working-copy operations for one repository."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.root = repo.root
        self._lock = index_lock(repo.dsdir)
        self._hold = self._lock.hold_number()
        self.index = StagingIndex(repo.dsdir / "index")
        self._rules: IgnoreRules | None = None
        self._valid_folders: set[str] = set()  # folders whose every name was checked
        self.sparse = sparse_matcher(repo)
        """Partial working copies (``clone --only``): paths outside are tracked but not on disk."""

    def stale(self) -> bool:
        """Read before this thread took the index lock it holds: read it again under the lock
        (another process may have changed the index, MERGE_HEAD or the sparse patterns)."""
        now = self._lock.hold_number()
        return now is not None and now != self._hold

    @property
    def rules(self) -> IgnoreRules:
        if self._rules is None:
            self._rules = IgnoreRules.load(self.root)
        return self._rules

    # ---- paths

    def relpaths(self, user_paths: Sequence[str], cwd: Path | None = None) -> list[str]:
        out = []
        for p in user_paths:
            try:
                out.append(user_path_to_relpath(self.root, cwd or Path.cwd(), p))
            except UnsafePath as exc:
                raise PathError(str(exc)) from None
        return out

    def scan(
        self, prefixes: Sequence[str] = ("",), rules: IgnoreRules | None = None
    ) -> Iterator[ScanEntry]:
        """Worktree files under any of ``prefixes`` ("" = everything); ``rules``: other ignore
        rules than the working copy's (``add -f``: none)."""
        rules = rules or self.rules
        if "" in prefixes:
            yield from scan(self.root, rules)
            return
        seen: set[str] = set()
        for pre in prefixes:
            full = self.root / pre
            if full.is_symlink() or full.is_file():
                for s in scan(self.root, rules, only=[anchored(pre)]):
                    if s.path == pre and s.path not in seen:
                        seen.add(s.path)
                        yield s
            elif full.is_dir():
                for s in scan(self.root, rules, only=[anchored(pre) + "/"]):
                    if s.path not in seen:
                        seen.add(s.path)
                        yield s

    # ---- hashing

    def hash_entry(self, s: ScanEntry, write: bool) -> FileRef:
        """Content of a scanned file (stored when ``write``)."""
        if s.kind == EntryKind.SYMLINK:
            target = _read_link(self.root, s.path)
            if write:
                return self.repo.store.write_bytes(target)
            return FileRef(hash_data(target), len(target))
        path = os.path.join(self.root, s.path)
        if write:
            return self.repo.store.write_file(path)
        return hash_file(path, self.repo.store.params.small_file_threshold)

    def _store_batch(self, batch: list[ScanEntry]) -> list[FileRef]:
        """``hash_entry(s, write=True)`` of each, with one index query for the files' chunks."""
        files = [s for s in batch if s.kind != EntryKind.SYMLINK]
        stored = iter(self.repo.store.write_files([os.path.join(self.root, s.path) for s in files]))
        return [
            self.hash_entry(s, write=True) if s.kind == EntryKind.SYMLINK else next(stored)
            for s in batch
        ]

    def _index_entry(self, s: ScanEntry, ref: FileRef) -> IndexEntry:
        return IndexEntry(
            s.path,
            s.kind,
            ref.size,
            ref.content_id,
            ref.manifest,
            s.mtime_ns,
            s.ctime_ns,
            s.ino,
            s.mode,
        )

    def _paths_under(self, prefix: str) -> list[str]:
        start, end = self.index.rows_under(prefix)
        return self.index.paths()[start:end]

    def _tracks(self, prefix: str) -> bool:
        start, end = self.index.rows_under(prefix)
        return end > start

    def differs(self, e: IndexEntry) -> bool:
        """Whether the working file of tracked entry ``e`` is not what the index says: gone,
        of another kind, or other content (hashed only when its stat changed or is racy)."""
        s = _scan_one(self.root, e.path)
        if s is None or s.kind != e.kind:
            return True
        if self._unchanged(e, s):
            return False
        return self.hash_entry(s, write=False).content_id != e.content_id

    def _unchanged(self, e: IndexEntry | None, s: ScanEntry) -> bool:
        return e is not None and e.same_stat(s) and not self.index.is_racy(e)

    # ---- add / rm / mv

    def add(
        self,
        user_paths: Sequence[str],
        cwd: Path | None = None,
        *,
        force: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> AddResult:
        """Stage the files under ``user_paths``; ``progress(bytes read, 0)`` is called as files
        are hashed (the total is unknown until the walk ends).

        A path holding ``*``, ``?`` or ``[`` that names no file is a pattern, matched like
        git's pathspecs against the whole path below its literal leading directory (``*.csv``:
        every CSV file there, at any depth; ``**/`` also matches no directory). Naming an
        ignored path refuses (:class:`IgnoredPaths`) unless ``force``, which adds it (and, for
        a directory, the ignored files in it)."""
        from dsrepo.dvcs.pathglobs import split_pathspecs

        self._rules = None  # .dsrepoignore files may have changed since the last call
        base = cwd or Path.cwd()
        literal, patterns = split_pathspecs(self.root, base, user_paths)
        prefixes = self.relpaths(literal, cwd)
        result = AddResult()
        seen: set[str] = set()
        for pre in prefixes:
            full = self.root / pre if pre else self.root
            if pre and not os.path.lexists(full) and not self._tracks(pre):
                raise PathError(f"pathspec {pre!r} did not match any files")
        if not force:
            ignored = [
                pre
                for pre in prefixes
                if pre
                and pre not in self.index.entries
                and os.path.lexists(self.root / pre)
                and self.rules.is_ignored(pre, (self.root / pre).is_dir())
            ]
            if ignored:
                raise IgnoredPaths(
                    f"ignored by a .dsrepoignore file: {', '.join(ignored)} "
                    "(hint: 'add -f' adds them anyway)"
                )
        rules = IgnoreRules.from_lines(self.root, []) if force else self.rules
        matched = [
            s for pattern in patterns for s in pattern.files(self.scan([pattern.base], rules))
        ]
        for pattern in patterns:
            if not pattern.hits and not any(pattern.match(p) for p in self.index.entries):
                raise PathError(f"pathspec {pattern.text!r} did not match any files")
        store = self.repo.store

        def stage(s: ScanEntry, old: IndexEntry | None, ref: FileRef) -> None:
            self._record(s, old, ref, result, progress)

        batches = ParallelAdd(store, str(self.root), self._store_batch, stage, self._restore)
        try:
            for s in _chain(
                self.scan(prefixes, rules),
                matched,
                self._hidden(prefixes, seen),  # tracked, yet ignored: still updated
            ):
                if s.path in seen:
                    continue
                seen.add(s.path)
                old = self.index.get(s.path)
                if not self._unchanged(old, s):
                    self._check_addable(s)
                    batches.put(s, old)
            batches.finish()
            gone = [p for pre in prefixes for p in self._paths_under(pre)]
            gone += [p for pt in patterns for p in self.index.paths() if pt.match(p)]
            for p in gone:
                if (
                    p not in seen
                    # gone, or no longer a file (e.g. replaced by a directory)
                    and _scan_one(self.root, p) is None
                    and (self.sparse is None or self.sparse(p))
                    and p in self.index
                ):
                    self.index.remove(p)
                    result.removed.append(p)
            store.flush()
        except BaseException:
            batches.close()
            store.abort()
            raise
        seen.clear()  # (~32 MB at 1M files, freed before the save's encoding takes as much)
        if self.index.dirty:
            self.index.save()
        return result

    def _stage(
        self, s: ScanEntry, result: AddResult, progress: Callable[[int, int], None] | None
    ) -> None:
        """Store the scanned file and stage it, unless its stat says it is staged already."""
        old = self.index.get(s.path)
        if self._unchanged(old, s):
            return
        self._check_addable(s)
        self._record(s, old, self.hash_entry(s, write=True), result, progress)

    def _check_addable(self, s: ScanEntry) -> None:
        """Raise PathError for a name no tree may hold, or a link checkout would refuse."""
        folder, _, name = s.path.rpartition("/")
        parts = [name] if folder in self._valid_folders else s.path.split("/")
        for part in parts:
            problem = name_problem(part)
            if problem:
                raise PathError(f"cannot add {s.path!r}: {problem}")
        self._valid_folders.add(folder)
        if s.kind == EntryKind.SYMLINK:  # checkout's rule: no version holds a bad link
            try:
                check_link_target(s.path, os.readlink(self.root / s.path))
            except UnsafePath as exc:
                raise PathError(f"cannot add {s.path!r}: {exc}") from None

    def _record(
        self,
        s: ScanEntry,
        old: IndexEntry | None,
        ref: FileRef,
        result: AddResult,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        result.bytes_hashed += ref.size
        if progress is not None:
            progress(result.bytes_hashed, 0)
        new = self._index_entry(s, ref)
        if old is None:
            result.added.append(s.path)
        elif old.version != new.version:
            result.updated.append(s.path)
        self.index.set(new)

    def _restore(self, path: str) -> None:
        """Store a staged file again (:mod:`dsrepo.dvcs.forkadd`: the process that stored it
        failed before its packs were durable); FileChanged if it is no longer what is staged."""
        e = self.index.get(path)
        s = _scan_one(self.root, path)
        ref = None if s is None or s.kind == EntryKind.SYMLINK else self.hash_entry(s, write=True)
        if e is None or ref is None or (ref.content_id, ref.manifest) != (e.content_id, e.manifest):
            raise FileChanged(f"{path} changed while it was being added; try again")

    def stage_tracked(self) -> AddResult:
        """``commit -a``: stage every change to tracked files (modified, deleted), walking the
        working copy once; untracked files are not looked at. The index is left unsaved: the
        commit saves it once, with the tree cache its trees fill."""
        modified, deleted, _ = self.changes(untracked=Untracked.NO)
        result = AddResult()
        store = self.repo.store
        try:
            for p in modified:
                s = _scan_one(self.root, p)
                if s is None:
                    deleted.append(p)
                else:
                    self._stage(s, result, None)
            store.flush()
        except BaseException:
            store.abort()
            raise
        for p in deleted:
            self.index.remove(p)
            result.removed.append(p)
        return result

    def rm(
        self,
        user_paths: Sequence[str],
        cwd: Path | None = None,
        *,
        cached: bool = False,
        force: bool = False,
        recursive: bool = True,
    ) -> list[str]:
        prefixes = self.relpaths(user_paths, cwd)
        targets: list[IndexEntry] = []
        for pre in prefixes:
            matched = list(self.index.under(pre))
            if not matched:
                raise PathError(f"pathspec {pre!r} did not match any tracked files")
            targets.extend(matched)
        if not cached and not force:
            dirty = [e.path for e in targets if self._worktree_differs(e)]
            if dirty:
                raise WouldOverwrite(
                    "these files have changes that are not staged; use --cached to keep them or "
                    f"--force to delete them: {', '.join(sorted(dirty)[:20])}"
                )
        removed = []
        for e in targets:
            self.index.remove(e.path)
            removed.append(e.path)
            if not cached:
                p = self.root / e.path
                if p.is_symlink() or p.is_file():
                    p.unlink()
                _prune_empty_dirs(self.root, e.path)
        self.index.save()
        return sorted(removed)

    def _worktree_differs(self, e: IndexEntry) -> bool:
        p = self.root / e.path
        if not os.path.lexists(p):
            return False
        s = _scan_one(self.root, e.path)
        if s is None:
            return True
        if self._unchanged(e, s):
            return False
        return self.hash_entry(s, write=False).content_id != e.content_id or s.kind != e.kind

    def mv(
        self, src: str, dst: str, cwd: Path | None = None, *, force: bool = False
    ) -> list[tuple[str, str]]:
        (s_rel, d_rel) = self.relpaths([src, dst], cwd)
        if not s_rel or not d_rel:
            raise PathError("cannot move the working copy root")
        moves = list(self.index.under(s_rel))
        if not moves:
            raise PathError(f"{src!r} is not tracked")
        dpath = self.root / d_rel
        if dpath.is_dir() and not dpath.is_symlink():
            d_rel = f"{d_rel}/{Path(s_rel).name}"
            dpath = self.root / d_rel
        if d_rel == s_rel or d_rel.startswith(s_rel + "/"):
            raise PathError(f"cannot move {s_rel!r} into itself ({d_rel!r})")
        if os.path.lexists(dpath) and not force:
            raise WouldOverwrite(f"destination {d_rel!r} exists; use --force to overwrite it")
        with path_errors(d_rel, "destination"):
            dpath.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.root / s_rel, dpath)
        out = []
        for e in moves:
            new_path = d_rel + e.path[len(s_rel) :]
            self.index.remove(e.path)
            s = _scan_one(self.root, new_path)
            if s is not None:
                e = IndexEntry(
                    new_path,
                    e.kind,
                    e.size,
                    e.content_id,
                    e.manifest,
                    s.mtime_ns,
                    s.ctime_ns,
                    s.ino,
                    s.mode,
                )
            else:
                e = IndexEntry(new_path, e.kind, e.size, e.content_id, e.manifest)
            self.index.set(e)
            out.append((e.path, new_path))
        _prune_empty_dirs(self.root, s_rel)
        self.index.save()
        return out

    # ---- status

    def changes(
        self, *, refresh: bool = True, untracked: Untracked = Untracked.NORMAL
    ) -> tuple[list[str], list[str], list[str]]:
        """(modified, deleted, untracked) of the whole working copy against the index; an
        untracked folder is one ``dir/`` entry unless ``untracked`` is ALL."""
        self._rules = None  # .dsrepoignore files may have changed since the last call
        cache = untracked_cache(self.index.path, self.repo.config.get(UNTRACKED_CACHE_KEY))
        found = walk(self.root, self.rules, self.index, untracked, self.sparse, cache=cache)
        if cache is not None:
            cache.save()  # only if it changed; never fails (a read-only repository)
        modified: list[str] = []
        refreshed = False
        for i in found.suspects:
            e = self.index.entry_at(i)
            s = _scan_one(self.root, e.path)
            if s is None:
                found.deleted.append(e.path)
                continue
            if self._unchanged(e, s):
                continue
            ref = self.hash_entry(s, write=False)
            if ref.content_id == e.content_id and s.kind == e.kind:
                if refresh:  # same content, new stat: remember it so the next status is fast
                    self.index.set(self._index_entry(s, FileRef(e.content_id, e.size, e.manifest)))
                    refreshed = True
                continue
            modified.append(s.path)
        if refreshed:
            self.index.save_if_unchanged()
        return sorted(modified), sorted(set(found.deleted)), sorted(found.untracked)

    def _hidden(self, prefixes: Sequence[str], seen: set[str]) -> Iterator[ScanEntry]:
        """Tracked files the scan did not yield but that exist: ignored ones (``add -f``) are
        still tracked, so compared like any other (git does the same). Call after the scan."""
        for pre in prefixes:
            start, end = self.index.rows_under(pre)
            for p in self.index.paths()[start:end]:
                if p not in seen:
                    s = _scan_one(self.root, p)
                    if s is not None and s.path not in seen:
                        yield s

    def status(self, untracked: Untracked = Untracked.NORMAL) -> Status:
        repo = self.repo
        head = repo.head_commit()
        staged = staged_changes(repo, self.index, repo.commit_tree(head))
        modified, deleted, untracked_paths = self.changes(untracked=untracked)
        from dsrepo.dvcs.upstream import tracking_status

        upstream, ahead, behind, gone = tracking_status(repo)
        return Status(
            upstream=upstream,
            ahead=ahead,
            behind=behind,
            upstream_gone=gone,
            branch=repo.head_branch(),
            head=head,
            staged_added=tuple(sorted(staged.added)),
            staged_modified=tuple(sorted(staged.modified)),
            staged_deleted=tuple(sorted(staged.deleted)),
            modified=tuple(modified),
            deleted=tuple(deleted),
            untracked=tuple(untracked_paths),
            merging=tuple(merge_heads_in_progress(repo)),
            interrupted=interrupted(repo.dsdir),
        )


class IgnoredPaths(RepositoryError):
    """``add`` named an ignored path without ``force`` (exit 1, like git)."""


def _chain(*parts: Iterable[ScanEntry]) -> Iterator[ScanEntry]:
    for part in parts:
        yield from part


def hash_file(path: str, small_threshold: int) -> FileRef:
    """Content id of a file without storing it (status)."""
    from blake3 import blake3

    h = blake3()
    size = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            block = f.read(8 * 1024 * 1024)
            if not block:
                break
            h.update(block)
            size += len(block)
    return FileRef(ObjectId(h.digest()), size, None)


def hash_path(path: str) -> FileRef:
    """``hash-object FILE``: a file's content id, or FileReadError."""
    try:
        return hash_file(path, 0)
    except OSError as exc:
        raise FileReadError(f"cannot read {path}: {exc.strerror or exc}") from None


def hash_bytes(data: bytes) -> FileRef:
    return FileRef(hash_data(data), len(data))


def _scan_one(root: Path, rel: str) -> ScanEntry | None:
    try:
        st = os.lstat(root / rel)
    except OSError:
        return None
    if statmod.S_ISLNK(st.st_mode):
        kind = EntryKind.SYMLINK
    elif statmod.S_ISREG(st.st_mode):
        kind = EntryKind.EXECUTABLE if st.st_mode & 0o100 else EntryKind.FILE
    else:
        return None
    return ScanEntry(rel, kind, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_mode)


def _prune_empty_dirs(root: Path, rel: str) -> None:
    parent = (root / rel).parent
    while parent != root and root in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent


def files_from_index(entries: Iterable[IndexEntry]) -> dict[str, TreeEntry]:
    return {e.path: e.tree_entry() for e in entries}
