"""Reading datasets from training code: :func:`open` (``dsrepo.open``), one handle per location
and process (:func:`shared`), and :class:`FileDataset`, a map-style view over a version's files
that ``torch.utils.data.DataLoader`` can use (torch is never imported here).

Fork safety: a handle holds a SQLite connection and, for S3, a boto3 client; neither may be used
by a process forked after they were opened. :func:`shared` keeps its handles per process (a
child starts with none and opens its own on first use), and :class:`FileDataset` keeps only
names, ids and options, so DataLoader workers (forked or spawned) each open their own.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, overload

from dsrepo import environment
from dsrepo.dvcs.reader import PathInfo, RepoReader, open_location
from dsrepo.dvcs.repository import DSDIR, Repository
from dsrepo.remotes.urls import S3Options

__all__ = ["FileDataset", "open", "shared"]


def index_cache() -> Path:
    """Where remotes' pack indexes are cached: the user cache repository's, which ``get``
    shares (``$DSREPO_CACHE_DIR/.dsrepo/cache/remotes``)."""
    return environment.cache_dir() / DSDIR / "cache" / "remotes"


def open(
    url: str | os.PathLike[str], rev: str | None = None, *, s3: S3Options | None = None
) -> RepoReader:
    """A read-only handle on version ``rev`` of a local repository (its root folder; default
    ``HEAD``) or of a remote — a directory, ``file://`` or ``s3://BUCKET/PREFIX`` URL, with no
    local repository needed (default ``main``). Files are read lazily: a remote's by ranged
    requests to its packs, each chunk verified. Close it (or use ``with``) when done."""
    return open_location(
        os.fspath(url), rev, s3=s3, repository_class=Repository, index_cache=index_cache()
    )


# ---------------------------------------------------------------- one handle per process

_lock = threading.Lock()
_handles: dict[tuple[str, S3Options | None], RepoReader] = {}
_pid = os.getpid()


def _forget_after_fork() -> None:
    """In a forked child: drop (never close, never use) the parent's handles and lock."""
    global _lock, _pid
    _lock = threading.Lock()
    _handles.clear()
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forget_after_fork)


def shared(url: str, s3: S3Options | None = None) -> RepoReader:
    """This process's handle on ``url`` (opened on first use, at the default revision; pass
    revisions to its methods). A forked child never sees its parent's handles."""
    global _pid
    key = (url, s3)
    with _lock:
        if _pid != os.getpid():  # forked without the at-fork hook (not CPython's os.fork)
            _handles.clear()
            _pid = os.getpid()
        handle = _handles.get(key)
    if handle is not None:
        return handle
    fresh = open(url, s3=s3)
    with _lock:
        handle = _handles.setdefault(key, fresh)
    if handle is not fresh:
        fresh.close()
    return handle


def refresh_shared() -> None:
    """Make this process's shared handles resolve revisions afresh (see RepoReader.refresh)."""
    with _lock:
        handles = list(_handles.values())
    for h in handles:
        h.refresh()


def close_shared() -> None:
    """Close this process's shared handles (they reopen on next use)."""
    with _lock:
        handles = list(_handles.values())
        _handles.clear()
    for h in handles:
        h.close()


# Shared handles own store writer threads and SQLite connections: close them before the
# interpreter tears down. (A pyarrow read through fsspec still aborts at exit now and then with
# "terminate called without an active exception": not explained yet, see the issue 8 note.)
atexit.register(close_shared)


# ---------------------------------------------------------------- a map-style dataset


class FileDataset:
    """The files of one version matching ``pattern``, as a map-style dataset: ``len(ds)``, and
    ``ds[i]`` = ``(path, bytes)`` (``as_file=True``: ``(path, seekable binary file)``; with
    ``transform``: ``transform(path, bytes_or_file)``).

    The version is pinned when the dataset is made (``rev`` resolved to a commit id), so every
    worker reads the same files whatever is pushed meanwhile. Nothing is opened until an item
    is read, and then once per process, so ``torch.utils.data.DataLoader`` workers (forked or
    spawned) and threads can share the object. Shard it with :meth:`shard` (by rank); iterating
    yields the share of the current DataLoader worker.
    """

    def __init__(
        self,
        url: str | os.PathLike[str],
        pattern: str | Sequence[str] | None = None,
        *,
        rev: str | None = None,
        s3: S3Options | None = None,
        as_file: bool = False,
        transform: Callable[[str, Any], Any] | None = None,
    ) -> None:
        self.url = os.fspath(url)
        self.s3 = s3
        self.as_file = as_file
        self.transform = transform
        reader = shared(self.url, s3)
        self.commit = reader.resolve(rev).hex()
        self.files: list[PathInfo] = reader.files(pattern, self.commit)

    @classmethod
    def _view(cls, base: FileDataset, files: list[PathInfo]) -> FileDataset:
        view = cls.__new__(cls)
        view.__dict__.update(base.__dict__)
        view.files = files
        return view

    def __len__(self) -> int:
        return len(self.files)

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> FileDataset: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return self._view(self, self.files[index])
        info = self.files[index]
        reader = shared(self.url, self.s3)
        data: bytes | IO[bytes]
        if self.as_file:
            data = reader.open_entry(info)
        else:
            with reader.open_entry(info) as f:
                data = f.read()
        if self.transform is not None:
            return self.transform(info.path, data)
        return info.path, data

    def shard(self, index: int, count: int) -> FileDataset:
        """Every ``count``-th file from the ``index``-th: shard ``index`` of ``count`` (a rank
        of a distributed job: ``ds.shard(rank, world_size)``)."""
        if not 0 <= index < count:
            raise ValueError(f"shard index {index} is not in [0, {count})")
        return self._view(self, self.files[index::count])

    def __iter__(self) -> Iterator[Any]:
        """The items of this DataLoader worker's share (all of them outside a worker)."""
        worker, workers = _worker()
        for i in range(worker, len(self.files), workers):
            yield self[i]

    def __repr__(self) -> str:
        return f"<FileDataset {self.url}@{self.commit[:12]} {len(self.files)} files>"


def _worker() -> tuple[int, int]:
    """(id, count) of the current torch DataLoader worker, (0, 1) outside one; torch is only
    consulted when something else imported it."""
    import sys

    torch_data = sys.modules.get("torch.utils.data")
    info = torch_data.get_worker_info() if torch_data is not None else None
    return (0, 1) if info is None else (int(info.id), int(info.num_workers))
