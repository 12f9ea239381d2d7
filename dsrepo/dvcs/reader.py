"""Reading versions without a checkout.

:class:`RepoReader` is a read-only handle on a repository or a remote at a revision
(``dsrepo.open``): listing, seekable files, history and metadata, over any
:class:`BareRepository` — a local repository, or a remote (a directory or an S3 prefix) with no
local repository at all, whose files are then read by ranged requests straight from its packs.
:func:`open_entry` makes the seekable file of ``Repository.open_file``: each read fetches and
verifies only the chunks it covers (:mod:`dsrepo.objects.filereader`); in a partial clone the
missing ones come from the promisor remote first (:class:`OnDemand`) and are kept.
"""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from dsrepo.dvcs.errors import NotARepository, PathError, RepositoryError, UnknownRevision
from dsrepo.dvcs.history import LogEntry, log
from dsrepo.dvcs.pathmatch import match_only
from dsrepo.dvcs.promisor import promisor_remote
from dsrepo.dvcs.remote import Remote, open_remote
from dsrepo.dvcs.remote_config import normalize_url
from dsrepo.dvcs.revisions import peel, resolve_commit, resolve_tree
from dsrepo.objects.filereader import Ensure, FileReader
from dsrepo.objects.ids import ObjectId, from_hex, looks_like_hex
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import Commit, ObjectType, TreeEntry
from dsrepo.objects.transfer import copy_objects
from dsrepo.remotes.urls import S3Options, parse_url

if TYPE_CHECKING:
    from dsrepo.dvcs.bare import BareRepository
    from dsrepo.dvcs.repository import Repository

BUFFER_SIZE = 64 << 10
"""The buffer of the files returned: about one chunk, so a small read costs about one chunk."""
_DIRS_CACHED = 64


# ---------------------------------------------------------------- seekable files


class OnDemand:
    """Fetches the chunks a read needs and the repository lacks from its promisor remote (a
    partial clone), keeping them; the remote is opened on the first miss and kept open until
    :meth:`close`, so a reader making many small reads lists the remote once."""

    def __init__(self, repo: Repository, remote: str) -> None:
        self.repo = repo
        self.name = remote
        self._remote: Remote | None = None
        self._lock = threading.Lock()

    def __call__(self, ids: Sequence[ObjectId]) -> int:
        missing = self.repo.store.missing(ids)
        if not missing:
            return 0
        with self._lock:
            if self._remote is None:
                self._remote = open_remote(self.repo, self.name)
            remote = self._remote
            stats = copy_objects(remote.store, self.repo.store, missing, where=remote.where)
        return stats.objects

    def close(self) -> None:
        with self._lock:
            if self._remote is not None:
                self._remote.close()
                self._remote = None


class _ClosingReader(FileReader):
    """A FileReader that also closes what it was given (the on-demand fetcher)."""

    on_close: Callable[[], None] | None = None

    def close(self) -> None:
        if not self.closed and self.on_close is not None:
            self.on_close()
        super().close()


def raw_file(
    bare: BareRepository, entry: TreeEntry, *, on_demand: OnDemand | None = None, name: str = ""
) -> FileReader:
    """A seekable raw file over a stored file entry (``on_demand``: the fetcher of a partial
    clone's missing chunks, closed with the file)."""
    if entry.kind == EntryKind.TREE:
        raise PathError(f"{name or entry.name!r} is a directory, not a file")
    ensure: Ensure | None = on_demand
    raw = _ClosingReader(bare.store, entry, ensure=ensure, name=name or entry.name)
    if on_demand is not None:
        raw.on_close = on_demand.close
    return raw


def open_entry(
    bare: BareRepository, entry: TreeEntry, *, on_demand: OnDemand | None = None, name: str = ""
) -> io.BufferedReader:
    """:func:`raw_file`, buffered (about one chunk)."""
    return io.BufferedReader(raw_file(bare, entry, on_demand=on_demand, name=name), BUFFER_SIZE)


def on_demand_for(repo: Repository) -> OnDemand | None:
    """The on-demand fetcher of a partial clone (None for a complete repository)."""
    name = promisor_remote(repo)
    return OnDemand(repo, name) if name else None


def open_file(repo: Repository, rev: str, path: str) -> io.BufferedReader:
    """``Repository.open_file``: ``path`` as of ``rev``, seekable, read chunk by chunk."""
    tree = resolve_tree(repo, rev)
    clean = path.strip("/")
    entry = repo.lookup_path(tree, clean) if clean else None
    if entry is None:
        if not clean:
            raise PathError(f"the root of {rev} is a directory, not a file")
        raise UnknownRevision(f"path {clean!r} does not exist in {rev}")
    if entry.kind == EntryKind.TREE:
        raise PathError(f"{path!r} is a directory in {rev}, not a file")
    return open_entry(repo, entry, on_demand=on_demand_for(repo), name=clean)


# ---------------------------------------------------------------- the read-only handle


