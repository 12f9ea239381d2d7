"""Crash-safe local file writes: temp file in the same directory, fsync, rename, fsync dir.

A write the filesystem refuses for lack of space or permission (ENOSPC, EDQUOT, EROFS, EACCES,
EPERM) raises :class:`~dsrepo.objects.errors.StorageUnavailable` (one line naming the file, exit
12) and leaves the previous file in place; no temporary file is left behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from dsrepo.objects.errors import storage_refusals

Buffer = bytes | bytearray | memoryview


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: Buffer | Sequence[Buffer], *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` (bytes, or parts written in order) via temp + rename."""
    with storage_refusals(path):
        _atomic_write(path, data, durable)


def _atomic_write(path: Path, data: Buffer | Sequence[Buffer], durable: bool) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, bytes | bytearray | memoryview):
                f.write(data)
            else:
                f.writelines(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
