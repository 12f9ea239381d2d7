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
from dsrepo.dvcs.errors import (
    AlreadyARepository,
    NotARepository,
    PathError,
    RepositoryError,
)
from dsrepo.dvcs.refs import HEAD, RefStore
from dsrepo.objects.chunking import ChunkerParams, RepoFormat
from dsrepo.objects.errors import FormatError
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.locindex import LocationIndex
from dsrepo.objects.model import Signature, TreeEntry
from dsrepo.objects.store import ObjectStore
from dsrepo.remotes.directory import DirectoryBackend

if TYPE_CHECKING:
    from dsrepo.dvcs.checkout import CheckoutResult
    from dsrepo.dvcs.commits import BranchInfo, CommitInfo, TagInfo
    from dsrepo.dvcs.fetch import FetchResult
    from dsrepo.dvcs.fsck import FsckReport
    from dsrepo.dvcs.history import DiffResult, FileInfo, LogEntry
    from dsrepo.dvcs.merge import Strategy
    from dsrepo.dvcs.merging import MergeOutcome
    from dsrepo.dvcs.push import PushResult
    from dsrepo.dvcs.remote_config import RemoteSpec
    from dsrepo.dvcs.revisions import Resolved
    from dsrepo.dvcs.worktree import AddResult, Status, Worktree
    from dsrepo.objects.packcheck import ObjectCounts
    from dsrepo.objects.store import FileRef
    from dsrepo.remotes.urls import S3Options

DSDIR = ".dsrepo"
DEFAULT_BRANCH = "main"
Progress = Callable[[int, int], None]


def _patterns(only: Sequence[str] | str | None) -> list[str] | None:
    return [only] if isinstance(only, str) else list(only) if only else None


