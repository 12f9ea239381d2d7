"""The object store: content-addressed objects in packs, over any storage backend.

Writes go to the write buffer (:mod:`dsrepo.objects.packwriter`: in-memory pack builders, one for
data chunks, one for metadata, written by background threads). ``flush`` makes them durable in the
order the format requires: pack bytes (put, fsync) → pack index → location index. Only after
``flush`` may a ref point at the new objects; a crash before leaves at worst an orphan pack without
an index, which readers ignore.

Every read re-hashes the object and raises :class:`CorruptObject` naming the object, its pack and
the record's offset. The location index is a cache: a lookup that misses, or a read through it
that fails verification, first re-derives the cache from the pack indexes
(:mod:`dsrepo.objects.indexsync`) and tries once more.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar, cast

from dsrepo.objects import batchread, indexsync, layout
from dsrepo.objects.chunking import RepoFormat
from dsrepo.objects.codec import ObjectCodec
from dsrepo.objects.errors import (
    AmbiguousId,
    CorruptObject,
    FormatError,
    ObjectError,
    ObjectNotFound,
    storage_refusals,
)
from dsrepo.objects.filewrite import FileRef, FileWriting
from dsrepo.objects.ids import ObjectId, hash_data, validate_prefix
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
)
from dsrepo.objects.objectcache import ObjectCache
from dsrepo.objects.pack import (
    RECORD_HEADER_SIZE,
    IndexEntry,
    PackClass,
    decode_index,
    iter_pack_records,
)
from dsrepo.objects.packwriter import DEFAULT_PACK_TARGET, PackWriter, WriteStats
from dsrepo.remotes.base import Backend
from dsrepo.remotes.errors import KeyNotFound
from dsrepo.remotes.mapped import MappedFile

__all__ = ["DEFAULT_PACK_TARGET", "FileRef", "ObjectStore", "WriteStats"]


T = TypeVar("T", Manifest, Tree, Commit, Tag)
MANIFEST_BUDGET = 16 << 20
"""A large file's chunks are read this many bytes at a time (:meth:`ObjectStore.read_chunks`)."""


