"""One pass over the working copy against the staging index: what ``status`` and ``commit -a``
need, at the cost of one directory listing per directory and one ``lstat`` per tracked file.

The walk follows the index's directories (its rows are sorted in component order, so the rows of
a directory are one contiguous range): each directory is listed once, each tracked file found in
the listing is ``lstat``-ed and compared with its row's stat (size, mtime, ctime, inode, kind),
and no Python object is built for a file whose stat matches. What the listing holds beyond the
index is untracked (unless ignored); an untracked directory is reported as one ``dir/`` line
when it holds a file that is not ignored (git's default), or file by file (``untracked="all"``).
Ignore rules are only consulted for untracked names: a tracked file stays tracked (git's rule).

With an :class:`~dsrepo.dvcs.untrackedcache.UntrackedCache`, a folder whose stat (mtime, ctime,
inode) and tracked names are those of its record is not listed: its tracked names are
``lstat``-ed all the same (a missing one is deleted) and the record's leftover names are the
untracked candidates. Only the listing is cached: untracked folders are looked into as without it.
"""

from __future__ import annotations

import enum
import errno
import os
import stat as statmod
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dsrepo.dvcs import forking
from dsrepo.dvcs.ignore import IGNORE_FILE, DirectoryRules, IgnoreRules
from dsrepo.dvcs.scan import ScanError, anchored, path_sort_key, scan
from dsrepo.dvcs.stagingindex import StagingIndex
from dsrepo.dvcs.untrackedcache import (
    KIND_DIR,
    KIND_FILE,
    Record,
    UntrackedCache,
    kind_of_mode,
    tracked_digest,
)


class Untracked(enum.Enum):
    """How ``status`` lists untracked files (git's ``--untracked-files``)."""

    NO = "no"
    NORMAL = "normal"
    """An untracked folder as one ``dir/`` line."""
    ALL = "all"


@dataclass
class WalkResult:
    suspects: list[int] = field(default_factory=list)
    """Rows whose file's stat differs from the index's, or is racily clean: hash them."""
    deleted: list[str] = field(default_factory=list)
    untracked: list[str] = field(default_factory=list)


_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

PARALLEL_MIN_ROWS = 100_000
"""From this many tracked files on, a forked second process walks half of the folders (each
process spends ~1.5 µs per ``lstat`` in Python: two cores halve the walk)."""

# (folder, first row, end row, whether the folder is ignored)
_Task = tuple[str, int, int, bool]


def walk(
    root: Path,
    rules: IgnoreRules,
    index: StagingIndex,
    untracked: Untracked = Untracked.NORMAL,
    sparse: Callable[[str], bool] | None = None,
    *,
    parallel: bool = True,
    cache: UntrackedCache | None = None,
) -> WalkResult:
    """Compare the whole working copy with ``index``; see the module docstring. With ``cache``,
    folders are listed only when their record does not describe them, and the records of this
    walk are left in ``cache.new`` (the caller saves them)."""
    if cache is not None:
        cache.start()
    w = _Walker(root, rules, index, untracked, sparse, cache)
    n = len(w.paths)
    if not (parallel and n >= PARALLEL_MIN_ROWS and forking.can_fork()):
        w.visit("", 0, n, False, None)
        return w.out
    tasks: list[_Task] = []
    w.visit("", 0, n, False, tasks)
    for _ in range(64):  # open the biggest folders until the work splits evenly
        if not tasks:
            break
        big = max(tasks, key=lambda t: t[2] - t[1])
        if (big[2] - big[1]) * 4 <= sum(t[2] - t[1] for t in tasks):
            break
        tasks.remove(big)
        w.visit(*big, tasks)
    mine: list[_Task] = []
    theirs: list[_Task] = []
    for t in sorted(tasks, key=lambda t: t[1] - t[2]):  # biggest first, to the lighter side
        lighter = (
            mine if sum(x[2] - x[1] for x in mine) <= sum(x[2] - x[1] for x in theirs) else theirs
        )
        lighter.append(t)
    return _fork_walk(w, mine, theirs)