@dataclass(frozen=True, slots=True)
class PathInfo:
    """A file or directory of a version: ``id`` is a file's content id (what ``b3sum`` prints)
    or a directory's tree id; a directory's ``size`` is the total size of the files under it."""

    path: str
    kind: EntryKind
    size: int
    id: ObjectId
    manifest: ObjectId | None = None

    @property
    def is_dir(self) -> bool:
        return self.kind == EntryKind.TREE

    @property
    def entry(self) -> TreeEntry:
        return TreeEntry(self.path.rsplit("/", 1)[-1], self.kind, self.size, self.id, self.manifest)

    @classmethod
    def of(cls, path: str, e: TreeEntry) -> PathInfo:
        return cls(path, e.kind, e.size, e.id, e.manifest)


class RepoReader:
    """A read-only handle on a repository or a remote at one revision (``dsrepo.open``).

    ``rev`` is resolved once, when the handle opens: :attr:`commit` is the version read by
    every method given no ``rev``. Methods given another ``rev`` resolve it once per handle
    too, so a handle reads consistent versions while others push. A handle belongs to the
    process that opened it: after ``fork`` open another one (``dsrepo.fs`` and
    ``dsrepo.FileDataset`` do that by themselves).
    """

    def __init__(
        self,
        repo: BareRepository,
        *,
        location: str,
        rev: str,
        on_demand: Callable[[], OnDemand | None] | None = None,
    ) -> None:
        self.repo = repo
        self.location = location
        self.rev = rev
        self._on_demand = on_demand
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._revs: dict[str, tuple[ObjectId, ObjectId]] = {}
        self._dirs: OrderedDict[ObjectId, dict[str, TreeEntry]] = OrderedDict()
        self._head = self._resolve(rev)
        self._revs[rev] = self._head
        self.commit = self._head[0]
        """The commit this handle reads (``rev`` resolved when it opened)."""

    def __repr__(self) -> str:
        return f"<RepoReader {self.location}@{self.rev} {self.commit.hex()[:12]}>"

    # ---- life cycle

    def close(self) -> None:
        if self._pid == os.getpid():
            self.repo.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def is_remote(self) -> bool:
        return isinstance(self.repo, Remote)

    def requests(self) -> Mapping[str, int]:
        """Requests sent to a remote so far, by operation, with ``"bytes_received"`` (empty
        for a local repository)."""
        if not isinstance(self.repo, Remote):
            return {}
        counter = self.repo.counter
        return {**counter.requests, "bytes_received": counter.bytes_received}

    # ---- revisions

    def _check_process(self) -> None:
        if self._pid != os.getpid():
            raise RepositoryError(
                f"this handle on {self.location} was opened in another process; open one in "
                "each process (dsrepo.fs and dsrepo.FileDataset do this by themselves)"
            )

    def _resolve(self, rev: str | None) -> tuple[ObjectId, ObjectId]:
        """(commit, tree) of ``rev`` (None: this handle's commit), resolved once per handle."""
        self._check_process()
        if rev is None:
            return self._head
        with self._lock:
            hit = self._revs.get(rev)
        if hit is None:
            if len(rev) == 64 and looks_like_hex(rev):  # a full id: no ref look-ups
                commit = peel(self.repo, from_hex(rev), ObjectType.COMMIT)
            else:
                commit = resolve_commit(self.repo, rev)
            hit = (commit, self.repo.get_commit(commit).tree)
            with self._lock:
                self._revs[rev] = hit
        return hit

    def refresh(self) -> None:
        """Forget resolved revisions (this handle's :attr:`commit` stays) and, for a remote, list
        its packs again: revisions given to later calls are resolved where refs point now."""
        self._check_process()
        with self._lock:
            self._revs.clear()
        if isinstance(self.repo, Remote):
            self.repo.store.sync_index()

    def resolve(self, rev: str | None = None) -> ObjectId:
        """The commit ``rev`` names (a branch, tag, id or prefix, ``~N``...)."""
        return self._resolve(rev)[0]

    def get_commit(self, rev: str | None = None) -> Commit:
        return self.repo.get_commit(self._resolve(rev)[0])

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata recorded with this handle's commit (``commit --meta``)."""
        return dict(self.get_commit().metadata)

    @property
    def message(self) -> str:
        return self.get_commit().message

    def refs(self) -> dict[str, ObjectId]:
        """Branches and tags (full ref names) and what they point to."""
        self._check_process()
        return self.repo.refs.list("refs/")

    def log(
        self, max_count: int | None = None, rev: str | None = None, paths: Sequence[str] = ()
    ) -> list[LogEntry]:
        """History from ``rev`` (default: this handle's commit), newest first."""
        commit = self._resolve(rev)[0]
        return log(self.repo, [commit.hex()], max_count=max_count, paths=paths)

    # ---- listing

    def _entries(self, tree: ObjectId) -> dict[str, TreeEntry]:
        with self._lock:
            hit = self._dirs.get(tree)
            if hit is not None:
                self._dirs.move_to_end(tree)
                return hit
        entries = {e.name: e for e in self.repo.store.tree_entries(tree)}
        with self._lock:
            self._dirs[tree] = entries
            while len(self._dirs) > _DIRS_CACHED:
                self._dirs.popitem(last=False)
        return entries

    def find(self, path: str, rev: str | None = None) -> PathInfo | None:
        """What ``path`` is in the version (``""``: its root directory), or None."""
        _, tree = self._resolve(rev)
        clean = path.strip("/")
        if not clean:
            size = sum(e.size for e in self._entries(tree).values())
            return PathInfo("", EntryKind.TREE, size, tree)
        entry: TreeEntry | None = None
        current: ObjectId | None = tree
        for part in clean.split("/"):
            if current is None:
                return None
            entry = self._entries(current).get(part)
            if entry is None:
                return None
            current = entry.id if entry.kind == EntryKind.TREE else None
        assert entry is not None
        return PathInfo.of(clean, entry)

    def info(self, path: str, rev: str | None = None) -> PathInfo:
        """Like :meth:`find`, but a missing path raises PathError."""
        found = self.find(path, rev)
        if found is None:
            raise PathError(f"{path!r} does not exist in {rev or self.rev} of {self.location}")
        return found

    def ls(self, path: str = "", rev: str | None = None) -> list[PathInfo]:
        """The entries of directory ``path`` (a file: itself), sorted by name."""
        found = self.info(path, rev)
        if not found.is_dir:
            return [found]
        prefix = f"{found.path}/" if found.path else ""
        return [
            PathInfo.of(prefix + name, e) for name, e in sorted(self._entries(found.id).items())
        ]

    def walk(self, path: str = "", rev: str | None = None) -> Iterator[PathInfo]:
        """Every file (and symlink) under ``path``, depth first, sorted."""
        found = self.info(path, rev)
        if not found.is_dir:
            yield found
            return
        prefix = f"{found.path}/" if found.path else ""
        for p, e in self.repo.walk_tree(found.id, prefix):
            yield PathInfo.of(p, e)

    def files(
        self, pattern: str | Sequence[str] | None = None, rev: str | None = None
    ) -> list[PathInfo]:
        """The files of the version matching ``pattern`` (shell globs on the whole path or
        gitignore-style patterns, as ``--only``; None: every file), sorted by path."""
        patterns = [pattern] if isinstance(pattern, str) else pattern
        want = match_only(list(patterns) if patterns else None)
        return [p for p in self.walk("", rev) if want(p.path)]

    # ---- reading

    def open_entry(self, entry: PathInfo | TreeEntry, name: str = "") -> io.BufferedReader:
        """A seekable binary file over a file listed by this handle."""
        return io.BufferedReader(self.raw_file(entry, name), BUFFER_SIZE)

    def raw_file(self, entry: PathInfo | TreeEntry, name: str = "") -> FileReader:
        """The unbuffered file under :meth:`open_entry`, with ``pread(offset, size)``."""
        self._check_process()
        if isinstance(entry, PathInfo):
            name, entry = name or entry.path, entry.entry
        on_demand = self._on_demand() if self._on_demand is not None else None
        return raw_file(self.repo, entry, on_demand=on_demand, name=name)

    def open_file(self, path: str, rev: str | None = None) -> io.BufferedReader:
        """``path`` as a seekable binary file: each read fetches (from a remote: by range) and
        verifies only the chunks it covers."""
        found = self.info(path, rev)
        if found.is_dir:
            raise PathError(f"{path!r} is a directory in {rev or self.rev}, not a file")
        return self.open_entry(found)

    def read_bytes(self, path: str, rev: str | None = None) -> bytes:
        with self.open_file(path, rev) as f:
            return f.read()


