"""Reading history: log, diff between versions (with renames detected by content), show, ls-files."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import PathError
from dsrepo.dvcs.graph import topo_order
from dsrepo.dvcs.refnames import TAGS, shorten
from dsrepo.dvcs.revisions import peel, resolve_commit, resolve_tree
from dsrepo.dvcs.treecache import staged_changes
from dsrepo.errors import DsrepoError
from dsrepo.objects.ids import ObjectId, from_hex
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import Commit, ObjectType, TreeEntry

if TYPE_CHECKING:
    from dsrepo.dvcs.bare import BareRepository
    from dsrepo.dvcs.repository import Repository
    from dsrepo.dvcs.worktree import Worktree


@dataclass(frozen=True, slots=True)
class PathFilter:
    """Which repository paths the user's paths select: a literal path selects itself and what is
    under it (``""``: everything); a glob matches the whole path like ``add``'s pathspecs."""

    literal: tuple[str, ...] = ()
    globs: tuple[re.Pattern[str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.literal or self.globs)

    def __call__(self, path: str) -> bool:
        for pre in self.literal:
            if not pre or path == pre or path.startswith(pre + "/"):
                return True
        return any(g.match(path) is not None for g in self.globs)


def path_filter(
    root: Path | None, cwd: Path | None, user_paths: Sequence[str] | PathFilter
) -> PathFilter:
    """The one place paths typed for ``log``, ``diff`` and ``ls-files`` are read (as ``add``,
    ``rm``, ``mv`` and ``restore`` read theirs): relative to ``cwd`` (or absolute), as git does;
    ``cwd`` None means relative to the repository root (the Python API's default). A path with
    ``*``, ``?`` or ``[`` that names no existing file is a glob (:mod:`dsrepo.dvcs.pathglobs`
    rules: ``*`` also matches ``/``). Without a working copy (``root`` None) paths are taken from
    the root. A path outside the working copy is a :class:`PathError`."""
    from dsrepo.dvcs.pathglobs import glob_regex, split_pathspecs
    from dsrepo.dvcs.paths import UnsafePath, user_path_to_relpath

    if isinstance(user_paths, PathFilter):
        return user_paths
    if root is None:
        literal = [p.strip("/") for p in user_paths if not has_glob(p)]
        globs = [glob_regex(p.strip("/")) for p in user_paths if has_glob(p)]
        return PathFilter(tuple(literal), tuple(globs))
    base = cwd if cwd is not None else root
    plain, specs = split_pathspecs(root, base, list(user_paths))
    out: list[str] = []
    for p in plain:
        try:
            out.append(user_path_to_relpath(root, base, p))
        except UnsafePath as exc:
            raise PathError(str(exc)) from None
    return PathFilter(tuple(out), tuple(spec.regex for spec in specs))


def has_glob(text: str) -> bool:
    return any(c in "*?[" for c in text)


@dataclass(frozen=True, slots=True)
class LogEntry:
    id: ObjectId
    commit: Commit


def log(
    repo: BareRepository,
    revs: Sequence[str] = ("HEAD",),
    *,
    max_count: int | None = None,
    paths: Sequence[str] | PathFilter = (),
    cwd: Path | None = None,
) -> list[LogEntry]:
    """Commits reachable from ``revs``, newest first (children before parents); with ``paths``
    (see :func:`path_filter`), only those that change a selected path."""
    select = path_filter(getattr(repo, "root", None), cwd, paths)
    heads = [resolve_commit(repo, r).hex() for r in revs]
    order = topo_order(
        repo.parents_of,
        heads,
        timestamp=lambda h: repo.store.get_commit(from_hex(h)).committer.time,
    )
    out: list[LogEntry] = []
    for h in order:
        oid = from_hex(h)
        c = repo.store.get_commit(oid)
        if select and not _touches(repo, c, select):
            continue
        out.append(LogEntry(oid, c))
        if max_count is not None and len(out) >= max_count:
            break
    return out


def _entry_at(repo: BareRepository, tree: ObjectId, path: str) -> tuple[EntryKind, ObjectId] | None:
    e = repo.lookup_path(tree, path) if path else None
    return None if e is None else (e.kind, e.id)


def _touches(repo: BareRepository, c: Commit, select: PathFilter) -> bool:
    """A commit touches a path when the path differs from every parent (a merge that took one
    side unchanged is not listed), or when a root commit has it. Globs compare whole trees
    (identical subtrees are skipped unread); literal paths are looked up."""
    if select.globs:
        trees: list[ObjectId | None] = [repo.store.get_commit(p).tree for p in c.parents]
        return all(
            any(select(p) for p, _, _ in diff_trees(repo, t, c.tree))  # type: ignore[arg-type]
            for t in trees or [None]
        )
    for p in select.literal:
        mine = _entry_at(repo, c.tree, p)
        if not c.parents:
            if mine is not None:
                return True
            continue
        if all(_entry_at(repo, repo.store.get_commit(par).tree, p) != mine for par in c.parents):
            return True
    return False


# ---------------------------------------------------------------- diff


@dataclass(frozen=True, slots=True)
class FileChange:
    status: str  # "A" added, "D" deleted, "M" modified, "R" renamed (same content, new path)
    path: str
    old: TreeEntry | None
    new: TreeEntry | None
    old_path: str | None = None


@dataclass
class DiffResult:
    changes: list[FileChange] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for c in self.changes if c.status == status)

    @property
    def bytes_added(self) -> int:
        return sum(c.new.size for c in self.changes if c.status == "A" and c.new)

    @property
    def bytes_removed(self) -> int:
        return sum(c.old.size for c in self.changes if c.status == "D" and c.old)

    @property
    def bytes_modified(self) -> int:
        return sum(c.new.size for c in self.changes if c.status == "M" and c.new)

    def summary(self) -> str:
        return (
            f"{self.count('A')} added (+{self.bytes_added} B), {self.count('D')} removed "
            f"(-{self.bytes_removed} B), {self.count('M')} modified ({self.bytes_modified} B), "
            f"{self.count('R')} renamed"
        )


