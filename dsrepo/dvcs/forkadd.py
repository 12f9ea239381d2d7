"""Storing the files an ``add`` stages in two processes.

A small new file costs ~50 us of Python and ~10 us in the kernel to stage (read, hash, look up,
compress, append to a pack, record), so one process keeps one core busy while the other idles,
and ``add .`` of a million files took 0.6-0.7x git's time against a target of 0.5x. From
:data:`PARALLEL_MIN` files to store on, a forked child stores batches of them in its own packs
while this process walks the working copy, stores the other batches and stages every file, in
the order the walk found them (the staging index takes paths in order cheaply).

The child is fed through a pipe, at most :data:`AHEAD` batches ahead, and answers each batch
with what it stored (content id, size, manifest); it makes its packs durable (written, fsync'd,
recorded in the location index through its own connection) when told the walk is over, and
says so. Until it has said so, nothing it stored is relied on: if it fails in any way (an
error, a signal, an answer that does not decode, a failed flush), this process stores its
unanswered batches itself and stores again every file it answered for, so an error surfaces
here with its own class and message, and the staging index is saved only over objects that are
durable. A file that changed between the child's read and the second one raises FileChanged,
as a file changing during a read does.

The fork itself, and when it is safe: :mod:`dsrepo.dvcs.forking`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dsrepo.dvcs import forking
from dsrepo.dvcs.scan import ScanEntry
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.kinds import EntryKind
from dsrepo.objects.store import FileRef

if TYPE_CHECKING:
    from dsrepo.dvcs.stagingindex import IndexEntry
    from dsrepo.objects.store import ObjectStore

PARALLEL_MIN = 2_000
"""Files to store from which a child stores part of them (a fork costs a few milliseconds)."""
BATCH_FILES = 256
BATCH_BYTES = 8 << 20
"""A batch closes at this many files or bytes of content, whichever comes first."""
AHEAD = 3
"""Batches the child may hold (stored and waiting), so it rarely waits for this process. Its
answers to them fit in a pipe's buffer: it never blocks writing one."""
BEHIND = 8
"""Batches stored but not yet staged from which this process waits for the child's answer."""
_END = None
_FLUSHED = "flushed"
_PIPE_SIZE = 1 << 20

Stage = Callable[[ScanEntry, "IndexEntry | None", FileRef], None]


@dataclass(slots=True)
class _Batch:
    files: list[tuple[ScanEntry, IndexEntry | None]] = field(default_factory=list)
    size: int = 0
    refs: list[FileRef] | None = None  # None: the child's, unanswered
    by_child: bool = False


