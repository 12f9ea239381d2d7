"""Writing the files of a version: checkout, switch, merge, clone, restore, ``checkout --into``.

Single-chunk files (nearly every file of a dataset of small files) are read in batches
(:meth:`ObjectStore.read_small`: every object verified by its id) and written through one open
descriptor per directory (:meth:`SafeWriter.open_parent` once, then :meth:`SafeWriter.write_at`
per file): the same checks, temp file and rename as :meth:`SafeWriter.write_file`, without
walking and validating the path again, sweeping, or asking for randomness for each file: four
system calls per file (five when the caller wants its lstat). Files with a manifest follow one by
one, each hashed whole while it streams (its chunks are verified on read, not that they add up to
its id).

Everything runs on the calling thread. Writer threads were measured (2 cores, 100k files of
1-2 KiB) and made it slower: a file costs a few microseconds of system calls, each of which gives
the GIL up and must take it back from the thread that reads and verifies, so one writer thread
took 2.6 s against 2.5 s on tmpfs (8.4 s against 4.3 s on ext4), and two doubled the CPU time.
A process does help: :mod:`dsrepo.dvcs.forkwrite` hands part of a big batch to a forked child.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from dsrepo.dvcs.errors import PathError
from dsrepo.dvcs.paths import SafeWriter, UnsafePath, validate_entry_name
from dsrepo.objects.errors import CorruptObject, storage_error
from dsrepo.objects.ids import hash_data
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import TreeEntry

if TYPE_CHECKING:
    from dsrepo.objects.store import ObjectStore


Written = tuple[str, TreeEntry, os.stat_result | None]


def write_entry(
    store: ObjectStore,
    writer: SafeWriter,
    path: str,
    e: TreeEntry,
    allow_outside_links: bool,
    content: Sequence[bytes] | None = None,
    *,
    dir_fd: int | None = None,
    stat: bool = True,
) -> os.stat_result | None:
    """Write one entry (its verified ``content`` when already read); its lstat (None without
    ``stat``). ``dir_fd``: its directory, open (:meth:`SafeWriter.open_parent`). Errors are
    PathError (an unsafe path, a name this filesystem refuses), StorageUnavailable (a full or
    read-only disk) or CorruptObject (content that does not hash to the entry's id)."""
    try:
        if e.kind == EntryKind.SYMLINK:
            raw = b"".join(content) if content is not None else store.read_all(e)
            if len(raw) != e.size or hash_data(raw) != e.id:
                raise CorruptObject(f"refusing to write {path!r}: its target is not {e.id.hex()}")
            writer.write_symlink(path, os.fsdecode(raw), allow_outside=allow_outside_links)
            return os.lstat(writer.root / path) if stat else None
        chunks = content if content is not None else store.read_chunks(e)
        executable = e.kind == EntryKind.EXECUTABLE
        # A single-chunk file's content id is its chunk's id, which the store verified on read:
        # hashing it again would double the work for nothing. A chunked file is hashed whole
        # while it streams (its chunks are each verified, but not that they add up to its id).
        content_id = e.id if e.manifest is not None else None
        if dir_fd is None:
            return writer.write_file(path, chunks, executable, content_id=content_id, size=e.size)
        try:
            validate_entry_name(path.rpartition("/")[2])
        except UnsafePath as exc:
            raise UnsafePath(f"unsafe path {path!r}: {exc}") from None
        return writer.write_at(
            dir_fd, path, chunks, executable, content_id=content_id, size=e.size, stat_after=stat
        )
    except (UnsafePath, OSError) as exc:
        raise _refusal(exc, writer, path) from None


def _refusal(exc: UnsafePath | OSError, writer: SafeWriter, path: str) -> Exception:
    if isinstance(exc, UnsafePath):
        return PathError(str(exc))
    # a full or read-only disk (exit 12), a name this filesystem refuses
    refused = storage_error(exc, writer.root / path)
    return refused or PathError(f"cannot write {path!r}: {exc.strerror or exc}")


def write_entries(
    store: ObjectStore,
    writer: SafeWriter,
    items: Sequence[tuple[str, TreeEntry]],
    allow_outside_links: bool,
    *,
    stat: bool = True,
) -> Iterator[Written]:
    """Write every (path, entry) (consecutive files of one directory share its descriptor, so
    keep a directory's files together); yield (path, entry, lstat or None) for each file as soon
    as it is in place, in order (a failure raises after the files before it were reported: a
    caller's record of what it changed is complete)."""
    small = (  # no copy when every file is small (a clone of 1M files: 61 MB less)
        items
        if all(e.manifest is None for _, e in items)
        else [(p, e) for p, e in items if e.manifest is None]
    )
    contents = store.read_small([e for _, e in small])
    dir_fd: int | None = None
    fd_dir = ""  # the directory dir_fd is open on
    try:
        for (p, e), (_, raw) in zip(small, contents, strict=True):
            if e.kind == EntryKind.SYMLINK:  # rare: its own walk
                yield p, e, write_entry(store, writer, p, e, allow_outside_links, [raw], stat=stat)
                continue
            d = p.rpartition("/")[0]
            if dir_fd is None or d != fd_dir:
                if dir_fd is not None:
                    os.close(dir_fd)
                    dir_fd = None
                try:
                    dir_fd = writer.open_parent(p)
                except (UnsafePath, OSError) as exc:
                    raise _refusal(exc, writer, p) from None
                fd_dir = d
            st = write_entry(
                store, writer, p, e, allow_outside_links, [raw], dir_fd=dir_fd, stat=stat
            )
            yield p, e, st
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    for p, e in items:
        if e.manifest is not None:
            yield p, e, write_entry(store, writer, p, e, allow_outside_links, stat=stat)