def _entries(repo: Repository, tree: ObjectId | None) -> dict[str, TreeEntry]:
    return {} if tree is None else {e.name: e for e in repo.store.tree_entries(tree)}


TreeDirs = dict[str, tuple[ObjectId, int]]
"""Folder ("" = the top) → (tree id, size), as the tree cache of the staging index holds."""


def files_under(
    repo: Repository, e: TreeEntry, path: str, dirs: TreeDirs | None = None
) -> Iterator[tuple[str, TreeEntry]]:
    """The files at ``path`` of a version: the entry itself, or every file of its subtree
    (``dirs`` receives each folder's (tree id, size), as :meth:`BareRepository.walk_tree`)."""
    if e.kind == EntryKind.TREE:
        yield from repo.walk_tree(e.id, path + "/", dirs)
    else:
        yield path, e


def diff_trees(
    repo: Repository,
    a: ObjectId | None,
    b: ObjectId | None,
    prefix: str = "",
    dirs: tuple[TreeDirs, TreeDirs] | None = None,
) -> Iterator[tuple[str, TreeEntry | None, TreeEntry | None]]:
    """(path, old, new) for every file that differs; identical subtrees are skipped unread.
    ``dirs``: (old, new) receive every folder the walk read on either side: the folders on
    changed paths, with the top."""
    if a == b:
        return
    ea, eb = _entries(repo, a), _entries(repo, b)
    if dirs is not None and not prefix:
        for side, tree, entries in ((dirs[0], a, ea), (dirs[1], b, eb)):
            if tree is not None:
                side[""] = (tree, sum(e.size for e in entries.values()))
    for name in sorted(set(ea) | set(eb)):
        x, y = ea.get(name), eb.get(name)
        path = prefix + name
        if x is not None and y is not None and x.kind == y.kind == EntryKind.TREE:
            if x.id != y.id:
                if dirs is not None:
                    dirs[0][path], dirs[1][path] = (x.id, x.size), (y.id, y.size)
                yield from diff_trees(repo, x.id, y.id, path + "/", dirs)
            continue
        if (
            x is not None
            and y is not None
            and x.kind != EntryKind.TREE
            and y.kind != EntryKind.TREE
        ):
            if (x.kind, x.id) != (y.kind, y.id):
                yield path, x, y
            continue
        if x is not None:
            for p, e in files_under(repo, x, path):
                yield p, e, None
        if y is not None:
            for p, e in files_under(repo, y, path, None if dirs is None else dirs[1]):
                yield p, None, e


