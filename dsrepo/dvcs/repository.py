"""A repository: an object store plus a ref store, in a ``.dsrepo`` folder beside a working copy.

This module holds the core (creating, opening, identity, tree walking). Each porcelain verb lives
in a module named after it (``worktree``, ``commits``, ``checkout``, ``history``, ``merging``,
``sync``); :class:`Repository` exposes them as methods so ``from dsrepo import Repository`` is
the whole Python API.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsrepo.dvcs.config import Config
from dsrepo.dvcs.errors import (
    AlreadyARepository,
    MissingIdentity,
    NotARepository,
    PathError,
    RepositoryError,
)
from dsrepo.dvcs.refs import HEAD, RefStore
from dsrepo.objects.chunking import ChunkerParams, RepoFormat
from dsrepo.objects.errors import FormatError
from dsrepo.objects.ids import ObjectId, from_hex
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.locindex import LocationIndex
from dsrepo.objects.model import Signature, TreeEntry
from dsrepo.objects.store import ObjectStore
from dsrepo.remotes.directory import DirectoryBackend

if TYPE_CHECKING:
    from dsrepo.dvcs.checkout import CheckoutResult
    from dsrepo.dvcs.commits import BranchInfo, CommitInfo, TagInfo
    from dsrepo.dvcs.history import DiffResult, FileInfo, LogEntry
    from dsrepo.dvcs.merge import Strategy
    from dsrepo.dvcs.merging import MergeOutcome
    from dsrepo.dvcs.worktree import AddResult, Status, Worktree

DSDIR = ".dsrepo"
DEFAULT_BRANCH = "main"


def _local_tz_minutes(ts: float) -> int:
    lt = time.localtime(ts)
    return (lt.tm_gmtoff or 0) // 60


class Repository:
    """A dataset repository. Create with :meth:`init`, open with :meth:`open`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dsdir = root / DSDIR
        self.backend = DirectoryBackend(self.dsdir)
        try:
            fmt = ObjectStore.read_format(self.backend)
        except FormatError as exc:
            raise NotARepository(f"{self.dsdir} is not a usable repository: {exc}") from None
        (self.dsdir / "cache").mkdir(exist_ok=True)
        self.store = ObjectStore(
            self.backend, LocationIndex(self.dsdir / "cache" / "objects.sqlite"), fmt
        )
        self.store.sync_index()
        self.refs = RefStore(self.backend, self.dsdir / "logs")
        self.config = Config(self.dsdir / "config")

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def init(
        cls,
        path: str | os.PathLike[str] = ".",
        *,
        branch: str = DEFAULT_BRANCH,
        chunker: ChunkerParams | None = None,
    ) -> Repository:
        """Create a repository in ``path`` (created if missing). Refuses an existing one."""
        from dsrepo.dvcs.refnames import branch_ref

        root = Path(path).absolute()
        dsdir = root / DSDIR
        if (dsdir / "format").exists():
            raise AlreadyARepository(f"{dsdir} already exists")
        ref = branch_ref(branch)
        root.mkdir(parents=True, exist_ok=True)
        backend = DirectoryBackend(dsdir, create=True)
        for sub in ("packs", "refs/heads", "refs/tags", "logs", "cache"):
            (dsdir / sub).mkdir(parents=True, exist_ok=True)
        fmt = RepoFormat(chunker=(chunker or ChunkerParams()).validate())
        if not backend.put_if_absent("HEAD", f"ref: {ref}\n".encode()):
            pass
        ObjectStore.initialize(backend, fmt)
        return cls(root)

    @classmethod
    def open(cls, path: str | os.PathLike[str] = ".", *, search_parents: bool = True) -> Repository:
        """Open the repository containing ``path`` (searching upward like git)."""
        start = Path(path).absolute()
        for candidate in [start, *start.parents] if search_parents else [start]:
            if (candidate / DSDIR / "format").is_file():
                return cls(candidate)
        raise NotARepository(f"not a dsrepo repository (or any parent up to /): {start}")

    def close(self) -> None:
        self.store.close()
        self.backend.close()

    def __enter__(self) -> Repository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ identity and HEAD

    def identity(self) -> Signature:
        """The author for new commits: $DSREPO_AUTHOR_NAME/_EMAIL, else user.name/user.email."""
        name = os.environ.get("DSREPO_AUTHOR_NAME") or self.config.get("user.name")
        email = os.environ.get("DSREPO_AUTHOR_EMAIL") or self.config.get("user.email")
        if not name or not email:
            raise MissingIdentity(
                "author identity unknown: run dsrepo config --global user.name 'Your Name' and "
                "dsrepo config --global user.email you@example.com (or set DSREPO_AUTHOR_NAME/EMAIL)"
            )
        stamp = os.environ.get("DSREPO_AUTHOR_DATE")
        ts = int(stamp) if stamp and stamp.lstrip("-").isdigit() else int(time.time())
        return Signature(name, email, ts, _local_tz_minutes(ts))

    def reflog_identity(self) -> Signature:
        try:
            return self.identity()
        except MissingIdentity:
            ts = int(time.time())
            return Signature(
                os.environ.get("USER", "unknown"), "unknown", ts, _local_tz_minutes(ts)
            )

    def head_branch(self) -> str | None:
        """The full ref name HEAD points to (``refs/heads/x``), or None when detached."""
        value = self.refs.read(HEAD)
        if value is None:
            raise RepositoryError(f"{self.dsdir}/HEAD is missing")
        return value.symbolic

    def head_commit(self) -> ObjectId | None:
        return self.refs.resolve(HEAD)

    def update_head(self, new: ObjectId, old: ObjectId | None, message: str) -> None:
        """Move the current branch (or detached HEAD) from ``old`` to ``new`` by CAS."""
        who = self.reflog_identity()
        branch = self.head_branch()
        if branch is None:
            self.refs.update(HEAD, new, old, who=who, message=message)
            return
        self.refs.update(branch, new, old, who=who, message=message)
        self.refs.log_for_branch_via_head(branch, old, new, who, message)

    # ------------------------------------------------------------ trees

    def lookup_path(self, tree: ObjectId, path: str) -> TreeEntry | None:
        entry: TreeEntry | None = None
        current: ObjectId | None = tree
        for part in path.strip("/").split("/"):
            if current is None:
                return None
            entry = next((e for e in self.store.tree_entries(current) if e.name == part), None)
            if entry is None:
                return None
            current = entry.id if entry.kind == EntryKind.TREE else None
        return entry

    def walk_tree(self, tree: ObjectId, prefix: str = "") -> Iterator[tuple[str, TreeEntry]]:
        """Every non-tree entry below ``tree`` as (path, entry), depth first."""
        stack: list[tuple[str, ObjectId]] = [(prefix, tree)]
        while stack:
            base, tid = stack.pop()
            entries = self.store.tree_entries(tid)
            subtrees = []
            for e in entries:
                path = f"{base}{e.name}"
                if e.kind == EntryKind.TREE:
                    subtrees.append((path + "/", e.id))
                else:
                    yield path, e
            stack.extend(reversed(subtrees))

    def flatten(self, tree: ObjectId | None) -> dict[str, TreeEntry]:
        return {} if tree is None else dict(self.walk_tree(tree))

    def commit_tree(self, commit: ObjectId | None) -> ObjectId | None:
        return None if commit is None else self.store.get_commit(commit).tree

    def parents_of(self, commit_hex: str) -> tuple[str, ...]:
        """Parents of a commit, as hex ids (the form dsrepo.dvcs.graph works in)."""
        return tuple(p.hex() for p in self.store.get_commit(from_hex(commit_hex)).parents)

    # ------------------------------------------------------------ the porcelain API

    @property
    def worktree(self) -> Worktree:
        wt: Worktree | None = self.__dict__.get("_worktree")
        if wt is None:
            from dsrepo.dvcs.worktree import Worktree

            wt = self.__dict__["_worktree"] = Worktree(self)
        return wt

    def add(self, *paths: str, cwd: Path | None = None) -> AddResult:
        """Stage files (directories recursively; ``"."`` for everything)."""
        return self.worktree.add(paths or (".",), cwd or self.root)

    def rm(self, *paths: str, cached: bool = False, force: bool = False) -> list[str]:
        return self.worktree.rm(paths, self.root, cached=cached, force=force)

    def mv(self, src: str, dst: str, force: bool = False) -> list[tuple[str, str]]:
        return self.worktree.mv(src, dst, self.root, force=force)

    def status(self) -> Status:
        return self.worktree.status()

    def commit(
        self,
        message: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        allow_empty: bool = False,
        all: bool = False,
    ) -> CommitInfo:
        from dsrepo.dvcs.commits import commit

        return commit(
            self,
            self.worktree,
            message,
            metadata=metadata,
            allow_empty=allow_empty,
            all_tracked=all,
        )

    def tag(
        self, name: str, rev: str = "HEAD", message: str | None = None, force: bool = False
    ) -> TagInfo:
        from dsrepo.dvcs.commits import create_tag

        return create_tag(self, name, rev, message=message, force=force)

    def tags(self, pattern: str | None = None) -> list[TagInfo]:
        from dsrepo.dvcs.commits import list_tags

        return list_tags(self, pattern)

    def branch(self, name: str, rev: str = "HEAD", force: bool = False) -> BranchInfo:
        from dsrepo.dvcs.commits import create_branch

        return create_branch(self, name, rev, force=force)

    def branches(self) -> list[BranchInfo]:
        from dsrepo.dvcs.commits import list_branches

        return list_branches(self)

    def checkout(
        self,
        rev: str,
        into: str | os.PathLike[str] | None = None,
        only: Sequence[str] | str | None = None,
        force: bool = False,
    ) -> CheckoutResult:
        """Materialize ``rev``: into the working copy (moving HEAD), or into another directory."""
        from dsrepo.dvcs import checkout as co

        only_list = [only] if isinstance(only, str) else list(only) if only else None
        if into is not None:
            return co.materialize_into(self, rev, Path(into), only=only_list, force=force)
        if only_list:
            return co.restore_matching(self, self.worktree, only_list, rev)
        return co.checkout(self, self.worktree, rev, force=force)

    def merge(
        self,
        *revs: str,
        strategy: str | Strategy | None = None,
        message: str | None = None,
        metadata: dict[str, Any] | None = None,
        no_commit: bool = False,
    ) -> MergeOutcome:
        from dsrepo.dvcs import merging
        from dsrepo.dvcs.merge import Strategy

        strat = Strategy(strategy) if isinstance(strategy, str) else strategy
        return merging.merge(
            self,
            self.worktree,
            revs,
            strategy=strat,
            message=message,
            metadata=metadata,
            no_commit=no_commit,
        )

    def log(
        self, rev: str = "HEAD", max_count: int | None = None, paths: Sequence[str] = ()
    ) -> list[LogEntry]:
        from dsrepo.dvcs.history import log

        return log(self, [rev], max_count=max_count, paths=paths)

    def diff(
        self, a: str | None = None, b: str | None = None, paths: Sequence[str] = ()
    ) -> DiffResult:
        from dsrepo.dvcs.history import diff

        return diff(self, self.worktree, a, b, paths)

    def ls(self, rev: str | None = "HEAD", pattern: str | None = None) -> list[FileInfo]:
        from dsrepo.dvcs.history import ls_files

        return ls_files(self, rev, pattern, self.worktree)

    def open_file(self, rev: str, path: str) -> io.BufferedReader:
        """A readable binary file streaming ``path`` as of ``rev`` (no checkout needed)."""
        from dsrepo.dvcs.revisions import resolve
        from dsrepo.dvcs.streams import ChunkStream

        r = resolve(self, f"{rev}:{path}")
        if r.entry is None or r.entry.kind == EntryKind.TREE:
            raise PathError(f"{path!r} is a directory in {rev}, not a file")
        from dsrepo.dvcs.checkout import prefetch

        prefetch(self, [r.entry])
        return io.BufferedReader(
            ChunkStream(self.store.read_chunks(r.entry), r.entry.size), 1 << 20
        )