class Repository(BareRepository):
    """A dataset repository. Create with :meth:`init` or :meth:`clone`, open with :meth:`open`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dsdir = root / DSDIR
        backend = DirectoryBackend(self.dsdir)
        try:
            fmt = ObjectStore.read_format(backend)
        except FormatError as exc:
            raise NotARepository(f"{self.dsdir} is not a usable repository: {exc}") from None
        (self.dsdir / "cache").mkdir(exist_ok=True)
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
        if (dsdir / "format").exists():
            raise AlreadyARepository(f"{dsdir} already exists")
        ref = branch_ref(branch)
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
    def get(
        cls,
        url: str,
        into: str | os.PathLike[str],
        *,
        rev: str | None = None,
        only: Sequence[str] | str | None = None,
        s3: S3Options | None = None,
        force: bool = False,
        progress: Progress | None = None,
    ) -> CheckoutResult:
        """Materialize version ``rev`` (a branch, tag or full id; default ``main``) of the remote
        at ``url`` into ``into``, through the user-level cache (nothing downloaded twice)."""
        from dsrepo.dvcs.getcache import get

        def open_cache(root: Path) -> Repository:
            try:
                return cls.open(root, search_parents=False)
            except NotARepository:
                return cls.init(root)

        return get(
            open_cache,
            url,
            Path(into),
            rev=rev,
            only=_patterns(only),
            s3=s3,
            force=force,
            progress=progress,
        )

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
        wt: Worktree | None = self.__dict__.get("_worktree")
        if wt is None:
            from dsrepo.dvcs.worktree import Worktree

            wt = self.__dict__["_worktree"] = Worktree(self)
        return wt

    def add(
        self, *paths: str, cwd: Path | None = None, progress: Progress | None = None
    ) -> AddResult:
        """Stage files (directories recursively; ``"."`` for everything). Paths are relative to
        ``cwd`` (default: the repository root)."""
        return self.worktree.add(paths or (".",), cwd or self.root, progress=progress)

    def rm(
        self, *paths: str, cached: bool = False, force: bool = False, cwd: Path | None = None
    ) -> list[str]:
        """Unstage paths and (unless ``cached``) delete them; returns the paths removed."""
        return self.worktree.rm(paths, cwd or self.root, cached=cached, force=force)

    def mv(
        self, src: str, dst: str, force: bool = False, cwd: Path | None = None
    ) -> list[tuple[str, str]]:
        return self.worktree.mv(src, dst, cwd or self.root, force=force)

    def status(self) -> Status:
        return self.worktree.status()

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
        """A tag (annotated when ``message`` is given); ``force`` moves an existing one."""
        from dsrepo.dvcs.commits import create_tag

        return create_tag(self, name, rev, message=message, force=force)

    def tags(self, pattern: str | None = None) -> list[TagInfo]:
        from dsrepo.dvcs.commits import list_tags

        return list_tags(self, pattern)

    def delete_tag(self, name: str) -> ObjectId:
        """Delete a tag; returns what it named."""
        from dsrepo.dvcs.commits import delete_tag

        return delete_tag(self, name)

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

        patterns = _patterns(only)
        if into is not None:
            return co.materialize_into(
                self, rev, Path(into), only=patterns, force=force, progress=progress
            )
        if patterns:
            return co.restore_matching(self, self.worktree, patterns, rev)
        return co.checkout(self, self.worktree, rev, force=force, detach=detach, progress=progress)

    def open_file(self, rev: str, path: str) -> io.BufferedReader:
        """A readable binary file streaming ``path`` as of ``rev`` (no checkout needed)."""
        r = self.resolve(f"{rev}:{path}")
        if r.entry is None or r.entry.kind == EntryKind.TREE:
            raise PathError(f"{path!r} is a directory in {rev}, not a file")
        from dsrepo.dvcs.streams import ChunkStream

        return io.BufferedReader(ChunkStream(self.read_file(r.entry), r.entry.size), 1 << 20)

    def read_file(self, entry: TreeEntry) -> Iterator[bytes]:
        """A file entry's verified content, chunk by chunk (fetched first in a partial clone)."""
        from dsrepo.dvcs.checkout import prefetch

        prefetch(self, [entry])
        return self.store.read_chunks(entry)

    # ------------------------------------------------------------ merging

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

    def merge_abort(self) -> None:
        """Abandon a merge in progress (``merge --no-commit``): back to HEAD."""
        from dsrepo.dvcs import merging

        merging.abort(self, self.worktree)

    # ------------------------------------------------------------ reading history

    def resolve(self, rev: str) -> Resolved:
        """What a revision names (``HEAD~2``, ``v1:images/a.png``, an id prefix...)."""
        from dsrepo.dvcs.revisions import resolve

        return resolve(self, rev)

    def log(
        self,
        rev: str | Sequence[str] = "HEAD",
        max_count: int | None = None,
        paths: Sequence[str] = (),
    ) -> list[LogEntry]:
        from dsrepo.dvcs.history import log

        return log(
            self, [rev] if isinstance(rev, str) else list(rev), max_count=max_count, paths=paths
        )

    def diff(
        self,
        a: str | None = None,
        b: str | None = None,
        paths: Sequence[str] = (),
        *,
        cached: bool = False,
    ) -> DiffResult:
        """Compare two versions; with one, it against the working copy (``cached``: against
        the staging area); with none, the staging area against the working copy."""
        from dsrepo.dvcs.history import diff

        return diff(self, self.worktree, a, b, paths, cached=cached)

    def changes(self, commit: ObjectId) -> DiffResult:
        """What ``commit`` changed against its first parent."""
        from dsrepo.dvcs.history import classify, diff_trees

        c = self.store.get_commit(commit)
        parent_tree = self.store.get_commit(c.parents[0]).tree if c.parents else None
        return classify(diff_trees(self, parent_tree, c.tree))

    def decorations(self) -> dict[ObjectId, list[str]]:
        """Ref names by the commit they point to, as ``log`` shows them."""
        from dsrepo.dvcs.history import decorations

        return decorations(self)

    def ls(self, rev: str | None = "HEAD", pattern: str | None = None) -> list[FileInfo]:
        """Files of ``rev`` (None: the staging area), optionally matching a glob."""
        from dsrepo.dvcs.history import ls_files

        return ls_files(self, rev, pattern, self.worktree)

    def ls_tree(
        self, rev: str, path: str | None = None, recursive: bool = False
    ) -> list[tuple[str, TreeEntry]]:
        """Entries of the tree of ``rev`` (under ``path``) as (path, entry)."""
        from dsrepo.dvcs.revisions import resolve_tree

        tree = resolve_tree(self, f"{rev}:{path}" if path else rev)
        prefix = f"{path.strip('/')}/" if path and path.strip("/") else ""
        if recursive:
            return sorted(self.walk_tree(tree, prefix))
        return [(prefix + e.name, e) for e in self.store.tree_entries(tree)]

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
        from dsrepo.dvcs.worktree import hash_bytes, hash_path

        store = self.store
        for src in sources:
            if write:
                yield store.write_bytes(src) if isinstance(src, bytes) else store.write_file(src)
            else:
                yield hash_bytes(src) if isinstance(src, bytes) else hash_path(src)
        if write:
            store.flush()

    def update_ref(
        self,
        name: str,
        new: str | None,
        old: str | None = None,
        *,
        check_old: bool = True,
        message: str = "update-ref",
    ) -> None:
        """Set ref ``name`` to revision ``new`` (None: delete it) only if it holds ``old``
        (``""`` or 64 zeros: only if it does not exist; ``check_old=False``: whatever it holds,
        still atomically)."""
        from dsrepo.dvcs.refedit import update_ref

        update_ref(self, name, new, old, check_old=check_old, message=message)

    def count_objects(self) -> ObjectCounts:
        from dsrepo.dvcs.fsck import count_objects

        return count_objects(self)

    def fsck(self, progress: Progress | None = None) -> FsckReport:
        """Re-hash every object and check that everything referenced exists."""
        from dsrepo.dvcs.fsck import fsck

        return fsck(self, progress)

    # ------------------------------------------------------------ remotes

    def remotes(self) -> list[RemoteSpec]:
        from dsrepo.dvcs.remote_config import list_remotes

        return list_remotes(self)

    def remote_add(
        self,
        name: str,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
    ) -> RemoteSpec:
        """Add a remote: a directory path, ``file://`` URL or ``s3://BUCKET/PREFIX``."""
        from dsrepo.dvcs.remote_config import add_remote

        return add_remote(
            self, name, url, endpoint_url=endpoint_url, region=region, profile=profile
        )

    def remote_remove(self, name: str) -> None:
        """Remove a remote, its remote-tracking refs and the upstreams naming it."""
        from dsrepo.dvcs.remote_config import remove_remote

        remove_remote(self, name)

    def remote_rename(self, old: str, new: str) -> None:
        from dsrepo.dvcs.remote_config import rename_remote

        rename_remote(self, old, new)

    def remote_set_url(self, name: str, url: str) -> None:
        from dsrepo.dvcs.remote_config import set_url

        set_url(self, name, url)

    def push(
        self,
        remote: str | None = None,
        refs: Sequence[str] = (),
        *,
        tags: bool = False,
        force: bool = False,
        dry_run: bool = False,
        jobs: int = 8,
        progress: Progress | None = None,
    ) -> PushResult:
        """Send ``refs`` (default: the current branch) and the objects ``remote`` lacks; refs
        move last, by compare-and-swap. Rejected refs are in the result
        (``result.error()`` is the exception to raise for them)."""
        from dsrepo.dvcs.push import push

        return push(
            self,
            remote,
            refs,
            tags=tags,
            force=force,
            dry_run=dry_run,
            jobs=jobs,
            progress=progress,
        )

    def fetch(
        self,
        remote: str | None = None,
        *,
        prune: bool = False,
        jobs: int = 8,
        progress: Progress | None = None,
    ) -> FetchResult:
        from dsrepo.dvcs.fetch import fetch

        return fetch(self, remote, prune=prune, jobs=jobs, progress=progress)

    def pull(
        self,
        remote: str | None = None,
        branch: str | None = None,
        *,
        strategy: str | Strategy | None = None,
        progress: Progress | None = None,
    ) -> MergeOutcome:
        """Fetch, then fast-forward or merge (with merge's rules)."""
        from dsrepo.dvcs.merge import Strategy
        from dsrepo.dvcs.pull import pull

        strat = Strategy(strategy) if isinstance(strategy, str) else strategy
        return pull(self, remote, branch, strategy=strat, progress=progress)
