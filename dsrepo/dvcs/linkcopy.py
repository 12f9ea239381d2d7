"""Placing a file of the user cache's file area into a directory: a reflink (a copy-on-write
clone: ``ioctl(FICLONE)``, on Btrfs, XFS, ZFS 2.2...), a hard link, or a copy.

``auto`` tries them in that order, per file, and keeps the first that works for the rest of the
run; ``reflink`` and ``hardlink`` fail instead of falling back (exit 9), ``copy`` always copies.
Every placement goes through a temp file in the destination directory renamed over the
destination, in a directory opened without following symlinks (:class:`SafeWriter`), so a
reader sees the old file or the new one and nothing is written through a link.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from dsrepo.dvcs.errors import PathError
from dsrepo.dvcs.paths import SafeWriter, _temp_name

METHODS = ("auto", "reflink", "hardlink", "copy")
FICLONE = 0x40049409
"""``_IOW(0x94, 9, int)``: clone a whole file (Linux)."""
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOT_SUPPORTED = {
    errno.EXDEV,
    errno.EOPNOTSUPP,
    errno.ENOTSUP,
    errno.EINVAL,
    errno.ENOTTY,
    errno.EPERM,
    errno.EMLINK,
    errno.ENOSYS,
    errno.EBADF,
}


class Placer:
    """Places cache files into ``writer.root`` by ``method`` (one of :data:`METHODS`); ``used``
    names how each file was placed (``reflink``, ``hardlink`` or ``copy``)."""

    def __init__(self, writer: SafeWriter, method: str = "auto", *, mutable: bool = False) -> None:
        if method not in METHODS:
            raise PathError(f"unknown link method {method!r} (one of {', '.join(METHODS)})")
        self.writer = writer
        self.mutable = mutable
        # a mutable copy never shares an inode with the cache
        self.order = {
            "auto": ["reflink", "copy"] if mutable else ["reflink", "hardlink", "copy"],
            "reflink": ["reflink"],
            "hardlink": ["hardlink"],
            "copy": ["copy"],
        }[method]
        if mutable and method == "hardlink":
            raise PathError("--copy gives files of their own: it cannot use hard links")
        self.used: dict[str, int] = {}

    def place(self, source: Path, relpath: str, executable: bool) -> os.stat_result:
        """Put a file with ``source``'s bytes at ``relpath`` (read-only unless mutable)."""
        parts = relpath.split("/")
        name = parts[-1]
        dir_fd = self.writer._open_parent(relpath, parts, create=True)
        assert dir_fd is not None
        try:
            self.writer._sweep_once(dir_fd, relpath.rpartition("/")[0])
            self.writer._clear_directory(dir_fd, name, relpath)
            last: OSError | None = None
            for how in list(self.order):
                tmp = _temp_name()
                try:
                    self._make(how, source, tmp, dir_fd, executable)
                except OSError as exc:
                    _unlink(tmp, dir_fd)
                    if exc.errno not in _NOT_SUPPORTED or how == "copy":
                        raise
                    last = exc
                    if len(self.order) > 1:
                        self.order.remove(how)  # not on this filesystem: do not try it again
                    continue
                try:
                    os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                except BaseException:
                    _unlink(tmp, dir_fd)
                    raise
                self.used[how] = self.used.get(how, 0) + 1
                return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            raise PathError(
                f"cannot {self.order[0]} {relpath!r} from the cache at {source.parent.parent}: "
                f"{(last.strerror if last else None) or last} (try --link auto)"
            )
        finally:
            os.close(dir_fd)

    def _make(self, how: str, source: Path, tmp: str, dir_fd: int, executable: bool) -> None:
        if how == "hardlink":
            os.link(source, tmp, dst_dir_fd=dir_fd, follow_symlinks=False)
            return
        mode = 0o555 if executable else 0o444
        if self.mutable:
            mode = self.writer._exec_mode if executable else self.writer._file_mode
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _O_CLOEXEC
        src = os.open(source, os.O_RDONLY | _O_CLOEXEC)
        try:
            fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
            try:
                if how == "reflink":
                    fcntl.ioctl(fd, FICLONE, src)
                else:
                    copy_fd(src, fd)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
        finally:
            os.close(src)


def copy_fd(src: int, dst: int) -> None:
    """Copy all of ``src`` to ``dst``: ``copy_file_range`` (in the kernel, a reflink where the
    filesystem offers one), else plain reads and writes."""
    size = os.fstat(src).st_size
    done = 0
    with contextlib.suppress(OSError, AttributeError):
        while done < size:
            n = os.copy_file_range(src, dst, size - done, done, done)
            if n == 0:
                break
            done += n
    if done < size:
        os.lseek(dst, done, os.SEEK_SET)
        os.lseek(src, done, os.SEEK_SET)
        while True:
            block = os.read(src, 1 << 20)
            if not block:
                break
            view = memoryview(block)
            while view:
                view = view[os.write(dst, view) :]


def _unlink(name: str, dir_fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)
