"""Random access to a stored file: a seekable raw file over its chunks.

A stored file is a list of ``(chunk id, length)`` (its manifest; a file up to 1 MiB is one chunk),
so the offset of every chunk is a cumulative sum. A read of ``[pos, pos + n)`` finds its first
chunk by bisection and fetches only the chunks covering the range, each verified against its id:
the chunks of one pack that lie close together come in one ranged read (one request on S3), and
a small LRU of decoded chunks makes many small reads (a parquet footer, then its columns) cost
one fetch per chunk. ``ensure``, when given, is called with the covering chunks first: a partial
clone fetches the missing ones from its promisor remote there.

Used by ``Repository.open_file``, the read-only handles of ``dsrepo.open`` and the fsspec
filesystem (:mod:`dsrepo.fs`).
"""

from __future__ import annotations

import bisect
import io
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

from dsrepo.objects.errors import CorruptObject
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.locindex import Location
from dsrepo.objects.model import ObjectType, TreeEntry
from dsrepo.objects.store import FileRef, ObjectStore

Ensure = Callable[[Sequence[ObjectId]], object]
"""Called with the chunks a read needs before they are read (a partial clone fetches them)."""

MAX_GAP = 64 << 10
"""Chunks of one pack at most this far apart are fetched in one ranged read."""
MAX_SPAN = 16 << 20
"""...as long as that read stays under this size."""


def chunk_list(store: ObjectStore, entry: TreeEntry | FileRef) -> list[tuple[ObjectId, int]]:
    """A file's ``(chunk id, length)`` list, checked against the entry (its manifest must
    describe the entry's content id and size, and its lengths must add up)."""
    content_id = entry.id if isinstance(entry, TreeEntry) else entry.content_id
    if entry.manifest is None:
        return [(content_id, entry.size)]
    manifest = store.get_manifest(entry.manifest)
    total = sum(length for _, length in manifest.chunks)
    if manifest.content_id != content_id or manifest.size != entry.size or total != entry.size:
        raise CorruptObject(
            f"manifest {entry.manifest.hex()} does not describe content {content_id.hex()}"
        )
    return list(manifest.chunks)


def read_chunks(
    store: ObjectStore, wanted: Sequence[tuple[ObjectId, int]]
) -> dict[ObjectId, bytes]:
    """The verified bytes of the chunks ``wanted`` (id, expected length): chunks of one pack
    lying within :data:`MAX_GAP` of each other come in one ranged read. An object that is not a
    chunk of that length raises CorruptObject; a missing one ObjectNotFound."""
    ids = list(dict.fromkeys(oid for oid, _ in wanted))
    expected = dict(wanted)
    out: dict[ObjectId, bytes] = {}
    locs = store.locate_many(ids)
    by_pack: dict[str, list[tuple[ObjectId, Location]]] = {}
    for oid, loc in locs.items():
        by_pack.setdefault(loc.pack, []).append((oid, loc))
    for pack, items in by_pack.items():
        items.sort(key=lambda item: item[1].offset)
        for group in _coalesce(items):
            lo = group[0][1].offset
            hi = max(loc.offset + loc.stored_size for _, loc in group)
            try:
                data = store.read_range(pack, lo, hi - lo) if len(group) > 1 else None
            except CorruptObject:  # the pack is gone (a collection moved its objects)
                data = None  # read one by one: each read re-locates its object
            for oid, loc in group:
                if data is None:
                    out[oid] = store.read_located(oid, loc)
                    continue
                stored = data[loc.offset - lo : loc.offset - lo + loc.stored_size]
                try:
                    out[oid] = store.unpack_located(oid, loc, stored)
                except CorruptObject:  # a stale location? read it alone (re-located once)
                    out[oid] = store.read_located(oid, loc)
    for oid in ids:
        if oid not in out:  # unflushed, or missing (get_raw says which)
            type_, raw = store.get_raw(oid)
            if type_ != ObjectType.CHUNK:
                raise CorruptObject(f"file content {oid.hex()} is a {type_.label}, not a chunk")
            out[oid] = raw
        elif locs.get(oid) is not None and locs[oid].type != ObjectType.CHUNK:
            raise CorruptObject(f"file content {oid.hex()} is a {locs[oid].type.label}")
        if len(out[oid]) != expected[oid]:
            raise CorruptObject(f"chunk {oid.hex()} has the wrong length for its file")
    return out


