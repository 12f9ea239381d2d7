"""A backend on a local directory: one file per key, written atomically and durably.

Layout: key ``a/b/c`` is the file ``<root>/a/b/c``. Writers create ``.tmp-*`` files next to their
target and compare-and-swap takes ``<key>.lock``; listings hide both, and keys whose components
look like either are refused.

Atomicity: ``put`` is write-temp + fsync + rename; ``put_if_absent`` and the create case of
``compare_and_swap`` use ``link(2)``, which fails if the target exists. Updates through
``compare_and_swap`` are serialized by the lock file, like git's ``index.lock``; a plain ``put``
does not take the lock, so do not mix ``put`` and ``compare_and_swap`` on one key.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat as stat_mod
from collections.abc import Iterator, Sequence
from pathlib import Path

from dsrepo.remotes.base import Backend, Capabilities, KeyInfo
from dsrepo.remotes.errors import (
    BackendError,
    InvalidKey,
    KeyConflict,
    KeyNotFound,
    PermanentBackendError,
)
from dsrepo.remotes.keys import validate_key, validate_prefix
from dsrepo.remotes.mapped import MappedFile, copy_mapped, map_file
from dsrepo.remotes.memory import check_range

TMP_PREFIX = ".tmp-"
LOCK_SUFFIX = ".lock"

_PERMANENT = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}
_NOT_FOUND = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR}


class DirectoryBackend(Backend):
    """Keys stored as files under ``root``."""

    capabilities = Capabilities(conditional_writes=True, range_reads=True, local=True)

    def __init__(self, root: str | os.PathLike[str], create: bool = False) -> None:
        path = Path(root)
        try:
            if not path.is_dir():
                if path.exists():
                    raise PermanentBackendError(f"backend root {str(path)!r} is not a directory")
                if not create:
                    raise PermanentBackendError(f"backend root {str(path)!r} does not exist")
                path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a name too long, a file in the way, no permission...
            raise PermanentBackendError(
                f"cannot use backend root {str(path)!r}: {exc.strerror or exc}"
            ) from None
        self.root = path
        self._inside = os.path.realpath(path).rstrip(os.sep) + os.sep
        self._checked_dirs: set[str] = set()
        """Directories already resolved inside the root (a directory's path does not change)."""

    # -- reads ------------------------------------------------------------------------------

    def stat(self, key: str) -> KeyInfo:
        path = self._path(key)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise self._error(exc, "stat", key) from None
        if not stat_mod.S_ISREG(st.st_mode):
            raise KeyNotFound(f"key {key!r} not found in {self.describe()}")
        return KeyInfo(key, st.st_size, st.st_mtime)

    def get(self, key: str, offset: int = 0, length: int | None = None) -> bytes:
        path = self._path(key)
        check_range(offset, length)
        try:
            with open(path, "rb", buffering=0) as f:
                if offset:
                    f.seek(offset)
                if length is None:
                    return f.readall()
                chunks: list[bytes] = []
                remaining = length
                while remaining > 0:
                    chunk = f.read(remaining)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    remaining -= len(chunk)
                return b"".join(chunks)
        except OSError as exc:
            raise self._error(exc, "get", key) from None

    def get_mapped(self, key: str) -> bytes | MappedFile:
        try:
            return map_file(self._path(key))
        except OSError as exc:
            raise self._error(exc, "get", key) from None

    def list(
        self, prefix: str = "", start_after: str | None = None, limit: int = 1000
    ) -> list[KeyInfo]:
        validate_prefix(prefix)
        if limit <= 0:
            return []
        head, _, tail = prefix.rpartition("/")
        start_dir = os.path.join(self.root, *head.split("/")) if head else str(self.root)
        if head and not os.path.realpath(start_dir).startswith(self._inside):
            raise InvalidKey(f"invalid prefix {prefix!r}: resolves outside {str(self.root)!r}")
        key_base = head + "/" if head else ""
        out: list[KeyInfo] = []
        try:
            for info in self._walk(start_dir, key_base, tail, start_after):
                out.append(info)
                if len(out) >= limit:
                    break
        except OSError as exc:
            raise self._error(exc, "list", prefix or "/") from None
        return out

    def _walk(
        self, dir_path: str, key_base: str, name_prefix: str, start_after: str | None
    ) -> Iterator[KeyInfo]:
        """Keys under ``dir_path`` in ascending order, pruning subtrees before ``start_after``."""
        try:
            with os.scandir(dir_path) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return
        items: list[tuple[str, os.DirEntry[str], bool]] = []
        for entry in entries:
            name = entry.name
            if not name.startswith(name_prefix) or name.startswith(TMP_PREFIX):
                continue
            if entry.is_symlink():
                continue  # never created by this backend; get() refuses links leaving the root
            if entry.is_dir(follow_symlinks=False):
                # Every key below sorts as "name/..."; sort the directory accordingly.
                items.append((key_base + name + "/", entry, True))
            elif not name.endswith(LOCK_SUFFIX):
                items.append((key_base + name, entry, False))
        items.sort(key=lambda item: item[0])
        for sort_key, entry, is_dir in items:
            if is_dir:
                if (
                    start_after is not None
                    and sort_key <= start_after
                    and not start_after.startswith(sort_key)
                ):
                    continue  # the whole subtree sorts before start_after
                yield from self._walk(entry.path, sort_key, "", start_after)
                continue
            if start_after is not None and sort_key <= start_after:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted while listing
            if stat_mod.S_ISREG(st.st_mode):
                yield KeyInfo(sort_key, st.st_size, st.st_mtime)

    # -- writes -----------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            self._ensure_parent(path)
            self._replace(path, data)
        except OSError as exc:
            raise self._error(exc, "put", key) from None

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self.put_parts_if_absent(key, [data])

    def put_parts_if_absent(self, key: str, parts: Sequence[bytes | memoryview]) -> bool:
        path = self._path(key)
        try:
            self._ensure_parent(path)
            return self._link_new(path, parts)
        except OSError as exc:
            raise self._error(exc, "put_if_absent", key) from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.EISDIR):
                return  # no file of that name: nothing to delete
            raise self._error(exc, "delete", key) from None
        try:
            _fsync_dir(os.path.dirname(path))
        except OSError as exc:
            raise self._error(exc, "delete", key) from None

    def compare_and_swap(self, key: str, expected: bytes | None, new: bytes | None) -> None:
        path = self._path(key)
        lock = path + LOCK_SUFFIX
        try:
            self._ensure_parent(path)
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                raise KeyConflict(
                    f"Unable to create {lock!r}: File exists. Another process holds the lock on "
                    f"key {key!r}; if no dsrepo process is running, remove the stale lock file"
                ) from None
            try:
                os.close(fd)
                self._swap_locked(key, path, expected, new)
            finally:
                _unlink_quietly(lock)
        except OSError as exc:
            raise self._error(exc, "compare_and_swap", key) from None

    def _swap_locked(self, key: str, path: str, expected: bytes | None, new: bytes | None) -> None:
        try:
            with open(path, "rb", buffering=0) as f:
                current: bytes | None = f.readall()
        except FileNotFoundError:
            current = None
        if current != expected:
            state = "is absent" if current is None else "has a different value"
            raise KeyConflict(f"compare-and-swap on {key!r} lost: the key {state}")
        if new is None:
            if current is not None:
                os.unlink(path)
                _fsync_dir(os.path.dirname(path))
        elif current is None:
            if not self._link_new(path, new):  # only a writer that bypasses the lock gets here
                raise KeyConflict(f"compare-and-swap on {key!r} lost: the key was just created")
        else:
            self._replace(path, new)

    def describe(self) -> str:
        return str(self.root)

    # -- helpers ----------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        """The file for ``key``, refusing reserved names and paths that leave the root."""
        validate_key(key)
        parts = key.split("/")
        for part in parts:
            if part.startswith(TMP_PREFIX) or part.endswith(LOCK_SUFFIX):
                raise InvalidKey(
                    f"invalid key {key!r}: names starting with {TMP_PREFIX!r} or ending with "
                    f"{LOCK_SUFFIX!r} are reserved by the directory backend"
                )
        path = os.path.join(self.root, *parts)
        parent = os.path.dirname(path)
        if parent not in self._checked_dirs:  # resolving every component costs a syscall each
            if not (os.path.realpath(parent) + os.sep).startswith(self._inside):
                raise InvalidKey(f"invalid key {key!r}: resolves outside {str(self.root)!r}")
            if len(self._checked_dirs) > 4096:
                self._checked_dirs.clear()
            self._checked_dirs.add(parent)
        if os.path.islink(path) and not os.path.realpath(path).startswith(self._inside):
            raise InvalidKey(f"invalid key {key!r}: resolves outside {str(self.root)!r}")
        return path

    def _ensure_parent(self, path: str) -> None:
        """Create the missing directories above ``path``, each durably recorded in its parent."""
        parent = os.path.dirname(path)
        if os.path.isdir(parent):
            return
        missing: list[str] = []
        while not os.path.isdir(parent):
            missing.append(parent)
            parent = os.path.dirname(parent)
        for directory in reversed(missing):
            try:
                os.mkdir(directory)
            except FileExistsError:
                continue
            _fsync_dir(os.path.dirname(directory))

    def _write_temp(self, path: str, data: bytes | Sequence[bytes | memoryview]) -> str:
        """Write ``data`` (bytes, or parts written one after another) to a fresh fsynced temp
        file next to ``path``; return its name."""
        tmp = os.path.join(os.path.dirname(path), f"{TMP_PREFIX}{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        parts = [data] if isinstance(data, bytes) else data
        try:
            with os.fdopen(fd, "wb", buffering=0) as f:
                for part in parts:
                    view = memoryview(part).cast("B")  # a short write counts bytes
                    if isinstance(view.obj, MappedFile) and len(view) == len(view.obj):
                        view = view[copy_mapped(view.obj, f.fileno()) :]  # a whole mapped file
                    while view:
                        written = f.write(view)
                        view = view[written or 0 :]
                os.fsync(f.fileno())
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return tmp

    def _replace(self, path: str, data: bytes) -> None:
        """Atomically replace ``path`` with ``data``: fsynced temp file, rename, fsync the dir."""
        tmp = self._write_temp(path, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        _fsync_dir(os.path.dirname(path))

    def _link_new(self, path: str, data: bytes | Sequence[bytes | memoryview]) -> bool:
        """Create ``path`` with ``data`` unless it exists; atomic through link(2)."""
        tmp = self._write_temp(path, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            _unlink_quietly(tmp)
        _fsync_dir(os.path.dirname(path))
        return True

    def _error(self, exc: OSError, op: str, key: str) -> BackendError:
        """Translate an OSError into a one-line backend error naming the key."""
        reason = exc.strerror or type(exc).__name__
        where = f"{op} {key!r} in {str(self.root)!r}"
        code = exc.errno
        if code in _NOT_FOUND and op in ("stat", "get"):
            return KeyNotFound(f"key {key!r} not found in {str(self.root)!r}")
        if code == errno.ENAMETOOLONG:
            return InvalidKey(f"invalid key {key!r}: file name too long")
        if code in _PERMANENT:
            return PermanentBackendError(f"{where} failed: {reason}")
        return BackendError(f"{where} failed: {reason}")


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
