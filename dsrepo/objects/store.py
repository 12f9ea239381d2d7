"""The object store: content-addressed objects in packs, over any storage backend.

Writes go to in-memory pack builders (one for data chunks, one for metadata). ``flush`` makes them
durable in the order the format requires: pack bytes (put, fsync) → pack index → location index.
Only after ``flush`` may a ref point at the new objects; a crash before leaves at worst an orphan
pack without an index, which readers ignore.

Every read re-hashes the object and raises :class:`CorruptObject` naming the object and its pack.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

import zstandard
from blake3 import blake3

from dsrepo.objects import layout
from dsrepo.objects.chunking import RepoFormat
from dsrepo.objects.errors import (
    CorruptObject,
    FileChanged,
    FileReadError,
    FormatError,
    ObjectNotFound,
)
from dsrepo.objects.ids import ObjectId, hash_data
from dsrepo.objects.locindex import Location, LocationIndex
from dsrepo.objects.model import (
    Commit,
    Manifest,
    ObjectType,
    Structured,
    Tag,
    Tree,
    TreeEntry,
    build_tree,
    decode,
    encode,
    hash_object,
    object_id,
)
from dsrepo.objects.pack import FLAG_ZSTD, IndexEntry, PackBuilder, PackClass, decode_index
from dsrepo.remotes.base import Backend
from dsrepo.remotes.errors import KeyNotFound

DEFAULT_PACK_TARGET = 32 * 1024 * 1024
_BATCH_BYTES = 8 * 1024 * 1024
_SAMPLE = 4096
_CACHE_ENTRIES = 8192

T = TypeVar("T", Manifest, Tree, Commit, Tag)


@dataclass(frozen=True, slots=True)
class FileRef:
    """How a stored file is found again: its content id, size, and manifest (if chunked)."""

    content_id: ObjectId
    size: int
    manifest: ObjectId | None = None


@dataclass(frozen=True, slots=True)
class WriteStats:
    objects_written: int = 0
    bytes_written: int = 0
    packs_written: int = 0


class ObjectStore:
    """Objects in packs over ``backend``, located through ``index``."""

    def __init__(
        self,
        backend: Backend,
        index: LocationIndex,
        fmt: RepoFormat,
        *,
        pack_target: int = DEFAULT_PACK_TARGET,
    ) -> None:
        self.backend = backend
        self.index = index
        self.format = fmt
        self.params = fmt.chunker
        self.pack_target = pack_target
        self._builders: dict[PackClass, PackBuilder] = {}
        self._lock = threading.RLock()
        self._cache: OrderedDict[ObjectId, Structured] = OrderedDict()
        self._zc = zstandard.ZstdCompressor(level=1)
        self._zd = zstandard.ZstdDecompressor()
        self.stats = WriteStats()

    # ------------------------------------------------------------ set-up

    @staticmethod
    def initialize(backend: Backend, fmt: RepoFormat) -> None:
        """Write the format marker into an empty location (refuses one holding something else)."""
        created = backend.put_if_absent(layout.FORMAT_KEY, fmt.to_bytes())
        if not created:
            existing = RepoFormat.from_bytes(backend.get(layout.FORMAT_KEY), backend.describe())
            if existing != fmt:
                raise FormatError(
                    f"{backend.describe()} already holds a repository in another format"
                )

    @staticmethod
    def read_format(backend: Backend) -> RepoFormat:
        try:
            data = backend.get(layout.FORMAT_KEY)
        except KeyNotFound:
            raise FormatError(
                f"{backend.describe()} is not a dsrepo store (no format marker)"
            ) from None
        return RepoFormat.from_bytes(data, backend.describe())

    def sync_index(self) -> None:
        """Make the location index match the packs the backend holds."""
        present: set[str] = set()
        for info in self.backend.iter_keys(layout.PACKS_PREFIX):
            name = layout.pack_name_from_index_key(info.key)
            if name is not None:
                present.add(name)
        # Removals first: removing a pack also forgets packs whose objects it shadowed, which
        # the additions below then re-add.
        for name in self.index.pack_names() - present:
            self.index.remove_pack(name)
        for name in sorted(present - self.index.pack_names()):
            pack_class, entries = decode_index(self.backend.get(layout.index_key(name)), name)
            self.index.add_pack(name, pack_class, entries)

    # ------------------------------------------------------------ writing

    def has(self, oid: bytes) -> bool:
        with self._lock:
            for b in self._builders.values():
                if oid in b.entries:
                    return True
        return self.index.contains(oid)

    def _compress(self, raw: bytes, always_try: bool) -> tuple[bytes, int]:
        """zstd level 1 only when it shrinks the object; data is sampled first (random bytes,
        JPEG, parquet do not compress, and trying costs as much as hashing)."""
        if len(raw) < 64:
            return raw, 0
        if not always_try and len(raw) > 2 * _SAMPLE:
            sample = raw[:_SAMPLE]
            if len(self._zc.compress(sample)) > 0.9 * len(sample):
                return raw, 0
        packed = self._zc.compress(raw)
        if len(packed) < len(raw):
            return packed, FLAG_ZSTD
        return raw, 0

    def _append(self, type_: ObjectType, oid: ObjectId, raw: bytes) -> None:
        pack_class = PackClass.for_type(type_)
        stored, flags = self._compress(raw, always_try=pack_class == PackClass.META)
        with self._lock:
            builder = self._builders.get(pack_class)
            if builder is None:
                builder = self._builders[pack_class] = PackBuilder(pack_class)
            if oid in builder.entries:
                return
            builder.add(oid, type_, stored, len(raw), flags)
            s = self.stats
            self.stats = WriteStats(
                s.objects_written + 1, s.bytes_written + len(stored), s.packs_written
            )
            if builder.size >= self.pack_target:
                self._finish(pack_class)

    def put_chunk(self, data: bytes, oid: ObjectId | None = None) -> ObjectId:
        """Store raw bytes as a chunk (no-op when present). ``oid`` skips re-hashing if known."""
        if oid is None:
            oid = hash_data(data)
        if not self.has(oid):
            self._append(ObjectType.CHUNK, oid, data)
        return oid

    def put(self, obj: Structured) -> ObjectId:
        raw = encode(obj)
        oid = hash_object(obj.type, raw)
        if not self.has(oid):
            self._append(obj.type, oid, raw)
        return oid

    def put_raw(self, type_: ObjectType, raw: bytes, expected: ObjectId) -> None:
        """Store bytes received from elsewhere after checking them against their id."""
        actual = hash_object(type_, raw)
        if actual != expected:
            raise CorruptObject(
                f"object {expected.hex()} received with wrong content (hashes to {actual.hex()})"
            )
        if type_ != ObjectType.CHUNK:
            decode(type_, raw)
        if not self.has(expected):
            self._append(type_, expected, raw)

    def put_tree(self, entries: Iterable[TreeEntry]) -> ObjectId:
        root, shards = build_tree(list(entries))
        for shard in shards:
            self.put(shard)
        return self.put(root)

    def write_bytes(self, data: bytes) -> FileRef:
        """Store in-memory content as a file would be stored (chunked when large)."""
        if len(data) <= self.params.small_file_threshold:
            return FileRef(self.put_chunk(data), len(data))
        return self._write_chunked(_BytesReader(data), "<bytes>", None)  # type: ignore[arg-type]

    def write_file(self, path: str) -> FileRef:
        """Store a file's content. Raises FileReadError, or FileChanged if it changed meanwhile
        (objects written for the torn read are harmless orphans: they are named by what was read)."""
        try:
            f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below
        except OSError as exc:
            raise FileReadError(f"cannot read {path}: {exc.strerror or exc}") from None
        with f:
            try:
                before = os.fstat(f.fileno())
                if before.st_size <= self.params.small_file_threshold:
                    data = f.readall()
                    self._check_unchanged(path, f, before, len(data))
                    return FileRef(self.put_chunk(data), len(data))
                return self._write_chunked(f, path, before)
            except OSError as exc:
                raise FileReadError(f"cannot read {path}: {exc.strerror or exc}") from None

    @staticmethod
    def _check_unchanged(path: str, f: BinaryIO, before: os.stat_result, nread: int) -> None:
        after = os.fstat(f.fileno())
        if (
            nread != before.st_size
            or after.st_size != before.st_size
            or after.st_mtime_ns != before.st_mtime_ns
            or after.st_ctime_ns != before.st_ctime_ns
        ):
            raise FileChanged(f"{path} changed while it was being read; try again")

    def _write_chunked(self, f: BinaryIO, path: str, before: os.stat_result | None) -> FileRef:
        """Cut with FastCDC and store the chunks; hashing runs on a second thread, one batch behind
        the cutter (pyfastcdc and BLAKE3 release the GIL)."""
        whole = blake3()
        chunks: list[tuple[ObjectId, int]] = []
        total = 0

        def hash_batch(batch: list[bytes]) -> list[ObjectId]:
            ids = []
            for b in batch:
                whole.update(b)
                ids.append(ObjectId(blake3(b).digest()))
            return ids

        def store_batch(batch: list[bytes], ids: list[ObjectId]) -> None:
            for b, oid in zip(batch, ids, strict=True):
                chunks.append((oid, len(b)))
                if not self.has(oid):
                    self._append(ObjectType.CHUNK, oid, b)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsrepo-hash") as pool:
            in_flight: tuple[list[bytes], Future[list[ObjectId]]] | None = None
            batch: list[bytes] = []
            batch_bytes = 0
            for c in self.params.cutter().cut_stream(f):
                b = bytes(c.data)
                batch.append(b)
                batch_bytes += len(b)
                total += len(b)
                if batch_bytes >= _BATCH_BYTES:
                    fut = pool.submit(hash_batch, batch)
                    if in_flight is not None:
                        store_batch(in_flight[0], in_flight[1].result())
                    in_flight = (batch, fut)
                    batch, batch_bytes = [], 0
            if in_flight is not None:
                store_batch(in_flight[0], in_flight[1].result())
            if batch:
                store_batch(batch, hash_batch(batch))
        if before is not None:
            self._check_unchanged(path, f, before, total)
        manifest = Manifest(ObjectId(whole.digest()), total, tuple(chunks))
        return FileRef(manifest.content_id, total, self.put(manifest))

    def flush(self) -> list[str]:
        """Make every buffered object durable; returns the names of the packs written."""
        with self._lock:
            return [name for pc in list(self._builders) if (name := self._finish(pc))]

    def _finish(self, pack_class: PackClass) -> str | None:
        builder = self._builders.pop(pack_class, None)
        if builder is None or not builder.entries:
            return None
        name, pack_bytes, index_bytes, entries = builder.finish()
        self.backend.put_if_absent(layout.pack_key(name), pack_bytes)
        self.backend.put_if_absent(layout.index_key(name), index_bytes)
        self.index.add_pack(name, pack_class, entries)
        s = self.stats
        self.stats = WriteStats(s.objects_written, s.bytes_written, s.packs_written + 1)
        return name

    def abort(self) -> None:
        """Drop buffered objects that were never flushed."""
        with self._lock:
            self._builders.clear()

    # ------------------------------------------------------------ reading

    def locate(self, oid: bytes) -> Location | None:
        return self.index.lookup(oid)

    def object_type(self, oid: ObjectId) -> ObjectType:
        with self._lock:
            for b in self._builders.values():
                e = b.entries.get(oid)
                if e is not None:
                    return e.type
        loc = self.index.lookup(oid)
        if loc is None:
            raise ObjectNotFound(f"object {oid.hex()} not found")
        return loc.type

    def object_size(self, oid: ObjectId) -> int:
        with self._lock:
            for b in self._builders.values():
                e = b.entries.get(oid)
                if e is not None:
                    return e.raw_size
        loc = self.index.lookup(oid)
        if loc is None:
            raise ObjectNotFound(f"object {oid.hex()} not found")
        return loc.raw_size

    def get_raw(self, oid: ObjectId) -> tuple[ObjectType, bytes]:
        """An object's type and verified bytes."""
        pending = self._pending(oid)
        if pending is not None:
            entry, stored = pending
            return entry.type, self._unpack(
                oid, entry.type, stored, entry.flags, entry.raw_size, "(unflushed)"
            )
        loc = self.index.lookup(oid)
        if loc is None:
            raise ObjectNotFound(f"object {oid.hex()} not found")
        return loc.type, self.read_located(oid, loc)

    def read_located(self, oid: ObjectId, loc: Location) -> bytes:
        try:
            stored = self.backend.get(layout.pack_key(loc.pack), loc.offset, loc.stored_size)
        except KeyNotFound:
            raise CorruptObject(f"object {oid.hex()}: pack {loc.pack} is missing") from None
        return self._unpack(oid, loc.type, stored, loc.flags, loc.raw_size, f"pack {loc.pack}")

    def _pending(self, oid: ObjectId) -> tuple[IndexEntry, bytes] | None:
        with self._lock:
            for b in self._builders.values():
                e = b.entries.get(oid)
                if e is not None:
                    return e, b.stored_bytes(e)
        return None

    def _unpack(
        self, oid: ObjectId, type_: ObjectType, stored: bytes, flags: int, raw_size: int, where: str
    ) -> bytes:
        def corrupt(why: str) -> CorruptObject:
            return CorruptObject(f"corrupt {type_.label} {oid.hex()} in {where}: {why}")

        if flags & FLAG_ZSTD:
            try:
                raw = self._zd.decompress(stored, max_output_size=raw_size)
            except zstandard.ZstdError:
                raise corrupt("does not decompress") from None
        else:
            raw = stored
        if len(raw) != raw_size:
            raise corrupt(f"{len(raw)} bytes instead of {raw_size}")
        if hash_object(type_, raw) != oid:
            raise corrupt("content does not match its id")
        return raw

    def get(self, oid: ObjectId) -> Structured:
        with self._lock:
            hit = self._cache.get(oid)
            if hit is not None:
                self._cache.move_to_end(oid)
                return hit
        type_, raw = self.get_raw(oid)
        if type_ == ObjectType.CHUNK:
            raise FormatError(f"object {oid.hex()} is a chunk, not a structured object")
        obj = decode(type_, raw)
        with self._lock:
            self._cache[oid] = obj
            if len(self._cache) > _CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return obj

    def _get_typed(self, oid: ObjectId, cls: type[T]) -> T:
        obj = self.get(oid)
        if not isinstance(obj, cls):
            raise FormatError(
                f"object {oid.hex()} is a {obj.type.label}, not a {cls.__name__.lower()}"
            )
        return obj

    def get_commit(self, oid: ObjectId) -> Commit:
        return self._get_typed(oid, Commit)

    def get_tag(self, oid: ObjectId) -> Tag:
        return self._get_typed(oid, Tag)

    def get_manifest(self, oid: ObjectId) -> Manifest:
        return self._get_typed(oid, Manifest)

    def get_tree(self, oid: ObjectId) -> Tree:
        return self._get_typed(oid, Tree)

    def tree_entries(self, oid: ObjectId) -> tuple[TreeEntry, ...]:
        """All entries of a tree, following its shards."""
        tree = self.get_tree(oid)
        if not tree.shards:
            return tree.entries
        out: list[TreeEntry] = []
        for ref in tree.shards:
            shard = self.get_tree(ref.id)
            if (
                shard.shards
                or len(shard.entries) != ref.count
                or shard.entries[0].name != ref.first_name
            ):
                raise FormatError(
                    f"malformed tree {oid.hex()}: shard {ref.id.hex()} does not match"
                )
            if out and out[-1].name.encode() >= shard.entries[0].name.encode():
                raise FormatError(f"malformed tree {oid.hex()}: shards overlap")
            out.extend(shard.entries)
        return tuple(out)

    def read_chunks(self, entry: TreeEntry | FileRef) -> Iterator[bytes]:
        """The verified content of a file entry, chunk by chunk."""
        content_id = entry.id if isinstance(entry, TreeEntry) else entry.content_id
        manifest_id = entry.manifest
        size = entry.size
        if manifest_id is None:
            type_, raw = self.get_raw(content_id)
            if type_ != ObjectType.CHUNK or len(raw) != size:
                raise CorruptObject(f"file content {content_id.hex()} does not match its entry")
            yield raw
            return
        manifest = self.get_manifest(manifest_id)
        if manifest.content_id != content_id or manifest.size != size:
            raise CorruptObject(
                f"manifest {manifest_id.hex()} does not describe content {content_id.hex()}"
            )
        for cid, length in manifest.chunks:
            type_, raw = self.get_raw(cid)
            if type_ != ObjectType.CHUNK or len(raw) != length:
                raise CorruptObject(f"chunk {cid.hex()} of manifest {manifest_id.hex()} is wrong")
            yield raw

    def read_all(self, entry: TreeEntry | FileRef) -> bytes:
        return b"".join(self.read_chunks(entry))

    def resolve_prefix(self, prefix: str) -> ObjectId:
        with self._lock:
            pending = [
                o for b in self._builders.values() for o in b.entries if o.hex().startswith(prefix)
            ]
        if len(pending) == 1:
            return pending[0]
        return self.index.resolve_prefix(prefix)

    def close(self) -> None:
        self.index.close()


class _BytesReader:
    """A readinto() adapter over bytes for pyfastcdc's stream cutter."""

    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def readinto(self, buf: memoryview) -> int:
        n = min(len(buf), len(self._view) - self._pos)
        buf[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n


def object_ids(objs: Iterable[Structured]) -> list[ObjectId]:
    return [object_id(o) for o in objs]


Reader = Callable[[ObjectId], tuple[ObjectType, bytes]]
