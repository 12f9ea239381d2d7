"""Whole files read by mapping them, and copied to other files in the kernel.

A pack copied whole between two local directories (a push to a directory remote, a clone or
fetch from one) was read into memory, verified, then written out again: on the test machine
``write(2)`` from process memory cost 3-4x the kernel's own copy (562 MB of packs: 1.05-1.22 s
of system time against 0.27-0.39 s with ``copy_file_range(2)``, which ``cp`` uses). Here the
source file is mapped instead (:func:`map_file`): the verification reads the page cache in
place, and :func:`copy_mapped` copies the file in the kernel.

The copy comes from the file, not from the mapping the caller verified: it is made only when the
path still names the mapped file (same device, inode and size). Packs are immutable once
published (writers create temporary files and link them into place; a collection unlinks them,
which leaves a mapping intact), so the file's bytes are the ones verified. A pack file truncated
in place while mapped, which nothing in dsrepo does, would make reading the mapping raise
SIGBUS: git maps its packs under the same assumption.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import stat

MAP_MIN = 1 << 20
"""Files smaller than this are read, not mapped (a mapping costs two system calls and a
page fault per 4 KiB touched: worth it for packs, not for refs or small indexes)."""

_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}
"""copy_file_range refusals that mean "write it yourself" (another filesystem, an old kernel)."""


class MappedFile(mmap.mmap):
    """A read-only mapping of a whole file, remembering which file (device and inode)."""

    path: str
    file_id: tuple[int, int]


def map_file(path: str) -> bytes | MappedFile:
    """The content of the file at ``path``: mapped if it has at least ``MAP_MIN`` bytes, else
    read. Raises OSError as ``open`` does."""
    with open(path, "rb", buffering=0) as f:  # a folder: IsADirectoryError
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):  # a device: no end to read to
            raise IsADirectoryError(errno.EISDIR, "not a file", path)
        if st.st_size < MAP_MIN:
            return f.readall()
        mapped = MappedFile(f.fileno(), st.st_size, prot=mmap.PROT_READ)
    mapped.path, mapped.file_id = path, (st.st_dev, st.st_ino)
    with contextlib.suppress(OSError):  # read once, front to back
        mapped.madvise(mmap.MADV_SEQUENTIAL)
    return mapped


def copy_mapped(mapped: MappedFile, out: int) -> int:
    """Copy the mapped file into ``out`` (from its current position) in the kernel, as far as
    the kernel agrees; returns the bytes copied (0 when the path no longer names the mapped
    file, or the kernel cannot: the caller writes the rest from the mapping)."""
    size = len(mapped)
    try:
        src = os.open(mapped.path, os.O_RDONLY)
    except OSError:
        return 0
    done = 0
    try:
        st = os.fstat(src)
        if (st.st_dev, st.st_ino) != mapped.file_id or st.st_size != size:
            return 0
        while done < size:
            n = os.copy_file_range(src, out, size - done, done)
            if n == 0:
                break
            done += n
    except OSError as exc:
        if exc.errno not in _NO_KERNEL_COPY:
            raise
    finally:
        os.close(src)
    return done