class ParallelAdd:
    """Store and stage files in the order :meth:`put` receives them; :meth:`finish` when all
    were put, :meth:`close` always (it ends the child if it still runs)."""

    def __init__(
        self,
        store: ObjectStore,
        root: str,
        store_batch: Callable[[list[ScanEntry]], list[FileRef]],
        stage: Stage,
        restore: Callable[[str], None],
    ) -> None:
        """``store_batch(files)`` stores files here; ``stage(s, old, ref)`` stages it;
        ``restore(path)`` stores a file the child answered for again, raising if its content
        is no longer what was staged."""
        self._store, self._root = store, root
        self._store_batch, self._stage, self._restore = store_batch, stage, restore
        self._open = _Batch()
        self._queue: deque[_Batch] = deque()  # stored or sent, not yet staged, in put order
        self._undecided: list[_Batch] | None = []  # batches held until a fork is decided
        self._child: _Child | None = None
        self._answered: list[str] = []  # the files the child stored, until it flushed

    def put(self, s: ScanEntry, old: IndexEntry | None) -> None:
        b = self._open
        b.files.append((s, old))
        b.size += s.size
        if len(b.files) >= BATCH_FILES or b.size >= BATCH_BYTES:
            self._close_batch()

    def finish(self) -> None:
        """Store and stage everything put; return once what the child stored is durable (or
        stored again here)."""
        self._close_batch()
        if self._undecided is not None:
            self._decide(fork=False)
        while self._queue:
            self._stage_head(wait=True)
        child, self._child = self._child, None
        if self._answered and (child is None or not child.flushed()):
            for path in self._answered:  # the child failed: nothing it stored is relied on
                self._restore(path)
        self._answered.clear()

    def close(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.end()

    # -- batches

    def _close_batch(self) -> None:
        b, self._open = self._open, _Batch()
        if not b.files:
            return
        if self._undecided is not None:
            self._undecided.append(b)
            if sum(len(u.files) for u in self._undecided) >= PARALLEL_MIN:
                self._decide(fork=True)
            return
        self._dispatch(b)

    def _decide(self, fork: bool) -> None:
        held, self._undecided = self._undecided or [], None
        if fork and _can_fork(self._store):
            self._child = _Child(self._store, self._root)
        for b in held:
            self._dispatch(b)

    def _dispatch(self, b: _Batch) -> None:
        child = self._child
        if (
            child is not None
            and child.holds < AHEAD
            and all(s.kind != EntryKind.SYMLINK for s, _ in b.files)
            and child.send([os.fsencode(s.path) for s, _ in b.files])
        ):
            b.by_child = True
        else:
            b.refs = self._store_batch([s for s, _ in b.files])
        self._queue.append(b)
        while self._queue:
            if not self._stage_head(wait=len(self._queue) > BEHIND):
                break

    def _stage_head(self, wait: bool) -> bool:
        """Stage the oldest batch if its files are stored (waiting for the child's answer if
        ``wait``); False if it is not ready."""
        b = self._queue[0]
        if b.refs is None:
            got = self._answer(wait)
            if got is None:
                return False
            b.refs = got
        self._queue.popleft()
        for (s, old), ref in zip(b.files, b.refs, strict=True):
            self._stage(s, old, ref)
            if b.by_child:
                self._answered.append(s.path)
        return True

    def _answer(self, wait: bool) -> list[FileRef] | None:
        """The child's answer for the oldest batch; if it failed, this process stores that
        batch and every other it holds."""
        child = self._child
        if child is not None:
            got = child.receive(wait)
            if got is not None or not child.failed:
                return got
            self._child = None
            child.end()
        for b in self._queue:
            if b.refs is None:
                b.refs = self._store_batch([s for s, _ in b.files])
        return self._queue[0].refs


def _can_fork(store: ObjectStore) -> bool:
    store.writer.park()  # nothing is buffered before the first batch is stored
    return forking.can_fork()


# -------------------------------------------------------------------- the child


class _Child:
    """The forked process storing batches; ``holds`` batches sent and not yet answered."""

    def __init__(self, store: ObjectStore, root: str) -> None:
        import msgpack

        from_parent, to_child = os.pipe()
        from_child, to_parent = os.pipe()
        for fd in (to_child, to_parent):
            with contextlib.suppress(OSError, AttributeError):  # (F_SETPIPE_SZ: Linux only)
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)

        def main() -> None:  # pragma: no cover - runs in the child
            os.close(to_child)
            os.close(from_child)
            _serve(store, root, from_parent, to_parent)

        self._pid = forking.start(main)
        os.close(from_parent)
        os.close(to_parent)
        self._out, self._in = to_child, from_child
        self._unpacker = msgpack.Unpacker()
        self.holds = 0
        self.failed = False

    def send(self, msg: object) -> bool:
        try:
            forking.send(self._out, msg)
        except OSError:
            self.failed = True
            return False
        if msg is not _END:
            self.holds += 1
        return True

    def _next(self, wait: bool) -> Any:
        """The child's next message; None if none is there (without ``wait``) or it failed."""
        while not self.failed:
            for msg in self._unpacker:
                return msg
            if not wait and not select.select([self._in], [], [], 0)[0]:
                return None
            try:
                data = os.read(self._in, 1 << 16)
            except OSError:
                data = b""
            if not data:
                self.failed = True
                break
            self._unpacker.feed(data)
        return None

    def receive(self, wait: bool) -> list[FileRef] | None:
        """The refs of the oldest batch sent; None if not there yet or the child failed."""
        try:
            got = self._next(wait)
            if got is None:
                return None
            refs = [FileRef(ObjectId(c), n, None if m is None else ObjectId(m)) for c, n, m in got]
        except Exception:  # an answer that does not decode
            self.failed = True
            return None
        self.holds -= 1
        return refs

    def flushed(self) -> bool:
        """Tell the child the walk is over; True once its packs are durable."""
        ok = self.send(_END) and self._next(wait=True) == _FLUSHED
        self.end()
        return ok and self.holds == 0

    def end(self) -> None:
        """Close the pipes (a child still running ends without flushing) and reap it."""
        if self._pid:
            for fd in (self._out, self._in):
                with contextlib.suppress(OSError):
                    os.close(fd)
            os.waitpid(self._pid, 0)
            self._pid = 0


def _serve(
    store: ObjectStore, root: str, rfd: int, wfd: int
) -> None:  # pragma: no cover - runs in the child, whose coverage is not collected
    """The child's loop: store each batch of paths, answer with their refs; flush on the end
    message and say so. Any error ends it without an answer (its parent takes over)."""
    import msgpack

    forking.own_index(store)
    unpacker = msgpack.Unpacker()
    while True:
        data = os.read(rfd, 1 << 16)
        if not data:  # the parent stopped: nothing is relied on, nothing to flush
            return
        unpacker.feed(data)
        for paths in unpacker:
            if paths is _END:
                store.flush()
                forking.send(wfd, _FLUSHED)
                return
            refs = store.write_files([os.path.join(root, os.fsdecode(p)) for p in paths])
            answer = [(bytes(r.content_id), r.size, r.manifest and bytes(r.manifest)) for r in refs]
            forking.send(wfd, answer)