class ObjectStore(FileWriting):
    """Objects in packs over ``backend``, located through ``index``."""

    def __init__(
        self,
        backend: Backend,
        index: LocationIndex,
        fmt: RepoFormat,
        *,
        pack_target: int = DEFAULT_PACK_TARGET,
        writers: int = 1,
    ) -> None:
        self.backend = backend
        self.index = index
        self.format = fmt
        self.params = fmt.chunker
        self.writer = PackWriter(backend, index, pack_target=pack_target, writers=writers)
        """The write buffer (a transfer tells it which pack names to refuse)."""
        self.stats: WriteStats = self.writer.stats
        self._cache = ObjectCache()
        self._codecs = threading.local()
        self._heal_lock = threading.Lock()
        self._healed: int | None = None
        self._rebuilt: int | None = None
        """The cache generation the last heal / rebuild left (each runs once per generation)."""

    def use_index(self, index: LocationIndex) -> LocationIndex:
        """Locate and record objects through ``index`` from now on (a forked child's own
        connection, :meth:`LocationIndex.reopened`); returns the index it replaces."""
        old, self.index = self.index, index
        self.writer.index = index
        return old

    @property
    def _codec(self) -> ObjectCodec:
        """This thread's codec: a zstd context must not serve two threads at once (it returns
        wrong bytes), and copies verify on several threads."""
        codec: ObjectCodec | None = getattr(self._codecs, "codec", None)
        if codec is None:
            codec = self._codecs.codec = ObjectCodec()
        return codec

    @property
    def pack_target(self) -> int:
        """Size at which an open pack is sealed and handed to a writer (settable)."""
        return self.writer.pack_target

    @pack_target.setter
    def pack_target(self, value: int) -> None:
        self.writer.pack_target = value

    # ------------------------------------------------------------ set-up

    @staticmethod
    def initialize(backend: Backend, fmt: RepoFormat) -> None:
        """Write the format marker into an empty location (refuses one holding something else)."""
        with storage_refusals(f"{backend.describe()}/{layout.FORMAT_KEY}"):
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
        indexsync.sync(self.backend, self.index)

    def _heal(self) -> None:
        """A lookup missed: bring the location cache in step with the pack indexes (rows deleted
        from it come back), once per store, and once more whenever the cache lost its content."""
        with self._heal_lock:
            if self._healed != self.index.generation:
                indexsync.heal(self.backend, self.index)
                self._healed = self.index.generation

    def _lookup(self, oid: ObjectId) -> Location:
        """Where a flushed object lies; only a miss that survives :meth:`_heal` is ObjectNotFound."""
        loc = self.index.lookup(oid)
        if loc is None:
            self._heal()
            loc = self.index.lookup(oid)
            if loc is None:
                raise ObjectNotFound(f"object {oid.hex()} not found")
        return loc

    def _relocate(self, oid: ObjectId, loc: Location) -> Location | None:
        """A read through the cached ``loc`` failed: re-derive its pack's rows from the pack's
        index and look again. The corrected location, or None if the cache was right (then the
        object is damaged for real). ObjectNotFound if no pack holds it after all."""
        try:
            indexsync.refresh(self.backend, self.index, loc.pack, oid)
        except ObjectError:  # the pack's index is damaged too: the read's error says enough
            return None
        fresh = self.index.lookup(oid)
        if fresh is None:  # the cache named a pack that does not hold it: damage beyond a pack
            with self._heal_lock:
                if self._rebuilt != self.index.generation:
                    indexsync.rebuild(self.backend, self.index)
                    self._rebuilt = self.index.generation
            fresh = self._lookup(oid)
        return None if fresh == loc else fresh

    # ------------------------------------------------------------ writing

    def has(self, oid: bytes) -> bool:
        return self.writer.contains(oid) or self.index.contains(oid)

    def is_empty(self) -> bool:
        """No object is stored (then every id is missing: a caller may skip asking)."""
        return self.writer.empty() and self.index.is_empty()

    def missing(self, oids: Iterable[ObjectId]) -> set[ObjectId]:
        """The subset of ``oids`` not stored (one index query for the whole batch)."""
        # the index returns the very objects passed in: no set rebuilt to retype them
        return cast(set[ObjectId], self.index.missing(self.writer.not_buffered(oids)))

    def _append(
        self,
        type_: ObjectType,
        oid: ObjectId,
        raw: bytes | memoryview,
        compress: bool | None = None,
    ) -> int:
        """Buffer an object; returns its stored size (0 if it was already buffered)."""
        pack_class = PackClass.for_type(type_)
        if pack_class == PackClass.META:
            compress = True
        stored, flags = self._codec.compress(raw, compress)
        self.writer.add(oid, type_, stored, len(raw), flags)
        return len(stored)

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

    def put_stored(
        self, oid: ObjectId, type_: ObjectType, stored: bytes, raw_size: int, flags: int, where: str
    ) -> None:
        """Store an object received in its stored (possibly compressed) form, after verifying it:
        it must decompress to ``raw_size`` bytes that hash to ``oid`` (and decode, if structured).
        Raises CorruptObject naming the object and ``where`` it came from."""
        self.verify_stored(oid, type_, stored, flags, raw_size, where)
        if not self.has(oid):
            self.writer.add(oid, type_, stored, raw_size, flags)

    def verify_stored(
        self, oid: ObjectId, type_: ObjectType, stored: bytes, flags: int, raw_size: int, where: str
    ) -> None:
        """Check an object in its stored form: it decompresses to ``raw_size`` bytes that hash to
        ``oid`` and, if structured, decode canonically. Raises CorruptObject naming ``where``."""
        self._codec.verify(oid, type_, stored, flags, raw_size, where)

    def verify_pack(
        self,
        name: str,
        pack_class: PackClass,
        entries: list[IndexEntry],
        data: bytes | MappedFile,
        where: str,
    ) -> bytes:
        """Check a whole pack: every object against its id, every record against ``entries``,
        and ``entries`` against ``name``. Returns the pack's index bytes."""
        return self._codec.verify_pack(name, pack_class, entries, data, where)

    def adopt_pack(
        self,
        name: str,
        pack_class: PackClass,
        entries: list[IndexEntry],
        data: bytes | MappedFile,
        where: str,
    ) -> None:
        """Store a whole pack received from elsewhere as is, after verifying every object in it
        (and that its records agree with ``entries``). Its index is re-encoded from ``entries``,
        which reproduces ``name``; a mismatch means the index was not the pack's. Like packs
        built here, it is written by the background writers and durable after :meth:`flush`."""
        index_bytes = self.verify_pack(name, pack_class, entries, data, where)
        self.writer.add_pack(name, pack_class, entries, data, index_bytes)

    def read_stored(self, oid: ObjectId) -> tuple[Location, bytes]:
        """An object's location and stored bytes, verified (for copying it elsewhere as is)."""
        loc = self._lookup(oid)
        try:
            return loc, self._read_stored_at(oid, loc)[0]
        except CorruptObject:
            fresh = self._relocate(oid, loc)
            if fresh is None:
                raise
        return fresh, self._read_stored_at(oid, fresh)[0]

    def put_tree(self, entries: Iterable[TreeEntry]) -> ObjectId:
        root, shards = build_tree(list(entries))
        for shard in shards:
            self.put(shard)
        return self.put(root)

    def flush(self) -> list[str]:
        """Make every buffered object durable: seal the open packs, then wait until every pack
        and its index are written (fsync'd) and recorded in the location index. Returns the
        names of the packs written since the last flush."""
        return self.writer.flush()

    def abort(self) -> None:
        """Drop buffered objects that were never flushed (packs already sealed still land:
        they are complete, and unreferenced objects are harmless)."""
        self.writer.abort()

    # ------------------------------------------------------------ reading

    def locate(self, oid: bytes) -> Location | None:
        return self.index.lookup(oid)

    def locate_many(self, oids: Sequence[ObjectId]) -> dict[ObjectId, Location]:
        """Locations of the flushed objects among ``oids`` (one query per 500 ids)."""
        found = self.index.lookup_many(oids)
        absent = [o for o in oids if o not in found]
        if absent and self.writer.not_buffered(absent):
            self._heal()
            found.update(self.index.lookup_many(absent))
        return {ObjectId(o): loc for o, loc in found.items()}

    def ids_of_type(self, type_: ObjectType) -> Iterator[ObjectId]:
        """The flushed objects of one type, from the location index: only the packs of that
        type's class are listed (manifests, trees, commits, tags: never the many chunks)."""
        for oid, loc in self.index.iter_objects(PackClass.for_type(type_)):
            if loc.type == type_:
                yield oid

    def pack_names(self) -> set[str]:
        return self.index.pack_names()

    def pack_objects(self, name: str) -> list[tuple[ObjectId, Location]]:
        """The objects of one pack, in pack order."""
        return self.index.pack_objects(name)

    def read_pack(self, name: str) -> tuple[PackClass, list[IndexEntry], bytes]:
        """A whole pack and its decoded index, unverified (:meth:`adopt_pack` verifies)."""
        try:
            pack_class, entries = decode_index(self.backend.get(layout.index_key(name)), name)
            return pack_class, entries, self.backend.get(layout.pack_key(name))
        except KeyNotFound:
            raise CorruptObject(f"pack {name} or its index is missing") from None

    def pack_records(self, name: str) -> Iterator[tuple[IndexEntry, bytes]]:
        """A pack's records in pack order, each header checked against the pack's own index (a
        damaged one raises CorruptObject naming the pack and offset); payloads not verified
        (:meth:`put_stored` verifies them)."""
        pack_class, entries, data = self.read_pack(name)
        return iter_pack_records(data, name, entries, pack_class)

    def read_range(self, pack: str, offset: int = 0, length: int | None = None) -> bytes:
        """Raw bytes of a pack (records, unverified: :meth:`put_stored` verifies them)."""
        try:
            return self.backend.get(layout.pack_key(pack), offset, length)
        except KeyNotFound:
            raise CorruptObject(f"pack {pack} is missing") from None

    def object_type(self, oid: ObjectId) -> ObjectType:
        return self._entry(oid).type

    def object_size(self, oid: ObjectId) -> int:
        return self._entry(oid).raw_size

    def _entry(self, oid: ObjectId) -> IndexEntry | Location:
        return self.writer.entry(oid) or self._lookup(oid)

    def get_raw(self, oid: ObjectId) -> tuple[ObjectType, bytes]:
        """An object's type and verified bytes."""
        pending = self.writer.pending(oid)
        if pending is not None:
            entry, stored = pending
            return entry.type, self._codec.unpack(
                oid, entry.type, stored, entry.flags, entry.raw_size, "(unflushed)"
            )
        loc, raw = self._read_verified(oid, self._lookup(oid))
        return loc.type, raw

    def read_located(self, oid: ObjectId, loc: Location) -> bytes:
        """The verified bytes of ``oid`` found at ``loc`` (re-located once if they fail)."""
        return self._read_verified(oid, loc)[1]

    def _read_verified(self, oid: ObjectId, loc: Location) -> tuple[Location, bytes]:
        try:
            return loc, self._read_stored_at(oid, loc)[1]
        except CorruptObject:
            fresh = self._relocate(oid, loc)
            if fresh is None:
                raise
        return fresh, self._read_stored_at(oid, fresh)[1]

    def verified_location(self, oid: ObjectId, loc: Location) -> Location:
        """Where the pack indexes say ``oid`` lies, for a cached ``loc`` that disagrees with what
        the caller expected (its type or size): the cache is corrected on the way."""
        return self._relocate(oid, loc) or loc

    def _read_stored_at(self, oid: ObjectId, loc: Location) -> tuple[bytes, bytes]:
        """(stored, raw) bytes of ``oid`` at ``loc``, verified."""
        try:
            stored = self.backend.get(layout.pack_key(loc.pack), loc.offset, loc.stored_size)
        except KeyNotFound:
            raise CorruptObject(f"object {oid.hex()}: pack {loc.pack} is missing") from None
        return stored, self.unpack_located(oid, loc, stored)

    def unpack_located(self, oid: ObjectId, loc: Location, stored: bytes) -> bytes:
        """The raw bytes of ``stored``, read at ``loc``, checked against their size and id;
        CorruptObject names the object, the pack and the record's offset."""
        where = f"pack {loc.pack} at offset {loc.offset - RECORD_HEADER_SIZE}"
        return self._codec.unpack(oid, loc.type, stored, loc.flags, loc.raw_size, where)

    def get(self, oid: ObjectId) -> Structured:
        hit = self._cache.get(oid)
        if hit is not None:
            return hit
        type_, raw = self.get_raw(oid)
        if type_ == ObjectType.CHUNK:
            raise FormatError(f"object {oid.hex()} is a chunk, not a structured object")
        obj = decode(type_, raw)
        self._cache.put(oid, obj)
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
        yield from batchread.read_manifest(self, manifest, manifest_id, MANIFEST_BUDGET)

    def read_small(
        self, entries: Sequence[TreeEntry], budget: int = 32 << 20
    ) -> Iterator[tuple[TreeEntry, bytes]]:
        """The verified content of single-chunk entries (files without a manifest, symlinks), in
        order, read in batches of about ``budget`` bytes: one location query per 500 ids and
        coalesced range reads per pack instead of an open/seek/read per file."""
        return batchread.read_small(self, entries, budget)

    def read_all(self, entry: TreeEntry | FileRef) -> bytes:
        return b"".join(self.read_chunks(entry))

    def resolve_prefix(self, prefix: str) -> ObjectId:
        """The one id (flushed or not) starting with ``prefix``; AmbiguousId / ObjectNotFound."""
        validate_prefix(prefix)
        found = self.writer.matching(prefix)
        try:
            found.add(self.index.resolve_prefix(prefix))
        except ObjectNotFound:
            self._heal()
            with contextlib.suppress(ObjectNotFound):
                found.add(self.index.resolve_prefix(prefix))
        if len(found) > 1:
            shown = ", ".join(sorted(o.hex()[:12] for o in found)[:10])
            raise AmbiguousId(f"object id prefix {prefix!r} is ambiguous: {shown}")
        if not found:
            raise ObjectNotFound(f"no object matches {prefix!r}")
        return found.pop()

    def close(self) -> None:
        self.writer.close()
        self.index.close()