def _differ(x: TreeEntry | None, y: TreeEntry | None) -> bool:
    """Whether a path's two entries (None: absent) are different versions."""
    return x is None or y is None or (x.kind, x.id) != (y.kind, y.id)


def diff_files(
    old: Mapping[str, TreeEntry], new: Mapping[str, TreeEntry]
) -> Iterator[tuple[str, TreeEntry | None, TreeEntry | None]]:
    for p in sorted(set(old) | set(new)):
        x, y = old.get(p), new.get(p)
        if _differ(x, y):
            yield p, x, y


def classify(
    pairs: Iterator[tuple[str, TreeEntry | None, TreeEntry | None]],
    paths: Sequence[str] | PathFilter = (),
) -> DiffResult:
    """Turn (path, old, new) triples into changes, pairing deletions and additions with the same
    content as renames (dedup by content, not by path)."""
    added: list[tuple[str, TreeEntry]] = []
    deleted: dict[ObjectId, list[tuple[str, TreeEntry]]] = {}
    result = DiffResult()
    select = path_filter(None, None, paths)
    for p, x, y in pairs:
        if select and not select(p):
            continue
        if x is not None and y is not None:
            result.changes.append(FileChange("M", p, x, y))
        elif y is not None:
            added.append((p, y))
        elif x is not None:
            deleted.setdefault(x.id, []).append((p, x))
    for p, y in added:
        candidates = deleted.get(y.id)
        if candidates:
            old_path, x = candidates.pop(0)
            result.changes.append(FileChange("R", p, x, y, old_path))
        else:
            result.changes.append(FileChange("A", p, None, y))
    for group in deleted.values():
        for p, x in group:
            result.changes.append(FileChange("D", p, x, None))
    result.changes.sort(key=lambda c: c.path)
    return result


def files_at(
    repo: Repository, tree: ObjectId | None, prefixes: Sequence[str]
) -> dict[str, TreeEntry]:
    """The files of ``tree`` at or below each prefix: only their subtrees are read (restoring
    one file of a million-file version read and held the whole version)."""
    files: dict[str, TreeEntry] = {}
    if tree is None:
        return files
    for pre in prefixes:
        key = pre.strip("/")
        if not key:
            return repo.flatten(tree)
        e = repo.lookup_path(tree, key)
        if e is not None:
            files.update(files_under(repo, e, key))
    return files


def _unstaged(wt: Worktree) -> Iterator[tuple[str, TreeEntry | None, TreeEntry | None]]:
    """(path, staged, working) for each tracked file whose working copy differs from the index:
    the status walk finds them (hashing only files whose stat changed), nothing else is read."""
    from dsrepo.dvcs.statuswalk import Untracked
    from dsrepo.dvcs.worktree import _scan_one

    modified, deleted_list, _ = wt.changes(untracked=Untracked.NO)
    deleted = set(deleted_list)
    for p in sorted({*modified, *deleted}):
        e = wt.index.get(p)
        if e is None:
            continue
        old = e.tree_entry()
        s = None if p in deleted else _scan_one(wt.root, p)
        if s is None:
            yield p, old, None
            continue
        ref = wt.hash_entry(s, write=False)
        new = TreeEntry(old.name, s.kind, ref.size, ref.content_id, None)
        if _differ(old, new):
            yield p, old, new


def _staged(
    repo: Repository, wt: Worktree, tree: ObjectId | None
) -> Iterator[tuple[str, TreeEntry | None, TreeEntry | None]]:
    """(path, in ``tree``, staged) for each path where they differ: folders whose cached tree
    is ``tree``'s are not opened, and only the changed paths are looked up in ``tree``."""
    index = wt.index
    got = staged_changes(repo, index, tree)
    old = files_at(repo, tree, [*got.modified, *got.deleted])
    for p in sorted({*got.added, *got.modified, *got.deleted}):
        e = index.get(p)
        x, y = old.get(p), None if e is None else e.tree_entry()
        if _differ(x, y):
            yield p, x, y