def _fork_walk(w: _Walker, mine: list[_Task], theirs: list[_Task]) -> WalkResult:
    """Walk ``theirs`` in a forked child and ``mine`` here; if the child fails in any way, walk
    ``theirs`` here too (an error then surfaces from this process, with its message)."""

    def work() -> list[object]:
        child = w.fresh()
        for t in theirs:
            child.visit(*t, None)
        out = child.out
        cached = child.cache.export() if child.cache is not None else None
        return [out.suspects, out.deleted, out.untracked, cached]

    child = forking.Child(work)
    try:
        for t in mine:
            w.visit(*t, None)
    finally:
        got = child.result()
    try:
        suspects, deleted, untracked, cached = got
        if w.cache is not None:
            w.cache.merge(cached)
    except Exception:  # the child failed (None), or its answer is not what it sends
        for t in theirs:
            w.visit(*t, None)
        return w.out
    w.out.suspects += suspects
    w.out.deleted += deleted
    w.out.untracked += untracked
    return w.out


class _Walker:
    def __init__(
        self,
        root: Path,
        rules: IgnoreRules,
        index: StagingIndex,
        untracked: Untracked,
        sparse: Callable[[str], bool] | None,
        cache: UntrackedCache | None = None,
    ) -> None:
        self.root, self.rules, self.index = root, rules, index
        self.untracked, self.sparse, self.cache = untracked, sparse, cache
        self.root_s = os.fspath(root)
        self.paths = index.columns().paths
        self.out = WalkResult()

    def fresh(self) -> _Walker:
        cache = self.cache.child() if self.cache is not None else None
        return _Walker(self.root, self.rules, self.index, self.untracked, self.sparse, cache)

    def gone(self, lo: int, hi: int) -> None:
        sparse = self.sparse
        if sparse is None:
            self.out.deleted.extend(self.paths[lo:hi])
        else:
            self.out.deleted.extend(p for p in self.paths[lo:hi] if sparse(p))

    def visit(self, rel: str, lo: int, hi: int, ignored: bool, defer: list[_Task] | None) -> None:
        """Compare folder ``rel`` (index rows [lo, hi)); its tracked subfolders are visited
        too, or appended to ``defer`` when given."""
        abs_dir = f"{self.root_s}/{rel}" if rel else self.root_s
        try:  # a subfolder swapped for a symlink since it was checked is not followed
            fd = os.open(abs_dir, _DIR_FLAGS | (_NOFOLLOW if rel else 0))
        except (FileNotFoundError, NotADirectoryError):
            if not rel:
                raise ScanError(f"cannot read directory {abs_dir}: not found") from None
            self.gone(lo, hi)
            return
        except OSError as exc:
            if exc.errno == errno.ELOOP and rel:
                self.gone(lo, hi)
                return
            raise ScanError(f"cannot read directory {abs_dir}: {exc.strerror or exc}") from None
        try:
            self._compare(rel, fd, lo, hi, ignored, defer)
        except OSError as exc:
            raise ScanError(f"cannot read directory {abs_dir}: {exc.strerror or exc}") from None
        finally:
            os.close(fd)

    def _compare(
        self, rel: str, fd: int, lo: int, hi: int, ignored: bool, defer: list[_Task] | None
    ) -> None:
        plen = len(rel) + 1 if rel else 0
        names, starts = self._children(plen, lo, hi)
        cache = self.cache
        record: Record | None = None
        if cache is not None:
            st = os.fstat(fd)  # before the listing: an entry changed after it shows in the stat
            digest = tracked_digest("\0".join(names))
            record = cache.lookup(rel, st, digest)
        listing: set[str] | None = None
        if record is None:
            # names only (os.listdir), then lstat by name relative to the folder's descriptor:
            # ~20 % cheaper per file than scandir's DirEntry objects
            listing = set(os.listdir(fd))
            has_ignore_file = IGNORE_FILE in listing
        else:
            has_ignore_file = record.ignore_file
        dir_rules: DirectoryRules | None = None
        if not ignored and self.untracked is not Untracked.NO:
            dir_rules = self.rules.enter_directory(rel, has_ignore_file=has_ignore_file)
        leaf = False if starts is not None else self._clean_leaf(fd, listing, names, lo, hi)
        if leaf is not True:
            if listing is None:  # as recorded: absent tracked names fail their lstat
                assert record is not None
                listing = set(names) if starts is None else {n.rstrip("/") for n in names}
                listing.update(n for n, _ in record.leftover)
            sts = leaf if isinstance(leaf, list) else None  # the leaf check's lstat, if taken
            self._rows(rel, fd, listing, names, starts, lo, dir_rules, defer, sts)
        left: list[tuple[str, int]] = []
        if record is not None:
            left = list(record.leftover)
            if left and listing is not None:  # what the tracked children took is not untracked
                left = [e for e in left if e[0] in listing]
            elif left:  # a clean leaf: its tracked names were all files
                taken = set(names)
                left = [e for e in left if e[0] not in taken]
        else:
            assert listing is not None
            if cache is not None and not cache.is_racy(st):
                left = _kinds(fd, listing)
                cache.record(rel, st, digest, has_ignore_file, tuple(left))
            elif dir_rules is not None and listing:
                left = _kinds(fd, listing)
        if dir_rules is not None and left:
            self._untracked(rel, left, dir_rules)

    def _children(self, plen: int, lo: int, hi: int) -> tuple[list[str], list[int] | None]:
        """The names of the folder's tracked children (rows [lo, hi)) in index order, and None
        when all are files (``names[k]`` is row ``lo + k``); else each subfolder's name ends in
        ``/`` and the second item lists the first row of each child, then ``hi``."""
        paths = self.paths
        if lo == hi:
            return [], None
        if paths[lo].find("/", plen) < 0 and paths[hi - 1].find("/", plen) < 0:
            # the names at C speed: every row starts with the folder's prefix
            joined = "\0".join(paths[lo:hi])
            if plen:
                joined = joined[plen:].replace("\0" + joined[:plen], "\0")
            if "/" not in joined:
                return joined.split("\0"), None
        names: list[str] = []
        starts: list[int] = []
        i = lo
        while i < hi:
            p = paths[i]
            slash = p.find("/", plen)
            starts.append(i)
            if slash < 0:
                names.append(p[plen:])
                i += 1
            else:  # a tracked subfolder: its rows are contiguous
                names.append(p[plen : slash + 1])
                sub = path_sort_key(p[:slash]) + b"\x01"
                i = bisect_left(paths, sub, i + 1, hi, key=path_sort_key)
        starts.append(hi)
        return names, starts

    def _rows(
        self,
        rel: str,
        fd: int,
        listing: set[str],
        names: list[str],
        starts: list[int] | None,
        lo: int,
        dir_rules: DirectoryRules | None,
        defer: list[_Task] | None,
        sts: list[os.stat_result] | None,
    ) -> None:
        """Compare the tracked children one by one: each found leaves ``listing``. ``sts``:
        their ``lstat``, when :meth:`_clean_leaf` took it already (all files, all present)."""
        cols = self.index.columns()
        sizes, mtimes, ctimes = cols.sizes, cols.mtimes, cols.ctimes
        inos, modes = cols.inos, cols.modes
        stamp = self.index.stamp_ns
        suspects = self.out.suspects
        lstat, isdir = os.lstat, statmod.S_ISDIR
        discard = listing.discard
        for k, name in enumerate(names):
            i = lo + k if starts is None else starts[k]
            if name[-1] != "/":  # a tracked file of this folder
                if name not in listing:
                    self.gone(i, i + 1)
                    continue
                try:
                    st = lstat(name, dir_fd=fd) if sts is None else sts[k]
                except FileNotFoundError:
                    self.gone(i, i + 1)
                    continue
                mt = st.st_mtime_ns
                if (
                    mt != mtimes[i]
                    or st.st_size != sizes[i]
                    or st.st_ctime_ns != ctimes[i]
                    or st.st_ino != inos[i]
                    or st.st_mode != modes[i]
                    or mt >= stamp
                ):
                    if isdir(st.st_mode):  # a folder where a file was: untracked, below
                        self.gone(i, i + 1)
                    else:
                        discard(name)
                        suspects.append(i)  # the caller looks closer (kind, content)
                else:
                    discard(name)
                continue
            assert starts is not None  # a tracked subfolder: rows [i, j)
            j = starts[k + 1]
            name = name[:-1]
            try:
                is_folder = name in listing and isdir(lstat(name, dir_fd=fd).st_mode)
            except FileNotFoundError:
                is_folder = False
            if is_folder:
                discard(name)
                sub = f"{rel}/{name}" if rel else name
                sub_ignored = dir_rules is None or dir_rules.is_ignored(name, True)
                if defer is None:
                    self.visit(sub, i, j, sub_ignored, None)
                else:
                    defer.append((sub, i, j, sub_ignored))
            else:  # gone, or a file where a folder was (untracked, below)
                self.gone(i, j)

    def _clean_leaf(
        self, fd: int, listing: set[str] | None, names: list[str], lo: int, hi: int
    ) -> bool | list[os.stat_result]:
        """The common case at C speed: rows [lo, hi) are all files of this folder (no
        subfolder; ``names`` are theirs), all present, and their stat equals the index's (none
        racily clean). Then their names leave ``listing`` and True is returned; else nothing
        changes and the caller compares them one by one, with their ``lstat`` if returned
        (a folder where a few files changed is not asked twice). Without a listing (the
        cache's record stands for it) a missing file makes its ``lstat`` fail instead."""
        if hi - lo < 8 or (listing is not None and not listing.issuperset(names)):
            return False
        lstat = os.lstat
        try:
            sts = [lstat(n, dir_fd=fd) for n in names]
        except OSError:
            return False
        c = self.index.columns()
        mtimes = c.mtimes[lo:hi]
        if not (
            max(mtimes) < self.index.stamp_ns
            and [s.st_mtime_ns for s in sts] == mtimes.tolist()
            and [s.st_size for s in sts] == c.sizes[lo:hi].tolist()
            and [s.st_ctime_ns for s in sts] == c.ctimes[lo:hi].tolist()
            and [s.st_ino for s in sts] == c.inos[lo:hi].tolist()
            and [s.st_mode for s in sts] == c.modes[lo:hi].tolist()
        ):
            return sts
        if listing is not None:
            listing.difference_update(names)
        return True

    def _untracked(self, rel: str, left: list[tuple[str, int]], dir_rules: DirectoryRules) -> None:
        """Report the names ``left`` (sorted, with their kinds) that are not ignored."""
        found = self.out.untracked
        for name, kind in left:
            is_dir = kind == KIND_DIR
            if dir_rules.is_ignored(name, is_dir):
                continue
            path = f"{rel}/{name}" if rel else name
            if not is_dir:
                if kind == KIND_FILE:
                    found.append(path)
            elif self.untracked is Untracked.ALL:
                found.extend(
                    s.path for s in scan(self.root, self.rules, only=[anchored(path) + "/"])
                )
            elif _holds_a_file(self.root, self.rules, path):
                found.append(path + "/")


def _kinds(fd: int, names: set[str]) -> list[tuple[str, int]]:
    """(name, kind) of the entries ``names`` of the folder ``fd``, sorted (vanished ones left
    out)."""
    out: list[tuple[str, int]] = []
    lstat = os.lstat
    for name in sorted(names):
        try:
            out.append((name, kind_of_mode(lstat(name, dir_fd=fd).st_mode)))
        except FileNotFoundError:
            continue
    return out


def _holds_a_file(root: Path, rules: IgnoreRules, rel: str) -> bool:
    """Whether the untracked folder ``rel`` holds a file that is not ignored (stops at the
    first: git does not show a folder of ignored or no files)."""
    for _ in scan(root, rules, only=[anchored(rel) + "/"]):
        return True
    return False
