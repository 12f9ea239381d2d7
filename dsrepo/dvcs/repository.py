"""The Python API: :class:`Repository`, a bare repository (objects and refs) with a working copy
and configuration in a ``.dsrepo`` folder beside it.

Every CLI verb is a method here, with typed results; the logic of each lives in a module named
after it (``worktree``, ``commits``, ``checkout``, ``history``, ``merging``, ``push``, ``fetch``,
``pull``, ``clone``, ``getcache``, ``fsck``...), so ``from dsrepo import Repository`` is the
whole API. Long operations take ``progress``, a callable given (done, total) bytes.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsrepo.dvcs import identity
from dsrepo.dvcs.bare import BareRepository
from dsrepo.dvcs.config import Config
from dsrepo.dvcs.errors import AlreadyARepository, NotARepository, RepositoryError, path_errors
from dsrepo.dvcs.history_verbs import HistoryVerbs
from dsrepo.dvcs.lock import DEFAULT_TIMEOUT, gc_lock, holds_gc_lock, holds_index_lock, index_lock
from dsrepo.dvcs.refs import HEAD, RefStore
from dsrepo.dvcs.remote_verbs import RemoteVerbs
from dsrepo.dvcs.workflow_verbs import WorkflowVerbs
from dsrepo.gcpause import pausing
from dsrepo.objects.chunking import ChunkerParams, RepoFormat
from dsrepo.objects.errors import FormatError
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.locindex import LocationIndex
from dsrepo.objects.model import Signature, TreeEntry
from dsrepo.objects.store import ObjectStore
from dsrepo.remotes.directory import DirectoryBackend

if TYPE_CHECKING:
    from dsrepo.dvcs.checkout import CheckoutResult
    from dsrepo.dvcs.commits import BranchInfo, CommitInfo, TagInfo
    from dsrepo.dvcs.fsck import FsckReport
    from dsrepo.dvcs.gc import GcReport
    from dsrepo.dvcs.getcache import GetResult
    from dsrepo.dvcs.merge import Strategy
    from dsrepo.dvcs.merging import MergeOutcome
    from dsrepo.dvcs.reflog import ExpireResult
    from dsrepo.dvcs.refs import ReflogEntry
    from dsrepo.dvcs.usercache import PruneReport
    from dsrepo.dvcs.worktree import AddResult, Status, Worktree
    from dsrepo.objects.packcheck import ObjectCounts
    from dsrepo.objects.store import FileRef
    from dsrepo.remotes.urls import S3Options

DSDIR = ".dsrepo"
DEFAULT_BRANCH = "main"
Progress = Callable[[int, int], None]


def _patterns(only: Sequence[str] | str | None) -> list[str] | None:
    return [only] if isinstance(only, str) else list(only) if only else None


class Repository(BareRepository, HistoryVerbs, RemoteVerbs, WorkflowVerbs):
    """A dataset repository. Create with :meth:`init` or :meth:`clone`, open with :meth:`open`."""

    lock_timeout = DEFAULT_TIMEOUT
    """Seconds a verb waits for another process's index lock before failing with ``Locked``."""
    gc_lock_timeout: float | None = None
    """Seconds a writer waits for a running gc (and gc for running writers); None: no limit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dsdir = root / DSDIR
        backend = DirectoryBackend(self.dsdir)
        try:
            fmt = ObjectStore.read_format(backend)
        except FormatError as exc:
            raise NotARepository(f"{self.dsdir} is not a usable repository: {exc}") from None
        store = ObjectStore(backend, LocationIndex(self.dsdir / "cache" / "objects.sqlite"), fmt)
        store.sync_index()
        super().__init__(backend, store, RefStore(backend, self.dsdir / "logs"))
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
        ref = branch_ref(branch)
        with path_errors(root, "directory"):
            if (dsdir / "format").exists():
                raise AlreadyARepository(f"{dsdir} already exists")
            root.mkdir(parents=True, exist_ok=True)
            backend = DirectoryBackend(dsdir, create=True)
            for sub in ("packs", "refs/heads", "refs/tags", "logs", "cache"):
                (dsdir / sub).mkdir(parents=True, exist_ok=True)
        fmt = RepoFormat(chunker=(chunker or ChunkerParams()).validate())
        backend.put_if_absent("HEAD", f"ref: {ref}\n".encode())
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

    @classmethod
    @pausing
    def clone(
        cls,
        url: str,
        directory: str | os.PathLike[str] | None = None,
        *,
        branch: str | None = None,
        only: Sequence[str] | str | None = None,
        s3: S3Options | None = None,
        jobs: int = 8,
        progress: Progress | None = None,
    ) -> Repository:
        """Copy the remote at ``url`` into a new repository (default folder: the URL's last
        component). ``only``: a partial clone, other files' data fetched on demand."""
        from dsrepo.dvcs.clone import clone

        return clone(
            cls,
            url,
            None if directory is None else Path(directory),
            branch=branch,
            only=_patterns(only),
            s3=s3,
            jobs=jobs,
            progress=progress,
        )

    @classmethod
    @pausing
    def get(
        cls,
        url: str,
        into: str | os.PathLike[str] | None,
        *,
        rev: str | None = None,
        only: Sequence[str] | str | None = None,
        s3: S3Options | None = None,
        force: bool = False,
        link: str = "auto",
        copy: bool = False,
        progress: Progress | None = None,
    ) -> GetResult:
        """Make ``into`` exactly version ``rev`` (any revision form: ``main~1``, a short id, a
        tag; default ``latest``, the remote's default branch) of the remote at ``url``: read-only
        files linked from the user-level cache (``link``: auto, reflink, hardlink or copy;
        ``copy``: writable files of their own). ``into`` None: a copy inside the cache."""
        from dsrepo.dvcs.getcache import get

        return get(
            cls._open_cache,
            url,
            None if into is None else Path(into),
            rev=rev,
            only=_patterns(only),
            s3=s3,
            force=force,
            link=link,
            mutable=copy,
            progress=progress,
        )

    @classmethod
    def _open_cache(cls, root: Path) -> Repository:
        try:
            return cls.open(root, search_parents=False)
        except NotARepository:
            try:
                return cls.init(root)
            except AlreadyARepository:  # another get or prune made it meanwhile
                return cls.open(root, search_parents=False)

    @classmethod
    def cache_prune(
        cls,
        *,
        max_size: int | str | None = None,
        older_than: str | float | None = None,
        dry_run: bool = False,
    ) -> PruneReport:
        """Evict the least recently used versions of the user-level get cache: those unused for
        ``older_than`` (an age: ``30d``), then until the rest's data fits ``max_size`` (``10G``);
        safe while gets run (they hold its gc lock shared; this waits for them)."""
        from dsrepo.dvcs.usercache import prune

        return prune(cls._open_cache, max_size=max_size, older_than=older_than, dry_run=dry_run)

    # ------------------------------------------------------------ identity and HEAD

    def identity(self) -> Signature:
        """The author for new commits: $DSREPO_AUTHOR_NAME/_EMAIL, else user.name/user.email."""
        return identity.author(self.config)

    def reflog_identity(self) -> Signature:
        return identity.reflog_signature(self.config)

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

    # ------------------------------------------------------------ the working copy

    @property
    def worktree(self) -> Worktree:
        """The working copy; read again when a verb takes the index lock (``stale``)."""
        wt: Worktree | None = self.__dict__.get("_worktree")
        if wt is None or wt.stale():
            from dsrepo.dvcs.worktree import Worktree

            wt = self.__dict__["_worktree"] = Worktree(self)
        return wt

    @holds_index_lock
    @pausing
    def add(
        self,
        *paths: str,
        cwd: Path | None = None,
        force: bool = False,
        progress: Progress | None = None,
    ) -> AddResult:
        """Stage files (directories recursively; ``"."`` for everything; globs such as
        ``"*.csv"`` like git's pathspecs). Paths are relative to ``cwd`` (default: the
        repository root). Naming an ignored path refuses unless ``force``."""
        return self.worktree.add(paths or (".",), cwd or self.root, force=force, progress=progress)

    @holds_index_lock
    @pausing
    def rm(
        self, *paths: str, cached: bool = False, force: bool = False, cwd: Path | None = None
    ) -> list[str]:
        """Unstage paths and (unless ``cached``) delete them; returns the paths removed."""
        return self.worktree.rm(paths, cwd or self.root, cached=cached, force=force)

    @holds_index_lock
    def mv(
        self, src: str, dst: str, force: bool = False, cwd: Path | None = None
    ) -> list[tuple[str, str]]:
        return self.worktree.mv(src, dst, cwd or self.root, force=force)

    @pausing
    def status(self, *, untracked: str = "normal") -> Status:
        """Staged, unstaged and untracked changes; ``untracked``: "normal" (an untracked
        folder is one ``dir/`` entry), "all" (every file) or "no" (none), as git's ``-u``."""
        from dsrepo.dvcs.statuswalk import Untracked

        try:
            mode = Untracked(untracked)
        except ValueError:
            raise RepositoryError(
                f"untracked must be no, normal or all, not {untracked!r}"
            ) from None
        return self.worktree.status(mode)

    @holds_index_lock
    @pausing
    def restore(
        self,
        *paths: str,
        source: str | None = None,
        staged: bool = False,
        cwd: Path | None = None,
    ) -> list[str]:
        """Bring paths back from ``source`` (default: the staging area; with ``staged``: HEAD
        into the staging area). Returns the paths restored."""
        from dsrepo.dvcs.checkout import restore

        return restore(self, self.worktree, paths, source=source, staged=staged, cwd=cwd)

    # ------------------------------------------------------------ versions, tags, branches

    @holds_index_lock
    @pausing
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

    @holds_gc_lock
    def tag(
        self, name: str, rev: str = "HEAD", message: str | None = None, force: bool = False
    ) -> TagInfo:
        """A tag (annotated when ``message`` is given); ``force`` moves an existing one."""
        from dsrepo.dvcs.commits import create_tag

        return create_tag(self, name, rev, message=message, force=force)

    def tags(self, pattern: str | None = None) -> list[TagInfo]:
        from dsrepo.dvcs.commits import list_tags

        return list_tags(self, pattern)

    def delete_tag(self, name: str, force: bool = False) -> ObjectId:
        """Delete a tag (one ``tag.immutable`` protects only with ``force``); returns its id."""
        from dsrepo.dvcs.commits import delete_tag

        return delete_tag(self, name, force=force)

    def branch(self, name: str, rev: str = "HEAD", force: bool = False) -> BranchInfo:
        from dsrepo.dvcs.commits import create_branch

        return create_branch(self, name, rev, force=force)

    def branches(self, remotes: bool = False) -> list[BranchInfo]:
        """Local branches, or with ``remotes`` the remote-tracking ones."""
        from dsrepo.dvcs.commits import list_branches

        return list_branches(self, remotes=remotes)

    def delete_branch(self, name: str, force: bool = False) -> ObjectId:
        """Delete a branch merged into HEAD (any branch with ``force``); returns its commit."""
        from dsrepo.dvcs.commits import delete_branch

        return delete_branch(self, name, force=force)

    # ------------------------------------------------------------ materializing versions

    @holds_index_lock
    @pausing
    def switch(
        self,
        branch: str,
        *,
        create: bool = False,
        start: str = "HEAD",
        force: bool = False,
    ) -> CheckoutResult:
        from dsrepo.dvcs.checkout import switch

        return switch(self, self.worktree, branch, create=create, start=start, force=force)

    @pausing
    def checkout(
        self,
        rev: str,
        into: str | os.PathLike[str] | None = None,
        only: Sequence[str] | str | None = None,
        force: bool = False,
        *,
        detach: bool = False,
        progress: Progress | None = None,
    ) -> CheckoutResult:
        """Materialize ``rev``: into the working copy (moving HEAD), or into another directory
        (``into``; the working copy is untouched). With ``only`` and no ``into``, the matching
        files are restored from ``rev`` and HEAD does not move."""
        from dsrepo.dvcs import checkout as co
        from dsrepo.dvcs import materialize as mat

        pats = _patterns(only)
        if into is not None:
            return mat.into_folder(self, rev, Path(into), only=pats, force=force, progress=progress)
        with (
            gc_lock(self.dsdir).shared(self.gc_lock_timeout),  # data may be fetched on demand
            index_lock(self.dsdir).held(self.lock_timeout),
        ):
            if pats:
                return co.restore_matching(self, self.worktree, pats, rev)
            return co.checkout(
                self, self.worktree, rev, force=force, detach=detach, progress=progress
            )

    def open_file(self, rev: str, path: str) -> io.BufferedReader:
        """``path`` as of ``rev``, seekable: a read fetches and verifies only what it covers."""
        from dsrepo.dvcs.reader import open_file

        return open_file(self, rev, path)

    def read_file(self, entry: TreeEntry) -> Iterator[bytes]:
        """A file entry's verified content, chunk by chunk (fetched first in a partial clone)."""
        from dsrepo.dvcs.checkout import prefetch

        prefetch(self, [entry])
        return self.store.read_chunks(entry)

    # ------------------------------------------------------------ merging

    @holds_index_lock
    @pausing
    def merge(
        self,
        *revs: str,
        strategy: str | Strategy | None = None,
        message: str | None = None,
        metadata: dict[str, Any] | None = None,
        no_commit: bool = False,
        no_ff: bool = False,
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
            no_ff=no_ff,
        )

    @holds_index_lock
    def merge_abort(self) -> None:
        """Abandon a merge in progress (``merge --no-commit``): back to HEAD."""
        from dsrepo.dvcs import merging

        merging.abort(self, self.worktree)

    # ------------------------------------------------------------ plumbing

    def hash_object(self, source: str | bytes, write: bool = False) -> FileRef:
        """The content id of a file (a path) or of bytes; with ``write``, also store it."""
        (ref,) = self.hash_objects([source], write)  # runs the generator to its end (flush)
        return ref

    def hash_objects(
        self, sources: Iterable[str | bytes], write: bool = False
    ) -> Iterator[FileRef]:
        """:meth:`hash_object` of each source, yielded as soon as known; with ``write``, what
        was stored is flushed once, after the last one (one pack, not one per source)."""
        from dsrepo.dvcs.plumbing import hash_objects

        yield from hash_objects(self.store, sources, write)

    def update_ref(
        self,
        name: str,
        new: str | None,
        old: str | None = None,
        *,
        check_old: bool = True,
        message: str = "update-ref",
    ) -> None:
        """Set ref ``name`` to revision ``new`` (None: delete it) only if it holds ``old`` (``""``
        or 64 zeros: only if it does not exist; ``check_old=False``: whatever it holds, atomically)."""
        from dsrepo.dvcs.refedit import update_ref

        update_ref(self, name, new, old, check_old=check_old, message=message)

    def count_objects(self) -> ObjectCounts:
        from dsrepo.dvcs.fsck import count_objects

        return count_objects(self)

    @pausing
    def fsck(self, progress: Progress | None = None) -> FsckReport:
        """Re-hash every object and check that everything referenced exists."""
        from dsrepo.dvcs.fsck import fsck

        return fsck(self, progress)

    # ------------------------------------------------------------ maintenance

    @pausing
    def gc(
        self,
        *,
        prune: str | float = "2.weeks",
        dry_run: bool = False,
        aggressive: bool = False,
        progress: Progress | None = None,
    ) -> GcReport:
        """Remove unreachable objects in packs older than ``prune`` (an age: ``"now"``,
        ``"1h"``, ``"14d"``...; by the storage's clock) and merge small packs (``aggressive``:
        repack everything). Writers wait for it (docs/gc.md)."""
        from dsrepo.dvcs.gc import gc

        return gc(self, prune=prune, dry_run=dry_run, aggressive=aggressive, progress=progress)

    def reflog(self, ref: str = "HEAD") -> list[ReflogEntry]:
        """``ref``'s reflog, newest first (entry ``n`` is ``ref@{n}``)."""
        from dsrepo.dvcs.reflog import entries

        return entries(self.refs, ref)

    def reflog_expire(
        self,
        refs: Sequence[str] | None = None,
        *,
        expire: str | float = "90.days",
        dry_run: bool = False,
    ) -> ExpireResult:
        """Drop reflog entries older than ``expire`` from ``refs``' reflogs (None: all), so
        that what only they named becomes garbage for :meth:`gc`."""
        from dsrepo.dvcs.reflog import expire as expire_logs

        return expire_logs(self.refs, refs, expire, dry_run=dry_run)