def open_location(
    url: str,
    rev: str | None,
    *,
    s3: S3Options | None,
    repository_class: type[Repository],
    index_cache: Path,
) -> RepoReader:
    """A :class:`RepoReader` on ``url``: the root of a local repository (default revision
    ``HEAD``), or a remote — a directory, ``file://`` or ``s3://`` URL — whose pack indexes are
    cached in ``index_cache`` (default revision ``main``)."""
    scheme, location, _ = parse_url(url)
    if scheme == "file":
        root = Path(location)
        if (root / ".dsrepo" / "format").is_file():
            repo = repository_class.open(root, search_parents=False)
            try:
                promisor = promisor_remote(repo)
                return RepoReader(
                    repo,
                    location=str(root),
                    rev=rev or "HEAD",
                    on_demand=(lambda: OnDemand(repo, promisor)) if promisor else None,
                )
            except BaseException:
                repo.close()
                raise
        if not (root / "format").is_file():
            raise NotARepository(f"{root} is neither a dsrepo repository nor a dsrepo remote")
    url = normalize_url(url)
    remote = Remote.open(url, url, s3, cache=index_cache)
    try:
        remote.store.sync_index()
        return RepoReader(remote, location=url, rev=rev or "main")
    except BaseException:
        remote.close()
        raise
