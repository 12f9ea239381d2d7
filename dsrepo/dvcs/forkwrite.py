"""Writing a batch of files in two processes: ``checkout --into``, a clone, a big switch.

A small file costs ~20 us of Python (reading and verifying its object, the temp file, the
rename) beside ~13 us in the kernel, so one process keeps one core busy with Python while
``cp -r`` spends only the kernel's part. From :data:`PARALLEL_MIN` files on, a batch is cut at a
folder boundary, and a forked child writes the files after it (:data:`CHILD_SHARE` of the cost)
while this process writes the others (:mod:`dsrepo.dvcs.statuswalk` walks ``status`` the same
way). Files with a manifest and symlinks stay here.

The child writes exactly as :func:`~dsrepo.dvcs.writebatch.write_entries` does (a temp file, the
verified bytes, a rename), reads through its own connection to the location index (SQLite's
locks belong to a process), and reports the files it put in place, in order, with their
``lstat`` when asked. If it fails in any way (an error, a signal, a report that does not decode),
this process writes the files it did not report: an error then surfaces here with its own class
and message, and writing a file again is harmless. Whatever fails, every file either process put
in place is yielded before the error is raised, so the caller's record of what it changed (the
rollback of a refused checkout) stays complete.

The fork itself, and when it is safe: :mod:`dsrepo.dvcs.forking`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from dsrepo.dvcs import forking, writebatch
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.model import TreeEntry

if TYPE_CHECKING:
    from dsrepo.dvcs.paths import SafeWriter
    from dsrepo.objects.store import ObjectStore

PARALLEL_MIN = 2_000
"""Files in a batch from which a child writes part of it (a fork costs a few milliseconds)."""
FILE_COST = 32 << 10
"""What one file costs beside its bytes, in bytes (~30 us against ~1 GB/s), to cut fairly."""
CHILD_SHARE = 0.55
"""The child's part of a batch's cost: this process also walks, surveys and checks the batches."""

Item = tuple[str, TreeEntry]


def write_entries(
    store: ObjectStore,
    writer: SafeWriter,
    items: Sequence[Item],
    allow_outside_links: bool,
    *,
    stat: bool = True,
) -> Iterator[writebatch.Written]:
    """:func:`~dsrepo.dvcs.writebatch.write_entries` in two processes when the batch is big
    enough (see the module docstring); the child's files are yielded after this process's."""
    parts = _cut(items) if len(items) >= PARALLEL_MIN and _can_fork(store) else None
    if parts is None:
        yield from writebatch.write_entries(store, writer, items, allow_outside_links, stat=stat)
        return
    mine, theirs = parts
    child = forking.Child(
        lambda: _write_reporting(store, writer, theirs, allow_outside_links, stat)
    )
    try:
        yield from writebatch.write_entries(store, writer, mine, allow_outside_links, stat=stat)
    except GeneratorExit:  # the caller stopped listening
        child.result()
        raise
    except BaseException:  # what the child put in place is reported before the error
        yield from _report(theirs, _report_of(theirs, child.result()))
        raise
    done = _report_of(theirs, child.result())
    yield from _report(theirs, done)
    if len(done) < len(theirs):  # the child failed: its error, if any, surfaces here
        rest = theirs[len(done) :]
        yield from writebatch.write_entries(store, writer, rest, allow_outside_links, stat=stat)


def _can_fork(store: ObjectStore) -> bool:
    if threading.active_count() > 1:
        store.writer.park()  # a clone's pack writer is idle by now
    return forking.can_fork()


def _cut(items: Sequence[Item]) -> tuple[list[Item], list[Item]] | None:
    """This process's files and the child's: the child takes plain single-chunk files from a
    folder boundary on, :data:`CHILD_SHARE` of the batch's cost; None if that is too few."""
    movable = [(p, e) for p, e in items if e.manifest is None and e.kind != EntryKind.SYMLINK]
    total = sum(e.size + FILE_COST for _, e in items)
    cost = total - sum(e.size + FILE_COST for _, e in movable)  # what stays here anyway
    cut = 0
    while cut < len(movable) and cost < total * (1 - CHILD_SHARE):
        cost += movable[cut][1].size + FILE_COST
        cut += 1
    if 0 < cut < len(movable):  # on to the end of that folder
        folder = movable[cut - 1][0].rpartition("/")[0]
        while cut < len(movable) and movable[cut][0].rpartition("/")[0] == folder:
            cut += 1
    theirs = movable[cut:]
    if len(theirs) < PARALLEL_MIN // 4:
        return None
    moved = {p for p, _ in theirs}
    return [(p, e) for p, e in items if p not in moved], theirs


Report = list[list[int] | None]
"""For each file the child put in place, in order: its lstat fields (None without ``stat``)."""


def _report_of(items: Sequence[Item], got: Any) -> Report:
    """The child's report (none from a child that failed before it could send one)."""
    return got if isinstance(got, list) and len(got) <= len(items) else []


def _report(items: Sequence[Item], done: Report) -> Iterator[writebatch.Written]:
    for (p, e), st in zip(items, done, strict=False):
        yield p, e, None if st is None else os.stat_result(st[:10], _ns(st))


def _fields(st: os.stat_result) -> list[int]:
    return [*map(int, st[:10]), st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns]


def _ns(st: list[int]) -> dict[str, int]:
    return {"st_atime_ns": st[10], "st_mtime_ns": st[11], "st_ctime_ns": st[12]}


def _write_reporting(
    store: ObjectStore,
    writer: SafeWriter,
    items: Sequence[Item],
    allow_outside_links: bool,
    stat: bool,
) -> Report:  # pragma: no cover - runs in the child, whose coverage is not collected
    """The child's work: write ``items``; what was put in place, even after a failure (the
    parent writes the rest, and raises the error)."""
    done: Report = []
    try:
        forking.own_index(store)
        for _p, _e, st in writebatch.write_entries(
            store, writer, items, allow_outside_links, stat=stat
        ):
            done.append(None if st is None else _fields(st))
    except BaseException:
        pass
    return done
