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
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple, TypeVar, overload

from blake3 import blake3

from dsrepo.objects.errors import CorruptObject, FormatError
from dsrepo.objects.ids import ObjectId
from dsrepo.objects.model import TYPE_BY_NUMBER, ObjectType

PACK_MAGIC = b"DSRPACK\0"
INDEX_MAGIC = b"DSRIDX\0\0"
PACK_VERSION = 1

FLAG_ZSTD = 1

_PACK_HEADER = struct.Struct("<8sHB5x")  # magic, version, class
_RECORD = struct.Struct("<32sBBHII")  # id, type, flags, zero, stored length, raw length
_INDEX_HEADER = struct.Struct("<8sHB5xQ32s")  # magic, version, class, count, pack digest
_INDEX_ENTRY = struct.Struct("<32sQIIBBxx")  # id, payload offset, stored, raw, type, flags
PACK_HEADER_SIZE = _PACK_HEADER.size
RECORD_HEADER_SIZE = _RECORD.size
MAX_OBJECT_SIZE = 2**32 - 1

Bytes = TypeVar("Bytes", bytes, memoryview)
"""A pack's bytes, or a view of them (records are then sliced without copying)."""


class PackClass(enum.IntEnum):
    """Data packs hold chunks; meta packs hold manifests, trees, commits and tags."""

    DATA = 0
    META = 1

    @classmethod
    def for_type(cls, t: ObjectType) -> PackClass:
        return cls.DATA if t == ObjectType.CHUNK else cls.META


class IndexEntry(NamedTuple):
    """One entry of a pack index (a tuple: a pack index decodes into tens of thousands, ~3x
    cheaper to build than a frozen dataclass)."""

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
        self._parts.append(_RECORD.pack(oid, int(type_), flags, 0, len(stored), raw_size))
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
    pack_class, table = decode_index_table(data, name)
    return pack_class, list(table)


def decode_index_table(data: bytes, name: str) -> tuple[PackClass, IndexTable]:
    """:func:`decode_index`, with the entries kept packed (35 bytes each, decoded when read):
    a collection holds every pack's entries of a million objects at once."""
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
    table = body[_INDEX_HEADER.size :]
    prev = b""
    for oid, _, _, _, type_, _ in _INDEX_ENTRY.iter_unpack(table):
        if oid <= prev:
            raise CorruptObject(f"{where}: entries not sorted or duplicated")
        prev = oid
        if type_ not in TYPE_BY_NUMBER:
            raise FormatError(f"{where}: unknown object type {type_}")
    if digest.hex() != name or blake3(table).digest() != digest:
        raise CorruptObject(f"{where} describes another pack ({digest.hex()[:12]})")
    return pack_class, IndexTable(table)


class IndexTable(Sequence[IndexEntry]):
    """A verified pack index's entries, sorted by id, kept as the index's records (52 bytes
    each; an IndexEntry is built when one is read)."""

    __slots__ = ("_table",)

    def __init__(self, table: bytes) -> None:
        self._table = table

    def __len__(self) -> int:
        return len(self._table) // _INDEX_ENTRY.size

    @overload
    def __getitem__(self, i: int) -> IndexEntry: ...

    @overload
    def __getitem__(self, i: slice) -> list[IndexEntry]: ...

    def __getitem__(self, i: int | slice) -> IndexEntry | list[IndexEntry]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("IndexTable index out of range")
        return _entry(_INDEX_ENTRY.unpack_from(self._table, i * _INDEX_ENTRY.size))

    def __iter__(self) -> Iterator[IndexEntry]:
        return map(_entry, _INDEX_ENTRY.iter_unpack(self._table))

    def ids(self) -> Iterator[ObjectId]:
        """The ids alone, in (sorted) order."""
        t, step = self._table, _INDEX_ENTRY.size
        return (ObjectId(t[k : k + 32]) for k in range(0, len(t), step))


def _entry(fields: tuple[bytes, int, int, int, int, int]) -> IndexEntry:
    oid, offset, stored, raw, type_, flags = fields
    return IndexEntry(ObjectId(oid), offset, stored, raw, TYPE_BY_NUMBER[type_], flags)


def check_pack_header(
    data: bytes | memoryview, name: str, pack_class: PackClass | None = None
) -> None:
    """The pack header: length, magic, version, and (if given) the class its index states."""
    if len(data) < PACK_HEADER_SIZE:
        raise CorruptObject(f"pack {name} is truncated")
    magic, version, cls = _PACK_HEADER.unpack_from(data)
    if magic != PACK_MAGIC or version != PACK_VERSION:
        raise FormatError(f"pack {name}: unknown magic or version")
    if pack_class is not None and cls != pack_class:
        raise CorruptObject(
            f"pack {name}: damaged header at offset 0: class {cls}, its index says {int(pack_class)}"
        )