def diff(
    repo: Repository,
    wt: Worktree | None,
    a: str | None = None,
    b: str | None = None,
    paths: Sequence[str] = (),
    *,
    cached: bool = False,
    cwd: Path | None = None,
) -> DiffResult:
    """``diff`` (index → worktree), ``diff --cached`` (HEAD → index), ``diff A`` (A → worktree),
    ``diff A B`` (A → B); ``paths`` as :func:`path_filter` reads them. Each costs what changed:
    the trees' differing folders, the index's folders whose cached tree is not the version's,
    the files the status walk finds changed."""
    select = path_filter(repo.root, cwd, paths)
    if a is not None and b is not None:
        return classify(diff_trees(repo, resolve_tree(repo, a), resolve_tree(repo, b)), select)
    assert wt is not None
    if cached:
        tree = resolve_tree(repo, a or "HEAD") if (a or repo.head_commit()) else None
        return classify(_staged(repo, wt, tree), select)
    if a is None:
        return classify(_unstaged(wt), select)
    return classify(_against_working(repo, wt, resolve_tree(repo, a)), select)


def _against_working(
    repo: Repository, wt: Worktree, tree: ObjectId | None
) -> Iterator[tuple[str, TreeEntry | None, TreeEntry | None]]:
    """(path, in ``tree``, working) where they differ: the version against the index, then the
    index against the working copy (where the index equals the version, so does its entry)."""
    staged = {p: (x, y) for p, x, y in _staged(repo, wt, tree)}
    unstaged = {p: (x, y) for p, x, y in _unstaged(wt)}
    for p in sorted({*staged, *unstaged}):
        old = staged[p][0] if p in staged else unstaged[p][0]
        new = unstaged[p][1] if p in unstaged else staged[p][1]
        if (old is not None or new is not None) and _differ(old, new):
            yield p, old, new


# ---------------------------------------------------------------- listing


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str
    kind: EntryKind
    size: int
    content_id: ObjectId
    chunks: int


def ls_files(
    repo: Repository,
    rev: str | None,
    pattern: str | None = None,
    wt: Worktree | None = None,
    cwd: Path | None = None,
) -> Iterator[FileInfo]:
    """Files of a version (or of the index when ``rev`` is None), with size and content id;
    ``pattern`` (a path or glob) as :func:`path_filter` reads it. Streams the index or the
    version's trees in component order: the first file comes at once, whatever the size."""
    select = path_filter(repo.root, cwd, [pattern] if pattern else [])
    if rev is None:
        assert wt is not None
        index = wt.index
        for i, p in enumerate(index.paths()):
            if not select or select(p):
                e = index.entry_at(i)
                chunks = len(repo.store.get_manifest(e.manifest).chunks) if e.manifest else 1
                yield FileInfo(p, e.kind, e.size, e.content_id, chunks)
        return
    for p, t in repo.walk_in_order(resolve_tree(repo, rev)):  # index order, streamed
        if not select or select(p):
            chunks = len(repo.store.get_manifest(t.manifest).chunks) if t.manifest else 1
            yield FileInfo(p, t.kind, t.size, t.id, chunks)


def ls_paths(
    repo: Repository,
    rev: str | None,
    pattern: str | None = None,
    wt: Worktree | None = None,
    cwd: Path | None = None,
) -> Iterator[str]:
    """The paths :func:`ls_files` lists, without building a record per file."""
    if rev is not None:
        yield from (f.path for f in ls_files(repo, rev, pattern, wt, cwd))
        return
    assert wt is not None
    select = path_filter(repo.root, cwd, [pattern] if pattern else [])
    paths = wt.index.paths()
    yield from (p for p in paths if select(p)) if select else paths


def decorations(repo: Repository) -> dict[ObjectId, list[str]]:
    """Ref names by the commit they point to, as ``log`` shows them (``HEAD -> main``,
    ``tag: v1``, ``origin/main``); annotated tags are peeled to their commits."""
    out: dict[ObjectId, list[str]] = {}
    head = repo.head_commit()
    branch = repo.head_branch()
    for name, oid in repo.refs.list("refs/").items():
        label = shorten(name)
        if name == branch:
            label = f"HEAD -> {label}"
        if name.startswith(TAGS):
            label = f"tag: {label}"
            with contextlib.suppress(DsrepoError):
                oid = peel(repo, oid, ObjectType.COMMIT)
        out.setdefault(oid, []).append(label)
    if branch is None and head is not None:
        out.setdefault(head, []).insert(0, "HEAD")
    return out
