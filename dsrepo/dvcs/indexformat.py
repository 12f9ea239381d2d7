"""The bytes of the staging index (``.dsrepo/index``) and of its tree cache
(``.dsrepo/index-trees``); see docs/format.md "The staging index".

Format 2 is columnar so that loading a million entries builds no Python object per entry except
the path string: every numeric column is one array read with a single copy.

    offset  size    field
    0       8       magic b"DSRINDEX"
    8       4       format version, u32 little-endian (2)
    12      4       flags, u32 (0)
    16      8       entry count n, u64
    24      32      BLAKE3 of every byte from offset 56 to the end (the body)
    56      ...     body: nine sections, each a u64 byte length then the bytes
                    paths      UTF-8 (surrogateescape), joined by 0x00, in component order
                    kinds      n x u8 (EntryKind)
                    sizes      n x i64
                    mtime_ns   n x i64
                    ctime_ns   n x i64
                    inodes     n x u64
                    modes      n x u32
                    ids        n x 32 bytes (content ids)
                    manifests  msgpack array of [path, manifest id] (chunked files only)

All integers little-endian. Format 1 (msgpack ``[1, rows, tree]``) is read and upgraded: it is
rewritten in format 2 by the next save.

The tree cache file holds ``b"DSRTREES"``, the body checksum of the index it describes (32
bytes), a msgpack array of ``[directory, tree id, size]`` and a BLAKE3 of all that (32 bytes). It
is a cache: when unreadable, or written for another index, it is ignored (trees get rebuilt).
"""

from __future__ import annotations

import struct
import sys
from array import array
from dataclasses import dataclass, field
from typing import Any

import msgpack
from blake3 import blake3

from dsrepo.objects.ids import ObjectId

MAGIC = b"DSRINDEX"
VERSION = 2
TREES_MAGIC = b"DSRTREES"
_HEADER = struct.Struct("<8sIIQ32s")
_LEN = struct.Struct("<Q")
ID_SIZE = 32


class IndexFormatError(ValueError):
    """The bytes are not a staging index this version can read (the message says why)."""


@dataclass
class Columns:
    """The staged entries as parallel columns, sorted in component order."""

    paths: list[str] = field(default_factory=list)
    kinds: bytearray = field(default_factory=bytearray)
    sizes: array[int] = field(default_factory=lambda: array("q"))
    mtimes: array[int] = field(default_factory=lambda: array("q"))
    ctimes: array[int] = field(default_factory=lambda: array("q"))
    inos: array[int] = field(default_factory=lambda: array("Q"))
    modes: array[int] = field(default_factory=lambda: array("I"))
    ids: bytearray = field(default_factory=bytearray)
    manifests: dict[str, ObjectId] = field(default_factory=dict)

    def content_id(self, row: int) -> ObjectId:
        return ObjectId(bytes(self.ids[row * ID_SIZE : (row + 1) * ID_SIZE]))

    def numeric(self) -> tuple[array[int], ...]:
        return (self.sizes, self.mtimes, self.ctimes, self.inos, self.modes)


def _le(a: array[int]) -> array[int]:
    if sys.byteorder == "big":  # pragma: no cover - every platform we run on is little-endian
        a = array(a.typecode, a)
        a.byteswap()
    return a


def encode(cols: Columns) -> tuple[list[bytes | bytearray | memoryview], bytes]:
    """The file's parts (to be written in order) and the body checksum."""
    paths = "\0".join(cols.paths).encode("utf-8", "surrogateescape")
    mans = msgpack.packb(sorted([p, m] for p, m in cols.manifests.items()), use_bin_type=True)
    body: list[bytes | bytearray | memoryview] = []
    for section in (
        paths,
        cols.kinds,
        *(memoryview(_le(a)).cast("B") for a in cols.numeric()),
        cols.ids,
        mans,
    ):
        body += [_LEN.pack(len(section)), section]
    h = blake3(max_threads=blake3.AUTO)
    for part in body:
        h.update(part)
    digest = h.digest()
    header = _HEADER.pack(MAGIC, VERSION, 0, len(cols.paths), digest)
    return [header, *body], digest


def decode(raw: bytes) -> tuple[Columns, bytes]:
    """Columns and body checksum of a format-2 file."""
    if len(raw) < _HEADER.size or not raw.startswith(MAGIC):
        raise IndexFormatError("not a staging index")
    _magic, version, _flags, n, digest = _HEADER.unpack_from(raw)
    if version != VERSION:
        raise IndexFormatError(
            f"written in format {version} by another dsrepo; this one reads formats 1 and 2"
        )
    view = memoryview(raw)
    if blake3(view[_HEADER.size :], max_threads=blake3.AUTO).digest() != digest:
        raise IndexFormatError("its checksum does not match (a torn or damaged file)")
    pos = _HEADER.size
    sections: list[memoryview] = []
    for _ in range(9):
        (length,) = _LEN.unpack_from(raw, pos)
        pos += _LEN.size
        sections.append(view[pos : pos + length])
        pos += length
    cols = Columns()
    cols.paths = bytes(sections[0]).decode("utf-8", "surrogateescape").split("\0") if n else []
    cols.kinds = bytearray(sections[1])
    for a, sec in zip(cols.numeric(), sections[2:7], strict=True):
        a.frombytes(sec)
        _fix_order(a)
    cols.ids = bytearray(sections[7])
    cols.manifests = {p: ObjectId(m) for p, m in msgpack.unpackb(sections[8], raw=False)}
    if not (
        len(cols.paths) == len(cols.kinds) == n
        and all(len(a) == n for a in cols.numeric())
        and len(cols.ids) == n * ID_SIZE
    ):
        raise IndexFormatError("its columns disagree on the number of entries")
    return cols, digest


def _fix_order(a: array[int]) -> None:
    if sys.byteorder == "big":  # pragma: no cover
        a.byteswap()


def decode_v1(raw: bytes) -> tuple[list[tuple[Any, ...]], ObjectId | None]:
    """Rows ``(path, kind, size, id, manifest, mtime, ctime, ino, mode)`` and cache-tree of a
    format-1 file (msgpack ``[1, rows, tree]``)."""
    doc = msgpack.unpackb(raw, raw=False, use_list=False)
    if not isinstance(doc, tuple) or not doc or doc[0] != 1:
        raise IndexFormatError("not a staging index")
    tree = doc[2] if len(doc) > 2 else None
    return list(doc[1]), tree


def encode_trees(index_digest: bytes, trees: dict[str, tuple[ObjectId, int]]) -> bytes:
    doc: bytes = msgpack.packb(sorted([d, t, s] for d, (t, s) in trees.items()), use_bin_type=True)
    body = TREES_MAGIC + index_digest + doc
    return body + blake3(body).digest()


def decode_trees(raw: bytes, index_digest: bytes) -> dict[str, tuple[ObjectId, int]]:
    """The tree cache for the index whose body checksum is ``index_digest``; {} when the file
    is damaged or describes another index."""
    if (
        len(raw) < 8 + 64
        or not raw.startswith(TREES_MAGIC)
        or blake3(raw[:-32]).digest() != raw[-32:]
        or raw[8:40] != index_digest
    ):
        return {}
    out: dict[str, tuple[ObjectId, int]] = {}
    for d, t, s in msgpack.unpackb(raw[40:-32], raw=False):
        out[d] = (ObjectId(t), s)
    return out
