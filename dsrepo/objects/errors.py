"""Errors of the object layer: ids, encodings, the object store."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

from dsrepo.errors import DsrepoError


class ObjectError(DsrepoError):
    """Something is wrong with an object id, an object's bytes, or the object store."""


class InvalidId(ObjectError):
    """Text that is not a valid object id or id prefix."""

    exit_code = 4


class ObjectNotFound(ObjectError):
    """No object with this id (or prefix) is in the store."""

    exit_code = 4


class AmbiguousId(ObjectError):
    """An id prefix that matches more than one object."""

    exit_code = 4


class FormatError(ObjectError):
    """Bytes that do not decode as a canonical object of the expected type and version."""

    exit_code = 7


class CorruptObject(ObjectError):
    """Stored bytes whose hash does not match the id they are stored under."""

    exit_code = 7


class FileReadError(ObjectError):
    """A file the user asked to store cannot be read (permissions, vanished, I/O error)."""

    exit_code = 10


class FileChanged(ObjectError):
    """A file changed while it was being read; nothing was recorded under a torn id."""

    exit_code = 10


class StorageUnavailable(ObjectError):
    """Local storage refuses a write: the filesystem is full, read-only, or not writable by us.
    Nothing was damaged; what was stored before stays readable, and read-only commands work."""

    exit_code = 12


class StorageFull(StorageUnavailable):
    """No space left on the device (or the disk quota is exhausted)."""


class StorageReadOnly(StorageUnavailable):
    """The filesystem is mounted read-only, or the file or directory is not writable by us."""


_FULL = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}
_READ_ONLY = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


def storage_error(exc: BaseException, path: object) -> StorageUnavailable | None:
    """The resource error ``exc`` stands for (``no space left on device: PATH``...), or None.

    ``exc`` is an OSError, or an error translated from one at a layer boundary (a backend error
    raised while handling it, or one carrying an ``errno`` attribute).
    """
    cause: BaseException | None = exc
    code = None
    for _ in range(4):  # the error itself, and the few it was translated from
        if cause is None or code is not None:
            break
        code = getattr(cause, "errno", None)
        cause = cause.__cause__ or cause.__context__
    if code in _FULL:
        return StorageFull(f"{_FULL[code]}: {path}")
    if code in _READ_ONLY:
        return StorageReadOnly(f"{_READ_ONLY[code]}: {path}")
    return None


@contextlib.contextmanager
def storage_refusals(path: object) -> Iterator[None]:
    """Within the block, an error meaning a full or read-only disk (an OSError, or a backend error
    translated from one) is raised as :class:`StorageUnavailable` naming ``path``; others pass."""
    try:
        yield
    except (OSError, DsrepoError) as exc:
        refused = storage_error(exc, path)
        if refused is None:
            raise
        raise refused from None
