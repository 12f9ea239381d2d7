"""The write buffer of the object store: objects gathered into packs and written in the background.

New objects go to an open :class:`PackBuilder` per pack class (data chunks, metadata). When one
reaches the pack target it is sealed and handed to a background writer thread; packs received
whole from elsewhere (already verified by the caller) take the same path. Until a pack is recorded
in the location index its objects are served from memory, so they are readable the moment they are
added.

Each pack is made durable in the order the format requires, each step complete before the next:

1. the pack bytes (put, fsync'd by the backend);
2. the pack index (put, fsync'd), which names and describes the pack;
3. the location index (the local id → location cache).

A write the storage refuses for lack of space or permission raises
:class:`~dsrepo.objects.errors.StorageUnavailable` (``no space left on device: PATH``); the
backend leaves no partial key behind, so everything flushed before stays readable.

A reader finds an object only through an index, so an index never names a pack that is not fully
written; a crash between steps leaves at worst an orphan pack without an index (ignored by readers)
or a pack index the location index does not know yet (``ObjectStore.sync_index`` adds it on the
next open). :meth:`PackWriter.flush` returns only once every pack buffered before it has gone
through all three steps: only then may a ref point at the new objects.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dsrepo.objects import layout
from dsrepo.objects.errors import storage_refusals
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.pack import IndexEntry, PackBuilder, PackClass

if TYPE_CHECKING:
    from collections.abc import Iterable

    from dsrepo.objects.locindex import LocationIndex
    from dsrepo.objects.model import ObjectType
    from dsrepo.remotes.base import Backend
    from dsrepo.remotes.mapped import MappedFile

DEFAULT_PACK_TARGET = 32 * 1024 * 1024
_MAX_SEALED = 1
"""Finished packs that may wait for a single background writer: the one it writes (a fetch of
300k files took 14.5-14.9 s with one or two; two cost 40 MB more)."""
MAX_SEALED_BYTES = 96 << 20
"""With several writers (a push's uploads), the finished packs waiting for them hold at most
this many bytes (more than one pack): eight writers of 32 MiB packs would otherwise keep 256 MiB
in memory, the largest part of a big push's peak."""


@dataclass(slots=True)
class WriteStats:
    objects_written: int = 0
    bytes_written: int = 0
    packs_written: int = 0


class _ReceivedPack:
    """A verified pack received whole, waiting for a writer (readable from memory meanwhile)."""

    def __init__(
        self,
        name: str,
        pack_class: PackClass,
        entries: list[IndexEntry],
        data: bytes | MappedFile,
        index_bytes: bytes,
    ) -> None:
        self.name = name
        self.pack_class = pack_class
        self.sorted_entries = entries
        self.entries = {e.id: e for e in entries}
        self.data = data
        self.index_bytes = index_bytes

    def stored_bytes(self, e: IndexEntry) -> bytes:
        return self.data[e.offset : e.offset + e.stored_size]

    @property
    def size(self) -> int:
        return len(self.data)


class PackWriter:
    """Buffers objects into packs over ``backend`` and records written packs in ``index``.

    One lock guards the builders, the sealed packs, the pending writes and the stats. It is never
    held while waiting on a writer's future: a writer takes it to report its pack, so waiting with
    it held would deadlock.
    """

    def __init__(
        self,
        backend: Backend,
        index: LocationIndex | None,
        *,
        pack_target: int = DEFAULT_PACK_TARGET,
        writers: int = 1,
        overlap: bool = True,
    ) -> None:
        """``overlap=False``: a sealed pack is written before the next one is filled (one pack
        in memory instead of two: a repack of a million objects holds little else)."""
        self.backend = backend
        self.index = index
        self.pack_target = pack_target
        self.stats = WriteStats()
        self._builders: dict[PackClass, PackBuilder] = {}
        self._sealed: list[PackBuilder | _ReceivedPack] = []
        """Finished packs being written by the background writers; still readable from memory."""
        self._writers = writers
        self._writer = self._new_writer()
        self._max_sealed = max(_MAX_SEALED, writers) if overlap else 0
        self._writes: list[Future[None]] = []
        self._written: list[str] = []
        self._refuse: frozenset[str] = frozenset()
        self._refused: list[IndexEntry] = []
        self._found: list[str] = []
        self._lock = threading.RLock()

    def _new_writer(self) -> ThreadPoolExecutor:
        """The background writers (their threads start with the first pack handed to them)."""
        return ThreadPoolExecutor(max_workers=self._writers, thread_name_prefix="dsrepo-packs")

    def park(self) -> None:
        """Stop the writer threads when nothing is buffered or being written; the next sealed
        pack starts them again. For a process about to fork (:mod:`dsrepo.dvcs.forkwrite`):
        the child gets only the forking thread, so no other thread may be left that could hold
        a lock it needs."""
        with self._lock:
            if self._builders or self._sealed or self._writes:
                return
            writer, self._writer = self._writer, self._new_writer()
        writer.shutdown(wait=True)

    # ------------------------------------------------------------ lookups of buffered objects

    def _buffered(self) -> list[PackBuilder | _ReceivedPack]:
        """Open and sealed packs (objects added but not yet in the location index); the caller
        holds the lock."""
        return [*self._builders.values(), *self._sealed]

    def empty(self) -> bool:
        """Nothing is buffered (every object added is in the location index)."""
        with self._lock:
            return not self._buffered()

    def contains(self, oid: bytes) -> bool:
        with self._lock:
            return any(oid in b.entries for b in self._buffered())

    def not_buffered(self, oids: Iterable[ObjectId]) -> set[ObjectId]:
        """The subset of ``oids`` not in the buffer."""
        wanted = set(oids)
        with self._lock:
            for b in self._buffered():
                wanted -= b.entries.keys()
        return wanted

    def entry(self, oid: ObjectId) -> IndexEntry | None:
        """A buffered object's entry (type, sizes, flags), or None if it is not buffered."""
        with self._lock:
            for b in self._buffered():
                e = b.entries.get(oid)
                if e is not None:
                    return e
        return None

    def pending(self, oid: ObjectId) -> tuple[IndexEntry, bytes] | None:
        """A buffered object's entry and stored (possibly compressed) bytes, or None."""
        with self._lock:
            for b in self._buffered():
                e = b.entries.get(oid)
                if e is not None:
                    return e, b.stored_bytes(e)
        return None

    def matching(self, prefix: str) -> set[ObjectId]:
        """The buffered ids whose hex form starts with ``prefix``."""
        with self._lock:
            return {o for b in self._buffered() for o in b.entries if o.hex().startswith(prefix)}

    # ------------------------------------------------------------ adding

    def add(
        self,
        oid: ObjectId,
        type_: ObjectType,
        stored: bytes | memoryview,
        raw_size: int,
        flags: int,
    ) -> None:
        """Buffer an object in its stored form (no-op if its open pack holds it already); seals
        the pack when it reaches the target, then waits if too many packs wait for a writer."""
        pack_class = PackClass.for_type(type_)
        with self._lock:
            builder = self._builders.get(pack_class)
            if builder is None:
                builder = self._builders[pack_class] = PackBuilder(pack_class)
            if oid in builder.entries:
                return
            builder.add(oid, type_, stored, raw_size, flags)
            self.stats.objects_written += 1
            self.stats.bytes_written += len(stored)
            if builder.size < self.pack_target:
                return
            self._finish(pack_class)
        self._wait_for_writer()

    def add_pack(
        self,
        name: str,
        pack_class: PackClass,
        entries: list[IndexEntry],
        data: bytes | MappedFile,
        index_bytes: bytes,
    ) -> None:
        """Queue a whole pack, already verified, for the writers, as is (``entries`` sorted by
        id, ``index_bytes`` their encoding, which names the pack ``name``)."""
        received = _ReceivedPack(name, pack_class, entries, data, index_bytes)
        with self._lock:
            self._sealed.append(received)
            self._writes.append(self._writer.submit(self._write_pack, received))
        self._wait_for_writer()

    def _finish(self, pack_class: PackClass) -> None:
        """Seal the open pack of ``pack_class`` and hand it to the background writer; the caller
        holds the lock."""
        builder = self._builders.pop(pack_class, None)
        if builder is None or not builder.entries:
            return
        self._sealed.append(builder)
        self._writes.append(self._writer.submit(self._write_pack, builder))

    def _wait_for_writer(self) -> None:
        """Backpressure, called without the lock held: while more than ``_MAX_SEALED`` packs (or
        writers), or more than one pack of more than ``MAX_SEALED_BYTES`` in all, wait for the
        writers, wait for the oldest (and raise its error, if it failed)."""
        while True:
            with self._lock:
                waiting = len(self._sealed)
                if not self._writes or (
                    waiting <= self._max_sealed
                    and (waiting <= 1 or sum(p.size for p in self._sealed) <= MAX_SEALED_BYTES)
                ):
                    return
                oldest = self._writes[0]
            oldest.result()
            with self._lock:
                if self._writes and self._writes[0] is oldest:
                    self._writes.pop(0)

    def _write_pack(self, pending: PackBuilder | _ReceivedPack) -> None:
        """Pack (fsync), then index (fsync), then location index; runs on a writer thread."""
        try:
            if isinstance(pending, PackBuilder):
                name, pack_parts, index_bytes, entries = pending.finish_parts()
            else:
                name, index_bytes = pending.name, pending.index_bytes
                pack_parts, entries = [memoryview(pending.data)], pending.sorted_entries
            if name in self._refuse:
                with self._lock:
                    self._refused.extend(entries)
                return
            where = f"{self.backend.describe()}/{layout.pack_key(name)}"
            with storage_refusals(where):  # a full or read-only disk: one line
                created = self.backend.put_parts_if_absent(layout.pack_key(name), pack_parts)
            with storage_refusals(f"{self.backend.describe()}/{layout.index_key(name)}"):
                created &= self.backend.put_if_absent(layout.index_key(name), index_bytes)
            if self.index is not None:  # (None: a repack's writer, whose caller re-syncs)
                self.index.add_pack(name, pending.pack_class, entries)
            with self._lock:
                self.stats.packs_written += 1
                self._written.append(name)
                if not created:
                    self._found.append(name)
        finally:
            with self._lock:
                self._sealed.remove(pending)

    # ------------------------------------------------------------ ending

    def flush(self) -> list[str]:
        """Make every buffered object durable: seal the open packs, then wait until every pack
        and its index are written (fsync'd) and recorded in the location index. Returns the
        names of the packs written since the last flush."""
        with self._lock:
            for pc in list(self._builders):
                self._finish(pc)
            writes, self._writes = self._writes, []
        for w in writes:
            w.result()
        with self._lock:
            names, self._written = self._written, []
        return names

    def refuse(self, names: Iterable[str]) -> None:
        """Write no pack named like one of ``names`` from now on (until called again): such a
        pack is set aside unwritten, its pack and index keys untouched (:meth:`take_refused`).
        A collection dooms packs and deletes their index, then their pack: a writer that found
        those keys would write the index again over a pack about to go (docs/gc.md)."""
        with self._lock:
            self._refuse = frozenset(names)

    def take_refused(self) -> list[IndexEntry]:
        """The objects of the packs set aside since the last call (:meth:`refuse`)."""
        with self._lock:
            refused, self._refused = self._refused, []
        return refused

    def take_found(self) -> list[str]:
        """Packs written since the last call whose pack or index key already existed: another
        writer's identical pack, or one a collection is deleting (a pusher does not rely on
        those once the collection's counter moved)."""
        with self._lock:
            found, self._found = self._found, []
        return found

    def abort(self) -> None:
        """Drop buffered objects that were never flushed (packs already sealed still land:
        they are complete, and unreferenced objects are harmless)."""
        with self._lock:
            self._builders.clear()
            writes, self._writes = self._writes, []
        for w in writes:
            with contextlib.suppress(Exception):  # the caller reports the original error
                w.result()

    def close(self) -> None:
        """Wait for the writers to finish the packs already sealed, and stop them."""
        self._writer.shutdown(wait=True)