def _coalesce(
    items: list[tuple[ObjectId, Location]],
) -> list[list[tuple[ObjectId, Location]]]:
    groups: list[list[tuple[ObjectId, Location]]] = []
    hi = -1
    for oid, loc in items:
        end = loc.offset + loc.stored_size
        if groups and loc.offset - hi <= MAX_GAP and end - groups[-1][0][1].offset <= MAX_SPAN:
            groups[-1].append((oid, loc))
            hi = max(hi, end)
        else:
            groups.append([(oid, loc)])
            hi = end
    return groups


class FileReader(io.RawIOBase):
    """A seekable, read-only raw binary file over a stored file's chunks.

    ``pread(offset, size)`` reads at an offset without moving the position (thread-safe);
    ``read``/``readinto``/``seek``/``tell`` behave as for a file opened ``rb`` without buffering
    (wrap in :class:`io.BufferedReader` for small reads). ``cache_chunks`` decoded chunks are
    kept (least recently used first out).
    """

    def __init__(
        self,
        store: ObjectStore,
        entry: TreeEntry | FileRef,
        *,
        ensure: Ensure | None = None,
        cache_chunks: int = 8,
        name: str = "",
    ) -> None:
        super().__init__()
        self._store = store
        self._ensure = ensure
        self._chunks = chunk_list(store, entry)
        self._starts = [0, *itertools.accumulate(length for _, length in self._chunks)]
        self.size = entry.size
        self.name = name
        self._pos = 0
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_chunks = max(1, cache_chunks)
        self._lock = threading.Lock()
        self.chunks_fetched = 0
        """How many chunks were fetched from the store (cache misses), for tests and reports."""

    def __repr__(self) -> str:
        return f"<FileReader {self.name or '?'} size={self.size}>"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if pos < 0:
            raise OSError(22, f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        self._check_open()
        view = memoryview(b).cast("B")
        n = self._read_at(self._pos, len(view), view)
        self._pos += n
        return n

    def readall(self) -> bytes:
        self._check_open()
        data = self.pread(self._pos, max(0, self.size - self._pos))
        self._pos += len(data)
        return data

    def pread(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (fewer at the end of the file)."""
        self._check_open()
        size = max(0, min(size, self.size - offset))
        buf = bytearray(size)
        n = self._read_at(offset, size, memoryview(buf))
        del buf[n:]
        return bytes(buf)

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def _read_at(self, offset: int, size: int, out: memoryview) -> int:
        end = min(offset + size, self.size)
        if offset >= end:
            return 0
        first = bisect.bisect_right(self._starts, offset) - 1
        last = bisect.bisect_left(self._starts, end) - 1
        chunks = self._get(range(first, last + 1))
        written = 0
        for i, data in zip(range(first, last + 1), chunks, strict=True):
            lo = max(offset, self._starts[i]) - self._starts[i]
            hi = min(end, self._starts[i + 1]) - self._starts[i]
            out[written : written + hi - lo] = data[lo:hi]
            written += hi - lo
        return written

    def _get(self, indexes: range) -> list[bytes]:
        with self._lock:
            have = {i: self._cache[i] for i in indexes if i in self._cache}
            for i in have:
                self._cache.move_to_end(i)
        need = [self._chunks[i] for i in indexes if i not in have]
        if need:
            if self._ensure is not None:
                self._ensure([oid for oid, _ in need])
            fetched = read_chunks(self._store, need)
            with self._lock:
                self.chunks_fetched += len(fetched)
                for i in indexes:
                    if i not in have:
                        have[i] = fetched[self._chunks[i][0]]
                        self._cache[i] = have[i]
                        self._cache.move_to_end(i)
                while len(self._cache) > self._cache_chunks:
                    self._cache.popitem(last=False)
        return [have[i] for i in indexes]
