"""Pack files and pack indexes: the byte formats (see docs/format.md).

A pack is a header followed by records; each record repeats its id, type and lengths so a pack can
be re-indexed or checked on its own. Its index lists (id, offset, lengths, type, flags) sorted by
id and ends with a BLAKE3 checksum of itself, so one object can be read with one ranged request.

A pack's name is the BLAKE3 of its index's entry table, not of the pack bytes: the table fixes
every object's id, place and size, so two packs with one name hold the same objects in the same
places (each verified by its own id when read), and naming costs no extra pass over the data.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from blake3 import blake3

from dsrepo.objects.errors import CorruptObject, FormatError
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.model import ObjectType

PACK_MAGIC = b"DSRPACK\0"
INDEX_MAGIC = b"DSRIDX\0\0"
PACK_VERSION = 1

FLAG_ZSTD = 1

_PACK_HEADER = struct.Struct("<8sHB5x")  # magic, version, class
_RECORD = struct.Struct("<32sBBxxII")  # id, type, flags, stored length, raw length
_INDEX_HEADER = struct.Struct("<8sHB5xQ32s")  # magic, version, class, count, pack digest
_INDEX_ENTRY = struct.Struct("<32sQIIBBxx")  # id, payload offset, stored, raw, type, flags
PACK_HEADER_SIZE = _PACK_HEADER.size
RECORD_HEADER_SIZE = _RECORD.size
MAX_OBJECT_SIZE = 2**32 - 1


class PackClass(enum.IntEnum):
    """Data packs hold chunks; meta packs hold manifests, trees, commits and tags."""

    DATA = 0
    META = 1

    @classmethod
    def for_type(cls, t: ObjectType) -> PackClass:
        return cls.DATA if t == ObjectType.CHUNK else cls.META


@dataclass(frozen=True, slots=True)
class IndexEntry:
    id: ObjectId
    offset: int
    stored_size: int
    raw_size: int
    type: ObjectType
    flags: int


class PackBuilder:
    """Accumulates records of one pack in memory; ``finish`` yields the pack and index bytes."""

    def __init__(self, pack_class: PackClass) -> None:
        self.pack_class = pack_class
        self._parts: list[bytes | memoryview] = [
            _PACK_HEADER.pack(PACK_MAGIC, PACK_VERSION, int(pack_class))
        ]
        self._payloads: dict[ObjectId, bytes | memoryview] = {}
        self._size = PACK_HEADER_SIZE
        self.entries: dict[ObjectId, IndexEntry] = {}

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self.entries)

    def add(
        self,
        oid: ObjectId,
        type_: ObjectType,
        stored: bytes | memoryview,
        raw_size: int,
        flags: int,
    ) -> None:
        if oid in self.entries:
            return
        if len(stored) > MAX_OBJECT_SIZE or raw_size > MAX_OBJECT_SIZE:
            raise FormatError("object larger than 4 GiB cannot be packed")
        self._parts.append(_RECORD.pack(oid, int(type_), flags, len(stored), raw_size))
        offset = self._size + RECORD_HEADER_SIZE
        self._parts.append(stored)
        self._payloads[oid] = stored
        self._size = offset + len(stored)
        self.entries[oid] = IndexEntry(oid, offset, len(stored), raw_size, type_, flags)

    def stored_bytes(self, e: IndexEntry) -> bytes:
        return bytes(self._payloads[e.id])

    def finish(self) -> tuple[str, bytes, bytes, list[IndexEntry]]:
        """(pack name, pack bytes, index bytes, entries sorted by id)."""
        name, parts, index, entries = self.finish_parts()
        return name, b"".join(parts), index, entries

    def finish_parts(self) -> tuple[str, list[bytes | memoryview], bytes, list[IndexEntry]]:
        """Like :meth:`finish`, with the pack as the list of its pieces (no copy)."""
        entries = sorted(self.entries.values(), key=lambda e: e.id)
        name, index = encode_index(self.pack_class, entries)
        return name, self._parts, index, entries


def _entry_table(entries: list[IndexEntry]) -> bytes:
    return b"".join(
        _INDEX_ENTRY.pack(e.id, e.offset, e.stored_size, e.raw_size, int(e.type), e.flags)
        for e in entries
    )


def encode_index(pack_class: PackClass, entries: list[IndexEntry]) -> tuple[str, bytes]:
    """(pack name, index bytes) for ``entries`` sorted by id."""
    table = _entry_table(entries)
    digest = blake3(table).digest()
    header = _INDEX_HEADER.pack(INDEX_MAGIC, PACK_VERSION, int(pack_class), len(entries), digest)
    body = header + table
    return digest.hex(), body + blake3(body).digest()


def decode_index(data: bytes, name: str) -> tuple[PackClass, list[IndexEntry]]:
    """Parse and verify a pack index; ``name`` is the pack name it must describe."""
    where = f"index of pack {name}"
    if len(data) < _INDEX_HEADER.size + 32:
        raise CorruptObject(f"{where} is truncated")
    body, checksum = data[:-32], data[-32:]
    if blake3(body).digest() != checksum:
        raise CorruptObject(f"{where} fails its checksum")
    magic, version, cls, count, digest = _INDEX_HEADER.unpack_from(body)
    if magic != INDEX_MAGIC or version != PACK_VERSION:
        raise FormatError(f"{where}: unknown magic or version")
    if len(body) != _INDEX_HEADER.size + count * _INDEX_ENTRY.size:
        raise CorruptObject(f"{where} has a wrong length")
    try:
        pack_class = PackClass(cls)
    except ValueError:
        raise FormatError(f"{where}: unknown pack class {cls}") from None
    entries = []
    prev = b""
    for fields in _INDEX_ENTRY.iter_unpack(memoryview(body)[_INDEX_HEADER.size :]):
        oid, offset, stored, raw, type_, flags = fields
        if oid <= prev:
            raise CorruptObject(f"{where}: entries not sorted or duplicated")
        prev = oid
        try:
            t = ObjectType(type_)
        except ValueError:
            raise FormatError(f"{where}: unknown object type {type_}") from None
        entries.append(IndexEntry(ObjectId(bytes(oid)), offset, stored, raw, t, flags))
    if digest.hex() != name or blake3(body[_INDEX_HEADER.size :]).digest() != digest:
        raise CorruptObject(f"{where} describes another pack ({digest.hex()[:12]})")
    return pack_class, entries


def iter_pack_records(data: bytes, name: str) -> Iterator[tuple[IndexEntry, bytes]]:
    """Walk a whole pack's records (fsck and re-indexing); verifies framing, not hashes."""
    if len(data) < PACK_HEADER_SIZE:
        raise CorruptObject(f"pack {name} is truncated")
    magic, version, _cls = _PACK_HEADER.unpack_from(data)
    if magic != PACK_MAGIC or version != PACK_VERSION:
        raise FormatError(f"pack {name}: unknown magic or version")
    pos = PACK_HEADER_SIZE
    while pos < len(data):
        if pos + RECORD_HEADER_SIZE > len(data):
            raise CorruptObject(f"pack {name}: truncated record at offset {pos}")
        oid, type_, flags, stored, raw = _RECORD.unpack_from(data, pos)
        pos += RECORD_HEADER_SIZE
        if pos + stored > len(data):
            raise CorruptObject(f"pack {name}: truncated record at offset {pos}")
        try:
            t = ObjectType(type_)
        except ValueError:
            raise CorruptObject(f"pack {name}: unknown object type at offset {pos}") from None
        yield IndexEntry(ObjectId(oid), pos, stored, raw, t, flags), data[pos : pos + stored]
        pos += stored