def _damaged(name: str, start: int, why: str) -> CorruptObject:
    return CorruptObject(f"pack {name}: damaged record at offset {start}: {why}")


def record_payload(data: Bytes, name: str, entry: IndexEntry, base: int = 0) -> Bytes:
    """The payload of ``entry``'s record in ``data``, the pack's bytes from offset ``base`` on
    (the whole pack, or a window of it read to its end or to a record's), after checking that
    the record's header says what the index entry says (id, type, flags, zero field, lengths).
    Raises CorruptObject naming the pack and the record's offset; the payload is not hashed."""
    start = entry.offset - RECORD_HEADER_SIZE
    end = entry.offset + entry.stored_size
    if start < max(PACK_HEADER_SIZE, base) or end > base + len(data):
        raise _damaged(name, start, f"the index places object {entry.id.hex()} outside the pack")
    header = _RECORD.unpack_from(data, start - base)
    if header != (entry.id, int(entry.type), entry.flags, 0, entry.stored_size, entry.raw_size):
        raise _damaged(
            name, start, f"its header does not match the index entry of {entry.id.hex()}"
        )
    return data[entry.offset - base : end - base]


def unindexed_spans(data: bytes, entries: Iterable[IndexEntry]) -> list[tuple[int, int]]:
    """(offset, length) of every stretch of a pack's records that no index entry covers (bytes
    between or after the indexed records, or records whose extents overlap)."""
    spans = []
    expected = PACK_HEADER_SIZE
    for e in sorted(entries, key=lambda e: e.offset):
        start = e.offset - RECORD_HEADER_SIZE
        if start != expected:
            lo = min(start, expected)
            spans.append((lo, abs(start - expected)))
        expected = max(expected, e.offset + e.stored_size)
    if expected < len(data):
        spans.append((expected, len(data) - expected))
    return spans


def iter_pack_records(
    data: Bytes,
    name: str,
    entries: Iterable[IndexEntry] | None = None,
    pack_class: PackClass | None = None,
) -> Iterator[tuple[IndexEntry, Bytes]]:
    """Walk a whole pack's records in pack order; the payloads are not hashed (the caller
    verifies each object).

    With the pack's index ``entries`` every record header is checked against its entry and the
    records must be exactly the indexed ones: a damaged header, a record no entry describes or an
    entry without its record raises CorruptObject naming the pack and the offset. Without them
    only the framing is checked (truncation, unknown type, zero field): enough to re-index a
    pack, not to trust its headers (a flipped id still frames).
    """
    check_pack_header(data, name, pack_class)
    if entries is not None:
        yield from _iter_indexed(data, name, list(entries))
        return
    pos = PACK_HEADER_SIZE
    while pos < len(data):
        if pos + RECORD_HEADER_SIZE > len(data):
            raise CorruptObject(f"pack {name}: truncated record at offset {pos}")
        oid, type_, flags, zero, stored, raw = _RECORD.unpack_from(data, pos)
        start, pos = pos, pos + RECORD_HEADER_SIZE
        if pos + stored > len(data):
            raise CorruptObject(f"pack {name}: truncated record at offset {pos}")
        t = TYPE_BY_NUMBER.get(type_)
        if t is None:
            raise CorruptObject(f"pack {name}: unknown object type at offset {pos}")
        if zero:
            raise _damaged(name, start, "its zero field is not zero")
        yield IndexEntry(ObjectId(oid), pos, stored, raw, t, flags), data[pos : pos + stored]
        pos += stored


def _iter_indexed(
    data: Bytes, name: str, entries: list[IndexEntry]
) -> Iterator[tuple[IndexEntry, Bytes]]:
    by_offset = {e.offset: e for e in entries}
    walked: list[IndexEntry] = []  # distinct entries: each record starts past the one before
    pos = PACK_HEADER_SIZE
    while pos < len(data):
        e = by_offset.get(pos + RECORD_HEADER_SIZE)
        if e is None:
            raise _damaged(name, pos, "no entry of the pack's index describes a record here")
        yield e, record_payload(data, name, e)
        walked.append(e)
        pos = e.offset + e.stored_size
    if len(walked) == len(entries):
        return
    ids = {e.id for e in walked}
    lost = sorted((e for e in entries if e.id not in ids), key=lambda e: e.offset)
    if lost:
        raise _damaged(
            name,
            lost[0].offset - RECORD_HEADER_SIZE,
            f"indexed object {lost[0].id.hex()} is not in the pack",
        )
